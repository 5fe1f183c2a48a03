// activations: PyTorch fixtures (one group per activation), finite differences, accumulation,
// aliasing, 1 vs 2 threads, bad arguments, names.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/activations.h"

// Sigmoid and tanh backward read only `out`, GELU and ReLU only `inp`: pass NULL for the other so
// the test also checks that the unneeded pointer is never touched.
static const float *needs_inp(fb_activation a, const float *inp) {
    return (a == FB_ACT_RELU || a == FB_ACT_GELU) ? inp : NULL;
}
static const float *needs_out(fb_activation a, const float *out) {
    return (a == FB_ACT_SIGMOID || a == FB_ACT_TANH) ? out : NULL;
}

static void torch_case(fb_activation a) {
    fixture f;
    fixture_open(&f, "activations", fb_activation_name(a));
    size_t n = (size_t)fixture_int(&f, "n");
    float *inp = alloc_floats(n), *out = alloc_floats(n), *dout = alloc_floats(n), *dinp = alloc_floats(n);
    fixture_load(&f, "inp", inp, n);
    fixture_load(&f, "dout", dout, n);
    assert_int_equal(activation_forward(a, out, inp, n), FB_OK);
    check_against(&f, "out", out, n, TOL_TORCH);
    assert_int_equal(activation_backward(a, dinp, dout, needs_inp(a, inp), needs_out(a, out), n), FB_OK);
    check_against(&f, "dinp", dinp, n, TOL_TORCH);
    fixture_close(&f);
    free(inp); free(out); free(dout); free(dinp);
}

static void test_torch_identity(void **state) { (void)state; torch_case(FB_ACT_IDENTITY); }
static void test_torch_relu(void **state) { (void)state; torch_case(FB_ACT_RELU); }
static void test_torch_gelu(void **state) { (void)state; torch_case(FB_ACT_GELU); }
static void test_torch_sigmoid(void **state) { (void)state; torch_case(FB_ACT_SIGMOID); }
static void test_torch_tanh(void **state) { (void)state; torch_case(FB_ACT_TANH); }

typedef struct { fb_activation a; float *inp, *out, *probe; size_t n; } act_ctx;

static double act_loss(void *ctx) {
    act_ctx *c = ctx;
    activation_forward(c->a, c->out, c->inp, c->n);
    double s = 0;
    for (size_t i = 0; i < c->n; i++) s += (double)c->probe[i] * c->out[i];
    return s;
}

// Inputs in [-3, -0.1] U [0.1, 3], away from ReLU's kink at 0 by 10 h (GELU is smooth, but the same
// data serve all five). The loss is a sum of independent terms, so moving x_i only changes term i:
// the error is the h^2/6 truncation term (|act'''| <= 2 here: < 4e-5 at h = 1e-2) plus float32
// rounding of one output over 2h (6e-8 * 3 / 2e-2 ~ 1e-5). Tolerance 1e-3.
static void test_finite_differences(void **state) {
    (void)state;
    const size_t n = 200;
    act_ctx c = {FB_ACT_IDENTITY, alloc_floats(n), alloc_floats(n), alloc_floats(n), n};
    float *dinp = alloc_floats(n);
    fill_uniform(c.inp, n, 71, 2.9f);
    for (size_t i = 0; i < n; i++) c.inp[i] = copysignf(0.1f + fabsf(c.inp[i]), c.inp[i]);
    fill_uniform(c.probe, n, 72, 1.0f);
    for (int a = 0; a < FB_ACT_COUNT; a++) {
        c.a = (fb_activation)a;
        memset(dinp, 0, n * sizeof(float));
        assert_int_equal(activation_forward(c.a, c.out, c.inp, n), FB_OK);
        assert_int_equal(activation_backward(c.a, dinp, c.probe, c.inp, c.out, n), FB_OK);
        fd_var var = {"inp", c.inp, n, dinp};
        char block[64];
        snprintf(block, sizeof block, "activation %s", fb_activation_name(c.a));
        fd_check(block, act_loss, &c, &var, 1, 1e-2f, 50, 1e-3);
    }
    free(c.inp); free(c.out); free(c.probe); free(dinp);
}

// Backward accumulates (a second call doubles dinp exactly), and out may alias inp.
static void test_accumulate_and_inplace(void **state) {
    (void)state;
    const size_t n = 333;
    float *inp = alloc_floats(n), *out = alloc_floats(n), *dout = alloc_floats(n);
    float *dinp = alloc_floats(n), *once = alloc_floats(n), *copy = alloc_floats(n);
    fill_uniform(inp, n, 81, 4.0f);
    fill_uniform(dout, n, 82, 1.0f);
    for (int a = 0; a < FB_ACT_COUNT; a++) {
        memset(dinp, 0, n * sizeof(float));
        assert_int_equal(activation_forward(a, out, inp, n), FB_OK);
        assert_int_equal(activation_backward(a, dinp, dout, inp, out, n), FB_OK);
        memcpy(once, dinp, n * sizeof(float));
        assert_int_equal(activation_backward(a, dinp, dout, inp, out, n), FB_OK);
        for (size_t i = 0; i < n; i++) assert_true(dinp[i] == 2.0f * once[i]);
        memcpy(copy, inp, n * sizeof(float));
        assert_int_equal(activation_forward(a, copy, copy, n), FB_OK);
        assert_true(bitwise_equal(copy, out, n));
    }
    free(inp); free(out); free(dout); free(dinp); free(once); free(copy);
}

// Elements are independent, so 1 and 2 threads must agree bit for bit. 512 * 256 > FB_OMP_MIN_WORK.
static void test_threads_bitwise(void **state) {
    (void)state;
    const size_t n = 512 * 256;
    float *inp = alloc_floats(n), *dout = alloc_floats(n);
    fill_uniform(inp, n, 91, 6.0f);
    fill_uniform(dout, n, 92, 1.0f);
    for (int a = 0; a < FB_ACT_COUNT; a++) {
        float *out[2], *dinp[2];
        for (int t = 0; t < 2; t++) {
            set_threads(t + 1);
            out[t] = alloc_floats(n);
            dinp[t] = alloc_floats(n);
            fill_uniform(dinp[t], n, 93, 1.0f);  // non-zero start: checks the += path too
            assert_int_equal(activation_forward(a, out[t], inp, n), FB_OK);
            assert_int_equal(activation_backward(a, dinp[t], dout, inp, out[t], n), FB_OK);
        }
        assert_true(bitwise_equal(out[0], out[1], n));
        assert_true(bitwise_equal(dinp[0], dinp[1], n));
        for (int t = 0; t < 2; t++) { free(out[t]); free(dinp[t]); }
    }
    set_threads(2);
    free(inp); free(dout);
}

static void test_names(void **state) {
    (void)state;
    for (int a = 0; a < FB_ACT_COUNT; a++) assert_int_equal(fb_activation_parse(fb_activation_name(a)), a);
    assert_int_equal(fb_activation_parse("gelu"), FB_ACT_GELU);
    assert_int_equal(fb_activation_parse("swish"), -1);
    assert_int_equal(fb_activation_parse(NULL), -1);
    assert_string_equal(fb_activation_name(FB_ACT_COUNT), "unknown");
}

static void test_bad_arguments(void **state) {
    (void)state;
    float x[4] = {1, 2, 3, 4}, y[4] = {0}, d[4] = {0};
    assert_int_equal(activation_forward(FB_ACT_RELU, y, x, 0), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "n=0 must be > 0"));
    assert_int_equal(activation_forward(FB_ACT_GELU, NULL, x, 4), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "missing"));
    assert_int_equal(activation_forward(FB_ACT_COUNT, y, x, 4), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "unknown activation"));
    assert_int_equal(activation_forward((fb_activation)-1, y, x, 4), FB_ERR_CONFIG);
    assert_int_equal(activation_backward(FB_ACT_GELU, d, y, NULL, y, 4), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "gelu backward needs inp"));
    assert_int_equal(activation_backward(FB_ACT_SIGMOID, d, y, x, NULL, 4), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "sigmoid backward needs out"));
    assert_int_equal(activation_backward(FB_ACT_TANH, d, NULL, x, y, 4), FB_ERR_SHAPE);
    assert_int_equal(activation_backward(FB_ACT_TANH, d, d, x, y, 4), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "alias"));
    assert_int_equal(activation_backward(FB_ACT_RELU, d, y, x, NULL, 0), FB_ERR_SHAPE);
    assert_int_equal(activation_backward(FB_ACT_COUNT, d, y, x, y, 4), FB_ERR_CONFIG);
    // Identity needs neither inp nor out.
    assert_int_equal(activation_backward(FB_ACT_IDENTITY, d, x, NULL, NULL, 4), FB_OK);
    assert_true(d[3] == 4.0f);
}

// FLOP counts are documented per element; check they scale with n and are positive where work is.
static void test_flops(void **state) {
    (void)state;
    assert_true(activation_flops_forward(FB_ACT_GELU, 10) == 50.0);
    assert_true(activation_flops_backward(FB_ACT_GELU, 10) == 120.0);
    for (int a = 0; a < FB_ACT_COUNT; a++) assert_true(activation_flops_backward(a, 3) > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_identity),
        cmocka_unit_test(test_torch_relu),
        cmocka_unit_test(test_torch_gelu),
        cmocka_unit_test(test_torch_sigmoid),
        cmocka_unit_test(test_torch_tanh),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_accumulate_and_inplace),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_flops),
    };
    int failed = cmocka_run_group_tests_name("activations", tests, NULL, NULL);
    report_worst();
    return failed;
}
