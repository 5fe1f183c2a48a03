// Statistics and stability verdicts of a training run: pure computation on plain arrays — no MPI,
// no files, no knowledge of a fusion method or scenario (a method is seen only through its
// fusion_diag). The harness computes the statistics on the steps it traces, feeds them to a
// trace_run, and writes the statistics and the verdicts to HDF5.
//
// Where the numbers come from. FusionDiagnostics and NormMonitor of the 000 source system
// (../shared/SOURCE-SYSTEMS.md): the norm of a tensor is the L2 norm over its last dimension, then
// the mean over all other positions; std is the population std; ratio = norm_a / (norm_b + 1e-8);
// a per-step "magnitude imbalance" warning at ratio > 10 or < 0.1, a run-level flag at a mean
// ratio > 5 or < 0.2; NormMonitor warns at norms above 100 or below 0.01. Everything else here
// (gate saturation, attention entropy, routes, parameter update ratios, the verdicts) goes beyond
// those two classes; each definition below says why it is what it is.
//
// Arithmetic. Every sum runs in double. Sums over many values are split into chunks whose
// boundaries depend on the sizes only, summed in parallel (OpenMP above FB_OMP_MIN_WORK floats of
// work) and added in chunk order, as fb_sumsq does (kernels/optim.h): results are bitwise the same
// on any thread count. Counts, minima and maxima are exact in any order.
//
// Shapes: x (rows, cols) is row-major; a fusion point's a is (rows_a, D) — (B·S, D) for a sequence
// stream — b (rows_b, E), out (rows_out, D_out).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "../kernels/common.h"
#include "../kernels/fusion/fusion.h"
#include "../kernels/layout.h"

// ---------------------------------------------------------------- thresholds

// FusionDiagnostics: ratio = norm_a / (norm_b + TRACE_RATIO_EPS); per-step warning outside
// [TRACE_IMBALANCE_WARN_LOW, TRACE_IMBALANCE_WARN_HIGH]; run-level flag when the mean ratio over
// the traced steps is outside [TRACE_IMBALANCE_MEAN_LOW, TRACE_IMBALANCE_MEAN_HIGH].
#define TRACE_RATIO_EPS 1e-8
#define TRACE_IMBALANCE_WARN_HIGH 10.0
#define TRACE_IMBALANCE_WARN_LOW 0.1
#define TRACE_IMBALANCE_MEAN_HIGH 5.0
#define TRACE_IMBALANCE_MEAN_LOW 0.2
// NormMonitor: a module output's mean row norm above HIGH or below LOW is suspicious.
#define TRACE_NORM_HIGH 100.0
#define TRACE_NORM_LOW 0.01
// A gate value is saturated below LOW or above HIGH: its sigmoid's slope g(1 − g) is < 0.0099
// there, so less than 4% of the gradient at g = 0.5 passes through the gate. A point's gate is
// saturated when more than TRACE_GATE_SAT_FRACTION of its values are.
#define TRACE_GATE_SAT_LOW 0.01
#define TRACE_GATE_SAT_HIGH 0.99
#define TRACE_GATE_SAT_FRACTION 0.5
// Route counts are kept for experts [0, TRACE_MAX_EXPERTS) (as the SDE route counters).
#define TRACE_MAX_EXPERTS 8
// gradient_starvation: needs this many traced steps; a branch starves when its late gradient norm
// falls below TRACE_STARVATION_COLLAPSE × its early one.
#define TRACE_STARVATION_MIN_STEPS 8
#define TRACE_STARVATION_COLLAPSE 0.1
// loss_spike: a loss above TRACE_SPIKE_FACTOR × the median of the TRACE_SPIKE_WINDOW previous ones.
#define TRACE_SPIKE_WINDOW 20
#define TRACE_SPIKE_FACTOR 10.0

// ---------------------------------------------------------------- statistics

// NormMonitor's and FusionDiagnostics' norm: mean over rows of the L2 norm of each row.
// x is (rows, cols). NaN when x is NULL, rows = 0 or cols <= 0.
double trace_mean_row_norm(const float *x, size_t rows, int cols);
// Mean and population std of x (n), two passes (mean, then Σ(x − mean)², which does not cancel the
// way Σx² − n·mean² does). Both NaN when x is NULL or n = 0. Either output may be NULL.
void trace_moments(const float *x, size_t n, double *mean, double *std);
// 1 when some value of g (n) is not ±0 (NaN counts as non-zero); stops at the first such block, so
// a live gradient costs a few dozen floats. 0 for NULL or n = 0.
int trace_any_nonzero(const float *g, size_t n);
// Number of NaN and ±Inf values in x (n); 0 for NULL or n = 0.
int64_t trace_count_nonfinite(const float *x, size_t n);
// NormMonitor's warning: +1 above TRACE_NORM_HIGH, −1 below TRACE_NORM_LOW, else 0 (NaN: 0, as in
// NormMonitor, whose comparisons are false for NaN; non-finite values are divergence's business).
int trace_norm_warning(double norm);

// The statistics of one fusion point at one step. Fields a statistic does not apply to are 0
// (has_* = 0, experts = 0).
typedef struct {
    double norm_a, norm_b;          // trace_mean_row_norm of a and b
    double mean_a, std_a, mean_b, std_b;
    double ratio;                   // norm_a / (norm_b + TRACE_RATIO_EPS)
    int imbalance_warning;          // ratio > 10 or < 0.1 (FusionDiagnostics' per-step warning)
    int has_gate;                   // diag->gate with gate_count > 0
    double gate_mean, gate_std, gate_min, gate_max;
    double gate_dev;                // mean |g − 0.5| in [0, 0.5]: 0 = an open gate, 0.5 = all at 0 or 1
    int64_t gate_values;            // diag->gate_count
    int64_t gate_saturated_count;   // values with g < 0.01 or g > 0.99
    int gate_saturated;             // gate_saturated_count > 50% of gate_values
    int has_out;                    // out given
    double out_norm, out_mean, out_std;
    int has_attention;              // diag->attention given
    double attention_entropy;       // mean over rows of −Σ p log p (nats) of the head-averaged weights;
                                    // log(att_cols) for uniform rows, 0 for one-hot rows
    double attention_spread;        // mean over samples and keys of the std over a sample's query
                                    // positions of the weight: 0 when every position attends alike
                                    // (one key token, or one query); NaN with one position per sample
    int has_cost;                   // the method has a cost model (diag->has_cost)
    double aux_loss, cost_expected, cost_budget;
    int experts;                    // min(diag->experts, TRACE_MAX_EXPERTS); 0 without routes
    int64_t routes[TRACE_MAX_EXPERTS];   // samples per expert; route values outside [0, experts)
                                         // are not counted
} trace_fusion_stats;

// Fills s for one fusion point: a (rows_a, D), b (rows_b, E), out (rows_out, D_out) or NULL, diag
// (the method's fusion_diag after its forward) or NULL. FB_ERR_SHAPE on a missing a, b or s, a zero
// row count, a width <= 0, or inconsistent diag sizes; s is then zeroed, its a and b statistics NaN.
fb_status trace_fusion_point(trace_fusion_stats *s, const float *a, size_t rows_a, int D,
                             const float *b, size_t rows_b, int E, const float *out, size_t rows_out,
                             int D_out, const fusion_diag *diag);

// Per parameter tensor i of P (NormMonitor for parameters): w, g and w_prev are slot bases
// (P->base[0] style: tensor i at P->tensors[i].offset, P->tensors[i].numel floats).
//   wnorm[i]        ‖w_i‖
//   gnorm[i]        ‖g_i‖
//   update_ratio[i] ‖w_i − w_prev_i‖ / ‖w_prev_i‖: the relative size of the last update (~1e-3 is
//                   healthy for Adam-style training). When ‖w_prev_i‖ = 0 (a zero-initialised bias
//                   at step 1): 0 if the tensor did not move, +Inf if it did — a move off exactly
//                   zero has no finite relative size, and Inf says "moved" where 0 would hide it.
// Outputs are arrays of P->count; any may be NULL (not computed). A NULL input makes the outputs
// that need it NaN (w_prev = NULL: update_ratio NaN). FB_ERR_SHAPE when P is NULL.
fb_status trace_param_norms(const fb_layout *P, const float *w, const float *g, const float *w_prev,
                            double *wnorm, double *gnorm, double *update_ratio);

// ---------------------------------------------------------------- the run and its verdicts

// One verdict. Every kind is evaluated on every run, so a file can say "checked, clean": fired = 0
// with evaluable = 1. A verdict without enough data to judge has evaluable = 0, fired = 0 and a
// detail saying what was missing.
typedef struct {
    char name[32];        // the kind, one of those listed below
    char subject[128];    // fusion point ("point" or "point:a" / "point:b" for a branch), tensor
                          // name(s) (truncated with " +N more"), or "" for the run as a whole
    int fired;            // 1 = problem found
    int evaluable;        // 0 = not enough data (fired is then 0)
    double value;         // the measured quantity (NaN when not evaluable); see each kind
    double threshold;     // what value was compared against
    char detail[256];     // one line for people
} trace_verdict;

// The verdict kinds, in the order trace_run_verdicts writes them: first the run's, then, for each
// fusion point in creation order, the point's.
//
// Run verdicts
//   dead_parameters        Tensors whose gradient was identically zero (every value ±0) at every
//                          step given to trace_run_grads (at least one). A parameter that never
//                          gets a gradient never trains: an unused branch, a detached path, a
//                          route never taken. value = number of dead tensors, threshold = 0;
//                          subject lists them.
//   nondeterministic_eval  Some trace_run_eval_check had max_abs_diff > 0 (or NaN, which cannot
//                          show equality): two evaluation passes over one batch differed, so
//                          dropout or route sampling leaks into evaluation, or a reduction order
//                          varies. value = the largest difference, threshold = 0. Not evaluable
//                          without a check.
//   divergence             A non-finite loss (trace_run_loss) or gradient value (trace_run_grads).
//                          value = non-finite losses + non-finite gradient values, threshold = 0;
//                          subject = the first tensor with a non-finite gradient, if any.
//   loss_spike             A finite loss > 10 × the median of the 20 finite losses before it,
//                          judged from the 21st finite loss on, at steps where that median is > 0
//                          (a factor of a non-positive median means nothing). A spike that
//                          recovers is invisible in the final loss but marks an unstable run
//                          (too high a learning rate, a bad batch). value = the largest
//                          loss / median seen, threshold = 10.
// Per fusion point (traced steps = calls of trace_run_fusion for that point; window means skip
// NaN entries)
//   magnitude_imbalance    FusionDiagnostics' summary flag: the mean ratio over the traced steps is
//                          > 5 or < 0.2 — one stream dominates the fused output. value = mean ratio,
//                          threshold = the bound nearer to it (5 when value >= 1, else 0.2);
//                          detail adds min, max and the count of per-step warnings (> 10 or < 0.1).
//   gradient_starvation    Once for each branch X (subject "point:a", "point:b"; Y = the other).
//                          With n >= 8 traced steps and q = n / 4, "early" = the first q traced
//                          steps, "late" = the last q. Branch X collapses when
//                              mean late ‖∂loss/∂X‖ < 0.1 × mean early ‖∂loss/∂X‖
//                          (the grad_norm_a / grad_norm_b given to trace_run_fusion). It fires when
//                          X collapses and
//                            - with a gate: the gate saturates, mean late gate_dev > mean early
//                              gate_dev (mean |g − 0.5|): the gate closing is what starves X, the
//                              classic failure of gated fusion (one modality wins early, the gate
//                              shuts the other out and its encoder stops learning);
//                            - without a gate: X's norm relative to Y's collapses too,
//                              X_late / Y_late < 0.1 × X_early / Y_early (window means of the two
//                              branches' gradient norms) — both branches decaying together (the
//                              loss converging) is not starvation.
//                          value = late / early mean of X's gradient norm, threshold = 0.1.
//                          Not evaluable with fewer than 8 traced steps, unknown (NaN) gradient
//                          norms, or (no gate) unknown norms of Y.
//   gate_saturation        More than 50% of the gate values saturated (g < 0.01 or > 0.99), on
//                          average over the last quarter of the traced steps (at least the last
//                          one): a saturated sigmoid passes almost no gradient, so the gate stops
//                          learning where it stands. value = that mean fraction, threshold = 0.5.
//                          Not evaluable for a point without a gate or without traced steps.
#define TRACE_RUN_VERDICTS 4       // verdicts of the run
#define TRACE_POINT_VERDICTS 4     // verdicts per fusion point (starvation counts twice)

typedef struct trace_run trace_run;

// tensor_names (n_tensors) name the parameter tensors in layout order (P->tensors[i] of
// trace_run_grads); point_names (n_points) the fusion points. Both are copied (truncated to
// FB_NAME_MAX − 1 characters). FB_ERR_SHAPE on negative counts or missing names, FB_ERR_ALLOC.
fb_status trace_run_create(trace_run **r, int n_tensors, const char *const *tensor_names, int n_points,
                           const char *const *point_names);
void trace_run_destroy(trace_run *r);   // NULL is fine
// Tensor i's gradient is zero by construction (fb_tensor.grad_free): dead_parameters lists it
// apart and does not fire for it. Out of range: ignored.
void trace_run_expect_zero_grad(trace_run *r, int tensor);
// Non-finite gradient values seen by trace_run_grads so far (all tensors); 0 for a NULL run.
int64_t trace_run_nonfinite(const trace_run *r);

// Recorders, from serial code, steps in increasing order. A NULL run makes each a no-op (FB_OK).
// Every step: the loss.
fb_status trace_run_loss(trace_run *r, int64_t step, double loss);
// Every step: the gradients g (slot base of P, P->count == n_tensors, else FB_ERR_SHAPE): per
// tensor "ever non-zero" (only checked until it first is) and non-finite counts.
// may_be_nonfinite = 0 when the caller knows every value is finite (a finite global norm: a sum of
// float squares in double cannot overflow), which skips the count, the only full pass.
fb_status trace_run_grads(trace_run *r, int64_t step, const fb_layout *P, const float *g, int may_be_nonfinite);
// Every traced step of fusion point `point`: its statistics and the mean row norms of ∂loss/∂a and
// ∂loss/∂b at that point (trace_mean_row_norm of the input gradients; NaN if unknown).
// FB_ERR_SHAPE for a point out of range or s = NULL, FB_ERR_ALLOC.
fb_status trace_run_fusion(trace_run *r, int point, int64_t step, const trace_fusion_stats *s,
                           double grad_norm_a, double grad_norm_b);
// Two evaluation passes over one batch; max_abs_diff = max |out1 − out2| (> 0: non-deterministic).
fb_status trace_run_eval_check(trace_run *r, int64_t step, double max_abs_diff);

// Writes the first min(count, max) verdicts into out and returns count =
// TRACE_RUN_VERDICTS + TRACE_POINT_VERDICTS × n_points (snprintf-style: (r, NULL, 0) sizes out).
int trace_run_verdicts(const trace_run *r, trace_verdict *out, int max);

// The end-of-run table of a point: mean, min and max of its ratio over the traced steps (NaN
// entries skipped; NaN when none) and the number of per-step imbalance warnings. Point out of
// range: NaN and 0. Any output may be NULL.
void trace_run_point_summary(const trace_run *r, int point, double *mean_ratio, double *min_ratio,
                             double *max_ratio, int64_t *imbalance_warnings);
