// Multi-head attention (see attention.h).
//
// Projections are linear.c's SGEMMs over all B*S (or B*T) rows. The attention core runs one
// (b, h) pair per loop iteration, on strided views: head h of q is q + h*dh with leading dimension
// D, so no head is ever transposed or copied. Scores go straight into att[b, h] (S, T), the mask
// sets -inf, the softmax normalises in place; ctx_h = P' v_h is written into columns h*dh.. of
// ctx. Backward per (b, h), with dA = da->att[b, h] as scratch:
//   dv_h = P'ᵀ dctx_h      dA = dctx_h v_hᵀ      dA = dropout(dA) (same mask: the map is linear)
//   dA = P ∘ (dA − rowsum(dA ∘ P))               (softmax backward, in place)
//   dq_h = dA k_h / √dh    dk_h = dAᵀ q_h / √dh
// Every (b, h) writes a disjoint set of elements (its column block of dq/dk/dv rows of sample b),
// so there are no atomics and no cross-thread sums.
//
// Small heads: up to mha_loop_work multiply-adds per product (S*T*dh), the products are plain
// loops instead of SGEMM calls (a 2-token attention does a few hundred FMAs; a BLAS call costs
// more than that). Both paths are tested against torch. Nothing inside the (b, h) loop calls a
// routine with its own OpenMP region (softmax and dropout are inline): a nested region costs a
// team allocation per head, which made 2-token attention 3x slower.
#include "attention.h"
#include <cblas.h>
#include <math.h>
#include <string.h>
#include "linear.h"
#include "softmax.h"
#include "vecmath.h"

int mha_loop_work = 128;   // measured crossover (one thread, dh 8..32): loops win below ~200

fb_status mha_check_config(const mha_config *c) {
    FB_REQUIRE(c, FB_ERR_CONFIG, "attention: missing config");
    FB_REQUIRE(c->D > 0 && c->Ek > 0 && c->Ev > 0 && c->H > 0, FB_ERR_SHAPE,
               "attention: sizes D=%d Ek=%d Ev=%d H=%d must all be > 0", c->D, c->Ek, c->Ev, c->H);
    FB_REQUIRE(c->D % c->H == 0, FB_ERR_CONFIG, "attention: H=%d does not divide D=%d", c->H, c->D);
    FB_REQUIRE(c->dropout >= 0.0f && c->dropout < 1.0f, FB_ERR_CONFIG,
               "attention: dropout=%g outside [0, 1)", (double)c->dropout);
    return FB_OK;
}

int mha_declare(fb_layout *L, const char *prefix, const mha_config *c, mha_params *p, mha_params *g) {
    if (mha_check_config(c) != FB_OK) return -1;
    const int D = c->D;
    // torch: xavier_uniform_ on in_proj_weight (3D, D) when kdim = vdim = D, else on each of
    // q/k/v_proj_weight; in_proj_bias and out_proj.bias are zeroed; out_proj.weight keeps
    // nn.Linear's kaiming_uniform(a = √5), i.e. U(±1/√D).
    const int packed = c->Ek == D && c->Ev == D;
    float bq = packed ? sqrtf(6.0f / (4.0f * D)) : sqrtf(6.0f / (2.0f * D));
    float bk = packed ? bq : sqrtf(6.0f / (float)(D + c->Ek));
    float bv = packed ? bq : sqrtf(6.0f / (float)(D + c->Ev));
#define G(field) (g ? &g->field : NULL)
    int first = fb_layout_add(L, prefix, "q_proj_weight", 2, (int[]){D, D}, FB_INIT_UNIFORM, bq, &p->wq, G(wq));
    int ok = first >= 0;
    ok = ok && fb_layout_add(L, prefix, "k_proj_weight", 2, (int[]){D, c->Ek}, FB_INIT_UNIFORM, bk, &p->wk, G(wk)) >= 0;
    ok = ok && fb_layout_add(L, prefix, "v_proj_weight", 2, (int[]){D, c->Ev}, FB_INIT_UNIFORM, bv, &p->wv, G(wv)) >= 0;
    ok = ok && fb_layout_add(L, prefix, "q_proj_bias", 1, (int[]){D}, FB_INIT_ZERO, 0.0f, &p->bq, G(bq)) >= 0;
    ok = ok && fb_layout_add(L, prefix, "k_proj_bias", 1, (int[]){D}, FB_INIT_ZERO, 0.0f, &p->bk, G(bk)) >= 0;
    ok = ok && fb_layout_add(L, prefix, "v_proj_bias", 1, (int[]){D}, FB_INIT_ZERO, 0.0f, &p->bv, G(bv)) >= 0;
    ok = ok && fb_layout_add(L, prefix, "out_proj.weight", 2, (int[]){D, D}, FB_INIT_UNIFORM,
                             1.0f / sqrtf((float)D), &p->wo, G(wo)) >= 0;
    ok = ok && fb_layout_add(L, prefix, "out_proj.bias", 1, (int[]){D}, FB_INIT_ZERO, 0.0f, &p->bo, G(bo)) >= 0;
#undef G
    // q·b_k shifts every score of a query row alike, and softmax ignores such a shift.
    if (ok) fb_layout_mark_grad_free(L, first + 4);
    return ok ? first : -1;
}

int mha_declare_acts(fb_layout *L, const char *prefix, const mha_config *c, int B, int S, int T,
                     mha_acts *a, mha_acts *da) {
    if (mha_check_config(c) != FB_OK) return -1;
    if (B <= 0 || S <= 0 || T <= 0) {
        fb_fail(FB_ERR_SHAPE, "attention: sizes B=%d S=%d T=%d must all be > 0", B, S, T);
        return -1;
    }
    const int D = c->D, H = c->H;
    // No module tags here (layout.h): in torch's MultiheadAttention, q, k, v come from F.linear on
    // in_proj_weight, not from nn.Linear modules, and out_proj's output is the attention's output,
    // which the caller owns and tags FB_MODULE_ATTENTION.
#define G(field) (da ? &da->field : NULL)
    int first = fb_layout_add(L, prefix, "q", 3, (int[]){B, S, D}, FB_INIT_ZERO, 0.0f, &a->q, G(q));
    int ok = first >= 0;
    ok = ok && fb_layout_add(L, prefix, "k", 3, (int[]){B, T, D}, FB_INIT_ZERO, 0.0f, &a->k, G(k)) >= 0;
    ok = ok && fb_layout_add(L, prefix, "v", 3, (int[]){B, T, D}, FB_INIT_ZERO, 0.0f, &a->v, G(v)) >= 0;
    ok = ok && fb_layout_add(L, prefix, "att", 4, (int[]){B, H, S, T}, FB_INIT_ZERO, 0.0f, &a->att, G(att)) >= 0;
    a->attd = NULL;
    if (da) da->attd = NULL;
    // The dropped probabilities have no gradient of their own (dA is computed in da->att).
    if (c->dropout > 0.0f)
        ok = ok && fb_layout_add(L, prefix, "attd", 4, (int[]){B, H, S, T}, FB_INIT_ZERO, 0.0f, &a->attd, NULL) >= 0;
    ok = ok && fb_layout_add(L, prefix, "ctx", 3, (int[]){B, S, D}, FB_INIT_ZERO, 0.0f, &a->ctx, G(ctx)) >= 0;
#undef G
    return ok ? first : -1;
}

static fb_status mha_check_call(const mha_config *c, int B, int S, int T, int Ek, int Ev,
                                int training, const fb_rng_key *rng) {
    FB_TRY(mha_check_config(c));
    FB_REQUIRE(B > 0 && S > 0 && T > 0, FB_ERR_SHAPE,
               "attention: sizes B=%d S=%d T=%d must all be > 0", B, S, T);
    FB_REQUIRE(Ek == c->Ek, FB_ERR_SHAPE, "attention: mismatched kdim: key has %d features, config Ek=%d", Ek, c->Ek);
    FB_REQUIRE(Ev == c->Ev, FB_ERR_SHAPE, "attention: mismatched vdim: value has %d features, config Ev=%d", Ev, c->Ev);
    FB_REQUIRE(!(training && c->dropout > 0.0f) || rng, FB_ERR_CONFIG,
               "attention: training with dropout=%g needs an rng key", (double)c->dropout);
    return FB_OK;
}

static fb_status mha_check_acts(const mha_acts *a, const mha_config *c, int training, const char *what) {
    FB_REQUIRE(a && a->q && a->k && a->v && a->att && a->ctx, FB_ERR_SHAPE,
               "attention: missing %s buffers (declare them with mha_declare_acts)", what);
    FB_REQUIRE(!(training && c->dropout > 0.0f) || a->attd, FB_ERR_SHAPE,
               "attention: %s.attd missing (declared only when dropout > 0)", what);
    return FB_OK;
}

// The small-head path: C (M, N) = alpha · op(A) · op(B), row-major with leading dimensions, as
// plain loops in a fixed order (so results are the same on any thread count). A·B and Aᵀ·B are
// row updates C[m, :] += a · B[k, :] (contiguous, vectorised without reassociation); A·Bᵀ is a
// dot product over K, summed in 8 fixed lanes combined in a fixed order.
static void small_gemm(int transa, int transb, int M, int N, int K, float alpha,
                       const float *restrict A, int lda, const float *restrict Bm, int ldb,
                       float *restrict C, int ldc) {
    if (transb) {   // C = A · Bᵀ (transa is never set together with transb here)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                const float *x = A + (size_t)m * lda, *y = Bm + (size_t)n * ldb;
                float lane[8] = {0};
                int k = 0;
                for (; k + 8 <= K; k += 8)
                    for (int l = 0; l < 8; l++) lane[l] += x[k + l] * y[k + l];
                for (int l = 0; k + l < K; l++) lane[l] += x[k + l] * y[k + l];
                C[(size_t)m * ldc + n] = alpha * (((lane[0] + lane[4]) + (lane[1] + lane[5])) +
                                                  ((lane[2] + lane[6]) + (lane[3] + lane[7])));
            }
        return;
    }
    for (int m = 0; m < M; m++) {
        float *c = C + (size_t)m * ldc;
        for (int n = 0; n < N; n++) c[n] = 0.0f;
        for (int k = 0; k < K; k++) {
            const float a = alpha * (transa ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k]);
            const float *b = Bm + (size_t)k * ldb;
            #pragma omp simd
            for (int n = 0; n < N; n++) c[n] += a * b[n];
        }
    }
}

// Masked softmax of each row of P (S, T) in place; mask (T), 1 = ignore, may be NULL. A row with
// every key masked becomes zeros (torch: NaN). (Inline rather than softmax_forward: a library call
// here would open a nested OpenMP region, i.e. a team allocation, per head.) exp is vecmath.h's;
// the row sum uses its fixed 32-lane pattern, so nothing depends on the thread count.
static void head_softmax(float *P, const uint8_t *mask, int S, int T) {
    for (int s = 0; s < S; s++) {
        float *row = P + (size_t)s * T;
        if (mask)
            for (int t = 0; t < T; t++)
                if (mask[t]) row[t] = -INFINITY;
        float mx = -INFINITY;
        #pragma omp simd reduction(max : mx)
        for (int t = 0; t < T; t++) mx = row[t] > mx ? row[t] : mx;
        if (mx == -INFINITY) {
            memset(row, 0, (size_t)T * sizeof(float));
            continue;
        }
        int t = 0;   // exp(-inf) = 0 for masked keys
        for (; t + FB_VL <= T; t += FB_VL) fbv_store(row + t, fbv_exp(fbv_load(row + t) - mx));
        if (t < T) fbv_storen(row + t, fbv_exp(fbv_loadn(row + t, (size_t)(T - t), 0.0f) - mx), (size_t)(T - t));
        const float inv = 1.0f / fb_row_sum(row, T);
        #pragma omp simd
        for (int u = 0; u < T; u++) row[u] *= inv;
    }
}

// out (n) = dropout(in) with dropout.c's mask and scaling, bit for bit: element j = first + i of
// the site is kept iff fb_uniform(key, j) >= p, i.e. iff (Philox word j >> 8) >= the threshold.
// (Inline for the same reason as head_softmax: fb_philox_words is serial.) out may alias in.
static void head_dropout(float *out, const float *in, size_t n, float p, const fb_rng_key *key, uint64_t first) {
    enum { CHUNK = 1024 };
    const float scale = 1.0f / (1.0f - p);
    const uint32_t thr = fb_uniform_threshold(p);
    uint32_t w[CHUNK];
    for (size_t lo = 0; lo < n; lo += CHUNK) {
        const size_t len = n - lo < CHUNK ? n - lo : CHUNK;
        fb_philox_words(w, key, first + lo, len);
        float *o = out + lo;
        const float *x = in + lo;
        #pragma omp simd
        for (size_t k = 0; k < len; k++) o[k] = (w[k] >> 8) >= thr ? x[k] * scale : 0.0f;
    }
}

// The site index of head h's first probability in local sample b: the mask is laid out as the
// global batch's (B, H, S, T), so sample b's row is its global row (kernels/rng.h).
static inline uint64_t head_first(const fb_rng_key *rng, int b, int h, int H, size_t ST) {
    return fb_rng_row_first(rng, (size_t)b, (uint64_t)H * ST) + (uint64_t)h * ST;
}

// C = alpha · op(A) · op(B), overwriting C; SGEMM or loops by size (decided per call from the
// shape only, so both thread counts take the same path).
static void head_gemm(int small, int transa, int transb, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *Bm, int ldb, float *C, int ldc) {
    if (small)
        small_gemm(transa, transb, M, N, K, alpha, A, lda, Bm, ldb, C, ldc);
    else
        fb_sgemm(transa, transb, M, N, K, alpha, A, lda, Bm, ldb, 0.0f, C, ldc);
}

// The FLOP counter (common.h) counts SGEMMs in fb_sgemm; the small-head path's products are the
// same GEMMs as loops, so they are counted here: `products` (S, T, dh)-sized products per (b, h),
// 2·S·T·dh FLOPs each. Once per call, outside the (b, h) loop, because an atomic add per 2-token
// head would cost about as much as the head. The count then does not depend on mha_loop_work.
static void count_small_heads(int small, int products, int B, int H, int S, int T, int dh) {
    if (small) fb_flops_add(products * 2.0 * B * H * S * T * dh);
}

fb_status mha_forward(float *out, float *attn_weights, mha_acts *a,
                      const float *query, const float *key, const float *value,
                      const uint8_t *key_padding_mask, const mha_params *p, const mha_config *c,
                      int B, int S, int T, int Ek, int Ev, int training, const fb_rng_key *rng) {
    FB_TRY(mha_check_call(c, B, S, T, Ek, Ev, training, rng));
    FB_REQUIRE(out && query && key && value && p, FB_ERR_SHAPE, "attention: missing output, input or parameters");
    FB_TRY(mha_check_acts(a, c, training, "activation"));
    const int D = c->D, H = c->H, dh = D / H;
    const int drop = training && c->dropout > 0.0f;
    const float scale = 1.0f / sqrtf((float)dh), pdrop = c->dropout;

    FB_TRY(linear_forward(a->q, query, &(linear_params){p->wq, p->bq}, B * S, D, D));
    FB_TRY(linear_forward(a->k, key, &(linear_params){p->wk, p->bk}, B * T, Ek, D));
    FB_TRY(linear_forward(a->v, value, &(linear_params){p->wv, p->bv}, B * T, Ev, D));

    const int small = (size_t)S * T * dh <= (size_t)mha_loop_work;
    const size_t ST = (size_t)S * T;
    #pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * ST * D > FB_OMP_MIN_WORK)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h;
            const float *qh = a->q + (size_t)b * S * D + (size_t)h * dh;   // (S, dh), ld D
            const float *kh = a->k + (size_t)b * T * D + (size_t)h * dh;   // (T, dh), ld D
            const float *vh = a->v + (size_t)b * T * D + (size_t)h * dh;   // (T, dh), ld D
            float *P = a->att + bh * ST;                                    // (S, T)
            head_gemm(small, 0, 1, S, T, dh, scale, qh, D, kh, D, P, T);
            head_softmax(P, key_padding_mask ? key_padding_mask + (size_t)b * T : NULL, S, T);
            const float *Pu = P;
            if (drop) {
                head_dropout(a->attd + bh * ST, P, ST, pdrop, rng, head_first(rng, b, h, H, ST));
                Pu = a->attd + bh * ST;
            }
            head_gemm(small, 0, 0, S, dh, T, 1.0f, Pu, T, vh, D, a->ctx + (size_t)b * S * D + (size_t)h * dh, D);
        }
    count_small_heads(small, 2, B, H, S, T, dh);   // scores, ctx

    if (attn_weights) {
        const float *src = drop ? a->attd : a->att;
        const float invH = 1.0f / (float)H;
        #pragma omp parallel for schedule(static) if ((size_t)B * H * ST > FB_OMP_MIN_WORK)
        for (int bs = 0; bs < B * S; bs++) {
            const int b = bs / S, s = bs % S;
            float *w = attn_weights + (size_t)bs * T;
            for (int t = 0; t < T; t++) w[t] = 0.0f;
            for (int h = 0; h < H; h++) {
                const float *row = src + ((size_t)b * H + h) * ST + (size_t)s * T;
                for (int t = 0; t < T; t++) w[t] += row[t];
            }
            for (int t = 0; t < T; t++) w[t] *= invH;
        }
    }
    return linear_forward(out, a->ctx, &(linear_params){p->wo, p->bo}, B * S, D, D);
}

fb_status mha_backward(float *dquery, float *dkey, float *dvalue, mha_params *g, mha_acts *da,
                       const float *dout, const float *query, const float *key, const float *value,
                       const mha_acts *a, const mha_params *p, const mha_config *c,
                       int B, int S, int T, int Ek, int Ev, int training, const fb_rng_key *rng) {
    FB_TRY(mha_check_call(c, B, S, T, Ek, Ev, training, rng));
    FB_REQUIRE(dout && query && key && value && p, FB_ERR_SHAPE, "attention: missing dout, input or parameters");
    FB_TRY(mha_check_acts(a, c, training, "activation"));
    FB_TRY(mha_check_acts(da, c, 0, "activation-gradient"));
    const int D = c->D, H = c->H, dh = D / H;
    const int drop = training && c->dropout > 0.0f;
    const float scale = 1.0f / sqrtf((float)dh), pdrop = c->dropout;
    // The key bias's gradient is exactly zero: q·bk adds the same constant to every score of a
    // softmax row (masked keys are -inf anyway), which softmax ignores. Computing it would only
    // add float32 noise, so g->bk is left untouched (zero after zero_grad), exactly as in float64.
    linear_params gq = {0}, gk = {0}, gv = {0}, go = {0};
    if (g) {
        gq = (linear_params){g->wq, g->bq}; gk = (linear_params){g->wk, NULL};
        gv = (linear_params){g->wv, g->bv}; go = (linear_params){g->wo, g->bo};
    }

    memset(da->ctx, 0, (size_t)B * S * D * sizeof(float));
    FB_TRY(linear_backward(da->ctx, g ? &go : NULL, dout, a->ctx, &(linear_params){p->wo, p->bo}, B * S, D, D));

    const int small = (size_t)S * T * dh <= (size_t)mha_loop_work;
    const size_t ST = (size_t)S * T;
    #pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * ST * D > FB_OMP_MIN_WORK)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h;
            const size_t qo = (size_t)b * S * D + (size_t)h * dh, ko = (size_t)b * T * D + (size_t)h * dh;
            const float *P = a->att + bh * ST, *Pu = drop ? a->attd + bh * ST : P;
            const float *dctx = da->ctx + qo;
            float *dA = da->att + bh * ST;
            head_gemm(small, 1, 0, T, dh, S, 1.0f, Pu, T, dctx, D, da->v + ko, D);    // dv_h = P'ᵀ dctx_h
            head_gemm(small, 0, 1, S, T, dh, 1.0f, dctx, D, a->v + ko, D, dA, T);     // dP' = dctx_h v_hᵀ
            if (drop) head_dropout(dA, dA, ST, pdrop, rng, head_first(rng, b, h, H, ST));   // dP = mask/(1-p) ∘ dP'
            for (int s = 0; s < S; s++) {   // softmax backward; masked keys have P = 0, so dA = 0
                float *d = dA + (size_t)s * T;
                const float *o = P + (size_t)s * T;
                const float dot = fb_row_dot(d, o, T);
                #pragma omp simd
                for (int t = 0; t < T; t++) d[t] = o[t] * (d[t] - dot);
            }
            head_gemm(small, 0, 0, S, dh, T, scale, dA, T, a->k + ko, D, da->q + qo, D);  // dq_h = dA k_h/√dh
            head_gemm(small, 1, 0, T, dh, S, scale, dA, T, a->q + qo, D, da->k + ko, D);  // dk_h = dAᵀ q_h/√dh
        }
    count_small_heads(small, 4, B, H, S, T, dh);   // dv, dP', dq, dk

    // The three projections accumulate one after another, so dquery == dkey == dvalue is fine.
    FB_TRY(linear_backward(dquery, g ? &gq : NULL, da->q, query, &(linear_params){p->wq, p->bq}, B * S, D, D));
    FB_TRY(linear_backward(dkey, g ? &gk : NULL, da->k, key, &(linear_params){p->wk, p->bk}, B * T, Ek, D));
    FB_TRY(linear_backward(dvalue, g ? &gv : NULL, da->v, value, &(linear_params){p->wv, p->bv}, B * T, Ev, D));
    return FB_OK;
}

double mha_flops_forward(const mha_config *c, int B, int S, int T) {
    const int D = c->D;
    return linear_flops_forward(B * S, D, D, 1) + linear_flops_forward(B * T, c->Ek, D, 1) +
           linear_flops_forward(B * T, c->Ev, D, 1) +
           2.0 * 2.0 * B * S * T * D +                       // scores and ctx
           softmax_flops_forward(B * c->H * S, T) +
           linear_flops_forward(B * S, D, D, 1);             // out_proj
}

double mha_flops_backward(const mha_config *c, int B, int S, int T, int needs_dinp) {
    const int D = c->D;
    return linear_flops_backward(B * S, D, D, 1, 1) +         // out_proj (dctx always needed)
           4.0 * 2.0 * B * S * T * D +                        // dv, dP, dq, dk
           softmax_flops_backward(B * c->H * S, T) +
           linear_flops_backward(B * S, D, D, 1, needs_dinp) +
           linear_flops_backward(B * T, c->Ek, D, 1, needs_dinp) +
           linear_flops_backward(B * T, c->Ev, D, 1, needs_dinp);
}
