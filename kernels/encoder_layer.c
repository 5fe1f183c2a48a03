// Transformer encoder layer (see encoder_layer.h): self-attention and feed-forward blocks around
// two LayerNorms and two residual connections, post-norm or pre-norm.
#include "encoder_layer.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "dropout.h"

static mha_config attn_config(const encoder_layer_config *c) {
    return (mha_config){.D = c->D, .Ek = c->D, .Ev = c->D, .H = c->H, .dropout = c->dropout};
}

static ffn_config ff_config(const encoder_layer_config *c) {
    return (ffn_config){.D = c->D, .F = c->F, .activation = c->activation, .dropout = c->dropout};
}

fb_status encoder_layer_check_config(const encoder_layer_config *c) {
    FB_REQUIRE(c, FB_ERR_CONFIG, "encoder_layer: missing config");
    mha_config mc = attn_config(c);
    ffn_config fc = ff_config(c);
    FB_TRY(mha_check_config(&mc));
    FB_TRY(ffn_check_config(&fc));
    FB_REQUIRE(c->norm_first == 0 || c->norm_first == 1, FB_ERR_CONFIG,
               "encoder_layer: norm_first=%d (0 or 1)", c->norm_first);
    FB_REQUIRE(c->eps > 0.0f && isfinite(c->eps), FB_ERR_CONFIG, "encoder_layer: eps=%g must be > 0", (double)c->eps);
    return FB_OK;
}

static const char *join(char buf[FB_NAME_MAX], const char *prefix, const char *name) {
    snprintf(buf, FB_NAME_MAX, "%s%s%s", prefix ? prefix : "", (prefix && *prefix) ? "." : "", name);
    return buf;
}

int encoder_layer_declare(fb_layout *L, const char *prefix, const encoder_layer_config *c,
                          encoder_layer_params *p, encoder_layer_params *g) {
    if (encoder_layer_check_config(c) != FB_OK) return -1;
    char name[FB_NAME_MAX];
    mha_config mc = attn_config(c);
    ffn_config fc = ff_config(c);
    int first = mha_declare(L, join(name, prefix, "self_attn"), &mc, &p->self_attn, g ? &g->self_attn : NULL);
    int ok = first >= 0;
    ok = ok && ffn_declare(L, prefix, &fc, &p->ff, g ? &g->ff : NULL) >= 0;
    ok = ok && layernorm_declare(L, join(name, prefix, "norm1"), c->D, &p->norm1, g ? &g->norm1 : NULL) >= 0;
    ok = ok && layernorm_declare(L, join(name, prefix, "norm2"), c->D, &p->norm2, g ? &g->norm2 : NULL) >= 0;
    return ok ? first : -1;
}

int encoder_layer_declare_acts(fb_layout *L, const char *prefix, const encoder_layer_config *c,
                               int B, int S, encoder_layer_acts *a, encoder_layer_acts *da) {
    if (encoder_layer_check_config(c) != FB_OK) return -1;
    if (B <= 0 || S <= 0) {
        fb_fail(FB_ERR_SHAPE, "encoder_layer: sizes B=%d S=%d must be > 0", B, S);
        return -1;
    }
    memset(a, 0, sizeof *a);
    if (da) memset(da, 0, sizeof *da);
    char name[FB_NAME_MAX];
    mha_config mc = attn_config(c);
    ffn_config fc = ff_config(c);
    const int N = B * S;
    int first = mha_declare_acts(L, join(name, prefix, "self_attn"), &mc, B, S, S, &a->attn, da ? &da->attn : NULL);
    int ok = first >= 0;
    ok = ok && ffn_declare_acts(L, join(name, prefix, "ffn"), &fc, N, &a->ffn, da ? &da->ffn : NULL) >= 0;
    // ACT declares a (B, S, D) activation and tags it as the output of module kind `module`
    // (layout.h): the norms' outputs, the attention's (sa) and the FFN's linear2 output (ff; its
    // linear1 output is tagged by ffn_declare_acts). Residual sums and dropout outputs are not
    // module outputs.
    int idx = -1;
#define ACT(field, module)                                                                              \
    do {                                                                                                \
        ok = ok && (idx = fb_layout_add(L, prefix, #field, 3, (int[]){B, S, c->D}, FB_INIT_ZERO, 0.0f,  \
                                        &a->field, da ? &da->field : NULL)) >= 0;                        \
        if (ok) fb_layout_tag_module(L, idx, (module), 0);                                             \
    } while (0)
#define STAT(field) \
    ok = ok && fb_layout_add(L, prefix, #field, 1, (int[]){N}, FB_INIT_ZERO, 0.0f, &a->field, NULL) >= 0
    if (c->norm_first) {
        ACT(n1, FB_MODULE_LAYERNORM); ACT(sa, FB_MODULE_ATTENTION); ACT(x1, FB_MODULE_NONE);
        ACT(n2, FB_MODULE_LAYERNORM); ACT(ff, FB_MODULE_LINEAR);
    } else {
        ACT(sa, FB_MODULE_ATTENTION); ACT(r1, FB_MODULE_NONE); ACT(x1, FB_MODULE_LAYERNORM);
        ACT(ff, FB_MODULE_LINEAR); ACT(r2, FB_MODULE_NONE);
    }
    STAT(mean1); STAT(rstd1); STAT(mean2); STAT(rstd2);
#undef ACT
#undef STAT
    return ok ? first : -1;
}

fb_module_kind encoder_layer_output_module(const encoder_layer_config *c) {
    return c->norm_first ? FB_MODULE_NONE : FB_MODULE_LAYERNORM;
}

// y (n) += x
static void add_to(float *restrict y, const float *restrict x, size_t n) {
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static fb_status encoder_check_call(const encoder_layer_config *c, const encoder_layer_acts *a,
                                    const encoder_layer_params *p, int B, int S) {
    FB_TRY(encoder_layer_check_config(c));
    FB_REQUIRE(B > 0 && S > 0, FB_ERR_SHAPE, "encoder_layer: sizes B=%d S=%d must be > 0", B, S);
    FB_REQUIRE(a && p && a->sa && a->x1 && a->ff && a->mean1 && a->rstd1 && a->mean2 && a->rstd2 &&
               (c->norm_first ? (a->n1 && a->n2) : (a->r1 && a->r2)), FB_ERR_SHAPE,
               "encoder_layer: missing activations (declared with another norm_first?) or parameters");
    return FB_OK;
}

// The four dropout keys of the layer: seed, step and row0 (the first sample's global row) from
// rng, sites c->site + ENC_SITE_*. The attention and the two residual dropouts index by the sample
// (leading dimension B); the FFN sees the B*S token rows, so its row0 is the first token's global
// row, row0 * S. Without an rng (evaluation) the keys are zeros, never read since the dropouts are
// identities.
static void layer_keys(fb_rng_key keys[ENC_LAYER_SITES], const encoder_layer_config *c, const fb_rng_key *rng, int S) {
    for (uint32_t k = 0; k < ENC_LAYER_SITES; k++) {
        keys[k] = rng ? *rng : (fb_rng_key){0};
        keys[k].site = c->site + k;
    }
    keys[ENC_SITE_FFN] = fb_rng_split_rows(&keys[ENC_SITE_FFN], (uint64_t)S);
}

// The checks on the rng both passes share: a key when dropout is live, and rows as they are.
static fb_status layer_check_rng(const encoder_layer_config *c, int training, const fb_rng_key *rng) {
    FB_REQUIRE(!(training && c->dropout > 0.0f) || rng, FB_ERR_CONFIG,
               "encoder_layer: training with dropout=%g needs an rng key", (double)c->dropout);
    FB_REQUIRE(!rng || !rng->row_map, FB_ERR_CONFIG,
               "encoder_layer: the rng key has a row map; the layer's token rows cannot follow one");
    return FB_OK;
}

fb_status encoder_layer_forward(float *out, encoder_layer_acts *a, const float *x,
                                const uint8_t *mask, const encoder_layer_params *p,
                                const encoder_layer_config *c, int B, int S, int training,
                                const fb_rng_key *rng) {
    FB_TRY(encoder_check_call(c, a, p, B, S));
    FB_REQUIRE(out && x && out != x, FB_ERR_SHAPE, "encoder_layer: missing input/output, or out aliases x");
    FB_TRY(layer_check_rng(c, training, rng));
    const int D = c->D, N = B * S;
    const size_t n = (size_t)N * D, SD = (size_t)S * D;   // SD: one sample's (S, D) row of the dropout sites
    const float pd = c->dropout;
    mha_config mc = attn_config(c);
    ffn_config fc = ff_config(c);
    fb_rng_key keys[ENC_LAYER_SITES];
    layer_keys(keys, c, rng, S);
    if (!c->norm_first) {
        FB_TRY(mha_forward(a->sa, NULL, &a->attn, x, x, x, mask, &p->self_attn, &mc, B, S, S, D, D, training, &keys[ENC_SITE_ATTN]));
        FB_TRY(dropout_rows_forward(a->r1, a->sa, (size_t)B, SD, pd, &keys[ENC_SITE_DROP1], training));
        add_to(a->r1, x, n);
        FB_TRY(layernorm_forward(a->x1, a->mean1, a->rstd1, a->r1, &p->norm1, N, D, c->eps));
        FB_TRY(ffn_forward(a->ff, &a->ffn, a->x1, &p->ff, &fc, N, training, &keys[ENC_SITE_FFN]));
        FB_TRY(dropout_rows_forward(a->r2, a->ff, (size_t)B, SD, pd, &keys[ENC_SITE_DROP2], training));
        add_to(a->r2, a->x1, n);
        return layernorm_forward(out, a->mean2, a->rstd2, a->r2, &p->norm2, N, D, c->eps);
    }
    FB_TRY(layernorm_forward(a->n1, a->mean1, a->rstd1, x, &p->norm1, N, D, c->eps));
    FB_TRY(mha_forward(a->sa, NULL, &a->attn, a->n1, a->n1, a->n1, mask, &p->self_attn, &mc, B, S, S, D, D, training, &keys[ENC_SITE_ATTN]));
    FB_TRY(dropout_rows_forward(a->x1, a->sa, (size_t)B, SD, pd, &keys[ENC_SITE_DROP1], training));
    add_to(a->x1, x, n);
    FB_TRY(layernorm_forward(a->n2, a->mean2, a->rstd2, a->x1, &p->norm2, N, D, c->eps));
    FB_TRY(ffn_forward(a->ff, &a->ffn, a->n2, &p->ff, &fc, N, training, &keys[ENC_SITE_FFN]));
    FB_TRY(dropout_rows_forward(out, a->ff, (size_t)B, SD, pd, &keys[ENC_SITE_DROP2], training));
    add_to(out, a->x1, n);
    return FB_OK;
}

fb_status encoder_layer_backward(float *dx, encoder_layer_params *g, encoder_layer_acts *da,
                                 const float *dout, const float *x, const encoder_layer_acts *a,
                                 const encoder_layer_params *p, const encoder_layer_config *c,
                                 int B, int S, int training, const fb_rng_key *rng) {
    FB_TRY(encoder_check_call(c, a, p, B, S));
    FB_REQUIRE(da && da->sa && da->x1 && da->ff && (c->norm_first ? (da->n1 && da->n2) : (da->r1 && da->r2)),
               FB_ERR_SHAPE, "encoder_layer: missing activation gradients");
    FB_REQUIRE(dout && x && dout != dx, FB_ERR_SHAPE, "encoder_layer: missing dout/x, or dout aliases dx");
    FB_TRY(layer_check_rng(c, training, rng));
    const int D = c->D, N = B * S;
    const size_t n = (size_t)N * D, bytes = n * sizeof(float), SD = (size_t)S * D;
    const float pd = c->dropout;
    mha_config mc = attn_config(c);
    ffn_config fc = ff_config(c);
    fb_rng_key keys[ENC_LAYER_SITES];
    layer_keys(keys, c, rng, S);
    mha_params *ga = g ? &g->self_attn : NULL;
    ffn_params *gf = g ? &g->ff : NULL;
    layernorm_params *gn1 = g ? &g->norm1 : NULL, *gn2 = g ? &g->norm2 : NULL;
    if (!c->norm_first) {
        memset(da->r2, 0, bytes);
        FB_TRY(layernorm_backward(da->r2, gn2, dout, a->r2, a->mean2, a->rstd2, &p->norm2, N, D));
        memcpy(da->x1, da->r2, bytes);                        // residual branch
        memset(da->ff, 0, bytes);
        FB_TRY(dropout_rows_backward(da->ff, da->r2, (size_t)B, SD, pd, &keys[ENC_SITE_DROP2], training));
        FB_TRY(ffn_backward(da->x1, gf, &da->ffn, da->ff, a->x1, &a->ffn, &p->ff, &fc, N, training, &keys[ENC_SITE_FFN]));
        memset(da->r1, 0, bytes);
        FB_TRY(layernorm_backward(da->r1, gn1, da->x1, a->r1, a->mean1, a->rstd1, &p->norm1, N, D));
        if (dx) add_to(dx, da->r1, n);                        // residual branch
        memset(da->sa, 0, bytes);
        FB_TRY(dropout_rows_backward(da->sa, da->r1, (size_t)B, SD, pd, &keys[ENC_SITE_DROP1], training));
        return mha_backward(dx, dx, dx, ga, &da->attn, da->sa, x, x, x, &a->attn, &p->self_attn, &mc,
                            B, S, S, D, D, training, &keys[ENC_SITE_ATTN]);
    }
    memcpy(da->x1, dout, bytes);                              // residual branch
    memset(da->ff, 0, bytes);
    FB_TRY(dropout_rows_backward(da->ff, dout, (size_t)B, SD, pd, &keys[ENC_SITE_DROP2], training));
    memset(da->n2, 0, bytes);
    FB_TRY(ffn_backward(da->n2, gf, &da->ffn, da->ff, a->n2, &a->ffn, &p->ff, &fc, N, training, &keys[ENC_SITE_FFN]));
    FB_TRY(layernorm_backward(da->x1, gn2, da->n2, a->x1, a->mean2, a->rstd2, &p->norm2, N, D));
    if (dx) add_to(dx, da->x1, n);                            // residual branch
    memset(da->sa, 0, bytes);
    FB_TRY(dropout_rows_backward(da->sa, da->x1, (size_t)B, SD, pd, &keys[ENC_SITE_DROP1], training));
    memset(da->n1, 0, bytes);
    FB_TRY(mha_backward(da->n1, da->n1, da->n1, ga, &da->attn, da->sa, a->n1, a->n1, a->n1, &a->attn,
                        &p->self_attn, &mc, B, S, S, D, D, training, &keys[ENC_SITE_ATTN]));
    return layernorm_backward(dx, gn1, da->n1, x, a->mean1, a->rstd1, &p->norm1, N, D);
}

double encoder_layer_flops_forward(const encoder_layer_config *c, int B, int S) {
    mha_config mc = attn_config(c);
    ffn_config fc = ff_config(c);
    const int N = B * S;
    return mha_flops_forward(&mc, B, S, S) + ffn_flops_forward(&fc, N) +
           2.0 * layernorm_flops_forward(N, c->D) + 2.0 * N * c->D;   // two residual adds
}

double encoder_layer_flops_backward(const encoder_layer_config *c, int B, int S, int needs_dinp) {
    mha_config mc = attn_config(c);
    ffn_config fc = ff_config(c);
    const int N = B * S;
    // Only post-norm's attention in-projections write the layer's input gradient directly;
    // every other inner block's input gradient is needed by the block before it.
    return mha_flops_backward(&mc, B, S, S, c->norm_first ? 1 : needs_dinp) + ffn_flops_backward(&fc, N, 1) +
           2.0 * layernorm_flops_backward(N, c->D) + 2.0 * N * c->D;
}
