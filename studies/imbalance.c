// imbalance (000 §1): "without LayerNorm the deep encoder path's output norm dwarfs the shallow
// celestial path's (10.86 vs 0.24); with LayerNorm before fusion the ratio is near 1."
//
// Runs: the forecaster with its gated addition, the celestial path with its LayerNorm (arm
// `layernorm`, the document's fix) and without (`raw`, --celestial-raw: the state it diagnosed).
// Figure: FusionDiagnostics' ratio = ‖a‖ / ‖b‖ (a the encoder output, b the celestial output), the
// mean over every traced step of a run, per fusion point (`fusion` is the celestial gate,
// `calendar_fusion` the calendar concat, which LayerNorm does not touch: a control).
// Rule: FusionDiagnostics' own summary flag, mean ratio > 5 (or < 0.2), judged on every seed.
#include "study.h"
#include <math.h>

#define IMBALANCED  5.0 // FusionDiagnostics' summary flag: a mean ratio above 5 (or below 0.2)
#define NEAR_ONE_LO 0.5 // "near 1": within a factor 2
#define NEAR_ONE_HI 2.0

static const char *const needs[] = { "traces/fusion/fusion/ratio", "traces/fusion/calendar_fusion/ratio", NULL };

static void analyse(const study_set *s, study_result *res) {
    const char *const points[2] = { "traces/fusion/fusion/ratio", "traces/fusion/calendar_fusion/ratio" };
    const char *const names[2] = { "ratio_fusion", "ratio_calendar_fusion" };
    const study_filter raw = { .arm = "raw" }, normed = { .arm = "layernorm" };
    for (int p = 0; p < 2; p++)
        for (int a = 0; a < 2; a++)
            study_add_agg(res, s, a ? &raw : &normed, names[p], study_fn_mean, points[p], "1",
                          "‖a‖/‖b‖ at the fusion point, mean over the traced steps (mean over seeds)");
    double raw_lo, raw_hi, ln_lo, ln_hi;
    const int nr = study_range(s, &raw, study_fn_mean, points[0], &raw_lo, &raw_hi);
    const int nl = study_range(s, &normed, study_fn_mean, points[0], &ln_lo, &ln_hi);
    study_add_deciding(res, "ratio_fusion_min", "raw", raw_lo, nr, "1", IMBALANCED,
                       "smallest per-seed mean ratio without LayerNorm");
    study_add_deciding(res, "ratio_fusion_min", "layernorm", ln_lo, nl, "1", NEAR_ONE_LO,
                       "smallest per-seed mean ratio with LayerNorm");
    study_add_deciding(res, "ratio_fusion_max", "layernorm", ln_hi, nl, "1", NEAR_ONE_HI,
                       "largest per-seed mean ratio with LayerNorm");
    study_rule(res,
               "CONFIRMED when, on every seed, the celestial fusion point's mean ratio ‖a‖/‖b‖ is > %g without "
               "LayerNorm (FusionDiagnostics' imbalance flag) and within [%g, %g] with it; REFUTED when the raw ratio "
               "is <= %g on every seed (no imbalance) or the LayerNorm ratio is outside [0.2, 5] on every seed (no "
               "balance); otherwise INCONCLUSIVE",
               IMBALANCED, NEAR_ONE_LO, NEAR_ONE_HI, IMBALANCED);
    if (!nr || !nl) {
        study_decide(res, STUDY_INCONCLUSIVE, "missing runs or traces: %d raw, %d layernorm runs with a ratio", nr, nl);
        return;
    }
    const int raw_imbalanced = raw_lo > IMBALANCED, ln_near_one = ln_lo >= NEAR_ONE_LO && ln_hi <= NEAR_ONE_HI;
    const int raw_balanced = raw_hi <= IMBALANCED, ln_unbalanced = ln_hi < 0.2 || ln_lo > 5;
    const study_verdict v = raw_imbalanced && ln_near_one   ? STUDY_CONFIRMED
                            : raw_balanced || ln_unbalanced ? STUDY_REFUTED
                                                            : STUDY_INCONCLUSIVE;
    study_decide(res, v,
                 "ratio without LayerNorm %.3g..%.3g (threshold > %g), with LayerNorm %.3g..%.3g (near 1: "
                 "[%g, %g]) over %d and %d seeds",
                 raw_lo, raw_hi, IMBALANCED, ln_lo, ln_hi, NEAR_ONE_LO, NEAR_ONE_HI, nr, nl);
}

const study_def study_imbalance = {
    .name = "imbalance",
    .document = "000",
    .claim = "Without LayerNorm the deep encoder path's output norm dwarfs the shallow celestial path's (the "
             "document saw 10.86 vs 0.24); with LayerNorm before fusion the ratio is near 1.",
    .spec = "scenario: timeseries\n"
            "method: gated_add\n"
            "arm: layernorm\n"
            "arm: raw --celestial-raw\n"
            "batch: 16\n"
            "steps: 200\n"
            "seed: 1..3\n"
            "extra: --trace-every 10 --eval-check-every 0 --no-counters\n",
    .needs = needs,
    .minutes = "0.4",
    .analyse = analyse,
};
