// traces: run statistics against hand computations on small arrays (row norms, moments, gate,
// attention entropy, routes, parameter norms and update ratios), bitwise thread-count independence,
// and every verdict firing on a constructed case and silent on a clean control, not evaluable with
// too little data; bad input.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/layout.h"
#include "../profiling/traces.h"

#define TOL 1e-12      // sums of a few doubles
#define TOL_F 1e-6     // inputs that are float roundings of decimal numbers (0.005f, ...)

// |got − want| <= tol, naming the expression and line (cmocka 1.1 has no assert_double_equal).
#define assert_near(got, want, tol) assert_near_((got), (want), (tol), #got, __LINE__)
static void assert_near_(double got, double want, double tol, const char *expr, int line) {
    if (!(fabs(got - want) <= tol)) fail_msg("line %d: %s = %.17g, want %.17g (tol %g)", line, expr, got, want, tol);
}

// ---------------------------------------------------------------- statistics

static void test_row_norm(void **state) {
    (void)state;
    const float x[] = { 3, 4, 6, 8 };                   // (2, 2): row norms 5, 10
    assert_near(trace_mean_row_norm(x, 2, 2), 7.5, TOL);
    const float y[] = { 1, 2, 2, 0, 0, 0 };             // (2, 3): row norms 3, 0
    assert_near(trace_mean_row_norm(y, 2, 3), 1.5, TOL);
    assert_near(trace_mean_row_norm(x, 4, 1), 5.25, TOL);   // (4, 1): |x| averaged
}

static void test_moments(void **state) {
    (void)state;
    const float x[] = { 1, 2, 3, 4 };   // mean 2.5, deviations ±1.5, ±0.5: variance 5/4
    double m, s;
    trace_moments(x, 4, &m, &s);
    assert_near(m, 2.5, TOL);
    assert_near(s, sqrt(1.25), TOL);
    // The same spread far from zero: two passes do not cancel (Σx² − n·mean² would lose ~8 digits).
    const float y[] = { 10001, 10002, 10003, 10004 };
    trace_moments(y, 4, &m, &s);
    assert_near(m, 10002.5, TOL);
    assert_near(s, sqrt(1.25), TOL);
    trace_moments(x, 4, NULL, &s);   // either output may be NULL
    assert_near(s, sqrt(1.25), TOL);
}

static void test_nonzero_nonfinite(void **state) {
    (void)state;
    float g[200] = { 0 };
    g[7] = -0.0f;
    assert_int_equal(trace_any_nonzero(g, 200), 0);     // ±0 everywhere
    g[150] = 1e-30f;
    assert_int_equal(trace_any_nonzero(g, 200), 1);     // a tiny value in a later block
    assert_int_equal(trace_any_nonzero(g, 150), 0);     // ... outside the range looked at
    g[150] = NAN;
    assert_int_equal(trace_any_nonzero(g, 200), 1);     // NaN is not zero
    const float x[] = { 1, NAN, INFINITY, -INFINITY, 0, -2 };
    assert_int_equal(trace_count_nonfinite(x, 6), 3);
    assert_int_equal(trace_count_nonfinite(x, 1), 0);
    // The parallel path: n far above FB_OMP_MIN_WORK.
    const size_t n = 100003;
    float *big = alloc_floats(n);
    big[0] = NAN; big[5000] = INFINITY; big[n - 1] = -INFINITY;
    assert_int_equal(trace_count_nonfinite(big, n), 3);
    free(big);
}

static void test_norm_warning(void **state) {
    (void)state;
    assert_int_equal(trace_norm_warning(150.0), 1);
    assert_int_equal(trace_norm_warning(0.005), -1);
    assert_int_equal(trace_norm_warning(1.0), 0);
    assert_int_equal(trace_norm_warning(TRACE_NORM_HIGH), 0);   // strict bounds, as NormMonitor
    assert_int_equal(trace_norm_warning(TRACE_NORM_LOW), 0);
    assert_int_equal(trace_norm_warning(NAN), 0);
}

// a (2, 2), b (1, 3), out (1, 2), with every diagnostic a method can expose.
static void test_fusion_point(void **state) {
    (void)state;
    const float a[] = { 3, 4, 6, 8 };        // norm (5 + 10)/2 = 7.5, mean 5.25, var 14.75/4
    const float b[] = { 1, 2, 2 };           // norm 3, mean 5/3, var (4 + 1 + 1)/9/3 = 2/9
    const float out[] = { 0, 5 };           // norm 5, mean 2.5, std 2.5
    const float gate[] = { 0.005f, 0.5f, 0.995f, 0.2f };   // 2 of 4 saturated: not > 50%
    const float att[] = { 0.25f, 0.25f, 0.25f, 0.25f,      // uniform: log 4
                          0, 1, 0, 0,                      // one-hot: 0
                          0.5f, 0, 0.5f, 0 };              // two halves: log 2
    const int routes[] = { 0, 2, 2, 1, 2, 5, -1 };         // 5 and -1 are outside [0, 3)
    fusion_diag diag = { .gate = gate, .gate_count = 4, .attention = att, .att_rows = 3, .att_cols = 4,
                         .routes = routes, .route_count = 7, .experts = 3 };
    trace_fusion_stats s;
    assert_int_equal(trace_fusion_point(&s, a, 2, 2, b, 1, 3, out, 1, 2, &diag), FB_OK);
    assert_near(s.norm_a, 7.5, TOL);
    assert_near(s.mean_a, 5.25, TOL);
    assert_near(s.std_a, sqrt(14.75 / 4), TOL);
    assert_near(s.norm_b, 3.0, TOL);
    assert_near(s.mean_b, 5.0 / 3, TOL);
    assert_near(s.std_b, sqrt(2.0 / 9), TOL);
    assert_near(s.ratio, 7.5 / (3.0 + 1e-8), TOL);
    assert_int_equal(s.imbalance_warning, 0);
    assert_true(s.has_out);
    assert_near(s.out_norm, 5.0, TOL);
    assert_near(s.out_mean, 2.5, TOL);
    assert_near(s.out_std, 2.5, TOL);
    assert_true(s.has_gate);
    assert_int_equal(s.gate_values, 4);
    assert_near(s.gate_mean, 1.7 / 4, TOL_F);
    // deviations from 0.425: -0.42, 0.075, 0.57, -0.225
    assert_near(s.gate_std, sqrt((0.42 * 0.42 + 0.075 * 0.075 + 0.57 * 0.57 + 0.225 * 0.225) / 4), TOL_F);
    assert_near(s.gate_min, 0.005, TOL_F);
    assert_near(s.gate_max, 0.995, TOL_F);
    assert_near(s.gate_dev, (0.495 + 0 + 0.495 + 0.3) / 4, TOL_F);
    assert_int_equal(s.gate_saturated_count, 2);
    assert_int_equal(s.gate_saturated, 0);
    assert_true(s.has_attention);
    assert_near(s.attention_entropy, (log(4.0) + 0 + log(2.0)) / 3, TOL_F);
    assert_int_equal(s.experts, 3);
    assert_int_equal(s.routes[0], 1);
    assert_int_equal(s.routes[1], 1);
    assert_int_equal(s.routes[2], 3);
    assert_int_equal(s.routes[3], 0);

    // A saturated gate (2 of 3 beyond the margins), a dominant a (ratio 50 > 10), no out, no diag.
    const float gate2[] = { 0.001f, 0.999f, 0.5f };
    fusion_diag d2 = { .gate = gate2, .gate_count = 3 };
    const float big[] = { 150, 0 };
    assert_int_equal(trace_fusion_point(&s, big, 1, 2, b, 1, 3, NULL, 0, 0, &d2), FB_OK);
    assert_int_equal(s.gate_saturated_count, 2);
    assert_int_equal(s.gate_saturated, 1);
    assert_int_equal(s.imbalance_warning, 1);
    assert_false(s.has_out);
    assert_false(s.has_attention);
    assert_int_equal(s.experts, 0);
    assert_int_equal(trace_fusion_point(&s, a, 2, 2, b, 1, 3, NULL, 0, 0, NULL), FB_OK);
    assert_false(s.has_gate);
    // A uniform attention over T columns has entropy log T, whatever T.
    const int T = 13;
    float u[2 * 13];
    for (int j = 0; j < 2 * T; j++) u[j] = 1.0f / T;
    fusion_diag d3 = { .attention = u, .att_rows = 2, .att_cols = T };
    assert_int_equal(trace_fusion_point(&s, a, 2, 2, b, 1, 3, NULL, 0, 0, &d3), FB_OK);
    assert_near(s.attention_entropy, log((double)T), TOL_F);
    assert_true(isnan(s.attention_spread));   // att_positions unset: no positions to compare
    // Spread: 2 samples x 2 positions x 2 keys. Sample 0's positions attend alike (spread 0); sample
    // 1's give key 0 the weights 0.2 and 0.6 (std 0.2), key 1 0.8 and 0.4 (std 0.2): mean 0.1.
    const float w[] = { 0.3f, 0.7f, 0.3f, 0.7f, 0.2f, 0.8f, 0.6f, 0.4f };
    fusion_diag d4 = { .attention = w, .att_rows = 4, .att_cols = 2, .att_positions = 2 };
    assert_int_equal(trace_fusion_point(&s, a, 2, 2, b, 1, 3, NULL, 0, 0, &d4), FB_OK);
    assert_near(s.attention_spread, 0.1, TOL_F);
    // One key: every weight is 1, entropy and spread 0 (the single-token cross-attention).
    const float one[] = { 1, 1, 1, 1 };
    fusion_diag d5 = { .attention = one, .att_rows = 4, .att_cols = 1, .att_positions = 2 };
    assert_int_equal(trace_fusion_point(&s, a, 2, 2, b, 1, 3, NULL, 0, 0, &d5), FB_OK);
    assert_near(s.attention_entropy, 0.0, TOL_F);
    assert_near(s.attention_spread, 0.0, TOL_F);
    // A cost model (energy_aware_adaptive) is carried through; without one, nothing is.
    fusion_diag d6 = { .has_cost = 1, .aux_loss = 0.25f, .cost_expected = 8.5f, .cost_budget = 8.0f };
    assert_int_equal(trace_fusion_point(&s, a, 2, 2, b, 1, 3, NULL, 0, 0, &d6), FB_OK);
    assert_true(s.has_cost);
    assert_near(s.cost_expected, 8.5, TOL_F);
    assert_near(s.cost_budget, 8.0, TOL_F);
    assert_near(s.aux_loss, 0.25, TOL_F);
}

// Every sum is bitwise the same on 1 and 2 threads, on sizes far above the parallel threshold, and
// close to a long-double reference.
static void test_threads_bitwise(void **state) {
    (void)state;
    const size_t rows = 3001, D = 257, E = 129, nb = 2000, ng = (1u << 20) + 7, ar = 1500, ac = 301;
    float *a = alloc_floats(rows * D), *b = alloc_floats(nb * E), *g = alloc_floats(ng), *att = alloc_floats(ar * ac);
    fill_uniform(a, rows * D, 1, 2.0f);
    fill_uniform(b, nb * E, 2, 0.5f);
    // A gate in [0, 1) with values spread over many binades (u³), so that double sums of them round
    // and their order shows: floats of one binade would sum exactly in double in any order.
    fill_uniform(g, ng, 3, 1.0f);
    for (size_t i = 0; i < ng; i++) g[i] = g[i] * g[i] * fabsf(g[i]);
    fill_uniform(att, ar * ac, 4, 1.0f);
    for (size_t r = 0; r < ar; r++) {                 // rows of probabilities
        double s = 0;
        for (size_t j = 0; j < ac; j++) s += att[r * ac + j] = fabsf(att[r * ac + j]);
        for (size_t j = 0; j < ac; j++) att[r * ac + j] /= (float)s;
    }
    fusion_diag diag = { .gate = g, .gate_count = ng, .attention = att, .att_rows = (int)ar, .att_cols = (int)ac };
    trace_fusion_stats s[2];
    double norm[2], mean[2], sd[2];
    for (int th = 0; th < 2; th++) {
        set_threads(th + 1);
        assert_int_equal(trace_fusion_point(&s[th], a, rows, (int)D, b, nb, (int)E, a, rows, (int)D, &diag), FB_OK);
        norm[th] = trace_mean_row_norm(g, ng / 7, 7);
        trace_moments(g, ng, &mean[th], &sd[th]);
    }
    set_threads(2);
    assert_memory_equal(&s[0], &s[1], sizeof s[0]);
    assert_memory_equal(norm, norm + 1, sizeof norm[0]);
    assert_memory_equal(mean, mean + 1, sizeof mean[0]);
    assert_memory_equal(sd, sd + 1, sizeof sd[0]);
    // Against a long-double reference: the chunked sums differ by rounding only.
    long double sa = 0, sg = 0;
    for (size_t r = 0; r < rows; r++) {
        long double q = 0;
        for (size_t j = 0; j < D; j++) q += (long double)a[r * D + j] * a[r * D + j];
        sa += sqrtl(q);
    }
    for (size_t i = 0; i < ng; i++) sg += g[i];
    printf("  threads: norm_a %.17g (ref %.17Lg), gate mean %.17g (ref %.17Lg)\n", s[0].norm_a, sa / rows,
           s[0].gate_mean, sg / ng);
    assert_near(s[0].norm_a, (double)(sa / rows), 1e-12 * s[0].norm_a);
    assert_near(s[0].gate_mean, (double)(sg / ng), 1e-12);
    free(a); free(b); free(g); free(att);
}

// A two-tensor layout (with canaries: NaN sentinels in the padding that nothing may read).
typedef struct { float *w, *bias; } tiny_params;

static void tiny_layout(fb_layout *P, tiny_params *p, tiny_params *g) {
    fb_layout_canaries = 1;
    fb_layout_init(P, 2);
    const int wd[2] = { 2, 2 }, bd[1] = { 3 };
    assert_int_equal(fb_layout_add(P, "net", "w", 2, wd, FB_INIT_ZERO, 0, &p->w, &g->w), 0);
    assert_int_equal(fb_layout_add(P, "net", "bias", 1, bd, FB_INIT_ZERO, 0, &p->bias, &g->bias), 1);
    assert_int_equal(fb_layout_alloc(P), FB_OK);
}

static void test_param_norms(void **state) {
    (void)state;
    fb_layout P;
    tiny_params p, g;
    tiny_layout(&P, &p, &g);
    const float w0[] = { 3, 4, 0, 0 };
    memcpy(p.w, w0, sizeof w0);                       // ‖w‖ = 5, bias = 0
    g.w[0] = 1; g.bias[1] = 2;                        // ‖g_w‖ = 1, ‖g_bias‖ = 2
    float *prev = alloc_floats(P.total);
    memcpy(prev, P.base[0], P.total * sizeof(float));
    p.w[3] = 0.5f;                                    // moved by 0.5: ratio 0.5 / 5
    double wn[2], gn[2], ur[2];
    assert_int_equal(trace_param_norms(&P, P.base[0], P.base[1], prev, wn, gn, ur), FB_OK);
    assert_near(wn[0], sqrt(25.25), TOL);
    assert_near(wn[1], 0.0, TOL);
    assert_near(gn[0], 1.0, TOL);
    assert_near(gn[1], 2.0, TOL);
    assert_near(ur[0], 0.1, TOL);
    assert_near(ur[1], 0.0, TOL);             // zero, and did not move: 0
    p.bias[2] = 1.0f;                                 // moved off exactly zero: +Inf
    assert_int_equal(trace_param_norms(&P, P.base[0], P.base[1], prev, NULL, NULL, ur), FB_OK);
    assert_true(isinf(ur[1]) && ur[1] > 0);
    assert_int_equal(trace_param_norms(&P, P.base[0], P.base[1], NULL, wn, gn, ur), FB_OK);
    assert_true(isnan(ur[0]) && isnan(ur[1]));        // no previous weights: unknown
    assert_near(wn[0], sqrt(25.25), TOL);
    assert_int_equal(fb_layout_check_canaries(&P), 0);
    free(prev);
    fb_layout_free(&P);
}

// ---------------------------------------------------------------- the run: helpers

// The verdict named `name` with subject `subject` ("" for the run's), else the test fails.
static const trace_verdict *find_verdict(const trace_run *r, const char *name, const char *subject) {
    static trace_verdict v[64];
    int n = trace_run_verdicts(r, v, 64);
    assert_true(n <= 64);
    for (int i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0 && strcmp(v[i].subject, subject) == 0) {
            printf("  %-22s %-14s fired %d evaluable %d value %-10.4g | %s\n", v[i].name, v[i].subject, v[i].fired,
                   v[i].evaluable, v[i].value, v[i].detail);
            return &v[i];
        }
    fail_msg("no verdict %s for '%s'", name, subject);
    return NULL;
}

static void expect_verdict(const trace_run *r, const char *name, const char *subject, int fired, int evaluable) {
    const trace_verdict *v = find_verdict(r, name, subject);
    assert_int_equal(v->fired, fired);
    assert_int_equal(v->evaluable, evaluable);
    if (!evaluable) assert_non_null(strstr(v->detail, "not evaluable"));
}

// One traced step of a fusion point through trace_fusion_point: a and b single rows of norms na and
// nb; a gate of GATE_N values, `saturated` of them at 0.999 and the rest at g (g < 0: no gate).
#define GATE_N 100
static void record_step(trace_run *r, int point, int64_t step, double na, double nb, double g, int saturated,
                        double grad_a, double grad_b) {
    const float a[2] = { (float)na, 0 }, b[2] = { 0, (float)nb };
    float gate[GATE_N];
    for (int i = 0; i < GATE_N; i++) gate[i] = i < saturated ? 0.999f : (float)g;
    fusion_diag diag = { .gate = gate, .gate_count = g < 0 ? 0 : GATE_N };
    trace_fusion_stats s;
    assert_int_equal(trace_fusion_point(&s, a, 1, 2, b, 1, 2, NULL, 0, 0, &diag), FB_OK);
    assert_int_equal(trace_run_fusion(r, point, step, &s, grad_a, grad_b), FB_OK);
}

static trace_run *new_run(int n_tensors, const char *const *tensors, int n_points, const char *const *points) {
    trace_run *r;
    assert_int_equal(trace_run_create(&r, n_tensors, tensors, n_points, points), FB_OK);
    return r;
}

// ---------------------------------------------------------------- run verdicts

// Tensor a gets a gradient every step, b once (step 4), c never: only c is dead. Canaries (NaN)
// after every tensor: divergence must not see them.
static void test_dead_and_divergence(void **state) {
    (void)state;
    fb_layout P;
    fb_layout_canaries = 1;
    fb_layout_init(&P, 1);
    const int dims[1] = { 70 };   // more than one 64-float block of trace_any_nonzero
    const char *names[3] = { "net.a", "net.b", "net.c" };
    for (int i = 0; i < 3; i++) assert_int_equal(fb_layout_add(&P, "", names[i], 1, dims, FB_INIT_ZERO, 0, NULL, NULL), i);
    assert_int_equal(fb_layout_alloc(&P), FB_OK);
    float *ga = fb_layout_ptr(&P, 0, 0), *gb = fb_layout_ptr(&P, 0, 1);
    trace_run *r = new_run(3, names, 0, NULL);
    expect_verdict(r, "dead_parameters", "", 0, 0);     // nothing seen yet
    expect_verdict(r, "divergence", "", 0, 0);
    for (int step = 0; step < 10; step++) {
        ga[step] = 0.1f;
        gb[69] = step == 4 ? -1e-3f : 0.0f;
        assert_int_equal(trace_run_grads(r, step, &P, P.base[0], 1), FB_OK);
        assert_int_equal(trace_run_loss(r, step, 1.0), FB_OK);
    }
    expect_verdict(r, "dead_parameters", "net.c", 1, 1);
    const trace_verdict *v = find_verdict(r, "dead_parameters", "net.c");
    assert_near(v->value, 1, 0);
    assert_string_equal(v->detail, "net.c: gradient identically zero over 10 steps");
    expect_verdict(r, "divergence", "", 0, 1);
    // A NaN gradient in b at step 10 and an infinite loss at step 11.
    gb[3] = NAN;
    assert_int_equal(trace_run_grads(r, 10, &P, P.base[0], 1), FB_OK);
    gb[3] = 0;
    assert_int_equal(trace_run_loss(r, 11, INFINITY), FB_OK);
    expect_verdict(r, "divergence", "net.b", 1, 1);
    v = find_verdict(r, "divergence", "net.b");
    assert_near(v->value, 2, 0);
    assert_non_null(strstr(v->detail, "first at step 11"));
    assert_non_null(strstr(v->detail, "net.b at step 10"));
    trace_run_destroy(r);

    // Control: every tensor live.
    r = new_run(3, names, 0, NULL);
    for (int i = 0; i < 3; i++) fb_layout_ptr(&P, 0, i)[60 + i] = 2.0f;
    assert_int_equal(trace_run_grads(r, 0, &P, P.base[0], 1), FB_OK);
    expect_verdict(r, "dead_parameters", "", 0, 1);
    trace_run_destroy(r);
    assert_int_equal(fb_layout_check_canaries(&P), 0);
    fb_layout_free(&P);
}

// Many dead tensors with long names: the subject is cut with " +N more" and stays a string.
static void test_dead_list_truncated(void **state) {
    (void)state;
    enum { N = 40 };
    fb_layout P;
    fb_layout_canaries = 0;
    fb_layout_init(&P, 1);
    char names[N][FB_NAME_MAX];
    const char *ptrs[N];
    const int one = 1;
    for (int i = 0; i < N; i++) {
        assert_int_equal(fb_layout_add(&P, "", "x", 1, &one, FB_INIT_ZERO, 0, NULL, NULL), i);
        snprintf(names[i], sizeof names[i], "encoder.layer%02d.attention.weight", i);
        ptrs[i] = names[i];
    }
    assert_int_equal(fb_layout_alloc(&P), FB_OK);
    trace_run *r = new_run(N, ptrs, 0, NULL);
    assert_int_equal(trace_run_grads(r, 0, &P, P.base[0], 1), FB_OK);
    trace_verdict v[TRACE_RUN_VERDICTS];
    assert_int_equal(trace_run_verdicts(r, v, TRACE_RUN_VERDICTS), TRACE_RUN_VERDICTS);
    printf("  subject: %s\n  detail: %s\n", v[0].subject, v[0].detail);
    assert_string_equal(v[0].name, "dead_parameters");
    assert_int_equal(v[0].fired, 1);
    assert_near(v[0].value, N, 0);
    assert_true(strlen(v[0].subject) < sizeof v[0].subject);
    assert_non_null(strstr(v[0].subject, "encoder.layer00.attention.weight, encoder.layer01"));
    int listed = 1, more = 0;
    for (const char *c = v[0].subject; (c = strstr(c, ", ")); c += 2) listed++;
    const char *m = strrchr(v[0].subject, '+');
    assert_non_null(m);
    assert_int_equal(sscanf(m, "+%d more", &more), 1);
    assert_int_equal(listed + more, N);
    trace_run_destroy(r);
    fb_layout_free(&P);
}

static void test_loss_spike(void **state) {
    (void)state;
    trace_run *r = new_run(0, NULL, 0, NULL);
    for (int s = 0; s < 20; s++) trace_run_loss(r, s, 2.0 + 0.01 * (s % 3));
    expect_verdict(r, "loss_spike", "", 0, 0);          // 20 losses: none has 20 before it
    trace_run_loss(r, 20, 2.0);
    expect_verdict(r, "loss_spike", "", 0, 1);          // the 21st is judged: clean
    trace_run_loss(r, 21, 25.0);                        // > 10 × median 2.01
    for (int s = 22; s < 30; s++) trace_run_loss(r, s, 2.0);
    const trace_verdict *v = find_verdict(r, "loss_spike", "");
    assert_int_equal(v->fired, 1);
    assert_near(v->value, 25.0 / 2.01, 1e-12);
    assert_near(v->threshold, 10.0, 0);
    assert_non_null(strstr(v->detail, "first at step 21"));
    trace_run_destroy(r);

    // Control: a loss falling 100x smoothly, then noisy: no step is 10x its recent median.
    r = new_run(0, NULL, 0, NULL);
    for (int s = 0; s < 200; s++) trace_run_loss(r, s, 5.0 * pow(0.01, s / 199.0) * (1.0 + 0.3 * (s % 2)));
    expect_verdict(r, "loss_spike", "", 0, 1);
    expect_verdict(r, "divergence", "", 0, 1);
    trace_run_destroy(r);
}

static void test_eval_check(void **state) {
    (void)state;
    trace_run *r = new_run(0, NULL, 0, NULL);
    expect_verdict(r, "nondeterministic_eval", "", 0, 0);
    trace_run_eval_check(r, 10, 0.0);
    trace_run_eval_check(r, 20, 0.0);
    expect_verdict(r, "nondeterministic_eval", "", 0, 1);
    trace_run_eval_check(r, 30, 1e-7);
    trace_run_eval_check(r, 40, 0.0);
    const trace_verdict *v = find_verdict(r, "nondeterministic_eval", "");
    assert_int_equal(v->fired, 1);
    assert_near(v->value, 1e-7, 0);
    assert_non_null(strstr(v->detail, "first at step 30"));
    trace_run_destroy(r);
    r = new_run(0, NULL, 0, NULL);                      // a NaN difference cannot show equality
    trace_run_eval_check(r, 0, NAN);
    expect_verdict(r, "nondeterministic_eval", "", 1, 1);
    trace_run_destroy(r);
}

// ---------------------------------------------------------------- per-point verdicts

// "bal": ratio 1; "dom": ratio 20 (mean > 5, every step warns); "weak": ratio 0.15 (mean < 0.2,
// but no step below the per-step 0.1); "mild": ratio 6 at half the steps, 1 at the others (mean
// 3.5: clean, though the summary's max is 6).
static void test_magnitude_imbalance(void **state) {
    (void)state;
    const char *points[4] = { "bal", "dom", "weak", "mild" };
    trace_run *r = new_run(0, NULL, 4, points);
    expect_verdict(r, "magnitude_imbalance", "bal", 0, 0);
    for (int s = 0; s < 10; s++) {
        record_step(r, 0, s, 1.0, 1.0, -1, 0, NAN, NAN);
        record_step(r, 1, s, 20.0, 1.0, -1, 0, NAN, NAN);
        record_step(r, 2, s, 0.15, 1.0, -1, 0, NAN, NAN);
        record_step(r, 3, s, s % 2 ? 6.0 : 1.0, 1.0, -1, 0, NAN, NAN);
    }
    expect_verdict(r, "magnitude_imbalance", "bal", 0, 1);
    expect_verdict(r, "magnitude_imbalance", "dom", 1, 1);
    expect_verdict(r, "magnitude_imbalance", "weak", 1, 1);
    expect_verdict(r, "magnitude_imbalance", "mild", 0, 1);
    assert_near(find_verdict(r, "magnitude_imbalance", "dom")->threshold, 5.0, 0);
    assert_near(find_verdict(r, "magnitude_imbalance", "weak")->threshold, 0.2, 0);
    double mean, lo, hi;
    int64_t warnings;
    trace_run_point_summary(r, 1, &mean, &lo, &hi, &warnings);
    assert_near(mean, 20.0, 1e-6);
    assert_int_equal(warnings, 10);
    trace_run_point_summary(r, 2, &mean, NULL, NULL, &warnings);
    assert_near(mean, 0.15, 1e-6);
    assert_int_equal(warnings, 0);
    trace_run_point_summary(r, 3, &mean, &lo, &hi, &warnings);
    assert_near(mean, 3.5, 1e-6);
    assert_near(lo, 1.0, 1e-6);
    assert_near(hi, 6.0, 1e-6);
    assert_int_equal(warnings, 0);
    trace_run_destroy(r);
}

// Branch b's gradient norm decays 100x over 40 traced steps (a's constant). With the gate going
// 0.5 -> 0.995 that is starvation of b (a stays clean); with the gate held at 0.5 it is not.
// Without a gate: b decaying alone is starvation; both decaying together is convergence.
static void test_starvation(void **state) {
    (void)state;
    const char *points[5] = { "closing", "open", "steady", "nogate", "converge" };
    trace_run *r = new_run(0, NULL, 5, points);
    for (int s = 0; s < 40; s++) {
        double decay = pow(0.01, s / 39.0), g = 0.5 + 0.495 * s / 39.0;
        record_step(r, 0, s, 1, 1, g, 0, 1.0, decay);
        record_step(r, 1, s, 1, 1, 0.5, 0, 1.0, decay);
        record_step(r, 2, s, 1, 1, 0.5, 0, 1.0, 1.0);
        record_step(r, 3, s, 1, 1, -1, 0, 1.0, decay);
        record_step(r, 4, s, 1, 1, -1, 0, decay, decay);
    }
    expect_verdict(r, "gradient_starvation", "closing:b", 1, 1);
    expect_verdict(r, "gradient_starvation", "closing:a", 0, 1);
    const trace_verdict *v = find_verdict(r, "gradient_starvation", "closing:b");
    assert_true(v->value < 0.1 && v->value > 0.01);
    assert_near(v->threshold, 0.1, 0);
    expect_verdict(r, "gradient_starvation", "open:b", 0, 1);
    expect_verdict(r, "gradient_starvation", "steady:a", 0, 1);
    expect_verdict(r, "gradient_starvation", "steady:b", 0, 1);
    expect_verdict(r, "gradient_starvation", "nogate:b", 1, 1);
    expect_verdict(r, "gradient_starvation", "nogate:a", 0, 1);
    expect_verdict(r, "gradient_starvation", "converge:a", 0, 1);
    expect_verdict(r, "gradient_starvation", "converge:b", 0, 1);
    trace_run_destroy(r);

    // Too few traced steps (7 < 8), and gradient norms never recorded: not evaluable.
    const char *one[2] = { "short", "unknown" };
    r = new_run(0, NULL, 2, one);
    for (int s = 0; s < 7; s++) record_step(r, 0, s, 1, 1, 0.5 + 0.07 * s, 0, 1.0, pow(0.01, s / 6.0));
    for (int s = 0; s < 12; s++) record_step(r, 1, s, 1, 1, 0.5, 0, NAN, NAN);
    expect_verdict(r, "gradient_starvation", "short:b", 0, 0);
    assert_non_null(strstr(find_verdict(r, "gradient_starvation", "short:b")->detail, "needs 8"));
    expect_verdict(r, "gradient_starvation", "unknown:a", 0, 0);
    trace_run_destroy(r);
}

// "sat": 80 of 100 gate values saturated (at 0.999) in the last quarter; "low": every value at
// 0.005 (saturated at the other end); "recovered": saturated early, open late; "half": exactly 50%
// (not more); "plain": no gate.
static void test_gate_saturation(void **state) {
    (void)state;
    const char *points[5] = { "sat", "low", "recovered", "half", "plain" };
    trace_run *r = new_run(0, NULL, 5, points);
    for (int s = 0; s < 20; s++) {
        record_step(r, 0, s, 1, 1, 0.5, s >= 15 ? 80 : 10, NAN, NAN);
        record_step(r, 1, s, 1, 1, 0.005, 0, NAN, NAN);
        record_step(r, 2, s, 1, 1, 0.5, s < 15 ? 90 : 0, NAN, NAN);
        record_step(r, 3, s, 1, 1, 0.5, 50, NAN, NAN);
        record_step(r, 4, s, 1, 1, -1, 0, NAN, NAN);
    }
    expect_verdict(r, "gate_saturation", "sat", 1, 1);
    assert_near(find_verdict(r, "gate_saturation", "sat")->value, 0.8, 1e-12);
    expect_verdict(r, "gate_saturation", "low", 1, 1);
    expect_verdict(r, "gate_saturation", "recovered", 0, 1);
    expect_verdict(r, "gate_saturation", "half", 0, 1);
    expect_verdict(r, "gate_saturation", "plain", 0, 0);
    trace_run_destroy(r);
}

// The verdict list: 4 for the run, 4 per point, in the documented order; snprintf-style sizing.
static void test_verdict_list(void **state) {
    (void)state;
    const char *points[2] = { "p0", "p1" };
    trace_run *r = new_run(0, NULL, 2, points);
    const int want = TRACE_RUN_VERDICTS + 2 * TRACE_POINT_VERDICTS;
    assert_int_equal(trace_run_verdicts(r, NULL, 0), want);
    trace_verdict v[16];
    memset(v, 0x5a, sizeof v);
    assert_int_equal(trace_run_verdicts(r, v, 3), want);
    const unsigned char *untouched = (const unsigned char *)&v[3];
    for (size_t i = 0; i < sizeof v[3]; i++) assert_int_equal(untouched[i], 0x5a);
    assert_int_equal(trace_run_verdicts(r, v, 16), want);
    const char *order[] = { "dead_parameters", "nondeterministic_eval", "divergence", "loss_spike",
                            "magnitude_imbalance", "gradient_starvation", "gradient_starvation", "gate_saturation" };
    const char *subjects[] = { "", "", "", "", "p0", "p0:a", "p0:b", "p0" };
    for (int i = 0; i < want; i++) {
        int k = i < TRACE_RUN_VERDICTS ? i : TRACE_RUN_VERDICTS + (i - TRACE_RUN_VERDICTS) % TRACE_POINT_VERDICTS;
        assert_string_equal(v[i].name, order[k]);
        if (i < 8) assert_string_equal(v[i].subject, subjects[i]);
        assert_int_equal(v[i].fired, 0);
        assert_int_equal(v[i].evaluable, 0);   // nothing recorded: nothing can be judged
        assert_true(strlen(v[i].detail) > 0);
    }
    assert_string_equal(v[8].subject, "p1");
    trace_run_destroy(r);
}

// ---------------------------------------------------------------- bad input

static void expect(fb_status got, fb_status want, const char *needle) {
    const char *msg = fb_last_error();
    printf("  bad argument -> %s: %s\n", fb_status_name(got), msg);
    assert_int_equal(got, want);
    assert_non_null(strstr(msg, needle));
}

static void test_bad_input(void **state) {
    (void)state;
    const float x[4] = { 1, 2, 3, 4 };
    assert_true(isnan(trace_mean_row_norm(NULL, 2, 2)));
    assert_true(isnan(trace_mean_row_norm(x, 0, 2)));
    assert_true(isnan(trace_mean_row_norm(x, 2, -1)));
    assert_true(isnan(trace_mean_row_norm(x, 2, 0)));
    double m = 0, s = 0;
    trace_moments(x, 0, &m, &s);
    assert_true(isnan(m) && isnan(s));
    trace_moments(NULL, 4, &m, &s);
    assert_true(isnan(m) && isnan(s));
    assert_int_equal(trace_any_nonzero(NULL, 4), 0);
    assert_int_equal(trace_count_nonfinite(NULL, 4), 0);

    trace_fusion_stats st;
    expect(trace_fusion_point(&st, x, 2, -1, x, 2, 2, NULL, 0, 0, NULL), FB_ERR_SHAPE, "every size must be > 0");
    assert_true(isnan(st.ratio) && !st.has_gate);
    expect(trace_fusion_point(&st, x, 0, 2, x, 2, 2, NULL, 0, 0, NULL), FB_ERR_SHAPE, "a (0, 2)");
    expect(trace_fusion_point(&st, NULL, 2, 2, x, 2, 2, NULL, 0, 0, NULL), FB_ERR_SHAPE, "missing stream a");
    expect(trace_fusion_point(&st, x, 2, 2, NULL, 2, 2, NULL, 0, 0, NULL), FB_ERR_SHAPE, "missing stream b");
    expect(trace_fusion_point(&st, x, 2, 2, x, 2, 2, x, 2, 0, NULL), FB_ERR_SHAPE, "out (2, 0)");
    expect(trace_fusion_point(NULL, x, 2, 2, x, 2, 2, NULL, 0, 0, NULL), FB_ERR_SHAPE, "missing statistics");
    fusion_diag d = { .attention = x, .att_rows = 2, .att_cols = 0 };
    expect(trace_fusion_point(&st, x, 2, 2, x, 2, 2, NULL, 0, 0, &d), FB_ERR_SHAPE, "attention (2, 0)");
    const int routes[2] = { 0, 1 };
    fusion_diag dr = { .routes = routes, .route_count = 2, .experts = 0 };
    expect(trace_fusion_point(&st, x, 2, 2, x, 2, 2, NULL, 0, 0, &dr), FB_ERR_SHAPE, "over 0 experts");
    expect(trace_param_norms(NULL, x, x, x, NULL, NULL, NULL), FB_ERR_SHAPE, "missing parameter layout");

    trace_run *r = (trace_run *)&st;   // must be set to NULL on failure
    const char *names[2] = { "t0", NULL };
    expect(trace_run_create(&r, -1, NULL, 0, NULL), FB_ERR_SHAPE, "must be >= 0");
    assert_null(r);
    expect(trace_run_create(&r, 0, NULL, -3, NULL), FB_ERR_SHAPE, "must be >= 0");
    expect(trace_run_create(&r, 2, NULL, 0, NULL), FB_ERR_SHAPE, "missing tensor names");
    expect(trace_run_create(&r, 0, NULL, 1, NULL), FB_ERR_SHAPE, "missing fusion point names");
    expect(trace_run_create(&r, 2, names, 0, NULL), FB_ERR_SHAPE, "tensor 1 has no name");
    expect(trace_run_create(NULL, 0, NULL, 0, NULL), FB_ERR_SHAPE, "missing result pointer");

    // A NULL run: every recorder is a no-op, no verdicts.
    assert_int_equal(trace_run_loss(NULL, 0, 1.0), FB_OK);
    assert_int_equal(trace_run_grads(NULL, 0, NULL, NULL, 1), FB_OK);
    assert_int_equal(trace_run_fusion(NULL, 0, 0, NULL, 0, 0), FB_OK);
    assert_int_equal(trace_run_eval_check(NULL, 0, 0), FB_OK);
    assert_int_equal(trace_run_verdicts(NULL, NULL, 0), 0);
    trace_run_destroy(NULL);

    const char *good[2] = { "t0", "t1" };
    r = new_run(2, good, 1, good);
    fb_layout P;
    fb_layout_canaries = 0;
    fb_layout_init(&P, 1);
    const int one = 1;
    assert_int_equal(fb_layout_add(&P, "", "t0", 1, &one, FB_INIT_ZERO, 0, NULL, NULL), 0);
    assert_int_equal(fb_layout_alloc(&P), FB_OK);
    expect(trace_run_grads(r, 0, &P, P.base[0], 1), FB_ERR_SHAPE, "layout has 1 tensors, the run 2");
    expect(trace_run_grads(r, 0, &P, NULL, 1), FB_ERR_SHAPE, "missing gradient buffer");
    trace_fusion_stats ok = { .ratio = 1 };
    expect(trace_run_fusion(r, 1, 0, &ok, 0, 0), FB_ERR_SHAPE, "point 1 of 1");
    expect(trace_run_fusion(r, -1, 0, &ok, 0, 0), FB_ERR_SHAPE, "point -1 of 1");
    expect(trace_run_fusion(r, 0, 0, NULL, 0, 0), FB_ERR_SHAPE, "missing statistics");
    double mean = 0, lo = 0, hi = 0;
    int64_t w = 7;
    trace_run_point_summary(r, 5, &mean, &lo, &hi, &w);
    assert_true(isnan(mean) && isnan(lo) && isnan(hi));
    assert_int_equal(w, 0);
    trace_run_point_summary(r, 0, &mean, &lo, &hi, &w);   // a point never traced
    assert_true(isnan(mean));
    fb_layout_free(&P);
    trace_run_destroy(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_row_norm),
        cmocka_unit_test(test_moments),
        cmocka_unit_test(test_nonzero_nonfinite),
        cmocka_unit_test(test_norm_warning),
        cmocka_unit_test(test_fusion_point),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_param_norms),
        cmocka_unit_test(test_dead_and_divergence),
        cmocka_unit_test(test_dead_list_truncated),
        cmocka_unit_test(test_loss_spike),
        cmocka_unit_test(test_eval_check),
        cmocka_unit_test(test_magnitude_imbalance),
        cmocka_unit_test(test_starvation),
        cmocka_unit_test(test_gate_saturation),
        cmocka_unit_test(test_verdict_list),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests_name("traces", tests, NULL, NULL);
}
