// PAPI counters per OpenMP thread and per phase: see counters.h for the model and the rules.
#include "counters.h"
#include <errno.h>
#include <stdarg.h>
#include <omp.h>
#include <papi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/perf_event.h>
#include <sys/syscall.h>
#endif

#define NAME_MAX_ PAPI_MAX_STR_LEN   // 128, PAPI's own limit on event names
// Room for a component's disabled reason (PAPI_HUGE_STR_LEN) and our words around it.
#define REASON_MAX (PAPI_HUGE_STR_LEN + 512)

static const char *const phase_names[] = {
#define PROF_X_(id, name) name,
    PROF_PHASE_LIST(PROF_X_)
#undef PROF_X_
};
static const char *const overlay_names[] = {
#define PROF_X_(id, name) name,
    PROF_OVERLAY_LIST(PROF_X_)
#undef PROF_X_
};
_Static_assert(sizeof phase_names / sizeof phase_names[0] == PROF_PHASE_COUNT, "phase names out of step");
_Static_assert(sizeof overlay_names / sizeof overlay_names[0] == PROF_OVERLAY_COUNT, "overlay names out of step");
// Open overlays are a bit mask.
_Static_assert(PROF_OVERLAY_COUNT <= 32, "overlay mask is 32 bits");

const char *prof_phase_name(prof_phase ph) {
    return (int)ph >= 0 && ph < PROF_PHASE_COUNT ? phase_names[ph] : "?";
}
const char *prof_overlay_name(prof_overlay ov) {
    return (int)ov >= 0 && ov < PROF_OVERLAY_COUNT ? overlay_names[ov] : "?";
}
const char *prof_region_name(int r) {
    if (r >= 0 && r < PROF_PHASE_COUNT) return phase_names[r];
    if (r >= PROF_PHASE_COUNT && r < PROF_REGION_COUNT) return overlay_names[r - PROF_PHASE_COUNT];
    return "?";
}

// ---- PAPI initialisation (once per process) ----

// The OS thread id, cached per thread: PAPI calls its thread-id function on every read, and a
// pthread_t would not do (glibc reuses a dead thread's pthread_t for the next one, and libgomp
// does replace threads: see counters.h). omp_get_thread_num() would not do either: it is 0 on
// every thread outside a team (MPI's, HDF5's), which PAPI would then confuse with the master.
static _Thread_local pid_t tls_tid;
static pid_t my_tid(void) {
    if (!tls_tid) tls_tid = gettid();
    return tls_tid;
}
static unsigned long papi_thread_id(void) { return (unsigned long)my_tid(); }

static pthread_once_t papi_once = PTHREAD_ONCE_INIT;
static fb_status papi_init_status = FB_ERR_INTERNAL;
static char papi_init_error[256];
static char papi_version[32] = "unknown";

static void papi_init_once(void) {
    int rc = PAPI_is_initialized() ? (int)PAPI_VER_CURRENT : PAPI_library_init(PAPI_VER_CURRENT);
    if (rc != PAPI_VER_CURRENT) {
        snprintf(papi_init_error, sizeof papi_init_error, "PAPI_library_init: %s",
                 rc > 0 ? "library version differs from papi.h" : PAPI_strerror(rc));
        return;
    }
    rc = PAPI_thread_init(papi_thread_id);
    if (rc != PAPI_OK) {
        snprintf(papi_init_error, sizeof papi_init_error, "PAPI_thread_init: %s", PAPI_strerror(rc));
        return;
    }
    int v = PAPI_get_opt(PAPI_LIB_VERSION, NULL);
    snprintf(papi_version, sizeof papi_version, "%d.%d.%d.%d", PAPI_VERSION_MAJOR(v), PAPI_VERSION_MINOR(v),
             PAPI_VERSION_REVISION(v), PAPI_VERSION_INCREMENT(v));
    papi_init_status = FB_OK;
}

fb_status prof_papi_init(void) {
    pthread_once(&papi_once, papi_init_once);
    if (papi_init_status != FB_OK) return fb_fail(papi_init_status, "%s", papi_init_error);
    return FB_OK;
}

const char *prof_papi_version(void) { return papi_version; }

int prof_papi_component_status(int cid, char *buf, size_t size) {
    if (size) buf[0] = '\0';
    int n = PAPI_is_initialized() ? PAPI_num_components() : 0;
    const PAPI_component_info_t *ci = cid >= 0 && cid < n ? PAPI_get_component_info(cid) : NULL;
    if (!ci) return -1;
    if (ci->disabled)
        snprintf(buf, size, "%s: disabled: %s", ci->name, ci->disabled_reason);
    else
        snprintf(buf, size, "%s: enabled, %d native events, %d counters", ci->name, ci->num_native_events,
                 ci->num_cntrs);
    return n;
}

// ---- State ----

typedef enum { STEP_NONE, STEP_CREATE, STEP_ADD, STEP_START, STEP_READ } papi_step;
static const char *const step_names[] = { "", "PAPI_create_eventset", "PAPI_add_named_event", "PAPI_start",
                                          "PAPI_read" };

// One thread's state, on its own cache lines: each thread writes only its own during a boundary.
typedef struct {
    _Alignas(64) int eventset;              // PAPI_NULL when this thread counts nothing
    int nset;                               // events in the set
    int pos[PROF_MAX_EVENTS];               // requested event -> position in the set, -1 not in it
    int add_err[PROF_MAX_EVENTS];           // PAPI error of adding (or starting) it, 0 when fine
    papi_step add_step[PROF_MAX_EVENTS];
    pid_t tid;                              // OS thread that owns the event set
    clockid_t cpu_clock;                    // its CPU-time clock (read by the caller in timer mode)
    long long last[PROF_MAX_EVENTS];        // by position in the set, at the last boundary
    long long last_virt;
    long long ov_start[PROF_OVERLAY_COUNT][PROF_MAX_EVENTS];
    long long ov_virt_start[PROF_OVERLAY_COUNT];
    int err;                                // PAPI error of the last boundary, 0 when fine
    papi_step err_step;
    int restarted;                          // found on a new OS thread at the last boundary
} thread_state;

struct prof_counters {
    int n_threads, n_events, n_available;
    int counting;                           // some event is available: boundaries read event sets
    pid_t owner;                            // the creating thread
    char names[PROF_MAX_EVENTS][NAME_MAX_];
    int available[PROF_MAX_EVENTS];
    char reason[PROF_MAX_EVENTS][REASON_MAX];
    int phase;                              // running phase, -1 none
    uint32_t ov_open;                       // bit per overlay
    long long last_real, ov_real_start[PROF_OVERLAY_COUNT];
    int64_t *values;                        // [T][R][E]
    int64_t *virt_ns;                       // [T][R]
    int64_t real_ns[PROF_REGION_COUNT], calls[PROF_REGION_COUNT];
    int64_t boundaries;
    int restarts;
    int hw_counters, hw_usable;
    char hw_reason[REASON_MAX];
    char statement[2 * REASON_MAX];
    thread_state *ts;                       // [T]
};

// What one boundary does: the counts since the last boundary go to `phase` (-1: nowhere), whose
// interval ends here when `phase_ends`; an overlay may be entered or left (-1: none).
typedef struct { int phase, phase_ends, ov_enter, ov_leave; } boundary_op;

// ---- Running a function on every thread of the team ----

typedef void (*thread_fn)(prof_counters *pc, int t, const void *arg);

// Runs fn(pc, t, arg) on OpenMP thread t of a team of n_threads (on the caller alone when n is 1).
// Returns the team size OpenMP gave: n_threads unless OMP_DYNAMIC or a thread limit cut it.
static int on_every_thread(prof_counters *pc, thread_fn fn, const void *arg) {
    if (pc->n_threads == 1) {
        fn(pc, 0, arg);
        return 1;
    }
    int got = pc->n_threads;
#pragma omp parallel num_threads(pc->n_threads)
    {
        if (omp_get_num_threads() != pc->n_threads) {
#pragma omp single
            got = omp_get_num_threads();
        } else {
            fn(pc, omp_get_thread_num(), arg);
        }
    }
    return got;
}

static fb_status team_error(const prof_counters *pc, int got) {
    return fb_fail(FB_ERR_CONFIG,
                   "profiling: OpenMP gave a team of %d threads, not the %d the counters were created for "
                   "(OMP_DYNAMIC or OMP_THREAD_LIMIT?)", got, pc->n_threads);
}

// ---- Per-thread set-up and tear-down ----

static void destroy_set(thread_state *s) {
    if (s->eventset == PAPI_NULL) return;
    long long scratch[PROF_MAX_EVENTS];
    PAPI_stop(s->eventset, scratch);   // fails harmlessly when the set never started
    PAPI_cleanup_eventset(s->eventset);
    PAPI_destroy_eventset(&s->eventset);
    s->eventset = PAPI_NULL;
    s->nset = 0;
}

// Builds this thread's event set: every requested event when `arg` is NULL (create), only the
// available ones otherwise (a thread found on a new OS thread). Each event is added on its own,
// so one failure costs only that event. Then starts the set and takes the baseline read.
static void thread_setup(prof_counters *pc, int t, const void *arg) {
    thread_state *s = &pc->ts[t];
    const int only_available = arg != NULL;
    s->tid = my_tid();
    if (pthread_getcpuclockid(pthread_self(), &s->cpu_clock) != 0) s->cpu_clock = CLOCK_THREAD_CPUTIME_ID;
    s->eventset = PAPI_NULL;
    s->nset = 0;
    memset(s->last, 0, sizeof s->last);
    for (int e = 0; e < pc->n_events; e++) {
        s->pos[e] = -1;
        s->add_err[e] = 0;
        s->add_step[e] = STEP_NONE;
    }
    int wanted = 0;
    for (int e = 0; e < pc->n_events; e++) wanted += !only_available || pc->available[e];
    if (wanted) {
        int rc = PAPI_create_eventset(&s->eventset);
        if (rc != PAPI_OK) {
            s->eventset = PAPI_NULL;
            for (int e = 0; e < pc->n_events; e++) { s->add_err[e] = rc; s->add_step[e] = STEP_CREATE; }
        } else {
            for (int e = 0; e < pc->n_events; e++) {
                if (only_available && !pc->available[e]) continue;
                rc = PAPI_add_named_event(s->eventset, pc->names[e]);
                if (rc == PAPI_OK) s->pos[e] = s->nset++;
                else { s->add_err[e] = rc; s->add_step[e] = STEP_ADD; }
            }
            rc = s->nset ? PAPI_start(s->eventset) : PAPI_OK;
            if (rc == PAPI_OK && s->nset) rc = PAPI_read(s->eventset, s->last);
            if (rc != PAPI_OK) {
                for (int e = 0; e < pc->n_events; e++)
                    if (s->pos[e] >= 0) { s->pos[e] = -1; s->add_err[e] = rc; s->add_step[e] = STEP_START; }
                s->nset = 0;
            }
            if (s->nset == 0) destroy_set(s);
        }
    }
    s->last_virt = PAPI_get_virt_nsec();
    // Open overlays start over on this thread: their counts here begin now.
    for (int ov = 0; ov < PROF_OVERLAY_COUNT; ov++) {
        memcpy(s->ov_start[ov], s->last, sizeof s->last);
        s->ov_virt_start[ov] = s->last_virt;
    }
}

static void thread_teardown(prof_counters *pc, int t, const void *arg) {
    (void)arg;
    thread_state *s = &pc->ts[t];
    // A set whose thread ended cannot be destroyed from another thread; PAPI keeps it until exit.
    if (s->tid == my_tid()) destroy_set(s);
}

// ---- Accounting (one thread's share of a boundary) ----

static void account(prof_counters *pc, int t, const long long *cur, long long virt, const boundary_op *op) {
    thread_state *s = &pc->ts[t];
    const int E = pc->n_events;
    if (op->phase >= 0) {
        int64_t *v = pc->values + ((size_t)t * PROF_REGION_COUNT + (size_t)op->phase) * (size_t)E;
        for (int e = 0; e < E; e++)
            if (pc->available[e] && s->pos[e] >= 0) v[e] += cur[s->pos[e]] - s->last[s->pos[e]];
        pc->virt_ns[(size_t)t * PROF_REGION_COUNT + (size_t)op->phase] += virt - s->last_virt;
    }
    if (op->ov_leave >= 0) {
        int r = PROF_REGION_OF_OVERLAY(op->ov_leave);
        int64_t *v = pc->values + ((size_t)t * PROF_REGION_COUNT + (size_t)r) * (size_t)E;
        for (int e = 0; e < E; e++)
            if (pc->available[e] && s->pos[e] >= 0) v[e] += cur[s->pos[e]] - s->ov_start[op->ov_leave][s->pos[e]];
        pc->virt_ns[(size_t)t * PROF_REGION_COUNT + (size_t)r] += virt - s->ov_virt_start[op->ov_leave];
    }
    if (op->ov_enter >= 0) {
        if (s->nset) memcpy(s->ov_start[op->ov_enter], cur, (size_t)s->nset * sizeof *cur);
        s->ov_virt_start[op->ov_enter] = virt;
    }
    if (s->nset) memcpy(s->last, cur, (size_t)s->nset * sizeof *cur);
    s->last_virt = virt;
}

// Counting mode: each thread reads its own event set.
static void thread_boundary(prof_counters *pc, int t, const void *arg) {
    thread_state *s = &pc->ts[t];
    s->err = 0;
    s->restarted = 0;
    if (s->tid != my_tid()) {
        // libgomp replaced this thread (a smaller team ended it): count on the new one from now.
        static const int only_available = 1;
        thread_setup(pc, t, &only_available);
        s->restarted = 1;
        for (int e = 0; e < pc->n_events; e++)
            if (pc->available[e] && s->pos[e] < 0) { s->err = s->add_err[e]; s->err_step = s->add_step[e]; }
    }
    long long cur[PROF_MAX_EVENTS];
    if (s->nset) {
        int rc = PAPI_read(s->eventset, cur);
        if (rc != PAPI_OK) { s->err = rc; s->err_step = STEP_READ; return; }
    }
    account(pc, t, cur, PAPI_get_virt_nsec(), (const boundary_op *)arg);
}

// Timer mode, after a thread's CPU clock could not be read (its thread ended): every thread
// records its current OS thread and restarts its virtual-time baseline.
static void thread_refresh(prof_counters *pc, int t, const void *arg) {
    (void)arg;
    thread_state *s = &pc->ts[t];
    s->restarted = s->tid != my_tid();
    if (s->restarted) {
        s->tid = my_tid();
        if (pthread_getcpuclockid(pthread_self(), &s->cpu_clock) != 0) s->cpu_clock = CLOCK_THREAD_CPUTIME_ID;
        s->last_virt = PAPI_get_virt_nsec();
        for (int ov = 0; ov < PROF_OVERLAY_COUNT; ov++) s->ov_virt_start[ov] = s->last_virt;
    }
}

// Timer mode: the caller reads every thread's CPU clock (no parallel region, no waking anyone).
// Returns -1 when some thread's clock cannot be read.
static int read_cpu_clocks(const prof_counters *pc, long long *virt) {
    virt[0] = PAPI_get_virt_nsec();
    for (int t = 1; t < pc->n_threads; t++) {
        struct timespec ts;
        if (clock_gettime(pc->ts[t].cpu_clock, &ts) != 0) return -1;
        virt[t] = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }
    return 0;
}

// ---- One boundary ----

static fb_status check_caller(const prof_counters *pc) {
    FB_REQUIRE(!omp_in_parallel(), FB_ERR_CONFIG, "profiling boundaries are called from serial code, not inside a "
               "parallel region");
    FB_REQUIRE(my_tid() == pc->owner, FB_ERR_CONFIG, "profiling boundaries are called by the thread that created "
               "the counters");
    return FB_OK;
}

static fb_status boundary(prof_counters *pc, boundary_op op) {
    long long real = PAPI_get_real_nsec();
    fb_status st = FB_OK;
    if (pc->counting) {
        int got = on_every_thread(pc, thread_boundary, &op);
        if (got != pc->n_threads) return team_error(pc, got);
        for (int t = 0; t < pc->n_threads; t++) {
            const thread_state *s = &pc->ts[t];
            pc->restarts += s->restarted;
            if (s->err && st == FB_OK)
                st = fb_fail(FB_ERR_INTERNAL, "profiling: thread %d%s: %s: %s", t,
                             s->restarted ? " (on a new OS thread)" : "", step_names[s->err_step], PAPI_strerror(s->err));
        }
    } else {
        long long virt[PROF_MAX_THREADS];
        if (read_cpu_clocks(pc, virt) != 0) {
            int got = on_every_thread(pc, thread_refresh, NULL);
            if (got != pc->n_threads) return team_error(pc, got);
            for (int t = 0; t < pc->n_threads; t++) pc->restarts += pc->ts[t].restarted;
            if (read_cpu_clocks(pc, virt) != 0)
                return fb_fail(FB_ERR_INTERNAL, "profiling: a thread's CPU clock cannot be read: %s", strerror(errno));
        }
        for (int t = 0; t < pc->n_threads; t++) account(pc, t, NULL, virt[t], &op);
    }
    if (op.phase >= 0) {
        pc->real_ns[op.phase] += real - pc->last_real;
        pc->calls[op.phase] += op.phase_ends;
    }
    if (op.ov_leave >= 0) {
        int r = PROF_REGION_OF_OVERLAY(op.ov_leave);
        pc->real_ns[r] += real - pc->ov_real_start[op.ov_leave];
        pc->calls[r]++;
    }
    if (op.ov_enter >= 0) pc->ov_real_start[op.ov_enter] = real;
    pc->last_real = real;
    pc->boundaries++;
    return st;
}

fb_status prof_phase_begin(prof_counters *pc, prof_phase ph) {
    if (!pc) return FB_OK;
    FB_TRY(check_caller(pc));
    FB_REQUIRE((int)ph >= 0 && ph < PROF_PHASE_COUNT, FB_ERR_CONFIG, "profiling: phase %d out of range", (int)ph);
    fb_status st = boundary(pc, (boundary_op){ pc->phase, 1, -1, -1 });
    pc->phase = ph;
    return st;
}

fb_status prof_phase_end(prof_counters *pc) {
    if (!pc) return FB_OK;
    FB_TRY(check_caller(pc));
    FB_REQUIRE(pc->phase >= 0, FB_ERR_CONFIG, "profiling: prof_phase_end with no phase running");
    fb_status st = boundary(pc, (boundary_op){ pc->phase, 1, -1, -1 });
    pc->phase = -1;
    return st;
}

fb_status prof_overlay_enter(prof_counters *pc, prof_overlay ov) {
    if (!pc) return FB_OK;
    FB_TRY(check_caller(pc));
    FB_REQUIRE((int)ov >= 0 && ov < PROF_OVERLAY_COUNT, FB_ERR_CONFIG, "profiling: overlay %d out of range", (int)ov);
    FB_REQUIRE(!(pc->ov_open & (1u << ov)), FB_ERR_CONFIG, "profiling: overlay %s entered twice", overlay_names[ov]);
    fb_status st = boundary(pc, (boundary_op){ pc->phase, 0, (int)ov, -1 });
    pc->ov_open |= 1u << ov;
    return st;
}

fb_status prof_overlay_leave(prof_counters *pc, prof_overlay ov) {
    if (!pc) return FB_OK;
    FB_TRY(check_caller(pc));
    FB_REQUIRE((int)ov >= 0 && ov < PROF_OVERLAY_COUNT, FB_ERR_CONFIG, "profiling: overlay %d out of range", (int)ov);
    FB_REQUIRE(pc->ov_open & (1u << ov), FB_ERR_CONFIG, "profiling: overlay %s left without being entered",
               overlay_names[ov]);
    fb_status st = boundary(pc, (boundary_op){ pc->phase, 0, -1, (int)ov });
    pc->ov_open &= ~(1u << ov);
    return st;
}

// ---- What this machine can count ----

// snprintf at buf + *n that never runs past size (a long reason is cut, not overrun).
__attribute__((format(printf, 4, 5))) static void appendf(char *buf, size_t size, size_t *n, const char *fmt, ...) {
    if (*n >= size) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *n, size - *n, fmt, ap);
    va_end(ap);
    if (k > 0) *n += (size_t)k;
}

// Whether the kernel lets this process open a hardware counter, and why not. PAPI's own answer is
// not enough: it reports the counters of the PMU model libpfm4 recognises from CPUID (6 on a
// Zen 4) even inside a VM whose kernel offers no PMU at all.
static void probe_hardware(prof_counters *pc) {
    int cid = PAPI_get_component_index("perf_event");
    const PAPI_component_info_t *ci = cid >= 0 ? PAPI_get_component_info(cid) : NULL;
    pc->hw_counters = ci ? ci->num_cntrs : 0;
    pc->hw_usable = 0;
    if (!ci) { snprintf(pc->hw_reason, sizeof pc->hw_reason, "PAPI was built without the perf_event component"); return; }
    if (ci->disabled) { snprintf(pc->hw_reason, sizeof pc->hw_reason, "component disabled: %s", ci->disabled_reason); return; }
#ifdef __linux__
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = PERF_TYPE_HARDWARE;
    a.config = PERF_COUNT_HW_INSTRUCTIONS;
    a.disabled = 1;
    a.exclude_kernel = 1;
    a.exclude_hv = 1;
    long fd = syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
    if (fd >= 0) {
        close((int)fd);
        pc->hw_usable = 1;
        pc->hw_reason[0] = '\0';
        return;
    }
    int err = errno;
    const char *why = err == ENOENT || err == ENODEV || err == EOPNOTSUPP
                          ? "the kernel exposes no CPU PMU (typical of a VM without PMU virtualisation)"
                      : err == EACCES || err == EPERM ? "not permitted (see /proc/sys/kernel/perf_event_paranoid)"
                                                      : "cannot open a hardware event";
    char pmu[64] = "";
    if (ci->pmu_names[0]) {
        for (int i = 0; i < PAPI_PMU_MAX && ci->pmu_names[i]; i++)
            if (strcmp(ci->pmu_names[i], "perf") && strcmp(ci->pmu_names[i], "perf_raw"))
                snprintf(pmu, sizeof pmu, " %s", ci->pmu_names[i]);
    }
    snprintf(pc->hw_reason, sizeof pc->hw_reason,
             "%s: perf_event_open(PERF_COUNT_HW_INSTRUCTIONS): %s; PAPI's %d counters are those of its%s model, "
             "not counters this kernel offers", why, strerror(err), pc->hw_counters, pmu[0] ? pmu : " CPU");
#else
    pc->hw_usable = PAPI_query_named_event("PAPI_TOT_INS") == PAPI_OK || PAPI_query_named_event("PAPI_TOT_CYC") == PAPI_OK;
    if (!pc->hw_usable) snprintf(pc->hw_reason, sizeof pc->hw_reason, "PAPI_TOT_INS and PAPI_TOT_CYC do not exist here");
#endif
}

// The component an event name belongs to: from its code when PAPI knows the name (*known = 1),
// else from the "component:::" prefix of a native name (so "sde:::x" in a program without libsde
// still gets the sde component's disabled reason). -1 when neither says.
static int event_component(const char *name, int *known) {
    int code;
    *known = PAPI_event_name_to_code(name, &code) == PAPI_OK;
    if (*known) return PAPI_get_event_component(code);
    const char *sep = strstr(name, ":::");
    if (!sep || sep == name || sep - name >= 64) return -1;
    char comp[64];
    memcpy(comp, name, (size_t)(sep - name));
    comp[sep - name] = '\0';
    int cid = PAPI_get_component_index(comp);
    return cid >= 0 ? cid : -1;
}

static void explain_unavailable(prof_counters *pc, int e, int t, int counted_elsewhere) {
    const thread_state *s = &pc->ts[t];
    char *r = pc->reason[e];
    size_t n = 0;
    if (counted_elsewhere) appendf(r, REASON_MAX, &n, "thread %d: ", t);
    appendf(r, REASON_MAX, &n, "%s: %s", step_names[s->add_step[e]], PAPI_strerror(s->add_err[e]));
    int known, cid = event_component(pc->names[e], &known);
    const PAPI_component_info_t *ci = cid >= 0 ? PAPI_get_component_info(cid) : NULL;
    if (!ci)
        appendf(r, REASON_MAX, &n, " (no PAPI component knows this name)");
    else if (ci->disabled)
        appendf(r, REASON_MAX, &n, " (component %s disabled: %s)", ci->name, ci->disabled_reason);
    else if (strcmp(ci->name, "perf_event") == 0 && !pc->hw_usable)
        appendf(r, REASON_MAX, &n, " (perf_event: %s)", pc->hw_reason);
    else if (!known)
        appendf(r, REASON_MAX, &n, " (component %s has no event of this name)", ci->name);
}

static void compose_statement(prof_counters *pc) {
    char *s = pc->statement;
    const size_t size = sizeof pc->statement;
    size_t n = 0;
    if (!pc->hw_usable)
        appendf(s, size, &n, "no hardware counters on this machine (perf_event: %s)", pc->hw_reason);
    else
        appendf(s, size, &n, "hardware counters available (%d in the CPU's PMU)", pc->hw_counters);
    if (pc->n_available == 0) {
        appendf(s, size, &n, ": timings from PAPI real/virtual clocks only");
        return;
    }
    appendf(s, size, &n, ": counting %d of %d requested events (", pc->n_available, pc->n_events);
    for (int e = 0, k = 0; e < pc->n_events; e++)
        if (pc->available[e]) appendf(s, size, &n, "%s%s", k++ ? ", " : "", pc->names[e]);
    appendf(s, size, &n, ") and timings from PAPI real/virtual clocks");
}

// ---- Create / reset / destroy ----

static fb_status parse_events(prof_counters *pc, const char *events) {
    char buf[PROF_MAX_EVENTS * NAME_MAX_ * 2];
    if (!events) {
        const char *flop = PAPI_query_named_event("PAPI_SP_OPS") == PAPI_OK   ? "PAPI_SP_OPS"
                           : PAPI_query_named_event("PAPI_FP_OPS") == PAPI_OK ? "PAPI_FP_OPS"
                                                                              : "PAPI_SP_OPS";
        snprintf(buf, sizeof buf, "%s,%s", PROF_DEFAULT_EVENTS, flop);
    } else {
        FB_REQUIRE(strlen(events) < sizeof buf, FB_ERR_CONFIG, "profiling: event list too long");
        snprintf(buf, sizeof buf, "%s", strcmp(events, "none") == 0 ? "" : events);
    }
    pc->n_events = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t') tok++;
        size_t len = strlen(tok);
        while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t')) tok[--len] = '\0';
        if (!len) continue;
        FB_REQUIRE(pc->n_events < PROF_MAX_EVENTS, FB_ERR_CONFIG, "profiling: more than %d events in '%s'",
                   PROF_MAX_EVENTS, events);
        FB_REQUIRE(len < NAME_MAX_, FB_ERR_CONFIG, "profiling: event name longer than %d characters: '%s'",
                   NAME_MAX_ - 1, tok);
        memcpy(pc->names[pc->n_events++], tok, len + 1);
    }
    return FB_OK;
}

fb_status prof_counters_create(prof_counters **out, const char *events, int n_threads) {
    FB_REQUIRE(out, FB_ERR_CONFIG, "profiling: NULL output pointer");
    *out = NULL;
    FB_REQUIRE(n_threads >= 1 && n_threads <= PROF_MAX_THREADS, FB_ERR_CONFIG,
               "profiling: %d threads (1 to %d)", n_threads, PROF_MAX_THREADS);
    FB_REQUIRE(!omp_in_parallel(), FB_ERR_CONFIG, "profiling: prof_counters_create inside a parallel region");
    FB_TRY(prof_papi_init());
    prof_counters *pc = calloc(1, sizeof *pc);
    FB_REQUIRE(pc, FB_ERR_ALLOC, "profiling: counters");
    fb_status st = parse_events(pc, events);
    if (st != FB_OK) { free(pc); return st; }
    pc->n_threads = n_threads;
    pc->owner = my_tid();
    pc->phase = -1;
    const size_t E = pc->n_events ? (size_t)pc->n_events : 1;
    pc->values = calloc((size_t)n_threads * PROF_REGION_COUNT * E, sizeof *pc->values);
    pc->virt_ns = calloc((size_t)n_threads * PROF_REGION_COUNT, sizeof *pc->virt_ns);
    pc->ts = aligned_alloc(64, (size_t)n_threads * sizeof *pc->ts);
    if (!pc->values || !pc->virt_ns || !pc->ts) {
        free(pc->values); free(pc->virt_ns); free(pc->ts); free(pc);
        return fb_fail(FB_ERR_ALLOC, "profiling: arrays for %d threads", n_threads);
    }
    memset(pc->ts, 0, (size_t)n_threads * sizeof *pc->ts);
    probe_hardware(pc);

    int got = on_every_thread(pc, thread_setup, NULL);
    if (got != n_threads) {
        st = team_error(pc, got);
        prof_counters_destroy(pc);
        return st;
    }
    // An event is available when every thread counts it; the reason is the first failure's.
    for (int e = 0; e < pc->n_events; e++) {
        int failed = -1, counted = 0;
        for (int t = 0; t < n_threads; t++) {
            if (pc->ts[t].pos[e] >= 0) counted = 1;
            else if (failed < 0) failed = t;
        }
        pc->available[e] = failed < 0;
        pc->n_available += pc->available[e];
        if (failed >= 0) explain_unavailable(pc, e, failed, counted);
    }
    pc->counting = pc->n_available > 0;
    // Nothing to count: drop the event sets so that boundaries need no parallel region.
    if (!pc->counting && pc->n_events && (got = on_every_thread(pc, thread_teardown, NULL)) != n_threads) {
        st = team_error(pc, got);
        prof_counters_destroy(pc);
        return st;
    }
    compose_statement(pc);
    pc->last_real = PAPI_get_real_nsec();
    *out = pc;
    return FB_OK;
}

fb_status prof_counters_reset(prof_counters *pc) {
    if (!pc) return FB_OK;
    FB_TRY(check_caller(pc));
    FB_REQUIRE(pc->phase < 0 && !pc->ov_open, FB_ERR_CONFIG, "profiling: reset while a phase or overlay runs");
    const size_t E = pc->n_events ? (size_t)pc->n_events : 1;
    memset(pc->values, 0, (size_t)pc->n_threads * PROF_REGION_COUNT * E * sizeof *pc->values);
    memset(pc->virt_ns, 0, (size_t)pc->n_threads * PROF_REGION_COUNT * sizeof *pc->virt_ns);
    memset(pc->real_ns, 0, sizeof pc->real_ns);
    memset(pc->calls, 0, sizeof pc->calls);
    pc->boundaries = 0;
    pc->restarts = 0;
    return FB_OK;
}

void prof_counters_destroy(prof_counters *pc) {
    if (!pc) return;
    // From a parallel region, or another thread, the sets cannot be reached: PAPI keeps them.
    if (pc->ts && !omp_in_parallel() && my_tid() == pc->owner) on_every_thread(pc, thread_teardown, NULL);
    free(pc->values);
    free(pc->virt_ns);
    free(pc->ts);
    free(pc);
}

// ---- Accessors ----

int prof_counters_threads(const prof_counters *pc) { return pc ? pc->n_threads : 0; }
int prof_counters_events(const prof_counters *pc) { return pc ? pc->n_events : 0; }
const char *prof_counters_event_name(const prof_counters *pc, int e) {
    return pc && e >= 0 && e < pc->n_events ? pc->names[e] : "";
}
const int *prof_counters_available(const prof_counters *pc) { return pc ? pc->available : NULL; }
const char *prof_counters_event_reason(const prof_counters *pc, int e) {
    return pc && e >= 0 && e < pc->n_events ? pc->reason[e] : "";
}
int prof_counters_n_available(const prof_counters *pc) { return pc ? pc->n_available : 0; }
const int64_t *prof_counters_values(const prof_counters *pc) { return pc ? pc->values : NULL; }
const int64_t *prof_counters_real_ns(const prof_counters *pc) { return pc ? pc->real_ns : NULL; }
const int64_t *prof_counters_virt_ns(const prof_counters *pc) { return pc ? pc->virt_ns : NULL; }
const int64_t *prof_counters_calls(const prof_counters *pc) { return pc ? pc->calls : NULL; }
int64_t prof_counters_boundaries(const prof_counters *pc) { return pc ? pc->boundaries : 0; }
int prof_counters_restarts(const prof_counters *pc) { return pc ? pc->restarts : 0; }
int prof_counters_hw_counters(const prof_counters *pc) { return pc ? pc->hw_counters : 0; }
int prof_counters_hw_usable(const prof_counters *pc) { return pc ? pc->hw_usable : 0; }
const char *prof_counters_hw_reason(const prof_counters *pc) { return pc ? pc->hw_reason : ""; }
const char *prof_counters_statement(const prof_counters *pc) { return pc ? pc->statement : ""; }
