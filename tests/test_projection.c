// profiling/projection: the α–β fit recovers the parameters of data made by the ring model, and the
// step model's terms against hand computations.
#include <math.h>
#include <stdio.h>
#include "testutil.h"
#include "../profiling/projection.h"

static void test_fit_recovers_ring(void **state) {
    (void)state;
    const int p0 = 4;
    const double alpha = 3e-6, beta = 1.0 / 5e9;   // 3 us, 5 GB/s
    double m[8], t[8];
    for (int i = 0; i < 8; i++) {
        m[i] = 1024.0 * (1 << (2 * i));   // 1 KiB .. 16 MiB
        t[i] = 2.0 * (p0 - 1) * alpha + 2.0 * (p0 - 1) / p0 * m[i] * beta;
    }
    proj_link l;
    assert_int_equal(proj_fit_allreduce(m, t, 8, 1024, p0, &l), FB_OK);
    printf("  fitted alpha %.3g s (want %.3g), beta %.3g s/B (want %.3g)\n", l.alpha_s, alpha, l.beta_s_per_byte, beta);
    assert_true(fabs(l.alpha_s - alpha) < 1e-9);
    assert_true(fabs(l.beta_s_per_byte - beta) / beta < 1e-9);
    // Refusals: one rank, too few points, a flat table.
    assert_int_equal(proj_fit_allreduce(m, t, 8, 1024, 1, &l), FB_ERR_CONFIG);
    assert_int_equal(proj_fit_allreduce(m, t, 8, 1e12, p0, &l), FB_ERR_CONFIG);
    double flat[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    assert_int_equal(proj_fit_allreduce(m, flat, 8, 0, p0, &l), FB_ERR_CONFIG);
}

static void test_step_terms(void **state) {
    (void)state;
    const proj_link intra = {1e-6, 1e-10}, inter = {5e-6, 1e-9};
    proj_run r = {.strategy = PROJ_DDP, .compute_s = 0.01, .grad_bytes = 4e6, .exposed = 0.5};
    assert_true(proj_step(&r, 1, 1, &intra, &inter) == 0.01);
    // P = 2, one node: 0.01 + 0.5 (2 α + 2·(1/2)·G β)
    double want = 0.01 + 0.5 * (2 * 1e-6 + 1.0 * 4e6 * 1e-10);
    assert_true(fabs(proj_step(&r, 1, 2, &intra, &inter) - want) < 1e-15);
    // 4 nodes x 1 rank: the inter-node link.
    want = 0.01 + 0.5 * (6 * 5e-6 + 1.5 * 4e6 * 1e-9);
    assert_true(fabs(proj_step(&r, 4, 4, &intra, &inter) - want) < 1e-15);
    // Dataparallel, P = 4 on one node: 2·2·(α + Gβ) + 3α + (3/4)(I + O)·4·β.
    proj_run d = {.strategy = PROJ_DATAPARALLEL, .compute_s = 0.01, .grad_bytes = 4e6, .input_bytes = 1000,
                  .output_bytes = 200};
    want = 0.01 + 4 * (1e-6 + 4e6 * 1e-10) + 3 * 1e-6 + 0.75 * 1200 * 4 * 1e-10;
    assert_true(fabs(proj_step(&d, 1, 4, &intra, &inter) - want) < 1e-15);
    // Step time never falls as ranks grow (weak scaling).
    double prev = 0;
    for (int p = 1; p <= 1024; p *= 2) {
        const double s = proj_step(&r, p, p, &intra, &inter);
        assert_true(s >= prev);
        prev = s;
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_recovers_ring),
        cmocka_unit_test(test_step_terms),
    };
    return cmocka_run_group_tests_name("projection", tests, NULL, NULL);
}
