#include "monitor.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../profiling/sde.h"

struct monitor {
    monitor_config c;
    model *m;
    const fb_layout *P, *A;
    int rank;
    prof_counters *pc;
    int phase_running;
    prof_phase phase;
    long long flops_mark;              // fb_flops_read() at the last phase boundary
    // fusion points (model_fusion_points)
    int n_points;
    fusion *points[MONITOR_MAX_POINTS];
    const char *point_names[MONITOR_MAX_POINTS];
    // traces (rank 0)
    trace_run *run;
    const char **tensor_names;         // (P->count)
    double *wnorm, *gnorm, *ratio;     // (P->count)
    float *w_prev;                     // (P->total) weights before the traced step's update
    int n_modules;
    int *module_index;                 // activation tensor index of each traced module
    const char **module_names, **module_kinds;
    double *module_norm, *module_warning;
    int64_t module_warnings;           // NormMonitor warnings over the traced steps
    trace_fusion_stats stats[MONITOR_MAX_POINTS];
    double grad_a[MONITOR_MAX_POINTS], grad_b[MONITOR_MAX_POINTS];
    monitor_trace trace;
    int64_t traced_step;               // step of `trace`, -1 before the first
};

// ---------------------------------------------------------------- fusion-call overlays

static void fusion_enter(void *ctx, const fusion *f, int backward) {
    (void)f;
    prof_overlay_enter(ctx, backward ? PROF_OVERLAY_FUSION_BACKWARD : PROF_OVERLAY_FUSION_FORWARD);
}

static void fusion_leave(void *ctx, const fusion *f, int backward) {
    (void)f;
    prof_overlay_leave(ctx, backward ? PROF_OVERLAY_FUSION_BACKWARD : PROF_OVERLAY_FUSION_FORWARD);
}

// ---------------------------------------------------------------- create / destroy

// The activation tensors NormMonitor would hook: outputs of Linear, LayerNorm, attention and
// fusion modules, as the kernels and scenarios tagged them in the activation layout.
static fb_status find_modules(monitor *mon) {
    const fb_layout *A = mon->A;
    mon->module_index = calloc((size_t)A->count + 1, sizeof(int));
    mon->module_names = calloc((size_t)A->count + 1, sizeof(char *));
    mon->module_kinds = calloc((size_t)A->count + 1, sizeof(char *));
    mon->module_norm = calloc((size_t)A->count + 1, sizeof(double));
    mon->module_warning = calloc((size_t)A->count + 1, sizeof(double));
    FB_REQUIRE(mon->module_index && mon->module_names && mon->module_kinds && mon->module_norm && mon->module_warning,
               FB_ERR_ALLOC,
               "monitor: no memory for %d module slots", A->count);
    for (int i = 0; i < A->count; i++) {
        const fb_tensor *t = &A->tensors[i];
        if (t->module == FB_MODULE_NONE) continue;
        mon->module_index[mon->n_modules] = i;
        mon->module_names[mon->n_modules] = t->name;
        mon->module_kinds[mon->n_modules] = fb_module_name(t->module);
        mon->n_modules++;
    }
    return FB_OK;
}

static fb_status create_traces(monitor *mon) {
    const fb_layout *P = mon->P;
    const int n = P->count;
    mon->tensor_names = calloc((size_t)n, sizeof(char *));
    mon->wnorm = calloc((size_t)n, sizeof(double));
    mon->gnorm = calloc((size_t)n, sizeof(double));
    mon->ratio = calloc((size_t)n, sizeof(double));
    mon->w_prev = malloc(P->total * sizeof(float));
    FB_REQUIRE(mon->tensor_names && mon->wnorm && mon->gnorm && mon->ratio && mon->w_prev, FB_ERR_ALLOC,
               "monitor: no memory for the traces of %d tensors", n);
    for (int i = 0; i < n; i++) mon->tensor_names[i] = P->tensors[i].name;
    FB_TRY(find_modules(mon));
    FB_TRY(trace_run_create(&mon->run, n, mon->tensor_names, mon->n_points, mon->point_names));
    for (int i = 0; i < n; i++)
        if (P->tensors[i].grad_free) trace_run_expect_zero_grad(mon->run, i);
    monitor_trace *t = &mon->trace;
    t->n_tensors = n;
    t->tensor_names = mon->tensor_names;
    t->weight_norm = mon->wnorm;
    t->grad_norm = mon->gnorm;
    t->update_ratio = mon->ratio;
    t->n_modules = mon->n_modules;
    t->module_names = mon->module_names;
    t->module_kinds = mon->module_kinds;
    t->module_norm = mon->module_norm;
    t->module_warning = mon->module_warning;
    t->n_points = mon->n_points;
    t->point_names = mon->point_names;
    t->point = mon->stats;
    t->grad_norm_a = mon->grad_a;
    t->grad_norm_b = mon->grad_b;
    return FB_OK;
}

fb_status monitor_create(monitor **out, const monitor_config *c, model *m, const fb_layout *P, const fb_layout *A,
                         int rank, int threads) {
    *out = NULL;
    FB_REQUIRE(c->trace_every >= 0 && c->eval_check_every >= 0, FB_ERR_CONFIG,
               "monitor: --trace-every (%d) and --eval-check-every (%d) must be >= 0", c->trace_every,
               c->eval_check_every);
    monitor *mon = calloc(1, sizeof *mon);
    FB_REQUIRE(mon, FB_ERR_ALLOC, "monitor: no memory");
    mon->c = *c;
    mon->m = m;
    mon->P = P;
    mon->A = A;
    mon->rank = rank;
    mon->traced_step = -1;
    mon->n_points = model_fusion_points(m, mon->points, mon->point_names, MONITOR_MAX_POINTS);
    fb_sde_init();   // makes the counters visible to PAPI tools in this process (counting works without)
    fb_status st = FB_OK;
    if (c->counters) {
        const char *events = c->papi_events && strcmp(c->papi_events, "none") == 0 ? "" : c->papi_events;
        st = prof_counters_create(&mon->pc, events, threads);
        if (st == FB_OK) {
            static fusion_hooks hooks;   // process-wide, like the hooks themselves
            hooks = (fusion_hooks){ .enter = fusion_enter, .leave = fusion_leave, .ctx = mon->pc };
            fusion_set_hooks(&hooks);
        }
    }
    if (st == FB_OK && rank == 0) st = create_traces(mon);
    if (st != FB_OK) {
        monitor_destroy(mon);
        return st;
    }
    mon->flops_mark = fb_flops_read();
    *out = mon;
    return FB_OK;
}

void monitor_destroy(monitor *mon) {
    if (!mon) return;
    if (mon->pc) {
        fusion_set_hooks(NULL);
        prof_counters_destroy(mon->pc);
    }
    trace_run_destroy(mon->run);
    free(mon->tensor_names); free(mon->wnorm); free(mon->gnorm); free(mon->ratio); free(mon->w_prev);
    free(mon->module_index); free(mon->module_names); free(mon->module_kinds); free(mon->module_norm); free(mon->module_warning);
    free(mon);
}

// ---------------------------------------------------------------- phases

static const fb_sde_counter phase_flops[PROF_PHASE_COUNT] = {
    [PROF_PHASE_FORWARD] = FB_SDE_FLOPS_FORWARD,
    [PROF_PHASE_BACKWARD] = FB_SDE_FLOPS_BACKWARD,
    [PROF_PHASE_LOSS] = FB_SDE_FLOPS_LOSS,
    [PROF_PHASE_COMM] = FB_SDE_COUNT,          // no FLOP counter: communication
    [PROF_PHASE_OPTIMIZER] = FB_SDE_FLOPS_OPTIMIZER,
};

// FLOPs since the last boundary go to the phase that was running (none: dropped).
static void attribute_flops(monitor *mon) {
    const long long now = fb_flops_read();
    if (mon->phase_running && phase_flops[mon->phase] != FB_SDE_COUNT)
        fb_sde_add(phase_flops[mon->phase], now - mon->flops_mark);
    mon->flops_mark = now;
}

void monitor_phase_begin(monitor *mon, prof_phase ph) {
    if (!mon) return;
    attribute_flops(mon);
    prof_phase_begin(mon->pc, ph);
    mon->phase_running = 1;
    mon->phase = ph;
}

void monitor_phase_end(monitor *mon) {
    if (!mon || !mon->phase_running) return;
    attribute_flops(mon);
    prof_phase_end(mon->pc);
    mon->phase_running = 0;
}

// ---------------------------------------------------------------- the step's checkpoints

int monitor_traced(const monitor *mon, int64_t step) {
    return mon && mon->rank == 0 && mon->c.trace_every > 0 && step % mon->c.trace_every == 0;
}

int monitor_eval_check_due(const monitor *mon, int64_t step) {
    return mon && mon->rank == 0 && mon->c.eval_check_every > 0 && step % mon->c.eval_check_every == 0;
}

// Rows of a fusion input or output: a (B, S, D), b (B, T, E), out (B, out_positions, D).
static void point_stats(monitor *mon, int k) {
    const fusion *f = mon->points[k];
    const fusion_config *c = &f->c;
    const size_t ra = (size_t)c->B * c->S, rb = (size_t)c->B * c->T, ro = (size_t)c->B * f->out_positions;
    trace_fusion_point(&mon->stats[k], f->last_a, ra, c->D, f->last_b, rb, c->E, f->last_out, ro, c->D, &f->diag);
}

void monitor_after_forward(monitor *mon, int64_t step) {
    if (!mon) return;
    // Routes, every step (each rank its own rows; the SDE totals are summed over ranks by the caller).
    for (int k = 0; k < mon->n_points; k++) {
        const fusion_diag *d = &mon->points[k]->diag;
        if (!d->routes || d->experts <= 0) continue;
        for (int i = 0; i < d->route_count; i++) fb_sde_add_route(d->routes[i], 1);
    }
    if (!monitor_traced(mon, step)) return;
    const fb_layout *A = mon->A;
    for (int j = 0; j < mon->n_modules; j++) {
        const fb_tensor *t = &A->tensors[mon->module_index[j]];
        const int cols = t->module_cols > 0 ? t->module_cols : t->shape[t->ndim - 1];
        mon->module_norm[j] = trace_mean_row_norm(A->base[0] + t->offset, t->numel / (size_t)cols, cols);
        mon->module_warning[j] = trace_norm_warning(mon->module_norm[j]);
        mon->module_warnings += mon->module_warning[j] != 0;
    }
    for (int k = 0; k < mon->n_points; k++) {
        point_stats(mon, k);
        if (mon->stats[k].has_gate) fb_sde_add(FB_SDE_GATE_SATURATED, mon->stats[k].gate_saturated_count);
    }
}

void monitor_after_backward(monitor *mon, int64_t step) {
    if (!monitor_traced(mon, step)) return;
    for (int k = 0; k < mon->n_points; k++) {
        const fusion *f = mon->points[k];
        const fusion_config *c = &f->c;
        mon->grad_a[k] = f->last_da ? trace_mean_row_norm(f->last_da, (size_t)c->B * c->S, c->D) : NAN;
        mon->grad_b[k] = f->last_db ? trace_mean_row_norm(f->last_db, (size_t)c->B * c->T, c->E) : NAN;
        trace_run_fusion(mon->run, k, step, &mon->stats[k], mon->grad_a[k], mon->grad_b[k]);
    }
}

void monitor_before_optimizer(monitor *mon, int64_t step, const float *grads) {
    if (!mon || mon->rank != 0) return;
    if (!monitor_traced(mon, step)) return;
    memcpy(mon->w_prev, mon->P->base[0], mon->P->total * sizeof(float));
    // Gradient norms now (reduced, not clipped); weight norms and update ratios after the step.
    trace_param_norms(mon->P, NULL, grads, NULL, NULL, mon->gnorm, NULL);
}

void monitor_gradients(monitor *mon, int64_t step, const float *grads, double global_norm) {
    if (!mon || mon->rank != 0) return;
    const int64_t bad_before = trace_run_nonfinite(mon->run);
    trace_run_grads(mon->run, step, mon->P, grads, !isfinite(global_norm));
    fb_sde_add(FB_SDE_NONFINITE, trace_run_nonfinite(mon->run) - bad_before);
}

void monitor_after_optimizer(monitor *mon, int64_t step, double loss) {
    if (!mon || mon->rank != 0) return;
    trace_run_loss(mon->run, step, loss);
    if (!isfinite(loss)) fb_sde_add(FB_SDE_NONFINITE, 1);
    if (!monitor_traced(mon, step)) return;
    // Weights after the step and the update; the gradient norms were taken before clipping.
    trace_param_norms(mon->P, mon->P->base[0], NULL, mon->w_prev, mon->wnorm, NULL, mon->ratio);
    mon->trace.step = step;
    mon->trace.eval_diff = NAN;
    mon->traced_step = step;
}

void monitor_eval_result(monitor *mon, int64_t step, double max_abs_diff) {
    if (!mon || mon->rank != 0) return;
    trace_run_eval_check(mon->run, step, max_abs_diff);
    if (mon->traced_step == step) mon->trace.eval_diff = max_abs_diff;
}

void monitor_comm(monitor *mon, const int64_t *bytes, const int64_t *calls, double exposed_s) {
    if (!mon) return;
    // par_kind order: allreduce, allgather, bcast, reduce, scatter_gather
    static const fb_sde_counter b[5] = { FB_SDE_ALLREDUCE_BYTES, FB_SDE_ALLGATHER_BYTES, FB_SDE_BCAST_BYTES,
                                         FB_SDE_REDUCE_BYTES, FB_SDE_SCATTER_GATHER_BYTES };
    static const fb_sde_counter n[5] = { FB_SDE_ALLREDUCE_CALLS, FB_SDE_ALLGATHER_CALLS, FB_SDE_BCAST_CALLS,
                                         FB_SDE_REDUCE_CALLS, FB_SDE_SCATTER_GATHER_CALLS };
    for (int k = 0; k < 5; k++) {
        fb_sde_add(b[k], bytes[k]);
        fb_sde_add(n[k], calls[k]);
    }
    fb_sde_add(FB_SDE_EXPOSED_COMM_NS, (long long)llround(exposed_s * 1e9));
}

const monitor_trace *monitor_names(const monitor *mon) { return mon && mon->rank == 0 ? &mon->trace : NULL; }

const monitor_trace *monitor_last_trace(const monitor *mon, int64_t step) {
    return mon && mon->rank == 0 && mon->traced_step == step ? &mon->trace : NULL;
}

int monitor_verdicts(const monitor *mon, trace_verdict *out, int max) {
    if (!mon || !mon->run) return 0;
    const int n = trace_run_verdicts(mon->run, out, max);
    return n < max ? n : max;
}

int monitor_points(const monitor *mon, const char *const **names) {
    *names = mon->point_names;
    return mon->n_points;
}

void monitor_point_summary(const monitor *mon, int point, double *mean_ratio, double *min_ratio, double *max_ratio,
                           int64_t *imbalance_warnings) {
    trace_run_point_summary(mon->run, point, mean_ratio, min_ratio, max_ratio, imbalance_warnings);
}

prof_counters *monitor_counters(monitor *mon) { return mon ? mon->pc : NULL; }

int64_t monitor_norm_warnings(const monitor *mon) { return mon ? mon->module_warnings : 0; }
