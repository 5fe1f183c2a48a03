// profiling: PAPI counters per OpenMP thread and phase (availability and reasons for every
// requested event, timers and call counts consistent over phases of known work on 1 and 2 threads,
// counts that grow with work where an event can be counted, threads that libgomp replaces, bad
// calls) and fusebench's SDE counters read back through the PAPI API.
#include <omp.h>
#include <papi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "testutil.h"
#include "../profiling/counters.h"
#include "../profiling/sde.h"

// ---- Known work: `units` × 64 FMAs on every thread of a team of n ----

static volatile float sink;

static void fma_units(long units) {
    float a[64];
    for (int j = 0; j < 64; j++) a[j] = (float)j * 1e-3f;
    for (long u = 0; u < units; u++)
        for (int j = 0; j < 64; j++) a[j] = a[j] * 0.999f + 0.001f;
    sink = a[0];
}

static void work(int n, long units) {
#pragma omp parallel num_threads(n)
    fma_units(units);
}

#define UNITS 40000L   // ≈ 0.1-0.5 ms per call here
#define STEPS 4
// Boundaries per step of run_steps: begin forward, enter, leave, begin backward, enter, leave,
// begin loss, end.
#define STEP_BOUNDARIES 8

static int64_t value(const prof_counters *pc, int t, int r, int e) {
    return prof_counters_values(pc)[((size_t)t * PROF_REGION_COUNT + r) * prof_counters_events(pc) + e];
}
static int64_t virt(const prof_counters *pc, int t, int r) {
    return prof_counters_virt_ns(pc)[(size_t)t * PROF_REGION_COUNT + r];
}
static int find_event(const prof_counters *pc, const char *name) {
    for (int e = 0; e < prof_counters_events(pc); e++)
        if (strcmp(prof_counters_event_name(pc, e), name) == 0) return e;
    return -1;
}

// STEPS steps: forward does 2 units of work (half in its fusion overlay), backward 4 (half in its
// overlay), loss none; communication and optimizer never run. Returns the wall time (PAPI's
// real-time clock, the one the counters use) around it.
static int64_t run_steps(prof_counters *pc, int n) {
    int64_t t0 = PAPI_get_real_nsec();
    for (int s = 0; s < STEPS; s++) {
        assert_int_equal(prof_phase_begin(pc, PROF_PHASE_FORWARD), FB_OK);
        work(n, UNITS);
        assert_int_equal(prof_overlay_enter(pc, PROF_OVERLAY_FUSION_FORWARD), FB_OK);
        work(n, UNITS);
        assert_int_equal(prof_overlay_leave(pc, PROF_OVERLAY_FUSION_FORWARD), FB_OK);
        assert_int_equal(prof_phase_begin(pc, PROF_PHASE_BACKWARD), FB_OK);
        work(n, 2 * UNITS);
        assert_int_equal(prof_overlay_enter(pc, PROF_OVERLAY_FUSION_BACKWARD), FB_OK);
        work(n, 2 * UNITS);
        assert_int_equal(prof_overlay_leave(pc, PROF_OVERLAY_FUSION_BACKWARD), FB_OK);
        assert_int_equal(prof_phase_begin(pc, PROF_PHASE_LOSS), FB_OK);
        assert_int_equal(prof_phase_end(pc), FB_OK);
    }
    return PAPI_get_real_nsec() - t0;
}

// Every requested event has a verdict; an unavailable one has a reason naming what failed.
static void check_availability(const prof_counters *pc) {
    const int *avail = prof_counters_available(pc);
    int n = 0;
    for (int e = 0; e < prof_counters_events(pc); e++) {
        const char *why = prof_counters_event_reason(pc, e);
        assert_true(avail[e] == 0 || avail[e] == 1);
        if (avail[e]) assert_string_equal(why, "");
        else if (strstr(why, "PAPI_") == NULL) fail_msg("%s: reason '%s' names no PAPI call", prof_counters_event_name(pc, e), why);
        n += avail[e];
    }
    assert_int_equal(n, prof_counters_n_available(pc));
    assert_true(strlen(prof_counters_statement(pc)) > 0);
    if (!prof_counters_hw_usable(pc)) {
        assert_non_null(strstr(prof_counters_statement(pc), "no hardware counters on this machine"));
        assert_true(strlen(prof_counters_hw_reason(pc)) > 0);
        // A CPU preset can only fail here, and its reason says why the CPU has no counters.
        for (int e = 0; e < prof_counters_events(pc); e++)
            if (strncmp(prof_counters_event_name(pc, e), "PAPI_", 5) == 0 &&
                strcmp(prof_counters_event_name(pc, e), "PAPI_NOT_AN_EVENT") != 0) {
                assert_int_equal(avail[e], 0);
                assert_non_null(strstr(prof_counters_event_reason(pc, e), "perf_event: "));
            }
    }
}

// Calls, times and counts of run_steps on n threads with `events`.
static void check_steps(const char *events, int n) {
    prof_counters *pc;
    assert_int_equal(prof_counters_create(&pc, events, n), FB_OK);
    check_availability(pc);
    int64_t wall = run_steps(pc, n);
    const int64_t *calls = prof_counters_calls(pc), *real = prof_counters_real_ns(pc);
    const int F = PROF_PHASE_FORWARD, B = PROF_PHASE_BACKWARD, L = PROF_PHASE_LOSS;
    const int FF = PROF_REGION_OF_OVERLAY(PROF_OVERLAY_FUSION_FORWARD), FB = PROF_REGION_OF_OVERLAY(PROF_OVERLAY_FUSION_BACKWARD);
    const int64_t want_calls[PROF_REGION_COUNT] = { [F] = STEPS, [B] = STEPS, [L] = STEPS, [FF] = STEPS, [FB] = STEPS };
    for (int r = 0; r < PROF_REGION_COUNT; r++) assert_int_equal(calls[r], want_calls[r]);
    assert_int_equal(prof_counters_boundaries(pc), STEPS * STEP_BOUNDARIES);
    assert_int_equal(prof_counters_restarts(pc), 0);

    // Real time: where work ran > 0, never-run phases 0, phases sum to at most the wall time,
    // each overlay within its phase.
    int64_t sum = 0;
    for (int r = 0; r < PROF_PHASE_COUNT; r++) sum += real[r];
    assert_true(real[F] > 0 && real[B] > 0 && real[L] >= 0);
    assert_true(real[PROF_PHASE_COMM] == 0 && real[PROF_PHASE_OPTIMIZER] == 0);
    assert_true(sum <= wall);
    assert_true(real[FF] > 0 && real[FF] <= real[F] && real[FB] > 0 && real[FB] <= real[B]);
    // Virtual (CPU) time per thread: the same, with the wall time as the ceiling of each thread's
    // sum (a thread cannot run longer than the wall clock; 0.1 ms for the two clocks' offsets).
    for (int t = 0; t < n; t++) {
        int64_t vs = 0;
        for (int r = 0; r < PROF_PHASE_COUNT; r++) vs += virt(pc, t, r);
        assert_true(virt(pc, t, F) > 0 && virt(pc, t, B) > 0);
        assert_true(virt(pc, t, PROF_PHASE_COMM) == 0 && virt(pc, t, PROF_PHASE_OPTIMIZER) == 0);
        assert_true(virt(pc, t, FF) > 0 && virt(pc, t, FF) <= virt(pc, t, F));
        assert_true(virt(pc, t, FB) > 0 && virt(pc, t, FB) <= virt(pc, t, B));
        if (vs > wall + 100000) fail_msg("thread %d: CPU time %lld ns over a wall time of %lld ns", t, (long long)vs, (long long)wall);
    }
    // Counted events: positive where work ran, zero where nothing ran; with one thread (no
    // spin-waiting for others) twice the work counts more.
    const int *avail = prof_counters_available(pc);
    char counted[512] = "";
    for (int e = 0; e < prof_counters_events(pc); e++) {
        if (!avail[e]) continue;
        for (int t = 0; t < n; t++) {
            assert_true(value(pc, t, F, e) > 0 && value(pc, t, B, e) > 0 && value(pc, t, FF, e) > 0);
            assert_true(value(pc, t, PROF_PHASE_COMM, e) == 0 && value(pc, t, PROF_PHASE_OPTIMIZER, e) == 0);
        }
        double ratio = (double)value(pc, 0, B, e) / (double)value(pc, 0, F, e);
        if (n == 1 && ratio < 1.3) fail_msg("%s: backward (2x the work) / forward = %.2f", prof_counters_event_name(pc, e), ratio);
        size_t len = strlen(counted);
        snprintf(counted + len, sizeof counted - len, " %s bwd/fwd=%.2f", prof_counters_event_name(pc, e), ratio);
    }
    if (n == 1) {
        double ratio = (double)virt(pc, 0, B) / (double)virt(pc, 0, F);
        if (ratio < 1.3) fail_msg("CPU time backward (2x the work) / forward = %.2f", ratio);
    }
    printf("  %d thread%s, %d of %d events counting:%s; wall %.2f ms, forward %.2f ms (fusion %.2f), backward %.2f ms "
           "(fusion %.2f), loss %.3f ms; CPU thread 0 fwd %.2f bwd %.2f ms\n",
           n, n > 1 ? "s" : " ", prof_counters_n_available(pc), prof_counters_events(pc), counted[0] ? counted : " none",
           wall / 1e6, real[F] / 1e6, real[FF] / 1e6, real[B] / 1e6, real[FB] / 1e6, real[L] / 1e6,
           virt(pc, 0, F) / 1e6, virt(pc, 0, B) / 1e6);

    // Reset: everything back to zero, and counting goes on.
    assert_int_equal(prof_counters_reset(pc), FB_OK);
    for (int r = 0; r < PROF_REGION_COUNT; r++) assert_true(calls[r] == 0 && real[r] == 0 && virt(pc, n - 1, r) == 0);
    assert_int_equal(prof_phase_begin(pc, PROF_PHASE_OPTIMIZER), FB_OK);
    work(n, UNITS);
    assert_int_equal(prof_phase_end(pc), FB_OK);
    assert_true(calls[PROF_PHASE_OPTIMIZER] == 1 && real[PROF_PHASE_OPTIMIZER] > 0 && calls[F] == 0);
    prof_counters_destroy(pc);
}

// ---- Tests ----

static void test_default_events(void **state) {
    (void)state;
    prof_counters *pc;
    assert_int_equal(prof_counters_create(&pc, NULL, 1), FB_OK);
    assert_int_equal(prof_counters_events(pc), 6);
    const char *flop = prof_counters_event_name(pc, 5);
    assert_true(strcmp(flop, "PAPI_SP_OPS") == 0 || strcmp(flop, "PAPI_FP_OPS") == 0);
    check_availability(pc);
    printf("  PAPI %s, %d hardware counters reported, usable: %s\n  %s\n", prof_papi_version(),
           prof_counters_hw_counters(pc), prof_counters_hw_usable(pc) ? "yes" : "no", prof_counters_statement(pc));
    for (int e = 0; e < prof_counters_events(pc); e++)
        printf("  %-12s %s %s\n", prof_counters_event_name(pc, e), prof_counters_available(pc)[e] ? "yes" : "no ",
               prof_counters_event_reason(pc, e));
    char line[1200];
    int ncomp = prof_papi_component_status(0, line, sizeof line);
    assert_true(ncomp > 0);
    for (int c = 0; c < ncomp; c++) {
        assert_int_equal(prof_papi_component_status(c, line, sizeof line), ncomp);
        printf("  component %s\n", line);
    }
    assert_int_equal(prof_papi_component_status(ncomp, line, sizeof line), -1);
    prof_counters_destroy(pc);
}

static void test_unknown_events(void **state) {
    (void)state;
    prof_counters *pc;
    assert_int_equal(prof_counters_create(&pc, " PAPI_TOT_INS ,PAPI_NOT_AN_EVENT,, bogus::native,sde:::nobody::x", 2), FB_OK);
    assert_int_equal(prof_counters_events(pc), 4);
    assert_string_equal(prof_counters_event_name(pc, 0), "PAPI_TOT_INS");
    assert_string_equal(prof_counters_event_name(pc, 2), "bogus::native");
    check_availability(pc);
    for (int e = 1; e < 4; e++) {
        assert_int_equal(prof_counters_available(pc)[e], 0);
        printf("  %-20s %s\n", prof_counters_event_name(pc, e), prof_counters_event_reason(pc, e));
    }
    assert_non_null(strstr(prof_counters_event_reason(pc, 2), "no PAPI component knows this name"));
    // Boundaries work with nothing to count.
    run_steps(pc, 2);
    assert_int_equal(prof_counters_calls(pc)[PROF_PHASE_FORWARD], STEPS);
    prof_counters_destroy(pc);
}

static void test_timers_1_thread(void **state) { (void)state; check_steps("none", 1); }
static void test_timers_2_threads(void **state) { (void)state; check_steps("none", 2); }
static void test_defaults_2_threads(void **state) { (void)state; check_steps(NULL, 2); }

// Counting through event sets: the preset (a hardware counter where the machine has one) and a
// kernel software event that perf_event offers even without a PMU, so the read path runs here too.
static void test_counting(void **state) {
    (void)state;
    const char *events = "PAPI_TOT_INS,perf::TASK-CLOCK";
    prof_counters *pc;
    assert_int_equal(prof_counters_create(&pc, events, 1), FB_OK);
    int ins = find_event(pc, "PAPI_TOT_INS"), any = prof_counters_n_available(pc);
    if (prof_counters_hw_usable(pc) && !prof_counters_available(pc)[ins])
        fail_msg("a hardware counter can be opened but PAPI_TOT_INS is unavailable: %s", prof_counters_event_reason(pc, ins));
    prof_counters_destroy(pc);
    if (!any) {
        printf("  neither %s can be counted here: the event-set path is not exercised\n", events);
        return;
    }
    check_steps(events, 1);
    check_steps(events, 2);
}

// A smaller team in between makes libgomp end the surplus threads; the counters notice at the
// next boundary and go on counting on the new threads.
static void restart_case(const char *events) {
    const int n = 3;
    prof_counters *pc;
    assert_int_equal(prof_counters_create(&pc, events, n), FB_OK);
    assert_int_equal(prof_phase_begin(pc, PROF_PHASE_FORWARD), FB_OK);
    work(n, UNITS);
    work(2, 1);   // ends OpenMP thread 2's OS thread
    // The thread exits on its own time; in timer mode only a failed read of its CPU clock reveals
    // it, so give it time to be gone before the boundary that should notice.
    nanosleep(&(struct timespec){ 0, 20000000 }, NULL);
    assert_int_equal(prof_phase_begin(pc, PROF_PHASE_BACKWARD), FB_OK);
    int restarts = prof_counters_restarts(pc);
    work(n, UNITS);
    assert_int_equal(prof_phase_end(pc), FB_OK);
    assert_true(restarts >= 1);
    assert_int_equal(prof_counters_restarts(pc), restarts);   // once per replacement, not per boundary
    assert_true(virt(pc, 2, PROF_PHASE_BACKWARD) > 0);
    for (int e = 0; e < prof_counters_events(pc); e++)
        if (prof_counters_available(pc)[e]) assert_true(value(pc, 2, PROF_PHASE_BACKWARD, e) > 0);
    printf("  %s: a team of 2 between boundaries replaced thread 2: %d restart, thread 2 then counted %.2f ms CPU\n",
           prof_counters_n_available(pc) ? "counting" : "timers", restarts, virt(pc, 2, PROF_PHASE_BACKWARD) / 1e6);
    prof_counters_destroy(pc);
}

static void test_thread_restart(void **state) {
    (void)state;
    restart_case("none");
    restart_case("perf::TASK-CLOCK");
}

static void test_bad_calls(void **state) {
    (void)state;
    prof_counters *pc = (prof_counters *)&pc;
    assert_int_equal(prof_counters_create(&pc, NULL, 0), FB_ERR_CONFIG);
    assert_null(pc);
    assert_int_equal(prof_counters_create(&pc, NULL, PROF_MAX_THREADS + 1), FB_ERR_CONFIG);
    assert_int_equal(prof_counters_create(&pc, "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", 1), FB_ERR_CONFIG);
    char longname[200];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(prof_counters_create(&pc, longname, 1), FB_ERR_CONFIG);

    // No profiling: every boundary is a no-op.
    assert_int_equal(prof_phase_begin(NULL, PROF_PHASE_FORWARD), FB_OK);
    assert_int_equal(prof_overlay_enter(NULL, PROF_OVERLAY_FUSION_FORWARD), FB_OK);
    assert_int_equal(prof_overlay_leave(NULL, PROF_OVERLAY_FUSION_FORWARD), FB_OK);
    assert_int_equal(prof_phase_end(NULL), FB_OK);
    assert_int_equal(prof_counters_reset(NULL), FB_OK);
    assert_int_equal(prof_counters_events(NULL), 0);
    prof_counters_destroy(NULL);

    assert_int_equal(prof_counters_create(&pc, "none", 2), FB_OK);
    assert_int_equal(prof_phase_end(pc), FB_ERR_CONFIG);
    assert_int_equal(prof_overlay_leave(pc, PROF_OVERLAY_FUSION_BACKWARD), FB_ERR_CONFIG);
    assert_int_equal(prof_phase_begin(pc, PROF_PHASE_COUNT), FB_ERR_CONFIG);
    assert_int_equal(prof_overlay_enter(pc, PROF_OVERLAY_FUSION_FORWARD), FB_OK);
    assert_int_equal(prof_overlay_enter(pc, PROF_OVERLAY_FUSION_FORWARD), FB_ERR_CONFIG);
    assert_int_equal(prof_counters_reset(pc), FB_ERR_CONFIG);
    assert_int_equal(prof_overlay_leave(pc, PROF_OVERLAY_FUSION_FORWARD), FB_OK);
    fb_status inside = FB_OK;
#pragma omp parallel num_threads(2)
    {
        if (omp_get_thread_num() == 0) inside = prof_phase_begin(pc, PROF_PHASE_FORWARD);
    }
    assert_int_equal(inside, FB_ERR_CONFIG);
    printf("  inside a parallel region: %s\n", fb_last_error());
    assert_int_equal(prof_counters_reset(pc), FB_OK);
    assert_string_equal(prof_region_name(PROF_REGION_OF_OVERLAY(PROF_OVERLAY_FUSION_BACKWARD)), "fusion_backward");
    assert_string_equal(prof_region_name(PROF_REGION_COUNT), "?");
    assert_string_equal(prof_phase_name(PROF_PHASE_COMM), "communication");
    prof_counters_destroy(pc);
}

// ---- SDE ----

// The counter names of the profiling issue, spelled out here rather than taken from sde.c, so a
// renamed counter fails this test.
static const char *const sde_names[FB_SDE_COUNT] = {
    "flops_forward", "flops_backward", "flops_loss", "flops_optimizer", "allreduce_bytes", "allreduce_calls",
    "allgather_bytes", "allgather_calls", "bcast_bytes", "bcast_calls", "reduce_bytes", "reduce_calls",
    "scatter_gather_bytes", "scatter_gather_calls", "exposed_comm_ns", "gate_saturated", "nonfinite",
    "route_expert_0", "route_expert_1", "route_expert_2", "route_expert_3", "route_expert_4", "route_expert_5",
    "route_expert_6", "route_expert_7",
};

static void test_sde_through_papi(void **state) {
    (void)state;
    assert_int_equal(fb_sde_init(), FB_OK);
    assert_int_equal(fb_sde_init(), FB_OK);
    // The reading side uses PAPI alone, as an outside tool would.
    if (!PAPI_is_initialized()) assert_int_equal(PAPI_library_init(PAPI_VER_CURRENT), PAPI_VER_CURRENT);
    int cid = PAPI_get_component_index("sde");
    assert_true(cid >= 0);
    const PAPI_component_info_t *ci = PAPI_get_component_info(cid);
    if (ci->disabled) fail_msg("sde component disabled: %s", ci->disabled_reason);
    int es = PAPI_NULL;
    assert_int_equal(PAPI_create_eventset(&es), PAPI_OK);
    for (int c = 0; c < FB_SDE_COUNT; c++) {
        char name[128];
        snprintf(name, sizeof name, "sde:::fusebench::%s", sde_names[c]);
        int rc = PAPI_add_named_event(es, name);
        if (rc != PAPI_OK) fail_msg("PAPI_add_named_event(%s): %s", name, PAPI_strerror(rc));
        int code;
        PAPI_event_info_t info;
        assert_int_equal(PAPI_event_name_to_code(name, &code), PAPI_OK);
        assert_int_equal(PAPI_get_event_info(code, &info), PAPI_OK);
        assert_string_equal(info.long_descr, fb_sde_description((fb_sde_counter)c));
    }
    int64_t before[FB_SDE_COUNT], after[FB_SDE_COUNT];
    long long want[FB_SDE_COUNT] = { 0 }, got[FB_SDE_COUNT];
    fb_sde_read(before);
    assert_int_equal(PAPI_start(es), PAPI_OK);

    // Serial adds: counter c gets c + 1 calls of 1000 (c + 1) + 7.
    for (int c = 0; c < FB_SDE_COUNT; c++)
        for (int k = 0; k <= c; k++) {
            fb_sde_add((fb_sde_counter)c, 1000LL * (c + 1) + 7);
            want[c] += 1000LL * (c + 1) + 7;
        }
    // Concurrent adds from inside a parallel region: exact totals.
    const int per_thread = 20000;
#pragma omp parallel num_threads(2)
    for (int i = 0; i < per_thread; i++) {
        fb_sde_add(FB_SDE_NONFINITE, 1);
        fb_sde_add_route(i % FB_SDE_MAX_EXPERTS, 2);
    }
    want[FB_SDE_NONFINITE] += 2LL * per_thread;
    for (int k = 0; k < FB_SDE_MAX_EXPERTS; k++) want[FB_SDE_ROUTE_EXPERT_0 + k] += 2LL * 2 * per_thread / FB_SDE_MAX_EXPERTS;
    fb_sde_add_route(FB_SDE_MAX_EXPERTS, 5);   // beyond the table: not counted
    fb_sde_add_route(-1, 5);

    assert_int_equal(PAPI_read(es, got), PAPI_OK);
    fb_sde_read(after);
    for (int c = 0; c < FB_SDE_COUNT; c++) {
        if (got[c] != want[c] || after[c] - before[c] != want[c])
            fail_msg("%s: added %lld, PAPI reads %lld, local getter %lld", sde_names[c], want[c], got[c],
                     (long long)(after[c] - before[c]));
        assert_string_equal(fb_sde_name((fb_sde_counter)c), sde_names[c]);
    }
    printf("  %d SDE counters read through PAPI (sde:::fusebench::NAME) equal the test's totals, e.g. "
           "allreduce_bytes=%lld route_expert_3=%lld nonfinite=%lld; the local getter agrees\n",
           FB_SDE_COUNT, got[FB_SDE_ALLREDUCE_BYTES], got[FB_SDE_ROUTE_EXPERT_3], got[FB_SDE_NONFINITE]);
    long long end[FB_SDE_COUNT];
    assert_int_equal(PAPI_stop(es, end), PAPI_OK);
    assert_int_equal(PAPI_cleanup_eventset(es), PAPI_OK);
    assert_int_equal(PAPI_destroy_eventset(&es), PAPI_OK);

    fb_sde_reset();
    fb_sde_read(after);
    for (int c = 0; c < FB_SDE_COUNT; c++) assert_true(after[c] == 0);
    assert_string_equal(fb_sde_units(FB_SDE_EXPOSED_COMM_NS), "ns");
    assert_string_equal(fb_sde_name(FB_SDE_COUNT), "?");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_events),
        cmocka_unit_test(test_unknown_events),
        cmocka_unit_test(test_timers_1_thread),
        cmocka_unit_test(test_timers_2_threads),
        cmocka_unit_test(test_defaults_2_threads),
        cmocka_unit_test(test_counting),
        cmocka_unit_test(test_thread_restart),
        cmocka_unit_test(test_bad_calls),
        cmocka_unit_test(test_sde_through_papi),
    };
    return cmocka_run_group_tests_name("profiling", tests, NULL, NULL);
}
