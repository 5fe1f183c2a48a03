#include "parallel.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const par_kind_names[PAR_KINDS] = { "allreduce", "allgather", "bcast", "reduce", "scatter_gather" };

fb_status par_init(par *p, MPI_Comm comm) {
    memset(p, 0, sizeof *p);
    p->comm = comm;
    MPI_Comm_rank(comm, &p->rank);
    MPI_Comm_size(comm, &p->size);
    return FB_OK;
}

void par_free(par *p) {
    free(p->buckets);
    p->buckets = NULL;
    p->nbuckets = 0;
}

void par_timers_reset(par *p) { memset(&p->t, 0, sizeof p->t); }

// A blocking call: its whole duration is exposed, and it is communication in flight.
static void account(par *p, par_kind k, double t0, size_t bytes) {
    const double dt = MPI_Wtime() - t0;
    p->t.exposed += dt;
    p->t.total += dt;
    p->t.bytes[k] += (int64_t)bytes;
    p->t.calls[k]++;
}

fb_status par_agree(par *p, fb_status local) {
    const double t0 = MPI_Wtime();
    int mine = local != FB_OK ? p->rank : INT_MAX, first = INT_MAX;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, p->comm);
    if (first == INT_MAX) {
        account(p, PAR_ALLREDUCE, t0, sizeof(int));
        return FB_OK;
    }
    // The lowest failing rank tells everyone what happened (its status and message).
    struct { int status; char msg[480]; } what;
    memset(&what, 0, sizeof what);
    if (p->rank == first) {
        what.status = (int)local;
        snprintf(what.msg, sizeof what.msg, "%s", fb_last_error());
    }
    MPI_Bcast(&what, (int)sizeof what, MPI_BYTE, first, p->comm);
    account(p, PAR_ALLREDUCE, t0, sizeof(int) + sizeof what);
    snprintf(p->error, sizeof p->error, "rank %d: %s", first, what.msg);
    return fb_fail((fb_status)what.status, "%s", p->error);
}

void par_allreduce_doubles(par *p, double *x, int n) {
    const double t0 = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, p->comm);
    account(p, PAR_ALLREDUCE, t0, (size_t)n * sizeof(double));
}

void par_allgather_floats(par *p, const float *mine, float *all, int n) {
    const double t0 = MPI_Wtime();
    MPI_Allgather(mine, n, MPI_FLOAT, all, n, MPI_FLOAT, p->comm);
    account(p, PAR_ALLGATHER, t0, (size_t)n * sizeof(float));
}

// Counts above INT_MAX go in pieces (MPI counts are int).
#define PAR_PIECE ((size_t)1 << 30)

void par_bcast_floats(par *p, float *x, size_t n, int root) {
    const double t0 = MPI_Wtime();
    for (size_t i = 0; i < n; i += PAR_PIECE)
        MPI_Bcast(x + i, (int)(n - i < PAR_PIECE ? n - i : PAR_PIECE), MPI_FLOAT, root, p->comm);
    account(p, PAR_BCAST, t0, p->rank == root ? n * sizeof(float) : 0);
}

void par_bcast_doubles(par *p, double *x, int n, int root) {
    const double t0 = MPI_Wtime();
    MPI_Bcast(x, n, MPI_DOUBLE, root, p->comm);
    account(p, PAR_BCAST, t0, p->rank == root ? (size_t)n * sizeof(double) : 0);
}

void par_reduce_floats(par *p, float *x, size_t n, int root) {
    const double t0 = MPI_Wtime();
    for (size_t i = 0; i < n; i += PAR_PIECE) {
        const int c = (int)(n - i < PAR_PIECE ? n - i : PAR_PIECE);
        MPI_Reduce(p->rank == root ? MPI_IN_PLACE : x + i, x + i, c, MPI_FLOAT, MPI_SUM, root, p->comm);
    }
    account(p, PAR_REDUCE, t0, n * sizeof(float));
}

void par_scatter_floats(par *p, const float *all, float *mine, int n, int root) {
    const double t0 = MPI_Wtime();
    MPI_Scatter(all, n, MPI_FLOAT, mine, n, MPI_FLOAT, root, p->comm);
    account(p, PAR_SCATTER_GATHER, t0, p->rank == root ? (size_t)n * p->size * sizeof(float) : 0);
}

void par_gather_floats(par *p, const float *mine, float *all, int n, int root) {
    const double t0 = MPI_Wtime();
    MPI_Gather(mine, n, MPI_FLOAT, all, n, MPI_FLOAT, root, p->comm);
    account(p, PAR_SCATTER_GATHER, t0, (size_t)n * sizeof(float));
}

void par_reduce_max_doubles(par *p, double *x, int n, int root) {
    MPI_Reduce(p->rank == root ? MPI_IN_PLACE : x, x, n, MPI_DOUBLE, MPI_MAX, root, p->comm);
}

// ---------------------------------------------------------------- buckets

fb_status par_buckets_build(par *p, const fb_layout *P, double cap_mb, double first_mb) {
    FB_REQUIRE(cap_mb >= 0 && first_mb >= 0, FB_ERR_CONFIG, "bucket sizes must be >= 0 MB (got %g, first %g)",
               cap_mb, first_mb);
    FB_REQUIRE(P->count > 0 && P->base[1], FB_ERR_CONFIG, "buckets need an allocated parameter layout with gradients");
    par_free(p);
    p->P = P;
    p->blocking = cap_mb == 0;
    p->buckets = calloc((size_t)P->count, sizeof *p->buckets);
    FB_REQUIRE(p->buckets, FB_ERR_ALLOC, "cannot allocate %d gradient buckets", P->count);
    if (p->blocking) {   // one bucket: the whole buffer
        p->buckets[0] = (par_bucket){ .lo = 0, .hi = P->total, .first_tensor = 0 };
        p->nbuckets = 1;
        return FB_OK;
    }
    const size_t MiB = (size_t)1 << 20;
    size_t cap = (size_t)(first_mb > 0 ? first_mb * MiB : cap_mb * MiB) / sizeof(float);
    size_t hi = P->total;
    int n = 0;
    for (int t = P->count - 1; t >= 0; t--) {
        const size_t lo = P->tensors[t].offset;
        if (hi - lo >= cap || t == 0) {   // close the bucket [lo, hi) at this tensor
            p->buckets[n++] = (par_bucket){ .lo = lo, .hi = hi, .first_tensor = t };
            hi = lo;
            cap = (size_t)(cap_mb * MiB) / sizeof(float);
        }
    }
    p->nbuckets = n;
    return FB_OK;
}

void par_buckets_begin(par *p) {
    p->next = 0;
    p->first_post = p->last_done = p->bucket_exposed = 0;
    for (int i = 0; i < p->nbuckets; i++) p->buckets[i].posted = p->buckets[i].done = 0;
}

// Tests every posted, unfinished bucket (this is also what progresses them: Open MPI advances
// non-blocking collectives only inside MPI calls).
static void test_posted(par *p) {
    for (int i = 0; i < p->next; i++) {
        par_bucket *b = &p->buckets[i];
        if (b->done) continue;
        int flag = 0;
        MPI_Test(&b->req, &flag, MPI_STATUS_IGNORE);
        if (flag) {
            b->done = 1;
            p->last_done = MPI_Wtime();
        }
    }
}

static void post_ready(par *p, int first_final) {
    float *g = p->P->base[1];
    while (p->next < p->nbuckets && p->buckets[p->next].first_tensor >= first_final) {
        par_bucket *b = &p->buckets[p->next++];
        if (p->first_post == 0) p->first_post = MPI_Wtime();
        MPI_Iallreduce(MPI_IN_PLACE, g + b->lo, (int)(b->hi - b->lo), MPI_FLOAT, MPI_SUM, p->comm, &b->req);
        b->posted = 1;
        p->t.bytes[PAR_ALLREDUCE] += (int64_t)((b->hi - b->lo) * sizeof(float));
        p->t.calls[PAR_ALLREDUCE]++;
    }
}

void par_buckets_ready(par *p, int first_final) {
    if (p->blocking) return;
    const double t0 = MPI_Wtime();
    post_ready(p, first_final);
    test_posted(p);
    const double dt = MPI_Wtime() - t0;   // time spent in MPI here is time not computing
    p->t.exposed += dt;
    p->bucket_exposed += dt;
}

void par_buckets_finish(par *p) {
    const double t0 = MPI_Wtime();
    if (p->blocking) {
        const size_t n = p->P->total;
        float *g = p->P->base[1];
        for (size_t i = 0; i < n; i += PAR_PIECE)
            MPI_Allreduce(MPI_IN_PLACE, g + i, (int)(n - i < PAR_PIECE ? n - i : PAR_PIECE), MPI_FLOAT, MPI_SUM, p->comm);
        account(p, PAR_ALLREDUCE, t0, n * sizeof(float));
        return;
    }
    post_ready(p, 0);
    for (int i = 0; i < p->nbuckets; i++)
        if (!p->buckets[i].done) {
            MPI_Wait(&p->buckets[i].req, MPI_STATUS_IGNORE);
            p->buckets[i].done = 1;
        }
    const double t1 = MPI_Wtime();
    p->t.exposed += t1 - t0;
    p->bucket_exposed += t1 - t0;
    if (p->last_done < t1) p->last_done = t1;
    // In flight from the first post to the last completion; never less than the time spent waiting.
    const double span = p->last_done - p->first_post;
    p->t.total += span > p->bucket_exposed ? span : p->bucket_exposed;
}
