// dead_parameter (002, transformer_concat): "a learned modality token (1, 2, D) is overwritten by the
// inputs, so it is unused" — it receives no gradient; the variant that adds it to the inputs trains it.
//
// Runs: transformer_concat on the multimodal model as documented (arm `default`) and `with_token`
// (X = [a, b] + modality_token).
// Figure: the token's gradient norm (reduced over ranks, before clipping) at every traced step, its
// largest value per arm. "No gradient" means exactly zero — not small: a float that reaches the
// token through any path is non-zero.
#include "study.h"
#include <math.h>

static const char *const needs[] = { "traces/params/grad_norm@modality_token", NULL };
#define KEY "traces/params/grad_norm@modality_token"

static void analyse(const study_set *s, study_result *res) {
    const study_filter doc = { .arm = "default" }, tok = { .arm = "with_token" };
    double doc_lo, doc_hi, tok_lo, tok_hi, tok_min_lo, tok_min_hi;
    const int nd = study_range(s, &doc, study_fn_max, KEY, &doc_lo, &doc_hi);
    const int nt = study_range(s, &tok, study_fn_max, KEY, &tok_lo, &tok_hi);
    study_range(s, &tok, study_fn_min, KEY, &tok_min_lo, &tok_min_hi);
    study_add_deciding(res, "token_grad_max", "default", doc_hi, nd, "1", 0,
                       "largest gradient norm of modality_token over every traced step and run");
    study_add_deciding(res, "token_grad_max", "with_token", tok_hi, nt, "1", 0,
                       "largest gradient norm of modality_token over every traced step and run");
    study_add(res, "token_grad_min", "with_token", tok_min_lo, NAN, nt, "1",
              "smallest gradient norm of modality_token at a traced step");
    study_rule(res, "CONFIRMED when the documented token's gradient is exactly 0 at every traced step of every run "
                    "and the with_token variant's is non-zero at some step of every run; REFUTED when the documented "
                    "token ever gets a gradient, or the with_token one never does; INCONCLUSIVE without traces");
    if (!nd || !nt) {
        study_decide(res, STUDY_INCONCLUSIVE, "no gradient trace of modality_token (%d default, %d with_token runs)",
                     nd, nt);
        return;
    }
    const study_verdict v = doc_hi == 0 && tok_lo > 0 ? STUDY_CONFIRMED : STUDY_REFUTED;
    study_decide(res, v,
                 "modality_token's gradient norm: at most %.3g as documented (%d runs), %.3g..%.3g at its "
                 "largest with the token added (%d runs)",
                 doc_hi, nd, tok_lo, tok_hi, nt);
}

const study_def study_dead_parameter = {
    .name = "dead_parameter",
    .document = "002",
    .claim = "transformer_concat's learned modality token is overwritten by the inputs and receives no gradient; "
             "added to the inputs instead, it learns.",
    .spec = "scenario: multimodal\n"
            "method: transformer_concat\n"
            "arm: default --variant default\n"
            "arm: with_token --variant with_token\n"
            "batch: 16\n"
            "steps: 60\n"
            "seed: 1..2\n"
            "extra: --trace-every 5 --eval-check-every 0 --no-counters\n",
    .needs = needs,
    .minutes = "0.1",
    .analyse = analyse,
};
