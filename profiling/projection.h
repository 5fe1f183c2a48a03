// Scaling projection: a step's time on P = nodes × ranks_per_node ranks from one measured run's
// compute and a latency–bandwidth (α–β) model of the collectives. Pure arithmetic: the driver
// (bench/bench_project.c) reads the measurements from result files.
//
// Model (per step, weak scaling: the batch per rank stays fixed):
//   compute    C = forward + backward + loss + optimizer + data, measured on one rank (or the run's
//                  slowest rank), unchanged with P;
//   ddp        the gradient allreduce of G bytes as a ring: T_ar(P) = 2(P−1)·α + 2(P−1)/P · G·β,
//              of which a fraction `exposed` is not hidden behind backward (measured: the run's
//              exposed / total communication; 1 when the run had no communication to measure);
//              pair scope global/blockdiag adds an allgather of the outputs, (P−1)·α + (P−1)/P·A·β;
//   dataparallel  rank 0 scatters the inputs, gathers the outputs, reduces the gradients and
//              broadcasts the parameters every step, all exposed: 2·⌈log2 P⌉·(α + G·β) for the
//              reduce and the broadcast (binomial trees), plus (P−1)·α + (P−1)/P·(I + O)·β for the
//              scatter and gather of I input and O output bytes of the global batch.
// α and β: within a node from `fusebench comm` (fitted to its allreduce table), between nodes
// from the user (latency, bandwidth) or the same fit; a step on more than one node uses the
// inter-node figures (the ring's slowest link).
// Efficiency(P) = step(1) / step(P) (the throughput per rank relative to one rank).
#pragma once
#include "../kernels/common.h"

typedef struct { double alpha_s, beta_s_per_byte; } proj_link;   // latency (s), 1 / bandwidth (s/B)

// Least-squares fit of t = a + b·m over (bytes m, seconds t) points with m >= min_bytes, then the
// per-step ring parameters of a P0-rank allreduce: α = a / (2(P0−1)), β = b / (2(P0−1)/P0).
// FB_ERR_CONFIG with fewer than 2 usable points, P0 < 2, or a non-positive fitted slope.
fb_status proj_fit_allreduce(const double *bytes, const double *seconds, int n, double min_bytes, int p0,
                             proj_link *link);

typedef enum { PROJ_DDP, PROJ_DDP_GATHERED, PROJ_DATAPARALLEL } proj_strategy;

typedef struct {
    proj_strategy strategy;
    double compute_s;        // C
    double grad_bytes;       // G
    double exposed;          // fraction of the ddp allreduce not hidden (0..1)
    double gather_bytes;     // A (ddp gathered pair scopes): output rows of the global batch
    double input_bytes, output_bytes;   // I, O per rank (dataparallel)
} proj_run;

// Seconds of one step on `ranks` ranks over `nodes` nodes (intra used when nodes == 1).
double proj_step(const proj_run *r, int nodes, int ranks, const proj_link *intra, const proj_link *inter);
