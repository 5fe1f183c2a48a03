// film (002 "film", models/fusion/film.py): b conditions a through a feature-wise affine map.
//
//   γ   = W_γ b + c_γ             W_γ (D, E)    — gamma, Linear(E → D)
//   β   = W_β b + c_β             W_β (D, E)    — beta,  Linear(E → D)
//   out = γ ⊙ a + β
//
// a (B, D) is modulated, b (B, E) conditions it (asymmetric; in 002 a = image, b = text).
// Diagnostics: none (γ is not a gate in (0, 1)).
// Variants (the forward pass is the same; they differ in initialisation only):
//   "default"        PyTorch's nn.Linear default for both layers: the document and its project
//                    (../shared/SOURCE-SYSTEMS.md, 002: "default init, not identity").
//   "identity_init"  003's FiLM initialisation (SOURCE-SYSTEMS 003, FiLM head): W_γ = 0, c_γ = 1,
//                    W_β = 0, c_β = 0, so out = a at the start of training.
// β is written straight into out by its GEMM and γ ⊙ a added in one pass: γ is the only activation.
#include "fusion.h"
#include "../linear.h"

enum { FILM_DEFAULT, FILM_IDENTITY_INIT };

typedef struct {
    linear_params gamma, dgamma, beta, dbeta;
    float *g, *dg;                  // (B, D) γ, and the gradient of γ
} film_self;

static fb_status film_create(fusion *f, fb_layout *P, fb_layout *A) {
    const fusion_config *c = &f->c;
    FB_TRY(fusion_alloc_self(f, sizeof(film_self)));
    film_self *s = f->self;
    char name[FB_NAME_MAX];
    int wg = linear_declare(P, fusion_name(f, "gamma", name), c->E, c->D, 1, &s->gamma, &s->dgamma);
    int wb = linear_declare(P, fusion_name(f, "beta", name), c->E, c->D, 1, &s->beta, &s->dbeta);
    if (wg < 0 || wb < 0) return FB_ERR_SHAPE;
    if (c->variant == FILM_IDENTITY_INIT) {   // the bias is declared right after its weight
        fb_layout_set_init(P, wg, FB_INIT_ZERO, 0.0f);
        fb_layout_set_init(P, wg + 1, FB_INIT_CONST, 1.0f);
        fb_layout_set_init(P, wb, FB_INIT_ZERO, 0.0f);
        fb_layout_set_init(P, wb + 1, FB_INIT_ZERO, 0.0f);
    }
    if (fb_layout_add(A, fusion_name(f, "film", name), "gamma", 2, (int[]){c->B, c->D}, FB_INIT_ZERO, 0, &s->g, &s->dg) < 0)
        return FB_ERR_SHAPE;
    return FB_OK;
}

static fb_status film_forward(fusion *f, float *out, const float *a, const float *b) {
    film_self *s = f->self;
    int B = f->c.B, D = f->c.D, E = f->c.E;
    FB_TRY(linear_forward(s->g, b, &s->gamma, B, E, D));
    FB_TRY(linear_forward(out, b, &s->beta, B, E, D));
    size_t n = (size_t)B * D;
    const float *restrict g = s->g;
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) out[i] += g[i] * a[i];
    return FB_OK;
}

static fb_status film_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b) {
    film_self *s = f->self;
    int B = f->c.B, D = f->c.D, E = f->c.E;
    size_t n = (size_t)B * D;
    const float *restrict g = s->g;
    float *restrict dg = s->dg;
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        dg[i] = dout[i] * a[i];
        if (da) da[i] += dout[i] * g[i];
    }
    FB_TRY(linear_backward(db, &s->dgamma, dg, b, &s->gamma, B, E, D));
    return linear_backward(db, &s->dbeta, dout, b, &s->beta, B, E, D);   // dβ = dout
}

static double film_flops(const fusion *f, int backward) {
    int B = f->c.B, D = f->c.D, E = f->c.E;
    double n = (double)B * D;
    return backward ? 2 * linear_flops_backward(B, E, D, 1, 1) + 3 * n
                    : 2 * linear_flops_forward(B, E, D, 1) + 2 * n;
}

const fusion_method fusion_film = {
    .name = "film", .source = "002", .kind = FUSION_VECTOR,
    .variants = {"default", "identity_init", NULL},
    .formula = "gamma = W_g b + c_g;  beta = W_b b + c_b;  out = gamma * a + beta",
    .create = film_create, .forward = film_forward, .backward = film_backward, .flops = film_flops,
};
