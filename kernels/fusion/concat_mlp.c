// concat_mlp (002 "concat_mlp", models/fusion/concat_mlp.py): concatenate, then a two-layer MLP.
//
//   h   = W1 [a; b] + c1          W1 (F, D + E)    — fc1, Linear(D + E → F)
//   out = W2 dropout(GELU(h)) + c2    W2 (D, F)    — fc2, Linear(F → D)
//
// a (B, D), b (B, E) -> out (B, D). Symmetric in a and b. No diagnostics (no gate).
// The document gives f(v, t) = W2 φ(W1 [v; t] + b1) + b2 with GELU and dropout between the layers;
// the project (../shared/SOURCE-SYSTEMS.md, 002) fixes Linear(2D → 2D), GELU, dropout 0.1,
// Linear(2D → D). Document and project agree; there is no variant.
// Choices where both are silent:
//   - E may differ from D: the first layer takes D + E inputs; its width F is c->F, or 2D when 0
//     (the project's 2D, which equals D + E there).
//   - GELU is the exact erf form (nn.GELU's default); dropout is c->dropout (0.1 by default) at
//     rng site 0 of this fusion point; PyTorch's default nn.Linear initialisation for both layers.
// The concatenation is never formed (linear_concat_*); see mlp2.h.
#include "mlp2.h"

typedef struct {
    mlp2 mlp;
} concat_mlp_self;

static fb_status concat_mlp_create(fusion *f, fb_layout *P, fb_layout *A) {
    fusion_config *c = &f->c;
    if (c->F == 0) c->F = 2 * c->D;
    FB_REQUIRE(c->F > 0, FB_ERR_CONFIG, "concat_mlp: hidden width F=%d must be > 0", c->F);
    FB_TRY(fusion_alloc_self(f, sizeof(concat_mlp_self)));
    concat_mlp_self *s = f->self;
    return mlp2_declare(&s->mlp, f, P, A, "concat_mlp", c->B, c->D, c->E, c->F, c->D, FB_ACT_GELU);
}

static fb_status concat_mlp_forward(fusion *f, float *out, const float *a, const float *b) {
    concat_mlp_self *s = f->self;
    fb_rng_key key = fusion_rng(f, 0);
    return mlp2_forward(&s->mlp, out, a, b, f->c.dropout, &key, f->c.training);
}

static fb_status concat_mlp_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b) {
    concat_mlp_self *s = f->self;
    fb_rng_key key = fusion_rng(f, 0);
    return mlp2_backward(&s->mlp, da, db, dout, a, b, f->c.dropout, &key, f->c.training);
}

static double concat_mlp_flops(const fusion *f, int backward) {
    const concat_mlp_self *s = f->self;
    return mlp2_flops(&s->mlp, backward, f->c.training && f->c.dropout > 0.0f, 1);
}

const fusion_method fusion_concat_mlp = {
    .name = "concat_mlp", .source = "002", .kind = FUSION_VECTOR,
    .variants = {"default", NULL},
    .formula = "out = W2 dropout(GELU(W1 [a; b] + c1)) + c2",
    .create = concat_mlp_create, .forward = concat_mlp_forward, .backward = concat_mlp_backward,
    .flops = concat_mlp_flops,
};
