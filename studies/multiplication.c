// multiplication (000 §2.2): "multiplicative fusion amplifies a magnitude imbalance: the weak branch
// gets vanishing or exploding gradients."
//
// Runs: mul, add and gated_add on the forecaster with the celestial path normalised (arm
// `balanced`) and raw (`imbalanced`, --celestial-raw: ‖a‖/‖b‖ in the tens, study `imbalance`).
// Figure: the weak branch's gradient share ‖∂L/∂b‖ / ‖∂L/∂a‖ (means over the traced steps) and its
// amplification A = share(imbalanced) / share(balanced). For out = a ⊙ b, ∂L/∂b = a ⊙ ∂L/∂out and
// ∂L/∂a = b ⊙ ∂L/∂out, so the share follows ‖a‖/‖b‖; for out = a + b both get ∂L/∂out (A ≈ 1).
// Rule: the amplification relative to the imbalance made, κ = log A / log(ratio imbalanced / ratio
// balanced): 1 when the weak branch's share follows the imbalance fully (a ⊙ b), 0 when the
// imbalance leaves it alone (a + b). An absolute threshold (say a tenfold A) would judge the
// experiment's imbalance rather than the method: --celestial-raw makes ‖a‖/‖b‖ about 6-8x here, not
// the document's 45x.
#include "study.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define AMPLIFIES      0.5  // κ of mul at least this: the share follows at least half the imbalance
#define UNMOVED        0.25 // κ below this: the imbalance hardly reaches the share
#define IMBALANCE_MADE 3.0  // the imbalanced arm's ratio must exceed the balanced one's this much

static const char *const needs[] = { "traces/fusion/fusion/grad_norm_a", "traces/fusion/fusion/grad_norm_b",
                                     "traces/fusion/fusion/ratio", NULL };

// log10 of the amplification of one method (NaN when runs are missing); *made: the ratio's growth.
static double amplification(const study_set *s, study_result *res, const char *method, double *made) {
    const char *const arms[2] = { "balanced", "imbalanced" };
    double sh[2], ratio[2];
    for (int a = 0; a < 2; a++) {
        const study_filter f = { .arm = arms[a], .method = method };
        char label[96];
        snprintf(label, sizeof label, "%s/%s", method, arms[a]);
        study_figure *x = study_add_agg_as(res, s, &f, label, "grad_share_b", study_fn_branch_share, "fusion", "1",
                                           "weak branch's gradient share ‖∂L/∂b‖/‖∂L/∂a‖");
        sh[a] = x->value;
        x = study_add_agg_as(res, s, &f, label, "ratio", study_fn_mean, "traces/fusion/fusion/ratio", "1",
                             "‖a‖/‖b‖ at the fusion point, mean over the traced steps");
        ratio[a] = x->value;
    }
    *made = ratio[1] / ratio[0];
    const double lg = log10(sh[1] / sh[0]);
    study_add(res, "log10_amplification", method, lg, NAN, 0, "1", "log10 of share(imbalanced) / share(balanced)");
    return lg;
}

static void analyse(const study_set *s, study_result *res) {
    study_rule(res,
               "A = weak-branch gradient share imbalanced / balanced, kappa = log A / log(imbalance made); "
               "CONFIRMED when mul's |kappa| >= %g and add's |kappa| < %g; REFUTED when mul's |kappa| < %g, or "
               "add's is as large as mul's; otherwise, or when --celestial-raw did not raise ‖a‖/‖b‖ %gx, "
               "INCONCLUSIVE (gated_add reported, not judged)",
               AMPLIFIES, UNMOVED, UNMOVED, IMBALANCE_MADE);
    const char *const methods[3] = { "mul", "add", "gated_add" };
    double lg[3], made[3], kappa[3];
    for (int m = 0; m < 3; m++) {
        lg[m] = amplification(s, res, methods[m], &made[m]);
        kappa[m] = fabs(lg[m] / log10(made[m]));
        study_figure *f = study_add(res, "kappa", methods[m], kappa[m], NAN, 0, "1",
                                    "|log A| / log(imbalance made): 1 = the share follows the imbalance fully");
        f->deciding = m < 2;
        f->threshold = m == 0 ? AMPLIFIES : m == 1 ? UNMOVED : NAN;
    }
    char figures[400];
    snprintf(figures, sizeof figures,
             "the weak branch's gradient share moved %.3gx (mul), %.3gx (add), %.3gx (gated_add) while ‖a‖/‖b‖ grew "
             "%.3gx, %.3gx, %.3gx: kappa %.2f, %.2f, %.2f",
             pow(10, lg[0]), pow(10, lg[1]), pow(10, lg[2]), made[0], made[1], made[2], kappa[0], kappa[1], kappa[2]);
    if (!isfinite(kappa[0]) || !isfinite(kappa[1]) || !(made[0] >= IMBALANCE_MADE) || !(made[1] >= IMBALANCE_MADE)) {
        study_decide(res, STUDY_INCONCLUSIVE, "%s (missing runs, or no imbalance made)", figures);
        return;
    }
    const study_verdict v = kappa[0] >= AMPLIFIES && kappa[1] < UNMOVED  ? STUDY_CONFIRMED
                            : kappa[0] < UNMOVED || kappa[1] >= kappa[0] ? STUDY_REFUTED
                                                                         : STUDY_INCONCLUSIVE;
    study_decide(res, v, "%s", figures);
}

const study_def study_multiplication = {
    .name = "multiplication",
    .document = "000",
    .claim = "Multiplicative fusion amplifies a magnitude imbalance: the weak branch's gradient follows the strong "
             "branch's norm (vanishing or exploding), unlike addition; gated addition is measured beside them.",
    .spec = "scenario: timeseries\n"
            "method: mul, add, gated_add\n"
            "arm: balanced\n"
            "arm: imbalanced --celestial-raw\n"
            "batch: 16\n"
            "steps: 100\n"
            "seed: 1..2\n"
            "extra: --trace-every 10 --eval-check-every 0 --no-counters\n",
    .needs = needs,
    .minutes = "0.4",
    .analyse = analyse,
};
