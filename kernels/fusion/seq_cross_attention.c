// seq_cross_attention (003 FUS-2 "Cross-Attention Fusion", CrossAttentionFusion): each sequence
// position (ASV) attends to the metadata tokens, one per categorical column.
//
//   x   = MHA(a, b, b, key_padding_mask = b_mask)   a (B, S, D) ASV tokens, b (B, K, E) metadata
//                                                   tokens (K = T columns; kdim = vdim = E)
//   out = LN(a + x)                                 LayerNorm(D), eps 1e-5    -> out (B, S, D)
//
// Variants:
//   "default"       the document's form above (FUS-2's code: `self.norm(seq_repr + attn_out)`).
//   "single_token"  the project as shipped (../shared/SOURCE-SYSTEMS.md, 003): one metadata token
//                   meta = cat_projection(b flattened per sample), Linear(K·E → D) (B, 1, D), then
//                   out = LN(a + MHA(a, meta, meta)) with kdim = vdim = D. With one key the
//                   softmax is identically 1: x = out_proj(v_proj(meta)) for every position
//                   (times the dropout mask of that single probability when training), the
//                   attention weights are all 1 (B, S, 1), and q/k projections get exactly zero
//                   gradient — they are computed anyway, as torch does, so the two compare.
// Diagnostics: head-averaged attention weights (B, S, K) ((B, S, 1) in single_token), the
// "which ASVs attend to which categories" heat map of FUS-2.
// Choices where the document is silent:
//   - H = c->H heads (the document's default 8; 8 where they divide D), dropout c->dropout (0.1)
//     on the attention probabilities only (no dropout on the residual: the document has none),
//     rng site 0 of this fusion point.
//   - b_mask (B, K), 1 = missing column, is the key padding mask in the default form (the
//     document builds tokens only for present columns; masking keeps the shapes fixed). A sample
//     with every column missing gets x = out_proj.bias (torch would give NaN). single_token ignores
//     b_mask: the project has no mask; a missing column is its zero (padding_idx 0) embedding in b.
//     a_mask is not used: padded ASV rows are computed like the others (as torch computes them)
//     and ignored downstream (the target encoder and pooling mask them).
//   - torch's initialisation of the MHA (xavier on each in-projection weight, or on the packed
//     (3D, D) in_proj_weight when E = D; zero biases); cat_projection xavier-uniform weight, zero
//     bias (the project's _init_weights).
// Parameters: cross_attn.{q,k,v}_proj_{weight,bias}, cross_attn.out_proj.{weight,bias},
// norm.{weight,bias}, and cat_projection.{weight,bias} in single_token. The residual block is
// shared with `attention` (xattn_block.h lists the passes); single_token adds one SGEMM forward
// and two backward.
#include "xattn_block.h"
#include <string.h>
#include "../linear.h"

typedef struct {
    xattn_block x;
    int single;                    // the single_token variant
    linear_params proj, dproj;     // cat_projection: (D, K·E), (D)
    float *meta, *dmeta;           // (B, D) the single metadata token and its gradient
} seq_cross_attention_self;

static fb_status seq_cross_attention_create(fusion *f, fb_layout *P, fb_layout *A) {
    const fusion_config *c = &f->c;
    FB_TRY(fusion_alloc_self(f, sizeof(seq_cross_attention_self)));
    seq_cross_attention_self *s = f->self;
    s->single = c->variant == 1;
    char act[FB_NAME_MAX], name[FB_NAME_MAX];
    fusion_name(f, "seq_cross_attention", act);
    if (s->single) {
        const int KE = c->T * c->E;
        int w = linear_declare(P, fusion_name(f, "cat_projection", name), KE, c->D, 1, &s->proj, &s->dproj);
        if (w < 0) return FB_ERR_SHAPE;
        linear_init_xavier(P, w, KE, c->D);
        if (fb_layout_add(A, act, "meta", 2, (int[]){c->B, c->D}, FB_INIT_ZERO, 0, &s->meta, &s->dmeta) < 0)
            return FB_ERR_SHAPE;
        return xattn_declare(&s->x, f, P, A, "cross_attn", "norm", act, c->B, c->S, 1, c->D, c->D, c->H, 1, 0.0f);
    }
    return xattn_declare(&s->x, f, P, A, "cross_attn", "norm", act, c->B, c->S, c->T, c->D, c->E, c->H, 1, 0.0f);
}

static fb_status seq_cross_attention_forward(fusion *f, float *out, const float *a, const float *b) {
    seq_cross_attention_self *s = f->self;
    const fusion_config *c = &f->c;
    if (!s->single) return xattn_forward(&s->x, f, out, a, b, c->b_mask);
    FB_TRY(linear_forward(s->meta, b, &s->proj, c->B, c->T * c->E, c->D));
    return xattn_forward(&s->x, f, out, a, s->meta, NULL);
}

static fb_status seq_cross_attention_backward(fusion *f, float *da, float *db, const float *dout, const float *a,
                                              const float *b) {
    seq_cross_attention_self *s = f->self;
    const fusion_config *c = &f->c;
    if (!s->single) return xattn_backward(&s->x, f, da, db, dout, a, b);
    memset(s->dmeta, 0, (size_t)c->B * c->D * sizeof(float));
    FB_TRY(xattn_backward(&s->x, f, da, s->dmeta, dout, a, s->meta));
    return linear_backward(db, &s->dproj, s->dmeta, b, &s->proj, c->B, c->T * c->E, c->D);
}

static double seq_cross_attention_flops(const fusion *f, int backward) {
    const seq_cross_attention_self *s = f->self;
    const fusion_config *c = &f->c;
    double proj = !s->single ? 0.0
                  : backward ? linear_flops_backward(c->B, c->T * c->E, c->D, 1, 1)
                             : linear_flops_forward(c->B, c->T * c->E, c->D, 1);
    return xattn_flops(&s->x, f, backward) + proj;
}

const fusion_method fusion_seq_cross_attention = {
    .name = "seq_cross_attention", .source = "003", .kind = FUSION_SEQUENCE, .typical_E = 16,
    .variants = {"default", "single_token", NULL},
    .formula = "out = LN(a + MHA(q = a, k = v = b, key_padding_mask = b_mask))   "
               "(single_token: meta = Linear(K*E -> D)(b); out = LN(a + MHA(a, meta, meta)))",
    .create = seq_cross_attention_create, .forward = seq_cross_attention_forward,
    .backward = seq_cross_attention_backward, .flops = seq_cross_attention_flops,
};
