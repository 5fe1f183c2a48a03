// Transformer feed-forward block (torch.nn.TransformerEncoderLayer's _ff_block without the outer
// dropout):  out = linear2(dropout(act(linear1(x)))),  linear1 D→F, linear2 F→D, act relu or gelu.
// Dropout is Philox (kernels/rng.h), element n*F + f of the site with n the row's global index
// (rng->row0 + local row, or through rng->row_map); identity when !training or p = 0. The leading
// dimension is the N rows as passed: a caller passing the B*S token rows of samples [b0, b0 + B)
// sets row0 = b0 * S (fb_rng_split_rows(key, S)), so a rank's masks are the whole batch's.
#pragma once
#include <stdint.h>
#include "activations.h"
#include "layout.h"
#include "linear.h"
#include "rng.h"

typedef struct {
    int D;                    // model width (input and output)
    int F;                    // hidden width (dim_feedforward)
    fb_activation activation; // FB_ACT_RELU or FB_ACT_GELU
    float dropout;            // after the activation, in [0, 1)
} ffn_config;

typedef struct {
    linear_params linear1;    // weight (F, D), bias (F)
    linear_params linear2;    // weight (D, F), bias (D)
} ffn_params;

typedef struct {
    float *h;   // (N, F) linear1 output (pre-activation)
    float *a;   // (N, F) dropout(act(h)), the input of linear2
} ffn_acts;

// FB_OK, or FB_ERR_SHAPE (D or F <= 0) / FB_ERR_CONFIG (other activation, dropout outside [0, 1)).
fb_status ffn_check_config(const ffn_config *c);
// Declares prefix.linear1.{weight,bias} and prefix.linear2.{weight,bias} (nn.Linear's default
// initialisation). With an empty prefix the names are torch's ("linear1.weight", ...). g may be
// NULL. Returns the first tensor's index or -1.
int ffn_declare(fb_layout *params_layout, const char *prefix, const ffn_config *c, ffn_params *p,
                ffn_params *g);
// Declares prefix.h, prefix.a for N rows (and their gradients, backward scratch, in slot 1; da may
// be NULL); h is tagged as linear1's output (layout.h). Returns an index or -1.
int ffn_declare_acts(fb_layout *acts_layout, const char *prefix, const ffn_config *c, int N,
                     ffn_acts *a, ffn_acts *da);

// out (N, D) from inp (N, D). `rng` is the dropout site and the global index of the first row (may
// be NULL when !training or p = 0).
fb_status ffn_forward(float *out, ffn_acts *a, const float *inp, const ffn_params *p,
                      const ffn_config *c, int N, int training, const fb_rng_key *rng);
// Accumulates dinp (N, D) (skipped when NULL) and the gradients in g; da is overwritten scratch.
fb_status ffn_backward(float *dinp, ffn_params *g, ffn_acts *da, const float *dout, const float *inp,
                       const ffn_acts *a, const ffn_params *p, const ffn_config *c, int N,
                       int training, const fb_rng_key *rng);

double ffn_flops_forward(const ffn_config *c, int N);
double ffn_flops_backward(const ffn_config *c, int N, int needs_dinp);
