// linear: PyTorch fixtures, finite differences, 1 vs 2 threads, bad shapes, canaries.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/linear.h"

typedef struct {
    fb_layout layout;
    linear_params p, g;
    int N, IC, OC, has_bias;
    float *inp, *dinp, *out, *probe;
} linear_case;

static void case_setup(linear_case *c, int N, int IC, int OC, int has_bias) {
    memset(c, 0, sizeof *c);
    c->N = N; c->IC = IC; c->OC = OC; c->has_bias = has_bias;
    fb_layout_canaries = 1;
    fb_layout_init(&c->layout, 2);
    assert_true(linear_declare(&c->layout, "lin", IC, OC, has_bias, &c->p, &c->g) >= 0);
    assert_int_equal(fb_layout_alloc(&c->layout), FB_OK);
    fb_layout_initialize(&c->layout, 7);
    c->inp = alloc_floats((size_t)N * IC);
    c->dinp = alloc_floats((size_t)N * IC);
    c->out = alloc_floats((size_t)N * OC);
    c->probe = alloc_floats((size_t)N * OC);
}

static void case_teardown(linear_case *c) {
    assert_int_equal(fb_layout_check_canaries(&c->layout), 0);
    fb_layout_free(&c->layout);
    free(c->inp); free(c->dinp); free(c->out); free(c->probe);
}

static void torch_case(const char *name) {
    fixture f;
    fixture_open(&f, "linear", name);
    linear_case c;
    case_setup(&c, fixture_int(&f, "N"), fixture_int(&f, "IC"), fixture_int(&f, "OC"), fixture_int(&f, "has_bias"));
    fixture_load(&f, "inp", c.inp, (size_t)c.N * c.IC);
    fixture_load(&f, "weight", c.p.weight, (size_t)c.OC * c.IC);
    if (c.has_bias) fixture_load(&f, "bias", c.p.bias, (size_t)c.OC);
    assert_int_equal(linear_forward(c.out, c.inp, &c.p, c.N, c.IC, c.OC), FB_OK);
    check_against(&f, "out", c.out, (size_t)c.N * c.OC, TOL_TORCH);
    fixture_load(&f, "dout", c.probe, (size_t)c.N * c.OC);
    assert_int_equal(linear_backward(c.dinp, &c.g, c.probe, c.inp, &c.p, c.N, c.IC, c.OC), FB_OK);
    check_against(&f, "dinp", c.dinp, (size_t)c.N * c.IC, TOL_TORCH);
    check_against(&f, "dweight", c.g.weight, (size_t)c.OC * c.IC, TOL_TORCH);
    if (c.has_bias) check_against(&f, "dbias", c.g.bias, (size_t)c.OC, TOL_TORCH);
    fixture_close(&f);
    case_teardown(&c);
}

static void test_torch_small(void **state) { (void)state; torch_case("small"); }
static void test_torch_wide(void **state) { (void)state; torch_case("wide"); }
static void test_torch_nobias(void **state) { (void)state; torch_case("nobias"); }

static double linear_loss(void *ctx) {
    linear_case *c = ctx;
    linear_forward(c->out, c->inp, &c->p, c->N, c->IC, c->OC);
    double s = 0;
    for (size_t i = 0; i < (size_t)c->N * c->OC; i++) s += (double)c->probe[i] * c->out[i];
    return s;
}

// The loss is linear in each variable, so central differences have no truncation error; the
// tolerance covers float32 rounding of the forward sums divided by 2h (~1e-7 * |L| / h).
static void test_finite_differences(void **state) {
    (void)state;
    linear_case c;
    case_setup(&c, 6, 10, 4, 1);
    fill_uniform(c.inp, (size_t)c.N * c.IC, 11, 1.0f);
    fill_uniform(c.probe, (size_t)c.N * c.OC, 12, 1.0f);
    assert_int_equal(linear_forward(c.out, c.inp, &c.p, c.N, c.IC, c.OC), FB_OK);
    assert_int_equal(linear_backward(c.dinp, &c.g, c.probe, c.inp, &c.p, c.N, c.IC, c.OC), FB_OK);
    fd_var vars[] = {
        {"inp", c.inp, (size_t)c.N * c.IC, c.dinp},
        {"weight", c.p.weight, (size_t)c.OC * c.IC, c.g.weight},
        {"bias", c.p.bias, (size_t)c.OC, c.g.bias},
    };
    fd_check("linear", linear_loss, &c, vars, 3, 1e-2f, 40, 2e-3);
    case_teardown(&c);
}

// OpenBLAS splits SGEMM over M/N blocks, never over K, and our bias sums are column-blocked, so a
// thread count cannot change any element's summation order: 1 and 2 threads must agree bit for bit.
static void test_threads_bitwise(void **state) {
    (void)state;
    float *res[2][3];
    for (int t = 0; t < 2; t++) {
        set_threads(t + 1);
        linear_case c;
        case_setup(&c, 257, 300, 190, 1);
        fill_uniform(c.inp, (size_t)c.N * c.IC, 21, 1.0f);
        fill_uniform(c.probe, (size_t)c.N * c.OC, 22, 1.0f);
        assert_int_equal(linear_forward(c.out, c.inp, &c.p, c.N, c.IC, c.OC), FB_OK);
        assert_int_equal(linear_backward(c.dinp, &c.g, c.probe, c.inp, &c.p, c.N, c.IC, c.OC), FB_OK);
        res[t][0] = c.out; c.out = NULL;
        res[t][1] = c.dinp; c.dinp = NULL;
        res[t][2] = alloc_floats((size_t)c.OC * (c.IC + 1));
        memcpy(res[t][2], c.g.weight, (size_t)c.OC * c.IC * sizeof(float));
        memcpy(res[t][2] + (size_t)c.OC * c.IC, c.g.bias, (size_t)c.OC * sizeof(float));
        case_teardown(&c);
    }
    set_threads(2);
    assert_true(bitwise_equal(res[0][0], res[1][0], 257 * 190));
    assert_true(bitwise_equal(res[0][1], res[1][1], 257 * 300));
    assert_true(bitwise_equal(res[0][2], res[1][2], 190 * 301));
    for (int t = 0; t < 2; t++) for (int k = 0; k < 3; k++) free(res[t][k]);
}

static void test_bad_shapes(void **state) {
    (void)state;
    float x[4] = {0}, w[4] = {0}, y[4] = {0};
    linear_params p = {w, NULL};
    assert_int_equal(linear_forward(y, x, &p, 0, 2, 2), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "N=0"));
    assert_int_equal(linear_forward(y, x, &p, 2, -1, 2), FB_ERR_SHAPE);
    assert_int_equal(linear_backward(y, NULL, y, x, &p, 2, 2, 0), FB_ERR_SHAPE);
    fb_layout L;
    linear_params q, g;
    fb_layout_init(&L, 2);
    assert_int_equal(linear_declare(&L, "bad", 0, 3, 1, &q, &g), -1);
    assert_non_null(strstr(fb_last_error(), "bad.weight"));
    fb_layout_free(&L);
}

// A deliberately out-of-bounds write must be caught by the canary check (the check can fail).
static void test_canary_catches_overflow(void **state) {
    (void)state;
    linear_case c;
    case_setup(&c, 2, 3, 2, 1);
    c.p.bias[2] = 1.0f;  // one past the (OC = 2) bias
    assert_int_equal(fb_layout_check_canaries(&c.layout), 1);
    c.p.bias[2] = 0.0f;
    fb_layout_free(&c.layout);
    free(c.inp); free(c.dinp); free(c.out); free(c.probe);
}

// linear_concat over [x1; x2] equals linear over the materialised concatenation (a torch-checked
// path). Summation order differs (two SGEMMs), so within float32 rounding, not bitwise.
static void test_concat_equals_linear(void **state) {
    (void)state;
    const int N = 37, I1 = 24, I2 = 9, OC = 19, IC = I1 + I2;
    linear_case c;
    case_setup(&c, N, IC, OC, 1);
    float *x1 = alloc_floats((size_t)N * I1), *x2 = alloc_floats((size_t)N * I2);
    float *dx1 = alloc_floats((size_t)N * I1), *dx2 = alloc_floats((size_t)N * I2), *out2 = alloc_floats((size_t)N * OC);
    fill_uniform(x1, (size_t)N * I1, 31, 1.0f);
    fill_uniform(x2, (size_t)N * I2, 32, 1.0f);
    fill_uniform(c.probe, (size_t)N * OC, 33, 1.0f);
    for (int n = 0; n < N; n++) {
        memcpy(c.inp + (size_t)n * IC, x1 + (size_t)n * I1, I1 * sizeof(float));
        memcpy(c.inp + (size_t)n * IC + I1, x2 + (size_t)n * I2, I2 * sizeof(float));
    }
    assert_int_equal(linear_forward(c.out, c.inp, &c.p, N, IC, OC), FB_OK);
    assert_int_equal(linear_backward(c.dinp, &c.g, c.probe, c.inp, &c.p, N, IC, OC), FB_OK);
    size_t nw = (size_t)OC * IC;
    float *dw_ref = alloc_floats(nw + OC);
    memcpy(dw_ref, c.g.weight, nw * sizeof(float));
    memcpy(dw_ref + nw, c.g.bias, OC * sizeof(float));
    fb_layout_zero(&c.layout, 1);
    assert_int_equal(linear_concat_forward(out2, x1, I1, x2, I2, &c.p, N, OC), FB_OK);
    assert_int_equal(linear_concat_backward(dx1, dx2, &c.g, c.probe, x1, I1, x2, I2, &c.p, N, OC), FB_OK);
    double worst = 0;
    for (size_t i = 0; i < (size_t)N * OC; i++) worst = fmax(worst, fabs(out2[i] - c.out[i]));
    for (int n = 0; n < N; n++)
        for (int k = 0; k < IC; k++) {
            float got = k < I1 ? dx1[(size_t)n * I1 + k] : dx2[(size_t)n * I2 + k - I1];
            worst = fmax(worst, fabs(got - c.dinp[(size_t)n * IC + k]));
        }
    for (size_t i = 0; i < nw; i++) worst = fmax(worst, fabs(c.g.weight[i] - dw_ref[i]));
    for (int o = 0; o < OC; o++) worst = fmax(worst, fabs(c.g.bias[o] - dw_ref[nw + o]));
    printf("  concat linear_concat vs linear on the concatenation: max abs diff %.3e\n", worst);
    assert_true(worst < 1e-5);
    free(x1); free(x2); free(dx1); free(dx2); free(out2); free(dw_ref);
    case_teardown(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_small),
        cmocka_unit_test(test_torch_wide),
        cmocka_unit_test(test_torch_nobias),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_canary_catches_overflow),
        cmocka_unit_test(test_concat_equals_linear),
    };
    int failed = cmocka_run_group_tests_name("linear", tests, NULL, NULL);
    report_worst();
    return failed;
}
