// shomr (002 "shomr", Soft-Hard Modality Routing; SOURCE-SYSTEMS 002): per sample, either a soft
// confidence-weighted fusion or a hard route to a-only, b-only or both.
//
//   w   = softmax(conf_net([a; b]))                     (B, 2)   conf_net: Linear(2D→D), GELU,
//                                                                 Dropout, Linear(D→2)
//   hard_i = max(w_i) > threshold                        per sample; threshold = c->threshold (0.6)
//   soft:  base = w_a a + w_b b
//          att  = ½ Σ_t MHA([a, b])_t                    2-token self-attention, mean over tokens
//          y    = LN1(base + att);  out = y + FFN(y)     the document's
//          f_soft = LN(base + a) + FFN(LN(base + a)), whose "a" is the attention output
//   hard:  r = softmax(router([a; b]) / temperature)     (B, 3)   router: as conf_net, D→3
//          k̂ ~ r (training) or argmax r (evaluation)
//          k̂ = 0: Proj(a),  1: Proj(b)                  Proj = dropout(GELU(Linear(D→D)))
//          k̂ = 2: y = LN2(σ(Wg [a; b]) ⊙ a + (1 − σ) ⊙ b + att);  out = y + FFN(y)
//   FFN(y) = dropout(linear2(dropout(GELU(linear1(y)))))  D → F → D, F = c->F or 4D
//
// a (B, D), b (B, D) -> out (B, D). No variant: the document and its project agree.
// Where the document is silent, the project's code (SOURCE-SYSTEMS 002, models/fusion/shomr.py):
//   - conf_net and router: Linear(2D→D), GELU, Dropout(c->dropout), Linear(D→2 or 3); nn.Linear's
//     default initialisation. routing_temperature (c->temperature, 1.0) divides the router's
//     logits (the hard route's probabilities), not conf_net's: w = softmax(conf_net) as the
//     project (SOURCE-SYSTEMS: "w = softmax(conf_net) over 2").
//   - ONE Proj (proj_single) for both single-modality routes, as the document's Proj(v), Proj(t)
//     and the project; ONE MHA (cross_attn, c->H heads, dropout c->dropout) and ONE FFN (GELU)
//     shared by the soft path and the "both" route; separate LayerNorms norm1 (soft), norm2 (both).
//     The "both" route has the FFN residual as the soft path (the project's both_out + ffn(both_out)).
//   - The gate is `gated`'s σ(Linear(2D→D)[a; b]) blend (tensor gate.0).
//   - The project's fallback "max w < 0.3 → (a + b) / 2" is reproduced as what it is, unreachable:
//     with two modalities max w ≥ 0.5, so it is not implemented.
//   - The router is evaluated only when some sample is hard (its output is unused otherwise).
//   - No gradient reaches the router (k̂ is discrete, as torch.multinomial / argmax) nor flows
//     through the threshold test; w gets its gradient through the soft path only.
//   - Sampling: u_i = fb_uniform(fusion_rng(f, 0), c.rng.row0 + i) (route_uniform: the sample's
//     global row), k̂ = the first k with u_i < Σ_{j≤k} r_j (torch.multinomial's law; new at every
//     step, independent of threads and of the split of the batch over ranks).
//   - Dropout sites (training): conf_net 1, router 2, attention 3, FFN inner 4, FFN outer 5,
//     Proj 6; every mask row is that of its sample's global row, also in the gathered row lists
//     below (passed as a row map), so a sample's masks do not depend on the other samples' routes.
// Diagnostics: routes[i] (experts = 4): 0 soft, 1 a-only, 2 b-only, 3 both; gate = w (B, 2).
// Cost: each path runs on its rows only. The soft and "both" rows are gathered into one list (soft
// first) and share one attention and one FFN call (route_blocks.h); the single-modality rows are
// gathered into one Proj SGEMM.
#include "route_blocks.h"
#include <math.h>
#include <string.h>
#include "../activations.h"
#include "../dropout.h"

enum { SHOMR_SOFT, SHOMR_A, SHOMR_B, SHOMR_BOTH };   // route codes
enum { SITE_ROUTE, SITE_CONF, SITE_ROUTER, SITE_ATTN, SITE_FFN, SITE_FFN_OUT, SITE_PROJ };

typedef struct {
    route_mlp conf, router;
    fuse_block blk;
    linear_params proj, dproj;
    float *pin, *dpin;     // (B, D) the single-modality rows' inputs, gathered; gradient
    float *ph, *dph;       // (B, D) Proj pre-activation; gradient (of its output, then of ph)
    float *po;             // (B, D) dropout(GELU(ph)) (training with dropout)
    int n_soft, n_both, n_single, forwarded;
    int *routes;           // (B) route code per sample
    int *rows;             // (B) soft samples, then "both" samples
    int *srows;            // (B) single-modality samples
    int buf[];
} shomr_self;

static fb_status shomr_create(fusion *f, fb_layout *P, fb_layout *A) {
    const fusion_config *c = &f->c;
    const int B = c->B, D = c->D;
    FB_REQUIRE(c->E == D, FB_ERR_SHAPE, "shomr: widths differ (D=%d, E=%d); the fusion needs equal widths", D, c->E);
    FB_REQUIRE(isfinite(c->threshold), FB_ERR_CONFIG, "shomr: threshold %g must be finite", (double)c->threshold);
    FB_REQUIRE(c->temperature > 0.0f && isfinite(c->temperature), FB_ERR_CONFIG,
               "shomr: temperature %g must be > 0", (double)c->temperature);
    FB_TRY(fusion_alloc_self(f, sizeof(shomr_self) + 3 * (size_t)B * sizeof(int)));
    shomr_self *s = f->self;
    s->routes = s->buf;
    s->rows = s->buf + B;
    s->srows = s->buf + 2 * (size_t)B;
    FB_TRY(route_mlp_declare(&s->conf, f, P, A, "conf_net", 2, 1, 1.0f));
    FB_TRY(route_mlp_declare(&s->router, f, P, A, "router", 3, 1, c->temperature));
    FB_TRY(fuse_block_declare(&s->blk, f, P, A, "norm1", "norm2", 1, 1));
    char name[FB_NAME_MAX];
    if (linear_declare(P, fusion_name(f, "proj_single.0", name), D, D, 1, &s->proj, &s->dproj) < 0) return FB_ERR_SHAPE;
    fusion_name(f, "shomr.single", name);
    const int *bd = (int[]){B, D};
    if (fb_layout_add(A, name, "inp", 2, bd, FB_INIT_ZERO, 0, &s->pin, &s->dpin) < 0 ||
        fb_layout_add(A, name, "pre", 2, bd, FB_INIT_ZERO, 0, &s->ph, &s->dph) < 0 ||
        fb_layout_add(A, name, "out", 2, bd, FB_INIT_ZERO, 0, &s->po, NULL) < 0)
        return FB_ERR_SHAPE;
    return FB_OK;
}

static int shomr_proj_drops(const fusion *f) { return f->c.training && f->c.dropout > 0.0f; }

// The Proj dropout's key: its rows are the gathered single-modality samples (srows).
static fb_rng_key shomr_proj_key(const fusion *f) {
    fb_rng_key key = fusion_rng(f, SITE_PROJ);
    key.row_map = ((const shomr_self *)f->self)->srows;
    return key;
}

// out rows of the single-modality samples: dropout(GELU(Linear(a or b))).
static fb_status shomr_proj_forward(fusion *f, float *out, const float *a, const float *b) {
    shomr_self *s = f->self;
    const int D = f->c.D, n = s->n_single;
    if (n == 0) return FB_OK;
    const size_t nd = (size_t)n * D;
    const int *srows = s->srows, *routes = s->routes;
    float *restrict pin = s->pin, *restrict ph = s->ph, *restrict po = s->po;
    #pragma omp parallel for schedule(static) if (nd > FB_OMP_MIN_WORK)
    for (int i = 0; i < n; i++) {
        const int r = srows[i];
        memcpy(pin + (size_t)i * D, (routes[r] == SHOMR_A ? a : b) + (size_t)r * D, (size_t)D * sizeof(float));
    }
    FB_TRY(linear_forward(ph, pin, &s->proj, n, D, D));
    const int drop = shomr_proj_drops(f);
    if (drop) {
        const fb_rng_key key = shomr_proj_key(f);
        FB_TRY(activation_forward(FB_ACT_GELU, po, ph, nd));
        FB_TRY(dropout_rows_forward(po, po, (size_t)n, (size_t)D, f->c.dropout, &key, 1));
    }
    #pragma omp parallel for schedule(static) if (nd > FB_OMP_MIN_WORK)
    for (int i = 0; i < n; i++) {   // scatter (GELU fused here when no dropout)
        float *o = out + (size_t)srows[i] * D;
        const float *hi = ph + (size_t)i * D, *pi = po + (size_t)i * D;
        if (drop) {
            memcpy(o, pi, (size_t)D * sizeof(float));
        } else {
            #pragma omp simd
            for (int j = 0; j < D; j++) o[j] = fb_gelu(hi[j]);
        }
    }
    return FB_OK;
}

static fb_status shomr_proj_backward(fusion *f, float *da, float *db, const float *dout) {
    shomr_self *s = f->self;
    const int D = f->c.D, n = s->n_single;
    if (n == 0) return FB_OK;
    const size_t nd = (size_t)n * D;
    const int *srows = s->srows, *routes = s->routes;
    const int drop = shomr_proj_drops(f);
    float *restrict dph = s->dph, *restrict dpin = s->dpin;
    const float *restrict ph = s->ph;
    #pragma omp parallel for schedule(static) if (nd > FB_OMP_MIN_WORK)
    for (int i = 0; i < n; i++) {   // gather dout (times GELU' when no dropout sits in between)
        const float *src = dout + (size_t)srows[i] * D, *hi = ph + (size_t)i * D;
        float *d = dph + (size_t)i * D;
        if (drop) {
            memcpy(d, src, (size_t)D * sizeof(float));
        } else {
            #pragma omp simd
            for (int j = 0; j < D; j++) d[j] = src[j] * fb_gelu_grad(hi[j]);
        }
    }
    if (drop) {
        const fb_rng_key key = shomr_proj_key(f);
        FB_TRY(dropout_rows_forward(dph, dph, (size_t)n, (size_t)D, f->c.dropout, &key, 1));   // the mask's scaling
        #pragma omp parallel for simd schedule(static) if (nd > FB_OMP_MIN_WORK)
        for (size_t i = 0; i < nd; i++) dph[i] *= fb_gelu_grad(ph[i]);
    }
    if (!da && !db) return linear_backward(NULL, &s->dproj, dph, s->pin, &s->proj, n, D, D);
    memset(dpin, 0, nd * sizeof(float));
    FB_TRY(linear_backward(dpin, &s->dproj, dph, s->pin, &s->proj, n, D, D));
    #pragma omp parallel for schedule(static) if (nd > FB_OMP_MIN_WORK)
    for (int i = 0; i < n; i++) {
        const int r = srows[i];
        float *d = routes[r] == SHOMR_A ? da : db;
        if (!d) continue;
        d += (size_t)r * D;
        const float *g = dpin + (size_t)i * D;
        #pragma omp simd
        for (int j = 0; j < D; j++) d[j] += g[j];
    }
    return FB_OK;
}

static void shomr_keys(const fusion *f, fb_rng_key keys[3]) {
    keys[0] = fusion_rng(f, SITE_ATTN);
    keys[1] = fusion_rng(f, SITE_FFN);
    keys[2] = fusion_rng(f, SITE_FFN_OUT);
}

static fb_status shomr_forward(fusion *f, float *out, const float *a, const float *b) {
    shomr_self *s = f->self;
    const fusion_config *c = &f->c;
    const int B = c->B, training = c->training;
    fb_rng_key kconf = fusion_rng(f, SITE_CONF), krouter = fusion_rng(f, SITE_ROUTER);
    fb_rng_key kroute = fusion_rng(f, SITE_ROUTE);
    FB_TRY(route_mlp_forward(&s->conf, a, b, training, &kconf));
    const float *w = s->conf.p;
    int n_hard = 0;
    for (int i = 0; i < B; i++) {
        const int hard = fmaxf(w[2 * i], w[2 * i + 1]) > c->threshold;   // NaN: soft
        s->routes[i] = hard ? SHOMR_BOTH : SHOMR_SOFT;
        n_hard += hard;
    }
    if (n_hard) {
        FB_TRY(route_mlp_forward(&s->router, a, b, training, &krouter));
        const float *r = s->router.p;
        for (int i = 0; i < B; i++)
            if (s->routes[i] != SHOMR_SOFT)
                s->routes[i] = SHOMR_A + route_pick(r + 3 * (size_t)i, 3, training,
                                                    training ? route_uniform(&kroute, i) : 0.0f);
    }
    int ns = 0, nb = 0, n1 = 0;   // row lists in sample order: soft, then both; single
    for (int i = 0; i < B; i++) if (s->routes[i] == SHOMR_SOFT) s->rows[ns++] = i;
    for (int i = 0; i < B; i++) if (s->routes[i] == SHOMR_BOTH) s->rows[ns + nb++] = i;
    for (int i = 0; i < B; i++) if (s->routes[i] == SHOMR_A || s->routes[i] == SHOMR_B) s->srows[n1++] = i;
    s->n_soft = ns; s->n_both = nb; s->n_single = n1; s->forwarded = 1;

    fb_rng_key keys[3];
    shomr_keys(f, keys);
    FB_TRY(fuse_block_forward(&s->blk, out, a, b, s->rows, ns, nb, w, training, keys));
    FB_TRY(shomr_proj_forward(f, out, a, b));
    f->diag.routes = s->routes;
    f->diag.route_count = B;
    f->diag.experts = 4;
    f->diag.gate = w;
    f->diag.gate_count = 2 * (size_t)B;
    return FB_OK;
}

static fb_status shomr_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b) {
    shomr_self *s = f->self;
    const fusion_config *c = &f->c;
    fb_rng_key keys[3];
    shomr_keys(f, keys);
    memset(s->conf.dp, 0, 2 * (size_t)c->B * sizeof(float));   // hard samples: w unused
    FB_TRY(fuse_block_backward(&s->blk, da, db, s->conf.dp, dout, a, b, s->conf.p, c->training, keys));
    if (s->n_soft) {
        fb_rng_key kconf = fusion_rng(f, SITE_CONF);
        FB_TRY(route_mlp_backward(&s->conf, da, db, a, b, c->training, &kconf));
    }
    return shomr_proj_backward(f, da, db, dout);
}

static double shomr_flops(const fusion *f, int backward) {
    const shomr_self *s = f->self;
    const int B = f->c.B, D = f->c.D, training = f->c.training;
    // Before any forward: every sample soft (the path the threshold picks near w = ½).
    const int ns = s->forwarded ? s->n_soft : B, nb = s->forwarded ? s->n_both : 0;
    const int n1 = s->forwarded ? s->n_single : 0, drop = shomr_proj_drops(f);
    const double n1d = (double)n1 * D;
    if (!backward)
        return route_mlp_flops(&s->conf, 0, training) + (ns < B ? route_mlp_flops(&s->router, 0, training) : 0.0) +
               fuse_block_flops(&s->blk, ns, nb, 0, training) + linear_flops_forward(n1, D, D, 1) +
               activation_flops_forward(FB_ACT_GELU, (size_t)n1 * D) + (drop ? n1d : 0.0);
    return fuse_block_flops(&s->blk, ns, nb, 1, training) + (ns ? route_mlp_flops(&s->conf, 1, training) : 0.0) +
           activation_flops_backward(FB_ACT_GELU, (size_t)n1 * D) + (drop ? n1d : 0.0) +
           linear_flops_backward(n1, D, D, 1, 1) + n1d;
}

const fusion_method fusion_shomr = {
    .name = "shomr", .source = "002", .kind = FUSION_VECTOR,
    .variants = {"default", NULL},
    .formula = "w = softmax(conf([a; b])); max w > thr ? route k~softmax(router([a; b])/T): Proj(a) | Proj(b) | "
               "LN2(gated(a, b) + att) + FFN(.)  :  LN1(w_a a + w_b b + att) + FFN(.),  att = mean MHA([a, b])",
    .create = shomr_create, .forward = shomr_forward, .backward = shomr_backward, .flops = shomr_flops,
};
