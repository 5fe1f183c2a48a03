// gated_interp (000 §2.4 "Gated Interpolation", §5 the optional interpolation mode): a convex,
// per-dimension blend of the two LayerNormed streams.
//
//   e_a = LN_a(a), e_b = LN_b(b)                  LayerNorm(D), eps 1e-5, affine
//   g   = σ(W2 · GELU(W1 [e_a; e_b] + c1) + c2)    W1 (D, 2D), W2 (D, D)
//   out = (1 − g) ⊙ e_a + g ⊙ e_b                 (computed as e_a + g ⊙ (e_b − e_a))
//
// a (B, D), b (B, D) -> out (B, D). Diagnostics: the gate g (B, D).
// Variants:
//   "default"  the form above (§5's `(1 - gate) * enc_out_norm + gate * fused_norm`).
//   "no_norm"  no LayerNorms (e_a = a, e_b = b): §2.4's un-normalised form, for the imbalance study.
// Choices where the document is silent: the same gate as gated_add (the source's celestial gate,
// SOURCE-SYSTEMS 000: Linear(2D → D), GELU, Linear(D → D), σ; Xavier-uniform weights, zero biases,
// the last bias initialised to c->gate_bias = −2.0, §5's recommendation, so g ≈ 0.12 and the blend
// starts near e_a; one LayerNorm per stream; E must equal D). The gate MLP, the LayerNorms and the
// buffers are shared with gated_add (gate_mlp.c); this file holds the element-wise rule only.
#include "gate_mlp.h"
#include "../activations.h"

static void gated_interp_mix_forward(float *out, float *g, const float *ea, const float *eb, size_t n) {
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float gi = fb_sigmoid(g[i]);
        g[i] = gi;
        out[i] = ea[i] + gi * (eb[i] - ea[i]);
    }
}

static void gated_interp_mix_backward(float *dlogit, float *dea, float *deb, const float *dout, const float *g,
                                      const float *ea, const float *eb, size_t n, int overwrite) {
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float d = dout[i], gi = g[i];
        dlogit[i] = d * (eb[i] - ea[i]) * gi * (1.0f - gi);   // through σ to the logits
        if (dea) dea[i] = (overwrite ? 0.0f : dea[i]) + d * (1.0f - gi);
        if (deb) deb[i] = (overwrite ? 0.0f : deb[i]) + d * gi;
    }
}

// Per element: forward σ (3) + subtract and multiply-add (3); backward logit (5), dea (2), deb (2).
static const gate_mix gated_interp_mix = {gated_interp_mix_forward, gated_interp_mix_backward, 6.0, 9.0};

static fb_status gated_interp_create(fusion *f, fb_layout *P, fb_layout *A) {
    return gate_mlp_create(f, P, A, &gated_interp_mix, f->c.variant == 0);
}

const fusion_method fusion_gated_interp = {
    .name = "gated_interp", .source = "000", .kind = FUSION_VECTOR, .has_gate_bias = 1,
    .variants = {"default", "no_norm", NULL},
    .formula = "e_a = LN(a), e_b = LN(b); g = sigmoid(W2 GELU(W1 [e_a; e_b] + c1) + c2);  out = (1 - g) * e_a + g * e_b",
    .create = gated_interp_create, .forward = gate_mlp_forward, .backward = gate_mlp_backward, .flops = gate_mlp_flops,
};
