// transformer_concat (002 "transformer_concat", models/fusion/transformer_concat.py,
// TransformerConcatFusion): the two modality vectors as a 2-token sequence through a transformer
// encoder, then the mean of the two output tokens.
//
//   X_0 = [a, b]                              (B, 2, D)
//   X_l = EncoderLayer_l(X_{l-1}), l = 1..L   nn.TransformerEncoderLayer(D, H, F, dropout, "gelu",
//                                             batch_first=True): post-norm (torch's default)
//   out = (X_L[:, 0] + X_L[:, 1]) / 2         -> out (B, D)
//
// Variants:
//   "default"     the document's form: the parameter modality_token (1, 2, D) exists but the
//                 inputs overwrite it (`tokens[:, 0] = img; tokens[:, 1] = txt`), so it never
//                 reaches the output and its gradient stays exactly 0 (a dead parameter that
//                 profiling should be able to flag).
//   "with_token"  the token actually used: X_0 = [a, b] + modality_token (a learned per-position
//                 modality embedding), the evident intent of the parameter.
// No diagnostics (the encoder's self-attention weights are not exposed).
// Choices (the project's code per ../shared/SOURCE-SYSTEMS.md, 002, where the document is silent):
//   - L = c->layers, or 4 when 0 (the project's default; its teacher passes 2). At most 63: each
//     layer has 4 dropout sites (encoder_layer.h) and a fusion point owns FUSION_RNG_SITES (256);
//     layer l uses sites 4l .. 4l + 3. The layers take the B samples as their rows with
//     c.rng.row0 (their FFN the 2 token rows of each at row0 · 2), so masks follow the global row.
//   - H = c->H heads (the project's 8), F = c->F or 4D, GELU (exact), dropout c->dropout (0.1) at
//     all four places of each layer, LayerNorm eps 1e-5; E must equal D.
//   - modality_token initialised N(0, 1) (the project's torch.randn(1, 2, dim)); encoder layers
//     torch's initialisation (packed xavier in_proj, zero biases, nn.Linear defaults).
// Parameters: modality_token, transformer.layers.<l>.{self_attn.*, linear1.*, linear2.*, norm1.*,
// norm2.*} (torch's nn.TransformerEncoder names, in_proj split as in kernels/attention.h).
// Passes. Forward: one pass stacking X_0 (adding the token in with_token), L encoder layers, one
// mean pass. Backward: one pass writing dout/2 to both tokens, L encoder-layer backwards (layer 0
// skips its input gradient when neither da, db nor the token needs it), then ONE pass adding the
// token gradients to da, db and (with_token) summing them over the batch into the token gradient
// (each thread owns columns, rows in order: thread-count independent).
#include "fusion.h"
#include <stdio.h>
#include <string.h>
#include "../encoder_layer.h"

#define TRANSFORMER_CONCAT_MAX_LAYERS 63   // 4 sites a layer within FUSION_RNG_SITES

typedef struct {
    encoder_layer_config cfg;          // its own dropout sites
    encoder_layer_params p, g;
    encoder_layer_acts a, da;
    float *y, *dy;                     // (B, 2, D) layer output and its gradient
} tc_layer;

typedef struct {
    int L, with_token;
    float *tok, *dtok;                 // (1, 2, D) modality_token and its gradient
    float *x0, *dx0;                   // (B, 2, D) input tokens and their gradient
    tc_layer layer[TRANSFORMER_CONCAT_MAX_LAYERS];
} transformer_concat_self;

static fb_status transformer_concat_create(fusion *f, fb_layout *P, fb_layout *A) {
    fusion_config *c = &f->c;
    FB_REQUIRE(c->E == c->D, FB_ERR_SHAPE,
               "transformer_concat: widths differ (D=%d, E=%d); the two tokens need equal widths", c->D, c->E);
    if (c->layers == 0) c->layers = 4;
    if (c->F == 0) c->F = 4 * c->D;
    FB_REQUIRE(c->layers > 0 && c->layers <= TRANSFORMER_CONCAT_MAX_LAYERS, FB_ERR_CONFIG,
               "transformer_concat: layers=%d outside 1..%d (4 dropout sites per layer, 256 per fusion point)",
               c->layers, TRANSFORMER_CONCAT_MAX_LAYERS);
    FB_REQUIRE(c->H > 0 && c->D % c->H == 0, FB_ERR_CONFIG, "transformer_concat: H=%d heads must divide D=%d",
               c->H, c->D);
    FB_REQUIRE(c->F > 0, FB_ERR_CONFIG, "transformer_concat: FFN width F=%d must be > 0", c->F);
    FB_TRY(fusion_alloc_self(f, sizeof(transformer_concat_self)));
    transformer_concat_self *s = f->self;
    s->L = c->layers;
    s->with_token = c->variant == 1;
    const int B = c->B, D = c->D;
    if (fb_layout_add(P, c->prefix ? c->prefix : "", "modality_token", 3, (int[]){1, 2, D}, FB_INIT_NORMAL, 1.0f,
                      &s->tok, &s->dtok) < 0)
        return FB_ERR_SHAPE;
    char name[FB_NAME_MAX], pre[FB_NAME_MAX], sub[FB_NAME_MAX + 32];
    fusion_name(f, "transformer_concat", pre);
    if (fb_layout_add(A, pre, "x0", 3, (int[]){B, 2, D}, FB_INIT_ZERO, 0, &s->x0, &s->dx0) < 0) return FB_ERR_SHAPE;
    for (int l = 0; l < s->L; l++) {
        tc_layer *y = &s->layer[l];
        y->cfg = (encoder_layer_config){.D = D, .H = c->H, .F = c->F, .activation = FB_ACT_GELU,
                                        .dropout = c->dropout, .norm_first = 0, .eps = 1e-5f,
                                        .site = fusion_rng(f, (uint32_t)(ENC_LAYER_SITES * l)).site};
        snprintf(sub, sizeof sub, "transformer.layers.%d", l);
        if (encoder_layer_declare(P, fusion_name(f, sub, name), &y->cfg, &y->p, &y->g) < 0) return FB_ERR_SHAPE;
        snprintf(sub, sizeof sub, "%s.layers.%d", pre, l);
        if (encoder_layer_declare_acts(A, sub, &y->cfg, B, 2, &y->a, &y->da) < 0 ||
            fb_layout_add(A, sub, "y", 3, (int[]){B, 2, D}, FB_INIT_ZERO, 0, &y->y, &y->dy) < 0)
            return FB_ERR_SHAPE;
    }
    return FB_OK;
}

static fb_status transformer_concat_forward(fusion *f, float *out, const float *a, const float *b) {
    transformer_concat_self *s = f->self;
    const fusion_config *c = &f->c;
    const int B = c->B, D = c->D;
    const size_t n = (size_t)B * D;
    const float *tok0 = s->tok, *tok1 = s->tok + D;
    const int wt = s->with_token;
    float *restrict x0 = s->x0;
    #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
    for (int i = 0; i < B; i++) {
        const float *ai = a + (size_t)i * D, *bi = b + (size_t)i * D;
        float *t0 = x0 + (size_t)i * 2 * D, *t1 = t0 + D;
        if (wt) {
            #pragma omp simd
            for (int d = 0; d < D; d++) { t0[d] = ai[d] + tok0[d]; t1[d] = bi[d] + tok1[d]; }
        } else {
            memcpy(t0, ai, (size_t)D * sizeof(float));
            memcpy(t1, bi, (size_t)D * sizeof(float));
        }
    }
    const fb_rng_key key = fusion_rng(f, 0);   // seed and step; each layer's config holds its sites
    const float *x = s->x0;
    for (int l = 0; l < s->L; l++) {
        tc_layer *y = &s->layer[l];
        FB_TRY(encoder_layer_forward(y->y, &y->a, x, NULL, &y->p, &y->cfg, B, 2, c->training, &key));
        x = y->y;
    }
    #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
    for (int i = 0; i < B; i++) {
        const float *y0 = x + (size_t)i * 2 * D, *y1 = y0 + D;
        float *o = out + (size_t)i * D;
        #pragma omp simd
        for (int d = 0; d < D; d++) o[d] = (y0[d] + y1[d]) * 0.5f;
    }
    return FB_OK;
}

static fb_status transformer_concat_backward(fusion *f, float *da, float *db, const float *dout, const float *a,
                                             const float *b) {
    (void)a; (void)b;
    transformer_concat_self *s = f->self;
    const fusion_config *c = &f->c;
    const int B = c->B, D = c->D, L = s->L;
    const size_t n = (size_t)B * D;
    const fb_rng_key key = fusion_rng(f, 0);
    float *restrict dyL = s->layer[L - 1].dy;
    #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
    for (int i = 0; i < B; i++) {
        const float *d = dout + (size_t)i * D;
        float *t0 = dyL + (size_t)i * 2 * D, *t1 = t0 + D;
        #pragma omp simd
        for (int k = 0; k < D; k++) t0[k] = t1[k] = 0.5f * d[k];
    }
    const int need_dx0 = da || db || s->with_token;
    for (int l = L - 1; l >= 0; l--) {
        tc_layer *y = &s->layer[l];
        const float *x = l ? s->layer[l - 1].y : s->x0;
        float *dx = l ? s->layer[l - 1].dy : need_dx0 ? s->dx0 : NULL;
        if (dx) memset(dx, 0, 2 * n * sizeof(float));
        FB_TRY(encoder_layer_backward(dx, &y->g, &y->da, y->dy, x, &y->a, &y->p, &y->cfg, B, 2, c->training, &key));
    }
    if (!need_dx0) return FB_OK;
    const float *restrict dx0 = s->dx0;
    if (da || db) {
        #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
        for (int i = 0; i < B; i++) {
            const float *d0 = dx0 + (size_t)i * 2 * D, *d1 = d0 + D;
            if (da) {
                float *o = da + (size_t)i * D;
                #pragma omp simd
                for (int k = 0; k < D; k++) o[k] += d0[k];
            }
            if (db) {
                float *o = db + (size_t)i * D;
                #pragma omp simd
                for (int k = 0; k < D; k++) o[k] += d1[k];
            }
        }
    }
    if (s->with_token) {   // dtok[t, k] += sum_i dx0[i, t, k]: columns per thread, rows in order
        float *restrict dtok = s->dtok;
        #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
        for (int k = 0; k < 2 * D; k++) {
            float acc = 0.0f;
            for (int i = 0; i < B; i++) acc += dx0[(size_t)i * 2 * D + k];
            dtok[k] += acc;
        }
    }
    return FB_OK;
}

static double transformer_concat_flops(const fusion *f, int backward) {
    const transformer_concat_self *s = f->self;
    const fusion_config *c = &f->c;
    const int B = c->B;
    const double n = (double)B * c->D;
    double layers = 0.0;
    for (int l = 0; l < s->L; l++)
        layers += backward ? encoder_layer_flops_backward(&s->layer[l].cfg, B, 2, 1)
                           : encoder_layer_flops_forward(&s->layer[l].cfg, B, 2);
    if (!backward) return layers + (s->with_token ? 2 * n : 0.0) + 2 * n;
    return n + layers + 2 * n + (s->with_token ? 2 * n : 0.0);
}

const fusion_method fusion_transformer_concat = {
    .name = "transformer_concat", .source = "002", .kind = FUSION_VECTOR,
    .variants = {"default", "with_token", NULL},
    .formula = "X = Encoder^L([a, b]) (post-norm, GELU, FFN 4D);  out = mean(X[:, 0], X[:, 1])   "
               "(with_token: X = Encoder^L([a, b] + modality_token))",
    .create = transformer_concat_create, .forward = transformer_concat_forward,
    .backward = transformer_concat_backward, .flops = transformer_concat_flops,
};
