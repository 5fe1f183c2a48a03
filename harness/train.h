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
#include "model.h"

typedef enum { TRAIN_DATAPARALLEL, TRAIN_DDP } train_strategy;
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
} train_config;

// Per-step figures. Times are seconds, the maximum over ranks.
enum { TT_DATA, TT_FORWARD, TT_LOSS, TT_BACKWARD, TT_COMM, TT_COMM_EXPOSED, TT_OPTIMIZER, TT_STEP, TT_COUNT };
extern const char *const train_time_names[TT_COUNT];

typedef struct {
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
} train_result;

// Runs on every rank of comm. Returns FB_OK on every rank, or the same failure status on every
// rank, with the reason (prefixed by the failing rank) in fb_last_error() on rank 0. result is
// filled on rank 0 (others: left empty); free it with train_result_free.
fb_status train_run(const train_config *c, MPI_Comm comm, train_result *result);
void train_result_free(train_result *r);
// Defaults of every field (scenario NULL, method NULL: the scenario's default).
train_config train_defaults(void);
