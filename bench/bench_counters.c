// `fusebench counters`: what this machine can count with PAPI, what fusebench's counters look like
// over a known workload, and what one phase boundary costs.
//
// Phases (HPCG's shape): options → PAPI set-up (library, components, SDE registration) → report
// of every requested event (available or not, and why) → workload: every phase runs a known
// number of FMA units on every thread, the overlays half of their phase's, for --steps steps →
// per-thread per-region table and the SDE FLOP counters read back through PAPI (checked against
// the FLOPs the workload added) → boundary cost: median and 90th percentile of --boundaries
// single boundaries, with the requested events and with timers only, threads hot (a parallel
// region just ended) and cold (after 2 ms of serial work, long enough for libgomp's workers to go
// to sleep: the case of a boundary after MPI communication).
//
// The profiling issue allows ≤ 3% of a training step for all tracing; the boundary cost is what
// the counters add per phase change and per fusion-method call.
#include <omp.h>
#include <papi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../profiling/counters.h"
#include "../profiling/sde.h"
#include "cli.h"
#include "machine.h"

#define PROG "fusebench counters"
#define COLD_SLEEP_NS 2000000L   // serial pause before a "cold" boundary
// Boundaries per training step used for the budget line: 5 phases begun and the last ended, plus
// a fusion forward and a fusion backward call (enter + leave each).
#define STEP_BOUNDARIES 10

// The SDE FLOP counter each phase's workload feeds (-1: none).
static const int phase_sde[] = { FB_SDE_FLOPS_FORWARD, FB_SDE_FLOPS_BACKWARD, FB_SDE_FLOPS_LOSS, -1,
                                 FB_SDE_FLOPS_OPTIMIZER };
_Static_assert(sizeof phase_sde / sizeof phase_sde[0] == PROF_PHASE_COUNT, "phase_sde out of step with prof_phase");

// ---- The known workload ----

// 64 independent FMA chains in L1 (compute-bound, no memory traffic): one unit = 64 FMAs = 128 FLOPs.
#define FLOPS_PER_UNIT 128
static volatile float fma_sink;

__attribute__((noinline)) static void fma_units(long units) {
    float a[64];
    for (int j = 0; j < 64; j++) a[j] = (float)j * 1e-3f;
    const float b = 0.999f, c = 0.001f;
    for (long u = 0; u < units; u++)
        for (int j = 0; j < 64; j++) a[j] = a[j] * b + c;
    fma_sink = a[0];
}

// `units` FMA units on every thread of the team (so each thread's counts are comparable).
static void work(long units) {
#pragma omp parallel
    fma_units(units);
}

// ---- Report helpers ----

static void print_components(void) {
    char line[1200];
    int n = prof_papi_component_status(0, line, sizeof line);
    printf("# PAPI %s, %d components:\n", prof_papi_version(), n);
    for (int c = 0; c < n; c++) {
        prof_papi_component_status(c, line, sizeof line);
        printf("#   %s\n", line);
    }
}

static void print_events(const prof_counters *pc) {
    const int *avail = prof_counters_available(pc);
    printf("\n%-28s %-5s %s\n", "event", "avail", "reason");
    for (int e = 0; e < prof_counters_events(pc); e++)
        printf("%-28s %-5s %s\n", prof_counters_event_name(pc, e), avail[e] ? "yes" : "no",
               prof_counters_event_reason(pc, e));
    if (prof_counters_events(pc) == 0) printf("(no events requested: timers only)\n");
}

static void print_table(const prof_counters *pc, long units) {
    const int T = prof_counters_threads(pc), E = prof_counters_events(pc);
    const int *avail = prof_counters_available(pc);
    const int64_t *val = prof_counters_values(pc), *real = prof_counters_real_ns(pc), *virt = prof_counters_virt_ns(pc),
                  *calls = prof_counters_calls(pc);
    printf("\n# per thread and region: calls, real ms (the caller's clock), virt ms (the thread's CPU time), "
           "counts;\n# workload per call: phase k runs (k+1) x %ld FMA units per thread, an overlay half of its "
           "phase's\n", units);
    printf("%-6s %-16s %6s %10s %10s", "thread", "region", "calls", "real_ms", "virt_ms");
    for (int e = 0; e < E; e++)
        if (avail[e]) printf(" %16.16s", prof_counters_event_name(pc, e));
    printf("\n");
    for (int t = 0; t < T; t++)
        for (int r = 0; r < PROF_REGION_COUNT; r++) {
            printf("%-6d %-16s %6lld %10.3f %10.3f", t, prof_region_name(r), (long long)calls[r], real[r] / 1e6,
                   virt[(size_t)t * PROF_REGION_COUNT + r] / 1e6);
            for (int e = 0; e < E; e++)
                if (avail[e]) printf(" %16lld", (long long)val[((size_t)t * PROF_REGION_COUNT + r) * E + e]);
            printf("\n");
        }
}

// ---- The workload run ----

// One step: every phase in turn, the forward and backward ones with their fusion overlay around
// the second half of their work; the FLOPs go to the phase's SDE counter and to expected[phase].
static fb_status run_step(prof_counters *pc, long units, int threads, long long *expected) {
    for (int p = 0; p < PROF_PHASE_COUNT; p++) {
        long u = units * (p + 1);
        FB_TRY(prof_phase_begin(pc, (prof_phase)p));
        if (p == PROF_PHASE_FORWARD || p == PROF_PHASE_BACKWARD) {
            prof_overlay ov = p == PROF_PHASE_FORWARD ? PROF_OVERLAY_FUSION_FORWARD : PROF_OVERLAY_FUSION_BACKWARD;
            work(u / 2);
            FB_TRY(prof_overlay_enter(pc, ov));
            work(u - u / 2);
            FB_TRY(prof_overlay_leave(pc, ov));
        } else {
            work(u);
        }
        if (phase_sde[p] >= 0) {
            long long flops = (long long)u * FLOPS_PER_UNIT * threads;
            fb_sde_add((fb_sde_counter)phase_sde[p], flops);
            expected[p] += flops;
        }
    }
    return prof_phase_end(pc);
}

// Runs `steps` steps of every phase (and both overlays) and prints the table; then checks the SDE
// FLOP counters, read through PAPI, against what the workload added. 0, or 1 on a failure.
static int run_workload(const char *events, int threads, long units, int steps) {
    prof_counters *pc;
    if (prof_counters_create(&pc, events, threads) != FB_OK) {
        fprintf(stderr, PROG ": %s\n", fb_last_error());
        return 1;
    }
    printf("\n# %s\n", prof_counters_statement(pc));
    printf("# PAPI reports %d hardware counters for the CPU component; usable here: %s\n",
           prof_counters_hw_counters(pc), prof_counters_hw_usable(pc) ? "yes" : "no");
    print_events(pc);

    // The SDE counters through PAPI: an event set of our own, as any PAPI tool would read them.
    int sde_set = PAPI_NULL, sde_n = 0, sde_idx[PROF_PHASE_COUNT];
    long long sde_papi[PROF_PHASE_COUNT] = { 0 }, expected[PROF_PHASE_COUNT] = { 0 };
    int64_t before[FB_SDE_COUNT], after[FB_SDE_COUNT];
    if (PAPI_create_eventset(&sde_set) == PAPI_OK) {
        for (int p = 0; p < PROF_PHASE_COUNT; p++) {
            char name[128];
            sde_idx[p] = -1;
            if (phase_sde[p] < 0) continue;
            snprintf(name, sizeof name, FB_SDE_PAPI_PREFIX "%s", fb_sde_name(phase_sde[p]));
            if (PAPI_add_named_event(sde_set, name) == PAPI_OK) sde_idx[p] = sde_n++;
        }
        if (sde_n == 0 || PAPI_start(sde_set) != PAPI_OK) sde_n = 0;
    }
    // One untimed step first (threads created, pages touched), as every benchmark here warms up.
    fb_status st = run_step(pc, units, threads, expected);
    if (st == FB_OK) st = prof_counters_reset(pc);
    memset(expected, 0, sizeof expected);
    fb_sde_read(before);
    if (sde_n && PAPI_reset(sde_set) != PAPI_OK) sde_n = 0;
    for (int s = 0; s < steps && st == FB_OK; s++) st = run_step(pc, units, threads, expected);
    if (st != FB_OK) {
        fprintf(stderr, PROG ": boundary failed: %s\n", fb_last_error());
        prof_counters_destroy(pc);
        return 1;
    }
    fb_sde_read(after);
    if (sde_n) {
        long long v[PROF_PHASE_COUNT];
        if (PAPI_stop(sde_set, v) == PAPI_OK)
            for (int p = 0; p < PROF_PHASE_COUNT; p++) sde_papi[p] = sde_idx[p] >= 0 ? v[sde_idx[p]] : 0;
        PAPI_cleanup_eventset(sde_set);
    }
    if (sde_set != PAPI_NULL) PAPI_destroy_eventset(&sde_set);
    print_table(pc, units);
    if (prof_counters_restarts(pc))
        printf("# %d thread(s) were found on a new OS thread and restarted counting\n", prof_counters_restarts(pc));
    prof_counters_destroy(pc);

    int ok = 1;
    printf("\n# SDE counters (workload FLOPs), read through PAPI as %s<name> and locally:\n", FB_SDE_PAPI_PREFIX);
    printf("%-18s %16s %16s %16s %s\n", "counter", "expected", "papi", "local", "check");
    for (int p = 0; p < PROF_PHASE_COUNT; p++) {
        if (phase_sde[p] < 0) continue;
        fb_sde_counter c = (fb_sde_counter)phase_sde[p];
        long long local = after[c] - before[c];
        int good = local == expected[p] && (!sde_n || sde_papi[p] == expected[p]);
        ok &= good;
        char via_papi[32] = "n/a";
        if (sde_n) snprintf(via_papi, sizeof via_papi, "%lld", sde_papi[p]);
        printf("%-18s %16lld %16s %16lld %s\n", fb_sde_name(c), expected[p], via_papi, local, good ? "PASSED" : "FAILED");
    }
    if (!sde_n) printf("# the sde component could not read fusebench's counters (see the component lines above)\n");
    return ok ? 0 : 1;
}

// ---- Boundary cost ----

typedef struct { double median_ns, p90_ns; int n; } cost;

static void pause_ns(long ns) {
    struct timespec ts = { 0, ns };
    nanosleep(&ts, NULL);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// n single boundaries (phase after phase), each timed alone; before each either a trivial parallel
// region (hot) or a serial pause (cold). 0, or 1 on a failure.
static int measure(const char *events, int threads, int n, int cold, cost *out) {
    prof_counters *pc;
    if (prof_counters_create(&pc, events, threads) != FB_OK) {
        fprintf(stderr, PROG ": %s\n", fb_last_error());
        return 1;
    }
    double *t = malloc((size_t)n * sizeof *t);
    if (!t) { prof_counters_destroy(pc); fprintf(stderr, PROG ": out of memory\n"); return 1; }
    fb_status st = FB_OK;
    for (int i = 0; i < n && st == FB_OK; i++) {
        if (cold) pause_ns(COLD_SLEEP_NS);
        else work(1);
        double t0 = fb_now();
        st = prof_phase_begin(pc, (prof_phase)(i % PROF_PHASE_COUNT));
        t[i] = fb_now() - t0;
    }
    if (st == FB_OK) st = prof_phase_end(pc);
    if (st != FB_OK) fprintf(stderr, PROG ": boundary failed: %s\n", fb_last_error());
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    out->n = n;
    out->median_ns = (n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2])) * 1e9;
    out->p90_ns = t[(int)(0.9 * (n - 1))] * 1e9;
    free(t);
    prof_counters_destroy(pc);
    return st == FB_OK ? 0 : 1;
}

static int run_costs(const char *events, int threads, int n) {
    struct { const char *label, *events; int cold; } runs[] = {
        { "requested events, hot", events, 0 },
        { "requested events, cold", events, 1 },
        { "timers only, hot", "none", 0 },
        { "timers only, cold", "none", 1 },
    };
    printf("\n# cost of one boundary (prof_phase_begin from phase to phase), %d thread%s; hot: a parallel region\n"
           "# just ended; cold: after %.0f ms of serial work (workers asleep)\n",
           threads, threads > 1 ? "s" : "", COLD_SLEEP_NS / 1e6);
    printf("%-26s %8s %10s %10s %12s\n", "case", "n", "median_ns", "p90_ns", "step_us");
    double median[2] = { 0, 0 };   // requested events: hot, cold
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        // Cold boundaries sleep 2 ms each: a tenth as many keeps the run short.
        int nk = runs[k].cold ? (n / 10 > 10 ? n / 10 : 10) : n;
        cost c;
        prof_counters *probe;
        if (prof_counters_create(&probe, runs[k].events, threads) != FB_OK) {
            fprintf(stderr, PROG ": %s\n", fb_last_error());
            return 1;
        }
        int counting = prof_counters_n_available(probe) > 0;
        prof_counters_destroy(probe);
        if (measure(runs[k].events, threads, nk, runs[k].cold, &c) != 0) return 1;
        printf("%-26s %8d %10.0f %10.0f %12.2f\n", runs[k].label, c.n, c.median_ns, c.p90_ns,
               c.median_ns * STEP_BOUNDARIES / 1e3);
        printf("FOM counters boundary mode=%s state=%s threads=%d median_ns=%.0f p90_ns=%.0f\n",
               counting ? "counting" : "timers", runs[k].cold ? "cold" : "hot", threads, c.median_ns, c.p90_ns);
        if (k < 2) median[k] = c.median_ns;
    }
    printf("# a step has about %d boundaries (5 phases, one fusion forward and one fusion backward call);\n"
           "# with the requested events that is %.1f us (hot) to %.1f us (cold) per step, within 3%% of\n"
           "# steps of %.2f ms to %.2f ms or longer\n", STEP_BOUNDARIES, median[0] * STEP_BOUNDARIES / 1e3,
           median[1] * STEP_BOUNDARIES / 1e3, median[0] * STEP_BOUNDARIES / 0.03 / 1e6,
           median[1] * STEP_BOUNDARIES / 0.03 / 1e6);
    return 0;
}

// ---- Options and main ----

static void print_help(const fb_option *opts, int nopts) {
    printf("usage: fusebench counters [options]\n\n"
           "Reports what PAPI can count on this machine and what fusebench's profiling costs:\n"
           "  - the PAPI version and every component's status (perf_event: CPU counters; sde:\n"
           "    fusebench's own software-defined events, sde:::fusebench::NAME);\n"
           "  - each requested event: available or not, and PAPI's reason (with the component's\n"
           "    disabled reason, and why the CPU counters cannot be opened when they cannot);\n"
           "  - a known workload (every phase runs (k+1) x --work FMA units per thread, the fusion\n"
           "    overlays half of their phase's) for --steps steps: per-thread per-phase counts, real\n"
           "    time and per-thread CPU (virtual) time; the SDE FLOP counters read back through PAPI\n"
           "    and checked against the FLOPs the workload added;\n"
           "  - the cost of one phase boundary: median and 90th percentile over --boundaries\n"
           "    boundaries, with the requested events and with timers only, threads hot and cold.\n"
           "Greppable lines:\n"
           "  FOM counters boundary mode=counting|timers state=hot|cold threads=T median_ns=N p90_ns=N\n"
           "Exit status: 0 ok, 1 a boundary or the SDE check failed, 2 usage error.\n\n"
           "options:\n");
    fb_cli_print_options(stdout, opts, nopts);
    printf("\nEvent names are PAPI presets (PAPI_TOT_INS) or native names (perf::TASK-CLOCK,\n"
           "sde:::fusebench::flops_forward); `papi_avail` and `papi_native_avail` list them.\n"
           "Examples:\n"
           "  bench/fusebench counters\n"
           "  bench/fusebench counters --events PAPI_TOT_INS,perf::TASK-CLOCK --threads 2\n"
           "  bench/fusebench counters --events none --boundaries 10000\n");
}

int bench_counters_main(int argc, char **argv) {
    const char *events = NULL;
    int threads = fb_physical_cores(), boundaries = 2000, work_units = 100000, steps = 3;
    if (threads < 1) threads = 1;
    const fb_option opts[] = {
        { "events", FB_OPT_STRING, &events, "LIST",
          "comma-separated PAPI events, or 'none' for timers only\n[default: " PROF_DEFAULT_EVENTS
          ",\nPAPI_SP_OPS or else PAPI_FP_OPS]", 1, 0, 0 },
        { "threads", FB_OPT_INT, &threads, "N", "OpenMP threads (one event set each)", 1, PROF_MAX_THREADS, 0 },
        { "work", FB_OPT_INT, &work_units, "N", "FMA units (64 FMAs) per thread in the first phase", 1, 1 << 30, 0 },
        { "steps", FB_OPT_INT, &steps, "N", "steps of the workload (every phase once per step)", 1, 100000, 0 },
        { "boundaries", FB_OPT_INT, &boundaries, "N", "boundaries timed per hot case (cold cases: a tenth)", 10,
          10000000, 0 },
    };
    const int nopts = (int)(sizeof opts / sizeof opts[0]);
    fb_cli_result r = fb_cli_parse(PROG, opts, nopts, argc, argv, 1);
    if (r == FB_CLI_HELP) { print_help(opts, nopts); return FB_EXIT_OK; }
    if (r == FB_CLI_ERROR) return FB_EXIT_USAGE;

    fb_set_threads(threads);
    if (prof_papi_init() != FB_OK || fb_sde_init() != FB_OK) {
        fprintf(stderr, PROG ": %s\n", fb_last_error());
        return FB_EXIT_FAIL;
    }
    // A bad event list (too many names, a name too long) is a usage error: found before any output.
    prof_counters *probe;
    fb_status st = prof_counters_create(&probe, events, threads);
    if (st != FB_OK) {
        fprintf(stderr, PROG ": --events: %s\n", fb_last_error());
        return st == FB_ERR_CONFIG ? FB_EXIT_USAGE : FB_EXIT_FAIL;
    }
    prof_counters_destroy(probe);
    printf("# %s\n", fb_cli_command_line());
    print_components();
    int rc = run_workload(events, threads, work_units, steps);
    if (run_costs(events, threads, boundaries) != 0) rc = 1;
    printf("\n%s\n", rc == 0 ? "PASSED" : "FAILED");
    return rc ? FB_EXIT_FAIL : FB_EXIT_OK;
}
