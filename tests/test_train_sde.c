// fusebench's SDE counters during a real training run (harness/train.c + harness/monitor.c), read
// through the PAPI API as an outside tool in the process would (sde:::fusebench::NAME), against the
// harness's own totals: allreduce bytes and calls (train_result.comm_*), the forward and backward
// FLOPs (steps × the kernel FLOP count of one pass of an identical model, measured here), route
// counts (steps × batch for a routed method), and the gathered train_result.sde copy.
#include <mpi.h>
#include <papi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../harness/parallel.h"
#include "../harness/train.h"
#include "../profiling/counters.h"
#include "../profiling/sde.h"

enum { STEPS = 6, BATCH = 8 };

static const fb_sde_counter watched[] = {
    FB_SDE_ALLREDUCE_BYTES, FB_SDE_ALLREDUCE_CALLS, FB_SDE_FLOPS_FORWARD, FB_SDE_FLOPS_BACKWARD,
    FB_SDE_FLOPS_LOSS, FB_SDE_ROUTE_EXPERT_0, FB_SDE_ROUTE_EXPERT_1, FB_SDE_ROUTE_EXPERT_2, FB_SDE_NONFINITE,
};
#define N_WATCHED ((int)(sizeof watched / sizeof watched[0]))

// An event set over the watched counters, as any PAPI consumer builds it.
static int papi_eventset(void) {
    assert_int_equal(prof_papi_init(), FB_OK);
    assert_int_equal(fb_sde_init(), FB_OK);
    int es = PAPI_NULL;
    assert_int_equal(PAPI_create_eventset(&es), PAPI_OK);
    for (int k = 0; k < N_WATCHED; k++) {
        char name[128];
        snprintf(name, sizeof name, FB_SDE_PAPI_PREFIX "%s", fb_sde_name(watched[k]));
        int rc = PAPI_add_named_event(es, name);
        if (rc != PAPI_OK) fail_msg("PAPI_add_named_event(%s): %s", name, PAPI_strerror(rc));
    }
    return es;
}

static void papi_done(int es) {
    long long end[N_WATCHED];
    assert_int_equal(PAPI_stop(es, end), PAPI_OK);
    assert_int_equal(PAPI_cleanup_eventset(es), PAPI_OK);
    assert_int_equal(PAPI_destroy_eventset(&es), PAPI_OK);
}

// Kernel FLOPs of one training forward and one backward of the scenario's model at BATCH rows.
static void one_pass_flops(const char *method, double *fwd, double *bwd) {
    fb_layout P, A;
    model m;
    fb_layout_init(&P, 2);
    fb_layout_init(&A, 2);
    const model_config c = { .method = method, .B = BATCH, .dropout = 0.1f, .seed = 1 };
    if (model_create(&m, &scenario_multimodal, &c, &P, &A) != FB_OK) fail_msg("%s", fb_last_error());
    assert_int_equal(fb_layout_alloc(&P), FB_OK);
    assert_int_equal(fb_layout_alloc(&A), FB_OK);
    fb_layout_initialize(&P, 1);
    float *x = alloc_floats((size_t)BATCH * m.in_stride), *y = alloc_floats((size_t)BATCH * m.y_stride);
    float *out = alloc_floats((size_t)BATCH * m.out_dim), *dout = alloc_floats((size_t)BATCH * m.out_dim);
    for (int i = 0; i < BATCH; i++) m.s->sample(&m, (uint64_t)i, x + (size_t)i * m.in_stride, y + (size_t)i * m.y_stride);
    fill_uniform(dout, (size_t)BATCH * m.out_dim, 3, 1.0f);
    const model_batch b = { .B = BATCH, .x = x, .y = y, .first = 0, .step = 0, .training = 1 };
    long long t0 = fb_flops_read();
    assert_int_equal(m.s->forward(&m, &b, out), FB_OK);
    long long t1 = fb_flops_read();
    assert_int_equal(m.s->backward(&m, &b, dout), FB_OK);
    long long t2 = fb_flops_read();
    *fwd = (double)(t1 - t0);
    *bwd = (double)(t2 - t1);
    model_destroy(&m);
    fb_layout_free(&P);
    fb_layout_free(&A);
    free(x); free(y); free(out); free(dout);
}

static train_config config(const char *method) {
    train_config c = train_defaults();
    c.scenario = &scenario_multimodal;
    c.model.method = method;
    c.batch = BATCH;
    c.steps = STEPS;
    c.progress = 0;
    c.monitor.trace_every = 2;
    c.monitor.eval_check_every = 3;
    return c;
}

// Runs the training inside a PAPI event set; got[k] = PAPI's delta of watched[k].
static void train_under_papi(const train_config *c, train_result *r, long long *got) {
    const int es = papi_eventset();
    assert_int_equal(PAPI_start(es), PAPI_OK);
    if (train_run(c, MPI_COMM_WORLD, r) != FB_OK) fail_msg("train_run: %s", fb_last_error());
    assert_int_equal(PAPI_read(es, got), PAPI_OK);
    papi_done(es);
}

static void test_comm_and_flops(void **state) {
    (void)state;
    const train_config c = config("concat_mlp");
    double fwd, bwd;
    one_pass_flops("concat_mlp", &fwd, &bwd);
    train_result r;
    long long got[N_WATCHED];
    train_under_papi(&c, &r, got);
    // Communication: PAPI's view equals the harness's per-step accounting summed over the steps.
    assert_int_equal(got[0], r.comm_bytes[PAR_ALLREDUCE]);
    assert_int_equal(got[1], r.comm_calls[PAR_ALLREDUCE]);
    assert_true(got[1] >= STEPS);
    // FLOPs: the phases' shares are exactly steps × one pass (the evaluation checks run outside
    // the phases and are not attributed).
    if ((double)got[2] != STEPS * fwd || (double)got[3] != STEPS * bwd)
        fail_msg("flops forward %lld (want %d x %.0f), backward %lld (want %d x %.0f)", got[2], STEPS, fwd, got[3],
                 STEPS, bwd);
    assert_true(got[4] > 0);   // cross-entropy forward + backward
    assert_int_equal(got[8], 0);
    // The harness's gathered copy (1 rank: the same values, read independently by fb_sde_read).
    assert_true(r.sde[FB_SDE_FLOPS_FORWARD] >= got[2]);
    printf("  PAPI reads allreduce %lld B in %lld calls (harness: %lld B, %lld calls); FLOPs forward %lld = %d x %.0f, "
           "backward %lld = %d x %.0f\n", got[0], got[1], (long long)r.comm_bytes[PAR_ALLREDUCE],
           (long long)r.comm_calls[PAR_ALLREDUCE], got[2], STEPS, fwd, got[3], STEPS, bwd);
    train_result_free(&r);
}

static void test_routes(void **state) {
    (void)state;
    const train_config c = config("energy_aware_adaptive");
    train_result r;
    long long got[N_WATCHED];
    train_under_papi(&c, &r, &got[0]);
    const long long routed = got[5] + got[6] + got[7];
    // One route per sample per training forward (evaluation passes are not counted).
    assert_int_equal(routed, (long long)STEPS * BATCH);
    printf("  routes read through PAPI: expert 0: %lld, 1: %lld, 2: %lld (sum %lld = %d steps x %d samples)\n", got[5],
           got[6], got[7], routed, STEPS, BATCH);
    train_result_free(&r);
}

// Under `make sanitize`: full stacks for every allocation (slow, but this binary allocates little
// of its own), so LeakSanitizer can match what Open MPI keeps until exit against
// profiling/lsan.supp; the fast unwinder stops at frame-pointer-less MPI frames.
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) { return "fast_unwind_on_malloc=0"; }

int main(int argc, char **argv) {
    // Keep Open MPI's components loaded until exit, so a leak checker can name the library of
    // what they keep (profiling/lsan.supp) instead of an unloaded "<unknown module>".
    setenv("OMPI_MCA_mca_base_component_disable_dlclose", "1", 0);
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_comm_and_flops),
        cmocka_unit_test(test_routes),
    };
    int rc = cmocka_run_group_tests_name("train_sde", tests, NULL, NULL);
    MPI_Finalize();
    return rc;
}
