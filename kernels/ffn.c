// Feed-forward block (see ffn.h): h = linear1(x), a = dropout(act(h)), out = linear2(a).
// Only h and a are kept: relu/gelu backward reads the pre-activation h, and dropout backward
// regenerates its mask, so act(h) before dropout is never needed.
#include "ffn.h"
#include <stdio.h>
#include <string.h>
#include "dropout.h"

fb_status ffn_check_config(const ffn_config *c) {
    FB_REQUIRE(c, FB_ERR_CONFIG, "ffn: missing config");
    FB_REQUIRE(c->D > 0 && c->F > 0, FB_ERR_SHAPE, "ffn: sizes D=%d F=%d must be > 0", c->D, c->F);
    FB_REQUIRE(c->activation == FB_ACT_RELU || c->activation == FB_ACT_GELU, FB_ERR_CONFIG,
               "ffn: activation %d is not relu or gelu", (int)c->activation);
    FB_REQUIRE(c->dropout >= 0.0f && c->dropout < 1.0f, FB_ERR_CONFIG,
               "ffn: dropout=%g outside [0, 1)", (double)c->dropout);
    return FB_OK;
}

static const char *join(char buf[FB_NAME_MAX], const char *prefix, const char *name) {
    snprintf(buf, FB_NAME_MAX, "%s%s%s", prefix ? prefix : "", (prefix && *prefix) ? "." : "", name);
    return buf;
}

int ffn_declare(fb_layout *L, const char *prefix, const ffn_config *c, ffn_params *p, ffn_params *g) {
    if (ffn_check_config(c) != FB_OK) return -1;
    char name[FB_NAME_MAX];
    int first = linear_declare(L, join(name, prefix, "linear1"), c->D, c->F, 1, &p->linear1, g ? &g->linear1 : NULL);
    if (first < 0) return -1;
    if (linear_declare(L, join(name, prefix, "linear2"), c->F, c->D, 1, &p->linear2, g ? &g->linear2 : NULL) < 0)
        return -1;
    return first;
}

int ffn_declare_acts(fb_layout *L, const char *prefix, const ffn_config *c, int N, ffn_acts *a, ffn_acts *da) {
    if (ffn_check_config(c) != FB_OK) return -1;
    if (N <= 0) {
        fb_fail(FB_ERR_SHAPE, "ffn: N=%d must be > 0", N);
        return -1;
    }
    int first = fb_layout_add(L, prefix, "h", 2, (int[]){N, c->F}, FB_INIT_ZERO, 0.0f, &a->h, da ? &da->h : NULL);
    if (first < 0) return -1;
    // h is linear1's output (the activation writes a); linear2's is the caller's out.
    fb_layout_tag_module(L, first, FB_MODULE_LINEAR, 0);
    if (fb_layout_add(L, prefix, "a", 2, (int[]){N, c->F}, FB_INIT_ZERO, 0.0f, &a->a, da ? &da->a : NULL) < 0)
        return -1;
    return first;
}

static fb_status ffn_check_call(const ffn_config *c, const ffn_acts *a, const ffn_params *p, int N,
                                int training, const fb_rng_key *rng) {
    FB_TRY(ffn_check_config(c));
    FB_REQUIRE(N > 0, FB_ERR_SHAPE, "ffn: N=%d must be > 0", N);
    FB_REQUIRE(a && a->h && a->a && p, FB_ERR_SHAPE, "ffn: missing activations or parameters");
    FB_REQUIRE(!(training && c->dropout > 0.0f) || rng, FB_ERR_CONFIG,
               "ffn: training with dropout=%g needs an rng key", (double)c->dropout);
    return FB_OK;
}

fb_status ffn_forward(float *out, ffn_acts *a, const float *inp, const ffn_params *p,
                      const ffn_config *c, int N, int training, const fb_rng_key *rng) {
    FB_TRY(ffn_check_call(c, a, p, N, training, rng));
    const size_t n = (size_t)N * c->F;
    FB_TRY(linear_forward(a->h, inp, &p->linear1, N, c->D, c->F));
    FB_TRY(activation_forward(c->activation, a->a, a->h, n));
    if (training && c->dropout > 0.0f) FB_TRY(dropout_rows_forward(a->a, a->a, (size_t)N, (size_t)c->F, c->dropout, rng, 1));
    return linear_forward(out, a->a, &p->linear2, N, c->F, c->D);
}

fb_status ffn_backward(float *dinp, ffn_params *g, ffn_acts *da, const float *dout, const float *inp,
                       const ffn_acts *a, const ffn_params *p, const ffn_config *c, int N,
                       int training, const fb_rng_key *rng) {
    FB_TRY(ffn_check_call(c, a, p, N, training, rng));
    FB_REQUIRE(da && da->h && da->a && dout, FB_ERR_SHAPE, "ffn: missing dout or activation gradients");
    const size_t n = (size_t)N * c->F;
    memset(da->a, 0, n * sizeof(float));
    memset(da->h, 0, n * sizeof(float));
    FB_TRY(linear_backward(da->a, g ? &g->linear2 : NULL, dout, a->a, &p->linear2, N, c->F, c->D));
    // Dropout is linear, so its backward is the same masked scaling applied to the gradient.
    if (training && c->dropout > 0.0f) FB_TRY(dropout_rows_forward(da->a, da->a, (size_t)N, (size_t)c->F, c->dropout, rng, 1));
    FB_TRY(activation_backward(c->activation, da->h, da->a, a->h, NULL, n));
    return linear_backward(dinp, g ? &g->linear1 : NULL, da->h, inp, &p->linear1, N, c->D, c->F);
}

double ffn_flops_forward(const ffn_config *c, int N) {
    return linear_flops_forward(N, c->D, c->F, 1) + activation_flops_forward(c->activation, (size_t)N * c->F) +
           linear_flops_forward(N, c->F, c->D, 1);
}

double ffn_flops_backward(const ffn_config *c, int N, int needs_dinp) {
    return linear_flops_backward(N, c->F, c->D, 1, 1) + activation_flops_backward(c->activation, (size_t)N * c->F) +
           linear_flops_backward(N, c->D, c->F, 1, needs_dinp);
}
