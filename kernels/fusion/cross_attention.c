// cross_attention (002 "cross_attention", models/fusion/cross_attention.py, CrossAttentionFusion):
// attention pooling over the two modality vectors with a mean query, then a residual FFN.
//
//   X   = [a, b]                          (B, 2, D) the two modality tokens
//   q   = LN_q((a + b) / 2)               (B, 1, D) norm1, LayerNorm(D) eps 1e-5
//   z   = MHA(q, X, X)                    (B, 1, D) nn.MultiheadAttention(D, H, dropout)
//   out = z + dropout(FFN(LN_f(z)))       norm2; FFN = Linear(D → F), GELU, Linear(F → D)
//
// a (B, D), b (B, D) -> out (B, D). Diagnostics: head-averaged attention weights (B, 2) (column 0:
// weight on a, column 1: on b). The document and the project agree; there is no variant.
// Choices (the project's code per ../shared/SOURCE-SYSTEMS.md, 002, where the document is silent):
//   - F = c->F, or 4D when 0 (the project's D → 4D → D); GELU exact (nn.GELU's default); the FFN's
//     dropout is where the project has it, after the second Linear (nn.Sequential(Linear, GELU,
//     Linear, Dropout)), so the FFN kernel runs with dropout 0 and the dropout is applied to its
//     output; c->dropout (0.1) there and on the attention probabilities; rng sites 0 (attention)
//     and 1 (FFN output) of this fusion point, both indexed by the sample's global row.
//   - H = c->H heads (the project's default 8); E must equal D (the tokens share one width).
//   - torch's initialisation: MHA with packed xavier in_proj (bound √(6/4D)), zero biases,
//     out_proj and the FFN Linears nn.Linear's default.
// Parameters: norm1.{weight,bias}, cross_attn.{q,k,v}_proj_{weight,bias},
// cross_attn.out_proj.{weight,bias}, norm2.{weight,bias}, ffn.linear1.{weight,bias},
// ffn.linear2.{weight,bias}.
// Passes. Forward: one pass stacking X and forming the mean (the stacked copy is the MHA's
// key/value input), LN_q, MHA (T = 2: the small-head loop path), LN_f, FFN (2 SGEMMs + GELU) into
// out, one pass adding z (plus the in-place dropout in training). Backward: the FFN output
// gradient (dout, or its masked copy), FFN backward, LN_f backward onto dz = dout, MHA backward,
// LN_q backward, then ONE pass adding both token gradients and half the mean's to da, db.
#include "fusion.h"
#include <stdio.h>
#include <string.h>
#include "../attention.h"
#include "../dropout.h"
#include "../ffn.h"
#include "../layernorm.h"

#define CROSS_ATTENTION_LN_EPS 1e-5f

enum { SITE_ATTN, SITE_FFN_OUT };

typedef struct {
    mha_config mc;
    ffn_config fc;
    mha_params attn, dattn;
    ffn_params ffn, dffn;
    layernorm_params norm1, dnorm1, norm2, dnorm2;
    mha_acts ma, dma;
    ffn_acts fa, dfa;
    float *X, *dX;           // (B, 2, D) stacked tokens [a, b]
    float *m, *dm;           // (B, D) (a + b) / 2; dm doubles as scratch for the FFN-output gradient
    float *qn, *dqn;         // (B, D) LN_q(m), the query
    float *z, *dz;           // (B, D) MHA output
    float *zn, *dzn;         // (B, D) LN_f(z), the FFN input
    float *mean1, *rstd1, *mean2, *rstd2;   // (B)
    float *w;                // (B, 2) head-averaged attention weights
} cross_attention_self;

static fb_status cross_attention_create(fusion *f, fb_layout *P, fb_layout *A) {
    fusion_config *c = &f->c;
    FB_REQUIRE(c->E == c->D, FB_ERR_SHAPE, "cross_attention: widths differ (D=%d, E=%d); the two tokens need equal widths",
               c->D, c->E);
    FB_REQUIRE(c->H > 0 && c->D % c->H == 0, FB_ERR_CONFIG, "cross_attention: H=%d heads must divide D=%d", c->H, c->D);
    if (c->F == 0) c->F = 4 * c->D;
    FB_REQUIRE(c->F > 0, FB_ERR_CONFIG, "cross_attention: FFN width F=%d must be > 0", c->F);
    FB_TRY(fusion_alloc_self(f, sizeof(cross_attention_self)));
    cross_attention_self *s = f->self;
    const int B = c->B, D = c->D;
    s->mc = (mha_config){.D = D, .Ek = D, .Ev = D, .H = c->H, .dropout = c->dropout};
    s->fc = (ffn_config){.D = D, .F = c->F, .activation = FB_ACT_GELU, .dropout = 0.0f};
    char name[FB_NAME_MAX], pre[FB_NAME_MAX], sub[FB_NAME_MAX + 16];
    if (layernorm_declare(P, fusion_name(f, "norm1", name), D, &s->norm1, &s->dnorm1) < 0 ||
        mha_declare(P, fusion_name(f, "cross_attn", name), &s->mc, &s->attn, &s->dattn) < 0 ||
        layernorm_declare(P, fusion_name(f, "norm2", name), D, &s->norm2, &s->dnorm2) < 0 ||
        ffn_declare(P, fusion_name(f, "ffn", name), &s->fc, &s->ffn, &s->dffn) < 0)
        return FB_ERR_SHAPE;

    fusion_name(f, "cross_attention", pre);
    snprintf(sub, sizeof sub, "%s.attn", pre);
    if (mha_declare_acts(A, sub, &s->mc, B, 1, 2, &s->ma, &s->dma) < 0) return FB_ERR_SHAPE;
    snprintf(sub, sizeof sub, "%s.ffn", pre);
    if (ffn_declare_acts(A, sub, &s->fc, B, &s->fa, &s->dfa) < 0) return FB_ERR_SHAPE;
    const int *bd = (int[]){B, D}, *b1 = (int[]){B};
    if (fb_layout_add(A, pre, "X", 3, (int[]){B, 2, D}, FB_INIT_ZERO, 0, &s->X, &s->dX) < 0 ||
        fb_layout_add(A, pre, "m", 2, bd, FB_INIT_ZERO, 0, &s->m, &s->dm) < 0 ||
        fb_layout_add(A, pre, "qn", 2, bd, FB_INIT_ZERO, 0, &s->qn, &s->dqn) < 0 ||
        fb_layout_add(A, pre, "z", 2, bd, FB_INIT_ZERO, 0, &s->z, &s->dz) < 0 ||
        fb_layout_add(A, pre, "zn", 2, bd, FB_INIT_ZERO, 0, &s->zn, &s->dzn) < 0 ||
        fb_layout_add(A, pre, "mean1", 1, b1, FB_INIT_ZERO, 0, &s->mean1, NULL) < 0 ||
        fb_layout_add(A, pre, "rstd1", 1, b1, FB_INIT_ZERO, 0, &s->rstd1, NULL) < 0 ||
        fb_layout_add(A, pre, "mean2", 1, b1, FB_INIT_ZERO, 0, &s->mean2, NULL) < 0 ||
        fb_layout_add(A, pre, "rstd2", 1, b1, FB_INIT_ZERO, 0, &s->rstd2, NULL) < 0 ||
        fb_layout_add(A, pre, "w", 2, (int[]){B, 2}, FB_INIT_ZERO, 0, &s->w, NULL) < 0)
        return FB_ERR_SHAPE;
    return FB_OK;
}

static fb_status cross_attention_forward(fusion *f, float *out, const float *a, const float *b) {
    cross_attention_self *s = f->self;
    const fusion_config *c = &f->c;
    const int B = c->B, D = c->D;
    const size_t n = (size_t)B * D;
    const fb_rng_key ka = fusion_rng(f, SITE_ATTN), kf = fusion_rng(f, SITE_FFN_OUT);
    float *restrict X = s->X, *restrict m = s->m;
    #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
    for (int i = 0; i < B; i++) {
        const float *ai = a + (size_t)i * D, *bi = b + (size_t)i * D;
        float *x0 = X + (size_t)i * 2 * D, *x1 = x0 + D, *mi = m + (size_t)i * D;
        #pragma omp simd
        for (int d = 0; d < D; d++) {
            x0[d] = ai[d];
            x1[d] = bi[d];
            mi[d] = (ai[d] + bi[d]) * 0.5f;
        }
    }
    FB_TRY(layernorm_forward(s->qn, s->mean1, s->rstd1, m, &s->norm1, B, D, CROSS_ATTENTION_LN_EPS));
    FB_TRY(mha_forward(s->z, s->w, &s->ma, s->qn, X, X, NULL, &s->attn, &s->mc, B, 1, 2, D, D, c->training, &ka));
    FB_TRY(layernorm_forward(s->zn, s->mean2, s->rstd2, s->z, &s->norm2, B, D, CROSS_ATTENTION_LN_EPS));
    FB_TRY(ffn_forward(out, &s->fa, s->zn, &s->ffn, &s->fc, B, c->training, NULL));
    if (c->training && c->dropout > 0.0f) FB_TRY(dropout_rows_forward(out, out, (size_t)B, (size_t)D, c->dropout, &kf, 1));
    const float *restrict z = s->z;
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) out[i] += z[i];
    f->diag.attention = s->w;
    f->diag.att_rows = B;
    f->diag.att_cols = 2;
    return FB_OK;
}

static fb_status cross_attention_backward(fusion *f, float *da, float *db, const float *dout, const float *a,
                                          const float *b) {
    (void)a; (void)b;
    cross_attention_self *s = f->self;
    const fusion_config *c = &f->c;
    const int B = c->B, D = c->D;
    const size_t n = (size_t)B * D, bytes = n * sizeof(float);
    const fb_rng_key ka = fusion_rng(f, SITE_ATTN), kf = fusion_rng(f, SITE_FFN_OUT);
    // Gradient of the FFN output: dout through the dropout mask (dm is free until LN_q's backward).
    const float *dff = dout;
    if (c->training && c->dropout > 0.0f) {
        FB_TRY(dropout_rows_forward(s->dm, dout, (size_t)B, (size_t)D, c->dropout, &kf, 1));
        dff = s->dm;
    }
    memset(s->dzn, 0, bytes);
    FB_TRY(ffn_backward(s->dzn, &s->dffn, &s->dfa, dff, s->zn, &s->fa, &s->ffn, &s->fc, B, c->training, NULL));
    memcpy(s->dz, dout, bytes);                                   // the residual branch
    FB_TRY(layernorm_backward(s->dz, &s->dnorm2, s->dzn, s->z, s->mean2, s->rstd2, &s->norm2, B, D));
    const int dinp = da || db;
    memset(s->dqn, 0, bytes);
    if (dinp) memset(s->dX, 0, 2 * bytes);
    FB_TRY(mha_backward(s->dqn, dinp ? s->dX : NULL, dinp ? s->dX : NULL, &s->dattn, &s->dma, s->dz, s->qn, s->X,
                        s->X, &s->ma, &s->attn, &s->mc, B, 1, 2, D, D, c->training, &ka));
    if (dinp) memset(s->dm, 0, bytes);
    FB_TRY(layernorm_backward(dinp ? s->dm : NULL, &s->dnorm1, s->dqn, s->m, s->mean1, s->rstd1, &s->norm1, B, D));
    if (!dinp) return FB_OK;
    const float *restrict dX = s->dX, *restrict dm = s->dm;
    #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
    for (int i = 0; i < B; i++) {
        const float *dx0 = dX + (size_t)i * 2 * D, *dx1 = dx0 + D, *dmi = dm + (size_t)i * D;
        float *dai = da ? da + (size_t)i * D : NULL, *dbi = db ? db + (size_t)i * D : NULL;
        if (dai) {
            #pragma omp simd
            for (int d = 0; d < D; d++) dai[d] += dx0[d] + 0.5f * dmi[d];
        }
        if (dbi) {
            #pragma omp simd
            for (int d = 0; d < D; d++) dbi[d] += dx1[d] + 0.5f * dmi[d];
        }
    }
    return FB_OK;
}

static double cross_attention_flops(const fusion *f, int backward) {
    const cross_attention_self *s = f->self;
    const fusion_config *c = &f->c;
    const int B = c->B, D = c->D;
    const double n = (double)B * D;
    const int drop = c->training && c->dropout > 0.0f;
    if (!backward)
        return 2 * n +                                            // mean
               layernorm_flops_forward(B, D) + mha_flops_forward(&s->mc, B, 1, 2) + 2.0 * B * c->H +
               layernorm_flops_forward(B, D) + ffn_flops_forward(&s->fc, B) + (1 + drop) * n;
    return drop * n + ffn_flops_backward(&s->fc, B, 1) + layernorm_flops_backward(B, D) +
           mha_flops_backward(&s->mc, B, 1, 2, 1) + layernorm_flops_backward(B, D) + 6 * n;
}

const fusion_method fusion_cross_attention = {
    .name = "cross_attention", .source = "002", .kind = FUSION_VECTOR,
    .variants = {"default", NULL},
    .formula = "X = [a, b]; q = LN(mean(a, b)); z = MHA(q, X, X);  out = z + dropout(FFN(LN(z)))",
    .create = cross_attention_create, .forward = cross_attention_forward, .backward = cross_attention_backward,
    .flops = cross_attention_flops,
};
