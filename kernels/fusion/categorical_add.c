// categorical_add (003, the project's base categorical fusion `--categorical-fusion add`; the
// document's "Current Limitations: position-agnostic fusion"): the pooled categorical embedding is
// projected to D and added to every position.
//
//   c   = [b_0; b_1; …; b_{K−1}]          (B, C), C = K·E   — the K column embeddings concatenated
//   out[b, s] = a[b, s] + W c[b] + w0      W (D, C), w0 (D)  — proj, Linear(C → D)
//
// a = H (B, S, D), b (B, K = T, E) the categorical metadata as K tokens (one Embedding(card, E) per
// column, E = 16 in the project; the harness does the lookup), out (B, S, D).
// Sources: the document names it; form and initialisation are the project's
// (../shared/SOURCE-SYSTEMS.md, 003 "Categorical fusion": H + Linear(C → D)(c), Xavier weight, zero
// bias). No variant.
// Choices where the sources are silent: parameter names proj.{weight,bias}; b_mask is not read (a
// missing column is the project's index 0, whose embedding is the zero vector, and that is what the
// harness's lookup puts in b). No diagnostics.
// u = W c + w0 is computed once per sample (B, D) and added to every position in one pass; the
// backward pass reads dout once for both da += dout and du = Σ_s dout, then one linear backward.
#include "fusion.h"
#include "broadcast.h"

typedef struct {
    linear_params proj, dproj;
    float *u, *du;      // (B, D) W c + w0, and Σ_s dout
} categorical_add_self;

static fb_status categorical_add_create(fusion *f, fb_layout *P, fb_layout *A) {
    const fusion_config *c = &f->c;
    const int C = c->T * c->E;
    FB_TRY(fusion_alloc_self(f, sizeof(categorical_add_self)));
    categorical_add_self *s = f->self;
    char name[FB_NAME_MAX];
    int w = linear_declare(P, fusion_name(f, "proj", name), C, c->D, 1, &s->proj, &s->dproj);
    if (w < 0) return FB_ERR_SHAPE;
    linear_init_xavier(P, w, C, c->D);
    if (fb_layout_add(A, fusion_name(f, "categorical_add", name), "u", 2, (int[]){c->B, c->D}, FB_INIT_ZERO, 0,
                      &s->u, &s->du) < 0)
        return FB_ERR_SHAPE;
    return FB_OK;
}

static fb_status categorical_add_forward(fusion *f, float *out, const float *a, const float *b) {
    categorical_add_self *s = f->self;
    const fusion_config *c = &f->c;
    const int B = c->B, S = c->S, D = c->D, N = B * S;
    FB_TRY(linear_forward(s->u, b, &s->proj, B, c->T * c->E, D));
    const float *restrict u = s->u;
    #pragma omp parallel for schedule(static) if ((size_t)N * D > FB_OMP_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *restrict x = a + (size_t)n * D, *restrict ub = u + (size_t)(n / S) * D;
        float *restrict y = out + (size_t)n * D;
        #pragma omp simd
        for (int d = 0; d < D; d++) y[d] = x[d] + ub[d];
    }
    return FB_OK;
}

static fb_status categorical_add_backward(fusion *f, float *da, float *db, const float *dout, const float *a,
                                          const float *b) {
    (void)a;
    categorical_add_self *s = f->self;
    const fusion_config *c = &f->c;
    fusion_sum_positions(s->du, dout, c->B, c->S, c->D, 1.0f, 0, da);   // du = Σ_s dout; da += dout
    return linear_backward(db, &s->dproj, s->du, b, &s->proj, c->B, c->T * c->E, c->D);
}

static double categorical_add_flops(const fusion *f, int backward) {
    const fusion_config *c = &f->c;
    int C = c->T * c->E;
    double n = (double)c->B * c->S * c->D;
    return backward ? linear_flops_backward(c->B, C, c->D, 1, 1) + 2 * n
                    : linear_flops_forward(c->B, C, c->D, 1) + n;
}

const fusion_method fusion_categorical_add = {
    .name = "categorical_add", .source = "003", .kind = FUSION_SEQUENCE, .typical_E = 16,
    .variants = {"default", NULL},
    .formula = "c = [b_1; ...; b_K];  out[b, s] = a[b, s] + W c[b] + w0  (broadcast over positions)",
    .create = categorical_add_create, .forward = categorical_add_forward,
    .backward = categorical_add_backward, .flops = categorical_add_flops,
};
