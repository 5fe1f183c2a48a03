#include "synth_multimodal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/rng.h"
#include "settings.h"

#define MM_SITE_DATA 0x4D4D0000u   // generator sites (far from any dropout site of the models)
enum { DATA_PROTO, DATA_WA, DATA_WB, DATA_MODE, DATA_ZA, DATA_ZB, DATA_FA, DATA_FB };

fb_synth_mm_world fb_synth_mm_defaults(void) {
    return (fb_synth_mm_world){ .latent = 16, .signal = 1.0, .noise = 0.5, .feature_noise = 0.1,
                                .frac_a_only = 0.2, .frac_b_only = 0.2 };
}

int fb_synth_mm_parse(const char *spec, fb_synth_mm_world *w, char *why, size_t size) {
    static const char *const names[] = { "latent", "signal", "noise", "feature_noise", "frac_a_only", "frac_b_only" };
    double v[6] = { w->latent, w->signal, w->noise, w->feature_noise, w->frac_a_only, w->frac_b_only };
    if (fb_parse_settings(spec, names, v, 6, why, size) != 0) return -1;
    *w = (fb_synth_mm_world){ .latent = (int)v[0], .signal = v[1], .noise = v[2], .feature_noise = v[3],
                              .frac_a_only = v[4], .frac_b_only = v[5] };
    return 0;
}

static fb_rng_key data_key(const fb_synth_mm *g, uint32_t k) {
    return (fb_rng_key){.seed = g->seed, .step = 0, .site = MM_SITE_DATA + k};
}

// Approximately N(0, 1): (Σ of the block's four 24-bit integers − 2·2^24) · √3 / 2^24, exact in
// double until the final multiply.
static double gauss(const fb_synth_mm *g, const fb_rng_key *key, uint64_t block) {
    uint32_t w[4];
    philox4x32_10(key, block, w);
    int64_t sum = (int64_t)(w[0] >> 8) + (w[1] >> 8) + (w[2] >> 8) + (w[3] >> 8) - 2 * 16777216;
    return (double)sum * g->gscale;
}

fb_status fb_synth_mm_create(fb_synth_mm *g, const fb_synth_mm_world *w, int classes, int feat_a, int feat_b,
                             uint64_t seed) {
    memset(g, 0, sizeof *g);
    g->w = w ? *w : fb_synth_mm_defaults();
    const int Z = g->w.latent;
    FB_REQUIRE(Z >= 1 && Z <= FB_MM_MAX_LATENT, FB_ERR_CONFIG, "multimodal world: latent=%d outside 1..%d", Z,
               FB_MM_MAX_LATENT);
    FB_REQUIRE(g->w.frac_a_only + g->w.frac_b_only <= 1.0, FB_ERR_CONFIG,
               "multimodal world: frac_a_only + frac_b_only = %g exceeds 1", g->w.frac_a_only + g->w.frac_b_only);
    FB_REQUIRE(classes > 0 && feat_a > 0 && feat_b > 0, FB_ERR_CONFIG,
               "multimodal world: classes=%d feat_a=%d feat_b=%d must be > 0", classes, feat_a, feat_b);
    g->classes = classes; g->feat_a = feat_a; g->feat_b = feat_b; g->seed = seed;
    g->proto = malloc((size_t)classes * Z * sizeof(double));
    g->wa = malloc((size_t)feat_a * Z * sizeof(double));
    g->wb = malloc((size_t)feat_b * Z * sizeof(double));
    if (!g->proto || !g->wa || !g->wb) {
        fb_synth_mm_free(g);
        return fb_fail(FB_ERR_ALLOC, "multimodal world: no memory for the generator (C=%d, Z=%d)", classes, Z);
    }
    g->gscale = sqrt(3.0) / 16777216.0;
    g->wscale = 1.0 / sqrt((double)Z);
    g->thr_a = (uint32_t)(g->w.frac_a_only * 16777216.0);
    g->thr_ab = (uint32_t)((g->w.frac_a_only + g->w.frac_b_only) * 16777216.0);
    fb_rng_key kp = data_key(g, DATA_PROTO), ka = data_key(g, DATA_WA), kb = data_key(g, DATA_WB);
    for (int i = 0; i < classes * Z; i++) g->proto[i] = gauss(g, &kp, (uint64_t)i);
    for (int i = 0; i < feat_a * Z; i++) g->wa[i] = gauss(g, &ka, (uint64_t)i) * g->wscale;
    for (int i = 0; i < feat_b * Z; i++) g->wb[i] = gauss(g, &kb, (uint64_t)i) * g->wscale;
    return FB_OK;
}

void fb_synth_mm_free(fb_synth_mm *g) {
    free(g->proto);
    free(g->wa);
    free(g->wb);
    g->proto = g->wa = g->wb = NULL;
}

// One modality: z = [signal · μ_code] + noise · ε, x = W z + feature_noise · η (double, fixed order).
static void modality(const fb_synth_mm *g, const fb_rng_key *kz, const fb_rng_key *kf, uint64_t index,
                     int informative, int code, const double *w, int n, float *x) {
    const int Z = g->w.latent;
    double z[FB_MM_MAX_LATENT];
    for (int k = 0; k < Z; k++) {
        double mean = informative ? g->w.signal * g->proto[(size_t)code * Z + k] : 0.0;
        z[k] = mean + g->w.noise * gauss(g, kz, index * (uint64_t)Z + (uint64_t)k);
    }
    for (int j = 0; j < n; j++) {
        double acc = 0.0;
        for (int k = 0; k < Z; k++) acc += w[(size_t)j * Z + k] * z[k];
        x[j] = (float)(acc + g->w.feature_noise * gauss(g, kf, index * (uint64_t)n + (uint64_t)j));
    }
}

void fb_synth_mm_sample(const fb_synth_mm *g, uint64_t index, float *a, float *b, int *label, int *inf_a,
                        int *inf_b) {
    const int C = g->classes;
    fb_rng_key km = data_key(g, DATA_MODE);
    uint32_t w[4];
    philox4x32_10(&km, index, w);
    const uint32_t u = w[0] >> 8;
    const int ua = (int)(((uint64_t)(w[1] >> 8) * (uint64_t)C) >> 24);
    const int ub = (int)(((uint64_t)(w[2] >> 8) * (uint64_t)C) >> 24);
    *inf_a = u >= g->thr_a && u < g->thr_ab ? 0 : 1;   // b_only: a carries no signal
    *inf_b = u < g->thr_a ? 0 : 1;                     // a_only: b carries no signal
    *label = !*inf_b ? ua : !*inf_a ? ub : (ua + ub) % C;
    fb_rng_key kza = data_key(g, DATA_ZA), kzb = data_key(g, DATA_ZB);
    fb_rng_key kfa = data_key(g, DATA_FA), kfb = data_key(g, DATA_FB);
    modality(g, &kza, &kfa, index, *inf_a, ua, g->wa, g->feat_a, a);
    modality(g, &kzb, &kfb, index, *inf_b, ub, g->wb, g->feat_b, b);
}
