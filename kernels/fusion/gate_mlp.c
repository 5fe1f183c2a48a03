// The LayerNorms and gate MLP shared by gated_add and gated_interp; see gate_mlp.h.
#include "gate_mlp.h"
#include <string.h>
#include "../activations.h"

#define GATE_MLP_LN_EPS 1e-5f   // nn.LayerNorm's default, as the source uses

fb_status gate_mlp_create(fusion *f, fb_layout *P, fb_layout *A, const gate_mix *mix, int norm) {
    const fusion_config *c = &f->c;
    const char *m = f->method->name;
    FB_REQUIRE(c->E == c->D, FB_ERR_SHAPE, "%s: widths differ (D=%d, E=%d); the gated sum needs equal widths",
               m, c->D, c->E);
    FB_TRY(fusion_alloc_self(f, sizeof(gate_mlp)));
    gate_mlp *s = f->self;
    s->mix = mix;
    s->norm = norm;
    const int B = c->B, D = c->D;
    char name[FB_NAME_MAX];
    if (norm) {
        if (layernorm_declare(P, fusion_name(f, "norm_a", name), D, &s->norm_a, &s->dnorm_a) < 0) return FB_ERR_SHAPE;
        if (layernorm_declare(P, fusion_name(f, "norm_b", name), D, &s->norm_b, &s->dnorm_b) < 0) return FB_ERR_SHAPE;
    }
    int w1 = linear_declare(P, fusion_name(f, "gate.0", name), 2 * D, D, 1, &s->w1, &s->dw1);
    if (w1 < 0) return FB_ERR_SHAPE;
    linear_init_xavier(P, w1, 2 * D, D);
    int w2 = linear_declare(P, fusion_name(f, "gate.2", name), D, D, 1, &s->w2, &s->dw2);
    if (w2 < 0) return FB_ERR_SHAPE;
    linear_init_xavier(P, w2, D, D);
    fb_layout_set_init(P, w2 + 1, FB_INIT_CONST, c->gate_bias);   // gate.2.bias

    const char *pre = fusion_name(f, m, name);
    const int *bd = (int[]){B, D}, *b1 = (int[]){B};
    if (norm) {
        if (fb_layout_add(A, pre, "ea", 2, bd, FB_INIT_ZERO, 0, &s->ea, &s->dea) < 0 ||
            fb_layout_add(A, pre, "eb", 2, bd, FB_INIT_ZERO, 0, &s->eb, &s->deb) < 0 ||
            fb_layout_add(A, pre, "mean_a", 1, b1, FB_INIT_ZERO, 0, &s->mean_a, NULL) < 0 ||
            fb_layout_add(A, pre, "rstd_a", 1, b1, FB_INIT_ZERO, 0, &s->rstd_a, NULL) < 0 ||
            fb_layout_add(A, pre, "mean_b", 1, b1, FB_INIT_ZERO, 0, &s->mean_b, NULL) < 0 ||
            fb_layout_add(A, pre, "rstd_b", 1, b1, FB_INIT_ZERO, 0, &s->rstd_b, NULL) < 0)
            return FB_ERR_SHAPE;
    }
    if (fb_layout_add(A, pre, "pre", 2, bd, FB_INIT_ZERO, 0, &s->pre, NULL) < 0 ||
        fb_layout_add(A, pre, "h", 2, bd, FB_INIT_ZERO, 0, &s->h, &s->dh) < 0 ||
        fb_layout_add(A, pre, "g", 2, bd, FB_INIT_ZERO, 0, &s->g, &s->dg) < 0)
        return FB_ERR_SHAPE;
    return FB_OK;
}

fb_status gate_mlp_forward(fusion *f, float *out, const float *a, const float *b) {
    gate_mlp *s = f->self;
    const int B = f->c.B, D = f->c.D;
    const size_t n = (size_t)B * D;
    const float *ea = a, *eb = b;
    if (s->norm) {
        FB_TRY(layernorm_forward(s->ea, s->mean_a, s->rstd_a, a, &s->norm_a, B, D, GATE_MLP_LN_EPS));
        FB_TRY(layernorm_forward(s->eb, s->mean_b, s->rstd_b, b, &s->norm_b, B, D, GATE_MLP_LN_EPS));
        ea = s->ea;
        eb = s->eb;
    }
    FB_TRY(linear_concat_forward(s->pre, ea, D, eb, D, &s->w1, B, D));   // [e_a; e_b] never formed
    FB_TRY(activation_forward(FB_ACT_GELU, s->h, s->pre, n));
    FB_TRY(linear_forward(s->g, s->h, &s->w2, B, D, D));                 // logits
    s->mix->forward(out, s->g, ea, eb, n);                              // σ and the mix, one pass
    f->diag.gate = s->g;
    f->diag.gate_count = n;
    return FB_OK;
}

fb_status gate_mlp_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b) {
    gate_mlp *s = f->self;
    const int B = f->c.B, D = f->c.D;
    const size_t n = (size_t)B * D;
    // With LayerNorms the e-gradients go to our own buffers (always: the LayerNorm parameters need
    // them even when da, db are NULL); without, e is the input and they go straight to da, db.
    const float *ea = s->norm ? s->ea : a, *eb = s->norm ? s->eb : b;
    float *dea = s->norm ? s->dea : da, *deb = s->norm ? s->deb : db;
    s->mix->backward(s->dg, dea, deb, dout, s->g, ea, eb, n, s->norm);
    memset(s->dh, 0, n * sizeof(float));
    FB_TRY(linear_backward(s->dh, &s->dw2, s->dg, s->h, &s->w2, B, D, D));
    float *restrict dh = s->dh;
    const float *restrict pre = s->pre;
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) dh[i] *= fb_gelu_grad(pre[i]);        // now ∂L/∂pre
    FB_TRY(linear_concat_backward(dea, deb, &s->dw1, s->dh, ea, D, eb, D, &s->w1, B, D));
    if (s->norm) {
        FB_TRY(layernorm_backward(da, &s->dnorm_a, s->dea, a, s->mean_a, s->rstd_a, &s->norm_a, B, D));
        FB_TRY(layernorm_backward(db, &s->dnorm_b, s->deb, b, s->mean_b, s->rstd_b, &s->norm_b, B, D));
    }
    return FB_OK;
}

double gate_mlp_flops(const fusion *f, int backward) {
    const gate_mlp *s = f->self;
    const int B = f->c.B, D = f->c.D;
    const size_t n = (size_t)B * D;
    if (!backward)
        return (s->norm ? 2 * layernorm_flops_forward(B, D) : 0.0) + linear_flops_forward(B, 2 * D, D, 1) +
               activation_flops_forward(FB_ACT_GELU, n) + linear_flops_forward(B, D, D, 1) +
               s->mix->flops_forward * (double)n;
    return s->mix->flops_backward * (double)n + linear_flops_backward(B, D, D, 1, 1) +
           activation_flops_backward(FB_ACT_GELU, n) + linear_flops_backward(B, 2 * D, D, 1, 1) +
           (s->norm ? 2 * layernorm_flops_backward(B, D) : 0.0);
}
