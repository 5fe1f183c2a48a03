// `fusebench comm`: OSU-style MPI collective micro-benchmarks. Per message size: the latency and
// bandwidth of MPI_Allreduce and MPI_Allgather, and how much of an MPI_Iallreduce a compute kernel
// of the same length hides (osu_iallreduce's overall / compute / pure comm / overlap %).
//
// Phases (HPCG's shape): options → MPI set-up and rank census (hosts, binding, threads) → header →
// per op: buffers, then per size a validation call (result checked element by element), warm-up,
// timed calls → report (tables printed as they go, FOM lines, HDF5 from rank 0).
//
// Timing discipline (OSU's): warm-up calls are not timed; a barrier precedes every call; only the
// call itself is inside the timer (MPI_Wtime); each rank averages its own calls and the per-rank
// averages are reduced across ranks to min / avg / max. Buffers are reused call after call
// (warm-cache, as in OSU).
//
// Conventions (stated in --help and results/README.md):
//   bytes       allreduce: the size of the reduced vector (float, MPI_SUM), the same on every rank.
//               allgather: what EACH rank contributes (OSU's osu_allgather convention); every rank
//               receives P × bytes.
//   bandwidth   GB/s = 1e9 B/s. algbw = bytes moved by the operation / avg latency, with bytes =
//               the vector for allreduce and P × bytes (the gathered buffer) for allgather.
//               busbw (NCCL-tests): allreduce algbw × 2(P−1)/P, allgather algbw × (P−1)/P — what
//               each link carries in a bandwidth-optimal algorithm, comparable across P.
//   overlap     pure comm = MPI_Iallreduce + MPI_Wait; a single-threaded FMA loop runs for that
//               long (by the clock, as OSU's dummy_compute); overall = post MPI_Iallreduce, run the loop in slices of --slice-us
//               with MPI_Test between slices (Open MPI has no progress thread: a non-blocking
//               collective advances only inside MPI calls), MPI_Wait. compute = the loop's own time
//               (MPI_Test time excluded); overlap % = max(0, 100 − (overall − compute) / comm × 100).
//
// MPI is initialised here (MPI_THREAD_FUNNELED: OpenMP may run inside a rank, only the main thread
// calls MPI) and finalised before returning. Every rank parses the same argv, so every rank reaches
// the same verdict on a usage error; rank 0 alone prints it and every rank returns 2.
#include <math.h>
#include <mpi.h>
#include <omp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include "build_info.h"
#include "../io/h5out.h"
#include "cli.h"
#include "mpi_run.h"

#define PROG "fusebench comm"
#define SCHEMA "fusebench.comm"
#define SCHEMA_VERSION 1
#define MAX_SIZES 64
#define MAX_BYTES (1LL << 30)   // per message; allgather receives P times this

// ---- Ops (an enum, a name table, a static assert: no half-registered op) ----

typedef enum { OP_ALLREDUCE, OP_ALLGATHER, OP_IALLREDUCE, NOPS } comm_op;
static const char *const op_names[] = { "allreduce", "allgather", "iallreduce-overlap" };
static const char *const op_groups[] = { "allreduce", "allgather", "iallreduce_overlap" };   // HDF5 group names
_Static_assert(sizeof op_names / sizeof op_names[0] == NOPS, "op_names out of step with comm_op");
_Static_assert(sizeof op_groups / sizeof op_groups[0] == NOPS, "op_groups out of step with comm_op");

typedef struct {
    const char *sizes_arg, *ops_arg, *out;
    int iters, warmup, iters_large, warmup_large, large_size, slice_us, no_h5;
    int nsizes;
    long long sizes[MAX_SIZES];
    int run[NOPS];
} copts;

// One row of the allreduce / allgather tables (times in µs, reduced across ranks on rank 0).
typedef struct {
    long long bytes;
    int iters, warmup;
    double min_us, avg_us, max_us, algbw_gbs, busbw_gbs;
} coll_row;

// One row of the overlap table (averages across ranks, overall also min/max).
typedef struct {
    long long bytes;
    int iters, warmup;
    double overall_us, overall_min_us, overall_max_us, compute_us, comm_us, test_us, tests, overlap_pct;
} overlap_row;

static int g_rank, g_size;

// ---- Options ----

// "4096", "64K", "1M", "1G" (binary multiples) → bytes.
static int parse_bytes(const char *s, long long *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v < 0 || v > (1LL << 40)) return -1;
    if (*end == 'K' || *end == 'k') { v <<= 10; end++; }
    else if (*end == 'M' || *end == 'm') { v <<= 20; end++; }
    else if (*end == 'G' || *end == 'g') { v <<= 30; end++; }
    if (*end != '\0') return -1;
    *out = v;
    return 0;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

// Comma-separated items, each a size or a range A:B (A, 2A, 4A, ... up to B); sorted, duplicates
// dropped. 0, or -1 with the reason in `why`.
static int parse_sizes(const char *s, copts *o, char *why, size_t why_size) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf) { snprintf(why, why_size, "list too long"); return -1; }
    o->nsizes = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        long long a, b;
        if (colon) *colon = '\0';
        if (parse_bytes(tok, &a) != 0 || (colon && parse_bytes(colon + 1, &b) != 0)) {
            snprintf(why, why_size, "'%s' is not a size or a range A:B (bytes; K, M, G suffixes allowed)", s);
            return -1;
        }
        if (!colon) b = a;
        if (a < 4 || b > MAX_BYTES || a > b || a % 4 || b % 4) {
            snprintf(why, why_size, "sizes must be multiples of 4 (floats) from 4 to %lld bytes, ranges ascending (got '%s')",
                     MAX_BYTES, s);
            return -1;
        }
        for (long long v = a; v <= b; v *= 2) {
            if (o->nsizes == MAX_SIZES) { snprintf(why, why_size, "more than %d sizes in '%s'", MAX_SIZES, s); return -1; }
            o->sizes[o->nsizes++] = v;
        }
    }
    if (o->nsizes == 0) { snprintf(why, why_size, "no sizes in '%s'", s); return -1; }
    qsort(o->sizes, (size_t)o->nsizes, sizeof o->sizes[0], cmp_ll);
    int n = 1;
    for (int i = 1; i < o->nsizes; i++)
        if (o->sizes[i] != o->sizes[n - 1]) o->sizes[n++] = o->sizes[i];
    o->nsizes = n;
    return 0;
}

static int parse_ops(const char *s, copts *o, char *why, size_t why_size) {
    memset(o->run, 0, sizeof o->run);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    int any = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int found = 0;
        for (int k = 0; k < NOPS; k++)
            if (strcmp(tok, "all") == 0 || strcmp(tok, op_names[k]) == 0 ||
                (k == OP_IALLREDUCE && strcmp(tok, "iallreduce") == 0))
                o->run[k] = found = 1;
        if (!found) {
            snprintf(why, why_size, "unknown op '%s'. Known: all,allreduce,allgather,iallreduce-overlap", tok);
            return -1;
        }
        any = 1;
    }
    if (!any) { snprintf(why, why_size, "no ops in '%s'", s); return -1; }
    return 0;
}

static void print_help(const fb_option *opts, int nopts) {
    printf("usage: [mpirun -np P] fusebench comm [options]\n\n"
           "OSU-style MPI collective benchmarks over message sizes (osu_allreduce, osu_allgather,\n"
           "osu_iallreduce). Runs under mpirun/srun with P ranks, or alone as a single rank.\n\n"
           "  allreduce           MPI_Allreduce, MPI_SUM on float; bytes = size of the reduced vector\n"
           "  allgather           MPI_Allgather of float; bytes = what EACH rank contributes (OSU's\n"
           "                      convention); every rank receives P x bytes\n"
           "  iallreduce-overlap  MPI_Iallreduce overlapped with a compute loop (DDP's gradient\n"
           "                      allreduce): pure comm = Iallreduce + Wait; a single-threaded FMA loop\n"
           "                      runs for that long (by the clock) in slices of --slice-us with MPI_Test\n"
           "                      between slices (Open MPI has no progress thread), then MPI_Wait;\n"
           "                      overlap %% = max(0, 100 - (overall - compute) / comm x 100)\n\n"
           "Timing: per size one validation call (result checked), warm-up calls, then timed calls,\n"
           "each preceded by MPI_Barrier and timed alone with MPI_Wtime; each rank averages its calls\n"
           "and the table shows min/avg/max of those averages across ranks (us). Bandwidth in GB/s\n"
           "(1e9 B/s): algbw = bytes moved / avg latency (allgather: P x bytes); busbw as NCCL-tests\n"
           "define it: allreduce algbw x 2(P-1)/P, allgather algbw x (P-1)/P (0 at one rank).\n"
           "Greppable lines:\n"
           "  FOM comm op=allreduce|allgather bytes=N ranks=P lat_us=AVG bw_gbs=ALGBW busbw_gbs=BUSBW\n"
           "  FOM comm op=iallreduce bytes=N overall_us=.. compute_us=.. comm_us=.. overlap_pct=.. ranks=P\n"
           "Results go to an HDF5 file written by rank 0 (schema: results/README.md). Exit status:\n"
           "0 ok, 1 a run failed (wrong collective result, out of memory, I/O), 2 usage error (every\n"
           "rank exits 2; rank 0 prints the reason).\n\n"
           "options:\n");
    fb_cli_print_options(stdout, opts, nopts);
    printf("\nExamples:\n"
           "  mpirun -np 2 bench/fusebench comm\n"
           "  mpirun -np 4 bench/fusebench comm --sizes 1K:16M --ops allreduce,iallreduce-overlap\n"
           "  srun -n 8 bench/fusebench comm --sizes 4,4096,1M --iters 200\n");
}

// ---- Compute kernel for the overlap test ----

// A stand-in for the backward pass a DDP allreduce hides behind: 64 independent FMA chains in L1 (a[j] → a[j]·b + c converges, never overflows): compute-bound, so
// it does not compete with the collective for memory bandwidth. One unit = 64 FMAs.
static float fma_state[64];
static volatile float fma_sink;

__attribute__((noinline)) static void fma_work(long units) {
    float a[64];
    memcpy(a, fma_state, sizeof a);
    const float b = 0.999f, c = 0.001f;
    for (long u = 0; u < units; u++)
        for (int j = 0; j < 64; j++) a[j] = a[j] * b + c;
    memcpy(fma_state, a, sizeof a);
    fma_sink = a[0];
}

// Units of fma_work per second on this rank: doubling until one call takes ≥ 10 ms, best of 3.
static double fma_rate(void) {
    long units = 1024;
    double t;
    for (;;) {
        double t0 = MPI_Wtime();
        fma_work(units);
        t = MPI_Wtime() - t0;
        if (t >= 0.01 || units > (1L << 40)) break;
        units *= 2;
    }
    for (int k = 0; k < 3; k++) {
        double t0 = MPI_Wtime();
        fma_work(units);
        double dt = MPI_Wtime() - t0;
        if (dt < t) t = dt;
    }
    return (double)units / t;
}

// ---- Measurements ----

static void fill_reduce(float *s, int count) {
    for (int i = 0; i < count; i++) s[i] = (float)(g_rank + 1 + i % 7);
}
// Σ over ranks of (r + 1 + i % 7): exact in float for any realistic P.
static int check_reduce(const float *r, int count) {
    double base = 0.5 * g_size * (g_size + 1.0);
    for (int i = 0; i < count; i++)
        if (r[i] != (float)(base + (double)g_size * (i % 7))) return 0;
    return 1;
}

// Per-rank average latency of `iters` calls (s) after `warmup` untimed ones; a barrier before each.
static double time_blocking(comm_op op, float *s, float *r, int count, int iters, int warmup) {
    double total = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    for (int i = 0; i < warmup + iters; i++) {
        double t0 = MPI_Wtime();
        if (op == OP_ALLREDUCE) MPI_Allreduce(s, r, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        else MPI_Allgather(s, count, MPI_FLOAT, r, count, MPI_FLOAT, MPI_COMM_WORLD);
        double t1 = MPI_Wtime();
        if (i >= warmup) total += t1 - t0;
        MPI_Barrier(MPI_COMM_WORLD);
    }
    return total / iters;
}

// min / sum / max of one value per rank, on rank 0.
static void across(double mine, double *mn, double *avg, double *mx) {
    double sum = 0;
    MPI_Reduce(&mine, mn, 1, MPI_DOUBLE, MPI_MIN, 0, MPI_COMM_WORLD);
    MPI_Reduce(&mine, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&mine, mx, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    *avg = sum / g_size;
}

static void counts_for(const copts *o, long long bytes, int *iters, int *warmup) {
    int large = bytes > o->large_size;
    *iters = large ? (o->iters_large < o->iters ? o->iters_large : o->iters) : o->iters;
    *warmup = large ? (o->warmup_large < o->warmup ? o->warmup_large : o->warmup) : o->warmup;
}

static void *alloc_bytes(long long bytes) {
    void *p = NULL;
    size_t n = (size_t)((bytes + 63) / 64 * 64);
    if (posix_memalign(&p, 64, n ? n : 64) != 0) return NULL;
    return p;
}

// Allreduce or allgather over every size. Returns 0, or 1 on a failure (reported by rank 0).
static int run_blocking(comm_op op, const copts *o, coll_row *rows) {
    long long maxb = o->sizes[o->nsizes - 1];
    float *s = alloc_bytes(maxb), *r = alloc_bytes(op == OP_ALLGATHER ? maxb * g_size : maxb);
    if (!fb_mpi_all_ok(s && r)) {
        if (g_rank == 0) fprintf(stderr, PROG ": %s: out of memory for %lld-byte buffers\n", op_names[op], maxb);
        free(s); free(r);
        return 1;
    }
    double P = g_size;
    if (g_rank == 0) {
        if (op == OP_ALLREDUCE)
            printf("\n# MPI_Allreduce (MPI_SUM, float), %d rank%s; bytes = vector size; busbw = algbw x 2(P-1)/P\n",
                   g_size, g_size > 1 ? "s" : "");
        else
            printf("\n# MPI_Allgather (float), %d rank%s; bytes = per-rank contribution, P x bytes gathered;\n"
                   "# algbw = P x bytes / avg; busbw = algbw x (P-1)/P\n", g_size, g_size > 1 ? "s" : "");
        printf("%-12s %7s %7s %12s %12s %12s %12s %12s\n", "bytes", "iters", "warmup", "avg_us", "min_us", "max_us",
               "algbw_GB/s", "busbw_GB/s");
        fflush(stdout);
    }
    for (int k = 0; k < o->nsizes; k++) {
        long long bytes = o->sizes[k];
        int count = (int)(bytes / 4), iters, warmup;
        counts_for(o, bytes, &iters, &warmup);
        // Validation (untimed; also first-touches the buffers).
        int ok = 1;
        if (op == OP_ALLREDUCE) {
            fill_reduce(s, count);
            MPI_Allreduce(s, r, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            ok = check_reduce(r, count);
        } else {
            for (int i = 0; i < count; i++) s[i] = (float)(g_rank * 1000 + i % 1000);
            MPI_Allgather(s, count, MPI_FLOAT, r, count, MPI_FLOAT, MPI_COMM_WORLD);
            for (int q = 0; q < g_size && ok; q++)
                for (int i = 0; i < count; i++)
                    if (r[(size_t)q * count + i] != (float)(q * 1000 + i % 1000)) { ok = 0; break; }
        }
        if (!fb_mpi_all_ok(ok)) {
            if (g_rank == 0) fprintf(stderr, PROG ": %s: FAILED validation at %lld bytes: wrong result on some rank\n",
                                     op_names[op], bytes);
            free(s); free(r);
            return 1;
        }
        double lat = time_blocking(op, s, r, count, iters, warmup);
        coll_row *row = &rows[k];
        row->bytes = bytes; row->iters = iters; row->warmup = warmup;
        double mn, avg, mx;
        across(lat, &mn, &avg, &mx);
        if (g_rank == 0) {
            row->min_us = mn * 1e6; row->avg_us = avg * 1e6; row->max_us = mx * 1e6;
            double moved = op == OP_ALLGATHER ? (double)bytes * P : (double)bytes;
            row->algbw_gbs = moved / avg / 1e9;
            row->busbw_gbs = row->algbw_gbs * (op == OP_ALLREDUCE ? 2.0 * (P - 1) / P : (P - 1) / P);
            printf("%-12lld %7d %7d %12.2f %12.2f %12.2f %12.3f %12.3f\n", bytes, iters, warmup, row->avg_us,
                   row->min_us, row->max_us, row->algbw_gbs, row->busbw_gbs);
            fflush(stdout);
        }
    }
    free(s); free(r);
    return 0;
}

static int run_overlap(const copts *o, overlap_row *rows, double *rate_out) {
    long long maxb = o->sizes[o->nsizes - 1];
    float *s = alloc_bytes(maxb), *r = alloc_bytes(maxb);
    if (!fb_mpi_all_ok(s && r)) {
        if (g_rank == 0) fprintf(stderr, PROG ": iallreduce-overlap: out of memory for %lld-byte buffers\n", maxb);
        free(s); free(r);
        return 1;
    }
    double rate = fma_rate();   // fma_work units per second on this rank
    double rmin, ravg, rmax;
    across(rate, &rmin, &ravg, &rmax);
    *rate_out = ravg;
    const double slice = o->slice_us * 1e-6;
    if (g_rank == 0) {
        printf("\n# MPI_Iallreduce (MPI_SUM, float) overlapped with compute, %d rank%s. comm = Iallreduce + Wait;\n"
               "# compute = single-threaded FMA loop (%.1f-%.1f GFMA/s across ranks) run for the mean comm time in\n"
               "# slices of %d us with MPI_Test between slices%s; overall = Iallreduce + compute + Wait;\n"
               "# overlap = max(0, 100 - (overall - compute) / comm x 100); tests = MPI_Test calls per iteration\n",
               g_size, g_size > 1 ? "s" : "", rmin * 64e-9, rmax * 64e-9, o->slice_us,
               o->slice_us ? "" : " (0: no MPI_Test, library progress only)");
        printf("%-12s %7s %7s %12s %12s %12s %12s %9s %9s %10s\n", "bytes", "iters", "warmup", "overall_us",
               "compute_us", "comm_us", "test_us", "tests", "overlap%", "overall_max");
        fflush(stdout);
    }
    for (int k = 0; k < o->nsizes; k++) {
        long long bytes = o->sizes[k];
        int count = (int)(bytes / 4), iters, warmup;
        counts_for(o, bytes, &iters, &warmup);
        MPI_Request req;
        fill_reduce(s, count);
        MPI_Iallreduce(s, r, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        if (!fb_mpi_all_ok(check_reduce(r, count))) {
            if (g_rank == 0)
                fprintf(stderr, PROG ": iallreduce-overlap: FAILED validation at %lld bytes: wrong result on some rank\n",
                        bytes);
            free(s); free(r);
            return 1;
        }
        // Pure communication.
        double comm = 0;
        MPI_Barrier(MPI_COMM_WORLD);
        for (int i = 0; i < warmup + iters; i++) {
            double t0 = MPI_Wtime();
            MPI_Iallreduce(s, r, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
            MPI_Wait(&req, MPI_STATUS_IGNORE);
            double t1 = MPI_Wtime();
            if (i >= warmup) comm += t1 - t0;
            MPI_Barrier(MPI_COMM_WORLD);
        }
        comm /= iters;
        // Every rank computes for the across-rank average of the pure-comm time.
        double target;
        MPI_Allreduce(&comm, &target, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        target /= g_size;
        // Compute runs by time, as OSU's dummy_compute does: chunks of ~0.2 us of FMAs until the
        // slice's share of `target` has elapsed, so compute ≈ comm even when the calibrated rate
        // is off (a rank time-shared with another process, a clock change).
        long nslices = slice > 0 && target > slice ? lround(target / slice) : 1;
        double share = target / (double)nslices;
        long chunk = lround(0.2e-6 * rate);
        if (chunk < 1) chunk = 1;
        // Overlapped.
        double overall = 0, compute = 0, test = 0, ntests = 0;
        MPI_Barrier(MPI_COMM_WORLD);
        for (int i = 0; i < warmup + iters; i++) {
            double tc = 0, tt = 0;
            int done = 0, nt = 0;
            double t0 = MPI_Wtime();
            MPI_Iallreduce(s, r, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
            for (long sl = 0; sl < nslices; sl++) {
                double a = MPI_Wtime(), b;
                do {
                    fma_work(chunk);
                    b = MPI_Wtime();
                } while (b - a < share);
                tc += b - a;
                if (slice > 0 && !done && sl + 1 < nslices) {
                    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
                    tt += MPI_Wtime() - b;
                    nt++;
                }
            }
            MPI_Wait(&req, MPI_STATUS_IGNORE);
            double t1 = MPI_Wtime();
            if (i >= warmup) { overall += t1 - t0; compute += tc; test += tt; ntests += nt; }
            MPI_Barrier(MPI_COMM_WORLD);
        }
        overall /= iters; compute /= iters; test /= iters; ntests /= iters;
        overlap_row *row = &rows[k];
        row->bytes = bytes; row->iters = iters; row->warmup = warmup;
        double mn, mx;
        across(overall, &row->overall_min_us, &row->overall_us, &row->overall_max_us);
        across(compute, &mn, &row->compute_us, &mx);
        across(comm, &mn, &row->comm_us, &mx);
        across(test, &mn, &row->test_us, &mx);
        across(ntests, &mn, &row->tests, &mx);
        if (g_rank == 0) {
            row->overall_us *= 1e6; row->overall_min_us *= 1e6; row->overall_max_us *= 1e6;
            row->compute_us *= 1e6; row->comm_us *= 1e6; row->test_us *= 1e6;
            double ov = 100.0 - (row->overall_us - row->compute_us) / row->comm_us * 100.0;
            row->overlap_pct = ov > 0 ? ov : 0;
            printf("%-12lld %7d %7d %12.2f %12.2f %12.2f %12.2f %9.1f %9.1f %10.2f\n", bytes, iters, warmup,
                   row->overall_us, row->compute_us, row->comm_us, row->test_us, row->tests, row->overlap_pct,
                   row->overall_max_us);
            fflush(stdout);
        }
    }
    free(s); free(r);
    return 0;
}

// ---- HDF5 (rank 0) ----

static fb_status write_coll_table(fb_h5 *h, comm_op op, const coll_row *rows, int n) {
    int64_t *b = calloc((size_t)n + 1, sizeof *b), *tot = calloc((size_t)n + 1, sizeof *tot),
            *it = calloc((size_t)n + 1, sizeof *it), *wu = calloc((size_t)n + 1, sizeof *wu);
    double *v[5];
    int ok = b && tot && it && wu;
    for (int k = 0; k < 5; k++) ok = (v[k] = calloc((size_t)n + 1, sizeof(double))) && ok;
    fb_status st = FB_OK;
    if (ok) {
        for (int i = 0; i < n; i++) {
            b[i] = rows[i].bytes; tot[i] = op == OP_ALLGATHER ? rows[i].bytes * g_size : rows[i].bytes;
            it[i] = rows[i].iters; wu[i] = rows[i].warmup;
            v[0][i] = rows[i].avg_us; v[1][i] = rows[i].min_us; v[2][i] = rows[i].max_us;
            v[3][i] = rows[i].algbw_gbs; v[4][i] = rows[i].busbw_gbs;
        }
        int ag = op == OP_ALLGATHER;
        const fb_h5_column cols[] = {
            { "bytes", FB_COL_I64, "B",
              ag ? "bytes each rank contributes (OSU's per-rank convention)" : "size of the reduced float vector" },
            { "total_bytes", FB_COL_I64, "B",
              ag ? "bytes each rank receives: ranks x bytes" : "bytes of the result on each rank (= bytes)" },
            { "iters", FB_COL_I64, "1", "timed calls per rank" },
            { "warmup", FB_COL_I64, "1", "untimed calls before them" },
            { "avg_us", FB_COL_F64, "us", "per-rank mean latency of one call, averaged across ranks" },
            { "min_us", FB_COL_F64, "us", "lowest per-rank mean latency" },
            { "max_us", FB_COL_F64, "us", "highest per-rank mean latency" },
            { "algbw_gbs", FB_COL_F64, "GB/s", "total_bytes / avg_us (1 GB = 1e9 B)" },
            { "busbw_gbs", FB_COL_F64, "GB/s",
              ag ? "algbw x (P-1)/P (NCCL-tests' bus bandwidth)" : "algbw x 2(P-1)/P (NCCL-tests' bus bandwidth)" },
        };
        const void *data[] = { b, tot, it, wu, v[0], v[1], v[2], v[3], v[4] };
        st = fb_h5_write_table(h, h->file, op_groups[op], cols, (int)(sizeof cols / sizeof cols[0]), (size_t)n, data);
    } else {
        h->failed = 1;
        st = fb_fail(FB_ERR_ALLOC, "result table of %d rows", n);
    }
    free(b); free(tot); free(it); free(wu);
    for (int k = 0; k < 5; k++) free(v[k]);
    return st;
}

static fb_status write_overlap_table(fb_h5 *h, const overlap_row *rows, int n) {
    int64_t *b = calloc((size_t)n + 1, sizeof *b), *it = calloc((size_t)n + 1, sizeof *it),
            *wu = calloc((size_t)n + 1, sizeof *wu);
    double *v[9];
    int ok = b && it && wu;
    for (int k = 0; k < 9; k++) ok = (v[k] = calloc((size_t)n + 1, sizeof(double))) && ok;
    fb_status st = FB_OK;
    if (ok) {
        for (int i = 0; i < n; i++) {
            const overlap_row *r = &rows[i];
            b[i] = r->bytes; it[i] = r->iters; wu[i] = r->warmup;
            v[0][i] = r->overall_us; v[1][i] = r->overall_min_us; v[2][i] = r->overall_max_us;
            v[3][i] = r->compute_us; v[4][i] = r->comm_us; v[5][i] = r->test_us; v[6][i] = r->tests;
            v[7][i] = r->overlap_pct;
            v[8][i] = r->overall_us - r->compute_us;
        }
        const fb_h5_column cols[] = {
            { "bytes", FB_COL_I64, "B", "size of the reduced float vector" },
            { "iters", FB_COL_I64, "1", "timed iterations per rank (of each of the two loops)" },
            { "warmup", FB_COL_I64, "1", "untimed iterations before them" },
            { "overall_us", FB_COL_F64, "us",
              "MPI_Iallreduce + compute slices with MPI_Test between + MPI_Wait; mean across ranks" },
            { "overall_min_us", FB_COL_F64, "us", "lowest per-rank mean overall time" },
            { "overall_max_us", FB_COL_F64, "us", "highest per-rank mean overall time" },
            { "compute_us", FB_COL_F64, "us", "time in the compute loop alone during the overlapped run (MPI_Test excluded)" },
            { "comm_us", FB_COL_F64, "us", "pure communication: MPI_Iallreduce + MPI_Wait, no compute" },
            { "test_us", FB_COL_F64, "us", "time inside MPI_Test per iteration" },
            { "tests", FB_COL_F64, "1", "MPI_Test calls per iteration (mean)" },
            { "overlap_pct", FB_COL_F64, "%", "max(0, 100 - (overall - compute) / comm x 100)" },
            { "exposed_us", FB_COL_F64, "us", "overall - compute: communication time not hidden" },
        };
        const void *data[] = { b, it, wu, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8] };
        st = fb_h5_write_table(h, h->file, op_groups[OP_IALLREDUCE], cols, (int)(sizeof cols / sizeof cols[0]),
                               (size_t)n, data);
    } else {
        h->failed = 1;
        st = fb_fail(FB_ERR_ALLOC, "result table of %d rows", n);
    }
    free(b); free(it); free(wu);
    for (int k = 0; k < 9; k++) free(v[k]);
    return st;
}

static fb_status write_h5(const char *path, const copts *o, const fb_mpi_run *run, double rate, double elapsed,
                          coll_row *const rows[2], const overlap_row *orows) {
    fb_h5 h;
    if (fb_mpi_create_result(&h, path, SCHEMA, SCHEMA_VERSION, run, elapsed) != FB_OK) {
        fb_h5_discard(&h);
        return FB_ERR_IO;
    }
    hid_t root = h.file;

    hid_t g = fb_h5_group(&h, root, "config");
    if (g >= 0) {
        int64_t sz[MAX_SIZES];
        for (int i = 0; i < o->nsizes; i++) sz[i] = o->sizes[i];
        fb_h5_attr_int_array(&h, g, "sizes", sz, (size_t)o->nsizes);
        fb_h5_attr_string(&h, g, "ops", o->ops_arg);
        fb_h5_attr_int(&h, g, "iters", o->iters);
        fb_h5_attr_int(&h, g, "warmup", o->warmup);
        fb_h5_attr_int(&h, g, "iters_large", o->iters_large);
        fb_h5_attr_int(&h, g, "warmup_large", o->warmup_large);
        fb_h5_attr_int(&h, g, "large_size", o->large_size);
        fb_h5_attr_int(&h, g, "slice_us", o->slice_us);
        fb_h5_attr_string(&h, g, "datatype", "float");
        fb_h5_attr_string(&h, g, "reduce_op", "MPI_SUM");
        fb_h5_attr_string(&h, g, "allgather_bytes", "per_rank");
        fb_h5_attr_double(&h, g, "compute_fma_per_s", rate * 64.0);
        H5Gclose(g);
    }
    if (o->run[OP_ALLREDUCE]) write_coll_table(&h, OP_ALLREDUCE, rows[0], o->nsizes);
    if (o->run[OP_ALLGATHER]) write_coll_table(&h, OP_ALLGATHER, rows[1], o->nsizes);
    if (o->run[OP_IALLREDUCE]) write_overlap_table(&h, orows, o->nsizes);
    return fb_h5_close(&h);
}

// ---- main ----

static int comm_main(int argc, char **argv, fb_mpi_run *run) {
    copts o = { .sizes_arg = "4:67108864", .ops_arg = "all", .iters = 1000, .warmup = 100, .iters_large = 100,
                .warmup_large = 10, .large_size = 1 << 20, .slice_us = 50 };
    const fb_option opts[] = {
        { "sizes", FB_OPT_STRING, &o.sizes_arg, "LIST",
          "message sizes in bytes: comma-separated sizes and ranges A:B (A, 2A, 4A ...\n"
          "up to B); K, M, G suffixes (binary); multiples of 4, 4 B to 1 GiB. Allreduce:\n"
          "vector size; allgather: per-rank contribution", 1, 0, 0 },
        { "ops", FB_OPT_STRING, &o.ops_arg, "LIST",
          "comma-separated: allreduce, allgather, iallreduce-overlap (or iallreduce), all", 1, 0, 0 },
        { "iters", FB_OPT_INT, &o.iters, "N", "timed calls per size up to --large-size", 1, 10000000, 0 },
        { "warmup", FB_OPT_INT, &o.warmup, "N", "untimed calls before them", 0, 10000000, 0 },
        { "iters-large", FB_OPT_INT, &o.iters_large, "N", "timed calls per size above --large-size (capped at --iters)",
          1, 10000000, 0 },
        { "warmup-large", FB_OPT_INT, &o.warmup_large, "N", "untimed calls above --large-size (capped at --warmup)", 0,
          10000000, 0 },
        { "large-size", FB_OPT_INT, &o.large_size, "BYTES", "sizes above this use --iters-large / --warmup-large", 0,
          (double)MAX_BYTES, 0 },
        { "slice-us", FB_OPT_INT, &o.slice_us, "US",
          "overlap: compute slice between two MPI_Test calls; 0 = no MPI_Test\n"
          "(measures the MPI library's own asynchronous progress)", 0, 10000000, 0 },
        { "out", FB_OPT_STRING, &o.out, "FILE", "HDF5 result file [default: results/comm-YYYYmmdd-HHMMSS.h5]", 1, 0, 0 },
        { "no-h5", FB_OPT_FLAG, &o.no_h5, NULL, "do not write an HDF5 file", 1, 0, 0 },
    };
    const int nopts = (int)(sizeof opts / sizeof opts[0]);
    fb_cli_result pr = fb_mpi_parse(run, PROG, opts, nopts, argc, argv);
    if (pr == FB_CLI_HELP) {
        if (g_rank == 0) print_help(opts, nopts);
        return FB_EXIT_OK;
    }
    if (pr == FB_CLI_ERROR) return FB_EXIT_USAGE;
    char why[512];
    if (parse_sizes(o.sizes_arg, &o, why, sizeof why) != 0) {
        if (g_rank == 0) fprintf(stderr, PROG ": --sizes: %s\n", why);
        return FB_EXIT_USAGE;
    }
    if (parse_ops(o.ops_arg, &o, why, sizeof why) != 0) {
        if (g_rank == 0) fprintf(stderr, PROG ": --ops: %s\n", why);
        return FB_EXIT_USAGE;
    }

    // Results path (rank 0), checked before the run; every rank learns the verdict.
    char path[1100] = "";
    if (!o.no_h5 && fb_mpi_results_path(run, PROG, o.out, "comm", path, sizeof path) != 0) return FB_EXIT_FAIL;

    // Rank census.
    double t_start = MPI_Wtime();
    if (fb_mpi_census(run) != 0) return FB_EXIT_FAIL;
    if (g_rank == 0) {
        printf("# fusebench comm: MPI collective latency/bandwidth by message size and MPI_Iallreduce/compute overlap\n");
        printf("# build     %s, %s\n", fb_build_commit, fb_build_cflags);
        printf("# run       %s on %s; %s\n", run->date, run->all[0].host, fb_cli_command_line());
        fb_mpi_print_header(run, stdout);
        char sz[64];
        snprintf(sz, sizeof sz, "%lld..%lld", o.sizes[0], o.sizes[o.nsizes - 1]);
        printf("# timing    %d sizes (%s B); %d timed calls after %d warm-up (above %d B: %d after %d); barrier\n"
               "#           before each call; per-rank mean, then min/avg/max across ranks; GB/s = 1e9 B/s\n",
               o.nsizes, sz, o.iters, o.warmup, o.large_size, o.iters_large < o.iters ? o.iters_large : o.iters,
               o.warmup_large < o.warmup ? o.warmup_large : o.warmup);
        fflush(stdout);
    }

    // Ops.
    coll_row *crows[2] = { calloc((size_t)o.nsizes, sizeof(coll_row)), calloc((size_t)o.nsizes, sizeof(coll_row)) };
    overlap_row *orows = calloc((size_t)o.nsizes, sizeof *orows);
    int failed = !fb_mpi_all_ok(crows[0] && crows[1] && orows);
    if (failed && g_rank == 0) fprintf(stderr, PROG ": out of memory\n");
    double rate = 0;
    if (!failed && o.run[OP_ALLREDUCE]) failed = run_blocking(OP_ALLREDUCE, &o, crows[0]);
    if (!failed && o.run[OP_ALLGATHER]) failed = run_blocking(OP_ALLGATHER, &o, crows[1]);
    if (!failed && o.run[OP_IALLREDUCE]) failed = run_overlap(&o, orows, &rate);
    double elapsed = MPI_Wtime() - t_start;

    int rc = failed ? FB_EXIT_FAIL : FB_EXIT_OK;
    if (g_rank == 0 && !failed) {
        printf("\n");
        for (int op = OP_ALLREDUCE; op <= OP_ALLGATHER; op++)
            if (o.run[op])
                for (int k = 0; k < o.nsizes; k++) {
                    const coll_row *r = &crows[op][k];
                    printf("FOM comm op=%s bytes=%lld ranks=%d lat_us=%.3f bw_gbs=%.4f busbw_gbs=%.4f\n", op_names[op],
                           r->bytes, g_size, r->avg_us, r->algbw_gbs, r->busbw_gbs);
                }
        if (o.run[OP_IALLREDUCE])
            for (int k = 0; k < o.nsizes; k++) {
                const overlap_row *r = &orows[k];
                printf("FOM comm op=iallreduce bytes=%lld overall_us=%.3f compute_us=%.3f comm_us=%.3f overlap_pct=%.1f "
                       "ranks=%d\n", r->bytes, r->overall_us, r->compute_us, r->comm_us, r->overlap_pct, g_size);
            }
        printf("# elapsed %.1f s\n", elapsed);
        if (!o.no_h5) {
            fb_status st = write_h5(path, &o, run, rate, elapsed, crows, orows);
            if (st != FB_OK) {
                fprintf(stderr, PROG ": writing %s failed: %s\n", path, fb_last_error());
                rc = FB_EXIT_FAIL;
            } else {
                printf("# wrote %s\n", path);
            }
        }
        fflush(stdout);
    }
    // Every rank returns rank 0's verdict (an I/O failure happens on rank 0 only).
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    free(crows[0]); free(crows[1]); free(orows);
    return rc;
}

int bench_comm_main(int argc, char **argv) {
    fb_mpi_run run;
    if (fb_mpi_start(&run, &argc, &argv, PROG) != 0) return FB_EXIT_FAIL;
    g_rank = run.rank;
    g_size = run.size;
    int rc = comm_main(argc, argv, &run);
    fb_mpi_end(&run);
    return rc;
}
