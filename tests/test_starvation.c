// The 000 document's argument against gated interpolation, measured on the real kernels: as the
// gate opens towards b (g -> 1), interpolation's (1 - g) factor cuts the gradient reaching the a
// branch (the deep path), while gated addition keeps its residual path for a. The gate's last
// bias is swept from -2 to +8 over 40 "steps"; each step runs the method forward and backward on
// fixed inputs, records FusionDiagnostics statistics and the input-gradient norms, and the
// gradient_starvation verdict (profiling/traces.c) must fire for gated_interp's branch a and stay
// silent for gated_add.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/fusion/fusion.h"
#include "../profiling/traces.h"

enum { B = 64, D = 32, STEPS = 40 };

// Runs the sweep; returns the fired flag of starvation for branch a and b in fired[2].
static void sweep(const char *method, int fired[2], double *ratio_a) {
    const fusion_method *m = fusion_find(method);
    assert_non_null(m);
    fb_layout P, A;
    fb_layout_init(&P, 2);
    fb_layout_init(&A, 2);
    fusion_config c = fusion_default_config(B, 1, 1, D, D);
    c.prefix = "";
    c.dropout = 0.0f;
    fusion f;
    if (fusion_create(&f, m, &c, &P, &A) != FB_OK) fail_msg("%s: %s", method, fb_last_error());
    assert_int_equal(fb_layout_alloc(&P), FB_OK);
    assert_int_equal(fb_layout_alloc(&A), FB_OK);
    fb_layout_initialize(&P, 5);
    const int bias = fb_layout_find(&P, "gate.2.bias");
    assert_true(bias >= 0);
    float *a = alloc_floats(B * D), *b = alloc_floats(B * D), *out = alloc_floats(B * D);
    float *dout = alloc_floats(B * D), *da = alloc_floats(B * D), *db = alloc_floats(B * D);
    fill_uniform(a, B * D, 1, 1.0f);
    fill_uniform(b, B * D, 2, 1.0f);
    fill_uniform(dout, B * D, 3, 1.0f);
    trace_run *run = NULL;
    const char *point = "fusion";
    assert_int_equal(trace_run_create(&run, 0, NULL, 1, &point), FB_OK);
    double first_a = 0, last_a = 0;
    for (int s = 0; s < STEPS; s++) {
        float *bv = fb_layout_ptr(&P, 0, bias);
        const float value = -2.0f + 10.0f * (float)s / (STEPS - 1);
        for (int j = 0; j < D; j++) bv[j] = value;
        assert_int_equal(fusion_forward(&f, out, a, b), FB_OK);
        trace_fusion_stats st;
        assert_int_equal(trace_fusion_point(&st, a, B, D, b, B, D, out, B, D, &f.diag), FB_OK);
        fb_layout_zero(&P, 1);
        memset(da, 0, sizeof(float) * B * D);
        memset(db, 0, sizeof(float) * B * D);
        assert_int_equal(fusion_backward(&f, da, db, dout, a, b), FB_OK);
        const double ga = trace_mean_row_norm(da, B, D), gb = trace_mean_row_norm(db, B, D);
        if (s == 0) first_a = ga;
        last_a = ga;
        assert_int_equal(trace_run_fusion(run, 0, s, &st, ga, gb), FB_OK);
    }
    trace_verdict v[TRACE_RUN_VERDICTS + TRACE_POINT_VERDICTS];
    const int n = trace_run_verdicts(run, v, (int)(sizeof v / sizeof v[0]));
    fired[0] = fired[1] = -1;
    for (int i = 0; i < n; i++) {
        if (strcmp(v[i].name, "gradient_starvation") != 0) continue;
        const int branch = strstr(v[i].subject, ":a") ? 0 : 1;
        fired[branch] = v[i].fired;
        printf("  %-13s %-10s fired %d  %s\n", method, v[i].subject, v[i].fired, v[i].detail);
    }
    *ratio_a = last_a / first_a;
    trace_run_destroy(run);
    fusion_destroy(&f);
    fb_layout_free(&P);
    fb_layout_free(&A);
    free(a); free(b); free(out); free(dout); free(da); free(db);
}

static void test_interpolation_starves_a(void **state) {
    (void)state;
    int fired[2];
    double ratio;
    sweep("gated_interp", fired, &ratio);
    printf("  gated_interp: |d/da| fell to %.2g of its first value as the gate opened\n", ratio);
    assert_int_equal(fired[0], 1);
    assert_int_equal(fired[1], 0);
}

static void test_gated_addition_does_not(void **state) {
    (void)state;
    int fired[2];
    double ratio;
    sweep("gated_add", fired, &ratio);
    printf("  gated_add: |d/da| is %.2g of its first value (the residual path keeps it)\n", ratio);
    assert_int_equal(fired[0], 0);
    assert_int_equal(fired[1], 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interpolation_starves_a),
        cmocka_unit_test(test_gated_addition_does_not),
    };
    return cmocka_run_group_tests_name("starvation", tests, NULL, NULL);
}
