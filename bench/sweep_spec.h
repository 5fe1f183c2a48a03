// Sweep specifications (`fusebench sweep plan SPEC`): the text format, its parser and the product of
// its values. The format is documented in bench/SWEEP.md:
//
//   # a comment, to the end of the line
//   scenario: multimodal
//   method: gmu, concat_mlp          # or `all`: every method that fits the scenario
//   arm: raw --celestial-raw         # repeatable: LABEL, then `fusebench train` options
//   arm: layernorm                   # an arm without options
//   ranks_per_node: 1, 2
//   seed: 1..3                       # an inclusive range of integers
//   exclude: parallel=dataparallel pairs=global
//
// Every axis below but `arm` takes a comma-separated list (arms take one line each); the sweep is
// the cartesian product of the lists (first axis outermost, seed innermost), less the runs an
// `exclude` line matches. Parsing checks
// every run as `fusebench train` would (method fits scenario, batch over ranks, even batch for a
// pairwise loss) so that a bad spec is refused before anything is written, with its line number.
//
// Library-style code: nothing is printed; errors come back as "FILE:LINE: reason" in `err`.
#pragma once
#include <stddef.h>

// The axes of the product, in product order (scenario outermost, seed innermost).
typedef enum {
    SWEEP_SCENARIO,
    SWEEP_METHOD,
    SWEEP_ARM,              // an index into sweep_spec.arms (sweep_run_arm names it)
    SWEEP_PARALLEL,
    SWEEP_PAIRS,
    SWEEP_NODES,
    SWEEP_RANKS_PER_NODE,
    SWEEP_THREADS,
    SWEEP_BATCH,            // global batch, or rows per rank when the spec says batch_per_rank
    SWEEP_STEPS,
    SWEEP_SEED,
    SWEEP_AXIS_COUNT
} sweep_axis;

typedef struct {
    int line;       // spec line that set the values; 0 when the axis took its default
    int all;        // method only: the spec said `all` (filtered per scenario by its fits())
    int n;
    int *val;       // n values: an index into the axis's names (sweep_axis_value) or the integer
} sweep_values;

typedef struct {
    int line;
    int n;                          // conditions, all of which must hold
    int axis[SWEEP_AXIS_COUNT];
    int val[SWEEP_AXIS_COUNT];      // as in sweep_values.val
    int matched;                    // runs this exclusion removed
} sweep_exclusion;

typedef struct {
    int v[SWEEP_AXIS_COUNT];        // per axis, as in sweep_values.val
    int ranks;                      // nodes x ranks_per_node
    int batch;                      // global batch
} sweep_run;

// An arm: `fusebench train` options that no axis sets (`--celestial-raw`, `--variant per_sample`),
// named so that runs differing by them can be told apart.
typedef struct {
    char label[64];                 // [A-Za-z0-9_.+-], not starting with '-'; "-": the implicit arm
    char options[1024];             // appended to the command after `extra` ("" = none)
    int line;                       // its `arm:` line; 0 for the implicit arm
} sweep_arm;

#define SWEEP_MAX_ARMS 64

typedef enum { SWEEP_LAUNCH_AUTO, SWEEP_LAUNCH_SRUN, SWEEP_LAUNCH_MPIRUN } sweep_launcher;
extern const char *const sweep_launcher_names[3];

typedef struct {
    sweep_values axes[SWEEP_AXIS_COUNT];
    int batch_per_rank;             // 1: the SWEEP_BATCH values are rows per rank (key batch_per_rank)
    int nexcl;
    sweep_exclusion *excl;
    char extra[1024];               // `fusebench train` options appended verbatim ("" = none)
    int narms;                      // >= 1: without `arm:` lines, one implicit arm "-" without options
    sweep_arm *arms;
    char sbatch[1024];              // extra #SBATCH options, space-separated ("" = none)
    sweep_launcher launcher;
    int nruns;
    sweep_run *runs;                // the product, less exclusions, in product order
} sweep_spec;

#define SWEEP_MAX_RUNS 9999         // run ids are r0001 .. r9999

// Parses `text` (a whole spec; `name` labels the messages), expands and checks the product into
// s->runs. 0 on success; -1 with "NAME:LINE: reason" in err (s is then empty, nothing to free).
int sweep_spec_parse(sweep_spec *s, const char *text, const char *name, char *err, size_t err_size);
// Reads the file and parses it (messages are labelled with the path).
int sweep_spec_load(sweep_spec *s, const char *path, char *err, size_t err_size);
// A whole text file, NUL-terminated (malloc'd); NULL with "PATH: reason" in err.
char *sweep_read_text(const char *path, char *err, size_t err_size);
void sweep_spec_free(sweep_spec *s);

// 1 for the integer axes (nodes, ranks_per_node, threads, batch, steps, seed).
int sweep_axis_numeric(sweep_axis a);
// The text of value v of axis a: its name ("gmu", "ddp") or the integer, into buf. Arms are the
// spec's own, so SWEEP_ARM gives the index; sweep_run_arm gives the label.
const char *sweep_axis_value(sweep_axis a, int v, char *buf, size_t size);
// A run's arm: its label, and its options ("" for none).
const char *sweep_run_arm(const sweep_spec *s, const sweep_run *r);
const char *sweep_run_arm_options(const sweep_spec *s, const sweep_run *r);

// Slurm job array index lists: rows (ascending, distinct, >= 1) <-> "1-4,7,9-12".
void sweep_rows_format(const int *rows, int n, char *buf, size_t size);
// Parses such a list into rows (at most max); returns the count, or -1 when it is malformed.
int sweep_rows_parse(const char *s, int *rows, int max);
