// energy_aware_adaptive (002 "energy_aware_adaptive"; SOURCE-SYSTEMS 002): a router sends each
// sample to a-only, b-only or a full fusion, with an energy penalty on the expected route cost.
//
//   r  = softmax(W2 GELU(W1 [a; b] + c1) + c2)          (B, 3)   router: Linear(2D→D), GELU, Linear(D→3)
//   k̂_i ~ r_i                                           (sampled in training AND evaluation)
//   out_i = a_i                                  k̂ = 0
//           b_i                                  k̂ = 1
//           FFN(LN(σ(Wg [a; b]) ⊙ a + (1 − σ) ⊙ b + ½ Σ_t MHA([a, b])_t))      k̂ = 2
//   FFN(y) = dropout(linear2(GELU(linear1(y))))         D → F → D, F = c->F or 4D
//   E[cost] = (1/B) Σ_i Σ_k r_ik cost_k,   cost = (3.2, 4.1, 9.8) mJ,   budget c->cost_budget (8.0 mJ)
//   energy_loss = λ · ReLU(E[cost] − budget)            λ a learnable scalar, initialised to 0.01
//
// a (B, D), b (B, D) -> out (B, D).
// Variants (the document describes the project's code, so both agree on variant 0):
//   "documented"              (0) k̂ sampled even in evaluation (stochastic inference, as the
//                             document warns); energy_loss computed into diag.aux_loss but not
//                             returned (aux_loss_returned = 0): no gradient from it, λ never moves.
//   "deterministic"           argmax in evaluation (the document's advice); sampled in training.
//   "returned"                as documented, but the energy loss is returned (aux_loss_returned = 1):
//                             backward adds its gradient (weight 1, as the harness adds it to the
//                             objective) to λ, to the router and, through the router, to a and b.
//   "deterministic_returned"  both changes.
// Where the document is silent, the project's code (models/fusion/energy_aware_adaptive.py):
//   - energy_loss is computed in training only (0 in evaluation), E[cost] is the batch mean of the
//     expected cost under r (the probabilities, not the sampled routes), ReLU'(0) = 0.
//   - nn.Linear / nn.MultiheadAttention / nn.LayerNorm default initialisations; MHA with c->H heads
//     and dropout c->dropout on the attention weights; the FFN has no inner dropout and one
//     dropout after linear2; no dropout in the router.
//   - The project's optional "progressive modality dropout" (only when its caller passes
//     current_epoch, which the fusion interface has no notion of) is not reproduced.
//   - No gradient reaches the router from the output (k̂ is discrete, as torch.multinomial).
//   - Sampling: u_i = fb_uniform(fusion_rng(f, 0), c.rng.row0 + i) (route_uniform: the sample's
//     global row), k̂ = the first k with u_i < Σ_{j≤k} r_j (torch.multinomial's law; new at every
//     step, independent of threads and of the split of the batch over ranks). Dropout sites:
//     attention 3, FFN outer 5 (a "both" sample's masks are those of its global row, whatever
//     other samples share the route).
// Diagnostics: routes[i] (experts = 3), aux_loss = energy_loss, aux_loss_returned.
// Cost: routes 0 and 1 are row copies; the fusion (route_blocks.h, shared with shomr) runs on the
// "both" rows only.
#include "route_blocks.h"
#include <math.h>
#include <string.h>

enum { EA_DOCUMENTED, EA_DETERMINISTIC, EA_RETURNED, EA_DETERMINISTIC_RETURNED };
enum { SITE_ROUTE, SITE_ATTN = 3, SITE_FFN = 4, SITE_FFN_OUT = 5 };

static const float ea_cost[3] = {3.2f, 4.1f, 9.8f};   // mJ per route

typedef struct {
    route_mlp router;
    fuse_block blk;
    float *lambda, *dlambda;   // (1) energy penalty weight
    float expected;            // E[cost] of the last training forward
    int n_both, forwarded;
    int *routes, *rows;        // (B) route per sample; the "both" samples
    int buf[];
} ea_self;

static int ea_returned(const fusion *f) { return f->c.variant == EA_RETURNED || f->c.variant == EA_DETERMINISTIC_RETURNED; }
static int ea_samples(const fusion *f) {
    return f->c.training || f->c.variant == EA_DOCUMENTED || f->c.variant == EA_RETURNED;
}

static fb_status ea_create(fusion *f, fb_layout *P, fb_layout *A) {
    const fusion_config *c = &f->c;
    const int B = c->B;
    FB_REQUIRE(c->cost_budget >= 0 && isfinite(c->cost_budget), FB_ERR_CONFIG,
               "energy_aware_adaptive: the energy budget %g mJ must be finite and >= 0", (double)c->cost_budget);
    FB_REQUIRE(c->E == c->D, FB_ERR_SHAPE, "energy_aware_adaptive: widths differ (D=%d, E=%d); routes need equal widths",
               c->D, c->E);
    FB_TRY(fusion_alloc_self(f, sizeof(ea_self) + 2 * (size_t)B * sizeof(int)));
    ea_self *s = f->self;
    s->routes = s->buf;
    s->rows = s->buf + B;
    FB_TRY(route_mlp_declare(&s->router, f, P, A, "router", 3, 0, 1.0f));
    FB_TRY(fuse_block_declare(&s->blk, f, P, A, NULL, "norm", 0, 0));
    if (fb_layout_add(P, c->prefix, "lambda_energy", 1, (int[]){1}, FB_INIT_CONST, 0.01f, &s->lambda, &s->dlambda) < 0)
        return FB_ERR_SHAPE;
    return FB_OK;
}

static void ea_keys(const fusion *f, fb_rng_key keys[3]) {
    keys[0] = fusion_rng(f, SITE_ATTN);
    keys[1] = fusion_rng(f, SITE_FFN);   // unused: no inner dropout
    keys[2] = fusion_rng(f, SITE_FFN_OUT);
}

static fb_status ea_forward(fusion *f, float *out, const float *a, const float *b) {
    ea_self *s = f->self;
    const fusion_config *c = &f->c;
    const int B = c->B, D = c->D, sample = ea_samples(f);
    FB_TRY(route_mlp_forward(&s->router, a, b, c->training, NULL));
    const float *r = s->router.p;
    fb_rng_key kroute = fusion_rng(f, SITE_ROUTE);
    int nb = 0;
    for (int i = 0; i < B; i++) {
        const int k = route_pick(r + 3 * (size_t)i, 3, sample, sample ? route_uniform(&kroute, i) : 0.0f);
        s->routes[i] = k;
        if (k == 2) s->rows[nb++] = i;
    }
    s->n_both = nb;
    s->forwarded = 1;
    if (nb < B) {
        const int *routes = s->routes;
        #pragma omp parallel for schedule(static) if ((size_t)B * D > FB_OMP_MIN_WORK)
        for (int i = 0; i < B; i++)
            if (routes[i] < 2)
                memcpy(out + (size_t)i * D, (routes[i] == 0 ? a : b) + (size_t)i * D, (size_t)D * sizeof(float));
    }
    fb_rng_key keys[3];
    ea_keys(f, keys);
    FB_TRY(fuse_block_forward(&s->blk, out, a, b, s->rows, 0, nb, NULL, c->training, keys));

    float loss = 0.0f;
    if (c->training) {   // B*3 values in a fixed order
        double e = 0.0;
        for (int i = 0; i < B; i++)
            for (int k = 0; k < 3; k++) e += (double)r[3 * (size_t)i + k] * ea_cost[k];
        s->expected = (float)(e / B);
        loss = s->lambda[0] * fmaxf(s->expected - f->c.cost_budget, 0.0f);
    }
    f->diag.routes = s->routes;
    f->diag.route_count = B;
    f->diag.experts = 3;
    f->diag.aux_loss = loss;
    f->diag.aux_loss_returned = ea_returned(f);
    f->diag.has_cost = 1;
    f->diag.cost_expected = s->expected;
    f->diag.cost_budget = f->c.cost_budget;
    return FB_OK;
}

static fb_status ea_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b) {
    ea_self *s = f->self;
    const fusion_config *c = &f->c;
    const int B = c->B, D = c->D;
    fb_rng_key keys[3];
    ea_keys(f, keys);
    FB_TRY(fuse_block_backward(&s->blk, da, db, NULL, dout, a, b, NULL, c->training, keys));
    if (s->n_both < B && (da || db)) {
        const int *routes = s->routes;
        #pragma omp parallel for schedule(static) if ((size_t)B * D > FB_OMP_MIN_WORK)
        for (int i = 0; i < B; i++) {
            float *d = routes[i] == 0 ? da : routes[i] == 1 ? db : NULL;
            if (!d) continue;
            d += (size_t)i * D;
            const float *g = dout + (size_t)i * D;
            #pragma omp simd
            for (int j = 0; j < D; j++) d[j] += g[j];
        }
    }
    // The returned energy loss: ∂/∂λ = ReLU(E − budget); ∂/∂r_ik = λ cost_k / B where E > budget.
    if (ea_returned(f) && c->training && s->expected > f->c.cost_budget) {
        s->dlambda[0] += s->expected - f->c.cost_budget;
        const float scale = s->lambda[0] / (float)B;
        float *dp = s->router.dp;
        for (int i = 0; i < B; i++)
            for (int k = 0; k < 3; k++) dp[3 * (size_t)i + k] = scale * ea_cost[k];
        FB_TRY(route_mlp_backward(&s->router, da, db, a, b, c->training, NULL));
    }
    return FB_OK;
}

static double ea_flops(const fusion *f, int backward) {
    const ea_self *s = f->self;
    const int B = f->c.B, training = f->c.training;
    const int nb = s->forwarded ? s->n_both : B;   // before any forward: every sample fused (the bound)
    const double aux = training ? 6.0 * B + 3.0 : 0.0;
    if (!backward) return route_mlp_flops(&s->router, 0, training) + fuse_block_flops(&s->blk, 0, nb, 0, training) + aux;
    const double copies = (double)(B - nb) * f->c.D;
    const double energy = ea_returned(f) && training && s->expected > f->c.cost_budget
                              ? route_mlp_flops(&s->router, 1, training) + 3.0 * B : 0.0;
    return fuse_block_flops(&s->blk, 0, nb, 1, training) + copies + energy;
}

const fusion_method fusion_energy_aware_adaptive = {
    .name = "energy_aware_adaptive", .source = "002", .kind = FUSION_VECTOR, .has_cost_budget = 1,
    .variants = {"documented", "deterministic", "returned", "deterministic_returned", NULL},
    .formula = "r = softmax(router([a; b])); k ~ r: a | b | FFN(LN(gated(a, b) + mean MHA([a, b])));  "
               "energy = lambda * relu(E_r[cost] - 8 mJ)",
    .create = ea_create, .forward = ea_forward, .backward = ea_backward, .flops = ea_flops,
};
