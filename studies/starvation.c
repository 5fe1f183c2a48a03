// starvation (000 §2.4): "with gated interpolation, when the gate closes the weak branch stops
// receiving gradient; with gated addition it keeps learning."
//
// Runs: gated_interp and gated_add on the forecaster, the gate open (arm `open`, bias 0: g ≈ 0.5) or
// closed from the start (`closed`, bias −6: g ≈ 0.0025). The weak branch is b, the celestial path.
// Figure: the weak branch's gradient share, mean ‖∂L/∂b‖ / mean ‖∂L/∂a‖ over the traced steps (the
// share divides out whatever scale the loss gives the upstream gradient), and its drop from the open
// to the closed gate. Both forms pass g·∂L/∂out to b (out = (1−g)a + g b, or a + g b), so the
// arithmetic predicts the same drop for both; the measurement says which holds.
// Rule: a branch is starved when closing the gate cuts its share below 0.1 of the open gate's — the
// fraction profiling/traces.h's gradient_starvation verdict uses.
#include "study.h"
#include <math.h>
#include <stdio.h>

#define STARVED     0.1  // share(closed) / share(open) below this: starved
#define GATE_CLOSED 0.05 // the closed arm's mean gate must be below this for the test to count

static const char *const needs[] = { "traces/fusion/fusion/grad_norm_a", "traces/fusion/fusion/grad_norm_b",
                                     "traces/fusion/fusion/gate_mean", NULL };

// The drop of one method into *drop; returns the closed arm's mean gate (NaN when runs are missing).
static double method_drop(const study_set *s, study_result *res, const char *method, double *drop) {
    double sh[2], gate[2];
    const char *const arms[2] = { "open", "closed" };
    for (int a = 0; a < 2; a++) {
        const study_filter f = { .arm = arms[a], .method = method };
        char label[96];
        snprintf(label, sizeof label, "%s/%s", method, arms[a]);
        study_figure *g =
            study_add_agg_as(res, s, &f, label, "gate_mean", study_fn_mean, "traces/fusion/fusion/gate_mean", "1",
                             "mean gate value over the traced steps");
        gate[a] = g->value;
        study_figure *x = study_add_agg_as(res, s, &f, label, "grad_share_b", study_fn_branch_share, "fusion", "1",
                                           "weak branch's gradient share ‖∂L/∂b‖/‖∂L/∂a‖");
        sh[a] = x->value;
        x = study_add_agg_as(res, s, &f, label, "grad_norm_b", study_fn_mean, "traces/fusion/fusion/grad_norm_b", "1",
                             "mean row norm of ∂L/∂b over the traced steps");
    }
    *drop = sh[1] / sh[0];
    study_add_deciding(res, "share_drop", method, *drop, 0, "1", STARVED,
                       "gradient share with the gate closed / with it open");
    study_add(res, "gate_drop", method, gate[1] / gate[0], NAN, 0, "1",
              "closed / open mean gate: the drop g·∂L/∂out alone predicts");
    return gate[1];
}

static void analyse(const study_set *s, study_result *res) {
    study_rule(res,
               "a branch is starved when closing the gate (bias -6) cuts its gradient share ‖∂L/∂b‖/‖∂L/∂a‖ "
               "below %g of the open gate's (bias 0); CONFIRMED when gated_interp's weak branch is starved and "
               "gated_add's is not; REFUTED when both or neither are (or only gated_add's is); INCONCLUSIVE when "
               "the closed gate's mean is not below %g or runs are missing",
               STARVED, GATE_CLOSED);
    double d_interp, d_add;
    const double g_interp = method_drop(s, res, "gated_interp", &d_interp);
    const double g_add = method_drop(s, res, "gated_add", &d_add);
    if (!isfinite(d_interp) || !isfinite(d_add) || !(g_interp < GATE_CLOSED) || !(g_add < GATE_CLOSED)) {
        study_decide(res, STUDY_INCONCLUSIVE,
                     "share drops %.3g (gated_interp), %.3g (gated_add); closed gate means "
                     "%.3g, %.3g (must be < %g)",
                     d_interp, d_add, g_interp, g_add, GATE_CLOSED);
        return;
    }
    const int si = d_interp < STARVED, sa = d_add < STARVED;
    study_decide(res, si && !sa ? STUDY_CONFIRMED : STUDY_REFUTED,
                 "closing the gate cuts the weak branch's gradient share to %.3g x (gated_interp: %s) and %.3g x "
                 "(gated_add: %s), threshold %g; closed gate means %.3g and %.3g",
                 d_interp, si ? "starved" : "learning", d_add, sa ? "starved" : "learning", STARVED, g_interp, g_add);
}

const study_def study_starvation = {
    .name = "starvation",
    .document = "000",
    .claim = "With gated interpolation, when the gate closes the weak branch stops receiving gradient; with gated "
             "addition it keeps learning.",
    .spec = "scenario: timeseries\n"
            "method: gated_interp, gated_add\n"
            "arm: open --gate-bias 0\n"
            "arm: closed --gate-bias -6\n"
            "batch: 16\n"
            "steps: 150\n"
            "seed: 1..2\n"
            "extra: --trace-every 10 --eval-check-every 0 --no-counters\n",
    .needs = needs,
    .minutes = "0.4",
    .analyse = analyse,
};
