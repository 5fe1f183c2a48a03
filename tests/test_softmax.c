// softmax: PyTorch fixtures (incl. -inf masked entries and large offsets), a fully masked row,
// finite differences, accumulation, aliasing, 1 vs 2 threads, bad shapes.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/softmax.h"

static void torch_case(const char *name, int expect_masked) {
    fixture f;
    fixture_open(&f, "softmax", name);
    int N = fixture_int(&f, "N"), C = fixture_int(&f, "C");
    size_t nc = (size_t)N * C;
    float *inp = alloc_floats(nc), *out = alloc_floats(nc), *dout = alloc_floats(nc), *dinp = alloc_floats(nc);
    fixture_load(&f, "inp", inp, nc);
    size_t masked = 0;
    for (size_t i = 0; i < nc; i++) masked += inp[i] == -INFINITY;
    if (expect_masked) assert_true(masked > 0);  // -inf survived the HDF5 double -> float read
    assert_int_equal(softmax_forward(out, inp, N, C), FB_OK);
    check_against(&f, "out", out, nc, TOL_TORCH);
    fixture_load(&f, "dout", dout, nc);
    assert_int_equal(softmax_backward(dinp, dout, out, N, C), FB_OK);
    check_against(&f, "dinp", dinp, nc, TOL_TORCH);
    fixture_close(&f);
    free(inp); free(out); free(dout); free(dinp);
}

static void test_torch_small(void **state) { (void)state; torch_case("small", 0); }
static void test_torch_wide(void **state) { (void)state; torch_case("wide", 0); }
static void test_torch_masked(void **state) { (void)state; torch_case("masked", 1); }
static void test_torch_shifted(void **state) { (void)state; torch_case("shifted", 0); }
static void test_torch_single(void **state) { (void)state; torch_case("single", 0); }

// A row with every entry -inf (torch: NaN) gives zeros and a zero gradient; other rows are normal.
static void test_fully_masked_row(void **state) {
    (void)state;
    enum { N = 3, C = 10 };
    float inp[N * C], out[N * C], dout[N * C], dinp[N * C] = {0};
    fill_uniform(inp, N * C, 101, 2.0f);
    fill_uniform(dout, N * C, 102, 1.0f);
    for (int j = 0; j < C; j++) inp[C + j] = -INFINITY;  // row 1 fully masked
    inp[2 * C + 3] = -INFINITY;                            // row 2 partly masked
    assert_int_equal(softmax_forward(out, inp, N, C), FB_OK);
    for (int j = 0; j < C; j++) assert_true(out[C + j] == 0.0f);
    assert_true(out[2 * C + 3] == 0.0f);
    for (int n = 0; n < N; n += 2) {
        double s = 0;
        for (int j = 0; j < C; j++) { assert_true(isfinite(out[n * C + j])); s += out[n * C + j]; }
        assert_true(fabs(s - 1.0) < 1e-6);
    }
    assert_int_equal(softmax_backward(dinp, dout, out, N, C), FB_OK);
    for (int j = 0; j < C; j++) assert_true(dinp[C + j] == 0.0f);
    assert_true(dinp[2 * C + 3] == 0.0f);
    for (int i = 0; i < N * C; i++) assert_true(isfinite(dinp[i]));
}

typedef struct { float *inp, *out, *probe; int N, C; } sm_ctx;

static double sm_loss(void *ctx) {
    sm_ctx *c = ctx;
    softmax_forward(c->out, c->inp, c->N, c->C);
    double s = 0;
    for (int i = 0; i < c->N * c->C; i++) s += (double)c->probe[i] * c->out[i];
    return s;
}

// Softmax is smooth; with inputs in [-2, 2] its third derivatives are O(1), so the h^2/6
// truncation term is ~2e-5 at h = 1e-2, and float32 rounding of the forward adds ~1e-7 * |L| / h
// ~ 1e-5. Tolerance 1e-3.
static void test_finite_differences(void **state) {
    (void)state;
    enum { N = 3, C = 11 };
    float inp[N * C], out[N * C], probe[N * C], dinp[N * C] = {0};
    fill_uniform(inp, N * C, 111, 2.0f);
    fill_uniform(probe, N * C, 112, 1.0f);
    assert_int_equal(softmax_forward(out, inp, N, C), FB_OK);
    assert_int_equal(softmax_backward(dinp, probe, out, N, C), FB_OK);
    sm_ctx c = {inp, out, probe, N, C};
    fd_var var = {"inp", inp, N * C, dinp};
    fd_check("softmax", sm_loss, &c, &var, 1, 1e-2f, N * C, 1e-3);
}

// Backward accumulates (a second call doubles dinp exactly), and out may alias inp.
static void test_accumulate_and_inplace(void **state) {
    (void)state;
    enum { N = 5, C = 77 };
    float *inp = alloc_floats(N * C), *out = alloc_floats(N * C), *dout = alloc_floats(N * C);
    float *dinp = alloc_floats(N * C), *once = alloc_floats(N * C);
    fill_uniform(inp, N * C, 121, 4.0f);
    fill_uniform(dout, N * C, 122, 1.0f);
    assert_int_equal(softmax_forward(out, inp, N, C), FB_OK);
    assert_int_equal(softmax_backward(dinp, dout, out, N, C), FB_OK);
    memcpy(once, dinp, N * C * sizeof(float));
    assert_int_equal(softmax_backward(dinp, dout, out, N, C), FB_OK);
    for (int i = 0; i < N * C; i++) assert_true(dinp[i] == 2.0f * once[i]);
    assert_int_equal(softmax_forward(inp, inp, N, C), FB_OK);
    assert_true(bitwise_equal(inp, out, N * C));
    free(inp); free(out); free(dout); free(dinp); free(once);
}

// One thread per row, fixed-order row sums: 1 and 2 threads agree bit for bit.
// 512 x 256 > FB_OMP_MIN_WORK, so the loops really run on two threads.
static void test_threads_bitwise(void **state) {
    (void)state;
    const int N = 512, C = 256;
    const size_t nc = (size_t)N * C;
    float *inp = alloc_floats(nc), *dout = alloc_floats(nc), *out[2], *dinp[2];
    fill_uniform(inp, nc, 131, 5.0f);
    fill_uniform(dout, nc, 132, 1.0f);
    for (size_t i = 0; i < nc; i += 7) inp[i] = -INFINITY;
    for (int j = 0; j < C; j++) inp[(size_t)100 * C + j] = -INFINITY;
    for (int t = 0; t < 2; t++) {
        set_threads(t + 1);
        out[t] = alloc_floats(nc);
        dinp[t] = alloc_floats(nc);
        assert_int_equal(softmax_forward(out[t], inp, N, C), FB_OK);
        assert_int_equal(softmax_backward(dinp[t], dout, out[t], N, C), FB_OK);
    }
    set_threads(2);
    assert_true(bitwise_equal(out[0], out[1], nc));
    assert_true(bitwise_equal(dinp[0], dinp[1], nc));
    for (int t = 0; t < 2; t++) { free(out[t]); free(dinp[t]); }
    free(inp); free(dout);
}

static void test_bad_shapes(void **state) {
    (void)state;
    float x[4] = {0}, y[4] = {0}, d[4] = {0};
    assert_int_equal(softmax_forward(y, x, 0, 4), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "N=0 must be > 0"));
    assert_int_equal(softmax_forward(y, x, 2, -1), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "C=-1"));
    assert_int_equal(softmax_forward(NULL, x, 2, 2), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "missing"));
    assert_int_equal(softmax_backward(d, y, x, 2, 0), FB_ERR_SHAPE);
    assert_int_equal(softmax_backward(NULL, y, x, 2, 2), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "dinp"));
    assert_int_equal(softmax_backward(d, d, x, 2, 2), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "alias"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_small),
        cmocka_unit_test(test_torch_wide),
        cmocka_unit_test(test_torch_masked),
        cmocka_unit_test(test_torch_shifted),
        cmocka_unit_test(test_torch_single),
        cmocka_unit_test(test_fully_masked_row),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_accumulate_and_inplace),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_bad_shapes),
    };
    int failed = cmocka_run_group_tests_name("softmax", tests, NULL, NULL);
    report_worst();
    return failed;
}
