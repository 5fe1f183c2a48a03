// multimodal (002, ../shared/SOURCE-SYSTEMS.md "002 — multimodal teacher/student"): the teacher's
// path after its two backbones, with the fusion method as a parameter.
//
//   x record = [a (feat_a) ; b (feat_b)]    synthetic backbone [CLS] vectors (defaults 256, 192)
//   pa  = proj_a(a)                          Linear(feat_a → D)             (B, D)
//   pb  = proj_b(b)                          Linear(feat_b → D)             (B, D)
//   f   = method(pa, pb)                     fusion point #0, vector method, E = D   (B, D)
//   h   = dropout(f)                         p = c.dropout (the source's 0.1)
//   out = head(h)                            Linear(D → classes) = the logits        (B, classes)
//   terms: "ce"  = cross_entropy(out, label), mean over the N rows held
//          "aux" = the method's auxiliary loss when it returns one (fusion_diag.aux_loss_returned;
//                  energy_aware_adaptive "returned"), else 0 — see "Auxiliary loss" below.
//
// Choices (the source is silent or larger):
//   - D defaults to 128 (the source's experiments use fusion_dim 512; 128 keeps runs short).
//   - One classification head with `classes` outputs (default 4). The source has two heads for its
//     two label sets; the synthetic data has one label, so one head and one CE term.
//   - The projections are plain Linear layers and every layer has nn.Linear's default
//     initialisation (as the source's nn.Linear modules). The backbones themselves are not
//     modelled: their outputs are the synthetic records.
//   - Fusion options: the fusion defaults (fusion_default_config) with H, F from the config when
//     set, layers = c.layers or 2 (the teacher's 2 fusion layers), dropout = c.dropout inside the
//     method too (the source's methods take its dropout 0.1). c.dropout is taken as given: the
//     harness passes the source's 0.1; 0 switches dropout off (the PyTorch fixture does).
//   - Randomness: the fusion point owns rng sites [0, FUSION_RNG_SITES); this model's dropout is
//     site FUSION_RNG_SITES (after the one fusion point), key (c.seed, batch step). Both keys carry
//     row0 = first, the batch's first global row, so this dropout's mask and the method's own
//     randomness (inner dropout, sampled routes, modality masks) follow the global row: rows
//     [r0, r1) run alone with first = r0 get the draws of the whole batch.
//   - A batch may hold fewer rows than c.B (the activations' size): the method's config B is set
//     to the batch's rows before each forward/backward.
//
// Auxiliary loss: the method computes it in forward from its own state (energy_aware_adaptive: the
// energy penalty on the batch's expected route cost) and its backward adds its gradient with
// weight 1, independent of dout. loss() reports it as term "aux" = the value of this process's
// last forward, in the call whose rows include r0 = 0 (so the terms of disjoint row ranges still
// sum to the objective once); it contributes nothing to dout_rows. The objective is ce + aux.
//
// The synthetic world: datasets/synth_multimodal.h (two modalities, label = their codes' modular
// sum where both are informative, per-sample informativeness; settings model_config.mm_world,
// `--mm-world`).
// y record = [label, a informative (0/1), b informative (0/1)] (the flags are for diagnostics).
#include "model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/dropout.h"
#include "../kernels/linear.h"
#include "../kernels/loss.h"
#include "../datasets/synth_multimodal.h"

#define MM_D 128
#define MM_CLASSES 4
#define MM_FEAT_A 256
#define MM_FEAT_B 192
#define MM_LAYERS 2
#define MM_Y_STRIDE 3
#define MM_SITE_DROPOUT FUSION_RNG_SITES            // after fusion point #0's sites

typedef struct {
    fb_synth_mm gen;         // the synthetic world (datasets/synth_multimodal.h)
    fusion f;
    linear_params proj_a, dproj_a, proj_b, dproj_b, head, dhead;
    float *xa, *xb;          // (B, feat_a), (B, feat_b) the records' a and b, contiguous
    float *pa, *dpa;         // (B, D) projected a, and its gradient
    float *pb, *dpb;         // (B, D)
    float *fused, *dfused;   // (B, D) the method's output, and its gradient
    float *h, *dh;           // (B, D) after dropout, and its gradient
    int first_proj_b, first_fusion, first_head;   // parameter-tensor indices (model_grads_ready)
} mm_self;

// ---- the records: x = [a ; b], y = [label, a informative, b informative] ----

static void mm_sample(const model *m, uint64_t index, float *x, float *y) {
    const mm_self *s = m->self;
    int label, inf_a, inf_b;
    fb_synth_mm_sample(&s->gen, index, x, x + m->c.feat_a, &label, &inf_a, &inf_b);
    y[0] = (float)label;
    y[1] = (float)inf_a;
    y[2] = (float)inf_b;
}

// ---- the model ----

static int mm_fits(const fusion_method *method, char *why, size_t size) {
    if (method->kind == FUSION_VECTOR) return 0;
    snprintf(why, size, "%s is a sequence method; this scenario fuses one projected vector per modality, "
             "a (B, D) and b (B, D)", method->name);
    return -1;
}

static void mm_destroy(model *m) {
    mm_self *s = m->self;
    if (!s) return;
    fusion_destroy(&s->f);
    fb_synth_mm_free(&s->gen);
    free(s);
    m->self = NULL;
}

static fb_status mm_create(model *m, fb_layout *P, fb_layout *A) {
    model_config *c = &m->c;
    if (!c->D) c->D = MM_D;
    if (!c->classes) c->classes = MM_CLASSES;
    if (!c->feat_a) c->feat_a = MM_FEAT_A;
    if (!c->feat_b) c->feat_b = MM_FEAT_B;
    if (!c->layers) c->layers = MM_LAYERS;
    FB_REQUIRE(c->B > 0 && c->D > 0 && c->feat_a > 0 && c->feat_b > 0, FB_ERR_SHAPE,
               "multimodal: sizes B=%d D=%d feat_a=%d feat_b=%d must all be > 0", c->B, c->D, c->feat_a, c->feat_b);
    FB_REQUIRE(c->classes >= 2, FB_ERR_CONFIG, "multimodal: classes=%d must be >= 2", c->classes);
    FB_REQUIRE(c->dropout >= 0.0f && c->dropout < 1.0f, FB_ERR_CONFIG, "multimodal: dropout %g outside [0, 1)",
               (double)c->dropout);
    const int B = c->B, D = c->D;
    m->in_stride = c->feat_a + c->feat_b;
    m->y_stride = MM_Y_STRIDE;
    m->out_dim = c->classes;
    m->n_terms = 2;
    m->term_names[0] = "ce";
    m->term_names[1] = "aux";

    mm_self *s = calloc(1, sizeof *s);
    FB_REQUIRE(s, FB_ERR_ALLOC, "multimodal: no memory for the model state");
    m->self = s;
    FB_TRY(fb_synth_mm_create(&s->gen, c->mm_world, c->classes, c->feat_a, c->feat_b, c->seed));

    if (linear_declare(P, "proj_a", c->feat_a, D, 1, &s->proj_a, &s->dproj_a) < 0) return FB_ERR_SHAPE;
    s->first_proj_b = P->count;
    if (linear_declare(P, "proj_b", c->feat_b, D, 1, &s->proj_b, &s->dproj_b) < 0) return FB_ERR_SHAPE;
    fusion_config fc = fusion_default_config(B, 1, 1, D, D);
    if (c->H) fc.H = c->H;
    fc.F = c->F;
    fc.layers = c->layers;
    model_fusion_options(c, &fc);
    fc.rng = (fb_rng_key){.seed = c->seed, .step = 0, .site = 0};   // fusion point #0
    s->first_fusion = P->count;
    FB_TRY(fusion_create(&s->f, m->method, &fc, P, A));
    s->first_head = P->count;
    if (linear_declare(P, "head", D, c->classes, 1, &s->head, &s->dhead) < 0) return FB_ERR_SHAPE;

    FB_TRY(model_add_fusion_point(m, &s->f, "fusion"));

    // Module tags (kernels/layout.h): the projections' outputs and the fusion's; h is dropout's, and
    // the head's output is the caller's `out`.
    const struct { const char *name; int cols; float **x, **dx; fb_module_kind module; } acts[] = {
        {"xa", c->feat_a, &s->xa, NULL, FB_MODULE_NONE}, {"xb", c->feat_b, &s->xb, NULL, FB_MODULE_NONE},
        {"pa", D, &s->pa, &s->dpa, FB_MODULE_LINEAR}, {"pb", D, &s->pb, &s->dpb, FB_MODULE_LINEAR},
        {"fused", D, &s->fused, &s->dfused, FB_MODULE_FUSION}, {"h", D, &s->h, &s->dh, FB_MODULE_NONE},
    };
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
        const int t = fb_layout_add(A, "multimodal", acts[i].name, 2, (int[]){B, acts[i].cols}, FB_INIT_ZERO, 0,
                                    acts[i].x, acts[i].dx);
        if (t < 0) return FB_ERR_SHAPE;
        fb_layout_tag_module(A, t, acts[i].module, 0);
    }
    return FB_OK;
}

static fb_status mm_batch_check(const model *m, const model_batch *b) {
    FB_REQUIRE(b->B > 0 && b->B <= m->c.B, FB_ERR_SHAPE, "multimodal: batch of %d rows outside [1, B=%d]", b->B,
               m->c.B);
    FB_REQUIRE(b->x, FB_ERR_SHAPE, "multimodal: batch without inputs");
    return FB_OK;
}

static void mm_set_batch(mm_self *s, const model_batch *b) {
    s->f.c.B = b->B;
    s->f.c.training = b->training;
    s->f.c.rng.step = b->step;
    s->f.c.rng.row0 = b->first;
}

static fb_rng_key mm_dropout_key(const model *m, const model_batch *b) {
    return (fb_rng_key){.seed = m->c.seed, .step = b->step, .site = MM_SITE_DROPOUT, .row0 = b->first};
}

static fb_status mm_forward(model *m, const model_batch *b, float *out) {
    FB_TRY(mm_batch_check(m, b));
    mm_self *s = m->self;
    const int B = b->B, D = m->c.D, fa = m->c.feat_a, fb = m->c.feat_b, stride = m->in_stride;
    #pragma omp parallel for schedule(static) if ((size_t)B * stride > FB_OMP_MIN_WORK)
    for (int i = 0; i < B; i++) {
        const float *x = b->x + (size_t)i * stride;
        memcpy(s->xa + (size_t)i * fa, x, (size_t)fa * sizeof(float));
        memcpy(s->xb + (size_t)i * fb, x + fa, (size_t)fb * sizeof(float));
    }
    FB_TRY(linear_forward(s->pa, s->xa, &s->proj_a, B, fa, D));
    FB_TRY(linear_forward(s->pb, s->xb, &s->proj_b, B, fb, D));
    mm_set_batch(s, b);
    FB_TRY(fusion_forward(&s->f, s->fused, s->pa, s->pb));
    const fb_rng_key key = mm_dropout_key(m, b);
    FB_TRY(dropout_rows_forward(s->h, s->fused, (size_t)B, (size_t)D, m->c.dropout, &key, b->training));
    return linear_forward(out, s->h, &s->head, B, D, m->c.classes);
}

static fb_status mm_backward(model *m, const model_batch *b, const float *dout) {
    FB_TRY(mm_batch_check(m, b));
    FB_REQUIRE(dout, FB_ERR_SHAPE, "multimodal: backward without an output gradient");
    mm_self *s = m->self;
    const int B = b->B, D = m->c.D;
    const size_t n = (size_t)B * D;
    memset(s->dh, 0, n * sizeof(float));
    memset(s->dfused, 0, n * sizeof(float));
    memset(s->dpa, 0, n * sizeof(float));
    memset(s->dpb, 0, n * sizeof(float));
    FB_TRY(linear_backward(s->dh, &s->dhead, dout, s->h, &s->head, B, D, m->c.classes));
    model_grads_ready(m, s->first_head);
    const fb_rng_key key = mm_dropout_key(m, b);
    FB_TRY(dropout_rows_backward(s->dfused, s->dh, (size_t)B, (size_t)D, m->c.dropout, &key, b->training));
    mm_set_batch(s, b);
    FB_TRY(fusion_backward(&s->f, s->dpa, s->dpb, s->dfused, s->pa, s->pb));
    model_grads_ready(m, s->first_fusion);
    // proj_b first: it is declared last, so its bucket can go while proj_a is computed.
    FB_TRY(linear_backward(NULL, &s->dproj_b, s->dpb, s->xb, &s->proj_b, B, m->c.feat_b, D));
    model_grads_ready(m, s->first_proj_b);
    return linear_backward(NULL, &s->dproj_a, s->dpa, s->xa, &s->proj_a, B, m->c.feat_a, D);
}

// CE per row (one kernel call per row, grad_scale 1/N): each row's loss and gradient bits are the
// same whatever range it is computed in; the range's terms are (1/N) Σ of its rows in row order.
static fb_status mm_loss(const model *m, const float *out, const float *y, int N, int r0, int r1,
                         int pair_block, double *terms, float *dout_rows) {
    const int C = m->c.classes;
    FB_REQUIRE(N > 0 && r0 >= 0 && r0 < r1 && r1 <= N, FB_ERR_SHAPE,
               "multimodal: loss rows [%d, %d) outside [0, N=%d) or empty", r0, r1, N);
    FB_REQUIRE(pair_block >= 0, FB_ERR_CONFIG, "multimodal: pair_block %d < 0", pair_block);
    FB_REQUIRE(out && y && terms, FB_ERR_SHAPE, "multimodal: loss without outputs, targets or terms");
    const float scale = (float)(1.0 / N);
    if (dout_rows) memset(dout_rows, 0, (size_t)(r1 - r0) * C * sizeof(float));
    double sum = 0.0;
    for (int i = r0; i < r1; i++) {
        const float yl = y[(size_t)i * m->y_stride];
        FB_REQUIRE(yl >= 0.0f && yl < (float)C && yl == floorf(yl), FB_ERR_CONFIG,
                   "multimodal: label %g of row %d is not a class in [0, %d)", (double)yl, i, C);
        const int32_t label = (int32_t)yl;
        double row;
        FB_TRY(cross_entropy_loss(&row, dout_rows ? dout_rows + (size_t)(i - r0) * C : NULL, out + (size_t)i * C,
                                  &label, 1, C, scale));
        sum += row;
    }
    terms[0] = sum / N;
    const mm_self *s = m->self;
    terms[1] = (r0 == 0 && s->f.diag.aux_loss_returned) ? (double)s->f.diag.aux_loss : 0.0;
    return FB_OK;
}

static double mm_accuracy(const model *m, const float *out, const float *y, int N) {
    const int C = m->c.classes;
    int right = 0;
    for (int i = 0; i < N; i++) {
        const float *row = out + (size_t)i * C;
        int best = 0;
        for (int k = 1; k < C; k++)
            if (row[k] > row[best]) best = k;
        right += best == (int)y[(size_t)i * m->y_stride];
    }
    return N > 0 ? (double)right / N : NAN;
}

const scenario scenario_multimodal = {
    .name = "multimodal",
    .default_method = "concat_mlp",
    .record_layout = "x = [a (feat_a) | b (feat_b)]: the two synthetic backbone [CLS] vectors; "
                     "y = [label, a informative (0/1), b informative (0/1)]",
    .source = "002",
    .description = "two backbone feature vectors projected to D, fused, dropout, classification head; "
                   "cross-entropy (+ the method's returned auxiliary loss)",
    .fits = mm_fits,
    .create = mm_create,
    .sample = mm_sample,
    .forward = mm_forward,
    .backward = mm_backward,
    .loss = mm_loss,
    .accuracy = mm_accuracy,
    .destroy = mm_destroy,
};
