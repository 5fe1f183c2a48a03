// PAPI counters per OpenMP thread and per training phase, for the harness (which gathers them
// across ranks and writes them to HDF5). No MPI, no files: plain arrays out.
//
// What is counted. A list of PAPI events (presets or native names; default below) is counted on
// every OpenMP thread of the caller's team, each thread with its own event set, and attributed to
//   phases    forward, backward, loss, communication, optimizer: at most one runs at a time;
//   overlays  regions that nest inside a phase (one fusion-method call: fusion_forward,
//             fusion_backward); the enclosing phase keeps counting through them.
// Per phase and overlay it also keeps the real time (PAPI_get_real_nsec, read by the calling
// thread), every thread's virtual time (its CPU time: what PAPI_get_virt_nsec returns on that
// thread) and the number of completed intervals. Those timers are all there is when no event can
// be counted (no hardware counters on a VM): the boundaries then still work, at a lower cost.
//
// How (why it is cheap). Counters run continuously from create to destroy; nothing is started or
// stopped at a boundary. A boundary (phase begin/end, overlay enter/leave) reads every thread's
// event set once — in a short `#pragma omp parallel` region, since a PAPI event set can only be
// read by the thread that owns it — and adds the difference since that thread's previous read to
// the phase that just ended; an overlay adds the difference between its enter and its leave
// reads. With one thread, or with no event to count, there is no parallel region: the caller
// reads everything itself (other threads' CPU clocks through pthread_getcpuclockid).
// profiling/README.md gives the measured cost of one boundary.
//
// OpenMP threads and OS threads. libgomp keeps its worker threads between parallel regions, so
// OpenMP thread t is the same OS thread (and its event set stays attached) — as long as no
// parallel region in between runs with fewer threads than the team here but more than one: a
// shrinking team makes libgomp end the surplus threads (OpenBLAS does this for small SGEMMs on
// large machines). Every boundary checks each thread's OS thread id; a thread found on a new OS
// thread gets a new event set and starts from zero there (what the old thread counted since the
// last boundary is lost) and prof_counters_restarts() counts it. With timers only, the caller
// reads the threads' CPU clocks without entering a parallel region, so a replacement shows when
// the ended thread's clock can no longer be read.
//
// Rules: create, boundaries, reset and destroy are called from serial code, by the thread that
// created the object (FB_ERR_CONFIG otherwise) — never from inside an OpenMP region. A NULL
// prof_counters makes every boundary a no-op returning FB_OK, so callers need no `if (profiling)`.
#pragma once
#include <stdint.h>
#include "../kernels/common.h"

// Phases and overlays: one X(ID, "name") line each; adding a line adds the enum value, its name and
// its slot in every array below.
#define PROF_PHASE_LIST(X) \
    X(FORWARD, "forward") \
    X(BACKWARD, "backward") \
    X(LOSS, "loss") \
    X(COMM, "communication") \
    X(OPTIMIZER, "optimizer")

#define PROF_OVERLAY_LIST(X) \
    X(FUSION_FORWARD, "fusion_forward") \
    X(FUSION_BACKWARD, "fusion_backward")

typedef enum {
#define PROF_X_(id, name) PROF_PHASE_##id,
    PROF_PHASE_LIST(PROF_X_)
#undef PROF_X_
    PROF_PHASE_COUNT
} prof_phase;

typedef enum {
#define PROF_X_(id, name) PROF_OVERLAY_##id,
    PROF_OVERLAY_LIST(PROF_X_)
#undef PROF_X_
    PROF_OVERLAY_COUNT
} prof_overlay;

// Regions index every per-phase array: the phases first, then the overlays.
#define PROF_REGION_COUNT (PROF_PHASE_COUNT + PROF_OVERLAY_COUNT)
#define PROF_REGION_OF_OVERLAY(ov) (PROF_PHASE_COUNT + (int)(ov))

#define PROF_MAX_EVENTS 16
#define PROF_MAX_THREADS 1024
// Used when `events` is NULL. The FLOP event is chosen at create time: PAPI_SP_OPS if present, else
// PAPI_FP_OPS, else PAPI_SP_OPS (so the file records it as unavailable).
#define PROF_DEFAULT_EVENTS "PAPI_TOT_INS,PAPI_TOT_CYC,PAPI_L1_DCM,PAPI_L2_DCM,PAPI_L3_TCM"

const char *prof_phase_name(prof_phase ph);
const char *prof_overlay_name(prof_overlay ov);
const char *prof_region_name(int region);   // "forward", ..., "fusion_forward", ...; "?" out of range

typedef struct prof_counters prof_counters;

// PAPI_library_init and PAPI_thread_init, once per process (later calls return the first
// outcome). prof_counters_create calls it; call it yourself before using PAPI directly.
fb_status prof_papi_init(void);
// The PAPI library's version as "7.0.0.0" (after prof_papi_init; "unknown" before).
const char *prof_papi_version(void);
// One line per PAPI component, e.g. "perf_event: enabled, 160 native events, 6 counters" or
// "sde: disabled: libsde API not found. No SDEs exist in this executable." Returns the number of
// components, or -1 (buf "") when cid is out of range or PAPI is not initialised.
int prof_papi_component_status(int cid, char *buf, size_t size);

// Creates the counters for a team of n_threads OpenMP threads (the caller is thread 0).
// `events`: comma-separated PAPI event names (presets or native, spaces allowed); NULL for the
// defaults above; "" or "none" for timers only. Each event is added to each thread's event set on
// its own: one that is missing or conflicts with those before it is recorded as unavailable with
// PAPI's reason (and its component's disabled reason, and for CPU events why this machine has no
// hardware counters), and the others go on. Errors: FB_ERR_CONFIG (n_threads outside
// 1..PROF_MAX_THREADS, more than PROF_MAX_EVENTS names, a name longer than 127 characters, called
// inside a parallel region), FB_ERR_ALLOC, FB_ERR_INTERNAL (PAPI could not be initialised).
fb_status prof_counters_create(prof_counters **pc, const char *events, int n_threads);
void prof_counters_destroy(prof_counters *pc);
// Zeroes every value, time and call count. FB_ERR_CONFIG while a phase or overlay is running.
fb_status prof_counters_reset(prof_counters *pc);

// ---- Boundaries (serial code, the creating thread) ----
// Begins `ph`; a running phase ends at the same read (back-to-back phases cost one boundary each).
fb_status prof_phase_begin(prof_counters *pc, prof_phase ph);
// Ends the running phase (FB_ERR_CONFIG when none runs). Until the next begin nothing is attributed.
fb_status prof_phase_end(prof_counters *pc);
// Enters / leaves an overlay (FB_ERR_CONFIG when already entered / not entered). Overlays may nest
// in one another and outlive a phase change; their counts are their own enter→leave differences.
fb_status prof_overlay_enter(prof_counters *pc, prof_overlay ov);
fb_status prof_overlay_leave(prof_counters *pc, prof_overlay ov);

// ---- Results (completed intervals only: read them with no phase running for totals) ----
int prof_counters_threads(const prof_counters *pc);
int prof_counters_events(const prof_counters *pc);                       // requested events, E
const char *prof_counters_event_name(const prof_counters *pc, int e);
// Per event: 1 when counted on every thread, else 0 and a reason ("" when available).
const int *prof_counters_available(const prof_counters *pc);             // [E]
const char *prof_counters_event_reason(const prof_counters *pc, int e);
int prof_counters_n_available(const prof_counters *pc);
// values[t][r][e]: counts of event e on thread t in region r (0 for unavailable events).
const int64_t *prof_counters_values(const prof_counters *pc);            // [T][PROF_REGION_COUNT][E]
const int64_t *prof_counters_real_ns(const prof_counters *pc);           // [PROF_REGION_COUNT]
const int64_t *prof_counters_virt_ns(const prof_counters *pc);           // [T][PROF_REGION_COUNT]
const int64_t *prof_counters_calls(const prof_counters *pc);             // [PROF_REGION_COUNT]
int64_t prof_counters_boundaries(const prof_counters *pc);   // boundaries since create / reset
int prof_counters_restarts(const prof_counters *pc);         // threads found on a new OS thread
// Counters PAPI reports for the CPU component (perf_event) — its PMU model's, which a VM need not
// provide — and whether a hardware counter can actually be opened here.
int prof_counters_hw_counters(const prof_counters *pc);
int prof_counters_hw_usable(const prof_counters *pc);
// Why no hardware counter can be opened ("" when one can).
const char *prof_counters_hw_reason(const prof_counters *pc);
// One line for people, e.g. "no hardware counters on this machine (perf_event: ...): timings from
// PAPI real/virtual clocks only".
const char *prof_counters_statement(const prof_counters *pc);
