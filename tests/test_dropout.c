// dropout: torch's RNG cannot be matched, so the mask is tested against its definition
// (keep iff fb_uniform(key, first + i) >= p), its statistics, and its invariances: same mask in
// backward, for 1 vs 2 threads, for a split range and for rows run apart from their batch (row0,
// row maps); a new mask for a new step or site.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/dropout.h"

static const fb_rng_key KEY = {.seed = 1234, .step = 7, .site = 3};

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

// The row-wise form indexes rows by their global row: rows [k, B) alone with key.row0 = k, and a
// gathered subset (row0 + a row map), get the whole batch's masks, forward and backward, bit for
// bit and for 1 or 2 threads; the whole batch in rows is the flat call at first = 0. The tail with
// row0 = 0 differs (so the check would notice rows indexed locally).
static void test_row_decomposition(void **state) {
    (void)state;
    const int B = 37, k = 11;
    const size_t R = 1001;   // odd row size: rows start mid Philox block; B*R > FB_OMP_MIN_WORK
    const float p = 0.3f;
    const size_t n = (size_t)B * R;
    float *x = alloc_floats(n), *dout = alloc_floats(n), *d0 = alloc_floats(n);
    float *y = alloc_floats(n), *d = alloc_floats(n), *flat = alloc_floats(n);
    fill_uniform(x, n, 181, 1.0f);
    fill_uniform(dout, n, 182, 1.0f);
    fill_uniform(d0, n, 183, 1.0f);   // backward accumulates onto it
    memcpy(d, d0, n * sizeof(float));
    assert_int_equal(dropout_rows_forward(y, x, (size_t)B, R, p, &KEY, 1), FB_OK);
    assert_int_equal(dropout_rows_backward(d, dout, (size_t)B, R, p, &KEY, 1), FB_OK);
    assert_int_equal(dropout_forward(flat, x, n, p, &KEY, 0, 1), FB_OK);
    assert_true(bitwise_equal(flat, y, n));

    // Gathered: row0 = 2 and the rows i < 35 with i % 3 != 1 (23 rows, enough to go parallel).
    int tail[37], map[37], gathered[37], ng = 0;
    for (int i = 0; i < B - k; i++) tail[i] = k + i;
    for (int i = 0; i < 35; i++)
        if (i % 3 != 1) { map[ng] = i; gathered[ng++] = 2 + i; }
    const struct { const char *what; const int *src; int rows; uint64_t row0; const int *map; int expect; } cases[] = {
        {"rows [11, 37), row0 = 11", tail, B - k, (uint64_t)k, NULL, 1},
        {"23 gathered rows, row0 = 2 + map", gathered, ng, 2, map, 1},
        {"rows [11, 37), row0 = 0 (wrong)", tail, B - k, 0, NULL, 0},
    };
    float *py = alloc_floats(n), *px = alloc_floats(n), *pdout = alloc_floats(n), *pd = alloc_floats(n);
    for (int c = 0; c < 3; c++) {
        const int rows = cases[c].rows;
        fb_rng_key key = KEY;
        key.row0 = cases[c].row0;
        key.row_map = cases[c].map;
        gather_rows(px, x, cases[c].src, rows, R);
        gather_rows(pdout, dout, cases[c].src, rows, R);
        for (int t = 1; t <= 2; t++) {
            set_threads(t);
            gather_rows(pd, d0, cases[c].src, rows, R);
            assert_int_equal(dropout_rows_forward(py, px, (size_t)rows, R, p, &key, 1), FB_OK);
            assert_int_equal(dropout_rows_backward(pd, pdout, (size_t)rows, R, p, &key, 1), FB_OK);
            const int dy = rows_differing(py, y, cases[c].src, rows, R), dd = rows_differing(pd, d, cases[c].src, rows, R);
            printf("  decomposition dropout %-34s %d thread(s): %d of %d rows differ (forward), %d (backward)\n",
                   cases[c].what, t, dy, rows, dd);
            if (cases[c].expect) assert_true(dy == 0 && dd == 0);
            else assert_true(dy > 0 && dd > 0);
        }
    }
    set_threads(2);
    free(x); free(dout); free(d0); free(y); free(d); free(flat); free(py); free(px); free(pdout); free(pd);
}

// A different step or site gives a different mask (about half the elements differ at p = 0.5).
static void test_step_and_site_change_mask(void **state) {
    (void)state;
    const size_t n = 10000;
    float *x = alloc_floats(n), *a = alloc_floats(n), *b = alloc_floats(n);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f;
    fb_rng_key other[] = {{.seed = KEY.seed, .step = KEY.step + 1, .site = KEY.site},
                          {.seed = KEY.seed, .step = KEY.step, .site = KEY.site + 1},
                          {.seed = KEY.seed + 1, .step = KEY.step, .site = KEY.site}};
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
        cmocka_unit_test(test_row_decomposition),
        cmocka_unit_test(test_step_and_site_change_mask),
        cmocka_unit_test(test_identity_and_extremes),
        cmocka_unit_test(test_bad_arguments),
    };
    int failed = cmocka_run_group_tests_name("dropout", tests, NULL, NULL);
    report_worst();
    return failed;
}
