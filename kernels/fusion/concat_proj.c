// concat_proj (000 §2.6 "Concatenation + Projection"): a linear map of the concatenated streams.
//
//   out = W [a; b] + c                                W (D, D + E), c (D)
//
// a (B, D), b (B, E) -> out (B, D); E may differ from D. No diagnostics.
// Variants:
//   "default"   the form above (§2.6's `linear(concat([a, b]))`).
//   "calendar"  the source's calendar fusion (§4.1; SOURCE-SYSTEMS 000):
//               out = dropout(GELU(LN(W [a; b] + c))), LayerNorm(D) eps 1e-5 affine, dropout p =
//               c->dropout (0.1 in the source), active only when c->training.
// Choices where the document is silent:
//   - parameter names proj.{weight,bias} (and norm.{weight,bias} for "calendar"); PyTorch's
//     nn.Linear default initialisation (U(±1/sqrt(D + E)) for weight and bias) in both variants,
//     LayerNorm weight 1, bias 0.
//   - the dropout mask is site 0 of the method's rng sites (fusion_rng(f, 0)), indexed by the
//     element's position in the global batch's (B, D): row c.rng.row0 + b.
// [a; b] is never formed: linear_concat runs two SGEMMs on W's column blocks. "calendar" keeps
// z = W [a; b] + c and y = LN(z) (with mean/rstd) for the backward pass; GELU writes out directly
// and dropout runs in place on it (no pass at all in evaluation). Its backward regenerates the mask
// (inverted dropout is its own adjoint: dropout_rows_forward(dy, dout) gives mask/(1-p) ⊙ dout) and
// multiplies GELU' in one pass over dy.
#include "fusion.h"
#include <string.h>
#include "../activations.h"
#include "../dropout.h"
#include "../layernorm.h"
#include "../linear.h"

enum { CONCAT_PROJ_DEFAULT, CONCAT_PROJ_CALENDAR };
#define CONCAT_PROJ_LN_EPS 1e-5f

typedef struct {
    linear_params proj, dproj;
    layernorm_params norm, dnorm;           // "calendar" only
    float *z, *dz, *y, *dy;                 // (B, D) "calendar" only: W [a; b] + c and LN of it
    float *mean, *rstd;                     // (B)
} concat_proj_self;

static fb_status concat_proj_create(fusion *f, fb_layout *P, fb_layout *A) {
    const fusion_config *c = &f->c;
    FB_TRY(fusion_alloc_self(f, sizeof(concat_proj_self)));
    concat_proj_self *s = f->self;
    char name[FB_NAME_MAX];
    if (linear_declare(P, fusion_name(f, "proj", name), c->D + c->E, c->D, 1, &s->proj, &s->dproj) < 0)
        return FB_ERR_SHAPE;
    if (c->variant == CONCAT_PROJ_CALENDAR) {
        if (layernorm_declare(P, fusion_name(f, "norm", name), c->D, &s->norm, &s->dnorm) < 0) return FB_ERR_SHAPE;
        const char *pre = fusion_name(f, "concat_proj", name);
        const int *bd = (int[]){c->B, c->D}, *b1 = (int[]){c->B};
        if (fb_layout_add(A, pre, "z", 2, bd, FB_INIT_ZERO, 0, &s->z, &s->dz) < 0 ||
            fb_layout_add(A, pre, "y", 2, bd, FB_INIT_ZERO, 0, &s->y, &s->dy) < 0 ||
            fb_layout_add(A, pre, "mean", 1, b1, FB_INIT_ZERO, 0, &s->mean, NULL) < 0 ||
            fb_layout_add(A, pre, "rstd", 1, b1, FB_INIT_ZERO, 0, &s->rstd, NULL) < 0)
            return FB_ERR_SHAPE;
    }
    return FB_OK;
}

static int concat_proj_drops(const fusion *f) { return f->c.training && f->c.dropout > 0.0f; }

static fb_status concat_proj_forward(fusion *f, float *out, const float *a, const float *b) {
    concat_proj_self *s = f->self;
    const int B = f->c.B, D = f->c.D, E = f->c.E;
    if (f->c.variant != CONCAT_PROJ_CALENDAR) return linear_concat_forward(out, a, D, b, E, &s->proj, B, D);
    const size_t n = (size_t)B * D;
    FB_TRY(linear_concat_forward(s->z, a, D, b, E, &s->proj, B, D));
    FB_TRY(layernorm_forward(s->y, s->mean, s->rstd, s->z, &s->norm, B, D, CONCAT_PROJ_LN_EPS));
    FB_TRY(activation_forward(FB_ACT_GELU, out, s->y, n));
    if (concat_proj_drops(f)) {
        fb_rng_key key = fusion_rng(f, 0);
        FB_TRY(dropout_rows_forward(out, out, (size_t)B, (size_t)D, f->c.dropout, &key, 1));
    }
    return FB_OK;
}

static fb_status concat_proj_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b) {
    concat_proj_self *s = f->self;
    const int B = f->c.B, D = f->c.D, E = f->c.E;
    if (f->c.variant != CONCAT_PROJ_CALENDAR)
        return linear_concat_backward(da, db, &s->dproj, dout, a, D, b, E, &s->proj, B, D);
    const size_t n = (size_t)B * D;
    float *restrict dy = s->dy;
    const float *restrict y = s->y;
    if (concat_proj_drops(f)) {
        fb_rng_key key = fusion_rng(f, 0);
        FB_TRY(dropout_rows_forward(dy, dout, (size_t)B, (size_t)D, f->c.dropout, &key, 1));   // dy = mask/(1-p) ⊙ dout
        #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
        for (size_t i = 0; i < n; i++) dy[i] *= fb_gelu_grad(y[i]);
    } else {
        const float *restrict d = dout;
        #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
        for (size_t i = 0; i < n; i++) dy[i] = d[i] * fb_gelu_grad(y[i]);
    }
    memset(s->dz, 0, n * sizeof(float));
    FB_TRY(layernorm_backward(s->dz, &s->dnorm, s->dy, s->z, s->mean, s->rstd, &s->norm, B, D));
    return linear_concat_backward(da, db, &s->dproj, s->dz, a, D, b, E, &s->proj, B, D);
}

static double concat_proj_flops(const fusion *f, int backward) {
    const int B = f->c.B, D = f->c.D, E = f->c.E;
    const size_t n = (size_t)B * D;
    if (f->c.variant != CONCAT_PROJ_CALENDAR)
        return backward ? linear_flops_backward(B, D + E, D, 1, 1) : linear_flops_forward(B, D + E, D, 1);
    const double drop = concat_proj_drops(f) ? (double)n : 0.0;   // one multiply per element
    return backward ? drop + activation_flops_backward(FB_ACT_GELU, n) + layernorm_flops_backward(B, D) +
                          linear_flops_backward(B, D + E, D, 1, 1)
                    : linear_flops_forward(B, D + E, D, 1) + layernorm_flops_forward(B, D) +
                          activation_flops_forward(FB_ACT_GELU, n) + drop;
}

const fusion_method fusion_concat_proj = {
    .name = "concat_proj", .source = "000", .kind = FUSION_VECTOR,
    .variants = {"default", "calendar", NULL},
    .formula = "out = W [a; b] + c   (calendar: out = dropout(GELU(LN(W [a; b] + c))))",
    .create = concat_proj_create, .forward = concat_proj_forward, .backward = concat_proj_backward,
    .flops = concat_proj_flops,
};
