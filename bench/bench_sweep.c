// `fusebench sweep`: scaling sweeps of `fusebench train` (bench/SWEEP.md is the user's guide).
//
//   sweep plan SPEC --out DIR [--dry-run]   spec → DIR/manifest.tsv, one Slurm job array per resource
//                                           shape (DIR/slurm/array-<shape>.sbatch), DIR/slurm/merge.sbatch
//   sweep submit DIR [--missing] [--dry-run]  sbatch the arrays, then the merge job (afterok); DIR/jobs.tsv
//   sweep status DIR                        per run: done, failed, running, pending or missing
//   sweep run DIR --local [--np-max N]      the same manifest with mpirun, one run after another
//
// The manifest is the contract between the steps: one row per run, columns named in its header
// (MANIFEST_COLUMNS), the exact train command in its last column. A job array task reads its row
// with awk (SLURM_ARRAY_TASK_ID = the row number of run id r%04d); the local runner reads the same
// rows. A run's state is its result file's root attribute `complete` (results/README.md), read here
// with the HDF5 C API, refined by Slurm's queue (squeue) and accounting (sacct) when they answer.
//
// Driver code: prints messages and returns the exit codes of cli.h.
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "machine.h"
#include "proc.h"
#include "sweep_spec.h"

#define PROG "fusebench sweep"

// ---- Small helpers ----

// Prints "fusebench sweep: <message>" to stderr; returns -1.
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return -1;
}

// Paths go into command lines and scripts unquoted (the manifest's command is split on spaces), so
// they may not hold spaces or shell syntax.
static int plain_path(const char *what, const char *path) {
    if (strpbrk(path, " \t\n;&|<>$`'\"\\(){}*?!~#%")) {
        fprintf(stderr, PROG ": %s '%s' holds a space or a shell character; choose a plain path "
                        "(it goes into command lines and Slurm scripts)\n", what, path);
        return -1;
    }
    return 0;
}

static int join(char *buf, size_t size, const char *a, const char *b) {
    int n = snprintf(buf, size, "%s/%s", a, b);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int on_path(const char *cmd) {
    const char *path = getenv("PATH");
    char dir[PATH_MAX], file[PATH_MAX + 64];
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(dir, sizeof dir, "%.*s", (int)n, p);
        snprintf(file, sizeof file, "%s/%s", n ? dir : ".", cmd);
        if (access(file, X_OK) == 0) return 1;
        p += n;
        if (*p == ':') p++;
    }
    return 0;
}

static int make_dir(const char *path) {
    if (mkdir(path, 0777) != 0 && errno != EEXIST) return fail("cannot create %s: %s", path, strerror(errno));
    return 0;
}

static int write_file(const char *path, const char *text, int executable) {
    FILE *f = fopen(path, "w");
    if (!f) return fail("cannot write %s: %s", path, strerror(errno));
    int bad = fputs(text, f) < 0;
    bad |= fclose(f) != 0;
    if (bad) return fail("writing %s failed", path);
    if (executable) chmod(path, 0755);
    return 0;
}

// Child processes and the plot scripts: bench/proc.h.
static int self_exe(char *buf, size_t size) { return fb_self_exe(PROG, buf, size); }
static void report_script(const char *exe, char *buf, size_t size) { fb_plot_script(exe, "report.py", buf, size); }

// ---- The manifest ----

// Column order of DIR/manifest.tsv. Readers look columns up by name (scripts with awk), so columns
// may be added; `command` stays last.
static const char *const MANIFEST_COLUMNS[] = { "id", "scenario", "method", "parallel", "pairs", "nodes",
                                                "ranks_per_node", "ranks", "threads", "batch", "batch_per_rank",
                                                "steps", "seed", "arm", "shape", "out", "command" };
#define NCOLUMNS ((int)(sizeof MANIFEST_COLUMNS / sizeof MANIFEST_COLUMNS[0]))

static int run_number(const char *id) { return id[0] == 'r' ? atoi(id + 1) : 0; }

// The resource shape of a run: nodes x tasks per node x CPUs per task ("n1-t2-c1").
static void run_shape(const sweep_run *r, char *buf, size_t size) {
    snprintf(buf, size, "n%d-t%d-c%d", r->v[SWEEP_NODES], r->v[SWEEP_RANKS_PER_NODE], r->v[SWEEP_THREADS]);
}

// A job array index list "1-4,7,9-12" of rows (malloc'd: a list of thousands of rows is long).
static char *rows_text(const int *rows, int n) {
    const size_t size = (size_t)n * 11 + 1;   // "9999-9999," at most per row
    char *buf = malloc(size);
    if (buf) sweep_rows_format(rows, n, buf, size);
    return buf;
}

static void manifest_write(FILE *f, const sweep_spec *s, const char *dir, const char *exe) {
    for (int c = 0; c < NCOLUMNS; c++) fprintf(f, "%s%c", MANIFEST_COLUMNS[c], c + 1 < NCOLUMNS ? '\t' : '\n');
    for (int i = 0; i < s->nruns; i++) {
        const sweep_run *r = &s->runs[i];
        char v[SWEEP_AXIS_COUNT][64], shape[64], id[16], out[PATH_MAX + 32];
        for (int a = 0; a < SWEEP_AXIS_COUNT; a++) sweep_axis_value((sweep_axis)a, r->v[a], v[a], sizeof v[a]);
        run_shape(r, shape, sizeof shape);
        snprintf(id, sizeof id, "r%04d", i + 1);
        snprintf(out, sizeof out, "%s/runs/%s.h5", dir, id);
        const char *arm_options = sweep_run_arm_options(s, r);
        fprintf(f, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t", id, v[SWEEP_SCENARIO],
                v[SWEEP_METHOD], v[SWEEP_PARALLEL], v[SWEEP_PAIRS], r->v[SWEEP_NODES], r->v[SWEEP_RANKS_PER_NODE],
                r->ranks, r->v[SWEEP_THREADS], r->batch, r->batch / r->ranks, r->v[SWEEP_STEPS], r->v[SWEEP_SEED],
                sweep_run_arm(s, r), shape, out);
        // The arm's options come last: `fusebench train` keeps an option's last value, so an arm may
        // override what `extra` sets for every run.
        fprintf(f, "%s train --scenario %s --method %s --parallel %s --pairs %s --batch %d --steps %d --seed %d "
                   "--threads %d --out %s%s%s%s%s\n",
                exe, v[SWEEP_SCENARIO], v[SWEEP_METHOD], v[SWEEP_PARALLEL], v[SWEEP_PAIRS], r->batch,
                r->v[SWEEP_STEPS], r->v[SWEEP_SEED], r->v[SWEEP_THREADS], out, s->extra[0] ? " " : "", s->extra,
                arm_options[0] ? " " : "", arm_options);
    }
}

typedef struct {
    int nrows;
    char **cell;        // nrows x NCOLUMNS, row-major (the file's text, split in place)
    char *text;
    int col[NCOLUMNS];  // file column of each MANIFEST_COLUMNS entry
} manifest;

enum { M_ID, M_SCENARIO, M_METHOD, M_PARALLEL, M_PAIRS, M_NODES, M_RANKS_PER_NODE, M_RANKS, M_THREADS, M_BATCH,
       M_BATCH_PER_RANK, M_STEPS, M_SEED, M_ARM, M_SHAPE, M_OUT, M_COMMAND };
_Static_assert(M_COMMAND + 1 == NCOLUMNS, "the column enum follows MANIFEST_COLUMNS");

static const char *cell(const manifest *m, int row, int column) { return m->cell[(size_t)row * NCOLUMNS + column]; }

static void manifest_free(manifest *m) { free(m->cell); free(m->text); memset(m, 0, sizeof *m); }

// Splits line at tabs in place into at most max fields; returns the count.
static int split_tabs(char *line, char **field, int max) {
    int n = 0;
    for (char *p = line; n < max;) {
        field[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab) break;
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

// Reads DIR/manifest.tsv; its header names the columns. Prints the reason and returns -1 on error.
static int manifest_load(const char *dir, manifest *m) {
    memset(m, 0, sizeof *m);
    char path[PATH_MAX];
    if (join(path, sizeof path, dir, "manifest.tsv")) return fail("path too long: %s", dir);
    char err[PATH_MAX + 128];
    if (!(m->text = sweep_read_text(path, err, sizeof err)))
        return fail("%s (plan the sweep first: fusebench sweep plan SPEC --out %s)", err, dir);
    int lines = 0;
    for (char *p = m->text; *p; p++) lines += *p == '\n';
    m->cell = calloc((size_t)(lines + 1) * NCOLUMNS, sizeof *m->cell);
    char *save = NULL, *header = m->text ? strtok_r(m->text, "\n", &save) : NULL, *fields[64];
    if (!m->cell || !header) { fail("%s: %s", path, m->cell ? "empty" : "out of memory"); goto bad; }
    const int nf = split_tabs(header, fields, 64);
    // A manifest planned before arms existed has no `arm` column: its runs are the implicit arm "-".
    static char implicit_arm[] = "-";
    for (int c = 0; c < NCOLUMNS; c++) {
        m->col[c] = -1;
        for (int k = 0; k < nf; k++)
            if (strcmp(fields[k], MANIFEST_COLUMNS[c]) == 0) m->col[c] = k;
        if (m->col[c] < 0 && c != M_ARM) { fail("%s has no column '%s'", path, MANIFEST_COLUMNS[c]); goto bad; }
    }
    for (char *line; (line = strtok_r(NULL, "\n", &save)); m->nrows++) {
        const int k = split_tabs(line, fields, 64), row = m->nrows + 1;
        if (k != nf) { fail("%s: row %d has %d fields, the header %d", path, row, k, nf); goto bad; }
        for (int c = 0; c < NCOLUMNS; c++)
            m->cell[(size_t)m->nrows * NCOLUMNS + c] = m->col[c] >= 0 ? fields[m->col[c]] : implicit_arm;
        if (run_number(cell(m, m->nrows, M_ID)) != row) {
            fail("%s: row %d has id '%s' (expected r%04d)", path, row, cell(m, m->nrows, M_ID), row);
            goto bad;
        }
    }
    if (m->nrows > 0) return 0;
    fail("%s lists no runs", path);
bad:
    manifest_free(m);
    return -1;
}

// ---- Slurm scripts ----

static void sbatch_extra(FILE *f, const sweep_spec *s) {
    char copy[sizeof s->sbatch];
    snprintf(copy, sizeof copy, "%s", s->sbatch);
    for (char *save = NULL, *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
        fprintf(f, "#SBATCH %s\n", t);
}

static void array_script(FILE *f, const sweep_spec *s, const sweep_run *r, const char *rows, const char *dir,
                         const char *name) {
    char shape[64];
    run_shape(r, shape, sizeof shape);
    const int nodes = r->v[SWEEP_NODES], tasks = r->v[SWEEP_RANKS_PER_NODE], cpus = r->v[SWEEP_THREADS];
    fprintf(f,
            "#!/bin/bash\n"
            "# fusebench sweep %s: the runs of shape %s (%d node%s x %d task%s per node x %d CPU%s per task).\n"
            "# SLURM_ARRAY_TASK_ID is the manifest row (run r%%04d). `fusebench sweep submit` passes --array\n"
            "# itself; the list below is every run of this shape, for a plain `sbatch` of this file.\n"
            "#SBATCH --job-name=fb-%s-%s\n"
            "#SBATCH --nodes=%d\n"
            "#SBATCH --ntasks-per-node=%d\n"
            "#SBATCH --cpus-per-task=%d\n"
            "#SBATCH --array=%s\n"
            "#SBATCH --output=%s/logs/slurm-%%A_%%a.out\n",
            name, shape, nodes, nodes > 1 ? "s" : "", tasks, tasks > 1 ? "s" : "", cpus, cpus > 1 ? "s" : "", name,
            shape, nodes, tasks, cpus, rows, dir);
    sbatch_extra(f, s);
    fprintf(f,
            "set -eu\n"
            "SWEEP=%s\n"
            "LAUNCHER=%s   # auto: srun --mpi=pmix where this Slurm offers PMIx, else mpirun\n"
            "\n"
            "id=$(printf 'r%%04d' \"$SLURM_ARRAY_TASK_ID\")\n"
            "field() {   # field NAME: column NAME of run $id in the manifest\n"
            "  awk -F'\\t' -v id=\"$id\" -v name=\"$1\" \\\n"
            "    'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next } $col[\"id\"] == id { print $col[name] }' \\\n"
            "    \"$SWEEP/manifest.tsv\"\n"
            "}\n"
            "cmd=$(field command)\n"
            "out=$(field out)\n"
            "if [ -z \"$cmd\" ]; then echo \"no run $id in $SWEEP/manifest.tsv\" >&2; exit 1; fi\n"
            "log=$SWEEP/logs/$id.log\n"
            "echo \"run $id (job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on $(hostname)): output in $log\"\n"
            "# fusebench train never overwrites a result: an earlier attempt's file is kept as .prev\n"
            "if [ -e \"$out\" ]; then mv -f \"$out\" \"$out.prev\"; fi\n"
            "\n"
            "# Hybrid MPI + OpenMP: one rank per task, its threads on the task's cores.\n"
            "export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK OMP_PLACES=cores OMP_PROC_BIND=close\n"
            "if [ \"$LAUNCHER\" = auto ]; then\n"
            "  if srun --mpi=list 2>&1 | grep -qw pmix; then LAUNCHER=srun; else LAUNCHER=mpirun; fi\n"
            "fi\n"
            "case $LAUNCHER in\n"
            "  srun)   # since Slurm 22.05 srun does not inherit --cpus-per-task from sbatch\n"
            "    set -- srun --mpi=pmix --cpu-bind=cores --cpus-per-task=\"$SLURM_CPUS_PER_TASK\" ;;\n"
            "  *)\n"
            "    set -- mpirun --bind-to core --map-by \"ppr:$SLURM_NTASKS_PER_NODE:node:PE=$SLURM_CPUS_PER_TASK\"\n"
            "    if [ \"$(id -u)\" -eq 0 ]; then set -- \"$@\" --allow-run-as-root; fi ;;\n"
            "esac\n"
            "echo \"$* $cmd\" >\"$log\"\n"
            "# $cmd unquoted on purpose: its words (the planner refuses paths with spaces)\n"
            "exec \"$@\" $cmd >>\"$log\" 2>&1\n",
            dir, sweep_launcher_names[s->launcher]);
}

static void merge_script(FILE *f, const sweep_spec *s, const char *dir, const char *name, const char *exe,
                         const char *report) {
    fprintf(f,
            "#!/bin/bash\n"
            "# fusebench sweep %s: merges the runs' result files and writes the report. `fusebench sweep\n"
            "# submit` adds --dependency=afterok:<the array jobs>; a failed run makes the dependency\n"
            "# impossible and Slurm cancels this job (--kill-on-invalid-dep); `fusebench sweep submit --missing`\n"
            "# reruns what is missing and submits a new merge job.\n"
            "#SBATCH --job-name=fb-%s-merge\n"
            "#SBATCH --nodes=1\n"
            "#SBATCH --ntasks=1\n"
            "#SBATCH --cpus-per-task=1\n"
            "#SBATCH --kill-on-invalid-dep=yes\n"
            "#SBATCH --output=%s/logs/merge-%%j.out\n",
            name, name, dir);
    sbatch_extra(f, s);
    fprintf(f,
            "set -eu\n"
            "SWEEP=%s\n"
            "%s merge \"$SWEEP\" --force   # the summary of every run so far, replacing an earlier one\n"
            "REPORT=%s\n"
            "if [ -f \"$REPORT\" ]; then %s \"$REPORT\" \"$SWEEP\"; else echo \"no $REPORT: no report\"; fi\n",
            dir, exe, report, fb_python());
}

// ---- sweep plan ----

typedef struct { char name[64]; int n, *rows; const sweep_run *first; } shape_group;

// Groups the runs by resource shape, in order of first appearance; rows are 1-based run numbers.
static int group_shapes(const sweep_spec *s, shape_group **out) {
    shape_group *g = calloc((size_t)s->nruns, sizeof *g);
    int ng = 0;
    if (!g) return -1;
    for (int i = 0; i < s->nruns; i++) {
        char shape[64];
        run_shape(&s->runs[i], shape, sizeof shape);
        int k = 0;
        while (k < ng && strcmp(g[k].name, shape) != 0) k++;
        if (k == ng) {
            snprintf(g[ng].name, sizeof g[ng].name, "%s", shape);
            g[ng].first = &s->runs[i];
            if (!(g[ng++].rows = malloc((size_t)s->nruns * sizeof(int)))) return -1;
        }
        g[k].rows[g[k].n++] = i + 1;
    }
    *out = g;
    return ng;
}

static void free_shapes(shape_group *g, int n) {
    for (int i = 0; g && i < n; i++) free(g[i].rows);
    free(g);
}

// DIR as an absolute path (it need not exist yet: then its parent must), refusing a folder that holds
// a sweep already.
static int sweep_dir(const char *out, char *abs, size_t size) {
    char probe[PATH_MAX];
    if (join(probe, sizeof probe, out, "manifest.tsv")) return fail("path too long: %s", out);
    if (access(probe, F_OK) == 0) return fail("%s holds a sweep already (%s); plan into a new folder", out, probe);
    if (realpath(out, abs)) return plain_path("the sweep folder", abs);
    char copy[PATH_MAX], base_copy[PATH_MAX], parent[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", out);
    snprintf(base_copy, sizeof base_copy, "%s", out);
    if (!realpath(dirname(copy), parent)) return fail("cannot resolve the folder of %s: %s", out, strerror(errno));
    if ((size_t)snprintf(abs, size, "%s/%s", parent, basename(base_copy)) >= size) return fail("path too long");
    return plain_path("the sweep folder", abs);
}

// A file plan makes: its text is built in memory first, and written only when every file was made.
typedef struct { char path[PATH_MAX + 160]; char *text; size_t len; int executable; } planned_file;

// A stream for the text of planned file p (fclose ends it), whose path is dir/name; NULL on failure.
static FILE *planned(planned_file *p, const char *dir, const char *name, int executable) {
    *p = (planned_file){ .executable = executable };
    snprintf(p->path, sizeof p->path, "%s/%s", dir, name);
    return open_memstream(&p->text, &p->len);
}

static int plan_main(int argc, char **argv) {
    const char *out = NULL;
    int dry = 0;
    const fb_option opts[] = {
        { "out", FB_OPT_STRING, &out, "DIR", "the sweep folder to create (required)", 1, 0, 0 },
        { "dry-run", FB_OPT_FLAG, &dry, NULL, "print the manifest and the scripts; write nothing", 1, 0, 0 },
    };
    const int nopts = (int)(sizeof opts / sizeof opts[0]);
    const int has_spec = argc > 1 && strncmp(argv[1], "-", 1) != 0;
    fb_cli_result pr = fb_cli_parse(PROG " plan", opts, nopts, argc, argv, has_spec ? 2 : 1);
    if (pr == FB_CLI_HELP) {
        printf("usage: fusebench sweep plan SPEC --out DIR [--dry-run]\n\n"
               "Expands the sweep specification SPEC (format: bench/SWEEP.md) into DIR/manifest.tsv (one row\n"
               "per run with its exact `fusebench train` command), DIR/slurm/array-<shape>.sbatch (one job\n"
               "array per shape: nodes x tasks per node x CPUs per task) and DIR/slurm/merge.sbatch.\n"
               "A bad spec is refused with its line number, and nothing is written.\n\noptions:\n");
        fb_cli_print_options(stdout, opts, nopts);
        return FB_EXIT_OK;
    }
    if (pr == FB_CLI_ERROR) return FB_EXIT_USAGE;
    if (!has_spec || !out) {
        fprintf(stderr, PROG " plan: usage: fusebench sweep plan SPEC --out DIR [--dry-run]\n");
        return FB_EXIT_USAGE;
    }
    sweep_spec s;
    char err[1024], exe[PATH_MAX], dir[PATH_MAX], report[PATH_MAX];
    char *spec_text = sweep_read_text(argv[1], err, sizeof err);
    if (!spec_text || sweep_spec_parse(&s, spec_text, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, PROG " plan: %s\n", err);
        free(spec_text);
        return FB_EXIT_USAGE;
    }
    shape_group *groups = NULL;
    int ngroups = -1, rc = FB_EXIT_FAIL;
    planned_file files[64 + 3];
    int nfiles = 0;
    if (self_exe(exe, sizeof exe) || plain_path("the fusebench binary", exe) || sweep_dir(out, dir, sizeof dir))
        goto done;
    report_script(exe, report, sizeof report);
    const char *name = strrchr(dir, '/') + 1;
    if ((ngroups = group_shapes(&s, &groups)) < 0) { fail("out of memory"); goto done; }
    if (ngroups > 64) { fail("%d resource shapes: at most 64 job arrays per sweep", ngroups); goto done; }
    // Every file's text first: nothing is written unless all of it was made.
    FILE *f = planned(&files[nfiles++], dir, "manifest.tsv", 0);
    if (!f) goto done;
    manifest_write(f, &s, dir, exe);
    fclose(f);
    for (int g = 0; g < ngroups; g++) {
        char file[128], *rows = rows_text(groups[g].rows, groups[g].n);
        snprintf(file, sizeof file, "slurm/array-%s.sbatch", groups[g].name);
        if (!rows || !(f = planned(&files[nfiles++], dir, file, 1))) { free(rows); goto done; }
        array_script(f, &s, groups[g].first, rows, dir, name);
        fclose(f);
        free(rows);
    }
    if (!(f = planned(&files[nfiles++], dir, "slurm/merge.sbatch", 1))) goto done;
    merge_script(f, &s, dir, name, exe, report);
    fclose(f);

    if (dry) {
        for (int i = 0; i < nfiles; i++) printf("==> %s <==\n%s\n", files[i].path, files[i].text);
    } else {
        const char *subdirs[] = { "slurm", "runs", "logs" };
        char path[PATH_MAX];
        if (make_dir(dir)) goto done;
        for (int i = 0; i < 3; i++)
            if (join(path, sizeof path, dir, subdirs[i]) || make_dir(path)) goto done;
        for (int i = 0; i < nfiles; i++)
            if (write_file(files[i].path, files[i].text, files[i].executable)) goto done;
        if (join(path, sizeof path, dir, "sweep.spec") || write_file(path, spec_text, 0)) goto done;   // for the record
    }
    printf("%s %d runs in %d job array%s (%s%s):\n", dry ? "would plan" : "planned", s.nruns, ngroups,
           ngroups > 1 ? "s" : "", dir, dry ? ", dry run: nothing written" : "");
    for (int g = 0; g < ngroups; g++) {
        char *rows = rows_text(groups[g].rows, groups[g].n);
        printf("  slurm/array-%s.sbatch  %d run%s: %.72s%s\n", groups[g].name, groups[g].n, groups[g].n > 1 ? "s" : "",
               rows ? rows : "?", rows && strlen(rows) > 72 ? "..." : "");
        free(rows);
    }
    if (!dry)
        printf("next: fusebench sweep submit %s    (Slurm)\n"
               "  or: fusebench sweep run %s --local    (mpirun here, one run after another)\n", out, out);
    rc = FB_EXIT_OK;
done:
    for (int i = 0; i < nfiles; i++) free(files[i].text);
    free_shapes(groups, ngroups);
    sweep_spec_free(&s);
    free(spec_text);
    return rc;
}

// ---- Run states ----

typedef enum { FILE_MISSING, FILE_COMPLETE, FILE_CUT, FILE_FAILED, FILE_BUSY, FILE_UNREADABLE } file_state;

// The result file's state: `complete` = 1 → COMPLETE; 0 with an `error` attribute → FAILED (its
// text in why); 0 without → CUT (killed, or still running outside Slurm's view). A writer holds
// HDF5's file lock (flock) for the whole run: BUSY.
static file_state read_file_state(const char *path, char *why, size_t size) {
    why[0] = '\0';
    int fd = open(path, O_RDONLY);
    if (fd < 0) return errno == ENOENT ? FILE_MISSING : (snprintf(why, size, "%s", strerror(errno)), FILE_UNREADABLE);
    int busy = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    if (busy) return FILE_BUSY;
    file_state st = FILE_UNREADABLE;
    snprintf(why, size, "not an HDF5 file, or no `complete` attribute");
    H5E_BEGIN_TRY {
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        int64_t complete = -1;
        if (f >= 0 && H5Aexists(f, "complete") > 0) {
            hid_t a = H5Aopen(f, "complete", H5P_DEFAULT);
            if (a >= 0 && H5Aread(a, H5T_NATIVE_INT64, &complete) >= 0)
                st = complete == 1 ? FILE_COMPLETE : FILE_CUT;
            if (a >= 0) H5Aclose(a);
        }
        if (st == FILE_CUT) why[0] = '\0';
        if (st == FILE_CUT && H5Aexists(f, "error") > 0) {
            hid_t a = H5Aopen(f, "error", H5P_DEFAULT), type = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
            if (type >= 0 && H5Tis_variable_str(type) > 0) {   // the file's own type: no charset conversion
                char *text = NULL;
                if (H5Aread(a, type, &text) >= 0 && text) snprintf(why, size, "%s", text);
                H5free_memory(text);
            } else if (type >= 0) {
                size_t n = H5Tget_size(type);
                char *text = calloc(n + 1, 1);
                if (text && H5Aread(a, type, text) >= 0) snprintf(why, size, "%s", text);
                free(text);
            }
            if (type >= 0) H5Tclose(type);
            if (a >= 0) H5Aclose(a);
            st = FILE_FAILED;
        }
        if (f >= 0) H5Fclose(f);
    } H5E_END_TRY;
    return st;
}

static const char *file_state_words(file_state st) {
    switch (st) {
    case FILE_MISSING: return "no result file";
    case FILE_COMPLETE: return "complete";
    case FILE_CUT: return "cut short (complete = 0, no error: killed, or a time limit)";
    case FILE_FAILED: return "failed";
    case FILE_BUSY: return "being written (its writer holds the file lock)";
    case FILE_UNREADABLE: return "unreadable";
    }
    return "?";
}

// ---- Slurm's view: jobs.tsv, squeue, sacct ----

typedef struct {
    char job[32];      // job id of the latest array job that ran this row ("" = never submitted)
    int task;          // its array task id (the row), 0 for the merge job
    char queue[32];    // squeue state (PENDING, RUNNING, ...), "" when not queued
    char reason[64];   // squeue's reason (Dependency, Resources, ...)
    char final[32];    // sacct state (COMPLETED, FAILED, TIMEOUT, ...), "" when unknown
} slurm_view;

typedef struct { char job[32], kind[16]; char *rows; } job_record;   // rows: an array's index list, or "-"

static void jobs_free(job_record *jobs, int n) {
    for (int j = 0; jobs && j < n; j++) free(jobs[j].rows);
    free(jobs);
}

// DIR/jobs.tsv: one line per submitted job (header: job_id kind shape rows script submitted). Returns
// the count (0 when the file is absent), or -1 out of memory.
static int jobs_load(const char *dir, job_record **out) {
    char path[PATH_MAX];
    *out = NULL;
    if (join(path, sizeof path, dir, "jobs.tsv")) return -1;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0;
    char *line = NULL;
    size_t cap = 0;
    job_record *jobs = NULL;
    while (getline(&line, &cap, f) > 0) {
        char *field[6];
        line[strcspn(line, "\n")] = '\0';
        if (split_tabs(line, field, 6) < 4 || strcmp(field[0], "job_id") == 0) continue;
        job_record *grown = realloc(jobs, (size_t)(n + 1) * sizeof *grown);
        char *rows = strdup(field[3]);
        if (!grown || !rows) {
            free(rows);
            jobs_free(grown ? grown : jobs, n);
            n = -1;
            jobs = NULL;
            break;
        }
        jobs = grown;
        jobs[n] = (job_record){ .rows = rows };
        snprintf(jobs[n].job, sizeof jobs[n].job, "%s", field[0]);
        snprintf(jobs[n].kind, sizeof jobs[n].kind, "%s", field[1]);
        n++;
    }
    free(line);
    fclose(f);
    *out = jobs;
    return n;
}

// Runs a Slurm command (argv[0] is `timeout`: a controller that does not answer must not hang
// status) and returns its output (malloc'd), or NULL when it is missing or failed.
static char *slurm_query(char *const argv[]) {
    if (!on_path(argv[2])) return NULL;
    const size_t size = 1 << 20;
    char *buf = malloc(size);
    if (!buf) return NULL;
    const fb_child_io io = { .capture = buf, .capture_size = size, .quiet = 1 };   // their complaints are not ours
    if (fb_run_child(argv, &io) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

// The view that job `job`, array task `task` (a number, or "0" for a plain job), speaks of: the merge
// job's, or a row's whose latest job it is; NULL when it is not one of ours or was superseded.
static slurm_view *view_of(slurm_view *view, int nrows, slurm_view *merge_view, const char *job, const char *task) {
    if (merge_view->job[0] && strcmp(job, merge_view->job) == 0) return merge_view;
    const int row = atoi(task);
    return row >= 1 && row <= nrows && strcmp(view[row - 1].job, job) == 0 ? &view[row - 1] : NULL;
}

// Fills view[row - 1] for every row a job in jobs.tsv ran (a later job overrides an earlier one),
// then asks squeue and sacct about those jobs. Returns the index of the latest merge job (-1: none),
// whose view goes to merge_view.
static int slurm_views(const job_record *jobs, int njobs, int nrows, slurm_view *view, slurm_view *merge_view) {
    int merge = -1;
    int *rows = malloc((size_t)nrows * sizeof *rows);
    if (!rows) return -1;
    for (int j = 0; j < njobs; j++) {
        if (strcmp(jobs[j].kind, "merge") == 0) {
            merge = j;
            continue;
        }
        const int n = sweep_rows_parse(jobs[j].rows, rows, nrows);
        for (int i = 0; i < n; i++) {
            if (rows[i] > nrows) continue;
            view[rows[i] - 1] = (slurm_view){ .task = rows[i] };
            snprintf(view[rows[i] - 1].job, sizeof view->job, "%s", jobs[j].job);
        }
    }
    free(rows);
    if (merge >= 0) snprintf(merge_view->job, sizeof merge_view->job, "%s", jobs[merge].job);
    if (njobs == 0) return merge;
    // squeue: one line per array task (-r), pending ones included: "JOB_TASK|STATE|REASON", or
    // "JOB|..." for the merge job. (%i, not %A/%a: 22.05 prints a pending task's %a as "(null)".)
    char *const squeue[] = { "timeout", "30", "squeue", "--me", "-h", "-r", "-o", "%i|%T|%r", NULL };
    char *q = slurm_query(squeue);
    for (char *save = NULL, *line = q ? strtok_r(q, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        char job[32], task[32] = "0", state[32], reason[64] = "";
        if (sscanf(line, "%31[^_|]_%31[^|]|%31[^|]|%63[^\n]", job, task, state, reason) < 3 &&
            sscanf(line, "%31[^|]|%31[^|]|%63[^\n]", job, state, reason) < 2)
            continue;
        slurm_view *v = view_of(view, nrows, merge_view, job, task);
        if (!v) continue;
        snprintf(v->queue, sizeof v->queue, "%s", state);
        snprintf(v->reason, sizeof v->reason, "%s", strcmp(reason, "None") ? reason : "");
    }
    free(q);
    // sacct, where accounting is kept: the final state of ended jobs ("JOB_TASK|STATE", "JOB|STATE").
    char *ids = malloc((size_t)njobs * sizeof jobs->job + 1);
    if (!ids) return merge;
    ids[0] = '\0';
    for (int j = 0; j < njobs; j++) strcat(strcat(ids, j ? "," : ""), jobs[j].job);
    char *const sacct[] = { "timeout", "30", "sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ids, NULL };
    char *a = slurm_query(sacct);
    free(ids);
    for (char *save = NULL, *line = a ? strtok_r(a, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        char job[32], task[32] = "0", state[32];
        if (sscanf(line, "%31[^_|]_%31[^|]|%31s", job, task, state) != 3 && sscanf(line, "%31[^|]|%31s", job, state) != 2)
            continue;
        slurm_view *v = view_of(view, nrows, merge_view, job, task);
        if (v) snprintf(v->final, sizeof v->final, "%s", state);
    }
    free(a);
    return merge;
}

// "job 123: PENDING (Dependency)" of a queued job into buf.
static void queue_words(const slurm_view *v, char *buf, size_t size) {
    char id[48];
    snprintf(id, sizeof id, v->task ? "%s_%d" : "%s", v->job, v->task);
    snprintf(buf, size, "job %s: %s%s%s%s", id, v->queue, v->reason[0] ? " (" : "", v->reason, v->reason[0] ? ")" : "");
}

typedef enum { RUN_DONE, RUN_FAILED, RUN_RUNNING, RUN_PENDING, RUN_MISSING, RUN_STATE_COUNT } run_state;
static const char *const run_state_names[RUN_STATE_COUNT] = { "done", "failed", "running", "pending", "missing" };

// Combines the file and Slurm: a complete file wins; then the queue; then the file's failure; then
// what accounting says of a run that left no file.
static run_state decide(file_state fs, const slurm_view *v, const char *file_why, char *detail, size_t size) {
    detail[0] = '\0';
    if (fs == FILE_COMPLETE) return RUN_DONE;
    if (v && v->queue[0]) {
        queue_words(v, detail, size);
        return strcmp(v->queue, "PENDING") == 0 ? RUN_PENDING : RUN_RUNNING;
    }
    const char *slurm = v && v->final[0] ? v->final : NULL;
    switch (fs) {
    case FILE_BUSY:
        snprintf(detail, size, "%s", file_state_words(fs));
        return RUN_RUNNING;
    case FILE_FAILED:
        snprintf(detail, size, "%s", file_why);
        return RUN_FAILED;
    case FILE_CUT:
    case FILE_UNREADABLE:
        snprintf(detail, size, "%s%s%.300s%s%s", file_state_words(fs), file_why[0] ? ": " : "", file_why,
                 slurm ? "; slurm: " : "", slurm ? slurm : "");
        return RUN_FAILED;
    case FILE_MISSING:
    case FILE_COMPLETE:
        break;
    }
    if (slurm && strcmp(slurm, "COMPLETED") != 0) {
        snprintf(detail, size, "no result file; slurm: %s (job %s)", slurm, v->job);
        return RUN_FAILED;
    }
    if (v && v->job[0]) snprintf(detail, size, "no result file; job %s is no longer queued", v->job);
    return RUN_MISSING;
}

// Runs that submit (and submit --missing) send to Slurm: neither done nor running nor queued.
static int wanted(run_state st) { return st == RUN_MISSING || st == RUN_FAILED; }

typedef struct {
    manifest m;
    int njobs, merge;
    job_record *jobs;
    slurm_view *view, merge_view;
    run_state *state;
    char (*detail)[512];
    int count[RUN_STATE_COUNT];
} sweep_state;

static void state_free(sweep_state *s) {
    manifest_free(&s->m);
    jobs_free(s->jobs, s->njobs);
    free(s->view); free(s->state); free(s->detail);
}

// Loads the manifest and decides every run's state (with_slurm: ask squeue/sacct about jobs.tsv).
static int state_load(const char *dir, int with_slurm, sweep_state *s) {
    memset(s, 0, sizeof *s);
    s->merge = -1;
    if (manifest_load(dir, &s->m)) return -1;
    const int n = s->m.nrows;
    s->view = calloc((size_t)n, sizeof *s->view);
    s->state = calloc((size_t)n, sizeof *s->state);
    s->detail = calloc((size_t)n, sizeof *s->detail);
    if (!s->view || !s->state || !s->detail) {
        state_free(s);
        return fail("out of memory");
    }
    if (with_slurm) {
        if ((s->njobs = jobs_load(dir, &s->jobs)) < 0) {
            s->njobs = 0;
            state_free(s);
            return fail("out of memory reading %s/jobs.tsv", dir);
        }
        s->merge = slurm_views(s->jobs, s->njobs, n, s->view, &s->merge_view);
    }
    for (int i = 0; i < n; i++) {
        char why[512];
        file_state fs = read_file_state(cell(&s->m, i, M_OUT), why, sizeof why);
        s->state[i] = decide(fs, s->view[i].job[0] ? &s->view[i] : NULL, why, s->detail[i], sizeof s->detail[i]);
        s->count[s->state[i]]++;
    }
    return 0;
}

static void print_counts(const char *prefix, const sweep_state *s) {
    printf("%s%d run%s:", prefix, s->m.nrows, s->m.nrows > 1 ? "s" : "");
    const char *sep = " ";
    for (int k = 0; k < RUN_STATE_COUNT; k++)
        if (s->count[k]) { printf("%s%d %s", sep, s->count[k], run_state_names[k]); sep = ", "; }
    printf("\n");
}

// ---- sweep status ----

static int status_main(const char *dir) {
    sweep_state s;
    if (state_load(dir, 1, &s)) return FB_EXIT_FAIL;
    printf("%-6s %-8s %-11s %-22s %-10s %-12s %-9s %5s %7s %5s %5s %6s  %s\n", "id", "state", "scenario", "method",
           "arm", "parallel", "pairs", "ranks", "threads", "batch", "seed", "steps", "detail");
    for (int i = 0; i < s.m.nrows; i++) {
        const manifest *m = &s.m;
        printf("%-6s %-8s %-11s %-22s %-10s %-12s %-9s %5s %7s %5s %5s %6s  %s\n", cell(m, i, M_ID),
               run_state_names[s.state[i]], cell(m, i, M_SCENARIO), cell(m, i, M_METHOD), cell(m, i, M_ARM),
               cell(m, i, M_PARALLEL), cell(m, i, M_PAIRS), cell(m, i, M_RANKS), cell(m, i, M_THREADS),
               cell(m, i, M_BATCH), cell(m, i, M_SEED), cell(m, i, M_STEPS), s.detail[i]);
    }
    if (s.merge >= 0) {
        const slurm_view *v = &s.merge_view;
        char words[160];
        if (v->queue[0]) queue_words(v, words, sizeof words);
        else snprintf(words, sizeof words, "job %s: %s", v->job, v->final[0] ? v->final : "no longer queued");
        printf("merge  %s\n", words);
    }
    print_counts("sweep status: ", &s);
    state_free(&s);
    return FB_EXIT_OK;
}

// ---- sweep submit ----

static int jobs_append(const char *dir, const char *job, const char *kind, const char *shape, const char *rows,
                       const char *script) {
    char path[PATH_MAX], when[64];
    if (join(path, sizeof path, dir, "jobs.tsv")) return -1;
    int fresh = access(path, F_OK) != 0;
    FILE *f = fopen(path, "a");
    if (!f) return fail("cannot write %s: %s", path, strerror(errno));
    fb_iso_time(when, sizeof when);
    if (fresh) fprintf(f, "job_id\tkind\tshape\trows\tscript\tsubmitted\n");
    fprintf(f, "%s\t%s\t%s\t%s\t%s\t%s\n", job, kind, shape, rows, script, when);
    return fclose(f) == 0 ? 0 : -1;
}

// sbatch --parsable OPTION SCRIPT; the job id into job ("123" of "123;cluster"). A dry run prints the
// command and makes up an id.
static int sbatch(const char *option, const char *script, int dry, char *job, size_t size) {
    static int dry_jobs;
    char *argv[] = { "sbatch", "--parsable", (char *)option, (char *)script, NULL };
    if (dry) {
        printf("    sbatch --parsable %s %s\n", option, script);
        snprintf(job, size, "JOB%d", ++dry_jobs);
        return 0;
    }
    char out[256];
    int rc = fb_run_child(argv, &(fb_child_io){ .capture = out, .capture_size = sizeof out });
    out[strcspn(out, ";\n")] = '\0';
    const size_t len = strlen(out);
    if (rc != 0 || len == 0 || len >= size || strspn(out, "0123456789") != len)
        return fail("sbatch %s failed (exit %d)%s%s", script, rc, out[0] ? ": " : "", out);
    memcpy(job, out, len + 1);
    return 0;
}

// Submits one array job of `shape` over the wanted rows of that shape; appends its id to deps.
static int submit_shape(const char *dir, const sweep_state *s, const char *shape, int *rows, int dry, char *deps,
                        size_t deps_size) {
    int k = 0;
    for (int i = 0; i < s->m.nrows; i++)
        if (strcmp(cell(&s->m, i, M_SHAPE), shape) == 0 && wanted(s->state[i])) rows[k++] = i + 1;
    if (k == 0) return 0;
    char *list = rows_text(rows, k), *array = list ? malloc(strlen(list) + 16) : NULL, script[PATH_MAX + 96], job[64];
    if (!array) {
        free(list);
        return fail("out of memory");
    }
    sprintf(array, "--array=%s", list);
    snprintf(script, sizeof script, "%s/slurm/array-%s.sbatch", dir, shape);
    int rc = sbatch(array, script, dry, job, sizeof job) || (!dry && jobs_append(dir, job, "array", shape, list, script));
    if (!rc)
        printf("%s job %s: %d run%s of shape %s (rows %.72s%s)\n", dry ? "would submit" : "submitted", job, k,
               k > 1 ? "s" : "", shape, list, strlen(list) > 72 ? "..." : "");
    free(list);
    free(array);
    if (rc) return -1;
    size_t used = strlen(deps);
    snprintf(deps + used, deps_size - used, ":%s", job);
    return 0;
}

static int submit_main(const char *dir, int missing, int dry) {
    char path[PATH_MAX];
    if (join(path, sizeof path, dir, "jobs.tsv")) return FB_EXIT_FAIL;
    if (!missing && access(path, F_OK) == 0) {
        fail("%s was submitted already (%s); `fusebench sweep submit %s --missing` submits the runs that are not "
             "done, not running and not queued", dir, path, dir);
        return FB_EXIT_FAIL;
    }
    if (!dry && !on_path("sbatch")) {
        fail("sbatch is not on PATH: is this a Slurm login node? (`fusebench sweep run %s --local` runs the sweep "
             "here with mpirun)", dir);
        return FB_EXIT_FAIL;
    }
    sweep_state s;
    if (state_load(dir, missing, &s)) return FB_EXIT_FAIL;
    const int n = s.m.nrows;
    int *rows = malloc((size_t)n * sizeof *rows), rc = FB_EXIT_OK;
    char deps[4096] = "--dependency=afterok";
    print_counts("now: ", &s);
    if (!rows) {
        fail("out of memory");
        rc = FB_EXIT_FAIL;
    } else if (s.count[RUN_MISSING] + s.count[RUN_FAILED] == 0) {
        printf("nothing to submit: every run is done, running or queued%s\n",
               s.count[RUN_DONE] == n ? " (to merge again: sbatch slurm/merge.sbatch)" : "");
    } else {
        // One array per shape, shapes in the manifest's order.
        for (int i = 0; i < n && rc == FB_EXIT_OK; i++) {
            int first = 1;
            for (int j = 0; j < i && first; j++) first = strcmp(cell(&s.m, j, M_SHAPE), cell(&s.m, i, M_SHAPE)) != 0;
            if (first && submit_shape(dir, &s, cell(&s.m, i, M_SHAPE), rows, dry, deps, sizeof deps)) rc = FB_EXIT_FAIL;
        }
        char script[PATH_MAX], job[64];
        snprintf(script, sizeof script, "%s/slurm/merge.sbatch", dir);
        if (rc == FB_EXIT_OK &&
            (sbatch(deps, script, dry, job, sizeof job) || (!dry && jobs_append(dir, job, "merge", "-", "-", script))))
            rc = FB_EXIT_FAIL;
        if (rc == FB_EXIT_OK)
            printf("%s merge job %s (%s)\n", dry ? "would submit" : "submitted", job, deps);
        if (rc == FB_EXIT_OK && !dry) printf("follow with: fusebench sweep status %s\n", dir);
    }
    free(rows);
    state_free(&s);
    return rc;
}

// ---- sweep run --local ----

typedef struct { int np_max, no_progress, no_merge; } local_opts;

// One run with mpirun: binds each rank to `threads` cores when they fit, else oversubscribes.
static int local_run(const manifest *m, int i, int cores, int no_progress, const char *log) {
    const int ranks = atoi(cell(m, i, M_RANKS)), threads = atoi(cell(m, i, M_THREADS));
    char np[16], pe[32], omp_threads[48], command[8192];
    snprintf(np, sizeof np, "%d", ranks);
    snprintf(pe, sizeof pe, "slot:PE=%d", threads);
    snprintf(omp_threads, sizeof omp_threads, "OMP_NUM_THREADS=%d", threads);
    snprintf(command, sizeof command, "%s", cell(m, i, M_COMMAND));
    const int fits = ranks * threads <= cores;
    char *argv[160];
    int n = 0;
    argv[n++] = "mpirun";
    argv[n++] = "-np";
    argv[n++] = np;
    if (geteuid() == 0) argv[n++] = "--allow-run-as-root";
    if (fits) {
        argv[n++] = "--bind-to"; argv[n++] = "core"; argv[n++] = "--map-by"; argv[n++] = pe;
    } else {   // more threads than cores: binding would stack ranks on the same cores
        argv[n++] = "--oversubscribe"; argv[n++] = "--bind-to"; argv[n++] = "none";
    }
    for (char *save = NULL, *w = strtok_r(command, " ", &save); w && n < 157; w = strtok_r(NULL, " ", &save)) argv[n++] = w;
    if (no_progress) argv[n++] = "--no-progress";
    argv[n] = NULL;
    const char *env[] = { omp_threads, "OMP_PLACES=cores", fits ? "OMP_PROC_BIND=close" : "OMP_PROC_BIND=false", NULL };
    return fb_run_child(argv, &(fb_child_io){ .env = env, .log = log });
}

// fusebench merge DIR, then plots/report.py DIR when it exists; each logged to DIR/logs/.
static int local_merge(const char *dir) {
    char exe[PATH_MAX], report[PATH_MAX], log[PATH_MAX];
    if (self_exe(exe, sizeof exe)) return -1;
    report_script(exe, report, sizeof report);
    int bad = 0;
    snprintf(log, sizeof log, "%s/logs/merge.log", dir);
    char *merge[] = { exe, "merge", (char *)dir, "--force", NULL };   // replaces an earlier summary
    int rc = fb_run_child(merge, &(fb_child_io){ .log = log });
    printf("merge: fusebench merge %s --force ... %s (log %s)\n", dir, rc == 0 ? "done" : "FAILED", log);
    if (rc != 0) { fb_print_tail(log, 3); bad = 1; }
    if (access(report, R_OK) != 0) {
        printf("report: %s not found: no report\n", report);
        return bad ? -1 : 0;
    }
    snprintf(log, sizeof log, "%s/logs/report.log", dir);
    char *py[] = { (char *)fb_python(), report, (char *)dir, NULL };
    rc = fb_run_child(py, &(fb_child_io){ .log = log });
    printf("report: %s %s %s ... %s (log %s)\n", py[0], report, dir, rc == 0 ? "done" : "FAILED", log);
    if (rc != 0) { fb_print_tail(log, 3); bad = 1; }
    return bad ? -1 : 0;
}

static int run_local_main(const char *dir, const local_opts *o) {
    manifest m;
    if (manifest_load(dir, &m)) return FB_EXIT_FAIL;
    if (!on_path("mpirun")) {
        manifest_free(&m);
        fail("mpirun is not on PATH (Open MPI: apt-get install openmpi-bin)");
        return FB_EXIT_FAIL;
    }
    const int cores = fb_physical_cores();
    int count[RUN_STATE_COUNT] = { 0 }, skipped = 0;
    double t_all = fb_now();
    for (int i = 0; i < m.nrows; i++) {
        const char *id = cell(&m, i, M_ID), *out = cell(&m, i, M_OUT);
        const int ranks = atoi(cell(&m, i, M_RANKS));
        const char *arm = cell(&m, i, M_ARM);
        const int implicit = strcmp(arm, "-") == 0;   // a sweep without arms: nothing to tell apart
        printf("run %d/%d %s (%s %s %s/%s, %s rank%s x %s thread%s, batch %s, seed %s%s%s) ... ", i + 1, m.nrows, id,
               cell(&m, i, M_SCENARIO), cell(&m, i, M_METHOD), cell(&m, i, M_PARALLEL), cell(&m, i, M_PAIRS),
               cell(&m, i, M_RANKS), ranks > 1 ? "s" : "", cell(&m, i, M_THREADS),
               atoi(cell(&m, i, M_THREADS)) > 1 ? "s" : "", cell(&m, i, M_BATCH), cell(&m, i, M_SEED),
               implicit ? "" : ", arm ", implicit ? "" : arm);
        fflush(stdout);
        char why[512], log[PATH_MAX], prev[PATH_MAX + 8];
        file_state fs = read_file_state(out, why, sizeof why);
        if (fs == FILE_COMPLETE) { printf("complete already, skipped\n"); count[RUN_DONE]++; continue; }
        if (fs == FILE_BUSY) { printf("skipped: %s\n", file_state_words(fs)); count[RUN_RUNNING]++; continue; }
        if (o->np_max && ranks > o->np_max) {
            printf("skipped (%d ranks > --np-max %d)\n", ranks, o->np_max);
            skipped++;
            continue;
        }
        // fusebench train never overwrites a result: an earlier attempt's file is kept as .prev.
        snprintf(prev, sizeof prev, "%s.prev", out);
        if (fs != FILE_MISSING && rename(out, prev) != 0) {
            printf("FAILED: cannot move the earlier attempt aside to %s: %s\n", prev, strerror(errno));
            count[RUN_FAILED]++;
            continue;
        }
        snprintf(log, sizeof log, "%s/logs/%s.log", dir, id);
        double t0 = fb_now();
        int rc = local_run(&m, i, cores, o->no_progress, log);
        double dt = fb_now() - t0;
        fs = read_file_state(out, why, sizeof why);
        if (rc == 0 && fs == FILE_COMPLETE) {
            printf("done in %.1f s\n", dt);
            count[RUN_DONE]++;
        } else {
            printf("FAILED (exit %d) in %.1f s: %s%s%s; log %s\n", rc, dt, fs == FILE_FAILED ? "" : file_state_words(fs),
                   fs == FILE_FAILED || !why[0] ? "" : ": ", why, log);
            if (fs != FILE_FAILED) fb_print_tail(log, 4);
            count[RUN_FAILED]++;
        }
    }
    printf("sweep run: %d runs in %.1f s: %d done, %d failed", m.nrows, fb_now() - t_all, count[RUN_DONE],
           count[RUN_FAILED]);
    if (skipped) printf(", %d skipped (--np-max)", skipped);
    if (count[RUN_RUNNING]) printf(", %d being written by another process", count[RUN_RUNNING]);
    printf("\n");
    int rc = count[RUN_FAILED] || count[RUN_RUNNING] ? FB_EXIT_FAIL : FB_EXIT_OK;
    if (!o->no_merge && count[RUN_DONE] > 0 && local_merge(dir) != 0) rc = FB_EXIT_FAIL;
    manifest_free(&m);
    return rc;
}

// ---- Entry ----

static void usage(FILE *f) {
    fprintf(f,
            "usage: fusebench sweep plan SPEC --out DIR [--dry-run]\n"
            "       fusebench sweep submit DIR [--missing] [--dry-run]\n"
            "       fusebench sweep status DIR\n"
            "       fusebench sweep run DIR --local [--np-max N] [--no-progress] [--no-merge]\n"
            "       fusebench sweep <command> --help\n\n"
            "Scaling sweeps of `fusebench train`: the cartesian product of a spec's values (scenario, method,\n"
            "parallel, pairs, nodes, ranks_per_node, threads, batch, steps, seed, less exclusions), one\n"
            "HDF5 result per run in DIR/runs/, run as Slurm job arrays (one per resource shape) or locally.\n"
            "  plan    write DIR/manifest.tsv, DIR/slurm/array-<shape>.sbatch, DIR/slurm/merge.sbatch\n"
            "  submit  sbatch every array, then the merge job (afterok); job ids in DIR/jobs.tsv;\n"
            "          --missing: only the runs that are neither done nor queued\n"
            "  status  per run: done, failed, running, pending, missing (result file's `complete`,\n"
            "          squeue, sacct)\n"
            "  run     --local: every run that is not complete, with mpirun, one after another; then\n"
            "          fusebench merge DIR and plots/report.py DIR\n"
            "Spec format and conventions: bench/SWEEP.md. Exit status: 0 ok, 1 a run or a command failed,\n"
            "2 usage error (a bad spec: its line number).\n");
}

int bench_sweep_main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return FB_EXIT_OK;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "plan") == 0) return plan_main(argc - 1, argv + 1);
    if (strcmp(cmd, "submit") != 0 && strcmp(cmd, "status") != 0 && strcmp(cmd, "run") != 0) {
        fprintf(stderr, PROG ": unknown command '%s' (plan, submit, status or run; see fusebench sweep --help)\n", cmd);
        return FB_EXIT_USAGE;
    }
    // submit / status / run DIR [options]
    int missing = 0, dry = 0, local = 0;
    local_opts lo = { 0 };
    const fb_option submit_opts[] = {
        { "missing", FB_OPT_FLAG, &missing, NULL, "only runs whose file is missing or not complete and that\n"
          "Slurm is not running or holding", 1, 0, 0 },
        { "dry-run", FB_OPT_FLAG, &dry, NULL, "print the sbatch commands; submit nothing", 1, 0, 0 },
    };
    const fb_option run_opts[] = {
        { "local", FB_OPT_FLAG, &local, NULL, "run here with mpirun (required: Slurm runs go through submit)", 1, 0, 0 },
        { "np-max", FB_OPT_INT, &lo.np_max, "N", "skip runs of more than N ranks; 0 = none skipped", 0, 1 << 20, 0 },
        { "no-progress", FB_OPT_FLAG, &lo.no_progress, NULL, "pass --no-progress to every fusebench train", 1, 0, 0 },
        { "no-merge", FB_OPT_FLAG, &lo.no_merge, NULL, "do not run fusebench merge and the report afterwards", 1, 0, 0 },
    };
    const int is_submit = strcmp(cmd, "submit") == 0, is_run = strcmp(cmd, "run") == 0;
    const fb_option *opts = is_submit ? submit_opts : is_run ? run_opts : NULL;
    const int nopts = is_submit ? 2 : is_run ? 4 : 0;
    char prog[64];
    snprintf(prog, sizeof prog, PROG " %s", cmd);
    const int has_dir = argc > 2 && argv[2][0] != '-';
    fb_cli_result pr = fb_cli_parse(prog, opts, nopts, argc, argv, has_dir ? 3 : 2);
    if (pr == FB_CLI_HELP) {
        printf("usage: fusebench sweep %s DIR%s\n\n", cmd,
               is_submit ? " [--missing] [--dry-run]" : is_run ? " --local [--np-max N] [--no-progress] [--no-merge]" : "");
        if (opts) {
            printf("options:\n");
            fb_cli_print_options(stdout, opts, nopts);
        } else {
            printf("Prints every run's state (done, failed, running, pending, missing) with the reason, and a\n"
                   "summary line `sweep status: N runs: ...`.\n");
        }
        return FB_EXIT_OK;
    }
    if (pr == FB_CLI_ERROR) return FB_EXIT_USAGE;
    if (!has_dir) {
        fprintf(stderr, "%s: which sweep folder? usage: fusebench sweep %s DIR\n", prog, cmd);
        return FB_EXIT_USAGE;
    }
    const char *dir = argv[2];
    if (is_run && !local) {
        fprintf(stderr, "%s: give --local (Slurm runs go through `fusebench sweep submit %s`)\n", prog, dir);
        return FB_EXIT_USAGE;
    }
    return is_submit ? submit_main(dir, missing, dry) : is_run ? run_local_main(dir, &lo) : status_main(dir);
}
