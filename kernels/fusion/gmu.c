// gmu (003, FUS-1 "Gated Multimodal Unit", Arevalo et al. 2017) on pooled representations:
// a = h_seq (B, D) the pooled sequence, b = h_cat (B, E = C) the categorical embeddings.
//
// Variant "document" (0), the document's GMU class:
//   h_s = tanh(W_s a + c_s)            W_s (D, D)       — seq_transform, Linear(D → D)
//   h_c = tanh(W_c b + c_c)            W_c (D, E)       — cat_transform, Linear(C → D)
//   z   = σ(W_g [a; b] + c_g)          W_g (D, D + E)   — gate, Linear(D + C → D)
//   out = z ⊙ h_s + (1 − z) ⊙ h_c
// Variant "residual", the project as shipped (../shared/SOURCE-SYSTEMS.md, 003):
//   h_c = tanh(W_c b + c_c),  z = σ(W_g [a; b] + c_g),  out = a + z ⊙ h_c      (no seq_transform)
//
// Diagnostics: the gate z (B, D) (the project logs its mean per batch).
// Initialisation: PyTorch's nn.Linear default for every layer (the document's code sets none).
// The concatenation is never formed (linear_concat_*). Each GEMM writes its pre-activation into its
// activation buffer; one pass then applies tanh/σ in place and blends, so the buffers hold h_s, h_c
// and z for the backward pass (tanh' = 1 − y², σ' = z (1 − z)).
#include "fusion.h"
#include <math.h>
#include "../activations.h"
#include "../linear.h"

enum { GMU_DOCUMENT, GMU_RESIDUAL };

typedef struct {
    linear_params seq, dseq, cat, dcat, gate, dgate;   // seq unused (NULL) in the residual form
    float *hs, *dhs;     // (B, D) h_s and the gradient of its pre-activation (document form only)
    float *hc, *dhc;     // (B, D) h_c and the gradient of its pre-activation
    float *z, *dz;       // (B, D) gate values and the gradient of their logits
} gmu_self;

static fb_status gmu_create(fusion *f, fb_layout *P, fb_layout *A) {
    const fusion_config *c = &f->c;
    FB_TRY(fusion_alloc_self(f, sizeof(gmu_self)));
    gmu_self *s = f->self;
    char name[FB_NAME_MAX], act[FB_NAME_MAX];
    int doc = c->variant == GMU_DOCUMENT;
    if (doc && linear_declare(P, fusion_name(f, "seq_transform", name), c->D, c->D, 1, &s->seq, &s->dseq) < 0)
        return FB_ERR_SHAPE;
    if (linear_declare(P, fusion_name(f, "cat_transform", name), c->E, c->D, 1, &s->cat, &s->dcat) < 0) return FB_ERR_SHAPE;
    if (linear_declare(P, fusion_name(f, "gate", name), c->D + c->E, c->D, 1, &s->gate, &s->dgate) < 0) return FB_ERR_SHAPE;
    fusion_name(f, "gmu", act);
    int dims[2] = {c->B, c->D};
    if (doc && fb_layout_add(A, act, "h_seq", 2, dims, FB_INIT_ZERO, 0, &s->hs, &s->dhs) < 0) return FB_ERR_SHAPE;
    if (fb_layout_add(A, act, "h_cat", 2, dims, FB_INIT_ZERO, 0, &s->hc, &s->dhc) < 0) return FB_ERR_SHAPE;
    if (fb_layout_add(A, act, "z", 2, dims, FB_INIT_ZERO, 0, &s->z, &s->dz) < 0) return FB_ERR_SHAPE;
    return FB_OK;
}

static fb_status gmu_forward(fusion *f, float *out, const float *a, const float *b) {
    gmu_self *s = f->self;
    int B = f->c.B, D = f->c.D, E = f->c.E;
    size_t n = (size_t)B * D;
    FB_TRY(linear_forward(s->hc, b, &s->cat, B, E, D));
    FB_TRY(linear_concat_forward(s->z, a, D, b, E, &s->gate, B, D));
    float *restrict hc = s->hc, *restrict z = s->z;
    if (f->c.variant == GMU_DOCUMENT) {
        FB_TRY(linear_forward(s->hs, a, &s->seq, B, D, D));
        float *restrict hs = s->hs;
        #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
        for (size_t i = 0; i < n; i++) {
            float ys = fb_tanh(hs[i]), yc = fb_tanh(hc[i]), g = fb_sigmoid(z[i]);
            hs[i] = ys; hc[i] = yc; z[i] = g;
            out[i] = yc + g * (ys - yc);
        }
    } else {
        #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
        for (size_t i = 0; i < n; i++) {
            float yc = fb_tanh(hc[i]), g = fb_sigmoid(z[i]);
            hc[i] = yc; z[i] = g;
            out[i] = a[i] + g * yc;
        }
    }
    f->diag.gate = s->z;
    f->diag.gate_count = n;
    return FB_OK;
}

static fb_status gmu_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b) {
    gmu_self *s = f->self;
    int B = f->c.B, D = f->c.D, E = f->c.E;
    size_t n = (size_t)B * D;
    const float *restrict hc = s->hc, *restrict z = s->z;
    float *restrict dhc = s->dhc, *restrict dz = s->dz;
    if (f->c.variant == GMU_DOCUMENT) {
        const float *restrict hs = s->hs;
        float *restrict dhs = s->dhs;
        #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
        for (size_t i = 0; i < n; i++) {
            float g = z[i], d = dout[i];
            dz[i] = d * (hs[i] - hc[i]) * g * (1.0f - g);
            dhs[i] = d * g * (1.0f - hs[i] * hs[i]);
            dhc[i] = d * (1.0f - g) * (1.0f - hc[i] * hc[i]);
        }
        FB_TRY(linear_backward(da, &s->dseq, dhs, a, &s->seq, B, D, D));
    } else {
        #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
        for (size_t i = 0; i < n; i++) {
            float g = z[i], d = dout[i];
            dz[i] = d * hc[i] * g * (1.0f - g);
            dhc[i] = d * g * (1.0f - hc[i] * hc[i]);
            if (da) da[i] += d;   // the residual path
        }
    }
    FB_TRY(linear_backward(db, &s->dcat, dhc, b, &s->cat, B, E, D));
    return linear_concat_backward(da, db, &s->dgate, s->dz, a, D, b, E, &s->gate, B, D);
}

static double gmu_flops(const fusion *f, int backward) {
    int B = f->c.B, D = f->c.D, E = f->c.E;
    double n = (double)B * D;
    int doc = f->c.variant == GMU_DOCUMENT;
    if (!backward)   // tanh 1, σ 3 (activation_flops_forward); blend 3 (doc) or 2 (residual)
        return linear_flops_forward(B, E, D, 1) + linear_flops_forward(B, D + E, D, 1)
             + (doc ? linear_flops_forward(B, D, D, 1) + 8 * n : 6 * n);
    return linear_flops_backward(B, E, D, 1, 1) + linear_flops_backward(B, D + E, D, 1, 1)
         + (doc ? linear_flops_backward(B, D, D, 1, 1) + 14 * n : 9 * n);
}

const fusion_method fusion_gmu = {
    .name = "gmu", .source = "003", .kind = FUSION_VECTOR, .typical_E = 128,
    .variants = {"document", "residual", NULL},
    .formula = "z = sigmoid(W_g [a; b] + c_g);  out = z * tanh(W_s a + c_s) + (1 - z) * tanh(W_c b + c_c)",
    .create = gmu_create, .forward = gmu_forward, .backward = gmu_backward, .flops = gmu_flops,
};
