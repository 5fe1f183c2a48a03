// conditional_scaling (003, the project's `--conditional-output-scaling`, named by the document's
// CLN-6 as one of the three categorical conditioning systems): per categorical column k a learned
// scale and bias per category, applied in turn.
//
//   y ← a;  for k = 0 .. K−1:  y ← y ⊙ σ_k + τ_k,   σ_k = b_k · Scale_k,  τ_k = b_k · Bias_k
//
// Scale_k, Bias_k (E, D) are column k's Embedding(card, D) tables — scale.<k>.weight (init 1) and
// bias.<k>.weight (init 0) — ../shared/SOURCE-SYSTEMS.md, 003 "Conditional output scaling": per column
// Embedding(card, out) for scale and bias, y ← y · scale[cat] + bias[cat], in turn.
// a (B, S, D) -> out (B, S, D): every position of a sample gets its sample's categories (S may be 1).
//
// Interface (a choice: fusion methods take float streams): b (B, K = T, E) holds ONE-HOT category
// indicators, b[i, k, e] = 1 iff column k of sample i has category e (E = card, the table size), so
// σ_k = b_k · Scale_k is exactly the embedding lookup Scale_k[cat_k] for one-hot input, and it is
// differentiable in b for a soft (weighted) input: db[i, k, e] = Σ_d (dσ_k Scale_k[e] + dτ_k Bias_k[e]).
// Zero entries of b are skipped in the products, so for one-hot input only the looked-up rows are
// read, as a lookup does (a non-finite value in another row does not leak into the output).
// A missing column is the project's index 0 (a one-hot at e = 0, a learned row as in the project, whose
// Embedding has no padding_idx); b_mask is not read. No variant; no diagnostics.
//
// Cost: the K steps fold into one affine map per sample, out = a ⊙ G + Z with
//   G_0 = 1, Z_0 = 0,  G_{k+1} = G_k ⊙ σ_k,  Z_{k+1} = Z_k ⊙ σ_k + τ_k,  G = G_K, Z = Z_K   (B, D),
// so the (B, S, D) stream is read and written once (the sequential form rounds differently, well
// inside float32). Backward: one pass over positions gives da = dout ⊙ G, dG = Σ_s dout ⊙ a,
// dZ = Σ_s dout; the K steps run back on (B, D) vectors (dσ_k = dG_{k+1} ⊙ G_k + dZ_{k+1} ⊙ Z_k,
// dτ_k = dZ_{k+1}); table gradients dScale_k[e] = Σ_i b[i, k, e] dσ_k[i] are summed over samples in
// order by the thread owning row (k, e), so there are no atomics.
#include "fusion.h"
#include <stdio.h>
#include <string.h>

#define CSCALE_COLS 64   // columns per task of the pass over positions

typedef struct { float *scale, *dscale, *bias, *dbias; } cscale_column;   // (E, D) each

typedef struct {
    float *sig, *dsig;    // (B, K, D) σ_k, and its gradient
    float *tau, *dtau;    // (B, K, D) τ_k, and its gradient
    float *g, *dg;        // (B, K + 1, D) G_k (g[:, K] = G), and dG_K in the gradient's row K
    float *z, *dz;        // (B, K + 1, D) Z_k, likewise
    int K;
    cscale_column col[];
} cscale_self;

static fb_status cscale_create(fusion *f, fb_layout *P, fb_layout *A) {
    const fusion_config *c = &f->c;
    const int K = c->T;
    FB_TRY(fusion_alloc_self(f, sizeof(cscale_self) + (size_t)K * sizeof(cscale_column)));
    cscale_self *s = f->self;
    s->K = K;
    char sub[FB_NAME_MAX], name[FB_NAME_MAX];
    const int *ed = (int[]){c->E, c->D};
    for (int k = 0; k < K; k++) {
        cscale_column *col = &s->col[k];
        snprintf(sub, sizeof sub, "scale.%d", k);
        if (fb_layout_add(P, fusion_name(f, sub, name), "weight", 2, ed, FB_INIT_CONST, 1.0f, &col->scale, &col->dscale) < 0)
            return FB_ERR_SHAPE;
        snprintf(sub, sizeof sub, "bias.%d", k);
        if (fb_layout_add(P, fusion_name(f, sub, name), "weight", 2, ed, FB_INIT_ZERO, 0.0f, &col->bias, &col->dbias) < 0)
            return FB_ERR_SHAPE;
    }
    const char *pre = fusion_name(f, "conditional_scaling", name);
    const int *bkd = (int[]){c->B, K, c->D}, *bk1d = (int[]){c->B, K + 1, c->D};
    if (fb_layout_add(A, pre, "sigma", 3, bkd, FB_INIT_ZERO, 0, &s->sig, &s->dsig) < 0 ||
        fb_layout_add(A, pre, "tau", 3, bkd, FB_INIT_ZERO, 0, &s->tau, &s->dtau) < 0 ||
        fb_layout_add(A, pre, "G", 3, bk1d, FB_INIT_ZERO, 0, &s->g, &s->dg) < 0 ||
        fb_layout_add(A, pre, "Z", 3, bk1d, FB_INIT_ZERO, 0, &s->z, &s->dz) < 0)
        return FB_ERR_SHAPE;
    return FB_OK;
}

static fb_status cscale_forward(fusion *f, float *out, const float *a, const float *b) {
    cscale_self *s = f->self;
    const fusion_config *c = &f->c;
    const int B = c->B, S = c->S, D = c->D, E = c->E, K = s->K;
    // σ_k, τ_k (lookups as one-hot products) and the folded map G, Z: one sample per iteration.
    #pragma omp parallel for schedule(static) if ((size_t)B * K * E * D > FB_OMP_MIN_WORK)
    for (int i = 0; i < B; i++) {
        float *restrict g = s->g + (size_t)i * (K + 1) * D, *restrict z = s->z + (size_t)i * (K + 1) * D;
        for (int d = 0; d < D; d++) { g[d] = 1.0f; z[d] = 0.0f; }
        for (int k = 0; k < K; k++) {
            const float *bk = b + ((size_t)i * K + k) * E;
            float *restrict sig = s->sig + ((size_t)i * K + k) * D, *restrict tau = s->tau + ((size_t)i * K + k) * D;
            memset(sig, 0, (size_t)D * sizeof(float));
            memset(tau, 0, (size_t)D * sizeof(float));
            for (int e = 0; e < E; e++) {
                const float w = bk[e];
                if (w == 0.0f) continue;
                const float *restrict sr = s->col[k].scale + (size_t)e * D, *restrict br = s->col[k].bias + (size_t)e * D;
                #pragma omp simd
                for (int d = 0; d < D; d++) { sig[d] += w * sr[d]; tau[d] += w * br[d]; }
            }
            const float *restrict g0 = g + (size_t)k * D, *restrict z0 = z + (size_t)k * D;
            float *restrict g1 = g + (size_t)(k + 1) * D, *restrict z1 = z + (size_t)(k + 1) * D;
            #pragma omp simd
            for (int d = 0; d < D; d++) { g1[d] = g0[d] * sig[d]; z1[d] = z0[d] * sig[d] + tau[d]; }
        }
    }
    const int N = B * S;
    const size_t last = (size_t)K * D, stride = (size_t)(K + 1) * D;
    #pragma omp parallel for schedule(static) if ((size_t)N * D > FB_OMP_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const size_t off = (size_t)(n / S) * stride + last;
        const float *restrict G = s->g + off, *restrict Z = s->z + off, *restrict x = a + (size_t)n * D;
        float *restrict y = out + (size_t)n * D;
        #pragma omp simd
        for (int d = 0; d < D; d++) y[d] = x[d] * G[d] + Z[d];
    }
    return FB_OK;
}

static fb_status cscale_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b) {
    cscale_self *s = f->self;
    const fusion_config *c = &f->c;
    const int B = c->B, S = c->S, D = c->D, E = c->E, K = s->K;
    const size_t SD = (size_t)S * D, stride = (size_t)(K + 1) * D, last = (size_t)K * D;
    const int blocks = (D + CSCALE_COLS - 1) / CSCALE_COLS;
    // da += dout ⊙ G;  dG = Σ_s dout ⊙ a;  dZ = Σ_s dout  (into row K of dg, dz)
    #pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * SD > FB_OMP_MIN_WORK)
    for (int i = 0; i < B; i++)
        for (int blk = 0; blk < blocks; blk++) {
            const int d0 = blk * CSCALE_COLS, n = D - d0 < CSCALE_COLS ? D - d0 : CSCALE_COLS;
            const float *restrict G = s->g + (size_t)i * stride + last + d0;
            float sg[CSCALE_COLS] = {0}, sz[CSCALE_COLS] = {0};
            for (int t = 0; t < S; t++) {
                const size_t off = (size_t)i * SD + (size_t)t * D + d0;
                const float *restrict dy = dout + off, *restrict x = a + off;
                #pragma omp simd
                for (int j = 0; j < n; j++) { sg[j] += dy[j] * x[j]; sz[j] += dy[j]; }
                if (da) {
                    float *restrict dx = da + off;
                    #pragma omp simd
                    for (int j = 0; j < n; j++) dx[j] += dy[j] * G[j];
                }
            }
            float *dG = s->dg + (size_t)i * stride + last + d0, *dZ = s->dz + (size_t)i * stride + last + d0;
            for (int j = 0; j < n; j++) { dG[j] = sg[j]; dZ[j] = sz[j]; }
        }
    // Back through the K steps, per sample: dσ_k, dτ_k; then db.
    #pragma omp parallel for schedule(static) if ((size_t)B * K * E * D > FB_OMP_MIN_WORK)
    for (int i = 0; i < B; i++) {
        const float *g = s->g + (size_t)i * stride, *z = s->z + (size_t)i * stride;
        float *restrict dG = s->dg + (size_t)i * stride + last, *restrict dZ = s->dz + (size_t)i * stride + last;
        for (int k = K - 1; k >= 0; k--) {
            const size_t bk = ((size_t)i * K + k) * D;
            const float *restrict sig = s->sig + bk, *restrict g0 = g + (size_t)k * D, *restrict z0 = z + (size_t)k * D;
            float *restrict dsig = s->dsig + bk, *restrict dtau = s->dtau + bk;
            #pragma omp simd
            for (int d = 0; d < D; d++) {
                dsig[d] = dG[d] * g0[d] + dZ[d] * z0[d];
                dtau[d] = dZ[d];
                dG[d] *= sig[d];   // now dG_k, dZ_k (row K reused as the running gradient)
                dZ[d] *= sig[d];
            }
        }
        if (db)
            for (int k = 0; k < K; k++) {
                const size_t bk = ((size_t)i * K + k) * D;
                const float *restrict dsig = s->dsig + bk, *restrict dtau = s->dtau + bk;
                float *dbk = db + ((size_t)i * K + k) * E;
                for (int e = 0; e < E; e++) {
                    const float *restrict sr = s->col[k].scale + (size_t)e * D, *restrict br = s->col[k].bias + (size_t)e * D;
                    float acc = 0.0f;   // in order (no simd reduction: the order must not depend on alignment)
                    for (int d = 0; d < D; d++) acc += dsig[d] * sr[d] + dtau[d] * br[d];
                    dbk[e] += acc;
                }
            }
    }
    // Table gradients: row (k, e) sums its samples in order.
    #pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * K * E * D > FB_OMP_MIN_WORK)
    for (int k = 0; k < K; k++)
        for (int e = 0; e < E; e++) {
            float *restrict ds = s->col[k].dscale + (size_t)e * D, *restrict dt = s->col[k].dbias + (size_t)e * D;
            for (int i = 0; i < B; i++) {
                const float w = b[((size_t)i * K + k) * E + e];
                if (w == 0.0f) continue;
                const size_t bk = ((size_t)i * K + k) * D;
                const float *restrict dsig = s->dsig + bk, *restrict dtau = s->dtau + bk;
                #pragma omp simd
                for (int d = 0; d < D; d++) { ds[d] += w * dsig[d]; dt[d] += w * dtau[d]; }
            }
        }
    return FB_OK;
}

static double cscale_flops(const fusion *f, int backward) {
    const fusion_config *c = &f->c;
    double n = (double)c->B * c->S * c->D, bkd = (double)c->B * c->T * c->D, table = bkd * c->E;
    // Products count every table row (a dense soft b); a one-hot b reads 1/E of them.
    return backward ? 5 * n + 6 * bkd + 4 * table /* db */ + 4 * table /* tables */
                    : 2 * n + 3 * bkd + 4 * table;
}

const fusion_method fusion_conditional_scaling = {
    .name = "conditional_scaling", .source = "003", .kind = FUSION_SEQUENCE, .typical_E = 8, .b_onehot = 1,
    .variants = {"default", NULL},
    .formula = "y = a;  for each column k: y = y * (b_k Scale_k) + b_k Bias_k  (b_k one-hot: a lookup)",
    .create = cscale_create, .forward = cscale_forward, .backward = cscale_backward, .flops = cscale_flops,
};
