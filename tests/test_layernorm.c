// layernorm: PyTorch fixtures, finite differences, accumulation, aliasing, 1 vs 2 threads, bad
// shapes, canaries.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/layernorm.h"

#define EPS 1e-5f

typedef struct {
    fb_layout layout;           // parameters + gradients, with canaries
    layernorm_params p, g;      // all NULL when not affine
    int N, D, affine;
    float *inp, *out, *mean, *rstd, *dinp, *probe;
} ln_case;

static void case_setup(ln_case *c, int N, int D, int affine) {
    memset(c, 0, sizeof *c);
    c->N = N; c->D = D; c->affine = affine;
    fb_layout_canaries = 1;
    fb_layout_init(&c->layout, 2);
    if (affine) assert_true(layernorm_declare(&c->layout, "ln", D, &c->p, &c->g) >= 0);
    assert_int_equal(fb_layout_alloc(&c->layout), FB_OK);
    fb_layout_initialize(&c->layout, 5);
    c->inp = alloc_floats((size_t)N * D);
    c->out = alloc_floats((size_t)N * D);
    c->mean = alloc_floats((size_t)N);
    c->rstd = alloc_floats((size_t)N);
    c->dinp = alloc_floats((size_t)N * D);
    c->probe = alloc_floats((size_t)N * D);
}

static void case_free(ln_case *c) {
    fb_layout_free(&c->layout);
    free(c->inp); free(c->out); free(c->mean); free(c->rstd); free(c->dinp); free(c->probe);
}

static void case_teardown(ln_case *c) {
    assert_int_equal(fb_layout_check_canaries(&c->layout), 0);
    case_free(c);
}

// With D = 1, x - mean = 0, so dinp and dweight are exactly 0 and torch's float64 values are
// rounding noise (~1e-17) on which a relative metric means nothing: check the exact zeros instead.
static void check_or_zero(const fixture *f, const char *name, const float *got, size_t n) {
    size_t m;
    double *want = fixture_doubles(f, name, &m), scale = 0;
    assert_int_equal(m, n);
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    free(want);
    if (scale > 1e-12) {
        check_against(f, name, got, n, TOL_TORCH);
        return;
    }
    for (size_t i = 0; i < n; i++) assert_true(got[i] == 0.0f);
    printf("  torch %-28s %-10s exactly 0 (torch: |max| %.1e, rounding noise)\n", f->label, name, scale);
}

static void run_forward(ln_case *c) {
    assert_int_equal(layernorm_forward(c->out, c->mean, c->rstd, c->inp, &c->p, c->N, c->D, EPS), FB_OK);
}

static void run_backward(ln_case *c) {
    assert_int_equal(layernorm_backward(c->dinp, &c->g, c->probe, c->inp, c->mean, c->rstd, &c->p, c->N, c->D), FB_OK);
}

static void torch_case(const char *name) {
    fixture f;
    fixture_open(&f, "layernorm", name);
    ln_case c;
    case_setup(&c, fixture_int(&f, "N"), fixture_int(&f, "D"), fixture_int(&f, "affine"));
    assert_true(fabs(fixture_double_attr(&f, "eps") - EPS) < 1e-12);
    size_t nd = (size_t)c.N * c.D;
    fixture_load(&f, "inp", c.inp, nd);
    if (c.affine) {
        fixture_load(&f, "weight", c.p.weight, (size_t)c.D);
        fixture_load(&f, "bias", c.p.bias, (size_t)c.D);
    }
    run_forward(&c);
    check_against(&f, "out", c.out, nd, TOL_TORCH);
    check_against(&f, "mean", c.mean, (size_t)c.N, TOL_TORCH);
    check_against(&f, "rstd", c.rstd, (size_t)c.N, TOL_TORCH);
    fixture_load(&f, "dout", c.probe, nd);
    run_backward(&c);
    check_or_zero(&f, "dinp", c.dinp, nd);
    if (c.affine) {
        check_or_zero(&f, "dweight", c.g.weight, (size_t)c.D);
        check_against(&f, "dbias", c.g.bias, (size_t)c.D, TOL_TORCH);
    }
    fixture_close(&f);
    case_teardown(&c);
}

static void test_torch_small(void **state) { (void)state; torch_case("small"); }
static void test_torch_wide(void **state) { (void)state; torch_case("wide"); }
static void test_torch_offset(void **state) { (void)state; torch_case("offset"); }
static void test_torch_noaffine(void **state) { (void)state; torch_case("noaffine"); }
static void test_torch_tiny(void **state) { (void)state; torch_case("tiny"); }

static void test_declare_init(void **state) {
    (void)state;
    ln_case c;
    case_setup(&c, 2, 5, 1);
    assert_int_equal(fb_layout_find(&c.layout, "ln.weight"), 0);
    assert_int_equal(fb_layout_find(&c.layout, "ln.bias"), 1);
    for (int j = 0; j < 5; j++) {
        assert_true(c.p.weight[j] == 1.0f);
        assert_true(c.p.bias[j] == 0.0f);
    }
    case_teardown(&c);
}

static double ln_loss(void *ctx) {
    ln_case *c = ctx;
    layernorm_forward(c->out, c->mean, c->rstd, c->inp, &c->p, c->N, c->D, EPS);
    double s = 0;
    for (size_t i = 0; i < (size_t)c->N * c->D; i++) s += (double)c->probe[i] * c->out[i];
    return s;
}

// The loss is linear in weight and bias (no truncation error there) and smooth in inp, with
// rstd ~ 1.7 for U(-1, 1) rows: the h^2 truncation term is ~1e-4 at h = 1e-2, and float32 rounding
// of the forward (~1e-7 * |L| / h, |L| ~ 3) adds ~3e-5. Tolerance 2e-3.
static void test_finite_differences(void **state) {
    (void)state;
    ln_case c;
    case_setup(&c, 4, 9, 1);
    fill_uniform(c.inp, (size_t)c.N * c.D, 31, 1.0f);
    fill_uniform(c.probe, (size_t)c.N * c.D, 32, 1.0f);
    fill_uniform(c.p.weight, (size_t)c.D, 33, 0.5f);
    for (int j = 0; j < c.D; j++) c.p.weight[j] += 1.0f;
    fill_uniform(c.p.bias, (size_t)c.D, 34, 0.5f);
    run_forward(&c);
    run_backward(&c);
    fd_var vars[] = {
        {"inp", c.inp, (size_t)c.N * c.D, c.dinp},
        {"weight", c.p.weight, (size_t)c.D, c.g.weight},
        {"bias", c.p.bias, (size_t)c.D, c.g.bias},
    };
    fd_check("layernorm", ln_loss, &c, vars, 3, 1e-2f, 36, 2e-3);
    case_teardown(&c);
}

// Backward accumulates: a second identical call doubles every gradient exactly (a + a = 2a).
static void test_backward_accumulates(void **state) {
    (void)state;
    ln_case c;
    case_setup(&c, 6, 37, 1);
    fill_uniform(c.inp, (size_t)c.N * c.D, 41, 1.0f);
    fill_uniform(c.probe, (size_t)c.N * c.D, 42, 1.0f);
    fill_uniform(c.p.weight, (size_t)c.D, 43, 1.0f);
    run_forward(&c);
    run_backward(&c);
    size_t nd = (size_t)c.N * c.D;
    float *first = alloc_floats(nd + 2 * (size_t)c.D);
    memcpy(first, c.dinp, nd * sizeof(float));
    memcpy(first + nd, c.g.weight, (size_t)c.D * sizeof(float));
    memcpy(first + nd + c.D, c.g.bias, (size_t)c.D * sizeof(float));
    run_backward(&c);
    for (size_t i = 0; i < nd; i++) assert_true(c.dinp[i] == 2.0f * first[i]);
    for (int j = 0; j < c.D; j++) {
        assert_true(c.g.weight[j] == 2.0f * first[nd + j]);
        assert_true(c.g.bias[j] == 2.0f * first[nd + c.D + j]);
    }
    // dinp = NULL and g = NULL skip those gradients and still succeed.
    assert_int_equal(layernorm_backward(NULL, NULL, c.probe, c.inp, c.mean, c.rstd, &c.p, c.N, c.D), FB_OK);
    free(first);
    case_teardown(&c);
}

// out may alias inp: the in-place forward gives the same bits.
static void test_inplace(void **state) {
    (void)state;
    ln_case c;
    case_setup(&c, 5, 70, 1);
    fill_uniform(c.inp, (size_t)c.N * c.D, 51, 2.0f);
    fill_uniform(c.p.bias, (size_t)c.D, 52, 1.0f);
    run_forward(&c);
    assert_int_equal(layernorm_forward(c.inp, c.mean, c.rstd, c.inp, &c.p, c.N, c.D, EPS), FB_OK);
    assert_true(bitwise_equal(c.out, c.inp, (size_t)c.N * c.D));
    case_teardown(&c);
}

// A constant row has variance 0: out = bias, rstd = 1/sqrt(eps), no NaN.
static void test_constant_row(void **state) {
    (void)state;
    ln_case c;
    case_setup(&c, 2, 19, 1);
    for (int j = 0; j < c.D; j++) { c.inp[j] = 3.25f; c.inp[c.D + j] = (float)j; }
    fill_uniform(c.p.bias, (size_t)c.D, 53, 1.0f);
    fill_uniform(c.probe, (size_t)c.N * c.D, 54, 1.0f);
    run_forward(&c);
    for (int j = 0; j < c.D; j++) assert_true(c.out[j] == c.p.bias[j]);
    assert_true(fabsf(c.rstd[0] - 1.0f / sqrtf(EPS)) <= 1e-6f * c.rstd[0]);
    run_backward(&c);
    for (int j = 0; j < c.N * c.D; j++) assert_true(isfinite(c.dinp[j]));
    case_teardown(&c);
}

// Rows are split over threads (one thread per row) and the weight/bias gradients over column
// blocks summed in row order, so 1 and 2 threads must agree bit for bit. 512 x 256 > FB_OMP_MIN_WORK.
static void test_threads_bitwise(void **state) {
    (void)state;
    const int N = 512, D = 256;
    const size_t nd = (size_t)N * D;
    float *res[2];
    for (int t = 0; t < 2; t++) {
        set_threads(t + 1);
        ln_case c;
        case_setup(&c, N, D, 1);
        fill_uniform(c.inp, nd, 61, 2.0f);
        fill_uniform(c.probe, nd, 62, 1.0f);
        fill_uniform(c.p.weight, (size_t)D, 63, 1.0f);
        fill_uniform(c.p.bias, (size_t)D, 64, 1.0f);
        run_forward(&c);
        run_backward(&c);
        res[t] = alloc_floats(3 * nd + 2 * (size_t)N + 2 * (size_t)D);
        float *r = res[t];
        memcpy(r, c.out, nd * sizeof(float)); r += nd;
        memcpy(r, c.dinp, nd * sizeof(float)); r += nd;
        memcpy(r, c.mean, (size_t)N * sizeof(float)); r += N;
        memcpy(r, c.rstd, (size_t)N * sizeof(float)); r += N;
        memcpy(r, c.g.weight, (size_t)D * sizeof(float)); r += D;
        memcpy(r, c.g.bias, (size_t)D * sizeof(float));
        case_teardown(&c);
    }
    set_threads(2);
    const float *a = res[0], *b = res[1];
    assert_true(bitwise_equal(a, b, nd));                        // out
    assert_true(bitwise_equal(a + nd, b + nd, nd));              // dinp
    assert_true(bitwise_equal(a + 2 * nd, b + 2 * nd, 2 * (size_t)N));           // mean, rstd
    assert_true(bitwise_equal(a + 2 * nd + 2 * N, b + 2 * nd + 2 * N, 2 * (size_t)D));  // dweight, dbias
    free(res[0]); free(res[1]);
}

static void test_bad_shapes(void **state) {
    (void)state;
    float x[8] = {0}, y[8] = {0}, m[2] = {0}, r[2] = {0};
    layernorm_params p = {NULL, NULL};
    assert_int_equal(layernorm_forward(y, m, r, x, &p, 2, 0, EPS), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "D=0 must be > 0"));
    assert_int_equal(layernorm_forward(y, m, r, x, &p, -3, 4, EPS), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "N=-3"));
    assert_int_equal(layernorm_forward(y, m, r, NULL, &p, 2, 4, EPS), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "missing input"));
    assert_int_equal(layernorm_forward(NULL, m, r, x, &p, 2, 4, EPS), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "missing output"));
    assert_int_equal(layernorm_forward(y, NULL, r, x, &p, 2, 4, EPS), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "mean/rstd"));
    assert_int_equal(layernorm_forward(y, m, r, x, &p, 2, 4, -1e-5f), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "eps"));
    assert_int_equal(layernorm_forward(y, m, r, x, &p, 2, 4, NAN), FB_ERR_CONFIG);
    assert_int_equal(layernorm_backward(y, NULL, x, x, m, r, &p, 0, 4), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "N=0"));
    assert_int_equal(layernorm_backward(y, NULL, NULL, x, m, r, &p, 2, 4), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "dout"));
    assert_int_equal(layernorm_backward(y, NULL, y, x, m, r, &p, 2, 4), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "alias"));
    fb_layout L;
    layernorm_params q, g;
    fb_layout_init(&L, 2);
    assert_int_equal(layernorm_declare(&L, "bad", 0, &q, &g), -1);
    assert_non_null(strstr(fb_last_error(), "bad.weight"));
    fb_layout_free(&L);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_small),
        cmocka_unit_test(test_torch_wide),
        cmocka_unit_test(test_torch_offset),
        cmocka_unit_test(test_torch_noaffine),
        cmocka_unit_test(test_torch_tiny),
        cmocka_unit_test(test_declare_init),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_inplace),
        cmocka_unit_test(test_constant_row),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_bad_shapes),
    };
    int failed = cmocka_run_group_tests_name("layernorm", tests, NULL, NULL);
    report_worst();
    return failed;
}
