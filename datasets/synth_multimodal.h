// The multimodal teacher/student's synthetic world (002): two modalities a, b (synthetic backbone
// [CLS] vectors) whose label depends on both and on their interaction, with per-sample
// informativeness. Fixed per seed: C class prototypes μ_k ∈ R^Z shared by both modalities and
// random projections Wa (feat_a, Z), Wb (feat_b, Z) (entries ~N(0,1)/√Z). Sample i draws a mode
// and two codes ua, ub uniform in [0, C):
//     both    (1 − frac_a_only − frac_b_only): label = (ua + ub) mod C
//     a_only  (frac_a_only):                   label = ua, b carries no signal
//     b_only  (frac_b_only):                   label = ub, a carries no signal
//   za = signal · μ_ua (a informative) + noise · ε,  a = Wa za + feature_noise · η  (b likewise)
// So in mode "both" the label is independent of either code alone: a model must tell from each
// latent's magnitude which mode a sample is in and route or gate accordingly. Every value is a pure
// function of (seed, index) (Philox, kernels/rng.h; "normal" = Irwin–Hall of one block's four
// 24-bit uniforms, scaled to unit variance), all arithmetic in double in a fixed order, so
// tests/refs/ref_scenario_multimodal.py reproduces the records bit for bit. No files, no model.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "../kernels/common.h"

#define FB_MM_MAX_LATENT 64

typedef struct {
    int latent;              // Z, latent dims shared by the prototypes (1..64; default 16)
    double signal;           // scale of the class prototype in an informative latent (default 1)
    double noise;            // std of the latent noise (default 0.5)
    double feature_noise;    // std of the noise added after the projection (default 0.1)
    double frac_a_only;      // fraction of samples with signal in a only (default 0.2)
    double frac_b_only;      // fraction with signal in b only (default 0.2)
} fb_synth_mm_world;

fb_synth_mm_world fb_synth_mm_defaults(void);
// Parses "name=value,..." (names as the fields) over *w; 0, or -1 with a reason in why.
int fb_synth_mm_parse(const char *spec, fb_synth_mm_world *w, char *why, size_t size);

typedef struct {
    fb_synth_mm_world w;
    int classes, feat_a, feat_b;
    uint64_t seed;
    double *proto;           // (C, Z)
    double *wa, *wb;         // (feat_a, Z), (feat_b, Z)
    double gscale, wscale;   // √3 / 2^24 (Irwin–Hall of 4 to unit variance), 1/√Z
    uint32_t thr_a, thr_ab;  // mode thresholds on a 24-bit uniform
} fb_synth_mm;

// Draws the fixed part (prototypes, projections). FB_ERR_CONFIG for a world out of range.
fb_status fb_synth_mm_create(fb_synth_mm *g, const fb_synth_mm_world *w, int classes, int feat_a, int feat_b,
                             uint64_t seed);
void fb_synth_mm_free(fb_synth_mm *g);
// Sample `index`: a (feat_a), b (feat_b), its label and whether each modality carries signal.
void fb_synth_mm_sample(const fb_synth_mm *g, uint64_t index, float *a, float *b, int *label, int *inf_a,
                        int *inf_b);
