// Studies: each claim of the three design documents measured by one small seeded experiment
// (`fusebench study NAME`). A study is a sweep (bench/SWEEP.md: its runs, in arms) and an analysis
// that turns the runs' traces into figures and a verdict — CONFIRMED, REFUTED or INCONCLUSIVE —
// by a rule with stated thresholds.
//
// One study per file in this folder (studies/<name>.c defines `const study_def study_<name>`), one
// line in studies.def. The analysis sees runs as in-memory series and scalars (study_run), never
// files: bench/study.c loads them from the sweep's HDF5 results, and the tests build them by hand
// (synthetic traces whose answer is known). Nothing here prints, reads or writes files.
#pragma once
#include <stddef.h>

typedef enum { STUDY_CONFIRMED, STUDY_REFUTED, STUDY_INCONCLUSIVE } study_verdict;
extern const char *const study_verdict_names[3];

// A run's data, by key. Keys name what a result file holds (results/README.md, fusebench.train):
//   "steps/loss", "traces/fusion/fusion/ratio"       a dataset: the series (steps or traced steps)
//   "summary/holdout_loss", "config/celestial_raw"   an attribute: one value
//   "traces/params/grad_norm@fusion.modality_token"  one tensor's column of a (step, tensor) dataset
typedef struct {
    char key[160];
    double *v;
    size_t n;
} study_value;

typedef struct {
    char id[16];            // the sweep's run id, "r0001"
    char arm[64];           // the sweep arm's label ("-" when the study has no arms)
    char scenario[16], method[48], parallel[16], pairs[16];
    int seed, ranks, batch, steps;
    int complete;           // the result file says the run finished
    int nvalues;
    study_value *values;
} study_run;

typedef struct {
    int n;
    study_run *runs;
} study_set;

#define STUDY_MAX_FIGURES 256

// A figure: a per-arm aggregate over seeds (value = mean, spread = std over seeds; n seeds), or a
// comparison (arm "" or "A vs B"). `deciding`: the rule used it; `threshold`: what it was held to.
typedef struct {
    char name[48];
    char arm[96];
    double value, spread;
    int n;
    char units[16];
    int deciding;
    double threshold;       // NaN: none
    char description[200];
} study_figure;

typedef struct {
    study_verdict verdict;
    char rule[1024];        // the decision rule, thresholds included
    char reason[1024];      // the figures that decided, in one line
    int nfig;
    int dropped;            // figures past STUDY_MAX_FIGURES, not kept (the command says so)
    study_figure fig[STUDY_MAX_FIGURES];
} study_result;

typedef struct {
    const char *name;
    const char *document;       // "000", "002", "003" or "all"
    const char *claim;          // one sentence: what the document says
    const char *spec;           // the sweep specification of its runs (bench/SWEEP.md)
    const char *const *needs;   // keys every run's analysis reads (NULL-terminated); "@TENSOR" keys
                                // take the first tensor whose name contains TENSOR
    const char *minutes;        // rough run time on 2 cores, for --list
    void (*analyse)(const study_set *runs, study_result *res);
} study_def;

#define STUDY(name) extern const study_def study_##name;
#include "studies.def"
#undef STUDY
extern const study_def *const study_defs[];
extern const int study_count;
const study_def *study_find(const char *name);

// ---- For building sets (the loader and the tests) ----
study_run *study_set_add(study_set *s);                       // a zeroed run at the end; NULL: no memory
int study_run_put(study_run *r, const char *key, const double *v, size_t n);   // copies; 0, or -1: no memory
void study_set_free(study_set *s);

// ---- For the analyses ----
// A run's values under key (NULL when absent; *n = 0).
const double *study_get(const study_run *r, const char *key, size_t *n);
// The one value of key (an attribute), or the last value of a series; NaN when absent.
double study_scalar(const study_run *r, const char *key);
// Mean of the finite values of series key over the fraction [from, to) of its length (0, 1: all of
// it; 0.8, 1: the last fifth, at least one value); NaN when absent or none is finite.
double study_window_mean(const study_run *r, const char *key, double from, double to);
double study_window_max(const study_run *r, const char *key, double from, double to);   // finite values only
double study_window_min(const study_run *r, const char *key, double from, double to);

// Runs are selected by arm, scenario, method, parallel, pairs (NULL: any) and ranks (0: any), complete
// ones only.
typedef struct {
    const char *arm, *scenario, *method, *parallel, *pairs;
    int ranks;
} study_filter;
int study_match(const study_run *r, const study_filter *f);

// Per-run figure fn(run) over the runs f selects, aggregated over them: mean, std (population of the
// per-run values; NaN with one run) and the count of finite values. Returns the count.
typedef double (*study_run_fn)(const study_run *r, const void *ctx);
int study_aggregate(const study_set *s, const study_filter *f, study_run_fn fn, const void *ctx, double *mean,
                    double *std);
// The per-run values themselves, in run order (at most max); returns how many.
int study_values(const study_set *s, const study_filter *f, study_run_fn fn, const void *ctx, double *out, int max);

// Smallest and largest of those per-run values (NaN, NaN when none); returns how many.
int study_range(const study_set *s, const study_filter *f, study_run_fn fn, const void *ctx, double *lo, double *hi);
// The complete run of the arm (NULL: any) and method (NULL: any) with this seed; NULL when none.
const study_run *study_seed_run(const study_set *s, const study_filter *f, int seed);
// Paired differences over seeds: for every seed with a run in both a and b, fn(a run) − fn(b run)
// into d (at most max); returns how many pairs.
int study_paired(const study_set *s, const study_filter *a, const study_filter *b, study_run_fn fn, const void *ctx,
                 double *d, int max);

// Adds a figure (past STUDY_MAX_FIGURES it is counted in res->dropped, not kept); returns it for the
// caller to mark.
study_figure *study_add(study_result *res, const char *name, const char *arm, double value, double spread, int n,
                        const char *units, const char *description);
// A figure the rule decides on, with the threshold it is held to.
study_figure *study_add_deciding(study_result *res, const char *name, const char *arm, double value, int n,
                                 const char *units, double threshold, const char *description);
// Aggregates fn over f into a figure named `name` for f->arm; returns the figure (value NaN, n 0
// when no run matched).
study_figure *study_add_agg(study_result *res, const study_set *s, const study_filter *f, const char *name,
                            study_run_fn fn, const void *ctx, const char *units, const char *description);
// The same under another arm label (METHOD/ARM, SCOPE@RANKS).
study_figure *study_add_agg_as(study_result *res, const study_set *s, const study_filter *f, const char *label,
                               const char *name, study_run_fn fn, const void *ctx, const char *units,
                               const char *description);
void study_decide(study_result *res, study_verdict v, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void study_rule(study_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Common per-run figures (ctx: the key, a const char *).
double study_fn_scalar(const study_run *r, const void *key);          // study_scalar
double study_fn_mean(const study_run *r, const void *key);            // study_window_mean over all of it
double study_fn_max(const study_run *r, const void *key);             // largest finite value
double study_fn_min(const study_run *r, const void *key);             // smallest finite value
double study_fn_max_abs(const study_run *r, const void *key);         // largest |finite value|
double study_fn_late_mean(const study_run *r, const void *key);       // over the last 30%
double study_fn_early_mean(const study_run *r, const void *key);      // over the first 30%
// The weak branch's gradient share at fusion point `point` (ctx: "fusion"): mean ‖∂L/∂b‖ / mean
// ‖∂L/∂a‖ over the traced steps — both see the same ∂L/∂out, so the share divides out whatever scale
// the loss gives it.
double study_fn_branch_share(const study_run *r, const void *point);
