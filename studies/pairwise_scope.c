// pairwise_scope (003, SOURCE-SYSTEMS "Data parallelism"): DataParallel gathers every replica's
// embeddings, so all B(B−1)/2 pairs of the global batch enter the UniFrac loss; DDP computes it on
// each rank's rows (local pairs); the FSDP path all-gathers but masks cross-rank pairs
// (block-diagonal). Does excluding cross-rank pairs hurt, and what does the full-pair version cost?
//
// Runs: the microbiome model under dataparallel, ddp/local, ddp/global (all-gather, every pair) and
// ddp/blockdiag, on 2 and 4 ranks, global batch 16.
// Figures per scope and rank count: pairs per step (from the batch split: B(B−1)/2 for dataparallel
// and global, P·(B/P)(B/P−1)/2 for local and blockdiag), the final model's UniFrac loss on 128
// held-out samples over all their pairs (one yardstick for every scope), and the median step time.
// Rule, at the largest rank count, paired by seed: local pairs hurt when local's held-out UniFrac
// loss exceeds global's by more than 2%.
#include "study.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define HURTS 0.02 // held-out UniFrac loss more than 2% above the all-pairs run's

static const char *const needs[] = { "summary/holdout_unifrac", "summary/median_step_ms", NULL };

static double pairs_per_step(const study_run *r, const void *ctx) {
    (void)ctx;
    const int B = r->batch, P = r->ranks, n = B / P;
    const int all = strcmp(r->parallel, "dataparallel") == 0 || strcmp(r->pairs, "global") == 0;
    return all ? B * (B - 1) / 2.0 : P * n * (n - 1) / 2.0;
}

static void analyse(const study_set *s, study_result *res) {
    const study_filter scopes[4] = { { .parallel = "dataparallel" },
                                     { .parallel = "ddp", .pairs = "local" },
                                     { .parallel = "ddp", .pairs = "global" },
                                     { .parallel = "ddp", .pairs = "blockdiag" } };
    const char *const names[4] = { "dataparallel", "ddp_local", "ddp_global", "ddp_blockdiag" };
    int max_ranks = 0;
    for (int i = 0; i < s->n; i++)
        if (s->runs[i].complete && s->runs[i].ranks > max_ranks) max_ranks = s->runs[i].ranks;
    for (int P = 1; P <= max_ranks; P++)
        for (int k = 0; k < 4; k++) {
            study_filter f = scopes[k];
            f.ranks = P;
            double m, sd;
            if (!study_aggregate(s, &f, pairs_per_step, NULL, &m, &sd)) continue;
            char arm[96];
            snprintf(arm, sizeof arm, "%s@%d", names[k], P);
            const struct {
                const char *name;
                study_run_fn fn;
                const char *key, *units, *desc;
            } figs[3] = {
                { "pairs_per_step", pairs_per_step, NULL, "pairs", "pairs of rows the UniFrac loss sees per step" },
                { "holdout_unifrac", study_fn_scalar, "summary/holdout_unifrac", "1",
                  "UniFrac loss of the final model over every pair of 128 held-out samples" },
                { "step_ms", study_fn_scalar, "summary/median_step_ms", "ms", "median step time (slowest rank)" },
            };
            for (int g = 0; g < 3; g++) {
                study_add_agg_as(res, s, &f, arm, figs[g].name, figs[g].fn, figs[g].key, figs[g].units, figs[g].desc);
            }
        }
    study_filter local = scopes[1], global = scopes[2], dp = scopes[0];
    local.ranks = global.ranks = dp.ranks = max_ranks;
    double d[64], c[64], e[64];
    const int nd = study_paired(s, &local, &global, study_fn_scalar, "summary/holdout_unifrac", d, 64);
    const int nc = study_paired(s, &global, &local, study_fn_scalar, "summary/median_step_ms", c, 64);
    const int ne = study_paired(s, &dp, &global, study_fn_scalar, "summary/holdout_unifrac", e, 64);
    double gm, gsd, lm, lsd;
    study_aggregate(s, &global, study_fn_scalar, "summary/holdout_unifrac", &gm, &gsd);
    study_aggregate(s, &local, study_fn_scalar, "summary/median_step_ms", &lm, &lsd);
    int hurt = 0, fine = 0;
    double mean_rel = 0, cost = 0, dp_gap = 0;
    for (int i = 0; i < nd; i++) {
        const double rel = d[i] / gm;
        hurt += rel > HURTS;
        fine += rel <= HURTS;
        mean_rel += rel / nd;
    }
    for (int i = 0; i < nc; i++) cost += c[i] / nc;
    for (int i = 0; i < ne; i++) dp_gap = fmax(dp_gap, fabs(e[i]));
    char arm[96];
    snprintf(arm, sizeof arm, "ddp_local vs ddp_global @%d", max_ranks);
    study_add_deciding(res, "holdout_unifrac_rel_diff", arm, mean_rel, nd, "1", HURTS,
                       "held-out UniFrac loss, local minus global, relative to global (mean over seeds)");
    study_add(res, "step_ms_cost_of_global", arm, cost, NAN, nc, "ms",
              "median step time, global minus local (mean over seeds): what every pair costs");
    study_add(res, "dataparallel_vs_global_max_diff", "", dp_gap, NAN, ne, "1",
              "largest held-out UniFrac difference between dataparallel and ddp/global (the same pairs)");
    study_rule(res,
               "at the largest rank count, paired by seed: CONFIRMED (excluding cross-rank pairs hurts) when "
               "ddp/local's held-out UniFrac loss exceeds ddp/global's by more than %.0f%% on every seed; REFUTED "
               "when it does on no seed; otherwise INCONCLUSIVE",
               100 * HURTS);
    if (nd < 1) {
        study_decide(res, STUDY_INCONCLUSIVE, "no seed with both a local and a global run at %d ranks", max_ranks);
        return;
    }
    const study_verdict v = hurt == nd ? STUDY_CONFIRMED : fine == nd ? STUDY_REFUTED : STUDY_INCONCLUSIVE;
    study_decide(res, v,
                 "at %d ranks local pairs changed the held-out UniFrac loss by %+.2f%% (mean of %d seeds; "
                 "threshold +%.0f%%); all pairs cost %+.3f ms per step (local %.3f ms)",
                 max_ranks, 100 * mean_rel, nd, 100 * HURTS, cost, lm);
}

const study_def study_pairwise_scope = {
    .name = "pairwise_scope",
    .document = "003",
    .claim = "Under DDP (local pairs) and the FSDP path (block-diagonal) the UniFrac loss never sees cross-rank "
             "pairs, unlike DataParallel; excluding them hurts the learned distances.",
    .spec = "scenario: microbiome\n"
            "parallel: dataparallel, ddp\n"
            "pairs: local, global, blockdiag\n"
            "exclude: parallel=dataparallel pairs=global\n"
            "exclude: parallel=dataparallel pairs=blockdiag\n"
            "ranks_per_node: 2, 4\n"
            "batch: 16\n"
            "steps: 200\n"
            "seed: 1..3\n"
            "extra: --trace-every 50 --eval-check-every 0 --no-counters --holdout 128\n",
    .needs = needs,
    .minutes = "0.8",
    .analyse = analyse,
};
