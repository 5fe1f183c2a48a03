// A two-layer MLP over a concatenation, shared by concat_mlp and modality_dropout:
//
//   h = W1 [x1; x2] + c1      W1 (F, I1 + I2)   — tensor `<prefix>fc1`, PyTorch default init
//   y = dropout(act(h))       act: ReLU or GELU; dropout p at rng site `key` (identity when p = 0),
//                             row n's mask at the key's global row key->row0 + n
//   out = W2 y + c2           W2 (OC, F)        — tensor `<prefix>fc2`
//
// x1 (N, I1), x2 (N, I2) -> out (N, OC). The concatenation is never formed (linear_concat_*).
// Activations: h and y (N, F) with their gradient slots, named `<act_prefix>.h`, `<act_prefix>.y`.
#pragma once
#include "fusion.h"
#include "../activations.h"
#include "../linear.h"

typedef struct {
    linear_params fc1, dfc1, fc2, dfc2;
    float *h, *dh;      // (N, F) fc1 output (pre-activation), and its gradient
    float *y, *dy;      // (N, F) fc2 input (after activation and dropout), and its gradient
    int N, I1, I2, F, OC;   // N: rows it was declared for
    const fusion *owner;    // its current c.B (<= N) is the rows of each call
    fb_activation act;  // FB_ACT_RELU or FB_ACT_GELU
} mlp2;

// Declares fc1, fc2 (parameter names fusion_name(f, "fc1"), ...) and h, y (activations under
// fusion_name(f, act_prefix)). The mlp2 struct must not move before the layouts are allocated.
fb_status mlp2_declare(mlp2 *m, const fusion *f, fb_layout *P, fb_layout *A, const char *act_prefix,
                       int N, int I1, int I2, int F, int OC, fb_activation act);
fb_status mlp2_forward(mlp2 *m, float *out, const float *x1, const float *x2, float p,
                       const fb_rng_key *key, int training);
// Accumulates dx1, dx2 (either may be NULL) and the parameter gradients; overwrites dh, dy.
fb_status mlp2_backward(mlp2 *m, float *dx1, float *dx2, const float *dout, const float *x1,
                        const float *x2, float p, const fb_rng_key *key, int training);
double mlp2_flops(const mlp2 *m, int backward, int dropout_active, int needs_dx);
