// Shared driver utilities for the `fusebench` subcommands (OSU's "thin drivers, shared
// utilities"): option parsing, timing statistics, the results path, and the subcommand entry
// points. Driver code: it prints and returns exit codes; kernels never include it.
//
// Exit codes used by every subcommand: 0 success, 1 a run failed (kernel error, non-finite
// result, I/O error), 2 usage error (bad flag or value).
#pragma once
#include <stddef.h>
#include <stdio.h>

#define FB_EXIT_OK 0
#define FB_EXIT_FAIL 1
#define FB_EXIT_USAGE 2

// ---- Subcommands (one bench/bench_<name>.c each; the table lives in fusebench.c) ----
int bench_kernels_main(int argc, char **argv);   // argv[0] is "kernels"
int bench_list_main(int argc, char **argv);      // bench_methods.c
int bench_describe_main(int argc, char **argv);  // bench_methods.c
int bench_comm_main(int argc, char **argv);      // bench_comm.c; calls MPI_Init/MPI_Finalize
int bench_counters_main(int argc, char **argv);  // bench_counters.c: PAPI counters, SDE, boundary cost
int bench_train_main(int argc, char **argv);     // bench_train.c; calls MPI_Init/MPI_Finalize
int bench_data_main(int argc, char **argv);      // bench_data.c: data make (files), data unifrac (MPI)
int bench_study_main(int argc, char **argv);     // bench_study.c: the studies (studies/): run, analyse, verdict
int bench_sweep_main(int argc, char **argv);     // bench_sweep.c: sweep plan|submit|status|run (Slurm or local)
int bench_merge_main(int argc, char **argv);     // bench_merge.c: merge a sweep's result files into one summary
int bench_project_main(int argc, char **argv);   // bench_project.c: scaling projection to 1..1024 nodes

// ---- Options ----
//
// Long options only: `--name value` or `--name=value`; `--help`/`-h` is always accepted. An option
// table is declarative: each entry points at the variable it fills, whose value before parsing is
// the default that --help prints.

#define FB_LIST_MAX 64
typedef struct { int n; int v[FB_LIST_MAX]; } fb_int_list;

typedef enum {
    FB_OPT_FLAG,      // int *: set to 1; takes no value
    FB_OPT_INT,       // int *
    FB_OPT_DOUBLE,    // double *
    FB_OPT_STRING,    // const char **: points into argv
    FB_OPT_INT_LIST,  // fb_int_list *: "1,2,8"; the word "all" means all_value when that is > 0
} fb_opt_type;

typedef struct {
    const char *name;     // without the leading "--"
    fb_opt_type type;
    void *value;
    const char *metavar;  // shown in --help: "N", "LIST", "FILE"
    const char *help;     // what it does (wrapped by hand, '\n' allowed)
    double min, max;      // accepted range of INT / DOUBLE / each list element; min > max: any
    int all_value;        // INT_LIST only
} fb_option;

typedef enum { FB_CLI_OK, FB_CLI_HELP, FB_CLI_ERROR } fb_cli_result;

// Parses argv[first..argc). On a usage error prints "<prog>: <reason>" naming the flag and the bad
// value to stderr and returns FB_CLI_ERROR (the caller exits with FB_EXIT_USAGE). Returns
// FB_CLI_HELP when --help/-h was given (nothing printed; the caller prints its help).
fb_cli_result fb_cli_parse(const char *prog, const fb_option *opts, int nopts, int argc, char **argv, int first);
// Prints the options of a table with their defaults (the variables' current values).
void fb_cli_print_options(FILE *f, const fb_option *opts, int nopts);
// Strict number parsing (whole string, range-checked); 0 on success, -1 with a reason in `why`.
int fb_parse_int(const char *s, int *out, char *why, size_t why_size);
int fb_parse_double(const char *s, double *out, char *why, size_t why_size);
int fb_parse_int_list(const char *s, fb_int_list *out, int all_value, char *why, size_t why_size);
void fb_int_list_format(const fb_int_list *l, char *buf, size_t size);   // "1,2"

// The whole command line, recorded once by main() for provenance ("bench/fusebench kernels ...").
void fb_cli_set_command_line(int argc, char **argv);
const char *fb_cli_command_line(void);

// ---- Timing ----
double fb_now(void);   // seconds, CLOCK_MONOTONIC
typedef struct { double median, min, max, mean; int n; } fb_stats;
// Median (mean of the two middle values for even n), min, max and mean of x[0..n); x is not changed.
fb_stats fb_stats_of(const double *x, int n);

// ---- Results ----
// Fills buf with results/<kind>-YYYYmmdd-HHMMSS.h5 (local time; "-2", "-3"... appended when that
// name is taken), creating results/ in the working directory if missing. 0 on success, -1 with
// the reason printed to stderr.
int fb_results_path(char *buf, size_t size, const char *kind);
// ISO 8601 local time with offset, e.g. 2025-05-04T12:34:56+0000.
void fb_iso_time(char *buf, size_t size);
