#include "train_out.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../harness/parallel.h"
#include "../profiling/counters.h"

// ---------------------------------------------------------------- /config

static void write_config(train_out *o, const train_result *r) {
    const train_config *c = o->c;
    fb_h5 *h = &o->h;
    hid_t g = fb_h5_group(h, h->file, "config");
    if (g < 0) return;
    fb_h5_attr_string(h, g, "scenario", c->scenario->name);
    fb_h5_attr_string(h, g, "method", c->model.method);
    fb_h5_attr_int(h, g, "variant", c->model.variant);
    fb_h5_attr_double(h, g, "gate_bias", c->model.gate_bias_set ? c->model.gate_bias : NAN);   // NaN: the method's
    fb_h5_attr_int(h, g, "celestial_raw", c->model.celestial_raw);
    fb_h5_attr_double(h, g, "cost_budget", c->model.cost_budget > 0 ? c->model.cost_budget : NAN);   // NaN: the method's
    fb_h5_attr_string(h, g, "parallel", train_strategy_names[c->strategy]);
    fb_h5_attr_string(h, g, "pairs", train_pairs_names[c->pairs]);
    fb_h5_attr_int(h, g, "batch", c->batch);
    fb_h5_attr_int(h, g, "batch_per_rank", c->batch / o->run->size);
    fb_h5_attr_int(h, g, "steps", c->steps);
    fb_h5_attr_int(h, g, "first_step", r->first_step);
    fb_h5_attr_double(h, g, "bucket_mb", c->bucket_mb);
    fb_h5_attr_double(h, g, "first_bucket_mb", c->first_bucket_mb);
    fb_h5_attr_int(h, g, "buckets", r->nbuckets);
    fb_h5_attr_string(h, g, "optimizer", c->optim.kind == FB_OPTIM_ADAMW ? "adamw" : "sgd");
    fb_h5_attr_double(h, g, "lr", c->optim.lr);
    fb_h5_attr_double(h, g, "lr_min", c->lr_min);
    fb_h5_attr_double(h, g, "weight_decay", c->optim.weight_decay);
    fb_h5_attr_double(h, g, "clip", c->clip);
    fb_h5_attr_double(h, g, "dropout", c->model.dropout);
    fb_h5_attr_int(h, g, "seed", (int64_t)c->model.seed);
    fb_h5_attr_int(h, g, "parameters", (int64_t)r->n_params);
    fb_h5_attr_int(h, g, "trace_every", c->monitor.trace_every);
    fb_h5_attr_int(h, g, "eval_check_every", c->monitor.eval_check_every);
    fb_h5_attr_int(h, g, "counters", c->monitor.counters);
    fb_h5_attr_string(h, g, "papi_events", c->monitor.papi_events ? c->monitor.papi_events : PROF_DEFAULT_EVENTS);
    fb_h5_attr_int(h, g, "flush_every", o->flush_every);
    fb_h5_attr_string(h, g, "options", o->options ? o->options : "");
    H5Gclose(g);
}

// ---------------------------------------------------------------- series

static const char *const fusion_vars[] = {
    "norm_a", "norm_b", "mean_a", "std_a", "mean_b", "std_b", "ratio", "gate_mean", "gate_std", "gate_min", "gate_max",
    "out_norm", "out_mean", "out_std", "attention_entropy", "grad_norm_a", "grad_norm_b", "imbalance_warning",
    "gate_saturated_count", "attention_spread", "aux_loss", "expected_cost", "cost_budget",
};
#define N_FUSION_VARS ((int)(sizeof fusion_vars / sizeof fusion_vars[0]))

// The statistics of one point in fusion_vars' order (NaN where the method has none).
static void fusion_row(const trace_fusion_stats *s, double ga, double gb, double *v) {
    const double nan = NAN;
    const double row[N_FUSION_VARS] = {
        s->norm_a, s->norm_b, s->mean_a, s->std_a, s->mean_b, s->std_b, s->ratio,
        s->has_gate ? s->gate_mean : nan, s->has_gate ? s->gate_std : nan, s->has_gate ? s->gate_min : nan,
        s->has_gate ? s->gate_max : nan, s->has_out ? s->out_norm : nan, s->has_out ? s->out_mean : nan,
        s->has_out ? s->out_std : nan, s->has_attention ? s->attention_entropy : nan, ga, gb,
        (double)s->imbalance_warning, s->has_gate ? (double)s->gate_saturated_count : nan,
        s->has_attention ? s->attention_spread : nan, s->has_cost ? s->aux_loss : nan,
        s->has_cost ? s->cost_expected : nan, s->has_cost ? s->cost_budget : nan,
    };
    memcpy(v, row, sizeof row);
}

static fb_status create_steps(train_out *o, const train_result *r) {
    fb_h5_var vars[2 + MODEL_MAX_TERMS + 2 + TT_COUNT + 1];
    static char time_names[TT_COUNT][32];
    int n = 0;
    vars[n++] = (fb_h5_var){ "loss", "1", "objective: the sum of the terms", 0 };
    for (int k = 0; k < r->n_terms; k++) vars[n++] = (fb_h5_var){ r->term_names[k], "1", "loss term", 0 };
    vars[n++] = (fb_h5_var){ "lr", "1", "learning rate used", 0 };
    vars[n++] = (fb_h5_var){ "grad_norm", "1", "global gradient norm before clipping", 0 };
    for (int k = 0; k < TT_COUNT; k++) {
        snprintf(time_names[k], sizeof time_names[k], "%s_ms", train_time_names[k]);
        vars[n++] = (fb_h5_var){ time_names[k], "ms", "slowest rank's time in this phase", 0 };
    }
    vars[n++] = (fb_h5_var){ "samples_per_s", "1/s", "global batch / step time", 0 };
    o->row = calloc((size_t)n, sizeof(double));
    FB_REQUIRE(o->row, FB_ERR_ALLOC, "no memory for a step row");
    return fb_h5_series_create(&o->h, o->h.file, "steps", NULL, NULL, 0, vars, n, 0, &o->steps);
}

static fb_status create_traces(train_out *o, const monitor_trace *t) {
    fb_h5 *h = &o->h;
    const fb_h5_var pv[] = {
        { "weight_norm", "1", "L2 norm of the tensor after the step", 1 },
        { "grad_norm", "1", "L2 norm of its gradient (reduced, before clipping)", 1 },
        { "update_ratio", "1", "||w_after - w_before|| / ||w_before||", 1 },
    };
    FB_TRY(fb_h5_series_create(h, h->file, "traces/params", "tensor", t->tensor_names, t->n_tensors, pv, 3, 0,
                               &o->params));
    if (t->n_modules > 0) {
        const fb_h5_var mv[] = {
            { "output_norm", "1", "mean over rows of the L2 norm over the last dim (NormMonitor)", 1 },
            { "warning", "1", "NormMonitor's warning: +1 above 100, -1 below 0.01, 0 none", 1 },
        };
        FB_TRY(fb_h5_series_create(h, h->file, "traces/modules", "module", t->module_names, t->n_modules, mv, 2, 0,
                                   &o->modules));
        // Each module's kind, by label order.
        const fb_h5_column kc[] = { { "module", FB_COL_STR, "", NULL }, { "kind", FB_COL_STR, "", NULL } };
        const void *kd[] = { t->module_names, t->module_kinds };
        hid_t g = fb_h5_group(h, h->file, "traces");
        if (g >= 0) {
            FB_TRY(fb_h5_write_table(h, g, "module_kinds", kc, 2, (size_t)t->n_modules, kd));
            H5Gclose(g);
        }
    }
    fb_h5_var fv[N_FUSION_VARS];
    for (int v = 0; v < N_FUSION_VARS; v++) {
        const char *name = fusion_vars[v];
        const char *units = strstr(name, "cost") ? "mJ" : strcmp(name, "attention_entropy") == 0 ? "nats" : "1";
        fv[v] = (fb_h5_var){ name, units, NULL, 0 };
    }
    for (int k = 0; k < t->n_points && k < MONITOR_MAX_POINTS; k++) {
        char name[160];
        snprintf(name, sizeof name, "traces/fusion/%s", t->point_names[k]);
        FB_TRY(fb_h5_series_create(h, h->file, name, NULL, NULL, 0, fv, N_FUSION_VARS, 0, &o->points[k]));
    }
    const fb_h5_var ev[] = { { "max_abs_diff", "1", "max |out1 - out2| of two evaluation passes on one batch", 0 } };
    return fb_h5_series_create(h, h->file, "traces/eval", NULL, NULL, 0, ev, 1, 0, &o->eval);
}

// Route counts per expert: the series appears at the first trace that has routes.
static fb_status append_routes(train_out *o, int k, const monitor_trace *t) {
    const trace_fusion_stats *s = &t->point[k];
    if (s->experts <= 0) return FB_OK;
    if (!o->routes[k]) {
        char name[160], labels_buf[TRACE_MAX_EXPERTS][8];
        const char *labels[TRACE_MAX_EXPERTS];
        for (int e = 0; e < s->experts; e++) {
            snprintf(labels_buf[e], sizeof labels_buf[e], "%d", e);
            labels[e] = labels_buf[e];
        }
        snprintf(name, sizeof name, "traces/routes/%s", t->point_names[k]);
        const fb_h5_var rv[] = { { "count", "1", "samples of rank 0's rows routed to each expert", 1 } };
        FB_TRY(fb_h5_series_create(&o->h, o->h.file, name, "expert", labels, s->experts, rv, 1, 0, &o->routes[k]));
        o->experts[k] = s->experts;
    }
    double counts[TRACE_MAX_EXPERTS];
    for (int e = 0; e < o->experts[k]; e++) counts[e] = (double)s->routes[e];
    const double *vals[] = { counts };
    return fb_h5_series_append(o->routes[k], t->step, vals);
}

static fb_status sink_begin(void *ctx, const train_result *r, const monitor_trace *names) {
    train_out *o = ctx;
    write_config(o, r);
    FB_TRY(create_steps(o, r));
    if (names && o->c->monitor.trace_every > 0) FB_TRY(create_traces(o, names));
    return fb_h5_live_flush(&o->h);
}

static fb_status sink_step(void *ctx, const train_result *r, int i, const monitor_trace *t) {
    train_out *o = ctx;
    const int nt = r->n_terms;
    const int64_t step = r->first_step + i;
    int n = 0;
    o->row[n++] = r->loss[i];
    for (int k = 0; k < nt; k++) o->row[n++] = r->terms[(size_t)i * nt + k];
    o->row[n++] = r->lr[i];
    o->row[n++] = r->grad_norm[i];
    const double *times = r->times + (size_t)i * TT_COUNT;
    for (int k = 0; k < TT_COUNT; k++) o->row[n++] = times[k] * 1e3;
    o->row[n++] = times[TT_STEP] > 0 ? o->batch / times[TT_STEP] : 0;
    const double *cols[2 + MODEL_MAX_TERMS + 2 + TT_COUNT + 1];
    for (int k = 0; k < n; k++) cols[k] = &o->row[k];
    FB_TRY(fb_h5_series_append(o->steps, step, cols));
    if (t && o->params) {
        const double *pv[] = { t->weight_norm, t->grad_norm, t->update_ratio };
        FB_TRY(fb_h5_series_append(o->params, step, pv));
        if (o->modules) {
            const double *mv[] = { t->module_norm, t->module_warning };
            FB_TRY(fb_h5_series_append(o->modules, step, mv));
        }
        for (int k = 0; k < t->n_points && k < MONITOR_MAX_POINTS; k++) {
            double v[N_FUSION_VARS];
            const double *fv[N_FUSION_VARS];
            fusion_row(&t->point[k], t->grad_norm_a[k], t->grad_norm_b[k], v);
            for (int j = 0; j < N_FUSION_VARS; j++) fv[j] = &v[j];
            FB_TRY(fb_h5_series_append(o->points[k], step, fv));
            FB_TRY(append_routes(o, k, t));
        }
        if (!isnan(t->eval_diff)) {
            const double *ev[] = { &t->eval_diff };
            FB_TRY(fb_h5_series_append(o->eval, step, ev));
        }
    }
    if (o->flush_every > 0 && (i + 1) % o->flush_every == 0) return fb_h5_live_flush(&o->h);
    return FB_OK;
}

fb_status train_out_open(train_out *o, const char *path, const fb_mpi_run *run, const train_config *c,
                         const char *options, int flush_every, train_sink *sink) {
    memset(o, 0, sizeof *o);
    o->c = c;
    o->run = run;
    o->batch = c->batch;
    o->flush_every = flush_every;
    o->options = options;
    FB_TRY(fb_h5_live_create(&o->h, path, TRAIN_SCHEMA, TRAIN_SCHEMA_VERSION));
    o->open = 1;
    fb_status st = fb_mpi_write_provenance(&o->h, run);
    if (st == FB_OK) st = fb_h5_live_flush(&o->h);
    *sink = (train_sink){ .ctx = o, .begin = sink_begin, .step = sink_step };
    return st;
}

// ---------------------------------------------------------------- end of run

static void write_counters(train_out *o, const train_result *r) {
    fb_h5 *h = &o->h;
    hid_t g = fb_h5_group(h, h->file, "counters");
    if (g < 0) return;
    fb_h5_attr_string(h, g, "papi_version", r->papi_version);
    fb_h5_attr_string(h, g, "statement", r->statement);
    fb_h5_attr_int(h, g, "counted", r->counted);
    if (r->counted) {
        const int P = r->ranks, T = r->threads, R = PROF_REGION_COUNT, E = r->n_events;
        const char *names[PROF_MAX_EVENTS], *reasons[PROF_MAX_EVENTS], *regions[PROF_REGION_COUNT];
        int64_t avail[PROF_MAX_EVENTS];
        for (int e = 0; e < E; e++) {
            names[e] = r->event_names[e];
            reasons[e] = r->event_reasons[e];
            avail[e] = r->event_available[e];
        }
        for (int k = 0; k < R; k++) regions[k] = prof_region_name(k);
        const fb_h5_column ec[] = {
            { "event", FB_COL_STR, "", "PAPI event name as requested" },
            { "available", FB_COL_I64, "1", "1: counted on every thread of every rank" },
            { "reason", FB_COL_STR, "", "why not (PAPI's error, the component's disabled reason)" },
        };
        const void *ed[] = { names, avail, reasons };
        fb_h5_write_table(h, g, "events", ec, 3, (size_t)E, ed);
        const fb_h5_column rc[] = { { "region", FB_COL_STR, "", "phase, or fusion-call overlay" } };
        const void *rd[] = { regions };
        fb_h5_write_table(h, g, "regions", rc, 1, (size_t)R, rd);
        const int64_t dv[] = { P, T, R, E }, dt[] = { P, T, R }, dr[] = { P, R };
        const char *const nv[] = { "rank", "thread", "region", "event" };
        if (E > 0)
            fb_h5_write_i64_nd(h, g, "values", 4, dv, nv, r->counter_values, "1", "event counts (rank, thread, region, event)");
        fb_h5_write_i64_nd(h, g, "virt_ns", 3, dt, nv, r->virt_ns, "ns", "each thread's CPU time (PAPI virtual time)");
        const char *const nr[] = { "rank", "region" };
        fb_h5_write_i64_nd(h, g, "real_ns", 2, dr, nr, r->real_ns, "ns", "wall time (PAPI real time)");
        fb_h5_write_i64_nd(h, g, "calls", 2, dr, nr, r->region_calls, "1", "completed intervals");
    }
    H5Gclose(g);
}

static void write_sde(train_out *o, const train_result *r) {
    const char *names[FB_SDE_COUNT], *units[FB_SDE_COUNT], *desc[FB_SDE_COUNT], *papi[FB_SDE_COUNT];
    char papi_buf[FB_SDE_COUNT][96];
    int64_t values[FB_SDE_COUNT];
    for (int k = 0; k < FB_SDE_COUNT; k++) {
        names[k] = fb_sde_name(k);
        units[k] = fb_sde_units(k);
        desc[k] = fb_sde_description(k);
        snprintf(papi_buf[k], sizeof papi_buf[k], FB_SDE_PAPI_PREFIX "%s", fb_sde_name(k));
        papi[k] = papi_buf[k];
        values[k] = r->sde[k];
    }
    const fb_h5_column c[] = {
        { "counter", FB_COL_STR, "", NULL }, { "papi_event", FB_COL_STR, "", "its name for PAPI tools" },
        { "value", FB_COL_I64, "", "summed over ranks" }, { "units", FB_COL_STR, "", NULL },
        { "description", FB_COL_STR, "", NULL },
    };
    const void *d[] = { names, papi, values, units, desc };
    fb_h5_write_table(&o->h, o->h.file, "sde", c, 5, FB_SDE_COUNT, d);
}

static void write_verdicts(train_out *o, const train_result *r) {
    const int n = r->n_verdicts;
    const char *name[TRAIN_MAX_VERDICTS], *subject[TRAIN_MAX_VERDICTS], *detail[TRAIN_MAX_VERDICTS];
    int64_t fired[TRAIN_MAX_VERDICTS], evaluable[TRAIN_MAX_VERDICTS];
    double value[TRAIN_MAX_VERDICTS], threshold[TRAIN_MAX_VERDICTS];
    for (int i = 0; i < n; i++) {
        const trace_verdict *v = &r->verdicts[i];
        name[i] = v->name;
        subject[i] = v->subject;
        detail[i] = v->detail;
        fired[i] = v->fired;
        evaluable[i] = v->evaluable;
        value[i] = v->value;
        threshold[i] = v->threshold;
    }
    const fb_h5_column c[] = {
        { "verdict", FB_COL_STR, "", NULL }, { "subject", FB_COL_STR, "", "fusion point or tensor(s)" },
        { "fired", FB_COL_I64, "1", "1: the problem was found; 0: checked, clean (or not evaluable)" },
        { "evaluable", FB_COL_I64, "1", "0: not enough data to judge (detail says what was missing)" },
        { "value", FB_COL_F64, "1", NULL }, { "threshold", FB_COL_F64, "1", NULL },
        { "detail", FB_COL_STR, "", NULL },
    };
    const void *d[] = { name, subject, fired, evaluable, value, threshold, detail };
    fb_h5_write_table(&o->h, o->h.file, "verdicts", c, 7, (size_t)n, d);
}

static void write_summary(train_out *o, const train_result *r, const double *medians, double samples_per_s) {
    fb_h5 *h = &o->h;
    hid_t g = fb_h5_group(h, h->file, "summary");
    if (g < 0) return;
    for (int k = 0; k < TT_COUNT; k++) {
        char name[48];
        snprintf(name, sizeof name, "median_%s_ms", train_time_names[k]);
        fb_h5_attr_double(h, g, name, medians[k] * 1e3);
    }
    fb_h5_attr_double(h, g, "samples_per_s", samples_per_s);
    fb_h5_attr_double(h, g, "comm_exposed_pct",
                      medians[TT_STEP] > 0 ? 100 * medians[TT_COMM_EXPOSED] / medians[TT_STEP] : 0);
    for (int k = 0; k < PAR_KINDS; k++) {
        char name[64];
        snprintf(name, sizeof name, "%s_bytes", par_kind_names[k]);
        fb_h5_attr_int(h, g, name, r->comm_bytes[k]);
        snprintf(name, sizeof name, "%s_calls", par_kind_names[k]);
        fb_h5_attr_int(h, g, name, r->comm_calls[k]);
    }
    fb_h5_attr_string(h, g, "param_checksum", r->param_checksum);
    fb_h5_attr_double(h, g, "wall_s", r->wall);
    int fired = 0;
    for (int i = 0; i < r->n_verdicts; i++) fired += r->verdicts[i].fired;
    fb_h5_attr_int(h, g, "verdicts_fired", fired);
    fb_h5_attr_int(h, g, "norm_warnings", r->norm_warnings);
    if (r->holdout_n > 0) {   // the held-out evaluation (--holdout)
        fb_h5_attr_int(h, g, "holdout_samples", r->holdout_n);
        fb_h5_attr_double(h, g, "holdout_loss", r->holdout_loss);
        for (int k = 0; k < r->n_terms; k++) {
            char name[64];
            snprintf(name, sizeof name, "holdout_%s", r->term_names[k]);
            fb_h5_attr_double(h, g, name, r->holdout_terms[k]);
        }
        fb_h5_attr_double(h, g, "holdout_accuracy", r->holdout_accuracy);
    }
    H5Gclose(g);
}

fb_status train_out_finish(train_out *o, int ok, const char *error, const train_result *r, const double *medians,
                           double samples_per_s) {
    if (!o->open) return FB_OK;
    if (ok && r) {
        write_counters(o, r);
        write_sde(o, r);
        write_verdicts(o, r);
        write_summary(o, r, medians, samples_per_s);
    }
    free(o->row);
    o->row = NULL;
    o->open = 0;
    return fb_h5_live_finish(&o->h, ok, error);
}
