// Blocks shared by the routing methods of 002, shomr and energy_aware_adaptive
// (../../shared/SOURCE-SYSTEMS.md, 002; the document's "shomr" and "energy_aware_adaptive").
//
// route_mlp — probabilities over K choices from the pair a, b (B, D):
//   pre = W1 [a; b] + c1                W1 (D, 2D)   tensor "<name>.0"
//   h   = dropout(GELU(pre))            (shomr's conf_net and router carry an nn.Dropout here)
//   z   = W2 h + c2                     W2 (K, D)    tensor "<name>.3" with the Dropout layer,
//                                                    "<name>.2" without (nn.Sequential numbering)
//   p   = softmax(z / temperature)      (B, K)
// PyTorch's nn.Linear default initialisation. route_pick() turns p into one choice per sample:
// sampled (torch.multinomial's law, from the counter-based fb_uniform) or the first maximum
// (torch.argmax). A discrete choice passes no gradient to p.
//
// fuse_block — the fusion of both modalities shared by shomr (its soft path and its "both" route)
// and energy_aware_adaptive (its "both" route), over a list of n = n_soft + n_gated rows:
//   base_i = w_a,i a_i + w_b,i b_i       rows [0, n_soft)      (shomr's soft path; w (B, 2) given)
//   base_i = g ⊙ a_i + (1 − g) ⊙ b_i     rows [n_soft, n)      g = σ(Wg [a_i; b_i] + cg), as `gated`
//   s_i    = base_i + ½ Σ_t MHA([a_i, b_i])_t        the 2-token self-attention, mean over tokens
//   y_i    = LN(s_i)                     norm_soft on soft rows, norm_gated on gated rows
//   out_i  = y_i + FFN(y_i)  (residual)  or  FFN(y_i)
//   FFN(y) = dropout(linear2(dropout?(GELU(linear1(y)))))     D → F → D; the inner dropout only
//            when `ffn_inner_dropout` (shomr's ffn has it, energy_aware_adaptive's does not)
// Tensors: gate.0.{weight,bias} (Wg (D, 2D), cg), cross_attn.* (mha_declare: separate q/k/v
// projections, torch's initialisation), <norm_soft>.*, <norm_gated>.* (LayerNorm(D), eps 1e-5),
// ffn.linear1.*, ffn.linear2.*. The MHA and the FFN are shared by both kinds of rows, as in the
// source (one cross_attn, one ffn).
//
// The rows are gathered once into x (n, 2, D): row i is [a_i; b_i], which is at once the 2-token
// sequence the attention reads and the concatenation the gate's Linear reads (so the gate is one
// SGEMM, never a torch.cat). Then: 1 MHA over the n rows, 1 SGEMM for the gate logits of the gated
// rows, ONE pass (σ, the blend or the weighted sum, the mean of the two attention tokens), the
// LayerNorm(s), the FFN, and ONE scatter pass (residual add) into out. Backward mirrors it: one
// gather of dout, the FFN and LayerNorm backwards, ONE pass (attention-token gradients, the gate's
// logit gradient, the direct gradients of a and b into dx, dw for soft rows), the gate SGEMMs and
// the MHA backward accumulating into dx, and one scatter-add into da, db.
// Rows are independent (attention is within a sample, LayerNorm per row), so a row's result does
// not depend on which other rows are in the list; the dropout masks (training) of list position i
// are those of sample rows[i]'s global row (keys' row0 + rows[i], passed to the attention and the
// FFN as a row map), so they do not depend on the list either, nor on how the batch is split.
#pragma once
#include "fusion.h"
#include "../attention.h"
#include "../ffn.h"
#include "../layernorm.h"
#include "../linear.h"

typedef struct {
    int B, D, K;             // B: rows it was declared for (owner's c.B may be lower)
    const fusion *owner;
    float temperature, dropout;
    linear_params l1, dl1, l2, dl2;
    float *pre;              // (B, D) W1 [a; b] + c1
    float *h, *dh;           // (B, D) dropout(GELU(pre)); gradient of h, then of pre
    float *z, *dz;           // (B, K) logits; gradient of the logits
    float *p, *dp;           // (B, K) probabilities; dp = ∂L/∂p, filled by the caller before backward
} route_mlp;

// Declares the router `name` (parameters "<name>.0", "<name>.2|3"; activations under
// "<prefix>.<method>.<name>"). `dropout_layer`: the MLP has an nn.Dropout after the GELU (its
// rate is c->dropout, active in training). The struct must not move before the layouts are
// allocated.
fb_status route_mlp_declare(route_mlp *r, const fusion *f, fb_layout *P, fb_layout *A, const char *name,
                            int K, int dropout_layer, float temperature);
// p = softmax(MLP([a; b]) / temperature) over the B rows; the dropout mask of row i is that of
// global row key->row0 + i.
fb_status route_mlp_forward(route_mlp *r, const float *a, const float *b, int training, const fb_rng_key *key);
// From r->dp (∂L/∂p, overwritten by nothing): accumulates da, db (either may be NULL) and the
// parameter gradients; overwrites dh, dz.
fb_status route_mlp_backward(route_mlp *r, float *da, float *db, const float *a, const float *b,
                             int training, const fb_rng_key *key);
double route_mlp_flops(const route_mlp *r, int backward, int training);

// The uniform behind sample i's sampled route: one draw per sample, at its global row
// key->row0 + i of the route site, so a sample's route does not depend on how the batch is split.
static inline float route_uniform(const fb_rng_key *key, int i) {
    return fb_uniform(key, fb_rng_row(key, (size_t)i));
}

// One choice among K from the probabilities p (K): `sample` ? the first k whose cumulative
// probability exceeds u (u uniform in [0, 1): P(k) = p_k) : the first maximum (torch.argmax).
static inline int route_pick(const float *p, int K, int sample, float u) {
    int k_best = 0;
    if (sample) {
        float c = 0.0f;
        for (int k = 0; k < K; k++) {
            c += p[k];
            if (p[k] > 0.0f) k_best = k;      // rounding left u above the sum: the last possible choice
            if (u < c && p[k] > 0.0f) return k;
        }
        return k_best;
    }
    for (int k = 1; k < K; k++)
        if (p[k] > p[k_best]) k_best = k;
    return k_best;
}

typedef struct {
    int B, D, F, residual, ffn_inner_dropout;
    float dropout;
    linear_params gate, dgate;
    mha_config mc;
    mha_params mha, dmha;
    mha_acts ma, dma;
    layernorm_params ln[2], dln[2];  // [0] soft rows (declared only with a norm_soft name), [1] gated rows
    ffn_config fc;
    ffn_params ffn, dffn;
    ffn_acts fa, dfa;
    float *x, *dx;                   // (B, 2, D) gathered [a_i; b_i], and its gradient
    float *att, *datt;               // (B, 2, D) attention output (2 tokens), and its gradient
    float *g, *dg;                   // (B, D) gate (gated rows), gradient of its logits
    float *s, *ds;                   // (B, D) base + attention mean, and its gradient
    float *y, *dy;                   // (B, D) LayerNorm output, and its gradient
    float *mean, *rstd;              // (B)
    float *z, *dz;                   // (B, D) FFN output (after the outer dropout), its gradient
    const int *rows;                 // the last forward's rows (sample indices), n_soft then gated
    int n_soft, n_gated;
} fuse_block;

// Checks H, F, widths; declares the tensors above (activations under "<prefix>.<method>.both").
// norm_soft NULL: no soft rows ever (energy_aware_adaptive). F = c->F or 4D (the source's).
fb_status fuse_block_declare(fuse_block *k, const fusion *f, fb_layout *P, fb_layout *A, const char *norm_soft,
                             const char *norm_gated, int residual, int ffn_inner_dropout);
// Writes out rows rows[0..n_soft + n_gated) (sample indices; soft rows first). w (B, 2) holds the
// soft rows' weights (may be NULL when n_soft = 0). keys: the dropout sites of the attention, the
// FFN's inner dropout and the FFN's outer dropout. `rows` must stay valid until backward.
fb_status fuse_block_forward(fuse_block *k, float *out, const float *a, const float *b, const int *rows,
                             int n_soft, int n_gated, const float *w, int training, const fb_rng_key keys[3]);
// Accumulates da, db (either may be NULL) and the parameter gradients for the rows of the last
// forward; writes dw (B, 2) rows of the soft samples (∂L/∂w; other rows untouched; may be NULL
// when n_soft = 0).
fb_status fuse_block_backward(fuse_block *k, float *da, float *db, float *dw, const float *dout, const float *a,
                              const float *b, const float *w, int training, const fb_rng_key keys[3]);
double fuse_block_flops(const fuse_block *k, int n_soft, int n_gated, int backward, int training);
