// The gate shared by gated_add and gated_interp (000, celestial gate fusion; SOURCE-SYSTEMS 000):
//
//   e_a = LN_a(a), e_b = LN_b(b)                 LayerNorm(D), eps 1e-5, affine ("no_norm": e = input)
//   g   = σ(W2 · GELU(W1 [e_a; e_b] + c1) + c2)   W1 (D, 2D), c1 (D), W2 (D, D), c2 (D)
//   out = mix(e_a, e_b, g)                        the method's element-wise rule (gate_mix)
//
// Parameters (torch names): norm_a.{weight,bias}, norm_b.{weight,bias} (not in "no_norm"),
// gate.0.{weight,bias} = W1, c1, gate.2.{weight,bias} = W2, c2 (the source's
// nn.Sequential(Linear, GELU, Linear, Sigmoid)). Xavier-uniform weights, zero biases, except c2
// initialised to c->gate_bias (−2.0 by default, the document's recommendation: g starts near 0.12;
// 0 gives the source code's ≈0.5 start).
//
// Activations (B, D) under "<prefix>.<method>.": ea, eb (+ gradients) and mean/rstd (B) when
// normalising; pre = W1 [e_a; e_b] + c1; h = GELU(pre) (+ its gradient, turned in place into the
// gradient of pre); g = the gate (+ the gradient of its logits).
//
// Passes: forward = 2 LayerNorms, 2 SGEMMs (+ bias seeding) into pre, one GELU pass, 1 SGEMM into
// the logits, then ONE pass applying σ and the mix. Backward = ONE mix pass (logit gradient and
// the direct e-gradients), 2 SGEMMs, one in-place GELU' pass, 4 SGEMMs, 2 LayerNorm backwards.
#pragma once
#include "fusion.h"
#include "../layernorm.h"
#include "../linear.h"

// A method's element-wise rule; each call is one pass over n = B*D elements.
typedef struct {
    // On entry g holds the gate's logits; replaces them by σ(logit) and writes out.
    void (*forward)(float *out, float *g, const float *ea, const float *eb, size_t n);
    // dlogit = ∂L/∂logit. dea, deb (NULL: not wanted) get the direct part of ∂L/∂e (the part that
    // does not go through the gate): written when `overwrite`, else added.
    void (*backward)(float *dlogit, float *dea, float *deb, const float *dout, const float *g,
                     const float *ea, const float *eb, size_t n, int overwrite);
    double flops_forward, flops_backward;   // per element, σ included
} gate_mix;

typedef struct {
    const gate_mix *mix;
    int norm;                               // 1: LayerNorm both inputs first
    layernorm_params norm_a, dnorm_a, norm_b, dnorm_b;
    linear_params w1, dw1, w2, dw2;
    float *ea, *dea, *eb, *deb;             // (B, D) normalised inputs and their gradients
    float *mean_a, *rstd_a, *mean_b, *rstd_b;   // (B)
    float *pre;                             // (B, D) W1 [e_a; e_b] + c1
    float *h, *dh;                          // (B, D) GELU(pre); gradient of h, then of pre
    float *g, *dg;                          // (B, D) gate; gradient of its logits
} gate_mlp;

// Checks E == D, allocates f->self (a gate_mlp), declares parameters and activations.
fb_status gate_mlp_create(fusion *f, fb_layout *P, fb_layout *A, const gate_mix *mix, int norm);
fb_status gate_mlp_forward(fusion *f, float *out, const float *a, const float *b);
fb_status gate_mlp_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b);
double gate_mlp_flops(const fusion *f, int backward);
