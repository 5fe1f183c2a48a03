// The residual cross-attention block shared by `attention` (000 §2.5 / §4.2) and
// `seq_cross_attention` (003 FUS-2 and the project's single-token form):
//
//   x   = MHA(q, kv, kv, key_padding_mask)     q (B, S, D), kv (B, T, Ek); kdim = vdim = Ek
//   out = LN(q + dropout(x))                   residual form (LayerNorm(D), eps 1e-5, affine)
//   out = x                                    without the residual
//
// MHA is kernels/attention.h (torch.nn.MultiheadAttention(D, H, dropout, kdim=Ek, vdim=Ek,
// batch_first=True)), dropout c->dropout on its probabilities; the residual dropout (p_resid,
// 0 for none) is a separate site; both masks follow the sample's global row (c.rng.row0 + b).
// Parameters (torch names under the names given to xattn_declare): <attn>.{q,k,v}_proj_weight,
// <attn>.{q,k,v}_proj_bias, <attn>.out_proj.{weight,bias} (mha_declare's torch initialisation:
// xavier on the in-projection) and <norm>.{weight,bias}.
//
// Activations under "<act_prefix>.": the MHA's (q, k, v, att, [attd], ctx) and, with the residual,
// r = q + dropout(x) (the LayerNorm's input; MHA writes x into r and the residual is added in
// place) with its gradient, mean/rstd (B*S); w = head-averaged attention weights (B, S, T),
// exposed in f->diag.attention.
//
// Passes. Forward: MHA (3 projection SGEMMs, per-(b, h) scores/softmax/context, out_proj SGEMM,
// the head average), then one residual pass (two with residual dropout in training), one
// LayerNorm. Backward: one LayerNorm backward into dr, one pass dq += dr (plus the in-place mask
// scaling of dr in training), then the MHA backward, which accumulates dq and dkv (the key and
// value gradients both go into dkv, one after the other).
// Dropout sites of the fusion point: XATTN_SITE_ATTN, XATTN_SITE_RESID; a user of the block
// numbers its own sites from XATTN_SITES.
#pragma once
#include "fusion.h"
#include "../attention.h"
#include "../layernorm.h"

#define XATTN_LN_EPS 1e-5f   // nn.LayerNorm's default, as both sources use

enum { XATTN_SITE_ATTN, XATTN_SITE_RESID, XATTN_SITES };

typedef struct {
    int B, S, T, D, Ek;
    int residual;            // 1: out = LN(q + dropout(x)); 0: out = x
    float p_resid;           // dropout on x before the residual (0: none)
    mha_config mc;
    mha_params p, g;
    layernorm_params ln, dln;
    mha_acts a, da;
    float *r, *dr;           // (B, S, D) q + dropout(x), the LayerNorm input, and its gradient
    float *mean, *rstd;      // (B * S)
    float *w;                // (B, S, T) head-averaged attention weights
} xattn_block;

// Checks H (f's method named in errors), declares parameters <attn_name>.*, <norm_name>.* (the
// latter only with the residual) and activations under act_prefix. The block must not move before
// the layouts are allocated (it lives in f->self).
fb_status xattn_declare(xattn_block *x, const fusion *f, fb_layout *P, fb_layout *A,
                        const char *attn_name, const char *norm_name, const char *act_prefix,
                        int B, int S, int T, int D, int Ek, int H, int residual, float p_resid);
// out (B, S, D) from q (B, S, D) and kv (B, T, Ek); mask (B, T), 1 = missing key, or NULL.
// Fills f->diag.attention with the weights.
fb_status xattn_forward(xattn_block *x, fusion *f, float *out, const float *q, const float *kv,
                        const uint8_t *mask);
// Accumulates dq (B, S, D) and dkv (B, T, Ek) (either may be NULL) and the block's parameter
// gradients; overwrites the block's activation gradients.
fb_status xattn_backward(xattn_block *x, fusion *f, float *dq, float *dkv, const float *dout,
                         const float *q, const float *kv);
double xattn_flops(const xattn_block *x, const fusion *f, int backward);
