// Multi-head attention, as torch.nn.MultiheadAttention(embed_dim=D, num_heads=H, dropout=p,
// kdim=Ek, vdim=Ev, batch_first=True) with need_weights / average_attn_weights=True:
//   q = query·Wqᵀ + bq (B,S,D)   k = key·Wkᵀ + bk (B,T,D)   v = value·Wvᵀ + bv (B,T,D)
//   per head h (dh = D/H columns h*dh..):  P = softmax(q_h k_hᵀ / √dh, key_padding_mask → -inf)
//   P' = dropout(P) (training only)        ctx_h = P' v_h        out = ctx·Woᵀ + bo
// The in-projection is stored as three tensors (torch's in_proj_weight rows [0:D], [D:2D], [2D:3D]
// when Ek = Ev = D; q_proj_weight / k_proj_weight / v_proj_weight otherwise) and three biases
// (in_proj_bias split likewise).
//
// Differences from torch, on purpose:
//   - a query whose keys are all masked gets attention weights 0 and ctx 0 (so its output row is
//     bo), where torch returns NaN for that row; gradients through it are 0.
//   - the dropout mask is Philox (kernels/rng.h), element ((b*H + h)*S + s)*T + t of the site
//     with b the sample's global row (rng->row0 + local b, or through rng->row_map), not torch's
//     generator; with dropout = 0 or training = 0 results match torch.
// As in torch, the returned averaged weights are the probabilities after dropout when training.
//
// Determinism: each (b, h) pair is computed by one thread (OpenBLAS runs single-threaded inside the
// OpenMP region), and projections split SGEMMs over M/N only, so results do not depend on the
// thread count.
#pragma once
#include <stdint.h>
#include "layout.h"
#include "rng.h"

typedef struct {
    int D;          // embed_dim (query width and output width)
    int Ek, Ev;     // key / value feature widths (kdim, vdim; D for self-attention)
    int H;          // heads; must divide D
    float dropout;  // on the attention probabilities, in [0, 1)
} mha_config;

typedef struct {
    float *wq, *bq;   // (D, D), (D)
    float *wk, *bk;   // (D, Ek), (D)
    float *wv, *bv;   // (D, Ev), (D)
    float *wo, *bo;   // (D, D), (D)   out_proj
} mha_params;

typedef struct {
    float *q;     // (B, S, D) projected queries
    float *k;     // (B, T, D) projected keys
    float *v;     // (B, T, D) projected values
    float *att;   // (B, H, S, T) attention probabilities before dropout
    float *attd;  // (B, H, S, T) after dropout; declared only when dropout > 0 (else NULL)
    float *ctx;   // (B, S, D) heads concatenated, input of out_proj
} mha_acts;

// Heads whose products have at most this many multiply-adds (S*T*dh) use plain loops instead of
// SGEMM calls (a 2-token attention is cheaper than one BLAS call). A tuning knob; tests set it to
// 0 or a large value to check both paths.
extern int mha_loop_work;

// FB_OK, or FB_ERR_SHAPE (a size <= 0) / FB_ERR_CONFIG (H not dividing D, dropout outside [0, 1)).
fb_status mha_check_config(const mha_config *c);

// Declares prefix.{q,k,v}_proj_weight, prefix.{q,k,v}_proj_bias, prefix.out_proj.weight,
// prefix.out_proj.bias with torch's initialisation: xavier_uniform on the in-projection (over the
// whole (3D, D) in_proj_weight when Ek = Ev = D, i.e. bound √(6/(4D)); over each of the separate
// weights otherwise), out_proj weight U(±1/√D) (nn.Linear's default), all biases 0.
// g may be NULL. Returns the index of the first tensor, or -1 (fb_last_error()).
int mha_declare(fb_layout *params_layout, const char *prefix, const mha_config *c, mha_params *p,
                mha_params *g);
// Declares the activations (and, in slot 1, their gradients, used as backward scratch) for
// a batch of B queries of length S attending to T keys. da may be NULL. Returns an index or -1.
int mha_declare_acts(fb_layout *acts_layout, const char *prefix, const mha_config *c, int B, int S,
                     int T, mha_acts *a, mha_acts *da);

// out (B, S, D); attn_weights (B, S, T) head-averaged weights, or NULL to skip them.
// query (B, S, D), key (B, T, Ek), value (B, T, Ev): the same pointer may be passed for all three
// (self-attention). Ek, Ev are the widths of the buffers passed; they must equal c->Ek, c->Ev.
// key_padding_mask (B, T), 1 = ignore that key, or NULL. `rng` is this attention's dropout site
// (seed, step, site) and the global row of its first sample (row0, leading dimension B; or a row
// map); it may be NULL when !training or c->dropout == 0.
fb_status mha_forward(float *out, float *attn_weights, mha_acts *a,
                      const float *query, const float *key, const float *value,
                      const uint8_t *key_padding_mask, const mha_params *p, const mha_config *c,
                      int B, int S, int T, int Ek, int Ev, int training, const fb_rng_key *rng);
// Accumulates dquery (B, S, D), dkey (B, T, Ek), dvalue (B, T, Ev) (each skipped when NULL; they
// may be the same buffer for self-attention) and every gradient in g. da holds scratch and is
// overwritten; a, training and rng must be those of the forward pass. dout is (B, S, D).
fb_status mha_backward(float *dquery, float *dkey, float *dvalue, mha_params *g, mha_acts *da,
                       const float *dout, const float *query, const float *key, const float *value,
                       const mha_acts *a, const mha_params *p, const mha_config *c,
                       int B, int S, int T, int Ek, int Ev, int training, const fb_rng_key *rng);

// FLOPs (multiply-add = 2) of one forward (attention weights not averaged) / backward (with input
// gradients when needs_dinp).
double mha_flops_forward(const mha_config *c, int B, int S, int T);
double mha_flops_backward(const mha_config *c, int B, int S, int T, int needs_dinp);
