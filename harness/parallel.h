// The communication layer of the training harness: timed collectives, agreement on failures, and
// DDP's gradient buckets. It knows MPI and the flat gradient buffer (kernels/layout.h), nothing of
// any model or fusion method; harness/train.c builds the strategies from these pieces.
//
// Timing: every call here adds its wall time to `exposed` (time the rank waited on communication
// instead of computing) and to `total` (time some communication was in flight: for the buckets,
// from the first post to the last completion). Bytes and calls are counted per collective kind.
#pragma once
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include "../kernels/common.h"
#include "../kernels/layout.h"

typedef enum { PAR_ALLREDUCE, PAR_ALLGATHER, PAR_BCAST, PAR_REDUCE, PAR_SCATTER_GATHER, PAR_KINDS } par_kind;
extern const char *const par_kind_names[PAR_KINDS];

typedef struct {
    double total, exposed;            // seconds, since the last par_timers_reset
    int64_t bytes[PAR_KINDS];         // payload bytes this rank sent into each kind of collective
    int64_t calls[PAR_KINDS];
} par_timers;

// DDP's gradient buckets over a flat gradient buffer: contiguous ranges aligned to tensor
// boundaries, built in reverse declaration order (the order backward produces gradients), the
// first capped at first_mb, the others at cap_mb (a tensor larger than the cap gets a bucket of its
// own), as torch.nn.parallel.DistributedDataParallel builds them. cap_mb = 0: one bucket, reduced
// with one blocking MPI_Allreduce after backward.
typedef struct {
    size_t lo, hi;          // float range [lo, hi) of the gradient buffer
    int first_tensor;       // lowest tensor index inside: the bucket is ready once it is final
    MPI_Request req;
    int posted, done;
} par_bucket;

typedef struct {
    MPI_Comm comm;
    int rank, size;
    par_timers t;
    // buckets
    const fb_layout *P;     // slot 1 = gradients
    par_bucket *buckets;
    int nbuckets, blocking;
    int next;               // next bucket to post
    double first_post, last_done;
    double bucket_exposed;  // this step's time inside MPI for the buckets
    // failures
    char error[512];        // the message agreed on by par_agree (rank-prefixed)
} par;

fb_status par_init(par *p, MPI_Comm comm);
void par_free(par *p);
void par_timers_reset(par *p);

// Every rank passes its local status; returns FB_OK on every rank when all succeeded, else the
// first failing rank's status on every rank, with "rank R: <its fb_last_error()>" in fb_last_error()
// on rank 0 (and in p->error everywhere). Collective: no rank can be left waiting in a later call.
fb_status par_agree(par *p, fb_status local);

// Timed collectives on floats (in place where the MPI call allows it).
void par_allreduce_doubles(par *p, double *x, int n);                       // sum
void par_allgather_floats(par *p, const float *mine, float *all, int n);   // n per rank
void par_bcast_floats(par *p, float *x, size_t n, int root);
void par_bcast_doubles(par *p, double *x, int n, int root);
void par_reduce_floats(par *p, float *x, size_t n, int root);              // sum into root's x
void par_scatter_floats(par *p, const float *all, float *mine, int n, int root);
void par_gather_floats(par *p, const float *mine, float *all, int n, int root);
void par_reduce_max_doubles(par *p, double *x, int n, int root);           // untimed (reporting)

// Buckets over P's gradients (slot 1). cap_mb = 0: blocking mode (one allreduce at finish).
fb_status par_buckets_build(par *p, const fb_layout *P, double cap_mb, double first_mb);
void par_buckets_begin(par *p);                    // before backward
void par_buckets_ready(par *p, int first_final);   // gradients of tensors >= first_final are final
void par_buckets_finish(par *p);                   // after backward: post the rest, wait for all
