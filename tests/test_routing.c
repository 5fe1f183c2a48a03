// The routing methods' behaviour that the generic fusion test cannot see (kernels/fusion/shomr.c,
// energy_aware_adaptive.c): the energy loss and its gradients against PyTorch and finite
// differences, stochastic versus deterministic evaluation, route counts following the router's
// probabilities, the threshold switch, and 1 vs 2 threads with every route taken and dropout on.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/fusion/fusion.h"

typedef struct {
    fusion f;
    fb_layout P, A;
    float *a, *b, *out, *dout, *da, *db;
    size_t n;
} route_run;

static void setup(route_run *r, const char *method, const fusion_config *c) {
    memset(r, 0, sizeof *r);
    fb_layout_canaries = 1;
    fb_layout_init(&r->P, 2);
    fb_layout_init(&r->A, 2);
    const fusion_method *m = fusion_find(method);
    assert_non_null(m);
    if (fusion_create(&r->f, m, c, &r->P, &r->A) != FB_OK) fail_msg("%s: %s", method, fb_last_error());
    assert_int_equal(fb_layout_alloc(&r->P), FB_OK);
    assert_int_equal(fb_layout_alloc(&r->A), FB_OK);
    fb_layout_initialize(&r->P, 7);
    r->n = (size_t)c->B * c->D;
    r->a = alloc_floats(r->n); r->b = alloc_floats(r->n); r->out = alloc_floats(r->n);
    r->dout = alloc_floats(r->n); r->da = alloc_floats(r->n); r->db = alloc_floats(r->n);
    fill_uniform(r->a, r->n, 11, 1.0f);
    fill_uniform(r->b, r->n, 12, 1.0f);
    fill_uniform(r->dout, r->n, 13, 1.0f);
}

static void teardown(route_run *r) {
    assert_int_equal(fb_layout_check_canaries(&r->P), 0);
    assert_int_equal(fb_layout_check_canaries(&r->A), 0);
    fusion_destroy(&r->f);
    fb_layout_free(&r->P); fb_layout_free(&r->A);
    free(r->a); free(r->b); free(r->out); free(r->dout); free(r->da); free(r->db);
}

static float *param(route_run *r, const char *name) {
    int i = fb_layout_find(&r->P, name);
    if (i < 0) fail_msg("no parameter %s", name);
    return fb_layout_ptr(&r->P, 0, i);
}

static void forward(route_run *r) {
    if (fusion_forward(&r->f, r->out, r->a, r->b) != FB_OK) fail_msg("forward: %s", fb_last_error());
}

static void forward_backward(route_run *r) {
    fb_layout_zero(&r->P, 1);
    memset(r->da, 0, r->n * sizeof(float));
    memset(r->db, 0, r->n * sizeof(float));
    forward(r);
    if (fusion_backward(&r->f, r->da, r->db, r->dout, r->a, r->b) != FB_OK) fail_msg("backward: %s", fb_last_error());
}

// The router's last layer set so that every sample has the probabilities softmax(logits).
static void fix_router(route_run *r, const char *layer, const float *logits) {
    char name[FB_NAME_MAX];
    snprintf(name, sizeof name, "%s.weight", layer);
    memset(param(r, name), 0, (size_t)r->f.c.D * 3 * sizeof(float));
    snprintf(name, sizeof name, "%s.bias", layer);
    memcpy(param(r, name), logits, 3 * sizeof(float));
}

static int count_route(const route_run *r, int k) {
    int n = 0;
    for (int i = 0; i < r->f.diag.route_count; i++) n += r->f.diag.routes[i] == k;
    return n;
}

static fusion_config vector_config(int B, int D, int H) {
    fusion_config c = fusion_default_config(B, 1, 1, D, D);
    c.prefix = "";
    c.H = H;
    c.dropout = 0.0f;
    return c;
}

// ---- the energy loss against PyTorch (tests/refs/fusion/energy_aware_adaptive.py, extra()) ----

static double aux_loss_of(void *ctx) {
    route_run *r = ctx;
    forward(r);
    return r->f.diag.aux_loss;
}

static void test_energy_loss_torch(void **state) {
    (void)state;
    fixture fx;
    fixture_open(&fx, "fusion/energy_aware_adaptive", "doc_eval_both");
    snprintf(fx.label, sizeof fx.label, "energy_loss/doc_eval_both");
    if (!fixture_has(&fx, "aux/loss"))
        fail_msg("energy_aware_adaptive.h5/doc_eval_both has no aux/ datasets: regenerate it with the "
                 "extra(case, group) hook of tests/refs/fusion/energy_aware_adaptive.py");
    fusion_config c = vector_config(fixture_int(&fx, "B"), fixture_int(&fx, "D"), fixture_int(&fx, "H"));
    c.training = 1;
    for (int variant = 0; variant < 4; variant++) {
        c.variant = variant;   // documented, deterministic, returned, deterministic_returned
        const int returned = variant >= 2;
        route_run r;
        setup(&r, "energy_aware_adaptive", &c);
        size_t m;
        float *v = fixture_floats(&fx, "a", &m); memcpy(r.a, v, r.n * sizeof(float)); free(v);
        v = fixture_floats(&fx, "b", &m); memcpy(r.b, v, r.n * sizeof(float)); free(v);
        char name[160];
        for (int i = 0; i < r.P.count; i++) {
            snprintf(name, sizeof name, "aux/param/%s", r.P.tensors[i].name);   // the loss's own values
            if (!fixture_has(&fx, name)) snprintf(name, sizeof name, "param/%s", r.P.tensors[i].name);
            v = fixture_floats(&fx, name, &m);
            if (m != r.P.tensors[i].numel) fail_msg("%s: %zu values", name, m);
            memcpy(fb_layout_ptr(&r.P, 0, i), v, m * sizeof(float));
            free(v);
        }
        memset(r.dout, 0, r.n * sizeof(float));   // only the energy loss has a gradient
        forward_backward(&r);
        assert_int_equal(r.f.diag.aux_loss_returned, returned);
        float loss = r.f.diag.aux_loss;
        check_against(&fx, "aux/loss", &loss, 1, 1e-5);
        if (returned) {
            check_against(&fx, "aux/da", r.da, r.n, 1e-5);
            check_against(&fx, "aux/db", r.db, r.n, 1e-5);
            for (int i = 0; i < r.P.count; i++) {
                snprintf(name, sizeof name, "aux/grad/%s", r.P.tensors[i].name);
                check_against(&fx, name, fb_layout_ptr(&r.P, 1, i), r.P.tensors[i].numel, 1e-5);
            }
            // Finite differences of the loss itself (routes are sampled, the loss does not depend on them).
            fd_var vars[] = {
                {"a", r.a, r.n, r.da}, {"b", r.b, r.n, r.db},
                {"router.0.weight", param(&r, "router.0.weight"), (size_t)2 * c.D * c.D, fb_layout_ptr(&r.P, 1, fb_layout_find(&r.P, "router.0.weight"))},
                {"router.2.weight", param(&r, "router.2.weight"), (size_t)3 * c.D, fb_layout_ptr(&r.P, 1, fb_layout_find(&r.P, "router.2.weight"))},
                {"router.2.bias", param(&r, "router.2.bias"), 3, fb_layout_ptr(&r.P, 1, fb_layout_find(&r.P, "router.2.bias"))},
                {"lambda_energy", param(&r, "lambda_energy"), 1, fb_layout_ptr(&r.P, 1, fb_layout_find(&r.P, "lambda_energy"))},
            };
            fd_check("energy_loss", aux_loss_of, &r, vars, 6, 5e-2f, 12, 5e-3);   // h: the float32 loss is E − 8 after cancellation
        } else {   // computed, not returned: no gradient anywhere
            for (size_t i = 0; i < r.n; i++) assert_true(r.da[i] == 0.0f && r.db[i] == 0.0f);
            for (int i = 0; i < r.P.count; i++)
                for (size_t j = 0; j < r.P.tensors[i].numel; j++) assert_true(fb_layout_ptr(&r.P, 1, i)[j] == 0.0f);
        }
        // Evaluation: no energy loss.
        r.f.c.training = 0;
        forward(&r);
        assert_true(r.f.diag.aux_loss == 0.0f);
        teardown(&r);
    }
    fixture_close(&fx);
}

// ---- stochastic (documented) versus deterministic evaluation ----

static void test_energy_evaluation(void **state) {
    (void)state;
    const float logits[3] = {0.0f, 0.1f, 0.3f};
    for (int variant = 0; variant < 4; variant++) {
        fusion_config c = vector_config(64, 16, 2);
        c.training = 0;
        c.variant = variant;
        route_run r;
        setup(&r, "energy_aware_adaptive", &c);
        fix_router(&r, "router.2", logits);
        float *first = alloc_floats(r.n);
        int routes_first[64];
        r.f.c.rng.step = 1;
        forward(&r);
        memcpy(first, r.out, r.n * sizeof(float));
        memcpy(routes_first, r.f.diag.routes, sizeof routes_first);
        forward(&r);   // the same step again: the same draw
        assert_true(bitwise_equal(first, r.out, r.n));
        r.f.c.rng.step = 2;
        forward(&r);
        int stochastic = variant == 0 || variant == 2;
        int same = bitwise_equal(first, r.out, r.n) && !memcmp(routes_first, r.f.diag.routes, sizeof routes_first);
        printf("  eval  energy_aware_adaptive variant %s: steps 1 and 2 %s\n", r.f.method->variants[variant],
               same ? "identical" : "differ");
        assert_int_equal(same, !stochastic);
        if (!stochastic) assert_int_equal(count_route(&r, 2), 64);   // argmax of (0, 0.1, 0.3)
        free(first);
        teardown(&r);
    }
}

// ---- sampled routes follow the router's probabilities (chi-square, 2 degrees of freedom) ----

static void check_counts(const char *what, const int *count, const double *p, int n) {
    double chi2 = 0;
    for (int k = 0; k < 3; k++) {
        double e = p[k] * n;
        chi2 += (count[k] - e) * (count[k] - e) / e;
    }
    printf("  stats %-40s counts %d %d %d, expected %.0f %.0f %.0f, chi2 %.2f\n", what, count[0], count[1], count[2],
           p[0] * n, p[1] * n, p[2] * n, chi2);
    assert_true(chi2 < 13.8);   // P(chi2_2 > 13.8) = 0.001
}

static void test_route_statistics(void **state) {
    (void)state;
    const int B = 20000;
    const float logits[3] = {-0.4f, 0.0f, 0.5f};
    double p[3], q[3], sp = 0, sq = 0;
    for (int k = 0; k < 3; k++) { p[k] = exp(logits[k]); q[k] = exp(logits[k] / 2.0); sp += p[k]; sq += q[k]; }
    for (int k = 0; k < 3; k++) { p[k] /= sp; q[k] /= sq; }
    {   // energy_aware_adaptive, documented: sampled in evaluation
        fusion_config c = vector_config(B, 8, 1);
        c.training = 0;
        route_run r;
        setup(&r, "energy_aware_adaptive", &c);
        fix_router(&r, "router.2", logits);
        forward(&r);
        int count[3] = {count_route(&r, 0), count_route(&r, 1), count_route(&r, 2)};
        check_counts("energy_aware_adaptive (evaluation)", count, p, B);
        teardown(&r);
    }
    {   // shomr, every sample hard (threshold 0), training, temperature 2: r = softmax(logits / 2)
        fusion_config c = vector_config(B, 8, 1);
        c.training = 1;
        c.threshold = 0.0f;
        c.temperature = 2.0f;
        route_run r;
        setup(&r, "shomr", &c);
        fix_router(&r, "router.3", logits);
        forward(&r);
        assert_int_equal(count_route(&r, 0), 0);
        int count[3] = {count_route(&r, 1), count_route(&r, 2), count_route(&r, 3)};
        check_counts("shomr (training, temperature 2)", count, q, B);
        r.f.c.training = 0;   // evaluation: argmax, every sample "both"
        forward(&r);
        assert_int_equal(count_route(&r, 3), B);
        teardown(&r);
    }
}

// ---- shomr's threshold switch ----

static void test_shomr_threshold(void **state) {
    (void)state;
    const float thresholds[3] = {1.0f, 0.0f, 0.6f};
    for (int t = 0; t < 3; t++) {
        fusion_config c = vector_config(200, 16, 2);
        c.training = 0;
        c.threshold = thresholds[t];
        route_run r;
        setup(&r, "shomr", &c);
        float *w3 = param(&r, "conf_net.3.weight");   // spread w so that the threshold 0.6 splits the batch
        for (int i = 0; i < 2 * c.D; i++) w3[i] *= 8.0f;
        forward(&r);
        int soft = count_route(&r, 0), hard_expected = 0;
        const float *w = r.f.diag.gate;
        assert_int_equal((int)r.f.diag.gate_count, 2 * c.B);
        for (int i = 0; i < c.B; i++) {
            float mx = fmaxf(w[2 * i], w[2 * i + 1]);
            assert_true(mx >= 0.5f);   // the project's max w < 0.3 fallback can never fire
            assert_true(fabsf(w[2 * i] + w[2 * i + 1] - 1.0f) < 1e-6f);
            int hard = mx > c.threshold;
            hard_expected += hard;
            assert_int_equal(r.f.diag.routes[i] != 0, hard);
        }
        printf("  thr   shomr threshold %.1f: %d soft, %d a-only, %d b-only, %d both\n", (double)c.threshold, soft,
               count_route(&r, 1), count_route(&r, 2), count_route(&r, 3));
        assert_int_equal(c.B - soft, hard_expected);
        if (t == 0) assert_int_equal(soft, c.B);
        if (t == 1) assert_int_equal(soft, 0);
        if (t == 2) assert_true(soft > 0 && soft < c.B);
        teardown(&r);
    }
}

// ---- 1 vs 2 threads with every route taken, dropout on, the energy loss returned ----

static void test_threads_all_routes(void **state) {
    (void)state;
    // B = 150: the attention's projections see 2B rows; see the report on OpenBLAS and large K.
    for (int m = 0; m < 2; m++) {
        const char *method = m ? "energy_aware_adaptive" : "shomr";
        float *res[2][4];
        size_t sizes[4];
        int routes[2][150];
        for (int t = 0; t < 2; t++) {
            set_threads(t + 1);
            fusion_config c = vector_config(150, 96, 8);
            c.dropout = 0.1f;
            c.training = 1;
            c.variant = m ? 2 : 0;   // energy: "returned"
            route_run r;
            setup(&r, method, &c);
            if (m) {
                const float logits[3] = {0.0f, 0.0f, 2.0f};   // E[cost] above the budget
                float *bias = param(&r, "router.2.bias");
                memcpy(bias, logits, sizeof logits);
            } else {
                float *w3 = param(&r, "conf_net.3.weight");
                for (int i = 0; i < 2 * c.D; i++) w3[i] *= 12.0f;
                float *r3 = param(&r, "router.3.weight");
                for (int i = 0; i < 3 * c.D; i++) r3[i] *= 6.0f;
            }
            forward_backward(&r);
            for (int k = 0; k < r.f.diag.experts; k++) assert_true(count_route(&r, k) > 0);
            if (m) assert_true(r.f.diag.aux_loss > 0.0f);
            memcpy(routes[t], r.f.diag.routes, sizeof routes[t]);
            float *bufs[4] = {r.out, r.da, r.db, r.P.base[1]};
            size_t n[4] = {r.n, r.n, r.n, r.P.total};
            for (int k = 0; k < 4; k++) {
                sizes[k] = n[k];
                res[t][k] = alloc_floats(n[k]);
                memcpy(res[t][k], bufs[k], n[k] * sizeof(float));
            }
            if (t == 1) {
                printf("  threads %-22s routes", method);
                for (int k = 0; k < r.f.diag.experts; k++) printf(" %d", count_route(&r, k));
                printf("\n");
            }
            teardown(&r);
        }
        set_threads(2);
        assert_memory_equal(routes[0], routes[1], sizeof routes[0]);
        const char *what[4] = {"out", "da", "db", "parameter gradients"};
        for (int k = 0; k < 4; k++) {
            if (!bitwise_equal(res[0][k], res[1][k], sizes[k])) fail_msg("%s: %s differ between 1 and 2 threads", method, what[k]);
            free(res[0][k]); free(res[1][k]);
        }
        printf("  threads %-22s 1 vs 2 threads bitwise identical\n", method);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_energy_loss_torch),
        cmocka_unit_test(test_energy_evaluation),
        cmocka_unit_test(test_route_statistics),
        cmocka_unit_test(test_shomr_threshold),
        cmocka_unit_test(test_threads_all_routes),
    };
    int failed = cmocka_run_group_tests_name("routing", tests, NULL, NULL);
    report_worst();
    return failed;
}
