// The study table and the helpers every analysis shares (study.h).
#include "study.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const study_verdict_names[3] = { "CONFIRMED", "REFUTED", "INCONCLUSIVE" };

#define STUDY(name) &study_##name,
const study_def *const study_defs[] = {
#include "studies.def"
};
#undef STUDY
const int study_count = (int)(sizeof study_defs / sizeof study_defs[0]);

const study_def *study_find(const char *name) {
    for (int i = 0; name && i < study_count; i++)
        if (strcmp(study_defs[i]->name, name) == 0) return study_defs[i];
    return NULL;
}

// ---- Sets ----

study_run *study_set_add(study_set *s) {
    study_run *grown = realloc(s->runs, (size_t)(s->n + 1) * sizeof *grown);
    if (!grown) return NULL;
    s->runs = grown;
    study_run *r = &s->runs[s->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->arm, sizeof r->arm, "-");
    r->complete = 1;
    return r;
}

int study_run_put(study_run *r, const char *key, const double *v, size_t n) {
    study_value *grown = realloc(r->values, (size_t)(r->nvalues + 1) * sizeof *grown);
    if (!grown) return -1;
    r->values = grown;
    study_value *x = &r->values[r->nvalues];
    snprintf(x->key, sizeof x->key, "%s", key);
    x->n = n;
    x->v = malloc((n ? n : 1) * sizeof(double));
    if (!x->v) return -1;
    if (n) memcpy(x->v, v, n * sizeof(double));
    r->nvalues++;
    return 0;
}

void study_set_free(study_set *s) {
    for (int i = 0; i < s->n; i++) {
        for (int k = 0; k < s->runs[i].nvalues; k++) free(s->runs[i].values[k].v);
        free(s->runs[i].values);
    }
    free(s->runs);
    memset(s, 0, sizeof *s);
}

// ---- Values ----

const double *study_get(const study_run *r, const char *key, size_t *n) {
    for (int k = 0; k < r->nvalues; k++)
        if (strcmp(r->values[k].key, key) == 0) {
            *n = r->values[k].n;
            return r->values[k].n ? r->values[k].v : NULL;
        }
    *n = 0;
    return NULL;
}

double study_scalar(const study_run *r, const char *key) {
    size_t n;
    const double *v = study_get(r, key, &n);
    return v ? v[n - 1] : NAN;
}

// The index range [*lo, *hi) of the fraction [from, to) of n values: at least one value.
static void window(size_t n, double from, double to, size_t *lo, size_t *hi) {
    *lo = (size_t)floor(from * (double)n);
    *hi = (size_t)ceil(to * (double)n);
    if (*hi > n) *hi = n;
    if (*lo >= *hi) *lo = *hi > 0 ? *hi - 1 : 0;
}

double study_window_mean(const study_run *r, const char *key, double from, double to) {
    size_t n, lo, hi, used = 0;
    const double *v = study_get(r, key, &n);
    if (!v) return NAN;
    window(n, from, to, &lo, &hi);
    double sum = 0;
    for (size_t i = lo; i < hi; i++)
        if (isfinite(v[i])) sum += v[i], used++;
    return used ? sum / (double)used : NAN;
}

// The largest (sign > 0) or smallest (sign < 0) finite value of the window; NaN when none.
static double window_extreme(const study_run *r, const char *key, double from, double to, int sign) {
    size_t n, lo, hi;
    const double *v = study_get(r, key, &n);
    if (!v) return NAN;
    window(n, from, to, &lo, &hi);
    double best = NAN;
    for (size_t i = lo; i < hi; i++)
        if (isfinite(v[i]) && !(sign * v[i] <= sign * best)) best = v[i];
    return best;
}

double study_window_max(const study_run *r, const char *key, double from, double to) {
    return window_extreme(r, key, from, to, 1);
}
double study_window_min(const study_run *r, const char *key, double from, double to) {
    return window_extreme(r, key, from, to, -1);
}

double study_fn_scalar(const study_run *r, const void *key) { return study_scalar(r, key); }
double study_fn_mean(const study_run *r, const void *key) { return study_window_mean(r, key, 0, 1); }
double study_fn_max(const study_run *r, const void *key) { return study_window_max(r, key, 0, 1); }
double study_fn_min(const study_run *r, const void *key) { return study_window_min(r, key, 0, 1); }
double study_fn_max_abs(const study_run *r, const void *key) {
    return fmax(fabs(study_fn_max(r, key)), fabs(study_fn_min(r, key)));   // fmax: NaN only when both are
}
double study_fn_late_mean(const study_run *r, const void *key) { return study_window_mean(r, key, 0.7, 1); }
double study_fn_early_mean(const study_run *r, const void *key) { return study_window_mean(r, key, 0, 0.3); }

double study_fn_branch_share(const study_run *r, const void *point) {
    char a[160], b[160];
    snprintf(a, sizeof a, "traces/fusion/%s/grad_norm_a", (const char *)point);
    snprintf(b, sizeof b, "traces/fusion/%s/grad_norm_b", (const char *)point);
    return study_window_mean(r, b, 0, 1) / study_window_mean(r, a, 0, 1);
}

// ---- Selection and aggregation ----

static int same(const char *want, const char *have) { return !want || strcmp(want, have) == 0; }

int study_match(const study_run *r, const study_filter *f) {
    return r->complete && same(f->arm, r->arm) && same(f->scenario, r->scenario) && same(f->method, r->method) &&
           same(f->parallel, r->parallel) && same(f->pairs, r->pairs) && (!f->ranks || f->ranks == r->ranks);
}

int study_values(const study_set *s, const study_filter *f, study_run_fn fn, const void *ctx, double *out, int max) {
    int n = 0;
    for (int i = 0; i < s->n && n < max; i++)
        if (study_match(&s->runs[i], f)) {
            const double v = fn(&s->runs[i], ctx);
            if (isfinite(v)) out[n++] = v;
        }
    return n;
}

int study_aggregate(const study_set *s, const study_filter *f, study_run_fn fn, const void *ctx, double *mean,
                    double *std) {
    double v[1024];
    const int n = study_values(s, f, fn, ctx, v, 1024);
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    const double m = n ? sum / n : NAN;
    for (int i = 0; i < n; i++) sq += (v[i] - m) * (v[i] - m);
    *mean = m;
    *std = n > 1 ? sqrt(sq / n) : NAN;
    return n;
}

int study_range(const study_set *s, const study_filter *f, study_run_fn fn, const void *ctx, double *lo, double *hi) {
    double v[1024];
    const int n = study_values(s, f, fn, ctx, v, 1024);
    *lo = *hi = NAN;
    for (int i = 0; i < n; i++) {
        if (!(v[i] >= *lo)) *lo = v[i];
        if (!(v[i] <= *hi)) *hi = v[i];
    }
    return n;
}

const study_run *study_seed_run(const study_set *s, const study_filter *f, int seed) {
    for (int i = 0; i < s->n; i++)
        if (s->runs[i].seed == seed && study_match(&s->runs[i], f)) return &s->runs[i];
    return NULL;
}

int study_paired(const study_set *s, const study_filter *a, const study_filter *b, study_run_fn fn, const void *ctx,
                 double *d, int max) {
    int n = 0;
    for (int i = 0; i < s->n && n < max; i++) {
        const study_run *ra = &s->runs[i];
        if (!study_match(ra, a) || study_seed_run(s, a, ra->seed) != ra) continue; // one pair per seed
        const study_run *rb = study_seed_run(s, b, ra->seed);
        if (!rb) continue;
        const double x = fn(ra, ctx), y = fn(rb, ctx);
        if (isfinite(x) && isfinite(y)) d[n++] = x - y;
    }
    return n;
}

// ---- Results ----

study_figure *study_add(study_result *res, const char *name, const char *arm, double value, double spread, int n,
                        const char *units, const char *description) {
    static study_figure dropped; // past the table's end: written to, never reported
    if (res->nfig >= STUDY_MAX_FIGURES) {
        res->dropped++;
        return &dropped;
    }
    study_figure *f = &res->fig[res->nfig++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(f->arm, sizeof f->arm, "%s", arm ? arm : "");
    f->value = value;
    f->spread = spread;
    f->n = n;
    snprintf(f->units, sizeof f->units, "%s", units ? units : "1");
    f->threshold = NAN;
    snprintf(f->description, sizeof f->description, "%s", description ? description : "");
    return f;
}

study_figure *study_add_deciding(study_result *res, const char *name, const char *arm, double value, int n,
                                 const char *units, double threshold, const char *description) {
    study_figure *f = study_add(res, name, arm, value, NAN, n, units, description);
    f->deciding = 1;
    f->threshold = threshold;
    return f;
}

study_figure *study_add_agg(study_result *res, const study_set *s, const study_filter *f, const char *name,
                            study_run_fn fn, const void *ctx, const char *units, const char *description) {
    double mean, std;
    const int n = study_aggregate(s, f, fn, ctx, &mean, &std);
    return study_add(res, name, f->arm, mean, std, n, units, description);
}

study_figure *study_add_agg_as(study_result *res, const study_set *s, const study_filter *f, const char *label,
                               const char *name, study_run_fn fn, const void *ctx, const char *units,
                               const char *description) {
    study_figure *x = study_add_agg(res, s, f, name, fn, ctx, units, description);
    snprintf(x->arm, sizeof x->arm, "%s", label);
    return x;
}

static void vformat(char *dst, size_t size, const char *fmt, va_list ap) { vsnprintf(dst, size, fmt, ap); }

void study_decide(study_result *res, study_verdict v, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vformat(res->reason, sizeof res->reason, fmt, ap);
    va_end(ap);
    res->verdict = v;
}

void study_rule(study_result *res, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vformat(res->rule, sizeof res->rule, fmt, ap);
    va_end(ap);
}
