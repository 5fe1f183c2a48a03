// LayerNorm over the last dim, as torch.nn.LayerNorm(D, eps): population variance, affine.
#pragma once
#include "layout.h"

typedef struct {
    float *weight;  // (D), initialised to 1; NULL means elementwise_affine=False
    float *bias;    // (D), initialised to 0; NULL likewise
} layernorm_params;

int layernorm_declare(fb_layout *L, const char *prefix, int D, layernorm_params *p, layernorm_params *g);

// out (N, D); mean, rstd (N) are saved for the backward pass. out may alias inp.
fb_status layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                            const layernorm_params *p, int N, int D, float eps);
// Accumulates dinp (N, D) (must not alias dout) and g->weight, g->bias (D) (each skipped when NULL,
// as is dinp; g may be NULL).
fb_status layernorm_backward(float *dinp, layernorm_params *g, const float *dout, const float *inp,
                             const float *mean, const float *rstd, const layernorm_params *p, int N, int D);
double layernorm_flops_forward(int N, int D);
double layernorm_flops_backward(int N, int D);
