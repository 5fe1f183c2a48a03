// attention (000 §2.5 "Attention-Based Fusion", with the residual of §4.2 "Decoder
// Cross-Attention"): the queries of stream a attend to the tokens of stream b.
//
//   x   = MHA(a, b, b)                 a (B, S, D) queries, b (B, T, E) keys and values
//                                      (nn.MultiheadAttention(D, H, dropout, kdim=E, vdim=E))
//   out = LN(a + dropout(x))           LayerNorm(D), eps 1e-5, affine         -> out (B, S, D)
//
// Variants:
//   "default"      the form above: §2.5's attention used as §4.2 uses it,
//                  `norm2(dec_input + dropout(cross_attn_out))`, the only place the document
//                  shows cross-attention wired into the model.
//   "no_residual"  out = x: the §2.5 snippet literally (query/key/value projections and
//                  attention, no residual, no norm).
// Diagnostics: head-averaged attention weights (B, S, T) (after dropout when training, as torch).
// Choices where the document is silent:
//   - H = c->H heads (8 where they divide D), dropout c->dropout (0.1) on the attention
//     probabilities and, in the default form, the same rate on x before the residual (§4.2's
//     self.dropout); rng sites 0 (probabilities) and 1 (residual) of this fusion point.
//   - the §2.5 `linear_q/k/v` are the MHA in-projections (kdim = vdim = E, so E may differ from
//     D) followed by its out_proj, torch's initialisation (xavier on each in-projection weight,
//     zero biases, out_proj U(±1/√D)); the source's cross-attention is nn.MultiheadAttention.
//   - b_mask (B, T), when given, is the key padding mask (a fully masked row gets weights 0 and
//     x = out_proj.bias instead of torch's NaN; see kernels/attention.h). a_mask is not used:
//     padded query rows are computed like the others (as torch computes them) and ignored downstream.
// Parameters: cross_attention.{q,k,v}_proj_{weight,bias}, cross_attention.out_proj.{weight,bias},
// norm.{weight,bias} (default form only). The block is shared with seq_cross_attention
// (xattn_block.h, which lists the passes).
#include "xattn_block.h"

typedef struct {
    xattn_block x;
} attention_self;

static fb_status attention_create(fusion *f, fb_layout *P, fb_layout *A) {
    const fusion_config *c = &f->c;
    FB_TRY(fusion_alloc_self(f, sizeof(attention_self)));
    attention_self *s = f->self;
    const int residual = c->variant == 0;
    char act[FB_NAME_MAX];
    return xattn_declare(&s->x, f, P, A, "cross_attention", "norm", fusion_name(f, "attention", act),
                         c->B, c->S, c->T, c->D, c->E, c->H, residual, residual ? c->dropout : 0.0f);
}

static fb_status attention_forward(fusion *f, float *out, const float *a, const float *b) {
    attention_self *s = f->self;
    return xattn_forward(&s->x, f, out, a, b, f->c.b_mask);
}

static fb_status attention_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b) {
    attention_self *s = f->self;
    return xattn_backward(&s->x, f, da, db, dout, a, b);
}

static double attention_flops(const fusion *f, int backward) {
    const attention_self *s = f->self;
    return xattn_flops(&s->x, f, backward);
}

const fusion_method fusion_attention = {
    .name = "attention", .source = "000", .kind = FUSION_SEQUENCE,
    .variants = {"default", "no_residual", NULL},
    .formula = "x = MHA(q = a, k = v = b);  out = LN(a + dropout(x))   (no_residual: out = x)",
    .create = attention_create, .forward = attention_forward, .backward = attention_backward,
    .flops = attention_flops,
};
