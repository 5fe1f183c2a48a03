// The router MLP and the both-modality fusion block of shomr and energy_aware_adaptive; see
// route_blocks.h.
#include "route_blocks.h"
#include <stdio.h>
#include <string.h>
#include "../activations.h"
#include "../dropout.h"
#include "../softmax.h"

#define ROUTE_LN_EPS 1e-5f   // nn.LayerNorm's default, as the source uses

// "<prefix>.<method>.<sub>" for a routing block's activations.
static const char *act_name(const fusion *f, const char *sub, char buf[FB_NAME_MAX]) {
    char tmp[FB_NAME_MAX];
    snprintf(tmp, sizeof tmp, "%s.%s", f->method->name, sub);
    return fusion_name(f, tmp, buf);
}

fb_status route_mlp_declare(route_mlp *r, const fusion *f, fb_layout *P, fb_layout *A, const char *name,
                            int K, int dropout_layer, float temperature) {
    const fusion_config *c = &f->c;
    *r = (route_mlp){.B = c->B, .D = c->D, .K = K, .temperature = temperature, .owner = f,
                     .dropout = dropout_layer ? c->dropout : 0.0f};
    const int B = c->B, D = c->D;
    char sub[FB_NAME_MAX], full[FB_NAME_MAX];
    snprintf(sub, sizeof sub, "%s.0", name);
    if (linear_declare(P, fusion_name(f, sub, full), 2 * D, D, 1, &r->l1, &r->dl1) < 0) return FB_ERR_SHAPE;
    snprintf(sub, sizeof sub, "%s.%d", name, dropout_layer ? 3 : 2);
    if (linear_declare(P, fusion_name(f, sub, full), D, K, 1, &r->l2, &r->dl2) < 0) return FB_ERR_SHAPE;
    act_name(f, name, full);
    if (fb_layout_add(A, full, "pre", 2, (int[]){B, D}, FB_INIT_ZERO, 0, &r->pre, NULL) < 0 ||
        fb_layout_add(A, full, "h", 2, (int[]){B, D}, FB_INIT_ZERO, 0, &r->h, &r->dh) < 0 ||
        fb_layout_add(A, full, "logits", 2, (int[]){B, K}, FB_INIT_ZERO, 0, &r->z, &r->dz) < 0 ||
        fb_layout_add(A, full, "p", 2, (int[]){B, K}, FB_INIT_ZERO, 0, &r->p, &r->dp) < 0)
        return FB_ERR_SHAPE;
    return FB_OK;
}

static int route_mlp_drops(const route_mlp *r, int training) { return training && r->dropout > 0.0f; }

fb_status route_mlp_forward(route_mlp *r, const float *a, const float *b, int training, const fb_rng_key *key) {
    const int B = r->owner->c.B < r->B ? r->owner->c.B : r->B, D = r->D, K = r->K;
    const size_t n = (size_t)B * D;
    FB_TRY(linear_concat_forward(r->pre, a, D, b, D, &r->l1, B, D));   // [a; b] never formed
    FB_TRY(activation_forward(FB_ACT_GELU, r->h, r->pre, n));
    if (route_mlp_drops(r, training)) FB_TRY(dropout_rows_forward(r->h, r->h, (size_t)B, (size_t)D, r->dropout, key, 1));
    FB_TRY(linear_forward(r->z, r->h, &r->l2, B, D, K));
    const float *logits = r->z;
    if (r->temperature != 1.0f) {   // B*K values: a plain loop
        const float t = r->temperature;
        for (size_t i = 0; i < (size_t)B * K; i++) r->p[i] = r->z[i] / t;
        logits = r->p;
    }
    return softmax_forward(r->p, logits, B, K);
}

fb_status route_mlp_backward(route_mlp *r, float *da, float *db, const float *a, const float *b,
                             int training, const fb_rng_key *key) {
    const int B = r->owner->c.B < r->B ? r->owner->c.B : r->B, D = r->D, K = r->K;
    const size_t n = (size_t)B * D, nk = (size_t)B * K;
    memset(r->dz, 0, nk * sizeof(float));
    FB_TRY(softmax_backward(r->dz, r->dp, r->p, B, K));
    if (r->temperature != 1.0f)
        for (size_t i = 0; i < nk; i++) r->dz[i] /= r->temperature;
    memset(r->dh, 0, n * sizeof(float));
    FB_TRY(linear_backward(r->dh, &r->dl2, r->dz, r->h, &r->l2, B, D, K));
    // Dropout is linear: its backward is the same masked scaling, regenerated from the key.
    if (route_mlp_drops(r, training)) FB_TRY(dropout_rows_forward(r->dh, r->dh, (size_t)B, (size_t)D, r->dropout, key, 1));
    float *restrict dh = r->dh;
    const float *restrict pre = r->pre;
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) dh[i] *= fb_gelu_grad(pre[i]);      // now ∂L/∂pre
    return linear_concat_backward(da, db, &r->dl1, r->dh, a, D, b, D, &r->l1, B, D);
}

double route_mlp_flops(const route_mlp *r, int backward, int training) {
    const int B = r->owner->c.B < r->B ? r->owner->c.B : r->B, D = r->D, K = r->K;
    const size_t n = (size_t)B * D;
    const double drop = route_mlp_drops(r, training) ? (double)n : 0.0;
    if (!backward)
        return linear_flops_forward(B, 2 * D, D, 1) + activation_flops_forward(FB_ACT_GELU, n) + drop +
               linear_flops_forward(B, D, K, 1) + softmax_flops_forward(B, K);
    return softmax_flops_backward(B, K) + linear_flops_backward(B, D, K, 1, 1) + drop +
           activation_flops_backward(FB_ACT_GELU, n) + linear_flops_backward(B, 2 * D, D, 1, 1);
}

fb_status fuse_block_declare(fuse_block *k, const fusion *f, fb_layout *P, fb_layout *A, const char *norm_soft,
                             const char *norm_gated, int residual, int ffn_inner_dropout) {
    const fusion_config *c = &f->c;
    const char *m = f->method->name;
    const int B = c->B, D = c->D, F = c->F ? c->F : 4 * D;
    FB_REQUIRE(c->H > 0 && D % c->H == 0, FB_ERR_CONFIG, "%s: heads H=%d must divide D=%d", m, c->H, D);
    FB_REQUIRE(F > 0, FB_ERR_CONFIG, "%s: FFN width F=%d must be > 0", m, F);
    *k = (fuse_block){.B = B, .D = D, .F = F, .residual = residual, .ffn_inner_dropout = ffn_inner_dropout,
                      .dropout = c->dropout};
    k->mc = (mha_config){.D = D, .Ek = D, .Ev = D, .H = c->H, .dropout = c->dropout};
    k->fc = (ffn_config){.D = D, .F = F, .activation = FB_ACT_GELU, .dropout = ffn_inner_dropout ? c->dropout : 0.0f};
    char name[FB_NAME_MAX], acts[FB_NAME_MAX], sub[FB_NAME_MAX];
    if (linear_declare(P, fusion_name(f, "gate.0", name), 2 * D, D, 1, &k->gate, &k->dgate) < 0) return FB_ERR_SHAPE;
    if (mha_declare(P, fusion_name(f, "cross_attn", name), &k->mc, &k->mha, &k->dmha) < 0) return FB_ERR_SHAPE;
    if (norm_soft && layernorm_declare(P, fusion_name(f, norm_soft, name), D, &k->ln[0], &k->dln[0]) < 0)
        return FB_ERR_SHAPE;
    if (layernorm_declare(P, fusion_name(f, norm_gated, name), D, &k->ln[1], &k->dln[1]) < 0) return FB_ERR_SHAPE;
    if (ffn_declare(P, fusion_name(f, "ffn", name), &k->fc, &k->ffn, &k->dffn) < 0) return FB_ERR_SHAPE;

    if (mha_declare_acts(A, act_name(f, "both.attn", sub), &k->mc, B, 2, 2, &k->ma, &k->dma) < 0) return FB_ERR_SHAPE;
    if (ffn_declare_acts(A, act_name(f, "both.ffn", sub), &k->fc, B, &k->fa, &k->dfa) < 0) return FB_ERR_SHAPE;
    act_name(f, "both", acts);
    const int *bd = (int[]){B, D};
    if (fb_layout_add(A, acts, "x", 3, (int[]){B, 2, D}, FB_INIT_ZERO, 0, &k->x, &k->dx) < 0 ||
        fb_layout_add(A, acts, "att", 3, (int[]){B, 2, D}, FB_INIT_ZERO, 0, &k->att, &k->datt) < 0 ||
        fb_layout_add(A, acts, "g", 2, bd, FB_INIT_ZERO, 0, &k->g, &k->dg) < 0 ||
        fb_layout_add(A, acts, "s", 2, bd, FB_INIT_ZERO, 0, &k->s, &k->ds) < 0 ||
        fb_layout_add(A, acts, "y", 2, bd, FB_INIT_ZERO, 0, &k->y, &k->dy) < 0 ||
        fb_layout_add(A, acts, "mean", 1, (int[]){B}, FB_INIT_ZERO, 0, &k->mean, NULL) < 0 ||
        fb_layout_add(A, acts, "rstd", 1, (int[]){B}, FB_INIT_ZERO, 0, &k->rstd, NULL) < 0 ||
        fb_layout_add(A, acts, "z", 2, bd, FB_INIT_ZERO, 0, &k->z, &k->dz) < 0)
        return FB_ERR_SHAPE;
    return FB_OK;
}

static int fuse_block_drops(const fuse_block *k, int training) { return training && k->dropout > 0.0f; }

// LayerNorm forward / backward of the soft rows with ln[0] and the gated rows with ln[1].
static fb_status fuse_block_ln_forward(fuse_block *k) {
    const int D = k->D, ns = k->n_soft;
    if (ns) FB_TRY(layernorm_forward(k->y, k->mean, k->rstd, k->s, &k->ln[0], ns, D, ROUTE_LN_EPS));
    if (k->n_gated)
        FB_TRY(layernorm_forward(k->y + (size_t)ns * D, k->mean + ns, k->rstd + ns, k->s + (size_t)ns * D,
                                 &k->ln[1], k->n_gated, D, ROUTE_LN_EPS));
    return FB_OK;
}

static fb_status fuse_block_ln_backward(fuse_block *k) {
    const int D = k->D, ns = k->n_soft;
    memset(k->ds, 0, (size_t)(ns + k->n_gated) * D * sizeof(float));
    if (ns) FB_TRY(layernorm_backward(k->ds, &k->dln[0], k->dy, k->s, k->mean, k->rstd, &k->ln[0], ns, D));
    if (k->n_gated) {
        const size_t o = (size_t)ns * D;
        FB_TRY(layernorm_backward(k->ds + o, &k->dln[1], k->dy + o, k->s + o, k->mean + ns, k->rstd + ns,
                                  &k->ln[1], k->n_gated, D));
    }
    return FB_OK;
}

// The keys of the gathered calls: list position i draws as sample rows[i] (its global row
// row0 + rows[i]), so a sample's masks do not depend on which other samples share its route.
static void fuse_block_keys(fb_rng_key out[3], const fb_rng_key keys[3], const int *rows) {
    for (int s = 0; s < 3; s++) {
        out[s] = keys[s];
        out[s].row_map = rows;
    }
}

fb_status fuse_block_forward(fuse_block *k, float *out, const float *a, const float *b, const int *rows,
                             int n_soft, int n_gated, const float *w, int training, const fb_rng_key keys[3]) {
    const int D = k->D, D2 = 2 * D, n = n_soft + n_gated;
    k->rows = rows;
    k->n_soft = n_soft;
    k->n_gated = n_gated;
    if (n == 0) return FB_OK;
    FB_REQUIRE(n_soft == 0 || w, FB_ERR_INTERNAL, "fuse_block: soft rows without weights");
    fb_rng_key gk[3];
    fuse_block_keys(gk, keys, rows);
    const size_t nd = (size_t)n * D;
    float *restrict x = k->x;
    #pragma omp parallel for schedule(static) if (2 * nd > FB_OMP_MIN_WORK)
    for (int i = 0; i < n; i++) {
        memcpy(x + (size_t)i * D2, a + (size_t)rows[i] * D, (size_t)D * sizeof(float));
        memcpy(x + (size_t)i * D2 + D, b + (size_t)rows[i] * D, (size_t)D * sizeof(float));
    }
    FB_TRY(mha_forward(k->att, NULL, &k->ma, x, x, x, NULL, &k->mha, &k->mc, n, 2, 2, D, D, training, &gk[0]));
    if (n_gated)   // x's rows are the concatenations [a_i; b_i]
        FB_TRY(linear_forward(k->g + (size_t)n_soft * D, x + (size_t)n_soft * D2, &k->gate, n_gated, D2, D));
    // One pass: the base (weighted sum or σ + blend) plus the mean of the two attention tokens.
    float *restrict g = k->g, *restrict s = k->s;
    const float *restrict att = k->att;
    #pragma omp parallel for schedule(static) if (nd > FB_OMP_MIN_WORK)
    for (int i = 0; i < n; i++) {
        const float *xa = x + (size_t)i * D2, *xb = xa + D, *t0 = att + (size_t)i * D2, *t1 = t0 + D;
        float *si = s + (size_t)i * D;
        if (i < n_soft) {
            const float wa = w[2 * (size_t)rows[i]], wb = w[2 * (size_t)rows[i] + 1];
            #pragma omp simd
            for (int j = 0; j < D; j++) si[j] = wa * xa[j] + wb * xb[j] + 0.5f * (t0[j] + t1[j]);
        } else {
            float *gi = g + (size_t)i * D;
            #pragma omp simd
            for (int j = 0; j < D; j++) {
                const float gv = fb_sigmoid(gi[j]);
                gi[j] = gv;
                si[j] = xb[j] + gv * (xa[j] - xb[j]) + 0.5f * (t0[j] + t1[j]);
            }
        }
    }
    FB_TRY(fuse_block_ln_forward(k));
    FB_TRY(ffn_forward(k->z, &k->fa, k->y, &k->ffn, &k->fc, n, training, &gk[1]));
    if (fuse_block_drops(k, training)) FB_TRY(dropout_rows_forward(k->z, k->z, (size_t)n, (size_t)D, k->dropout, &gk[2], 1));
    const float *restrict y = k->y, *restrict z = k->z;
    const int residual = k->residual;
    #pragma omp parallel for schedule(static) if (nd > FB_OMP_MIN_WORK)
    for (int i = 0; i < n; i++) {
        float *o = out + (size_t)rows[i] * D;
        const float *yi = y + (size_t)i * D, *zi = z + (size_t)i * D;
        if (residual) {
            #pragma omp simd
            for (int j = 0; j < D; j++) o[j] = yi[j] + zi[j];
        } else {
            memcpy(o, zi, (size_t)D * sizeof(float));
        }
    }
    return FB_OK;
}

fb_status fuse_block_backward(fuse_block *k, float *da, float *db, float *dw, const float *dout, const float *a,
                              const float *b, const float *w, int training, const fb_rng_key keys[3]) {
    (void)a; (void)b;   // the gathered copies in x are read instead
    const int D = k->D, D2 = 2 * D, n_soft = k->n_soft, n_gated = k->n_gated, n = n_soft + n_gated;
    const int *rows = k->rows;
    if (n == 0) return FB_OK;
    FB_REQUIRE(n_soft == 0 || (w && dw), FB_ERR_INTERNAL, "fuse_block: soft rows without weights");
    const size_t nd = (size_t)n * D;
    fb_rng_key gk[3];
    fuse_block_keys(gk, keys, rows);
    float *restrict dz = k->dz, *restrict dy = k->dy;
    const int residual = k->residual;
    #pragma omp parallel for schedule(static) if (nd > FB_OMP_MIN_WORK)
    for (int i = 0; i < n; i++) {
        const float *src = dout + (size_t)rows[i] * D;
        memcpy(dz + (size_t)i * D, src, (size_t)D * sizeof(float));
        if (residual) memcpy(dy + (size_t)i * D, src, (size_t)D * sizeof(float));
        else memset(dy + (size_t)i * D, 0, (size_t)D * sizeof(float));
    }
    if (fuse_block_drops(k, training)) FB_TRY(dropout_rows_forward(dz, dz, (size_t)n, (size_t)D, k->dropout, &gk[2], 1));
    FB_TRY(ffn_backward(dy, &k->dffn, &k->dfa, dz, k->y, &k->fa, &k->ffn, &k->fc, n, training, &gk[1]));
    FB_TRY(fuse_block_ln_backward(k));
    // One pass: gradients of the two attention tokens, of the gate's logits, the direct gradients
    // of a and b (into dx, which the gate and attention backwards then accumulate into), and dw.
    const float *restrict x = k->x, *restrict ds = k->ds, *restrict g = k->g;
    float *restrict dx = k->dx, *restrict datt = k->datt, *restrict dg = k->dg;
    #pragma omp parallel for schedule(static) if (nd > FB_OMP_MIN_WORK)
    for (int i = 0; i < n; i++) {
        const float *xa = x + (size_t)i * D2, *xb = xa + D, *dsi = ds + (size_t)i * D;
        float *dxa = dx + (size_t)i * D2, *dxb = dxa + D, *d0 = datt + (size_t)i * D2, *d1 = d0 + D;
        if (i < n_soft) {
            const size_t r = (size_t)rows[i];
            const float wa = w[2 * r], wb = w[2 * r + 1];
            float swa = 0.0f, swb = 0.0f;
            #pragma omp simd reduction(+ : swa, swb)
            for (int j = 0; j < D; j++) {
                const float d = dsi[j];
                d0[j] = d1[j] = 0.5f * d;
                dxa[j] = wa * d;
                dxb[j] = wb * d;
                swa += d * xa[j];
                swb += d * xb[j];
            }
            dw[2 * r] = swa;
            dw[2 * r + 1] = swb;
        } else {
            const float *gi = g + (size_t)i * D;
            float *dgi = dg + (size_t)i * D;
            #pragma omp simd
            for (int j = 0; j < D; j++) {
                const float d = dsi[j], gv = gi[j];
                d0[j] = d1[j] = 0.5f * d;
                dgi[j] = d * (xa[j] - xb[j]) * gv * (1.0f - gv);   // through σ to the logits
                dxa[j] = gv * d;
                dxb[j] = (1.0f - gv) * d;
            }
        }
    }
    if (n_gated)
        FB_TRY(linear_backward(dx + (size_t)n_soft * D2, &k->dgate, dg + (size_t)n_soft * D, x + (size_t)n_soft * D2,
                               &k->gate, n_gated, D2, D));
    FB_TRY(mha_backward(dx, dx, dx, &k->dmha, &k->dma, datt, x, x, x, &k->ma, &k->mha, &k->mc, n, 2, 2, D, D,
                        training, &gk[0]));
    if (!da && !db) return FB_OK;
    #pragma omp parallel for schedule(static) if (2 * nd > FB_OMP_MIN_WORK)
    for (int i = 0; i < n; i++) {
        const float *dxa = dx + (size_t)i * D2, *dxb = dxa + D;
        const size_t o = (size_t)rows[i] * D;
        if (da) {
            float *d = da + o;
            #pragma omp simd
            for (int j = 0; j < D; j++) d[j] += dxa[j];
        }
        if (db) {
            float *d = db + o;
            #pragma omp simd
            for (int j = 0; j < D; j++) d[j] += dxb[j];
        }
    }
    return FB_OK;
}

double fuse_block_flops(const fuse_block *k, int n_soft, int n_gated, int backward, int training) {
    const int D = k->D, n = n_soft + n_gated;
    if (n == 0) return 0.0;
    const double nd = (double)n * D, drop = fuse_block_drops(k, training) ? nd : 0.0;
    const double res = k->residual ? nd : 0.0;
    if (!backward)   // per element: soft 6 (two products, three adds, half), gated 9 (σ 3, blend 3, mean 3)
        return mha_flops_forward(&k->mc, n, 2, 2) + linear_flops_forward(n_gated, 2 * D, D, 1) +
               6.0 * n_soft * D + 9.0 * n_gated * D + layernorm_flops_forward(n, D) +
               ffn_flops_forward(&k->fc, n) + drop + res;
    // per element: soft 7 (half, dxa, dxb, two multiply-adds), gated 9 (half, logit 5, dxa, dxb 2); scatter 2
    return drop + ffn_flops_backward(&k->fc, n, 1) + layernorm_flops_backward(n, D) + 7.0 * n_soft * D +
           9.0 * n_gated * D + linear_flops_backward(n_gated, 2 * D, D, 1, 1) + mha_flops_backward(&k->mc, n, 2, 2, 1) +
           2.0 * nd;
}
