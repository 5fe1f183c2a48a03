#include "mpi_run.h"
#include "build_info.h"
#include <fcntl.h>
#include <omp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *fb_mpi_thread_level(int provided) {
    return provided == MPI_THREAD_SINGLE ? "MPI_THREAD_SINGLE" : provided == MPI_THREAD_FUNNELED ? "MPI_THREAD_FUNNELED"
         : provided == MPI_THREAD_SERIALIZED ? "MPI_THREAD_SERIALIZED" : "MPI_THREAD_MULTIPLE";
}

static void mpi_library(char *buf, size_t size) {
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    lib[len < MPI_MAX_LIBRARY_VERSION_STRING ? len : MPI_MAX_LIBRARY_VERSION_STRING - 1] = '\0';
    for (char *p = lib; *p; p++) if (*p == '\n' || *p == '\t') *p = ' ';
    size_t n = strlen(lib);
    while (n && (lib[n - 1] == ' ' || lib[n - 1] == '\0')) lib[--n] = '\0';
    snprintf(buf, size, "%s", lib);
}

int fb_mpi_start(fb_mpi_run *r, int *argc, char ***argv, const char *prog) {
    memset(r, 0, sizeof *r);
    r->provided = MPI_THREAD_SINGLE;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &r->provided) != MPI_SUCCESS) {
        fprintf(stderr, "%s: MPI_Init_thread failed\n", prog);
        return -1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &r->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &r->size);
    fb_iso_time(r->date, sizeof r->date);
    mpi_library(r->mpilib, sizeof r->mpilib);
    return 0;
}

void fb_mpi_end(fb_mpi_run *r) {
    fflush(stdout);
    fflush(stderr);
    free(r->all);
    r->all = NULL;
    MPI_Finalize();
}

fb_cli_result fb_mpi_parse(const fb_mpi_run *r, const char *prog, const fb_option *opts, int nopts, int argc,
                           char **argv) {
    if (r->rank == 0) return fb_cli_parse(prog, opts, nopts, argc, argv, 1);
    // Other ranks: the same parse with stderr silenced (the shared parser prints its own errors).
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    if (saved >= 0 && null >= 0) dup2(null, 2);
    fb_cli_result res = fb_cli_parse(prog, opts, nopts, argc, argv, 1);
    fflush(stderr);
    if (saved >= 0 && null >= 0) dup2(saved, 2);
    if (saved >= 0) close(saved);
    if (null >= 0) close(null);
    return res;
}

int fb_mpi_all_ok(int ok) {
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    return all;
}

static void affinity_list(char *buf, size_t size) {
    cpu_set_t set;
    buf[0] = '\0';
    if (sched_getaffinity(0, sizeof set, &set) != 0) { snprintf(buf, size, "unknown"); return; }
    size_t used = 0;
    for (int c = 0; c < CPU_SETSIZE && used < size; c++) {
        if (!CPU_ISSET(c, &set)) continue;
        int e = c;
        while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, &set)) e++;
        used += e == c ? (size_t)snprintf(buf + used, size - used, "%s%d", used ? "," : "", c)
                       : (size_t)snprintf(buf + used, size - used, "%s%d-%d", used ? "," : "", c, e);
        c = e;
    }
}

// Distinct host names, comma-separated, in rank order; returns their count.
static int distinct_hosts(const fb_rank_info *ri, int n, char *buf, size_t size) {
    int count = 0;
    size_t used = 0;
    buf[0] = '\0';
    for (int r = 0; r < n; r++) {
        int seen = 0;
        for (int q = 0; q < r && !seen; q++) seen = strcmp(ri[q].host, ri[r].host) == 0;
        if (seen) continue;
        count++;
        if (used < size) used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? "," : "", ri[r].host);
    }
    return count;
}

int fb_mpi_census(fb_mpi_run *r) {
    fb_rank_info *me = &r->me;
    memset(me, 0, sizeof *me);
    int len = 0;
    char pname[MPI_MAX_PROCESSOR_NAME];
    MPI_Get_processor_name(pname, &len);
    snprintf(me->host, sizeof me->host, "%s", pname);
    affinity_list(me->cpus, sizeof me->cpus);
    me->threads = omp_get_max_threads();
    me->online_cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (r->rank == 0) r->all = calloc((size_t)r->size, sizeof *r->all);
    if (!fb_mpi_all_ok(r->rank != 0 || r->all != NULL)) return -1;
    MPI_Gather(me, (int)sizeof *me, MPI_BYTE, r->all, (int)sizeof *me, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (r->rank == 0) r->nhosts = distinct_hosts(r->all, r->size, r->hosts, sizeof r->hosts);
    return 0;
}

void fb_mpi_print_header(const fb_mpi_run *r, FILE *f) {
    if (r->rank != 0 || !r->all) return;
    int ver = 0, sub = 0;
    MPI_Get_version(&ver, &sub);
    const fb_rank_info *ri = r->all;
    fprintf(f, "# mpi       %s (MPI %d.%d, thread level %s%s)\n", r->mpilib, ver, sub, fb_mpi_thread_level(r->provided),
            r->provided < MPI_THREAD_FUNNELED ? ": OpenMP inside a rank is unsafe" : "");
    fprintf(f, "# ranks     %d on %d host%s (%s); OpenMP threads per rank %d (rank 0)\n", r->size, r->nhosts,
            r->nhosts > 1 ? "s" : "", r->hosts, ri[0].threads);
    for (int q = 0; q < r->size && q < 16; q++)
        fprintf(f, "# rank %-4d %s, cpus %s, %d thread%s\n", q, ri[q].host, ri[q].cpus, ri[q].threads,
                ri[q].threads > 1 ? "s" : "");
    if (r->size > 16) fprintf(f, "# ...       %d more ranks (all in the HDF5 /ranks table)\n", r->size - 16);
    for (int q = 0; q < r->size; q++) {
        int on_host = 0;
        for (int k = 0; k < r->size; k++) on_host += strcmp(ri[k].host, ri[q].host) == 0;
        if (on_host * ri[q].threads > ri[q].online_cpus) {
            fprintf(f, "# WARNING   %d ranks x %d threads on %s with %d CPUs: oversubscribed, timings include\n"
                       "#           time-sharing\n", on_host, ri[q].threads, ri[q].host, ri[q].online_cpus);
            break;
        }
    }
}

int fb_mpi_results_path(const fb_mpi_run *r, const char *prog, const char *out, const char *kind, char *path,
                        size_t size) {
    int ok = 1;
    if (r->rank == 0) {
        if (out) snprintf(path, size, "%s", out);
        else if (fb_results_path(path, size, kind) != 0) ok = 0;
        if (ok) {
            char dir[1100];
            snprintf(dir, sizeof dir, "%s", path);
            char *slash = strrchr(dir, '/');
            if (slash) *slash = '\0';
            if (access(slash ? (dir[0] ? dir : "/") : ".", W_OK) != 0) {
                fprintf(stderr, "%s: cannot write %s: folder '%s' does not exist or is not writable\n", prog, path,
                        slash ? dir : ".");
                ok = 0;
            }
        }
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return ok ? 0 : -1;
}

static fb_status write_ranks_table(fb_h5 *h, const fb_mpi_run *r) {
    const int n = r->size;
    const fb_rank_info *ri = r->all;
    int64_t *rank = calloc((size_t)n, sizeof *rank), *th = calloc((size_t)n, sizeof *th),
            *on = calloc((size_t)n, sizeof *on);
    const char **host = calloc((size_t)n, sizeof *host), **cpus = calloc((size_t)n, sizeof *cpus);
    fb_status st;
    if (rank && th && on && host && cpus) {
        for (int q = 0; q < n; q++) {
            rank[q] = q; th[q] = ri[q].threads; on[q] = ri[q].online_cpus;
            host[q] = ri[q].host; cpus[q] = ri[q].cpus;
        }
        const fb_h5_column cols[] = {
            { "rank", FB_COL_I64, "1", "MPI_COMM_WORLD rank" },
            { "host", FB_COL_STR, "", "MPI_Get_processor_name" },
            { "cpus", FB_COL_STR, "", "CPUs the rank may run on (sched_getaffinity): its binding" },
            { "threads", FB_COL_I64, "1", "omp_get_max_threads() of the rank" },
            { "online_cpus", FB_COL_I64, "1", "online CPUs of its host" },
        };
        const void *data[] = { rank, host, cpus, th, on };
        st = fb_h5_write_table(h, h->file, "ranks", cols, (int)(sizeof cols / sizeof cols[0]), (size_t)n, data);
    } else {
        h->failed = 1;
        st = fb_fail(FB_ERR_ALLOC, "rank table of %d rows", n);
    }
    free(rank); free(th); free(on); free(host); free(cpus);
    return st;
}

fb_status fb_mpi_write_provenance(fb_h5 *h, const fb_mpi_run *r) {
    FB_REQUIRE(r->all, FB_ERR_INTERNAL, "provenance needs the rank census (fb_mpi_census) on rank 0");
    const hid_t root = h->file;
    char buf[256];
    fb_h5_attr_string(h, root, "fusebench_commit", fb_build_commit);
#ifdef __clang__
    fb_h5_attr_string(h, root, "compiler", "clang " __VERSION__ " (via mpicc)");
#else
    fb_h5_attr_string(h, root, "compiler", "gcc " __VERSION__ " (via mpicc)");
#endif
    fb_h5_attr_string(h, root, "cflags", fb_build_cflags);
    fb_h5_attr_string(h, root, "host", r->all[0].host);
    fb_h5_attr_string(h, root, "hosts", r->hosts);
    fb_h5_attr_int(h, root, "nhosts", r->nhosts);
    fb_h5_attr_int(h, root, "ranks", r->size);
    fb_h5_attr_int(h, root, "threads", r->all[0].threads);
    fb_h5_attr_string(h, root, "date", r->date);
    fb_h5_attr_string(h, root, "command_line", fb_cli_command_line());
    fb_h5_attr_string(h, root, "mpi_library", r->mpilib);
    int ver = 0, sub = 0;
    MPI_Get_version(&ver, &sub);
    snprintf(buf, sizeof buf, "%d.%d", ver, sub);
    fb_h5_attr_string(h, root, "mpi_version", buf);
    fb_h5_attr_string(h, root, "mpi_thread_level", fb_mpi_thread_level(r->provided));
    const char *envs[] = { "OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID",
                           "SLURM_ARRAY_TASK_ID", "OMPI_MCA_coll" };
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        const char *v = getenv(envs[i]);
        snprintf(buf, sizeof buf, "env_%s", envs[i]);
        fb_h5_attr_string(h, root, buf, v ? v : "");
    }
    return write_ranks_table(h, r);
}

fb_status fb_mpi_create_result(fb_h5 *h, const char *path, const char *schema, int version, const fb_mpi_run *r,
                               double elapsed) {
    FB_TRY(fb_h5_create(h, path));
    fb_h5_attr_string(h, h->file, "schema", schema);
    fb_h5_attr_int(h, h->file, "schema_version", version);
    fb_mpi_write_provenance(h, r);
    fb_h5_attr_double(h, h->file, "elapsed_s", elapsed);
    return h->failed ? FB_ERR_IO : FB_OK;
}
