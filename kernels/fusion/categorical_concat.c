// categorical_concat (003, the project's base categorical fusion `--categorical-fusion concat`; the
// document's "Current Limitations: position-agnostic fusion"): the pooled categorical embedding is
// broadcast over all positions and concatenated to each one, then projected back to D.
//
//   c   = [b_0; b_1; …; b_{K−1}]          (B, C), C = K·E   — the K column embeddings concatenated
//   out[b, s] = W [a[b, s]; c[b]] + w0     W (D, D + C), w0 (D)   — proj, Linear(D + C → D)
//
// a = H (B, S, D) the sequence, b (B, K = T, E) the categorical metadata as K tokens (one
// Embedding(card, E) per column, E = 16 in the project; the harness does the lookup), out (B, S, D).
// Sources: the document names it (concat broadcast over positions); the form and initialisation are
// the project's (../shared/SOURCE-SYSTEMS.md, 003 "Categorical fusion": Linear(D + C → D)([H; c]) per
// position, Xavier weight, zero bias; columns sorted by name and concatenated). No variant.
// Choices where the sources are silent:
//   - parameter names proj.{weight,bias}; the weight's columns [0, D) act on H, [D, D + C) on c.
//   - b_mask is not read: a missing column is the project's index 0, whose embedding is the zero
//     vector, and that is what the harness's lookup puts in b. No diagnostics.
// The broadcast [B, S, C] is never formed: u = W_c c + w0 is one (B, C)·(C, D) SGEMM per batch,
// every output row is seeded with its sample's u and one SGEMM over the B·S rows adds W_H H
// (broadcast.h). Backward: dH and dW_H by SGEMMs over B·S rows, du = Σ_s dout, then dc = du W_c,
// dW_c = duᵀ c, dw0 = Σ_b du.
#include "fusion.h"
#include "broadcast.h"

typedef struct {
    linear_params proj, dproj;
    float *u, *du;      // (B, D) W_c c + w0, and Σ_s dout
} categorical_concat_self;

static fb_status categorical_concat_create(fusion *f, fb_layout *P, fb_layout *A) {
    const fusion_config *c = &f->c;
    const int C = c->T * c->E;
    FB_TRY(fusion_alloc_self(f, sizeof(categorical_concat_self)));
    categorical_concat_self *s = f->self;
    char name[FB_NAME_MAX];
    int w = linear_declare(P, fusion_name(f, "proj", name), c->D + C, c->D, 1, &s->proj, &s->dproj);
    if (w < 0) return FB_ERR_SHAPE;
    linear_init_xavier(P, w, c->D + C, c->D);
    if (fb_layout_add(A, fusion_name(f, "categorical_concat", name), "u", 2, (int[]){c->B, c->D}, FB_INIT_ZERO, 0,
                      &s->u, &s->du) < 0)
        return FB_ERR_SHAPE;
    return FB_OK;
}

static fb_status categorical_concat_forward(fusion *f, float *out, const float *a, const float *b) {
    categorical_concat_self *s = f->self;
    const fusion_config *c = &f->c;
    return linear_bcast_forward(out, s->u, a, c->D, b, c->T * c->E, &s->proj, c->B, c->S, c->D);
}

static fb_status categorical_concat_backward(fusion *f, float *da, float *db, const float *dout, const float *a,
                                             const float *b) {
    categorical_concat_self *s = f->self;
    const fusion_config *c = &f->c;
    return linear_bcast_backward(da, db, &s->dproj, s->du, dout, a, c->D, b, c->T * c->E, &s->proj, c->B, c->S, c->D);
}

static double categorical_concat_flops(const fusion *f, int backward) {
    const fusion_config *c = &f->c;
    int C = c->T * c->E;
    return backward ? linear_bcast_flops_backward(c->B, c->S, c->D, C, c->D, 1)
                    : linear_bcast_flops_forward(c->B, c->S, c->D, C, c->D);
}

const fusion_method fusion_categorical_concat = {
    .name = "categorical_concat", .source = "003", .kind = FUSION_SEQUENCE, .typical_E = 16,
    .variants = {"default", NULL},
    .formula = "c = [b_1; ...; b_K];  out[b, s] = W [a[b, s]; c[b]] + w0  (c broadcast over positions)",
    .create = categorical_concat_create, .forward = categorical_concat_forward,
    .backward = categorical_concat_backward, .flops = categorical_concat_flops,
};
