// dropout: torch's RNG cannot be matched, so the mask is tested against its definition
// (keep iff fb_uniform(key, first + i) >= p), its statistics, and its invariances: same mask in
// backward, for 1 vs 2 threads and for a split range; a new mask for a new step or site.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/dropout.h"

static const fb_rng_key KEY = {1234, 7, 3};

// Kept elements are exactly x * (1 / (1 - p)) in float (three roundings: within 2 ulp of the exact
// x / (1 - p)); dropped elements are 0.
static void test_mask_definition(void **state) {
    (void)state;
    const size_t n = 1003;
    const uint64_t first = 5;  // not a multiple of 4: partial Philox blocks at both ends
    const float p = 0.3f, scale = 1.0f / (1.0f - p);
    float *x = alloc_floats(n), *y = alloc_floats(n);
    fill_uniform(x, n, 141, 2.0f);
    for (size_t i = 0; i < n; i++) if (x[i] == 0.0f) x[i] = 1.0f;  // a kept 0 would look dropped
    assert_int_equal(dropout_forward(y, x, n, p, &KEY, first, 1), FB_OK);
    for (size_t i = 0; i < n; i++) {
        if (fb_uniform(&KEY, first + i) >= p) {
            assert_true(y[i] == x[i] * scale);
            assert_true(fabs((double)y[i] - (double)x[i] / (1.0 - (double)p)) <= 2.4e-7 * fabs((double)y[i]));
        } else {
            assert_true(y[i] == 0.0f);
        }
    }
    free(x); free(y);
}

// Over 1e5 elements the kept count is Binomial(n, 1 - p): within 4 sigma of n (1 - p).
static void test_kept_fraction(void **state) {
    (void)state;
    const size_t n = 100000;
    float *x = alloc_floats(n), *y = alloc_floats(n);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f;
    const float ps[] = {0.1f, 0.5f, 0.9f};
    for (int k = 0; k < 3; k++) {
        const double p = ps[k];
        assert_int_equal(dropout_forward(y, x, n, ps[k], &KEY, 0, 1), FB_OK);
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) kept += y[i] != 0.0f;
        const double expect = n * (1 - p), sigma = sqrt(n * p * (1 - p));
        printf("  dropout p=%.1f kept %zu of %zu (expected %.0f +- %.0f)\n", p, kept, n, expect, sigma);
        assert_true(fabs((double)kept - expect) <= 4 * sigma);
    }
    free(x); free(y);
}

// Backward regenerates the forward's mask: dinp += mask * dout / (1 - p), accumulating.
static void test_backward_same_mask(void **state) {
    (void)state;
    const size_t n = 4099;
    const float p = 0.25f, scale = 1.0f / (1.0f - p);
    float *x = alloc_floats(n), *y = alloc_floats(n), *dout = alloc_floats(n), *dinp = alloc_floats(n);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f;
    fill_uniform(dout, n, 151, 1.0f);
    fill_uniform(dinp, n, 152, 1.0f);
    float *start = alloc_floats(n);
    memcpy(start, dinp, n * sizeof(float));
    assert_int_equal(dropout_forward(y, x, n, p, &KEY, 11, 1), FB_OK);
    assert_int_equal(dropout_backward(dinp, dout, n, p, &KEY, 11, 1), FB_OK);
    for (size_t i = 0; i < n; i++)
        assert_true(dinp[i] == (y[i] != 0.0f ? start[i] + dout[i] * scale : start[i]));
    free(x); free(y); free(dout); free(dinp); free(start);
}

// Blocks are independent and the mask is a function of the element index only: 1 and 2 threads
// give the same bits, and [0, n) in one call equals [0, k) then [k, n) with first = k.
static void test_threads_and_split(void **state) {
    (void)state;
    const size_t n = 512 * 256 + 3;  // > FB_OMP_MIN_WORK, odd length
    const float p = 0.4f;
    float *x = alloc_floats(n), *dout = alloc_floats(n), *y[3], *d[3];
    fill_uniform(x, n, 161, 1.0f);
    fill_uniform(dout, n, 162, 1.0f);
    for (int t = 0; t < 3; t++) { y[t] = alloc_floats(n); d[t] = alloc_floats(n); }
    for (int t = 0; t < 2; t++) {
        set_threads(t + 1);
        assert_int_equal(dropout_forward(y[t], x, n, p, &KEY, 0, 1), FB_OK);
        assert_int_equal(dropout_backward(d[t], dout, n, p, &KEY, 0, 1), FB_OK);
    }
    set_threads(2);
    assert_true(bitwise_equal(y[0], y[1], n));
    assert_true(bitwise_equal(d[0], d[1], n));
    const size_t splits[] = {1, 4, 6, 65537, n - 1};
    for (int s = 0; s < 5; s++) {
        const size_t k = splits[s];
        memset(y[2], 0, n * sizeof(float));
        memset(d[2], 0, n * sizeof(float));
        assert_int_equal(dropout_forward(y[2], x, k, p, &KEY, 0, 1), FB_OK);
        assert_int_equal(dropout_forward(y[2] + k, x + k, n - k, p, &KEY, k, 1), FB_OK);
        assert_int_equal(dropout_backward(d[2], dout, k, p, &KEY, 0, 1), FB_OK);
        assert_int_equal(dropout_backward(d[2] + k, dout + k, n - k, p, &KEY, k, 1), FB_OK);
        assert_true(bitwise_equal(y[0], y[2], n));
        assert_true(bitwise_equal(d[0], d[2], n));
    }
    for (int t = 0; t < 3; t++) { free(y[t]); free(d[t]); }
    free(x); free(dout);
}

// A different step or site gives a different mask (about half the elements differ at p = 0.5).
static void test_step_and_site_change_mask(void **state) {
    (void)state;
    const size_t n = 10000;
    float *x = alloc_floats(n), *a = alloc_floats(n), *b = alloc_floats(n);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f;
    fb_rng_key other[] = {{KEY.seed, KEY.step + 1, KEY.site}, {KEY.seed, KEY.step, KEY.site + 1},
                          {KEY.seed + 1, KEY.step, KEY.site}};
    assert_int_equal(dropout_forward(a, x, n, 0.5f, &KEY, 0, 1), FB_OK);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(dropout_forward(b, x, n, 0.5f, &other[k], 0, 1), FB_OK);
        size_t differ = 0;
        for (size_t i = 0; i < n; i++) differ += (a[i] != 0.0f) != (b[i] != 0.0f);
        assert_true(differ > n / 2 - 200 && differ < n / 2 + 200);  // 4 sigma = 200
    }
    free(x); free(a); free(b);
}

// training = 0 and p = 0 are the identity (backward: dinp += dout); p = 1 zeroes everything.
static void test_identity_and_extremes(void **state) {
    (void)state;
    const size_t n = 257;
    float *x = alloc_floats(n), *y = alloc_floats(n), *dout = alloc_floats(n), *d = alloc_floats(n);
    fill_uniform(x, n, 171, 3.0f);
    fill_uniform(dout, n, 172, 1.0f);
    for (int mode = 0; mode < 2; mode++) {
        const float p = mode == 0 ? 0.7f : 0.0f;
        const int training = mode == 0 ? 0 : 1;
        memset(y, 0, n * sizeof(float));
        assert_int_equal(dropout_forward(y, x, n, p, &KEY, 0, training), FB_OK);
        assert_true(bitwise_equal(x, y, n));
        for (size_t i = 0; i < n; i++) d[i] = 1.0f;
        assert_int_equal(dropout_backward(d, dout, n, p, &KEY, 0, training), FB_OK);
        for (size_t i = 0; i < n; i++) assert_true(d[i] == 1.0f + dout[i]);
    }
    assert_int_equal(dropout_forward(y, x, n, 1.0f, &KEY, 0, 1), FB_OK);
    for (size_t i = 0; i < n; i++) assert_true(y[i] == 0.0f);
    for (size_t i = 0; i < n; i++) d[i] = 1.0f;
    assert_int_equal(dropout_backward(d, dout, n, 1.0f, &KEY, 0, 1), FB_OK);
    for (size_t i = 0; i < n; i++) assert_true(d[i] == 1.0f);
    // In place (out aliases inp) gives the same as out of place.
    assert_int_equal(dropout_forward(y, x, n, 0.5f, &KEY, 0, 1), FB_OK);
    assert_int_equal(dropout_forward(x, x, n, 0.5f, &KEY, 0, 1), FB_OK);
    assert_true(bitwise_equal(x, y, n));
    free(x); free(y); free(dout); free(d);
}

static void test_bad_arguments(void **state) {
    (void)state;
    float x[4] = {0}, y[4] = {0};
    assert_int_equal(dropout_forward(y, x, 4, 1.5f, &KEY, 0, 1), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "dropout: p=1.5 outside [0, 1]"));
    assert_int_equal(dropout_forward(y, x, 4, -0.1f, &KEY, 0, 1), FB_ERR_CONFIG);
    assert_int_equal(dropout_forward(y, x, 4, NAN, &KEY, 0, 0), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "outside [0, 1]"));
    assert_int_equal(dropout_forward(y, x, 0, 0.1f, &KEY, 0, 1), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "n=0 must be > 0"));
    assert_int_equal(dropout_forward(NULL, x, 4, 0.1f, &KEY, 0, 1), FB_ERR_SHAPE);
    assert_int_equal(dropout_forward(y, x, 4, 0.1f, NULL, 0, 1), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "key"));
    assert_int_equal(dropout_backward(y, x, 4, 2.0f, &KEY, 0, 1), FB_ERR_CONFIG);
    assert_int_equal(dropout_backward(y, NULL, 4, 0.1f, &KEY, 0, 1), FB_ERR_SHAPE);
    assert_int_equal(dropout_backward(y, y, 4, 0.1f, &KEY, 0, 1), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "alias"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_definition),
        cmocka_unit_test(test_kept_fraction),
        cmocka_unit_test(test_backward_same_mask),
        cmocka_unit_test(test_threads_and_split),
        cmocka_unit_test(test_step_and_site_change_mask),
        cmocka_unit_test(test_identity_and_extremes),
        cmocka_unit_test(test_bad_arguments),
    };
    int failed = cmocka_run_group_tests_name("dropout", tests, NULL, NULL);
    report_worst();
    return failed;
}
