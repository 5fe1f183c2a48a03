// modality_dropout (002 "modality_dropout", models/fusion/modality_dropout.py): in training, each
// modality is zeroed at random, then an MLP fuses the (possibly zeroed) pair.
//
//   d_a ~ Bernoulli(p_a), d_b ~ Bernoulli(p_b)           (training only; evaluation: d = 0)
//   ã = (1 − d_a) a,  b̃ = (1 − d_b) b
//   out = W2 ReLU(W1 [ã; b̃] + c1) + c2      W1 (F, D + E) — fc1, Linear(D + E → F)
//                                            W2 (D, F)     — fc2, Linear(F → D)
//
// a (B, D), b (B, E) -> out (B, D). p_a = c->p_a, p_b = c->p_b (0.3 each in the project).
// Variants:
//   "batch"       (0) the document and the project: ONE draw per modality per forward
//                 (torch.rand(1)), so the whole batch loses that modality.
//   "per_sample"  one draw per sample per modality (the usual form of modality dropout).
// The MLP (Linear(2D → D), ReLU, Linear(D → D), no dropout inside) is the project's
// (../shared/SOURCE-SYSTEMS.md, 002); the document only says "MLP([ṽ; t̃]) → D". Its hidden width
// F is c->F, or D (the project's) when 0.
// Choices where the documents are silent:
//   - No rescaling of the kept inputs (the document's ṽ = (1 − d_v) v has no 1/(1 − p); neither does
//     the project). Both modalities may be dropped at once (independent draws, as in the source):
//     the output is then the MLP of zeros.
//   - A dropped input is replaced by zeros, not multiplied by 0, so a NaN/Inf in a dropped modality
//     does not reach the output (a missing modality may hold garbage); its gradient is exactly zero.
//   - Draws: d = fb_uniform(key, index) < p (so p = 0 never drops, p = 1 always drops), with
//     key = fusion_rng(f, 0) for a and fusion_rng(f, 1) for b, index 0 in the batch form and the
//     sample's global row c.rng.row0 + i in the per-sample form: independent of threads and of how
//     the batch is split over ranks, new at every step.
//   - PyTorch's nn.Linear default initialisation for both layers.
// Diagnostics: routes[i] = kept-modality code of sample i (experts = 4): 0 both kept, 1 a dropped,
// 2 b dropped, 3 both dropped. All 0 in evaluation.
// Cost: a modality kept for the whole batch is used in place; one dropped for the whole batch is a
// zero buffer (and gets no gradient); only a mixed per-sample mask makes a masked copy.
#include "mlp2.h"
#include <string.h>

enum { MD_BATCH, MD_PER_SAMPLE };
enum { MD_KEEP, MD_DROP, MD_MIXED };   // what the last forward did with a modality

typedef struct {
    mlp2 mlp;
    float *am, *dam;     // (B, D) a with dropped rows zeroed (or all zero), and its gradient
    float *bm, *dbm;     // (B, E) likewise for b
    int state[2];        // MD_KEEP / MD_DROP / MD_MIXED for a and b in the last forward
    int routes[];        // (B) kept-modality code per sample
} md_self;

static fb_status md_create(fusion *f, fb_layout *P, fb_layout *A) {
    fusion_config *c = &f->c;
    if (c->F == 0) c->F = c->D;
    FB_REQUIRE(c->F > 0, FB_ERR_CONFIG, "modality_dropout: hidden width F=%d must be > 0", c->F);
    FB_REQUIRE(c->p_a >= 0.0f && c->p_a <= 1.0f && c->p_b >= 0.0f && c->p_b <= 1.0f, FB_ERR_CONFIG,
               "modality_dropout: p_a=%g and p_b=%g must lie in [0, 1]", (double)c->p_a, (double)c->p_b);
    FB_TRY(fusion_alloc_self(f, sizeof(md_self) + (size_t)c->B * sizeof(int)));
    md_self *s = f->self;
    char name[FB_NAME_MAX];
    FB_TRY(mlp2_declare(&s->mlp, f, P, A, "modality_dropout", c->B, c->D, c->E, c->F, c->D, FB_ACT_RELU));
    fusion_name(f, "modality_dropout", name);
    if (fb_layout_add(A, name, "a_masked", 2, (int[]){c->B, c->D}, FB_INIT_ZERO, 0, &s->am, &s->dam) < 0) return FB_ERR_SHAPE;
    if (fb_layout_add(A, name, "b_masked", 2, (int[]){c->B, c->E}, FB_INIT_ZERO, 0, &s->bm, &s->dbm) < 0) return FB_ERR_SHAPE;
    return FB_OK;
}

// The input the MLP sees for modality m (bit m of the route codes): x itself, zeros, or a copy
// with the dropped rows zeroed.
static const float *md_input(md_self *s, int m, const float *x, float *xm, int B, int W) {
    int dropped = 0;
    for (int i = 0; i < B; i++) dropped += (s->routes[i] >> m) & 1;
    size_t n = (size_t)B * W;
    if (dropped == 0) { s->state[m] = MD_KEEP; return x; }
    if (dropped == B) { s->state[m] = MD_DROP; memset(xm, 0, n * sizeof(float)); return xm; }
    s->state[m] = MD_MIXED;
    #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
    for (int i = 0; i < B; i++) {
        float *row = xm + (size_t)i * W;
        if ((s->routes[i] >> m) & 1) memset(row, 0, (size_t)W * sizeof(float));
        else memcpy(row, x + (size_t)i * W, (size_t)W * sizeof(float));
    }
    return xm;
}

static const float *md_pick(const md_self *s, int m, const float *x, const float *xm) {
    return s->state[m] == MD_KEEP ? x : xm;
}

static fb_status md_forward(fusion *f, float *out, const float *a, const float *b) {
    md_self *s = f->self;
    const fusion_config *c = &f->c;
    int B = c->B;
    if (c->training) {
        fb_rng_key ka = fusion_rng(f, 0), kb = fusion_rng(f, 1);
        if (c->variant == MD_BATCH) {
            // One draw for the whole global batch: index 0 whatever row0 is, so every rank holding
            // a share of the batch drops the same modality as the one-process run.
            int code = (fb_uniform(&ka, 0) < c->p_a) | ((fb_uniform(&kb, 0) < c->p_b) << 1);
            for (int i = 0; i < B; i++) s->routes[i] = code;
        } else {
            #pragma omp parallel for schedule(static) if (B > FB_OMP_MIN_WORK / 64)
            for (int i = 0; i < B; i++)
                s->routes[i] = (fb_uniform(&ka, fb_rng_row(&ka, (size_t)i)) < c->p_a) |
                               ((fb_uniform(&kb, fb_rng_row(&kb, (size_t)i)) < c->p_b) << 1);
        }
    } else {
        memset(s->routes, 0, (size_t)B * sizeof(int));
    }
    const float *xa = md_input(s, 0, a, s->am, B, c->D);
    const float *xb = md_input(s, 1, b, s->bm, B, c->E);
    f->diag.routes = s->routes;
    f->diag.route_count = B;
    f->diag.experts = 4;
    return mlp2_forward(&s->mlp, out, xa, xb, 0.0f, &c->rng, 0);
}

// dx for modality m: straight into the caller's buffer when kept, none when dropped, through the
// masked copy's gradient when mixed.
static float *md_grad_target(md_self *s, int m, float *dx, float *dxm, size_t n) {
    if (!dx || s->state[m] == MD_DROP) return NULL;
    if (s->state[m] == MD_KEEP) return dx;
    memset(dxm, 0, n * sizeof(float));
    return dxm;
}

static void md_grad_scatter(const md_self *s, int m, float *dx, const float *dxm, int B, int W) {
    if (!dx || s->state[m] != MD_MIXED) return;
    size_t n = (size_t)B * W;
    #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
    for (int i = 0; i < B; i++) {
        if ((s->routes[i] >> m) & 1) continue;
        float *restrict d = dx + (size_t)i * W;
        const float *restrict g = dxm + (size_t)i * W;
        for (int j = 0; j < W; j++) d[j] += g[j];
    }
}

static fb_status md_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b) {
    md_self *s = f->self;
    const fusion_config *c = &f->c;
    int B = c->B, D = c->D, E = c->E;
    float *dxa = md_grad_target(s, 0, da, s->dam, (size_t)B * D);
    float *dxb = md_grad_target(s, 1, db, s->dbm, (size_t)B * E);
    FB_TRY(mlp2_backward(&s->mlp, dxa, dxb, dout, md_pick(s, 0, a, s->am), md_pick(s, 1, b, s->bm), 0.0f, &c->rng, 0));
    md_grad_scatter(s, 0, da, s->dam, B, D);
    md_grad_scatter(s, 1, db, s->dbm, B, E);
    return FB_OK;
}

static double md_flops(const fusion *f, int backward) {
    const md_self *s = f->self;
    return mlp2_flops(&s->mlp, backward, 0, 1);
}

const fusion_method fusion_modality_dropout = {
    .name = "modality_dropout", .source = "002", .kind = FUSION_VECTOR,
    .variants = {"batch", "per_sample", NULL},
    .formula = "d_a ~ Bern(p_a), d_b ~ Bern(p_b) (training);  out = W2 ReLU(W1 [(1-d_a) a; (1-d_b) b] + c1) + c2",
    .create = md_create, .forward = md_forward, .backward = md_backward, .flops = md_flops,
};
