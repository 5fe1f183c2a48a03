// film_head (003, "FiLM head"): FiLM on the hidden layers of the MLP head after pooling.
// a = pooled sequence (B, D), b = categorical embedding (B, E = C).
//
//   x_0 = a
//   for l = 0 .. L−1 (L = c->layers, 1 when 0):
//     γ_l = G_l b + g_l              G_l (F, E)     — hidden.l.gamma, Linear(C → F)
//     β_l = H_l b + h_l              H_l (F, E)     — hidden.l.beta,  Linear(C → F)
//     x_{l+1} = dropout(ReLU(γ_l ⊙ (W_l x_l + c_l) + β_l))
//                                    W_l (F, D) for l = 0, (F, F) after — hidden.l.fc
//   out = W_o x_L + c_o              W_o (D, F)     — out, Linear(F → D)
//
// a (B, D), b (B, E) -> out (B, D). No diagnostics.
// Source: the document (003) only names it ("FiLM modulates the MLP hidden layers AFTER pooling");
// the form is the project's (../shared/SOURCE-SYSTEMS.md, 003 "FiLM head", since removed from it):
// γ = Linear(cat → h), β = Linear(cat → h), each hidden layer ReLU(γ ⊙ (W x + b) + β), dropout.
// There is no variant. Choices where the sources are silent:
//   - Hidden width F = c->F, or D when 0; every hidden layer has its own γ/β (conditioned on the
//     same b); dropout c->dropout (0.1 by default) after each hidden layer, at rng site l, row b's
//     mask at its global row c.rng.row0 + b.
//   - The project's head ends in its own prediction layer; here the final Linear(F → D) gives the
//     method a (B, D) output so that the model's own head follows, as for every fusion method.
//   - Initialisation as the project: γ/β weights 0, γ bias 1, β bias 0 (identity modulation);
//     W_l and W_o PyTorch's nn.Linear default.
// Cost: γ goes to its own buffer, β straight into the layer's output buffer, then one pass makes
// ReLU(γ ⊙ u + β) in place (and dropout in place). The backward pass reads the ReLU/dropout mask
// off the saved output (x > 0 exactly where the unit was positive and kept; kept values were scaled
// by 1/(1 − p)), so one pass gives dβ, dγ and du without regenerating the mask.
#include "fusion.h"
#include <stdio.h>
#include <string.h>
#include "../dropout.h"
#include "../linear.h"

#define FILM_HEAD_MAX_LAYERS 16   // one dropout rng site per layer; a fusion point owns 16

typedef struct {
    linear_params fc, dfc, gamma, dgamma, beta, dbeta;
    float *u, *du;       // (B, F) W x + c, and its gradient
    float *g, *dg;       // (B, F) γ, and its gradient
    float *x, *dx;       // (B, F) the layer's output x_{l+1}, and its gradient (overwritten by dβ)
} film_head_layer;

typedef struct {
    linear_params out, gout;    // the final Linear(F → D) and its gradients
    int layers;
    film_head_layer layer[];
} film_head_self;

static fb_status film_head_create(fusion *f, fb_layout *P, fb_layout *A) {
    fusion_config *c = &f->c;
    if (c->F == 0) c->F = c->D;
    if (c->layers == 0) c->layers = 1;
    FB_REQUIRE(c->F > 0, FB_ERR_CONFIG, "film_head: hidden width F=%d must be > 0", c->F);
    FB_REQUIRE(c->layers > 0 && c->layers <= FILM_HEAD_MAX_LAYERS, FB_ERR_CONFIG,
               "film_head: layers=%d outside [1, %d]", c->layers, FILM_HEAD_MAX_LAYERS);
    FB_TRY(fusion_alloc_self(f, sizeof(film_head_self) + (size_t)c->layers * sizeof(film_head_layer)));
    film_head_self *s = f->self;
    s->layers = c->layers;
    char sub[FB_NAME_MAX], name[FB_NAME_MAX];
    int dims[2] = {c->B, c->F};
    for (int l = 0; l < c->layers; l++) {
        film_head_layer *L = &s->layer[l];
        snprintf(sub, sizeof sub, "hidden.%d.fc", l);
        if (linear_declare(P, fusion_name(f, sub, name), l ? c->F : c->D, c->F, 1, &L->fc, &L->dfc) < 0) return FB_ERR_SHAPE;
        snprintf(sub, sizeof sub, "hidden.%d.gamma", l);
        int wg = linear_declare(P, fusion_name(f, sub, name), c->E, c->F, 1, &L->gamma, &L->dgamma);
        snprintf(sub, sizeof sub, "hidden.%d.beta", l);
        int wb = linear_declare(P, fusion_name(f, sub, name), c->E, c->F, 1, &L->beta, &L->dbeta);
        if (wg < 0 || wb < 0) return FB_ERR_SHAPE;
        fb_layout_set_init(P, wg, FB_INIT_ZERO, 0.0f);       // identity FiLM: γ = 1, β = 0
        fb_layout_set_init(P, wg + 1, FB_INIT_CONST, 1.0f);  // (a bias follows its weight)
        fb_layout_set_init(P, wb, FB_INIT_ZERO, 0.0f);
        fb_layout_set_init(P, wb + 1, FB_INIT_ZERO, 0.0f);
        snprintf(sub, sizeof sub, "film_head.hidden.%d", l);
        fusion_name(f, sub, name);
        if (fb_layout_add(A, name, "u", 2, dims, FB_INIT_ZERO, 0, &L->u, &L->du) < 0) return FB_ERR_SHAPE;
        if (fb_layout_add(A, name, "gamma", 2, dims, FB_INIT_ZERO, 0, &L->g, &L->dg) < 0) return FB_ERR_SHAPE;
        if (fb_layout_add(A, name, "x", 2, dims, FB_INIT_ZERO, 0, &L->x, &L->dx) < 0) return FB_ERR_SHAPE;
    }
    if (linear_declare(P, fusion_name(f, "out", name), c->F, c->D, 1, &s->out, &s->gout) < 0) return FB_ERR_SHAPE;
    return FB_OK;
}

static int film_head_dropout_active(const fusion *f) { return f->c.training && f->c.dropout > 0.0f; }

static fb_status film_head_forward(fusion *f, float *out, const float *a, const float *b) {
    film_head_self *s = f->self;
    const fusion_config *c = &f->c;
    int B = c->B, D = c->D, E = c->E, F = c->F;
    size_t n = (size_t)B * F;
    const float *x = a;
    int IC = D;
    for (int l = 0; l < s->layers; l++) {
        film_head_layer *L = &s->layer[l];
        FB_TRY(linear_forward(L->u, x, &L->fc, B, IC, F));
        FB_TRY(linear_forward(L->g, b, &L->gamma, B, E, F));
        FB_TRY(linear_forward(L->x, b, &L->beta, B, E, F));   // β, replaced by the output below
        const float *restrict u = L->u, *restrict g = L->g;
        float *restrict y = L->x;
        #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
        for (size_t i = 0; i < n; i++) {
            float v = g[i] * u[i] + y[i];
            y[i] = v < 0.0f ? 0.0f : v;   // NaN propagates, as torch.relu
        }
        if (film_head_dropout_active(f)) {
            fb_rng_key key = fusion_rng(f, (uint32_t)l);
            FB_TRY(dropout_rows_forward(L->x, L->x, (size_t)B, (size_t)F, c->dropout, &key, 1));
        }
        x = L->x;
        IC = F;
    }
    return linear_forward(out, x, &s->out, B, F, D);
}

static fb_status film_head_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b) {
    film_head_self *s = f->self;
    const fusion_config *c = &f->c;
    int B = c->B, D = c->D, E = c->E, F = c->F;
    size_t n = (size_t)B * F;
    float scale = film_head_dropout_active(f) ? 1.0f / (1.0f - c->dropout) : 1.0f;
    film_head_layer *last = &s->layer[s->layers - 1];
    memset(last->dx, 0, n * sizeof(float));
    FB_TRY(linear_backward(last->dx, &s->gout, dout, last->x, &s->out, B, F, D));
    for (int l = s->layers - 1; l >= 0; l--) {
        film_head_layer *L = &s->layer[l];
        const float *restrict u = L->u, *restrict g = L->g, *restrict y = L->x;
        float *restrict dy = L->dx, *restrict dg = L->dg, *restrict du = L->du;
        #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
        for (size_t i = 0; i < n; i++) {
            float dpre = y[i] > 0.0f ? dy[i] * scale : 0.0f;   // through dropout and ReLU
            dy[i] = dpre;                                       // = dβ
            dg[i] = dpre * u[i];
            du[i] = dpre * g[i];
        }
        FB_TRY(linear_backward(db, &L->dgamma, dg, b, &L->gamma, B, E, F));
        FB_TRY(linear_backward(db, &L->dbeta, dy, b, &L->beta, B, E, F));
        if (l == 0) {
            FB_TRY(linear_backward(da, &L->dfc, du, a, &L->fc, B, D, F));
        } else {
            film_head_layer *prev = &s->layer[l - 1];
            memset(prev->dx, 0, n * sizeof(float));
            FB_TRY(linear_backward(prev->dx, &L->dfc, du, prev->x, &L->fc, B, F, F));
        }
    }
    return FB_OK;
}

static double film_head_flops(const fusion *f, int backward) {
    const fusion_config *c = &f->c;
    int B = c->B, D = c->D, E = c->E, F = c->F, layers = ((const film_head_self *)f->self)->layers;
    double n = (double)B * F, drop = film_head_dropout_active(f) ? n : 0.0, total = 0;
    for (int l = 0; l < layers; l++) {
        int IC = l ? F : D;
        total += backward ? linear_flops_backward(B, IC, F, 1, 1) + 2 * linear_flops_backward(B, E, F, 1, 1) + 4 * n
                          : linear_flops_forward(B, IC, F, 1) + 2 * linear_flops_forward(B, E, F, 1) + 3 * n + drop;
    }
    return total + (backward ? linear_flops_backward(B, F, D, 1, 1) : linear_flops_forward(B, F, D, 1));
}

const fusion_method fusion_film_head = {
    .name = "film_head", .source = "003", .kind = FUSION_VECTOR, .typical_E = 128,
    .variants = {"default", NULL},
    .formula = "x = dropout(ReLU((W_g b + c_g) * (W x + c) + W_b b + c_b)) per hidden layer;  out = W_o x + c_o",
    .create = film_head_create, .forward = film_head_forward, .backward = film_head_backward,
    .flops = film_head_flops,
};
