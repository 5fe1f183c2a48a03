// The training run's instruments: PAPI counters per phase and per fusion-method call, fusebench's
// PAPI SDE counters, NormMonitor / FusionDiagnostics traces and the stability verdicts. The train
// loop (train.c) calls it at a few fixed points of a step; it knows no MPI and writes no file (the
// driver receives traces through train_sink and writes them).
//
// Who measures what. Counters and SDE counters run on every rank (gathered by the caller).
// Traces and verdicts are computed on rank 0 only, from rank 0's replica: its parameters and
// reduced gradients are every replica's (DDP) or the only ones that step (DataParallel); module
// output norms and fusion statistics are those of rank 0's rows of the batch (equal-sized shares
// of a shuffled global batch, so they estimate the global batch's).
//
// Cost. Off a traced step the monitor does: 2 PAPI reads per phase boundary (a few µs), one
// early-exit pass over the gradients (the dead-parameter check; it stops at the first non-zero
// value of each tensor) and one count of the routes chosen. A traced step adds one pass over
// parameters and gradients, one over the tagged activations, and the fusion statistics; an eval
// check step adds two evaluation forward passes. `fusebench train --no-trace` measures the
// difference (harness/README.md gives the figures).
#pragma once
#include <stdint.h>
#include "../kernels/layout.h"
#include "../profiling/counters.h"
#include "../profiling/traces.h"
#include "model.h"

#define MONITOR_MAX_POINTS 8

typedef struct {
    int counters;              // 1: PAPI counters (events below, or timers only when none can count)
    const char *papi_events;   // NULL: PROF_DEFAULT_EVENTS; "none": PAPI timers only
    int trace_every;           // steps between traces; 0: no traces (per-step checks still run)
    int eval_check_every;      // steps between non-determinism checks (two eval passes); 0: never
} monitor_config;

// One traced step, rank 0. Arrays are owned by the monitor and valid until the next trace.
typedef struct {
    int64_t step;
    int n_tensors;
    const char *const *tensor_names;
    const double *weight_norm, *grad_norm, *update_ratio;     // (n_tensors)
    int n_modules;
    const char *const *module_names;                          // activation tensors' names
    const char *const *module_kinds;                          // "linear", "layernorm", "attention", "fusion"
    const double *module_norm;                                // (n_modules) mean L2 norm over the last dim
    const double *module_warning;                             // (n_modules) NormMonitor: +1 above 100, -1 below 0.01, else 0
    int n_points;
    const char *const *point_names;
    const trace_fusion_stats *point;                          // (n_points)
    const double *grad_norm_a, *grad_norm_b;                  // (n_points) mean row norm of d/da, d/db
    double eval_diff;                                         // max |out1 - out2| of two eval passes; NaN: not checked
} monitor_trace;

typedef struct monitor monitor;

// rank: this process's rank (traces and verdicts on rank 0 only). threads: the OpenMP team size.
fb_status monitor_create(monitor **mon, const monitor_config *c, model *m, const fb_layout *P, const fb_layout *A,
                         int rank, int threads);
void monitor_destroy(monitor *mon);

// Phases: begin/end around forward, loss, backward, communication, optimizer. Ending a phase adds
// the FLOPs the kernels counted in it (fb_flops_read) to its SDE counter.
void monitor_phase_begin(monitor *mon, prof_phase ph);
void monitor_phase_end(monitor *mon);

int monitor_traced(const monitor *mon, int64_t step);        // 1 on rank 0 at a traced step
int monitor_eval_check_due(const monitor *mon, int64_t step);

// After the forward pass: routes (SDE, every step), module norms and fusion statistics (traced).
void monitor_after_forward(monitor *mon, int64_t step);
// After backward: the fusion points' input-gradient norms (traced).
void monitor_after_backward(monitor *mon, int64_t step);
// Before the optimizer, gradients reduced and averaged, not yet clipped: per-tensor gradient norms
// and a copy of the weights (traced steps).
void monitor_before_optimizer(monitor *mon, int64_t step, const float *grads);
// After clipping, with the global norm before it (every step): the dead-parameter check (clipping
// scales by a positive factor, so zero stays zero) and, when the norm is not finite, the count of
// non-finite values.
void monitor_gradients(monitor *mon, int64_t step, const float *grads, double global_norm);
// After the optimizer: loss history (every step), weight norms and update ratios (traced).
void monitor_after_optimizer(monitor *mon, int64_t step, double loss);
// The non-determinism check's result: max |difference| of two evaluation passes on one batch.
void monitor_eval_result(monitor *mon, int64_t step, double max_abs_diff);
// Communication of the step (SDE): bytes and calls per par kind, exposed seconds.
void monitor_comm(monitor *mon, const int64_t *bytes, const int64_t *calls, double exposed_s);
// The trace's names (tensors, modules, points), valid from creation; values unset. Rank 0.
const monitor_trace *monitor_names(const monitor *mon);
// The trace of the last traced step (NULL when this step was not traced).
const monitor_trace *monitor_last_trace(const monitor *mon, int64_t step);

// End of run (rank 0): the verdicts; returns their count (<= max).
int monitor_verdicts(const monitor *mon, trace_verdict *out, int max);
// Per-point summary for the end-of-run table (rank 0).
int monitor_points(const monitor *mon, const char *const **names);
void monitor_point_summary(const monitor *mon, int point, double *mean_ratio, double *min_ratio, double *max_ratio,
                           int64_t *imbalance_warnings);
prof_counters *monitor_counters(monitor *mon);   // NULL when counting is off
int64_t monitor_norm_warnings(const monitor *mon);   // NormMonitor warnings (module, traced step) so far
