// Element-wise activations. The scalar forms are static inline so fused kernels (fusion methods
// doing bias + activation + gate in one pass after a GEMM) use exactly the same maths: they are the
// scalar instances of vecmath.h's functions, whose vector instances the array kernels below run,
// and the two agree bit for bit (use fb_tanh rather than libm's tanhf for the same reason).
#pragma once
#include <math.h>
#include <stddef.h>
#include "common.h"
#include "vecmath.h"

typedef enum { FB_ACT_IDENTITY, FB_ACT_RELU, FB_ACT_GELU, FB_ACT_SIGMOID, FB_ACT_TANH, FB_ACT_COUNT } fb_activation;

const char *fb_activation_name(fb_activation a);
// Returns the activation named `name` ("relu", "gelu", ...) or -1.
int fb_activation_parse(const char *name);

// GELU in its exact erf form, PyTorch's default (approximate='none'): x/2 (1 + erf(x / sqrt 2)).
static inline float fb_gelu(float x) { return fbs_gelu(x); }
// d/dx GELU = (1 + erf(x / sqrt 2)) / 2 + x exp(-x^2 / 2) / sqrt(2 pi)
static inline float fb_gelu_grad(float x) { return fbs_gelu_grad(x); }
// 1 / (1 + exp(-x))
static inline float fb_sigmoid(float x) { return fbs_sigmoid(x); }
static inline float fb_tanh(float x) { return fbs_tanh(x); }

// out (n) = act(inp); out may alias inp.
fb_status activation_forward(fb_activation a, float *out, const float *inp, size_t n);
// dinp (n) += act'(.) * dout. GELU and ReLU read `inp`; sigmoid and tanh read `out` (either may be
// NULL when the activation does not need it). dinp must not alias dout.
fb_status activation_backward(fb_activation a, float *dinp, const float *dout, const float *inp,
                              const float *out, size_t n);
double activation_flops_forward(fb_activation a, size_t n);
double activation_flops_backward(fb_activation a, size_t n);
