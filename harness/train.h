// The training loop: one scenario model (harness/model.h), one parallel strategy, an optimizer,
// checkpoints and progress, over the ranks of an MPI communicator. Drivers (bench/bench_train.c)
// fill a train_config, call train_run on every rank, and write rank 0's train_result.
//
// Strategies (harness/README.md has the derivations):
//   dataparallel  torch.nn.DataParallel: rank 0 makes the global batch and scatters the inputs;
//                 outputs are gathered to rank 0, which computes the loss over all B rows (every
//                 pair) and scatters d(loss)/d(out) back; gradients are summed to rank 0, which
//                 clips and steps; the parameters are broadcast every step.
//   ddp           each rank makes its own rows; gradients are averaged with MPI_Iallreduce in
//                 buckets posted as backward finishes them (bucket_mb = 0: one blocking
//                 MPI_Allreduce); every rank clips and steps. Pair scope of a pairwise loss:
//                   local      each rank's own pairs (torch DDP)
//                   global     outputs all-gathered; every pair of the global batch counts; each
//                              rank differentiates its own rows (no second communication)
//                   blockdiag  gathered, but cross-rank pairs masked and pairwise terms scaled by the
//                              world size (the source system's FSDP path)
// Data: global row g of step s is sample s·B + g of the scenario's generator, so any number of
// ranks sees the same global batch, and a rank's dropout masks follow the global row.
#pragma once
#include <mpi.h>
#include <stdint.h>
#include "../kernels/optim.h"
#include "../profiling/sde.h"
#include "model.h"
#include "monitor.h"

typedef enum { TRAIN_DATAPARALLEL, TRAIN_DDP } train_strategy;
typedef struct train_result train_result;
typedef struct train_sink train_sink;
typedef enum { TRAIN_PAIRS_LOCAL, TRAIN_PAIRS_GLOBAL, TRAIN_PAIRS_BLOCKDIAG } train_pairs;
extern const char *const train_strategy_names[2];
extern const char *const train_pairs_names[3];

typedef struct {
    const scenario *scenario;
    model_config model;          // method, variant, sizes, dropout, seed (model.B is set here)
    int batch;                   // global batch B (divided over the ranks)
    int steps;                   // optimizer steps of the whole run (the schedule's length)
    train_strategy strategy;
    train_pairs pairs;           // ddp only
    double bucket_mb, first_bucket_mb;
    fb_optim_config optim;
    double lr_min;               // end of the cosine
    int warmup;                  // warm-up steps
    double clip;                 // max global gradient norm; 0: no clipping
    const char *checkpoint;      // file rewritten every checkpoint_every steps and at the end; NULL: none;
                                 // "{step}" in it is replaced by the completed step count
    int checkpoint_every;
    const char *resume;          // checkpoint to continue from; NULL: fresh start
    int progress;                // rank 0 shows progress (bar on a terminal, lines otherwise)
    double progress_seconds;     // interval between progress lines when not on a terminal
    int poison_step;             // testing: a NaN in the output of global row B-1 at this step; -1: never
    monitor_config monitor;      // counters, traces, checks (harness/monitor.h)
    int holdout;                 // samples of the held-out evaluation after training (0: none); see
                                 // train_result.holdout_*
    const train_sink *sink;      // rank 0 receives every step and trace as it happens; NULL: none
} train_config;

// Per-step figures. Times are seconds, the maximum over ranks.
enum { TT_DATA, TT_FORWARD, TT_LOSS, TT_BACKWARD, TT_COMM, TT_COMM_EXPOSED, TT_OPTIMIZER, TT_STEP, TT_COUNT };
extern const char *const train_time_names[TT_COUNT];

#define TRAIN_MAX_VERDICTS 64
#define TRAIN_HOLDOUT_FIRST (UINT64_C(1) << 40)   // first held-out sample index (a run trains on steps x B < 2^40)

struct train_result {
    int first_step, steps;       // steps [first_step, first_step + steps) ran (first_step > 0 on resume)
    int n_terms;
    const char *term_names[MODEL_MAX_TERMS];
    double *terms;               // (steps, n_terms): the loss terms as the strategy defines them
    double *loss;                // (steps)
    double *lr, *grad_norm;      // (steps): learning rate used, global gradient norm before clipping
    double *times;               // (steps, TT_COUNT)
    int64_t comm_bytes[5], comm_calls[5];   // rank 0's totals per par_kind over the steps
    int ranks, nbuckets;
    size_t n_params;             // parameters (numel, padding excluded)
    double wall;                 // seconds of the whole loop
    char param_checksum[32];     // hex digest of rank 0's final parameters
    // Counters (rank 0: every rank's, gathered). Regions: PROF_REGION_COUNT (phases, then overlays).
    int counted;                 // 0: counting was off (the arrays below are NULL)
    int threads;                 // T: the largest OpenMP team of any rank (smaller teams padded with 0)
    int n_events;                // E: requested events
    char (*event_names)[128];    // (E)
    int *event_available;        // (E) 1 when counted on every thread of every rank
    char (*event_reasons)[512];  // (E) why not (rank 0's view; "" when available)
    char statement[512];         // rank 0's one-line statement on hardware counters
    char papi_version[32];
    int64_t *counter_values;     // (ranks, T, regions, E)
    int64_t *real_ns;            // (ranks, regions)
    int64_t *virt_ns;            // (ranks, T, regions)
    int64_t *region_calls;       // (ranks, regions)
    int64_t sde[FB_SDE_COUNT];   // fusebench's SDE counters, summed over ranks
    // Held-out evaluation (rank 0, train_config.holdout > 0): the final model in evaluation mode on
    // `holdout` samples no run trains on (generator indices from TRAIN_HOLDOUT_FIRST), every loss
    // term over all of them (a pairwise term over every pair, whatever --pairs the run trained
    // with), and the accuracy of a classifier (NaN otherwise).
    int holdout_n;
    double holdout_terms[MODEL_MAX_TERMS], holdout_loss, holdout_accuracy;
    // Verdicts (rank 0).
    int64_t norm_warnings;       // NormMonitor warnings over the traced steps (module output norms > 100 or < 0.01)
    int n_verdicts;
    trace_verdict verdicts[TRAIN_MAX_VERDICTS];
};

// Streaming results (rank 0). `begin` runs once the model exists (names below are final); `step`
// after every step with row i of r complete and the step's trace (NULL when the step was not
// traced). A non-OK status stops the run on every rank with the sink's message.
struct train_sink {
    void *ctx;
    fb_status (*begin)(void *ctx, const train_result *r, const monitor_trace *names);
    fb_status (*step)(void *ctx, const train_result *r, int i, const monitor_trace *trace);
};

// Runs on every rank of comm. Returns FB_OK on every rank, or the same failure status on every
// rank, with the reason (prefixed by the failing rank) in fb_last_error() on rank 0. result is
// filled on rank 0 (others: left empty); free it with train_result_free.
fb_status train_run(const train_config *c, MPI_Comm comm, train_result *result);
void train_result_free(train_result *r);
// Defaults of every field (scenario NULL, method NULL: the scenario's default).
train_config train_defaults(void);
