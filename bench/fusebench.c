// fusebench: one command, one subcommand per task (`fusebench <subcommand> [options]`).
// The table below is the only place a subcommand is registered; each lives in bench/bench_<name>.c
// and takes (argc, argv) with argv[0] = its own name. MPI is initialised by the subcommands that
// need it, not here: the kernel benchmark is a single process.
#include <stdio.h>
#include <string.h>
#include "build_info.h"
#include "cli.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} fb_subcommand;

static const fb_subcommand subcommands[] = {
    { "kernels", bench_kernels_main,
      "forward/backward time, GFLOP/s and % of this machine's SGEMM ceiling of kernel blocks\n"
      "             and fusion methods (--methods all)" },
    { "comm", bench_comm_main,
      "MPI allreduce/allgather latency and bandwidth by message size, MPI_Iallreduce overlap\n"
      "             with compute (run under mpirun, or alone as one rank)" },
    { "train", bench_train_main,
      "train a scenario model (timeseries, multimodal, microbiome) with a fusion method,\n"
      "             data-parallel under MPI (dataparallel or ddp); per-step phase times" },
    { "data", bench_data_main,
      "datasets: `data make` writes a synthetic microbiome as BIOM + Newick + TSV + UniFrac\n"
      "             files; `data unifrac` computes a UniFrac matrix across MPI ranks (libssu)" },
    { "sweep", bench_sweep_main,
      "scaling sweeps: plan a spec into a manifest and Slurm job arrays, submit, status,\n"
      "             rerun what is missing; --local runs them with mpirun" },
    { "study", bench_study_main,
      "a claim of the design documents measured: a seeded sweep, its figures, a verdict and a plot" },
    { "merge", bench_merge_main, "merge a sweep's per-run HDF5 files into one summary file" },
    { "project", bench_project_main,
      "project step time and efficiency to 1..1024 nodes from measured runs and the\n"
      "             allreduce of `fusebench comm` (or given latency and bandwidth)" },
    { "counters", bench_counters_main,
      "which PAPI events this machine can count (and why not), per-thread per-phase counts\n"
      "             of a known workload, and the cost of one phase boundary" },
    { "list", bench_list_main, "every fusion method: kind, source document, variants, parameters, FLOPs" },
    { "describe", bench_describe_main, "one fusion method's formula, variants and parameter tensors" },
};
#define NSUB ((int)(sizeof subcommands / sizeof subcommands[0]))

static void usage(FILE *f) {
    fprintf(f,
            "usage: fusebench <subcommand> [options]\n"
            "       fusebench <subcommand> --help     options of one subcommand\n"
            "       fusebench --version               commit and compiler flags of this build\n"
            "\n"
            "Benchmarks of neural-network fusion methods and their building blocks (OpenMP + OpenBLAS).\n"
            "\n"
            "subcommands:\n");
    for (int i = 0; i < NSUB; i++) fprintf(f, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(f,
            "\n"
            "Results go to results/<subcommand>-<date>-<time>.h5 (schema: results/README.md); every\n"
            "figure of merit is also printed as a greppable `FOM <subcommand> key=value ...` line.\n"
            "Exit status: 0 success, 1 a run failed, 2 usage error.\n");
}

int main(int argc, char **argv) {
    fb_cli_set_command_line(argc, argv);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return FB_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("fusebench %s (built with %s)\n", fb_build_commit, fb_build_cflags);
        return FB_EXIT_OK;
    }
    if (strcmp(argv[1], "help") == 0) {   // `fusebench help kernels` = `fusebench kernels --help`
        if (argc < 3) { usage(stdout); return FB_EXIT_OK; }
        for (int i = 0; i < NSUB; i++)
            if (strcmp(argv[2], subcommands[i].name) == 0) {
                char *help_argv[] = { argv[2], "--help", NULL };
                return subcommands[i].run(2, help_argv);
            }
    }
    const char *name = strcmp(argv[1], "help") == 0 ? argv[2] : argv[1];
    for (int i = 0; i < NSUB; i++)
        if (strcmp(name, subcommands[i].name) == 0) return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "fusebench: unknown subcommand '%s'. Known:", name);
    for (int i = 0; i < NSUB; i++) fprintf(stderr, " %s", subcommands[i].name);
    fprintf(stderr, " (see fusebench --help)\n");
    return FB_EXIT_USAGE;
}
