// fusion_league (all documents): every fusion method on every scenario it fits, several seeds — the
// held-out task loss of the final model, the run's stability verdicts and its throughput. The table
// users come for, and the test of 000's conclusion: "gated addition with LayerNorm is the right
// fusion for the forecaster".
//
// Figures per METHOD@SCENARIO (means over seeds, spread = std): holdout_loss, samples_per_s,
// verdicts_fired, and pareto = 1 when no other method of the scenario has both a lower (or equal)
// held-out loss and a higher (or equal) throughput, one of them strictly.
// Rule (000's claim): gated_add against the forecaster's best method by held-out loss, the gap held to
// its standard error sqrt(s_g²/n_g + s_b²/n_b) (s: the sample std over seeds).
#include "study.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define WITHIN_NOISE 1.0 // gap <= 1 standard error: as good as the best
#define BEATEN       2.0 // gap > 2 standard errors: beaten

static const char *const needs[] = { "summary/holdout_loss", "summary/samples_per_s", "summary/verdicts_fired", NULL };

typedef struct {
    char scenario[16], method[48];
    double loss, loss_sd, sps, fired;
    int n;
} entry;

static void analyse(const study_set *s, study_result *res) {
    static entry e[256];
    int ne = 0;
    for (int i = 0; i < s->n && ne < 256; i++) { // distinct (scenario, method) pairs, in run order
        const study_run *r = &s->runs[i];
        int seen = 0;
        for (int k = 0; k < ne; k++) seen |= !strcmp(e[k].scenario, r->scenario) && !strcmp(e[k].method, r->method);
        if (seen) continue;
        entry *x = &e[ne++];
        memset(x, 0, sizeof *x);
        snprintf(x->scenario, sizeof x->scenario, "%s", r->scenario);
        snprintf(x->method, sizeof x->method, "%s", r->method);
    }
    for (int k = 0; k < ne; k++) {
        entry *x = &e[k];
        double sd;
        char arm[96];
        snprintf(arm, sizeof arm, "%.47s@%.15s", x->method, x->scenario);
        const study_filter f = { .scenario = x->scenario, .method = x->method };
        x->n = study_aggregate(s, &f, study_fn_scalar, "summary/holdout_loss", &x->loss, &x->loss_sd);
        study_aggregate(s, &f, study_fn_scalar, "summary/samples_per_s", &x->sps, &sd);
        study_aggregate(s, &f, study_fn_scalar, "summary/verdicts_fired", &x->fired, &sd);
        study_add(res, "holdout_loss", arm, x->loss, x->loss_sd, x->n, "1",
                  "task loss of the final model on held-out samples");
        study_add(res, "samples_per_s", arm, x->sps, NAN, x->n, "1/s",
                  "training samples per second (1 rank, 1 thread)");
        study_add(res, "verdicts_fired", arm, x->fired, NAN, x->n, "1", "stability verdicts fired per run (mean)");
    }
    for (int k = 0; k < ne; k++) { // the Pareto front of each scenario
        int dominated = 0;
        for (int j = 0; j < ne && !dominated; j++)
            dominated = j != k && !strcmp(e[j].scenario, e[k].scenario) && e[j].loss <= e[k].loss &&
                        e[j].sps >= e[k].sps && (e[j].loss < e[k].loss || e[j].sps > e[k].sps);
        char arm[96];
        snprintf(arm, sizeof arm, "%.47s@%.15s", e[k].method, e[k].scenario);
        study_add(res, "pareto", arm, isfinite(e[k].loss) && !dominated, NAN, e[k].n, "1",
                  "1: on the scenario's front of held-out loss against throughput");
    }
    study_rule(res,
               "000's claim, on the timeseries scenario: gap = gated_add's mean held-out loss minus the best "
               "method's, SE = sqrt(s_g^2/n_g + s_b^2/n_b) with s the sample std over seeds; CONFIRMED when gated_add "
               "is the best or the gap is <= "
               "%g SE; REFUTED when the gap is > %g SE; otherwise INCONCLUSIVE",
               WITHIN_NOISE, BEATEN);
    const entry *g = NULL, *best = NULL;
    for (int k = 0; k < ne; k++) {
        if (strcmp(e[k].scenario, "timeseries") || !isfinite(e[k].loss)) continue;
        if (!strcmp(e[k].method, "gated_add")) g = &e[k];
        if (!best || e[k].loss < best->loss) best = &e[k];
    }
    if (!g || !best) {
        study_decide(res, STUDY_INCONCLUSIVE, "no timeseries run of gated_add with a held-out loss");
        return;
    }
    const double gap = g->loss - best->loss;
    // The squared standard error of a mean from the figures' population std: sd² / (n − 1) (the
    // sample variance sd² n / (n − 1), over n).
    const double var = (isfinite(g->loss_sd) && g->n > 1 ? g->loss_sd * g->loss_sd / (g->n - 1) : 0) +
                       (isfinite(best->loss_sd) && best->n > 1 ? best->loss_sd * best->loss_sd / (best->n - 1) : 0);
    const double se = sqrt(var);
    study_figure *f = study_add(res, "gated_add_gap", "gated_add vs best@timeseries", gap, se, g->n, "1",
                                "gated_add's mean held-out loss minus the best method's (spread: the gap's SE)");
    f->deciding = 1, f->threshold = WITHIN_NOISE * se;
    const double z = se > 0 ? gap / se : (gap > 0 ? INFINITY : 0);
    const study_verdict v = g == best || z <= WITHIN_NOISE ? STUDY_CONFIRMED
                            : z > BEATEN                   ? STUDY_REFUTED
                                                           : STUDY_INCONCLUSIVE;
    study_decide(res, v, "timeseries: best %s %.4g +- %.2g, gated_add %.4g +- %.2g (gap %.3g = %.2f SE, %d seeds)",
                 best->method, best->loss, best->loss_sd, g->loss, g->loss_sd, gap, z, g->n);
}

const study_def study_fusion_league = {
    .name = "fusion_league",
    .document = "all",
    .claim = "Gated addition (with LayerNorm) is the right fusion for the forecaster (000's conclusion); the league "
             "ranks every method on every scenario by held-out loss, stability and throughput.",
    .spec = "scenario: timeseries, multimodal, microbiome\n"
            "method: all\n"
            "batch: 16\n"
            "steps: 120\n"
            "seed: 1..5\n"
            "exclude: scenario=microbiome method=perceiver\n"
            "extra: --trace-every 20 --eval-check-every 40 --no-counters --holdout 128\n",
    .needs = needs,
    .minutes = "6",
    .analyse = analyse,
};
