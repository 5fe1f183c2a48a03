// Per-sample vectors broadcast over positions, for the 003 categorical fusions (categorical_concat,
// categorical_add, conditional_scaling, perceiver): the pooled categorical embedding c (B, C) is the
// same for all S positions of a sample, so it is projected once per sample and the broadcast is
// never formed; its gradient is the sum over positions.
//
// Determinism: sums over positions run in position order inside one thread per (sample, block of
// columns); SGEMMs split M/N only (OpenBLAS never splits K), so nothing depends on the thread count.
#pragma once
#include "../linear.h"

// u (B, W) = scale · Σ_s x (B, S, W), or u += that when `accumulate`. When acc is not NULL the same
// pass also does acc (B, S, W) += x (a residual branch's gradient, read once with the sum).
void fusion_sum_positions(float *u, const float *x, int B, int S, int W, float scale, int accumulate,
                          float *acc);

// Linear over a concatenation whose second part is broadcast over positions, Linear(I1 + I2 → OC)
// applied to [x (b, s) ; c (b)] at every position, W (OC, I1 + I2) declared with IC = I1 + I2:
//   u (B, OC) = c (B, I2) · W[:, I1:]ᵀ + bias          (once per sample)
//   out (B, S, OC) = x (B, S, I1) · W[:, :I1]ᵀ + u[b]  (rows seeded with u, SGEMM with beta = 1)
fb_status linear_bcast_forward(float *out, float *u, const float *x, int I1, const float *c, int I2,
                               const linear_params *p, int B, int S, int OC);
// Accumulates dx (B, S, I1), dc (B, I2) (either may be NULL), g->weight and g->bias; du (B, OC) is
// overwritten with Σ_s dout (the gradient of u).
fb_status linear_bcast_backward(float *dx, float *dc, linear_params *g, float *du, const float *dout,
                                const float *x, int I1, const float *c, int I2,
                                const linear_params *p, int B, int S, int OC);
double linear_bcast_flops_forward(int B, int S, int I1, int I2, int OC);
double linear_bcast_flops_backward(int B, int S, int I1, int I2, int OC, int needs_dinp);
