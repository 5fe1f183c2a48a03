// Statistics and stability verdicts of a training run: see traces.h.
#include "traces.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/optim.h"

// ---------------------------------------------------------------- fixed-chunk sums

// A sum over n items is cut into chunks of at least TRACE_CHUNK_WORK floats of work, at most
// TRACE_MAX_CHUNKS of them (their partial sums live on the stack). The cut depends on n and the
// work per item only, and the partials are added in chunk order: the same bits on any thread count.
#define TRACE_CHUNK_WORK 4096
#define TRACE_MAX_CHUNKS 256

// What a range function reads: elements of x (and y), or rows of x, cols floats wide.
typedef struct {
    const float *x, *y;
    double centre;      // a value subtracted from each element (a mean, 0.5)
    size_t cols;
} range_ctx;

// Σ over items [lo, hi), in order.
typedef double (*range_sum_fn)(const range_ctx *c, size_t lo, size_t hi);

// Σ over items [0, n) of f, each item `work` floats of work (1 for an element, cols for a row).
static double fixed_chunk_sum(range_sum_fn f, const range_ctx *c, size_t n, size_t work) {
    if (n == 0) return 0.0;
    if (work == 0) work = 1;
    size_t chunk = (n + TRACE_MAX_CHUNKS - 1) / TRACE_MAX_CHUNKS;
    size_t min_items = (TRACE_CHUNK_WORK + work - 1) / work;
    if (chunk < min_items) chunk = min_items;
    const int nchunks = (int)((n + chunk - 1) / chunk);
    double partial[TRACE_MAX_CHUNKS];
    #pragma omp parallel for schedule(static) if (nchunks > 1 && n > FB_OMP_MIN_WORK / work)
    for (int k = 0; k < nchunks; k++) {
        size_t lo = (size_t)k * chunk, hi = lo + chunk < n ? lo + chunk : n;
        partial[k] = f(c, lo, hi);
    }
    double s = 0.0;
    for (int k = 0; k < nchunks; k++) s += partial[k];
    return s;
}

// Element sums in TRACE_LANES interleaved double accumulators (a fixed order that vectorises; one
// accumulator would be a chain of dependent adds, ~4 cycles per element), added pairwise at the end.
#define TRACE_LANES 16
#define LANE_SUM(lo, hi, term)                                                            \
    double acc[TRACE_LANES] = {0};                                                        \
    size_t i = (lo);                                                                      \
    for (; i + TRACE_LANES <= (hi); i += TRACE_LANES)                                     \
        for (int j = 0; j < TRACE_LANES; j++) { const size_t k = i + (size_t)j; acc[j] += (term); } \
    for (int j = 0; i < (hi); i++, j++) { const size_t k = i; acc[j] += (term); }          \
    for (int w = TRACE_LANES / 2; w > 0; w /= 2)                                          \
        for (int j = 0; j < w; j++) acc[j] += acc[j + w];                                 \
    return acc[0]

static inline double sq(double d) { return d * d; }

static double sum_values(const range_ctx *c, size_t lo, size_t hi) {   // Σ x
    LANE_SUM(lo, hi, (double)c->x[k]);
}

static double sum_sq_dev(const range_ctx *c, size_t lo, size_t hi) {   // Σ (x − centre)²
    LANE_SUM(lo, hi, sq((double)c->x[k] - c->centre));
}

static double sum_abs_dev(const range_ctx *c, size_t lo, size_t hi) {  // Σ |x − centre|
    LANE_SUM(lo, hi, fabs((double)c->x[k] - c->centre));
}

static double sum_sq_diff(const range_ctx *c, size_t lo, size_t hi) {  // Σ (x − y)², exact per term
    LANE_SUM(lo, hi, sq((double)c->x[k] - (double)c->y[k]));
}

static double sum_row_norms(const range_ctx *c, size_t lo, size_t hi) {   // Σ_rows ‖row‖
    double s = 0.0;
    // One row is far below any parallel grain: the serial form, no OpenMP region per row.
    for (size_t r = lo; r < hi; r++) s += sqrt(fb_sumsq_serial(c->x + r * c->cols, c->cols));
    return s;
}

static double sum_row_entropy(const range_ctx *c, size_t lo, size_t hi) {   // Σ_rows −Σ p log p
    double s = 0.0;
    for (size_t r = lo; r < hi; r++) {
        const float *p = c->x + r * c->cols;
        for (size_t j = 0; j < c->cols; j++)
            if (p[j] > 0.0f) s -= (double)p[j] * log((double)p[j]);   // 0 log 0 = 0
    }
    return s;
}

// ---------------------------------------------------------------- statistics

double trace_mean_row_norm(const float *x, size_t rows, int cols) {
    if (!x || rows == 0 || cols <= 0) return NAN;
    range_ctx c = { .x = x, .cols = (size_t)cols };
    return fixed_chunk_sum(sum_row_norms, &c, rows, (size_t)cols) / (double)rows;
}

void trace_moments(const float *x, size_t n, double *mean, double *std) {
    double m = NAN, sd = NAN;
    if (x && n > 0) {
        range_ctx c = { .x = x };
        m = fixed_chunk_sum(sum_values, &c, n, 1) / (double)n;
        c.centre = m;
        sd = sqrt(fixed_chunk_sum(sum_sq_dev, &c, n, 1) / (double)n);
    }
    if (mean) *mean = m;
    if (std) *std = sd;
}

int trace_any_nonzero(const float *g, size_t n) {
    if (!g) return 0;
    // Blocks of 64: an OR of the bits without the sign (so −0 counts as zero, NaN as non-zero) is
    // one vectorised pass per block, and the test after each block stops at the first live one.
    for (size_t lo = 0; lo < n; lo += 64) {
        size_t hi = lo + 64 < n ? lo + 64 : n;
        uint32_t any = 0;
        for (size_t i = lo; i < hi; i++) {
            uint32_t u;
            memcpy(&u, &g[i], sizeof u);
            any |= u & 0x7fffffffu;
        }
        if (any) return 1;
    }
    return 0;
}

int64_t trace_count_nonfinite(const float *x, size_t n) {
    if (!x) return 0;
    int64_t bad = 0;
    #pragma omp parallel for schedule(static) reduction(+ : bad) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) bad += !isfinite(x[i]);
    return bad;
}

int trace_norm_warning(double norm) {
    if (norm > TRACE_NORM_HIGH) return 1;
    if (norm < TRACE_NORM_LOW) return -1;
    return 0;
}

// ---------------------------------------------------------------- one fusion point

// Norm, mean and std of one stream x (rows, cols).
static void stream_stats(const float *x, size_t rows, int cols, double *norm, double *mean, double *std) {
    *norm = trace_mean_row_norm(x, rows, cols);
    trace_moments(x, rows * (size_t)cols, mean, std);
}

// g (n), n > 0.
static void gate_stats(trace_fusion_stats *s, const float *g, size_t n) {
    s->has_gate = 1;
    s->gate_values = (int64_t)n;
    trace_moments(g, n, &s->gate_mean, &s->gate_std);
    range_ctx c = { .x = g, .centre = 0.5 };
    s->gate_dev = fixed_chunk_sum(sum_abs_dev, &c, n, 1) / (double)n;
    // Minimum, maximum and a count are exact in any order: a plain OpenMP reduction will do.
    double lo = INFINITY, hi = -INFINITY;
    int64_t sat = 0;
    #pragma omp parallel for schedule(static) reduction(min : lo) reduction(max : hi) reduction(+ : sat) \
        if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        double v = g[i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
        sat += v < TRACE_GATE_SAT_LOW || v > TRACE_GATE_SAT_HIGH;
    }
    s->gate_min = lo;
    s->gate_max = hi;
    s->gate_saturated_count = sat;
    s->gate_saturated = (double)sat > TRACE_GATE_SAT_FRACTION * (double)n;
}

// See trace_fusion_stats.attention_spread. Weights (samples · positions, keys), row-major; serial
// (a few thousand weights at a traced step) and in a fixed order, so the figure is thread-independent.
static double attention_spread(const fusion_diag *d) {
    const int P = d->att_positions, K = d->att_cols;
    if (P < 2 || d->att_rows % P != 0) return NAN;
    const int samples = d->att_rows / P;
    double total = 0;
    for (int b = 0; b < samples; b++) {
        const float *w = d->attention + (size_t)b * P * K;
        for (int k = 0; k < K; k++) {
            double mean = 0, var = 0;
            for (int p = 0; p < P; p++) mean += w[(size_t)p * K + k];
            mean /= P;
            for (int p = 0; p < P; p++) {
                const double e = w[(size_t)p * K + k] - mean;
                var += e * e;
            }
            total += sqrt(var / P);
        }
    }
    return total / ((double)samples * K);
}

static fb_status check_point(const float *a, size_t rows_a, int D, const float *b, size_t rows_b, int E,
                             const float *out, size_t rows_out, int D_out, const fusion_diag *diag) {
    FB_REQUIRE(a && b, FB_ERR_SHAPE, "trace_fusion_point: missing stream %s", a ? "b" : "a");
    FB_REQUIRE(rows_a > 0 && D > 0 && rows_b > 0 && E > 0, FB_ERR_SHAPE,
               "trace_fusion_point: a (%zu, %d), b (%zu, %d): every size must be > 0", rows_a, D, rows_b, E);
    FB_REQUIRE(!out || (rows_out > 0 && D_out > 0), FB_ERR_SHAPE,
               "trace_fusion_point: out (%zu, %d): every size must be > 0", rows_out, D_out);
    if (diag) {
        FB_REQUIRE(!diag->attention || (diag->att_rows > 0 && diag->att_cols > 0), FB_ERR_SHAPE,
                   "trace_fusion_point: attention (%d, %d): every size must be > 0", diag->att_rows, diag->att_cols);
        FB_REQUIRE(!diag->routes || (diag->route_count >= 0 && diag->experts > 0), FB_ERR_SHAPE,
                   "trace_fusion_point: %d routes over %d experts", diag->route_count, diag->experts);
    }
    return FB_OK;
}

fb_status trace_fusion_point(trace_fusion_stats *s, const float *a, size_t rows_a, int D,
                             const float *b, size_t rows_b, int E, const float *out, size_t rows_out,
                             int D_out, const fusion_diag *diag) {
    FB_REQUIRE(s, FB_ERR_SHAPE, "trace_fusion_point: missing statistics struct");
    memset(s, 0, sizeof *s);
    fb_status st = check_point(a, rows_a, D, b, rows_b, E, out, rows_out, D_out, diag);
    if (st != FB_OK) {
        s->norm_a = s->norm_b = s->mean_a = s->std_a = s->mean_b = s->std_b = s->ratio = NAN;
        return st;
    }
    stream_stats(a, rows_a, D, &s->norm_a, &s->mean_a, &s->std_a);
    stream_stats(b, rows_b, E, &s->norm_b, &s->mean_b, &s->std_b);
    s->ratio = s->norm_a / (s->norm_b + TRACE_RATIO_EPS);
    s->imbalance_warning = s->ratio > TRACE_IMBALANCE_WARN_HIGH || s->ratio < TRACE_IMBALANCE_WARN_LOW;
    if (out) {
        s->has_out = 1;
        stream_stats(out, rows_out, D_out, &s->out_norm, &s->out_mean, &s->out_std);
    }
    if (!diag) return FB_OK;
    if (diag->gate && diag->gate_count > 0) gate_stats(s, diag->gate, diag->gate_count);
    if (diag->attention) {
        s->has_attention = 1;
        range_ctx c = { .x = diag->attention, .cols = (size_t)diag->att_cols };
        s->attention_entropy = fixed_chunk_sum(sum_row_entropy, &c, (size_t)diag->att_rows, c.cols) / diag->att_rows;
    }
    if (diag->attention) s->attention_spread = attention_spread(diag);
    if (diag->has_cost) {
        s->has_cost = 1;
        s->aux_loss = diag->aux_loss;
        s->cost_expected = diag->cost_expected;
        s->cost_budget = diag->cost_budget;
    }
    if (diag->routes) {
        s->experts = diag->experts < TRACE_MAX_EXPERTS ? diag->experts : TRACE_MAX_EXPERTS;
        for (int i = 0; i < diag->route_count; i++) {
            int k = diag->routes[i];
            if (k >= 0 && k < s->experts) s->routes[k]++;
        }
    }
    return FB_OK;
}

// ---------------------------------------------------------------- parameters

// ‖w − prev‖ / ‖prev‖ over n floats; see trace_param_norms for ‖prev‖ = 0.
static double relative_change(const float *w, const float *prev, size_t n) {
    range_ctx c = { .x = w, .y = prev };
    double moved = sqrt(fixed_chunk_sum(sum_sq_diff, &c, n, 1));
    double base = fb_norm2(prev, n);
    if (base != 0.0 || isnan(moved)) return moved / base;
    return moved == 0.0 ? 0.0 : INFINITY;
}

fb_status trace_param_norms(const fb_layout *P, const float *w, const float *g, const float *w_prev,
                            double *wnorm, double *gnorm, double *update_ratio) {
    FB_REQUIRE(P, FB_ERR_SHAPE, "trace_param_norms: missing parameter layout");
    for (int i = 0; i < P->count; i++) {
        const fb_tensor *t = &P->tensors[i];
        if (wnorm) wnorm[i] = w ? fb_norm2(w + t->offset, t->numel) : NAN;
        if (gnorm) gnorm[i] = g ? fb_norm2(g + t->offset, t->numel) : NAN;
        if (update_ratio)
            update_ratio[i] = w && w_prev ? relative_change(w + t->offset, w_prev + t->offset, t->numel) : NAN;
    }
    return FB_OK;
}

// ---------------------------------------------------------------- the run

// What the verdicts need of one traced step of a fusion point.
enum { SAMPLE_RATIO, SAMPLE_GRAD_A, SAMPLE_GRAD_B, SAMPLE_GATE_DEV, SAMPLE_GATE_SAT, SAMPLE_FIELDS };
// SAMPLE_GRAD_A + branch (0 = a, 1 = b). grad: mean row norm of ∂loss/∂a or ∂loss/∂b (NaN: unknown);
// gate_dev: mean |g − 0.5|, gate_sat: saturated fraction of the gate values (both NaN: no gate).
typedef struct { double v[SAMPLE_FIELDS]; } point_sample;

typedef struct {
    char name[FB_NAME_MAX];
    point_sample *samples;        // (n) traced steps, in order
    size_t n, cap;
    int64_t first_step, last_step;
    int64_t warnings;             // per-step imbalance warnings
} point_trace;

struct trace_run {
    int n_tensors, n_points;
    char (*tensor_names)[FB_NAME_MAX];   // (n_tensors)
    point_trace *points;                 // (n_points)
    // trace_run_grads
    int64_t grad_steps;
    uint8_t *ever_nonzero;               // (n_tensors)
    uint8_t *expected_zero;              // (n_tensors) zero gradient by construction
    int64_t *nonfinite;                  // (n_tensors) non-finite gradient values seen
    int first_bad_tensor;                // first tensor with a non-finite gradient, −1: none
    int64_t first_bad_grad_step;
    // trace_run_loss
    int64_t losses, bad_losses, first_bad_loss_step;
    double window[TRACE_SPIKE_WINDOW];   // the last finite losses, a ring
    int window_n, window_next;
    int64_t spike_checks, spikes, first_spike_step;
    double max_spike;                    // largest loss / median seen
    // trace_run_eval_check
    int64_t eval_checks, eval_diffs, first_eval_diff_step;
    double max_eval_diff;                // NaN sticks: a NaN difference cannot be ordered
};

static void copy_name(char dst[FB_NAME_MAX], const char *src) {
    snprintf(dst, FB_NAME_MAX, "%s", src);
}

fb_status trace_run_create(trace_run **out, int n_tensors, const char *const *tensor_names, int n_points,
                           const char *const *point_names) {
    FB_REQUIRE(out, FB_ERR_SHAPE, "trace_run_create: missing result pointer");
    *out = NULL;
    FB_REQUIRE(n_tensors >= 0 && n_points >= 0, FB_ERR_SHAPE,
               "trace_run_create: %d tensors, %d fusion points (must be >= 0)", n_tensors, n_points);
    FB_REQUIRE((n_tensors == 0 || tensor_names) && (n_points == 0 || point_names), FB_ERR_SHAPE,
               "trace_run_create: missing %s names", n_tensors && !tensor_names ? "tensor" : "fusion point");
    for (int i = 0; i < n_tensors; i++)
        FB_REQUIRE(tensor_names[i], FB_ERR_SHAPE, "trace_run_create: tensor %d has no name", i);
    for (int p = 0; p < n_points; p++)
        FB_REQUIRE(point_names[p], FB_ERR_SHAPE, "trace_run_create: fusion point %d has no name", p);

    trace_run *r = calloc(1, sizeof *r);
    if (!r) return fb_fail(FB_ERR_ALLOC, "trace_run_create: run struct");
    r->n_tensors = n_tensors;
    r->n_points = n_points;
    // calloc(0) may return NULL: allocate at least one element so NULL always means failure.
    r->tensor_names = calloc((size_t)n_tensors + 1, sizeof *r->tensor_names);
    r->ever_nonzero = calloc((size_t)n_tensors + 1, sizeof *r->ever_nonzero);
    r->expected_zero = calloc((size_t)n_tensors + 1, sizeof *r->expected_zero);
    r->nonfinite = calloc((size_t)n_tensors + 1, sizeof *r->nonfinite);
    r->points = calloc((size_t)n_points + 1, sizeof *r->points);
    if (!r->tensor_names || !r->ever_nonzero || !r->expected_zero || !r->nonfinite || !r->points) {
        trace_run_destroy(r);
        return fb_fail(FB_ERR_ALLOC, "trace_run_create: tables for %d tensors and %d points", n_tensors, n_points);
    }
    for (int i = 0; i < n_tensors; i++) copy_name(r->tensor_names[i], tensor_names[i]);
    for (int p = 0; p < n_points; p++) copy_name(r->points[p].name, point_names[p]);
    r->first_bad_tensor = -1;
    *out = r;
    return FB_OK;
}

void trace_run_destroy(trace_run *r) {
    if (!r) return;
    for (int p = 0; r->points && p < r->n_points; p++) free(r->points[p].samples);
    free(r->points);
    free(r->tensor_names);
    free(r->ever_nonzero);
    free(r->expected_zero);
    free(r->nonfinite);
    free(r);
}

static int compare_doubles(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

// Median of n finite values (the mean of the middle two for even n).
static double median(const double *x, int n) {
    double s[TRACE_SPIKE_WINDOW];
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, compare_doubles);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

fb_status trace_run_loss(trace_run *r, int64_t step, double loss) {
    if (!r) return FB_OK;
    r->losses++;
    if (!isfinite(loss)) {   // divergence's; kept out of the spike window, which stays finite
        if (r->bad_losses++ == 0) r->first_bad_loss_step = step;
        return FB_OK;
    }
    if (r->window_n == TRACE_SPIKE_WINDOW) {
        double med = median(r->window, r->window_n);
        if (med > 0.0) {
            r->spike_checks++;
            if (loss / med > r->max_spike) r->max_spike = loss / med;
            if (loss > TRACE_SPIKE_FACTOR * med && r->spikes++ == 0) r->first_spike_step = step;
        }
    }
    r->window[r->window_next] = loss;
    r->window_next = (r->window_next + 1) % TRACE_SPIKE_WINDOW;
    if (r->window_n < TRACE_SPIKE_WINDOW) r->window_n++;
    return FB_OK;
}

fb_status trace_run_grads(trace_run *r, int64_t step, const fb_layout *P, const float *g, int may_be_nonfinite) {
    if (!r) return FB_OK;
    FB_REQUIRE(P && g, FB_ERR_SHAPE, "trace_run_grads: missing %s", P ? "gradient buffer" : "layout");
    FB_REQUIRE(P->count == r->n_tensors, FB_ERR_SHAPE, "trace_run_grads: layout has %d tensors, the run %d",
               P->count, r->n_tensors);
    for (int i = 0; i < P->count; i++) {
        const float *gi = g + P->tensors[i].offset;
        size_t n = P->tensors[i].numel;
        if (!r->ever_nonzero[i]) r->ever_nonzero[i] = (uint8_t)trace_any_nonzero(gi, n);
        int64_t bad = may_be_nonfinite ? trace_count_nonfinite(gi, n) : 0;
        if (bad && r->first_bad_tensor < 0) {
            r->first_bad_tensor = i;
            r->first_bad_grad_step = step;
        }
        r->nonfinite[i] += bad;
    }
    r->grad_steps++;
    return FB_OK;
}

fb_status trace_run_fusion(trace_run *r, int point, int64_t step, const trace_fusion_stats *s,
                           double grad_norm_a, double grad_norm_b) {
    if (!r) return FB_OK;
    FB_REQUIRE(point >= 0 && point < r->n_points, FB_ERR_SHAPE, "trace_run_fusion: point %d of %d", point,
               r->n_points);
    FB_REQUIRE(s, FB_ERR_SHAPE, "trace_run_fusion: missing statistics");
    point_trace *p = &r->points[point];
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        point_sample *grown = realloc(p->samples, cap * sizeof *grown);
        if (!grown) return fb_fail(FB_ERR_ALLOC, "trace_run_fusion: %zu samples of %s", cap, p->name);
        p->samples = grown;
        p->cap = cap;
    }
    int gated = s->has_gate && s->gate_values > 0;
    p->samples[p->n++] = (point_sample){ .v = {
        [SAMPLE_RATIO] = s->ratio,
        [SAMPLE_GRAD_A] = grad_norm_a,
        [SAMPLE_GRAD_B] = grad_norm_b,
        [SAMPLE_GATE_DEV] = gated ? s->gate_dev : NAN,
        [SAMPLE_GATE_SAT] = gated ? (double)s->gate_saturated_count / (double)s->gate_values : NAN,
    } };
    if (p->n == 1) p->first_step = step;
    p->last_step = step;
    p->warnings += s->imbalance_warning != 0;
    return FB_OK;
}

fb_status trace_run_eval_check(trace_run *r, int64_t step, double max_abs_diff) {
    if (!r) return FB_OK;
    r->eval_checks++;
    if (!(max_abs_diff <= 0.0) && r->eval_diffs++ == 0) r->first_eval_diff_step = step;
    if (isnan(max_abs_diff) || max_abs_diff > r->max_eval_diff) r->max_eval_diff = max_abs_diff;
    return FB_OK;
}

// ---------------------------------------------------------------- per-point series

typedef struct {
    double mean, min, max;   // NaN when no finite entry
    size_t finite;
} series_stats;

// Field `field` of the samples [lo, hi) of p, NaN entries skipped.
static series_stats series(const point_trace *p, int field, size_t lo, size_t hi) {
    series_stats s = { .mean = NAN, .min = NAN, .max = NAN };
    double sum = 0.0;
    for (size_t i = lo; i < hi; i++) {
        double v = p->samples[i].v[field];
        if (isnan(v)) continue;
        if (s.finite == 0 || v < s.min) s.min = v;
        if (s.finite == 0 || v > s.max) s.max = v;
        sum += v;
        s.finite++;
    }
    if (s.finite) s.mean = sum / (double)s.finite;
    return s;
}

void trace_run_point_summary(const trace_run *r, int point, double *mean_ratio, double *min_ratio,
                             double *max_ratio, int64_t *imbalance_warnings) {
    series_stats s = { .mean = NAN, .min = NAN, .max = NAN };
    int64_t warnings = 0;
    if (r && point >= 0 && point < r->n_points) {
        const point_trace *p = &r->points[point];
        s = series(p, SAMPLE_RATIO, 0, p->n);
        warnings = p->warnings;
    }
    if (mean_ratio) *mean_ratio = s.mean;
    if (min_ratio) *min_ratio = s.min;
    if (max_ratio) *max_ratio = s.max;
    if (imbalance_warnings) *imbalance_warnings = warnings;
}

// ---------------------------------------------------------------- verdicts

// Writes verdicts into out[0, max) and counts them all; those past max go to a scratch slot.
typedef struct {
    trace_verdict *out;
    int max, count;
    trace_verdict scratch;
} verdict_writer;

static void format_into(char *dst, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void format_into(char *dst, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, size, fmt, ap);
    va_end(ap);
}

// The next verdict: named, evaluable, not fired, value NaN; the caller fills in the rest.
static trace_verdict *verdict_begin(verdict_writer *w, const char *name, const char *subject, double threshold) {
    trace_verdict *v = w->count < w->max ? &w->out[w->count] : &w->scratch;
    w->count++;
    memset(v, 0, sizeof *v);
    format_into(v->name, sizeof v->name, "%s", name);
    format_into(v->subject, sizeof v->subject, "%s", subject);
    v->evaluable = 1;
    v->value = NAN;
    v->threshold = threshold;
    return v;
}

static void not_evaluable(trace_verdict *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void not_evaluable(trace_verdict *v, const char *fmt, ...) {
    v->evaluable = 0;
    v->fired = 0;
    v->value = NAN;
    int n = snprintf(v->detail, sizeof v->detail, "not evaluable: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->detail + n, sizeof v->detail - (size_t)n, fmt, ap);
    va_end(ap);
}

// ", "-joined names of the dead tensors (count of them) into dst, ending in " +N more" when they do
// not all fit.
static void join_dead_names(char *dst, size_t size, const trace_run *r, int count, int expected) {
    const size_t more_room = sizeof " +2147483647 more";
    size_t len = 0;
    int listed = 0;
    dst[0] = '\0';
    for (int i = 0; i < r->n_tensors && listed < count; i++) {
        if (r->ever_nonzero[i] || r->expected_zero[i] != expected) continue;
        size_t need = strlen(r->tensor_names[i]) + (listed ? 2 : 0);
        size_t reserve = listed + 1 < count ? more_room : 0;   // the last name needs no " +N more"
        if (len + need + reserve >= size) break;
        len += (size_t)snprintf(dst + len, size - len, "%s%s", listed ? ", " : "", r->tensor_names[i]);
        listed++;
    }
    if (listed < count) snprintf(dst + len, size - len, "%s+%d more", listed ? " " : "", count - listed);
}

static void verdict_dead_parameters(const trace_run *r, verdict_writer *w) {
    int dead = 0, expected = 0;
    for (int i = 0; i < r->n_tensors; i++) {
        dead += !r->ever_nonzero[i] && !r->expected_zero[i];
        expected += !r->ever_nonzero[i] && r->expected_zero[i];
    }
    char names[sizeof w->scratch.subject];
    join_dead_names(names, sizeof names, r, r->grad_steps ? dead : 0, 0);
    trace_verdict *v = verdict_begin(w, "dead_parameters", names, 0.0);
    if (r->grad_steps == 0) { not_evaluable(v, "no gradients recorded"); return; }
    v->value = dead;
    v->fired = dead > 0;
    long long steps = (long long)r->grad_steps;
    if (dead == 1)
        format_into(v->detail, sizeof v->detail, "%s: gradient identically zero over %lld steps", names, steps);
    else if (dead > 1)
        format_into(v->detail, sizeof v->detail, "%d of %d tensors with gradient identically zero over %lld steps: %s",
                    dead, r->n_tensors, steps, names);
    else
        format_into(v->detail, sizeof v->detail, "all %d tensors had a non-zero gradient within %lld steps",
                    r->n_tensors - expected, steps);
    if (expected > 0) {   // listed after the verdict's own sentence
        char free_names[sizeof w->scratch.subject];
        join_dead_names(free_names, sizeof free_names, r, expected, 1);
        const size_t used = strlen(v->detail);
        format_into(v->detail + used, sizeof v->detail - used, "; not counted, zero by construction: %s", free_names);
    }
}

int64_t trace_run_nonfinite(const trace_run *r) {
    int64_t bad = 0;
    for (int i = 0; r && i < r->n_tensors; i++) bad += r->nonfinite[i];
    return bad;
}

void trace_run_expect_zero_grad(trace_run *r, int tensor) {
    if (r && tensor >= 0 && tensor < r->n_tensors) r->expected_zero[tensor] = 1;
}

static void verdict_nondeterministic_eval(const trace_run *r, verdict_writer *w) {
    trace_verdict *v = verdict_begin(w, "nondeterministic_eval", "", 0.0);
    if (r->eval_checks == 0) { not_evaluable(v, "no evaluation check run"); return; }
    v->value = r->max_eval_diff;
    v->fired = r->eval_diffs > 0;
    if (v->fired)
        format_into(v->detail, sizeof v->detail,
                    "%lld of %lld evaluation checks differed (first at step %lld); largest max |out1 - out2| %.3g",
                    (long long)r->eval_diffs, (long long)r->eval_checks, (long long)r->first_eval_diff_step,
                    r->max_eval_diff);
    else
        format_into(v->detail, sizeof v->detail, "%lld evaluation checks, both passes identical",
                    (long long)r->eval_checks);
}

static void verdict_divergence(const trace_run *r, verdict_writer *w) {
    int64_t bad_grads = 0;
    for (int i = 0; i < r->n_tensors; i++) bad_grads += r->nonfinite[i];
    trace_verdict *v = verdict_begin(w, "divergence", r->first_bad_tensor >= 0 ? r->tensor_names[r->first_bad_tensor] : "",
                                     0.0);
    if (r->losses == 0 && r->grad_steps == 0) { not_evaluable(v, "no losses or gradients recorded"); return; }
    v->value = (double)(r->bad_losses + bad_grads);
    v->fired = v->value > 0;
    char loss_part[96] = "", grad_part[160] = "";
    if (r->bad_losses)
        format_into(loss_part, sizeof loss_part, "non-finite loss at %lld of %lld steps (first at step %lld)",
                    (long long)r->bad_losses, (long long)r->losses, (long long)r->first_bad_loss_step);
    if (bad_grads)
        format_into(grad_part, sizeof grad_part, "%lld non-finite gradient values (first in %s at step %lld)",
                    (long long)bad_grads, r->tensor_names[r->first_bad_tensor], (long long)r->first_bad_grad_step);
    if (v->fired)
        format_into(v->detail, sizeof v->detail, "%s%s%s", loss_part, *loss_part && *grad_part ? "; " : "", grad_part);
    else
        format_into(v->detail, sizeof v->detail, "%lld losses and the gradients of %lld steps all finite",
                    (long long)r->losses, (long long)r->grad_steps);
}

static void verdict_loss_spike(const trace_run *r, verdict_writer *w) {
    trace_verdict *v = verdict_begin(w, "loss_spike", "", TRACE_SPIKE_FACTOR);
    if (r->spike_checks == 0) {
        int64_t finite = r->losses - r->bad_losses;
        if (finite <= TRACE_SPIKE_WINDOW) {
            not_evaluable(v, "%lld finite losses (needs %d)", (long long)finite, TRACE_SPIKE_WINDOW + 1);
            return;
        }
        not_evaluable(v, "the median of the previous %d losses was never > 0", TRACE_SPIKE_WINDOW);
        return;
    }
    v->value = r->max_spike;
    v->fired = r->spikes > 0;
    if (v->fired)
        format_into(v->detail, sizeof v->detail,
                    "%lld steps with loss > %g x the median of the previous %d (first at step %lld); largest ratio %.3g",
                    (long long)r->spikes, TRACE_SPIKE_FACTOR, TRACE_SPIKE_WINDOW, (long long)r->first_spike_step,
                    r->max_spike);
    else
        format_into(v->detail, sizeof v->detail, "largest loss / median of the previous %d: %.3g over %lld steps",
                    TRACE_SPIKE_WINDOW, r->max_spike, (long long)r->spike_checks);
}

static void verdict_magnitude_imbalance(const point_trace *p, verdict_writer *w) {
    trace_verdict *v = verdict_begin(w, "magnitude_imbalance", p->name, NAN);
    series_stats s = series(p, SAMPLE_RATIO, 0, p->n);
    if (s.finite == 0) { not_evaluable(v, "%s: no traced step with a ratio", p->name); return; }
    v->value = s.mean;
    v->threshold = s.mean >= 1.0 ? TRACE_IMBALANCE_MEAN_HIGH : TRACE_IMBALANCE_MEAN_LOW;
    v->fired = s.mean > TRACE_IMBALANCE_MEAN_HIGH || s.mean < TRACE_IMBALANCE_MEAN_LOW;
    format_into(v->detail, sizeof v->detail,
                "%s: mean norm_a / norm_b %.3g (min %.3g, max %.3g) over %zu traced steps; %lld per-step warnings (> %g or < %g)",
                p->name, s.mean, s.min, s.max, s.finite, (long long)p->warnings, TRACE_IMBALANCE_WARN_HIGH,
                TRACE_IMBALANCE_WARN_LOW);
}

static void verdict_gradient_starvation(const point_trace *p, int branch, verdict_writer *w) {
    const char x_name = "ab"[branch], y_name = "ab"[1 - branch];
    char subject[sizeof w->scratch.subject];
    format_into(subject, sizeof subject, "%s:%c", p->name, x_name);
    trace_verdict *v = verdict_begin(w, "gradient_starvation", subject, TRACE_STARVATION_COLLAPSE);
    const size_t n = p->n, q = n / 4;
    if (n < TRACE_STARVATION_MIN_STEPS) {
        not_evaluable(v, "%s: %zu traced steps (needs %d)", subject, n, TRACE_STARVATION_MIN_STEPS);
        return;
    }
    // Window means, early = the first quarter of the traced steps, late = the last.
    const int fx = SAMPLE_GRAD_A + branch, fy = SAMPLE_GRAD_A + 1 - branch;
    double x_early = series(p, fx, 0, q).mean, x_late = series(p, fx, n - q, n).mean;
    if (!isfinite(x_early) || !isfinite(x_late)) {
        not_evaluable(v, "%s: gradient norm of branch %c not recorded", subject, x_name);
        return;
    }
    v->value = x_late / x_early;
    int collapsed = x_late < TRACE_STARVATION_COLLAPSE * x_early;
    long long s0 = (long long)p->first_step, s1 = (long long)p->last_step;

    double dev_early = series(p, SAMPLE_GATE_DEV, 0, q).mean, dev_late = series(p, SAMPLE_GATE_DEV, n - q, n).mean;
    if (isfinite(dev_early) && isfinite(dev_late)) {   // gated: the gate must be closing
        v->fired = collapsed && dev_late > dev_early;
        format_into(v->detail, sizeof v->detail,
                    "%s: gradient norm %.3g -> %.3g (x%.3g) while mean |g - 0.5| went %.3f -> %.3f (steps %lld-%lld)",
                    subject, x_early, x_late, v->value, dev_early, dev_late, s0, s1);
        return;
    }
    // No gate: the collapse must be relative to the other branch (x_late/y_late < c x_early/y_early,
    // multiplied out so that a zero norm does not divide).
    double y_early = series(p, fy, 0, q).mean, y_late = series(p, fy, n - q, n).mean;
    if (!isfinite(y_early) || !isfinite(y_late)) {
        not_evaluable(v, "%s: no gate, and the gradient norm of branch %c not recorded", subject, y_name);
        return;
    }
    v->fired = collapsed && x_late * y_early < TRACE_STARVATION_COLLAPSE * x_early * y_late;
    format_into(v->detail, sizeof v->detail,
                "%s: gradient norm %.3g -> %.3g (x%.3g), branch %c's %.3g -> %.3g; no gate (steps %lld-%lld)",
                subject, x_early, x_late, v->value, y_name, y_early, y_late, s0, s1);
}

static void verdict_gate_saturation(const point_trace *p, verdict_writer *w) {
    trace_verdict *v = verdict_begin(w, "gate_saturation", p->name, TRACE_GATE_SAT_FRACTION);
    if (p->n == 0) { not_evaluable(v, "%s: no traced steps", p->name); return; }
    const size_t q = p->n / 4 > 0 ? p->n / 4 : 1;
    double frac = series(p, SAMPLE_GATE_SAT, p->n - q, p->n).mean;
    if (isnan(frac)) { not_evaluable(v, "%s: no gate", p->name); return; }
    v->value = frac;
    v->fired = frac > TRACE_GATE_SAT_FRACTION;
    format_into(v->detail, sizeof v->detail,
                "%s: %.1f%% of gate values saturated (g < %g or > %g) over the last %zu traced steps",
                p->name, 100.0 * frac, TRACE_GATE_SAT_LOW, TRACE_GATE_SAT_HIGH, q);
}

int trace_run_verdicts(const trace_run *r, trace_verdict *out, int max) {
    if (!r) return 0;
    verdict_writer w = { .out = out, .max = out && max > 0 ? max : 0 };
    verdict_dead_parameters(r, &w);
    verdict_nondeterministic_eval(r, &w);
    verdict_divergence(r, &w);
    verdict_loss_spike(r, &w);
    for (int p = 0; p < r->n_points; p++) {
        verdict_magnitude_imbalance(&r->points[p], &w);
        verdict_gradient_starvation(&r->points[p], 0, &w);
        verdict_gradient_starvation(&r->points[p], 1, &w);
        verdict_gate_saturation(&r->points[p], &w);
    }
    return w.count;
}
