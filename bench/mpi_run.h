// What every MPI subcommand (comm, train) shares: start-up, option parsing that only rank 0 reports,
// the rank census (hosts, binding, threads), the printed header, the results-path check, and the
// provenance written into HDF5 result files. Driver code.
#pragma once
#include <mpi.h>
#include <stdio.h>
#include "../io/h5out.h"
#include "cli.h"

#define FB_HOST_LEN 256
#define FB_CPUS_LEN 256

typedef struct {
    char host[FB_HOST_LEN];
    char cpus[FB_CPUS_LEN];   // the CPUs this rank may run on (its binding), e.g. "0" or "0-1"
    int threads;              // omp_get_max_threads()
    int online_cpus;          // sysconf(_SC_NPROCESSORS_ONLN) on its host
} fb_rank_info;

typedef struct {
    int rank, size, provided;
    fb_rank_info me;
    fb_rank_info *all;                         // rank 0: every rank's (fb_mpi_census)
    char hosts[1024];                          // rank 0: distinct host names, comma-separated
    int nhosts;
    char mpilib[MPI_MAX_LIBRARY_VERSION_STRING];
    char date[64];                             // ISO 8601 start time
} fb_mpi_run;

// MPI_Init_thread(FUNNELED: OpenMP inside a rank, MPI from the main thread only). 0 on success.
int fb_mpi_start(fb_mpi_run *r, int *argc, char ***argv, const char *prog);
// Frees the census and calls MPI_Finalize.
void fb_mpi_end(fb_mpi_run *r);
// Parses on every rank (every rank reaches the same verdict); only rank 0 prints errors.
fb_cli_result fb_mpi_parse(const fb_mpi_run *r, const char *prog, const fb_option *opts, int nopts, int argc,
                           char **argv);
// 1 on every rank when `ok` holds on every rank.
int fb_mpi_all_ok(int ok);
// Gathers every rank's host, binding and threads to rank 0 (collective). 0 on success everywhere.
int fb_mpi_census(fb_mpi_run *r);
// Rank 0: "# mpi", "# ranks" and per-rank lines, and a warning when ranks × threads oversubscribe a host.
void fb_mpi_print_header(const fb_mpi_run *r, FILE *f);
// Rank 0 picks `out` or results/<kind>-<date>.h5 and checks its folder is writable; every rank
// learns the verdict. 0 on success (path filled on rank 0), -1 after rank 0 printed why.
int fb_mpi_results_path(const fb_mpi_run *r, const char *prog, const char *out, const char *kind, char *path,
                        size_t size);
// Root attributes (commit, compiler, flags, hosts, ranks, threads, date, command line, MPI library,
// version and thread level, OMP_ / SLURM_ environment) and the /ranks table. Rank 0 only.
fb_status fb_mpi_write_provenance(fb_h5 *h, const fb_mpi_run *r);
// Creates a result file with its schema tag and version, the provenance above and `elapsed_s`.
fb_status fb_mpi_create_result(fb_h5 *h, const char *path, const char *schema, int version, const fb_mpi_run *r,
                               double elapsed);
const char *fb_mpi_thread_level(int provided);
