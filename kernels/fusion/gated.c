// gated (002, models/fusion/gated.py): a per-dimension convex blend of the two modalities.
//
//   g   = σ(W [a; b] + c)          W (D, 2D), c (D)      — Linear(2D → D), PyTorch default init
//   out = g ⊙ a + (1 − g) ⊙ b
//
// a (B, D), b (B, D) -> out (B, D). Diagnostics: the gate g (B, D).
// The document and its project agree on this form; there is no variant.
// The concatenation [a; b] is never formed: linear_concat runs two SGEMMs on W's column blocks.
#include "fusion.h"
#include "../activations.h"
#include "../linear.h"

typedef struct {
    linear_params gate, dgate;
    float *g, *dg;                  // (B, D) gate values, and the gradient of the gate's logits
} gated_self;

static fb_status gated_create(fusion *f, fb_layout *P, fb_layout *A) {
    const fusion_config *c = &f->c;
    FB_REQUIRE(c->E == c->D, FB_ERR_SHAPE, "gated: widths differ (D=%d, E=%d); the blend needs equal widths", c->D, c->E);
    FB_TRY(fusion_alloc_self(f, sizeof(gated_self)));
    gated_self *s = f->self;
    char name[FB_NAME_MAX];
    if (linear_declare(P, fusion_name(f, "gate", name), 2 * c->D, c->D, 1, &s->gate, &s->dgate) < 0) return FB_ERR_SHAPE;
    if (fb_layout_add(A, fusion_name(f, "gated", name), "g", 2, (int[]){c->B, c->D}, FB_INIT_ZERO, 0, &s->g, &s->dg) < 0)
        return FB_ERR_SHAPE;
    return FB_OK;
}

static fb_status gated_forward(fusion *f, float *out, const float *a, const float *b) {
    gated_self *s = f->self;
    int B = f->c.B, D = f->c.D;
    FB_TRY(linear_concat_forward(s->g, a, D, b, D, &s->gate, B, D));  // logits (B, D)
    size_t n = (size_t)B * D;
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float g = fb_sigmoid(s->g[i]);
        s->g[i] = g;
        out[i] = b[i] + g * (a[i] - b[i]);
    }
    f->diag.gate = s->g;
    f->diag.gate_count = n;
    return FB_OK;
}

static fb_status gated_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b) {
    gated_self *s = f->self;
    int B = f->c.B, D = f->c.D;
    size_t n = (size_t)B * D;
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float g = s->g[i];
        s->dg[i] = dout[i] * (a[i] - b[i]) * g * (1.0f - g);   // through σ to the logits
        if (da) da[i] += dout[i] * g;
        if (db) db[i] += dout[i] * (1.0f - g);
    }
    return linear_concat_backward(da, db, &s->dgate, s->dg, a, D, b, D, &s->gate, B, D);
}

static double gated_flops(const fusion *f, int backward) {
    int B = f->c.B, D = f->c.D;
    double n = (double)B * D;
    return backward ? linear_flops_backward(B, 2 * D, D, 1, 1) + 8 * n
                    : linear_flops_forward(B, 2 * D, D, 1) + 5 * n;
}

const fusion_method fusion_gated = {
    .name = "gated", .source = "002", .kind = FUSION_VECTOR,
    .variants = {"default", NULL},
    .formula = "g = sigmoid(W [a; b] + c);  out = g * a + (1 - g) * b",
    .create = gated_create, .forward = gated_forward, .backward = gated_backward, .flops = gated_flops,
};
