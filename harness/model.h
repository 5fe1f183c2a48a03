// Scenario models: faithful miniatures of the three source systems, with the fusion method as a
// parameter. The harness (strategies, training loop) sees only this interface; a scenario never
// sees MPI; neither names a particular fusion method (they go through kernels/fusion/fusion.h).
//
// Data travels as fixed-size float records so that strategies can scatter, gather and checkpoint
// them as plain floats: every sample is `in_stride` floats of inputs and `y_stride` floats of
// targets. Integers (token ids, labels, category ids, the sample's dataset index) are stored
// exactly as floats (all < 2^24).
//
// The loss is split from the model, because DataParallel computes it on rank 0 over the gathered
// outputs of the global batch while DDP computes it on each rank (harness/README.md):
//   forward:  x (B, in_stride) -> out (B, out_dim)      the rows the loss needs per sample
//   loss:     out (N, out_dim), y (N, y_stride) of the N rows the caller holds; the loss terms of
//             rows [r0, r1) and d(terms)/d(out) for those rows. Summing the terms of disjoint row
//             ranges covering [0, N) gives the loss on the N rows (per-sample terms are means over
//             N; pairwise terms count pairs by their first row), so N ranks each taking a range
//             give the one-process value.
//   backward: dout (B, out_dim) -> parameter gradients (accumulated)
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "../kernels/common.h"
#include "../kernels/layout.h"
#include "../kernels/fusion/fusion.h"
#include "../datasets/microbiome_data.h"
#include "../datasets/synth_timeseries.h"
#include "../datasets/synth_multimodal.h"

#define MODEL_MAX_TERMS 4
#define MODEL_MAX_FUSION_POINTS 4

typedef struct {
    int B;              // samples in this batch (rows of x and y)
    const float *x;     // (B, in_stride)
    const float *y;     // (B, y_stride)
    uint64_t first;     // global position of row 0 in this step's global batch (dropout masks of a
                        // decomposed run then equal the one-process run's)
    uint32_t step;      // training step (dropout masks and route samples change every step)
    int training;       // 1: dropout, sampled routes; 0: evaluation
} model_batch;

typedef struct {
    const char *method;     // fusion method name (kernels/fusion/methods.def)
    int variant;            // its variant index (0 = the document's form)
    int gate_bias_set;      // 1: gate_bias replaces the method's initial gate bias (fusion_config.gate_bias)
    float gate_bias;
    float cost_budget;      // > 0: replaces a cost-aware method's energy budget (fusion_config.cost_budget)
    int B;                  // largest batch one process runs: activations are sized for it
    int D, H, layers, F;    // width, heads, transformer layers, FFN width (0: the scenario's default)
    float dropout;
    uint64_t seed;
    // Scenario sizes; 0 takes the scenario's default.
    int seq_len, pred_len, features;                    // timeseries
    int celestial_raw;      // timeseries: 1 = no LN_c on the celestial path (000's "before the fix")
    const fb_synth_ts_world *ts_world;   // timeseries: the generator's strengths (NULL: defaults)
    const fb_synth_mm_world *mm_world;   // multimodal: the generator's settings (NULL: defaults)
    int classes, feat_a, feat_b;                        // multimodal
    int max_asvs, vocab, columns, card, cat_dim;        // microbiome
    const fb_microbiome_data *microbiome_data;          // microbiome: samples from files (NULL: synthetic);
                                                        // sets max_asvs, vocab, columns and card
} model_config;

typedef struct model model;

typedef struct {
    const char *name;           // "timeseries", "multimodal", "microbiome"
    const char *source;         // "000", "002", "003"
    const char *description;
    const char *default_method; // the fusion method its source system ships (fusebench train's default)
    const char *record_layout;  // what the x and y records hold (`fusebench data make` writes it out)
    // 0 when the method fits the scenario; -1 with a reason in `why` otherwise.
    int (*fits)(const fusion_method *method, char *why, size_t size);
    // Fills defaults into m->c, checks it, sets in_stride / y_stride / out_dim / term names, and
    // declares every parameter (P, with gradients) and activation (A, with gradients).
    fb_status (*create)(model *m, fb_layout *P, fb_layout *A);
    // The synthetic generator: sample `index` (deterministic in m->c.seed and index alone, so each
    // rank makes only its own samples) into x (in_stride) and y (y_stride).
    void (*sample)(const model *m, uint64_t index, float *x, float *y);
    fb_status (*forward)(model *m, const model_batch *b, float *out);
    fb_status (*backward)(model *m, const model_batch *b, const float *dout);
    // Loss terms of rows [r0, r1) of the N rows held (see above) into terms[0..n_terms), and their
    // gradient w.r.t. out rows r0..r1 into dout_rows ((r1 - r0, out_dim), overwritten; NULL: the terms only).
    // pair_block: 0 = every pair of the N rows counts, k > 0 = only pairs within blocks of k rows.
    fb_status (*loss)(const model *m, const float *out, const float *y, int N, int r0, int r1,
                      int pair_block, double *terms, float *dout_rows);
    // Classifiers: the fraction of the N rows whose largest output is the label (NULL: not a
    // classifier).
    double (*accuracy)(const model *m, const float *out, const float *y, int N);
    void (*destroy)(model *m);
} scenario;

struct model {
    const scenario *s;
    model_config c;
    const fusion_method *method;
    int in_stride, y_stride, out_dim;
    int n_terms;
    const char *term_names[MODEL_MAX_TERMS];   // e.g. "huber", "unifrac"
    int term_pairwise[MODEL_MAX_TERMS];        // 1: a mean over pairs of rows (the strategies scale
                                               // it for the block-diagonal pair scope)
    void *self;                                // the scenario's private struct
    // The model's fusion points in forward order, registered by the scenario's create
    // (model_add_fusion_point), so the harness reaches each one without knowing the scenario.
    int n_points;
    fusion *points[MODEL_MAX_FUSION_POINTS];
    const char *point_names[MODEL_MAX_FUSION_POINTS];
    // Set by the harness before backward (NULL: none). A scenario's backward calls
    // model_grads_ready(m, k) whenever the gradients of every parameter tensor with index >= k (in
    // the parameter layout's declaration order) are final, so gradient buckets can be reduced while
    // backward goes on (DDP). Calls must be monotone (k never grows); the harness treats the end of
    // backward as k = 0 whatever was signalled.
    void (*grads_ready)(void *ctx, int first_final_tensor);
    void *grads_ready_ctx;
};

static inline void model_grads_ready(const model *m, int first_final_tensor) {
    if (m->grads_ready) m->grads_ready(m->grads_ready_ctx, first_final_tensor);
}

extern const scenario scenario_timeseries, scenario_multimodal, scenario_microbiome;
const scenario *scenario_find(const char *name);
// Creates the model; a method that does not fit is refused with the list of those that do.
fb_status model_create(model *m, const scenario *s, const model_config *c, fb_layout *P, fb_layout *A);
void model_destroy(model *m);
// For scenarios' create: the settings every scenario's main fusion point takes from the model config
// (variant, dropout, a given gate bias or cost budget), applied over a fusion_default_config.
void model_fusion_options(const model_config *c, fusion_config *fc);
// For scenarios' create: registers fusion point f (created, owned by the scenario) under `name`
// (a string that outlives the model). FB_ERR_INTERNAL past MODEL_MAX_FUSION_POINTS.
fb_status model_add_fusion_point(model *m, fusion *f, const char *name);
// Fills points[0..n) and names[0..n) (either may be NULL) with the model's fusion points in forward
// order — timeseries "calendar_fusion", "fusion"; multimodal "fusion"; microbiome "fusion" — and
// returns n, the number filled (at most max; MODEL_MAX_FUSION_POINTS is always enough).
int model_fusion_points(const model *m, fusion **points, const char **names, int max);
