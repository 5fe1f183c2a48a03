// Transformer encoder layer, as torch.nn.TransformerEncoderLayer(d_model=D, nhead=H,
// dim_feedforward=F, dropout=p, activation=relu|gelu, batch_first=True, norm_first, layer_norm_eps):
//   post-norm (norm_first = 0, torch's default):
//     x1 = norm1(x + drop1(SA(x)))          out = norm2(x1 + drop2(FFN(x1)))
//   pre-norm (norm_first = 1):
//     x1 = x + drop1(SA(norm1(x)))          out = x1 + drop2(FFN(norm2(x1)))
// SA is self-attention (kernels/attention.h) with the optional src_key_padding_mask, FFN is
// kernels/ffn.h (its own dropout between the linears). The four dropout sites are
//   c->site + ENC_SITE_ATTN (attention probabilities), + ENC_SITE_DROP1, + ENC_SITE_FFN, + ENC_SITE_DROP2,
// so a stack of layers gives layer l the base site  base + ENC_LAYER_SITES * l.
// A fully masked sample (every position padded) gets attention output bo instead of torch's NaN
// (see attention.h).
#pragma once
#include <stdint.h>
#include "attention.h"
#include "ffn.h"
#include "layernorm.h"

enum { ENC_SITE_ATTN, ENC_SITE_DROP1, ENC_SITE_FFN, ENC_SITE_DROP2, ENC_LAYER_SITES };

typedef struct {
    int D, H, F;
    fb_activation activation;  // FB_ACT_RELU or FB_ACT_GELU
    float dropout;             // every dropout of the layer, in [0, 1)
    int norm_first;            // 0: post-norm (torch default), 1: pre-norm
    float eps;                 // layer_norm_eps (torch default 1e-5)
    uint32_t site;             // first of the ENC_LAYER_SITES dropout sites
} encoder_layer_config;

// Parameter names (with an empty prefix) are torch's, with in_proj split (attention.h):
//   self_attn.{q,k,v}_proj_weight, self_attn.{q,k,v}_proj_bias, self_attn.out_proj.{weight,bias},
//   linear1.{weight,bias}, linear2.{weight,bias}, norm1.{weight,bias}, norm2.{weight,bias}
typedef struct {
    mha_params self_attn;
    ffn_params ff;             // linear1, linear2
    layernorm_params norm1, norm2;
} encoder_layer_params;

// Activations; which are declared depends on norm_first (the others stay NULL):
//   post-norm: sa = SA(x), r1 = x + drop1(sa), x1 = norm1(r1), ff = FFN(x1), r2 = x1 + drop2(ff)
//   pre-norm:  n1 = norm1(x), sa = SA(n1), x1 = x + drop1(sa), n2 = norm2(x1), ff = FFN(n2)
// mean/rstd (B*S) are the norms' statistics (no gradient slot).
typedef struct {
    mha_acts attn;
    ffn_acts ffn;
    float *n1, *sa, *r1, *x1, *n2, *ff, *r2;   // (B, S, D)
    float *mean1, *rstd1, *mean2, *rstd2;      // (B*S)
} encoder_layer_acts;

fb_status encoder_layer_check_config(const encoder_layer_config *c);
// g may be NULL. Returns the first tensor's index or -1.
int encoder_layer_declare(fb_layout *params_layout, const char *prefix, const encoder_layer_config *c,
                          encoder_layer_params *p, encoder_layer_params *g);
// Activations for B sequences of S positions (gradients in slot 1 are backward scratch; da may be
// NULL), with module tags (layout.h) on the norms', the attention's and the FFN linears' outputs.
// Returns an index or -1.
int encoder_layer_declare_acts(fb_layout *acts_layout, const char *prefix, const encoder_layer_config *c,
                               int B, int S, encoder_layer_acts *a, encoder_layer_acts *da);
// The module whose output is the layer's output `out` (the caller's buffer, which the caller tags):
// post-norm norm2 (FB_MODULE_LAYERNORM); pre-norm a residual sum (FB_MODULE_NONE).
fb_module_kind encoder_layer_output_module(const encoder_layer_config *c);

// out (B, S, D) from x (B, S, D); out must not alias x. src_key_padding_mask (B, S), 1 = padding,
// or NULL. `rng` supplies seed, step and row0, the global row of the first of the B samples (its
// site is replaced by c->site + ENC_SITE_*; a row map is refused); every mask follows the sample's
// global row (the FFN's token rows start at row0 * S), so samples [k, B) run alone with row0 = k
// get the whole batch's masks. It may be NULL when !training or c->dropout == 0.
fb_status encoder_layer_forward(float *out, encoder_layer_acts *a, const float *x,
                                const uint8_t *src_key_padding_mask, const encoder_layer_params *p,
                                const encoder_layer_config *c, int B, int S, int training,
                                const fb_rng_key *rng);
// Accumulates dx (B, S, D) (skipped when NULL) and the gradients in g; da is overwritten scratch.
// dout must not alias dx.
fb_status encoder_layer_backward(float *dx, encoder_layer_params *g, encoder_layer_acts *da,
                                 const float *dout, const float *x, const encoder_layer_acts *a,
                                 const encoder_layer_params *p, const encoder_layer_config *c,
                                 int B, int S, int training, const fb_rng_key *rng);

double encoder_layer_flops_forward(const encoder_layer_config *c, int B, int S);
double encoder_layer_flops_backward(const encoder_layer_config *c, int B, int S, int needs_dinp);
