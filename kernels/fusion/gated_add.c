// gated_add (000 §2.3 "Gated Addition", §3 the recommended form; SOURCE-SYSTEMS 000 "Celestial gate
// fusion"): a LayerNormed baseline plus a gated share of the second stream.
//
//   e_a = LN_a(a), e_b = LN_b(b)                  LayerNorm(D), eps 1e-5, affine
//   g   = σ(W2 · GELU(W1 [e_a; e_b] + c1) + c2)    W1 (D, 2D), W2 (D, D)
//   out = e_a + g ⊙ e_b
//
// a (B, D), b (B, D) -> out (B, D). Diagnostics: the gate g (B, D).
// Variants:
//   "default"  the form above (the document's §3 "after LayerNorm fix" code, the source's form).
//   "no_norm"  no LayerNorms (e_a = a, e_b = b): the document's un-normalised gated addition of
//              §2.3, needed to study the magnitude imbalance of §1.
// Choices where the document is silent (the source's code per SOURCE-SYSTEMS 000 otherwise):
//   - gate_mlp = Linear(2D → D), GELU, Linear(D → D), then σ, with biases (the source's
//     σ(W2 · GELU(W1 [e; fused]))); Xavier-uniform weights, zero biases, except the last bias
//     initialised to c->gate_bias = −2.0 (the document's §5 recommendation: g starts at ≈0.12;
//     gate_bias = 0 reproduces the source's ≈0.5 start).
//   - one LayerNorm per stream (the source's LN_e on the encoder and LN_c on the fused output);
//     the gate reads the normalised streams, and the baseline is e_a, not a (the source's
//     out = e + g ⊙ fused).
//   - E must equal D (the source projects the second stream to d_model before fusing).
// The gate MLP, the LayerNorms and the buffers are shared with gated_interp (gate_mlp.c); this
// file holds the element-wise rule only: forward one pass (σ and the sum), backward one pass.
#include "gate_mlp.h"
#include "../activations.h"

static void gated_add_mix_forward(float *out, float *g, const float *ea, const float *eb, size_t n) {
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float gi = fb_sigmoid(g[i]);
        g[i] = gi;
        out[i] = ea[i] + gi * eb[i];
    }
}

static void gated_add_mix_backward(float *dlogit, float *dea, float *deb, const float *dout, const float *g,
                                   const float *ea, const float *eb, size_t n, int overwrite) {
    (void)ea;
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float d = dout[i], gi = g[i];
        dlogit[i] = d * eb[i] * gi * (1.0f - gi);             // through σ to the logits
        if (dea) dea[i] = (overwrite ? 0.0f : dea[i]) + d;
        if (deb) deb[i] = (overwrite ? 0.0f : deb[i]) + d * gi;
    }
}

// Per element: forward σ (3) + multiply-add (2); backward logit (4), dea (1), deb (2).
static const gate_mix gated_add_mix = {gated_add_mix_forward, gated_add_mix_backward, 5.0, 7.0};

static fb_status gated_add_create(fusion *f, fb_layout *P, fb_layout *A) {
    return gate_mlp_create(f, P, A, &gated_add_mix, f->c.variant == 0);
}

const fusion_method fusion_gated_add = {
    .name = "gated_add", .source = "000", .kind = FUSION_VECTOR, .has_gate_bias = 1,
    .variants = {"default", "no_norm", NULL},
    .formula = "e_a = LN(a), e_b = LN(b); g = sigmoid(W2 GELU(W1 [e_a; e_b] + c1) + c2);  out = e_a + g * e_b",
    .create = gated_add_create, .forward = gate_mlp_forward, .backward = gate_mlp_backward, .flops = gate_mlp_flops,
};
