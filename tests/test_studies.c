// Studies (studies/): every study's verdict logic on synthetic traces whose answer is known —
// a CONFIRMED case, a REFUTED case and an INCONCLUSIVE (or missing-data) case each — plus the
// shared helpers, and every study's sweep specification parses (bench/sweep_spec.c).
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "../bench/sweep_spec.c"
#include "../studies/study.h"

// ---- Building synthetic runs ----

static study_run *add(study_set *s, const char *arm, const char *scenario, const char *method, int seed) {
    study_run *r = study_set_add(s);
    assert_non_null(r);
    snprintf(r->arm, sizeof r->arm, "%s", arm);
    snprintf(r->scenario, sizeof r->scenario, "%s", scenario);
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->parallel, sizeof r->parallel, "ddp");
    snprintf(r->pairs, sizeof r->pairs, "local");
    r->seed = seed;
    r->ranks = 1;
    r->batch = 16;
    r->steps = 100;
    return r;
}

// n values from a to b, linearly.
static void ramp(study_run *r, const char *key, double a, double b, int n) {
    double v[512];
    for (int i = 0; i < n; i++) v[i] = n > 1 ? a + (b - a) * i / (n - 1) : a;
    assert_int_equal(study_run_put(r, key, v, (size_t)n), 0);
}
static void constant(study_run *r, const char *key, double a, int n) { ramp(r, key, a, a, n); }
static void scalar(study_run *r, const char *key, double a) { ramp(r, key, a, a, 1); }

static study_verdict verdict_of(const char *name, const study_set *s, study_result *res) {
    const study_def *d = study_find(name);
    assert_non_null(d);
    memset(res, 0, sizeof *res);
    res->verdict = STUDY_INCONCLUSIVE;
    d->analyse(s, res);
    assert_true(res->rule[0] != '\0');   // every verdict states its rule ...
    assert_true(res->reason[0] != '\0'); // ... and the figures that decided it
    return res->verdict;
}

static const study_figure *figure(const study_result *res, const char *name, const char *arm) {
    for (int i = 0; i < res->nfig; i++)
        if (!strcmp(res->fig[i].name, name) && !strcmp(res->fig[i].arm, arm)) return &res->fig[i];
    fail_msg("no figure %s [%s]", name, arm);
    return NULL;
}

static study_result res; // large: not on the stack

// ---- Helpers ----

static void test_helpers(void **state) {
    (void)state;
    study_set s = { 0, NULL };
    study_run *r = add(&s, "x", "timeseries", "add", 1);
    const double v[5] = { 1, 2, NAN, 4, 5 };
    assert_int_equal(study_run_put(r, "steps/loss", v, 5), 0);
    assert_true(fabs(study_window_mean(r, "steps/loss", 0, 1) - 3.0) < 1e-12); // the NaN is skipped
    assert_true(fabs(study_window_mean(r, "steps/loss", 0.8, 1) - 5.0) < 1e-12);
    assert_true(fabs(study_window_max(r, "steps/loss", 0, 0.4) - 2.0) < 1e-12);
    assert_true(fabs(study_window_min(r, "steps/loss", 0.4, 1) - 4.0) < 1e-12);   // NaN skipped here too
    const double w[3] = { -7, 2, NAN };
    assert_int_equal(study_run_put(r, "traces/w", w, 3), 0);
    assert_true(fabs(study_fn_max_abs(r, "traces/w") - 7.0) < 1e-12);
    assert_true(isnan(study_fn_max(r, "traces/none")));
    assert_true(isnan(study_scalar(r, "steps/none")));
    assert_true(fabs(study_scalar(r, "steps/loss") - 5.0) < 1e-12);
    add(&s, "y", "timeseries", "add", 1)->complete = 0; // unfinished runs are never selected
    double m, sd;
    const study_filter any = { 0 };
    assert_int_equal(study_aggregate(&s, &any, study_fn_scalar, "steps/loss", &m, &sd), 1);
    assert_true(isnan(sd)); // one run: no spread
    study_set_free(&s);
    // Every study is in the table once, with a claim, needs and a spec that parses as a sweep.
    for (int i = 0; i < study_count; i++) {
        const study_def *d = study_defs[i];
        assert_ptr_equal(study_find(d->name), d);
        assert_true(d->claim && *d->claim && d->needs && d->needs[0] && d->analyse);
        sweep_spec spec;
        char err[1024];
        if (sweep_spec_parse(&spec, d->spec, d->name, err, sizeof err) != 0) fail_msg("%s", err);
        assert_true(spec.nruns >= 2);
        sweep_spec_free(&spec);
    }
    assert_null(study_find("nonesuch"));
    // Figures past the table are counted, not lost silently.
    memset(&res, 0, sizeof res);
    for (int i = 0; i < STUDY_MAX_FIGURES + 44; i++) study_add(&res, "x", "", i, NAN, 1, "1", "")->deciding = 1;
    assert_int_equal(res.nfig, STUDY_MAX_FIGURES);
    assert_int_equal(res.dropped, 44);
}

// ---- 000 ----

static study_set imbalance_set(double raw_ratio, double last_seed_raw, double ln_ratio) {
    study_set s = { 0, NULL };
    for (int seed = 1; seed <= 3; seed++) {
        study_run *r = add(&s, "raw", "timeseries", "gated_add", seed);
        constant(r, "traces/fusion/fusion/ratio", seed == 3 ? last_seed_raw : raw_ratio, 20);
        constant(r, "traces/fusion/calendar_fusion/ratio", 1.1, 20);
        r = add(&s, "layernorm", "timeseries", "gated_add", seed);
        constant(r, "traces/fusion/fusion/ratio", ln_ratio, 20);
        constant(r, "traces/fusion/calendar_fusion/ratio", 1.1, 20);
    }
    return s;
}

static void test_imbalance(void **state) {
    (void)state;
    study_set s = imbalance_set(45, 40, 1.02);
    assert_int_equal(verdict_of("imbalance", &s, &res), STUDY_CONFIRMED);
    assert_true(fabs(figure(&res, "ratio_fusion", "raw")->value - (45 + 45 + 40) / 3.0) < 1e-9);
    assert_true(figure(&res, "ratio_fusion_min", "raw")->deciding);
    study_set_free(&s);
    s = imbalance_set(1.3, 1.2, 1.0); // no imbalance without LayerNorm
    assert_int_equal(verdict_of("imbalance", &s, &res), STUDY_REFUTED);
    study_set_free(&s);
    s = imbalance_set(45, 3, 1.0); // one seed disagrees
    assert_int_equal(verdict_of("imbalance", &s, &res), STUDY_INCONCLUSIVE);
    study_set_free(&s);
    s = (study_set){ 0, NULL };
    assert_int_equal(verdict_of("imbalance", &s, &res), STUDY_INCONCLUSIVE); // no runs at all
}

// share = grad_b / grad_a at the open and closed gate, per method.
static study_set starvation_set(double interp_closed_share, double add_closed_share, double closed_gate) {
    study_set s = { 0, NULL };
    const char *methods[2] = { "gated_interp", "gated_add" };
    for (int m = 0; m < 2; m++)
        for (int seed = 1; seed <= 2; seed++)
            for (int a = 0; a < 2; a++) {
                study_run *r = add(&s, a ? "closed" : "open", "timeseries", methods[m], seed);
                const double closed_share = m ? add_closed_share : interp_closed_share;
                constant(r, "traces/fusion/fusion/grad_norm_a", 2.0, 15);
                constant(r, "traces/fusion/fusion/grad_norm_b", 2.0 * (a ? closed_share : 0.5), 15);
                constant(r, "traces/fusion/fusion/gate_mean", a ? closed_gate : 0.5, 15);
            }
    return s;
}

static void test_starvation(void **state) {
    (void)state;
    study_set s = starvation_set(0.002, 0.3, 0.003); // interp starves, add keeps learning
    assert_int_equal(verdict_of("starvation", &s, &res), STUDY_CONFIRMED);
    assert_true(fabs(figure(&res, "share_drop", "gated_interp")->value - 0.004) < 1e-9);
    study_set_free(&s);
    s = starvation_set(0.002, 0.002, 0.003); // both starve: no difference between the forms
    assert_int_equal(verdict_of("starvation", &s, &res), STUDY_REFUTED);
    study_set_free(&s);
    s = starvation_set(0.002, 0.3, 0.3); // the gate never closed: the test did not happen
    assert_int_equal(verdict_of("starvation", &s, &res), STUDY_INCONCLUSIVE);
    study_set_free(&s);
}

static study_set multiplication_set(double mul_imbalanced_share, double ratio_imbalanced) {
    study_set s = { 0, NULL };
    const char *methods[3] = { "mul", "add", "gated_add" };
    for (int m = 0; m < 3; m++)
        for (int a = 0; a < 2; a++) {
            study_run *r = add(&s, a ? "imbalanced" : "balanced", "timeseries", methods[m], 1);
            const double share = a && m == 0 ? mul_imbalanced_share : 1.0;
            constant(r, "traces/fusion/fusion/grad_norm_a", 1.0, 10);
            constant(r, "traces/fusion/fusion/grad_norm_b", share, 10);
            constant(r, "traces/fusion/fusion/ratio", a ? ratio_imbalanced : 1.0, 10);
        }
    return s;
}

static void test_multiplication(void **state) {
    (void)state;
    study_set s = multiplication_set(45, 45); // mul's share follows the imbalance, add's does not
    assert_int_equal(verdict_of("multiplication", &s, &res), STUDY_CONFIRMED);
    assert_true(fabs(figure(&res, "log10_amplification", "mul")->value - log10(45)) < 1e-9);
    assert_true(fabs(figure(&res, "kappa", "mul")->value - 1) < 1e-9);   // the share follows the imbalance
    study_set_free(&s);
    s = multiplication_set(6, 6);   // a 6x imbalance fully followed: judged against the imbalance made
    assert_int_equal(verdict_of("multiplication", &s, &res), STUDY_CONFIRMED);
    study_set_free(&s);
    s = multiplication_set(1.5, 45); // mul unmoved
    assert_int_equal(verdict_of("multiplication", &s, &res), STUDY_REFUTED);
    study_set_free(&s);
    s = multiplication_set(45, 1.2); // --celestial-raw made no imbalance
    assert_int_equal(verdict_of("multiplication", &s, &res), STUDY_INCONCLUSIVE);
    study_set_free(&s);
}

// Early gradient norms per seed for bias −2 and 0, held-out losses.
static study_set gate_bias_set(const double *neg_early, const double *zero_early, double neg_loss, double zero_loss) {
    study_set s = { 0, NULL };
    for (int seed = 1; seed <= 5; seed++)
        for (int a = 0; a < 2; a++) {
            study_run *r = add(&s, a ? "bias_0" : "bias_-2", "timeseries", "gated_add", seed);
            double gn[100], loss[100];
            for (int i = 0; i < 100; i++) {
                gn[i] = i < 20 ? (a ? zero_early : neg_early)[seed - 1] : 0.5;
                loss[i] = 1.0 - 0.005 * i;
            }
            assert_int_equal(study_run_put(r, "steps/grad_norm", gn, 100), 0);
            assert_int_equal(study_run_put(r, "steps/loss", loss, 100), 0);
            scalar(r, "summary/holdout_loss", a ? zero_loss : neg_loss);
            scalar(r, "traces/fusion/fusion/gate_mean", a ? 0.5 : 0.12);
        }
    return s;
}

static void test_gate_bias(void **state) {
    (void)state;
    const double low[5] = { 1, 1.1, 0.9, 1, 1.2 }, high[5] = { 2, 2.1, 1.9, 2.2, 2 }, mixed[5] = { 2, 0.5, 2, 0.5, 2 };
    study_set s = gate_bias_set(low, high, 0.50, 0.50);
    assert_int_equal(verdict_of("gate_bias", &s, &res), STUDY_CONFIRMED);
    assert_true(fabs(figure(&res, "seeds_calmer", "bias_-2 vs bias_0")->value - 5) < 1e-12);
    assert_true(fabs(figure(&res, "early_spikes", "bias_-2")->value) < 1e-12); // a smooth loss has none
    study_set_free(&s);
    s = gate_bias_set(high, low, 0.50, 0.50); // −2 is the rougher start on every seed
    assert_int_equal(verdict_of("gate_bias", &s, &res), STUDY_REFUTED);
    study_set_free(&s);
    s = gate_bias_set(low, high, 0.60, 0.50); // calmer, but 20% worse in the end
    assert_int_equal(verdict_of("gate_bias", &s, &res), STUDY_REFUTED);
    study_set_free(&s);
    s = gate_bias_set(mixed, high, 0.50, 0.50); // calmer on some seeds only
    assert_int_equal(verdict_of("gate_bias", &s, &res), STUDY_INCONCLUSIVE);
    study_set_free(&s);
}

// ---- 002 ----

static study_set stochastic_set(double documented_diff, double returned_lambda_grad, double cost, double returned_fall) {
    study_set s = { 0, NULL };
    const char *arms[4] = { "documented", "deterministic", "returned", "deterministic_returned" };
    for (int a = 0; a < 4; a++)
        for (int seed = 1; seed <= 2; seed++) {
            study_run *r = add(&s, arms[a], "multimodal", "energy_aware_adaptive", seed);
            const int deterministic = a == 1 || a == 3, returned = a >= 2;
            constant(r, "traces/eval/max_abs_diff", deterministic ? 0 : documented_diff, 10);
            constant(r, "traces/params/grad_norm@lambda_energy", returned ? returned_lambda_grad : 0, 20);
            ramp(r, "traces/params/weight_norm@lambda_energy", 0.01, returned ? 0.002 : 0.01, 20);
            ramp(r, "traces/fusion/fusion/expected_cost", cost, cost - (returned ? returned_fall : 0.1), 20);
            constant(r, "traces/fusion/fusion/cost_budget", 4, 20);
        }
    return s;
}

static void test_stochastic_eval(void **state) {
    (void)state;
    study_set s = stochastic_set(0.4, 0.02, 5.6, 1.0);
    assert_int_equal(verdict_of("stochastic_eval", &s, &res), STUDY_CONFIRMED);
    assert_true(fabs(figure(&res, "cost_budget", "")->value - 4) < 1e-12);
    assert_true(fabs(figure(&res, "lambda_final", "returned")->value - 0.002) < 1e-12);
    study_set_free(&s);
    s = stochastic_set(0.0, 0.02, 5.6, 1.0); // the documented router is deterministic after all
    assert_int_equal(verdict_of("stochastic_eval", &s, &res), STUDY_REFUTED);
    study_set_free(&s);
    s = stochastic_set(0.4, 0.02, 5.6, 0.05); // returned, yet E[cost] falls no more than without
    assert_int_equal(verdict_of("stochastic_eval", &s, &res), STUDY_REFUTED);
    assert_non_null(strstr(res.reason, "part 1 CONFIRMED"));
    study_set_free(&s);
    s = stochastic_set(0.4, 0.0, 3.5, 1.0); // under the budget throughout: the penalty never binds
    assert_int_equal(verdict_of("stochastic_eval", &s, &res), STUDY_INCONCLUSIVE);
    study_set_free(&s);
}

static study_set dead_set(double default_grad, double token_grad) {
    study_set s = { 0, NULL };
    for (int seed = 1; seed <= 2; seed++) {
        study_run *r = add(&s, "default", "multimodal", "transformer_concat", seed);
        double v[12] = { 0 };
        v[7] = default_grad; // one stray step is enough to refute "no gradient"
        assert_int_equal(study_run_put(r, "traces/params/grad_norm@modality_token", v, 12), 0);
        r = add(&s, "with_token", "multimodal", "transformer_concat", seed);
        constant(r, "traces/params/grad_norm@modality_token", token_grad, 12);
    }
    return s;
}

static void test_dead_parameter(void **state) {
    (void)state;
    study_set s = dead_set(0, 3e-3);
    assert_int_equal(verdict_of("dead_parameter", &s, &res), STUDY_CONFIRMED);
    study_set_free(&s);
    s = dead_set(1e-12, 3e-3);
    assert_int_equal(verdict_of("dead_parameter", &s, &res), STUDY_REFUTED);
    study_set_free(&s);
    s = (study_set){ 0, NULL };
    add(&s, "default", "multimodal", "transformer_concat", 1); // no trace of the token
    assert_int_equal(verdict_of("dead_parameter", &s, &res), STUDY_INCONCLUSIVE);
    study_set_free(&s);
}

// Loss series whose second half alternates by ±amp around a slow decline.
static void wiggle(study_run *r, double amp) {
    double loss[200];
    for (int i = 0; i < 200; i++) loss[i] = 1.5 - 0.002 * i + (i % 2 ? amp : -amp);
    assert_int_equal(study_run_put(r, "steps/loss", loss, 200), 0);
}

static study_set dropout_set(const double *batch_amp, double sample_amp) {
    study_set s = { 0, NULL };
    for (int seed = 1; seed <= 5; seed++) {
        study_run *r = add(&s, "batch", "multimodal", "modality_dropout", seed);
        wiggle(r, batch_amp[seed - 1]);
        scalar(r, "summary/holdout_accuracy", 0.80);
        scalar(r, "summary/holdout_loss", 0.5);
        r = add(&s, "per_sample", "multimodal", "modality_dropout", seed);
        wiggle(r, sample_amp);
        scalar(r, "summary/holdout_accuracy", 0.82);
        scalar(r, "summary/holdout_loss", 0.45);
    }
    return s;
}

static void test_modality_dropout(void **state) {
    (void)state;
    const double big[5] = { 0.3, 0.25, 0.4, 0.3, 0.35 }, small[5] = { 0.01, 0.01, 0.02, 0.01, 0.01 },
                 mixed[5] = { 0.3, 0.01, 0.3, 0.01, 0.3 };
    study_set s = dropout_set(big, 0.05);
    assert_int_equal(verdict_of("modality_dropout", &s, &res), STUDY_CONFIRMED);
    assert_true(fabs(figure(&res, "holdout_accuracy_diff", "batch vs per_sample")->value + 0.02) < 1e-9);
    study_set_free(&s);
    s = dropout_set(small, 0.05);
    assert_int_equal(verdict_of("modality_dropout", &s, &res), STUDY_REFUTED);
    study_set_free(&s);
    s = dropout_set(mixed, 0.05);
    assert_int_equal(verdict_of("modality_dropout", &s, &res), STUDY_INCONCLUSIVE);
    study_set_free(&s);
}

// ---- 003 ----

static study_set pairwise_set(double local_loss, double global_loss) {
    study_set s = { 0, NULL };
    const char *scopes[4][2] = {
        { "dataparallel", "local" }, { "ddp", "local" }, { "ddp", "global" }, { "ddp", "blockdiag" }
    };
    for (int P = 2; P <= 4; P += 2)
        for (int k = 0; k < 4; k++)
            for (int seed = 1; seed <= 2; seed++) {
                study_run *r = add(&s, "-", "microbiome", "categorical_concat", seed);
                snprintf(r->parallel, sizeof r->parallel, "%s", scopes[k][0]);
                snprintf(r->pairs, sizeof r->pairs, "%s", scopes[k][1]);
                r->ranks = P;
                const int all = k == 0 || k == 2;
                scalar(r, "summary/holdout_unifrac", all ? global_loss : local_loss);
                scalar(r, "summary/median_step_ms", all ? 12.0 : 10.0);
            }
    return s;
}

static void test_pairwise_scope(void **state) {
    (void)state;
    study_set s = pairwise_set(0.60, 0.50);
    assert_int_equal(verdict_of("pairwise_scope", &s, &res), STUDY_CONFIRMED);
    // pairs per step at B = 16: all pairs 120; local on 4 ranks 4 x (4 x 3 / 2) = 24, on 2 ranks 2 x 28 = 56.
    assert_true(fabs(figure(&res, "pairs_per_step", "ddp_global@4")->value - 120) < 1e-12);
    assert_true(fabs(figure(&res, "pairs_per_step", "ddp_local@4")->value - 24) < 1e-12);
    assert_true(fabs(figure(&res, "pairs_per_step", "ddp_blockdiag@2")->value - 56) < 1e-12);
    assert_true(fabs(figure(&res, "step_ms_cost_of_global", "ddp_local vs ddp_global @4")->value - 2.0) < 1e-12);
    study_set_free(&s);
    s = pairwise_set(0.501, 0.50); // within 2%
    assert_int_equal(verdict_of("pairwise_scope", &s, &res), STUDY_REFUTED);
    study_set_free(&s);
}

static study_set attention_set(double single_spread, double column_spread) {
    study_set s = { 0, NULL };
    for (int seed = 1; seed <= 2; seed++) {
        study_run *r = add(&s, "single_token", "microbiome", "seq_cross_attention", seed);
        constant(r, "traces/fusion/fusion/attention_entropy", 0, 10);
        constant(r, "traces/fusion/fusion/attention_spread", single_spread, 10);
        r = add(&s, "per_column", "microbiome", "seq_cross_attention", seed);
        constant(r, "traces/fusion/fusion/attention_entropy", 0.9, 10);
        constant(r, "traces/fusion/fusion/attention_spread", column_spread, 10);
    }
    return s;
}

static void test_single_token_attention(void **state) {
    (void)state;
    study_set s = attention_set(0, 0.06);
    assert_int_equal(verdict_of("single_token_attention", &s, &res), STUDY_CONFIRMED);
    study_set_free(&s);
    s = attention_set(0.01, 0.06); // the single token's weights vary: not constant
    assert_int_equal(verdict_of("single_token_attention", &s, &res), STUDY_REFUTED);
    study_set_free(&s);
    s = attention_set(0, 1e-4); // per-column weights not position-specific either
    assert_int_equal(verdict_of("single_token_attention", &s, &res), STUDY_REFUTED);
    study_set_free(&s);
}

// ---- all ----

static study_set league_set(double gated_add_loss, double spread) {
    study_set s = { 0, NULL };
    const char *methods[3] = { "gated_add", "add", "concat_proj" };
    const double loss[3] = { gated_add_loss, 0.50, 0.70 }, sps[3] = { 1000, 3000, 500 };
    for (int m = 0; m < 3; m++)
        for (int seed = 1; seed <= 3; seed++) {
            study_run *r = add(&s, "-", "timeseries", methods[m], seed);
            scalar(r, "summary/holdout_loss", loss[m] + (seed - 2) * spread);
            scalar(r, "summary/samples_per_s", sps[m]);
            scalar(r, "summary/verdicts_fired", m == 2);
        }
    study_run *r = add(&s, "-", "multimodal", "add", 1); // another scenario's runs stay apart
    scalar(r, "summary/holdout_loss", 0.01);
    scalar(r, "summary/samples_per_s", 1e6);
    scalar(r, "summary/verdicts_fired", 0);
    return s;
}

static void test_fusion_league(void **state) {
    (void)state;
    study_set s = league_set(0.40, 0.01); // gated_add the best
    assert_int_equal(verdict_of("fusion_league", &s, &res), STUDY_CONFIRMED);
    assert_true(figure(&res, "pareto", "gated_add@timeseries")->value == 1);
    assert_true(figure(&res, "pareto", "add@timeseries")->value == 1);         // fastest
    assert_true(figure(&res, "pareto", "concat_proj@timeseries")->value == 0); // worse and slower
    assert_true(fabs(figure(&res, "holdout_loss", "add@multimodal")->value - 0.01) < 1e-12);
    study_set_free(&s);
    s = league_set(0.60, 0.01); // add beats it by 0.1 with a 0.008 spread: many SEs
    assert_int_equal(verdict_of("fusion_league", &s, &res), STUDY_REFUTED);
    study_set_free(&s);
    s = league_set(0.51, 0.02); // 0.01 behind with a 0.016 spread: within noise
    assert_int_equal(verdict_of("fusion_league", &s, &res), STUDY_CONFIRMED);
    study_set_free(&s);
    s = league_set(0.52, 0.02); // 0.02 behind: 1.2 SE (sample std 0.02 per method, SE of the gap 0.0163)
    assert_int_equal(verdict_of("fusion_league", &s, &res), STUDY_INCONCLUSIVE);
    study_set_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_helpers),        cmocka_unit_test(test_imbalance),
        cmocka_unit_test(test_starvation),     cmocka_unit_test(test_multiplication),
        cmocka_unit_test(test_gate_bias),      cmocka_unit_test(test_stochastic_eval),
        cmocka_unit_test(test_dead_parameter), cmocka_unit_test(test_modality_dropout),
        cmocka_unit_test(test_pairwise_scope), cmocka_unit_test(test_single_token_attention),
        cmocka_unit_test(test_fusion_league),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
