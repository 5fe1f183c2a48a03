// LayerNorm over the last dim (torch.nn.LayerNorm semantics: population variance, eps inside the
// square root, optional affine weight/bias).
//
// Determinism: every row is computed by one thread, and row sums use 32 independent partial sums
// in a fixed lane pattern (vecmath.h's FB_V8_LANES), combined in a fixed order. Nothing is reassociated, so
// results do not depend on the thread count, the vector width or the buffers' alignment. (Explicit
// vectors rather than scalar lane arrays: GCC 12 turns `acc[k] += x[j + k]` lane loops into
// in-order scalar adds, about 2x slower here.) The weight/bias gradients are parallel over blocks
// of columns, each summing rows in order (as linear.c's bias gradient), so they are thread-count
// independent too, with no atomics.
#include "layernorm.h"
#include "vecmath.h"
#include <math.h>
#include <string.h>

#define FB_LN_COLS 64   // columns per block in the weight/bias gradient
// The backward's FLOPs per element in two parts (breakdown at layernorm_flops_backward), so the
// FLOP counter (common.h) counts only the part that runs: the row sums and dinp when dinp is
// given, the parameter gradients when g has either.
#define LN_FLOPS_DINP 14.0
#define LN_FLOPS_DPARAMS 5.0

// Row sums: vecmath.h's fixed 32-lane pattern (FB_V8_LANES: element j always in the same lane,
// the lanes combined in a fixed order), with tail lanes padded so they add nothing.

// *s1 = sum_j (x[j] - m), *s2 = sum_j (x[j] - m)^2. Tail lanes are padded with m, so d = 0 there.
static inline void row_centered_sums(const float *restrict x, float m, int D, float *s1, float *s2) {
    fb_v8 a1[4] = {{0}}, a2[4] = {{0}};
#define STEP(u, j, n) do { fb_v8 d; fb_v8_loadn_pad(&d, x + (j), (n), m); d -= m; a1[u] += d; a2[u] += d * d; } while (0)
    FB_V8_LANES(D, STEP);
#undef STEP
    *s1 = fb_v8_total(a1);
    *s2 = fb_v8_total(a2);
}

// With dn = dout * w (w NULL: dn = dout) and xh = (x - m) * s:
// *s1 = sum_j dn[j], *s2 = sum_j dn[j] * xh[j]. Tail lanes: dout padded with 0, so dn = 0 there.
static inline void row_backward_sums(const float *restrict dout, const float *restrict x,
                                     const float *restrict w, float m, float s, int D,
                                     float *s1, float *s2) {
    fb_v8 a1[4] = {{0}}, a2[4] = {{0}};
#define STEP(u, j, n) do {                                                              \
        fb_v8 dn, wv, xh;                                                               \
        fb_v8_loadn_pad(&dn, dout + (j), (n), 0.0f);                                              \
        if (w) { fb_v8_loadn_pad(&wv, w + (j), (n), 0.0f); dn *= wv; }                            \
        fb_v8_loadn_pad(&xh, x + (j), (n), m);                                                    \
        xh = (xh - m) * s;                                                              \
        a1[u] += dn;                                                                    \
        a2[u] += dn * xh;                                                               \
    } while (0)
    FB_V8_LANES(D, STEP);
#undef STEP
    *s1 = fb_v8_total(a1);
    *s2 = fb_v8_total(a2);
}

int layernorm_declare(fb_layout *L, const char *prefix, int D, layernorm_params *p, layernorm_params *g) {
    int w = fb_layout_add(L, prefix, "weight", 1, (int[]){D}, FB_INIT_CONST, 1.0f,
                          &p->weight, g ? &g->weight : NULL);
    if (w < 0) return -1;
    if (fb_layout_add(L, prefix, "bias", 1, (int[]){D}, FB_INIT_ZERO, 0.0f, &p->bias, g ? &g->bias : NULL) < 0)
        return -1;
    return w;
}

static fb_status layernorm_check(const float *inp, const float *mean, const float *rstd, int N, int D) {
    FB_REQUIRE(N > 0, FB_ERR_SHAPE, "layernorm: N=%d must be > 0", N);
    FB_REQUIRE(D > 0, FB_ERR_SHAPE, "layernorm: D=%d must be > 0", D);
    FB_REQUIRE(inp, FB_ERR_SHAPE, "layernorm: missing input");
    FB_REQUIRE(mean && rstd, FB_ERR_SHAPE, "layernorm: missing mean/rstd buffers (N=%d)", N);
    return FB_OK;
}

fb_status layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                            const layernorm_params *p, int N, int D, float eps) {
    FB_TRY(layernorm_check(inp, mean, rstd, N, D));
    FB_REQUIRE(out, FB_ERR_SHAPE, "layernorm: missing output");
    FB_REQUIRE(eps >= 0.0f && isfinite(eps), FB_ERR_CONFIG, "layernorm: eps=%g must be finite and >= 0", (double)eps);
    const float *w = p ? p->weight : NULL, *b = p ? p->bias : NULL;
    const float fd = (float)D;
    fb_flops_add(layernorm_flops_forward(N, D));
    // out may alias inp: each element is read before it is written at the same index, which
    // `omp simd` allows (no restrict on out/inp).
    #pragma omp parallel for schedule(static) if ((size_t)N * D > FB_OMP_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * D;
        float *o = out + (size_t)n * D;
        // Two passes, the second corrected (Bjorck): m0 is the rounded mean, c = sum(x - m0)
        // repairs it, and var = sum((x - m0)^2)/D - (c/D)^2 loses nothing to cancellation.
        float m0 = fb_row_sum(x, D) / fd, c, ss;
        row_centered_sums(x, m0, D, &c, &ss);
        float cm = c / fd, m = m0 + cm;
        float var = ss / fd - cm * cm;
        if (var < 0.0f) var = 0.0f;
        float s = 1.0f / sqrtf(var + eps);
        mean[n] = m;
        rstd[n] = s;
        if (w && b) {  // the common case in one pass; the same arithmetic as the passes below
            #pragma omp simd
            for (int j = 0; j < D; j++) o[j] = (x[j] - m) * s * w[j] + b[j];
            continue;
        }
        #pragma omp simd
        for (int j = 0; j < D; j++) o[j] = (x[j] - m) * s;
        if (w) {
            #pragma omp simd
            for (int j = 0; j < D; j++) o[j] *= w[j];
        }
        if (b) {
            #pragma omp simd
            for (int j = 0; j < D; j++) o[j] += b[j];
        }
    }
    return FB_OK;
}

fb_status layernorm_backward(float *dinp, layernorm_params *g, const float *dout, const float *inp,
                             const float *mean, const float *rstd, const layernorm_params *p, int N, int D) {
    FB_TRY(layernorm_check(inp, mean, rstd, N, D));
    FB_REQUIRE(dout, FB_ERR_SHAPE, "layernorm: missing dout");
    FB_REQUIRE(!dinp || dinp != dout, FB_ERR_CONFIG, "layernorm: dinp must not alias dout");
    const float *restrict w = p ? p->weight : NULL;
    const float *restrict dy = dout, *restrict xin = inp, *restrict mu = mean, *restrict rs = rstd;
    const float inv_d = 1.0f / (float)D;
    const int par = (size_t)N * D > FB_OMP_MIN_WORK;
    float *restrict dw = g ? g->weight : NULL, *restrict db = g ? g->bias : NULL;
    fb_flops_add(((dinp ? LN_FLOPS_DINP : 0.0) + (dw || db ? LN_FLOPS_DPARAMS : 0.0)) * N * D);

    if (dinp) {
        // dx = rstd * (dn - mean(dn) - xh * mean(dn * xh)),  dn = dout * w,  xh = (x - mean) * rstd
        float *restrict dx = dinp;
        #pragma omp parallel for schedule(static) if (par)
        for (int n = 0; n < N; n++) {
            const float *restrict d = dy + (size_t)n * D, *restrict x = xin + (size_t)n * D;
            float *restrict o = dx + (size_t)n * D;
            const float m = mu[n], s = rs[n];
            float s1, s2;
            row_backward_sums(d, x, w, m, s, D, &s1, &s2);
            const float dn_mean = s1 * inv_d, dnx_mean = s2 * inv_d;
            if (w) {
                #pragma omp simd
                for (int j = 0; j < D; j++) {
                    float xh = (x[j] - m) * s;
                    o[j] += (d[j] * w[j] - dn_mean - xh * dnx_mean) * s;
                }
            } else {
                #pragma omp simd
                for (int j = 0; j < D; j++) {
                    float xh = (x[j] - m) * s;
                    o[j] += (d[j] - dn_mean - xh * dnx_mean) * s;
                }
            }
        }
    }

    if (dw || db) {
        // dweight[j] += sum_n dout[n,j] * xh[n,j], dbias[j] += sum_n dout[n,j]. A thread owns a
        // block of columns and adds the rows in order: no atomics, no thread-count dependence.
        #pragma omp parallel for schedule(static) if (par)
        for (int j0 = 0; j0 < D; j0 += FB_LN_COLS) {
            const int nc = D - j0 < FB_LN_COLS ? D - j0 : FB_LN_COLS;
            float aw[FB_LN_COLS] = {0}, ab[FB_LN_COLS] = {0};
            for (int n = 0; n < N; n++) {
                const float *restrict d = dy + (size_t)n * D + j0, *restrict x = xin + (size_t)n * D + j0;
                const float m = mu[n], s = rs[n];
                #pragma omp simd
                for (int k = 0; k < nc; k++) {
                    aw[k] += d[k] * ((x[k] - m) * s);
                    ab[k] += d[k];
                }
            }
            if (dw) for (int k = 0; k < nc; k++) dw[j0 + k] += aw[k];
            if (db) for (int k = 0; k < nc; k++) db[j0 + k] += ab[k];
        }
    }
    return FB_OK;
}

// FLOP counts: the arithmetic actually executed per element (recomputation included), a
// multiply-add counted as 2; per-row scalar work (divisions, sqrt) is ignored. Affine assumed.
//   forward  9: sum (1); x - m, correction sum, square-add (4); normalise (2); affine (2)
//   backward 19: row sums (dn 1, xh 2, two adds/multiply-adds 3); dinp (dn 1, xh 2, three
//             subtract/multiply 3, scale 1, accumulate 1); weight/bias grads (xh 2, mul-add 2, add 1)
double layernorm_flops_forward(int N, int D) { return 9.0 * N * D; }
double layernorm_flops_backward(int N, int D) { return (LN_FLOPS_DINP + LN_FLOPS_DPARAMS) * N * D; }
