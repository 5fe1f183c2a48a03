// multiplication (000 §2.2): "multiplicative fusion amplifies a magnitude imbalance: the weak branch
// gets vanishing or exploding gradients."
//
// Runs: mul, add and gated_add on the forecaster with the celestial path normalised (arm
// `balanced`) and raw (`imbalanced`, --celestial-raw: ‖a‖/‖b‖ in the tens, study `imbalance`).
// Figure: the weak branch's gradient share ‖∂L/∂b‖ / ‖∂L/∂a‖ (means over the traced steps) and its
// amplification A = share(imbalanced) / share(balanced). For out = a ⊙ b, ∂L/∂b = a ⊙ ∂L/∂out and
// ∂L/∂a = b ⊙ ∂L/∂out, so the share follows ‖a‖/‖b‖; for out = a + b both get ∂L/∂out (A ≈ 1).
// Rule: |log10 A| ≥ 1 (a tenfold shift, either way) for mul, and at least tenfold more than add's.
#include "study.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define AMPLIFIED 1.0           // |log10 A| of mul: at least a tenfold shift of the weak branch's share
#define NOT_AMPLIFIED 0.5       // |log10 A| below this (about 3x): no amplification
#define IMBALANCE_MADE 5.0      // the imbalanced arm's ratio must exceed the balanced one's this much

static const char *const needs[] = { "traces/fusion/fusion/grad_norm_a", "traces/fusion/fusion/grad_norm_b",
                                     "traces/fusion/fusion/ratio", NULL };

static double share(const study_run *r, const void *ctx) {
    (void)ctx;
    return study_window_mean(r, "traces/fusion/fusion/grad_norm_b", 0, 1) /
           study_window_mean(r, "traces/fusion/fusion/grad_norm_a", 0, 1);
}

// log10 of the amplification of one method (NaN when runs are missing); *made: the ratio's growth.
static double amplification(const study_set *s, study_result *res, const char *method, double *made) {
    const char *const arms[2] = { "balanced", "imbalanced" };
    double sh[2], ratio[2];
    for (int a = 0; a < 2; a++) {
        const study_filter f = { .arm = arms[a], .method = method };
        char label[96];
        snprintf(label, sizeof label, "%s/%s", method, arms[a]);
        study_figure *x = study_add_agg(res, s, &f, "grad_share_b", share, NULL, "1",
                                        "weak branch's gradient share ‖∂L/∂b‖/‖∂L/∂a‖");
        snprintf(x->arm, sizeof x->arm, "%s", label);
        sh[a] = x->value;
        x = study_add_agg(res, s, &f, "ratio", study_fn_mean, "traces/fusion/fusion/ratio", "1",
                          "‖a‖/‖b‖ at the fusion point, mean over the traced steps");
        snprintf(x->arm, sizeof x->arm, "%s", label);
        ratio[a] = x->value;
    }
    *made = ratio[1] / ratio[0];
    const double lg = log10(sh[1] / sh[0]);
    study_figure *f = study_add(res, "log10_amplification", method, lg, NAN, 0, "1",
                                "log10 of share(imbalanced) / share(balanced)");
    f->deciding = strcmp(method, "gated_add") != 0;
    f->threshold = AMPLIFIED;
    return lg;
}

static void analyse(const study_set *s, study_result *res) {
    study_rule(res, "A = weak-branch gradient share imbalanced / balanced; CONFIRMED when |log10 A| of mul is >= %g "
               "and exceeds add's by >= %g; REFUTED when mul's |log10 A| < %g or exceeds add's by less than %g; "
               "otherwise, or when --celestial-raw did not raise ‖a‖/‖b‖ %gx, INCONCLUSIVE (gated_add reported, not "
               "judged)", AMPLIFIED, AMPLIFIED, NOT_AMPLIFIED, NOT_AMPLIFIED, IMBALANCE_MADE);
    double made_mul, made_add, made_gated;
    const double mul = fabs(amplification(s, res, "mul", &made_mul));
    const double add = fabs(amplification(s, res, "add", &made_add));
    const double gated = fabs(amplification(s, res, "gated_add", &made_gated));
    char figures[300];
    snprintf(figures, sizeof figures, "|log10 A|: mul %.3g, add %.3g, gated_add %.3g; ‖a‖/‖b‖ grew %.3gx, %.3gx, "
             "%.3gx without LayerNorm", mul, add, gated, made_mul, made_add, made_gated);
    if (!isfinite(mul) || !isfinite(add) || !(made_mul >= IMBALANCE_MADE) || !(made_add >= IMBALANCE_MADE)) {
        study_decide(res, STUDY_INCONCLUSIVE, "%s (missing runs, or no imbalance made)", figures);
        return;
    }
    const study_verdict v = mul >= AMPLIFIED && mul - add >= AMPLIFIED              ? STUDY_CONFIRMED
                            : mul < NOT_AMPLIFIED || mul - add < NOT_AMPLIFIED ? STUDY_REFUTED
                                                                                   : STUDY_INCONCLUSIVE;
    study_decide(res, v, "%s", figures);
}

const study_def study_multiplication = {
    .name = "multiplication",
    .document = "000",
    .claim = "Multiplicative fusion amplifies a magnitude imbalance: the weak branch's gradients vanish or explode, "
             "unlike addition or gated addition.",
    .spec = "scenario: timeseries\n"
            "method: mul, add, gated_add\n"
            "arm: balanced\n"
            "arm: imbalanced --celestial-raw\n"
            "batch: 16\n"
            "steps: 100\n"
            "seed: 1..2\n"
            "extra: --trace-every 10 --eval-check-every 0 --no-counters\n",
    .needs = needs,
    .minutes = "0.5",
    .analyse = analyse,
};
