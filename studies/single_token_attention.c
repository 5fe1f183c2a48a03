// single_token_attention (003): "sequence tokens attend to metadata tokens, enabling position-specific
// conditioning" — but the project as shipped pools the metadata into one token, and attention over
// one key is a constant: every weight is 1, its entropy 0, no position attends differently.
//
// Runs: seq_cross_attention on the microbiome model with one key token per categorical column (arm
// `per_column`, the document's form) and one pooled token (`single_token`, the shipped code), no
// dropout (the traced weights are the ones torch returns, after attention dropout, which would put
// its mask's noise into both figures).
// Figures (head-averaged weights of rank 0's rows, every traced step): the entropy over the keys,
// and the spread — the std over a sample's ASV positions of the weight each key gets, averaged over
// keys and samples (0: every position attends alike).
#include "study.h"
#include <math.h>

#define CONSTANT 1e-6 // |entropy| and spread below this: the weights are constant
#define SPECIFIC 1e-3 // spread above this: position-specific weights

static const char *const needs[] = { "traces/fusion/fusion/attention_entropy", "traces/fusion/fusion/attention_spread",
                                     NULL };

static void analyse(const study_set *s, study_result *res) {
    const study_filter col = { .arm = "per_column" }, one = { .arm = "single_token" };
    const char *ent = "traces/fusion/fusion/attention_entropy", *spr = "traces/fusion/fusion/attention_spread";
    for (int a = 0; a < 2; a++) {
        const study_filter *f = a ? &one : &col;
        study_add_agg(res, s, f, "attention_entropy", study_fn_mean, ent, "nats",
                      "entropy over the keys of the head-averaged weights, mean over traced steps");
        study_add_agg(res, s, f, "attention_spread", study_fn_mean, spr, "1",
                      "std over a sample's positions of each key's weight, mean over traced steps");
    }
    double e_lo, e_hi, s_lo, s_hi, c_lo, c_hi;
    const int n1 = study_range(s, &one, study_fn_max_abs, ent, &e_lo, &e_hi);
    study_range(s, &one, study_fn_max_abs, spr, &s_lo, &s_hi);
    const int nc = study_range(s, &col, study_fn_mean, spr, &c_lo, &c_hi);
    study_add_deciding(res, "entropy_max_abs", "single_token", e_hi, n1, "nats", CONSTANT,
                       "largest |entropy| at any traced step of any run");
    study_add_deciding(res, "spread_max", "single_token", s_hi, n1, "1", CONSTANT,
                       "largest spread at any traced step of any run");
    study_add_deciding(res, "spread_min_run_mean", "per_column", c_lo, nc, "1", SPECIFIC,
                       "smallest per-run mean spread");
    study_rule(res,
               "CONFIRMED when the single token's |entropy| and spread stay below %g at every traced step "
               "(constant weights) and one token per column gives a mean spread above %g on every run "
               "(position-specific weights); REFUTED when the single token's weights vary (> %g) or the per-column "
               "spread is not above %g on any run; otherwise INCONCLUSIVE",
               CONSTANT, SPECIFIC, CONSTANT, SPECIFIC);
    if (!n1 || !nc || !isfinite(s_hi)) {
        study_decide(res, STUDY_INCONCLUSIVE, "attention traces missing (%d single-token, %d per-column runs)", n1, nc);
        return;
    }
    const int constant = e_hi < CONSTANT && s_hi < CONSTANT;
    const study_verdict v = constant && c_lo > SPECIFIC     ? STUDY_CONFIRMED
                            : !constant || c_hi <= SPECIFIC ? STUDY_REFUTED
                                                            : STUDY_INCONCLUSIVE;
    study_decide(res, v,
                 "single token: |entropy| <= %.3g nats, spread <= %.3g; one token per column: mean spread "
                 "%.3g..%.3g over %d runs",
                 e_hi, s_hi, c_lo, c_hi, nc);
}

const study_def study_single_token_attention = {
    .name = "single_token_attention",
    .document = "003",
    .claim = "Cross-attention over one pooled metadata token has zero attention entropy (its weights are "
             "constant); one token per column gives position-specific weights.",
    .spec = "scenario: microbiome\n"
            "method: seq_cross_attention\n"
            "arm: per_column --variant default\n"
            "arm: single_token --variant single_token\n"
            "batch: 16\n"
            "steps: 100\n"
            "seed: 1..2\n"
            "extra: --trace-every 10 --eval-check-every 0 --no-counters --dropout 0\n",
    .needs = needs,
    .minutes = "0.1",
    .analyse = analyse,
};
