// `fusebench merge DIR [--out FILE] [--force]`: gathers the `fusebench train` result files of a
// folder (a sweep's, or any) into one summary HDF5 file, schema "fusebench.summary" version 1
// (results/README.md): a table /runs with one row per run — its state, settings, throughput,
// phase medians, final losses, fired verdicts and scaling efficiencies — and /links/<id>, HDF5
// external links to each run file's root.
//
// Phases: options → the runs to merge (DIR/manifest.tsv's rows and the files under DIR/runs/, or
// every *.h5 under DIR) → each file read (io/h5read.h) and classified → scaling efficiencies
// within groups → the summary file (atomic, io/h5out.h) → a table and one summary line on stdout.
// A failed, cut, missing or unreadable run is a row with its state, not an error: the exit status
// is 1 only when the merge itself cannot be done (DIR absent, nothing to merge, a malformed
// manifest, --out exists without --force, a write failure), 2 on a usage error.
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "build_info.h"
#include "cli.h"
#include "../io/h5out.h"
#include "../io/h5read.h"

#define PROG "fusebench merge"
#define TRAIN_SCHEMA "fusebench.train"
#define TRAIN_SCHEMA_VERSION 2
#define SUMMARY_SCHEMA "fusebench.summary"
#define SUMMARY_SCHEMA_VERSION 1
#define MANIFEST_NAME "manifest.tsv"
#define MAX_TERMS 8   // loss terms per run (the scenarios have at most 2)

// ---- Checked helpers (driver code: out of memory ends the program with a message) ----

static void *xrealloc(void *p, size_t size) {
    void *q = realloc(p, size ? size : 1);
    if (!q) {
        fprintf(stderr, PROG ": out of memory (%zu bytes)\n", size);
        exit(FB_EXIT_FAIL);
    }
    return q;
}

static char *xstrdup(const char *s) { return strcpy(xrealloc(NULL, strlen(s) + 1), s); }

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    va_list ap;
    char *s = NULL;
    va_start(ap, f);
    int n = vasprintf(&s, f, ap);
    va_end(ap);
    if (n < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        exit(FB_EXIT_FAIL);
    }
    return s;
}

// A growable array of strings.
typedef struct { char **v; int n, cap; } strvec;

static void strvec_push(strvec *s, char *owned) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->v = xrealloc(s->v, (size_t)s->cap * sizeof *s->v);
    }
    s->v[s->n++] = owned;
}

static void strvec_free(strvec *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    *s = (strvec){ 0 };
}

static int compare_strings(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

// ---- Paths ----

static int is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

// realpath into a new string, NULL when the path does not resolve.
static char *canonical(const char *path) {
    char buf[PATH_MAX];
    return realpath(path, buf) ? xstrdup(buf) : NULL;
}

// The path of `to` relative to the folder `from`; both absolute and canonical.
static char *relative_to(const char *from, const char *to) {
    size_t common = 0;   // length of the longest common prefix that ends at a component boundary
    for (size_t i = 0;; i++) {
        char a = from[i], b = to[i];
        if ((a == '/' || a == '\0') && (b == '/' || b == '\0')) common = i;
        if (a == '\0' || b == '\0' || a != b) break;
    }
    size_t ups = 0;
    for (const char *p = from + common; *p; p++)
        if (*p != '/' && (p == from || p[-1] == '/')) ups++;
    const char *rest = to + common;
    while (*rest == '/') rest++;
    char *out = xrealloc(NULL, 3 * ups + strlen(rest) + 2);
    out[0] = '\0';
    for (size_t i = 0; i < ups; i++) strcat(out, "../");
    strcat(out, rest);
    size_t n = strlen(out);
    if (n > 1 && out[n - 1] == '/') out[n - 1] = '\0';
    if (!out[0]) strcpy(out, ".");
    return out;
}

// Appends every regular *.h5 file under `dir` (recursively, symbolic links to folders not followed)
// to `files`, as paths that start with `dir`.
static void find_h5_files(const char *dir, strvec *files) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *path = fmt("%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            find_h5_files(path, files);
            free(path);
        } else if (ends_with(e->d_name, ".h5") && is_file(path)) {
            strvec_push(files, path);
        } else {
            free(path);
        }
    }
    closedir(d);
}

// ---- What is read from a run file: three tables of (object, attribute) → column ----

typedef struct { const char *obj, *attr, *column, *units, *description; } field;

enum { TX_SCENARIO, TX_METHOD, TX_PARALLEL, TX_PAIRS, TX_COUNT };
static const field text_fields[TX_COUNT] = {
    [TX_SCENARIO] = { "config", "scenario", "scenario", "", "training scenario" },
    [TX_METHOD] = { "config", "method", "method", "", "fusion method" },
    [TX_PARALLEL] = { "config", "parallel", "parallel", "", "parallel strategy: dataparallel or ddp" },
    [TX_PAIRS] = { "config", "pairs", "pairs", "", "pairwise-loss pairs: local, global or blockdiag" },
};

enum { IN_VARIANT, IN_RANKS, IN_THREADS, IN_BATCH, IN_BATCH_PER_RANK, IN_STEPS_PLANNED, IN_SEED, IN_COUNT };
static const field int_fields[IN_COUNT] = {
    [IN_VARIANT] = { "config", "variant", "variant", "1", "fusion-method variant index (0: the document's form)" },
    [IN_RANKS] = { "/", "ranks", "ranks", "1", "MPI ranks" },
    [IN_THREADS] = { "/", "threads", "threads", "1", "OpenMP threads per rank (rank 0's)" },
    [IN_BATCH] = { "config", "batch", "batch", "1", "global batch: samples per step over all ranks" },
    [IN_BATCH_PER_RANK] = { "config", "batch_per_rank", "batch_per_rank", "1", "samples per step per rank" },
    [IN_STEPS_PLANNED] = { "config", "steps", "steps_planned", "1", "the schedule's length (/config steps)" },
    [IN_SEED] = { "config", "seed", "seed", "1", "random seed" },
};

enum { SM_SAMPLES_PER_S, SM_STEP, SM_FORWARD, SM_BACKWARD, SM_COMM, SM_COMM_EXPOSED, SM_OPTIMIZER,
       SM_COMM_EXPOSED_PCT, SM_WALL, SM_COUNT };
static const field summary_fields[SM_COUNT] = {
    [SM_SAMPLES_PER_S] = { "summary", "samples_per_s", "samples_per_s", "1/s", "global batch / median step time" },
    [SM_STEP] = { "summary", "median_step_ms", "median_step_ms", "ms", "median step time (slowest rank)" },
    [SM_FORWARD] = { "summary", "median_forward_ms", "median_forward_ms", "ms", "median forward time" },
    [SM_BACKWARD] = { "summary", "median_backward_ms", "median_backward_ms", "ms", "median backward time" },
    [SM_COMM] = { "summary", "median_comm_ms", "median_comm_ms", "ms", "median time communication was in flight" },
    [SM_COMM_EXPOSED] = { "summary", "median_comm_exposed_ms", "median_comm_exposed_ms", "ms",
                          "median time inside MPI (communication not hidden)" },
    [SM_OPTIMIZER] = { "summary", "median_optimizer_ms", "median_optimizer_ms", "ms", "median optimizer time" },
    [SM_COMM_EXPOSED_PCT] = { "summary", "comm_exposed_pct", "comm_exposed_pct", "%",
                              "exposed communication / step time" },
    [SM_WALL] = { "summary", "wall_s", "wall_s", "s", "wall time of the run" },
};

typedef enum { ST_DONE, ST_FAILED, ST_CUT, ST_MISSING, ST_UNREADABLE, ST_COUNT } run_state;
static const char *const state_names[ST_COUNT] = { "done", "failed", "cut", "missing", "unreadable" };

// Scaling efficiencies: weak (groups of equal batch per rank), strong (groups of equal global batch).
enum { EFF_WEAK, EFF_STRONG, EFF_COUNT };
static const char *const eff_names[EFF_COUNT] = { "weak", "strong" };

typedef struct {
    char *id;        // the manifest's id, or the file's path under the searched folder without .h5
    char *file;      // path relative to DIR (a missing file: the manifest's text)
    char *path;      // where it is opened from; NULL when missing
    char *canon;     // its canonical path (matching manifest rows to files found); NULL when missing
    char *error;     // failed: the run's `error`; unreadable: why; missing: where it was looked for
    char **params;   // the manifest row's values (NULL: not in the manifest)
    run_state state;
    char *text[TX_COUNT];
    int64_t ints[IN_COUNT], steps_run, verdicts_fired;
    double sums[SM_COUNT], final_loss;
    int nterms;
    char *term_names[MAX_TERMS];
    double term_values[MAX_TERMS];
    char *fired;                     // fired verdicts, comma-joined "verdict(subject)"
    double eff[EFF_COUNT];
    const char *eff_ref[EFF_COUNT];  // id of the group's reference run ("" when eff is NaN)
} run;

typedef struct { run *v; int n, cap; } runvec;

static run *new_run(runvec *rs, char *id) {
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? 2 * rs->cap : 16;
        rs->v = xrealloc(rs->v, (size_t)rs->cap * sizeof *rs->v);
    }
    run *r = &rs->v[rs->n++];
    memset(r, 0, sizeof *r);
    r->id = id;
    r->error = xstrdup("");
    r->fired = xstrdup("");
    for (int k = 0; k < TX_COUNT; k++) r->text[k] = xstrdup("");
    for (int k = 0; k < IN_COUNT; k++) r->ints[k] = -1;
    for (int k = 0; k < SM_COUNT; k++) r->sums[k] = NAN;
    r->steps_run = r->verdicts_fired = -1;
    r->final_loss = NAN;
    for (int k = 0; k < EFF_COUNT; k++) {
        r->eff[k] = NAN;
        r->eff_ref[k] = "";
    }
    return r;
}

static void set_error(run *r, run_state state, char *owned_message) {
    r->state = state;
    free(r->error);
    r->error = owned_message;
}

// ---- Reading one run file ----

static double last_value(const fb_h5r *f, const char *obj) {
    double *v = NULL, last = NAN;
    size_t n = 0;
    if (fb_h5r_read_doubles(f, obj, &v, &n) == FB_OK && n) last = v[n - 1];
    free(v);
    return last;
}

// Settings and /summary medians: an attribute that is absent (a cut run has no /summary) stays
// blank (-1, NaN, "").
static void read_fields(const fb_h5r *f, run *r) {
    for (int k = 0; k < TX_COUNT; k++) {
        char *s = NULL;
        if (fb_h5r_attr_string(f, text_fields[k].obj, text_fields[k].attr, &s) == FB_OK) {
            free(r->text[k]);
            r->text[k] = s;
        }
    }
    for (int k = 0; k < IN_COUNT; k++)
        if (fb_h5r_attr_int(f, int_fields[k].obj, int_fields[k].attr, &r->ints[k]) != FB_OK) r->ints[k] = -1;
    for (int k = 0; k < SM_COUNT; k++)
        if (fb_h5r_attr_double(f, summary_fields[k].obj, summary_fields[k].attr, &r->sums[k]) != FB_OK)
            r->sums[k] = NAN;
}

// Steps run, the last loss and the last value of every loss term (the /steps variables whose
// description is "loss term", as bench/train_out.c writes them).
static void read_steps(const fb_h5r *f, run *r) {
    size_t n = 0;
    r->steps_run = fb_h5r_length(f, "steps/step", &n) == FB_OK ? (int64_t)n : 0;
    r->final_loss = last_value(f, "steps/loss");
    char **names = NULL;
    if (fb_h5r_members(f, "steps", &names, &n) != FB_OK) return;
    for (size_t i = 0; i < n && r->nterms < MAX_TERMS; i++) {
        char *obj = fmt("steps/%s", names[i]), *description = NULL;
        if (fb_h5r_attr_string(f, obj, "description", &description) == FB_OK && strcmp(description, "loss term") == 0) {
            r->term_names[r->nterms] = xstrdup(names[i]);
            r->term_values[r->nterms++] = last_value(f, obj);
        }
        free(description);
        free(obj);
    }
    fb_h5r_free_strings(names, n);
}

// The fired verdicts of /verdicts (end of run; a failed or cut run has none: count -1).
static void read_verdicts(const fb_h5r *f, run *r) {
    int64_t *fired = NULL;
    char **verdict = NULL, **subject = NULL;
    size_t nf = 0, nv = 0, ns = 0;
    if (fb_h5r_read_int64s(f, "verdicts/fired", &fired, &nf) == FB_OK &&
        fb_h5r_read_strings(f, "verdicts/verdict", &verdict, &nv) == FB_OK &&
        fb_h5r_read_strings(f, "verdicts/subject", &subject, &ns) == FB_OK && nf == nv && nf == ns) {
        r->verdicts_fired = 0;
        for (size_t i = 0; i < nf; i++) {
            if (!fired[i]) continue;
            char *item = subject[i][0] ? fmt("%s(%s)", verdict[i], subject[i]) : xstrdup(verdict[i]);
            char *joined = fmt("%s%s%s", r->fired, r->verdicts_fired ? "," : "", item);
            free(item);
            free(r->fired);
            r->fired = joined;
            r->verdicts_fired++;
        }
    }
    free(fired);
    fb_h5r_free_strings(verdict, nv);
    fb_h5r_free_strings(subject, ns);
}

// Opens r->path and fills the run; returns 1, or 0 for an earlier merge's summary found by the
// search (no manifest row names it), which is no run and is left out. Any other file that is not
// a fusebench.train file (version 2) is "unreadable", with the reason and a warning on stderr.
static int read_run(run *r) {
    fb_h5r f;
    char *schema = NULL;
    int64_t version = -1, complete = -1;
    int keep = 1;
    if (fb_h5r_open(&f, r->path) != FB_OK) {
        set_error(r, ST_UNREADABLE, xstrdup(fb_last_error()));
    } else if (fb_h5r_attr_string(&f, "/", "schema", &schema) == FB_OK && strcmp(schema, SUMMARY_SCHEMA) == 0 &&
               !r->params) {
        fprintf(stderr, PROG ": note: leaving out %s (a merge summary, not a run)\n", r->path);
        keep = 0;
    } else if (!schema || strcmp(schema, TRAIN_SCHEMA) != 0) {
        set_error(r, ST_UNREADABLE, fmt("%s: not a %s file (schema '%s')", r->path, TRAIN_SCHEMA, schema ? schema : "none"));
    } else if (fb_h5r_attr_int(&f, "/", "schema_version", &version) != FB_OK || version != TRAIN_SCHEMA_VERSION) {
        set_error(r, ST_UNREADABLE, fmt("%s: %s schema_version %lld; merge reads version %d", r->path, TRAIN_SCHEMA,
                                        (long long)version, TRAIN_SCHEMA_VERSION));
    } else if (fb_h5r_attr_int(&f, "/", "complete", &complete) != FB_OK) {
        set_error(r, ST_UNREADABLE, xstrdup(fb_last_error()));
    } else {
        char *error = NULL;
        if (complete == 1) r->state = ST_DONE;
        else if (fb_h5r_attr_string(&f, "/", "error", &error) == FB_OK) set_error(r, ST_FAILED, error);
        else r->state = ST_CUT;   // neither finished nor failed: killed (or still running)
        read_fields(&f, r);
        read_steps(&f, r);
        read_verdicts(&f, r);
    }
    if (r->state == ST_UNREADABLE) fprintf(stderr, PROG ": warning: skipping %s\n", r->error);
    free(schema);
    fb_h5r_close(&f);
    return keep;
}

// ---- The manifest: a header line, then one tab-separated row per run ----

typedef struct {
    strvec header;
    int id_col, file_col;
    int nrows;
    char ***rows;   // rows[i][c]
    int *line;      // line number of each row, for messages
} manifest;

static void split_tabs(char *line, strvec *out) {
    line[strcspn(line, "\r\n")] = '\0';
    for (char *p = line;;) {
        char *tab = strchr(p, '\t');
        if (tab) *tab = '\0';
        strvec_push(out, xstrdup(p));
        if (!tab) break;
        p = tab + 1;
    }
}

// Reads DIR/manifest.tsv (lines starting with '#' and blank lines are skipped); 0, or -1 after
// printing what is wrong.
static int read_manifest(const char *path, manifest *m) {
    memset(m, 0, sizeof *m);
    m->id_col = m->file_col = -1;
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, PROG ": cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (rc == 0 && getline(&line, &cap, fp) >= 0) {
        lineno++;
        if (line[0] == '#' || line[strspn(line, " \t\r\n")] == '\0') continue;
        strvec cells = { 0 };
        split_tabs(line, &cells);
        if (!m->header.n) {   // the header
            m->header = cells;
            int out_col = -1;   // `fusebench sweep plan` names the file column "out"
            for (int c = 0; c < cells.n; c++) {
                if (strcmp(cells.v[c], "id") == 0) m->id_col = c;
                if (strcmp(cells.v[c], "file") == 0) m->file_col = c;
                if (strcmp(cells.v[c], "out") == 0) out_col = c;
            }
            if (m->file_col < 0) m->file_col = out_col;
            if (m->id_col < 0 || m->file_col < 0) {
                fprintf(stderr, PROG ": %s: the header (line %d) has no '%s' column; it needs 'id' and 'file' (or 'out')\n",
                        path, lineno, m->id_col < 0 ? "id" : "file");
                rc = -1;
            }
            continue;
        }
        if (cells.n != m->header.n) {
            fprintf(stderr, PROG ": %s line %d: %d tab-separated fields, the header has %d\n", path, lineno, cells.n,
                    m->header.n);
            strvec_free(&cells);
            rc = -1;
            break;
        }
        for (int i = 0; i < m->nrows; i++)
            if (strcmp(m->rows[i][m->id_col], cells.v[m->id_col]) == 0) {
                fprintf(stderr, PROG ": %s line %d: id '%s' appears already on line %d\n", path, lineno,
                        cells.v[m->id_col], m->line[i]);
                rc = -1;
            }
        if (!cells.v[m->id_col][0] || !cells.v[m->file_col][0]) {
            fprintf(stderr, PROG ": %s line %d: empty %s\n", path, lineno, cells.v[m->id_col][0] ? "file" : "id");
            rc = -1;
        }
        m->rows = xrealloc(m->rows, (size_t)(m->nrows + 1) * sizeof *m->rows);
        m->line = xrealloc(m->line, (size_t)(m->nrows + 1) * sizeof *m->line);
        m->rows[m->nrows] = cells.v;   // the row keeps the strings; cells.n == header.n
        m->line[m->nrows++] = lineno;
    }
    free(line);
    fclose(fp);
    if (rc == 0 && !m->header.n) {
        fprintf(stderr, PROG ": %s is empty (it needs a header line with 'id' and 'file')\n", path);
        rc = -1;
    }
    return rc;
}

static void free_manifest(manifest *m) {
    for (int i = 0; i < m->nrows; i++) {
        for (int c = 0; c < m->header.n; c++) free(m->rows[i][c]);
        free(m->rows[i]);
    }
    free(m->rows);
    free(m->line);
    strvec_free(&m->header);
}

// The manifest's parameter columns: every column but id and file.
static int is_param_col(const manifest *m, int c) { return c != m->id_col && c != m->file_col; }

// ---- Collecting the runs ----

typedef struct {
    const char *dir;   // as given
    char *dir_abs;     // canonical
    char *out_abs;     // canonical path of --out when it exists (skipped by the search)
} merge_ctx;

static int find_run_by_canon(const runvec *rs, const char *canon) {
    for (int i = 0; canon && i < rs->n; i++)
        if (rs->v[i].canon && strcmp(rs->v[i].canon, canon) == 0) return i;
    return -1;
}

static int find_run_by_id(const runvec *rs, const char *id) {
    for (int i = 0; i < rs->n; i++)
        if (strcmp(rs->v[i].id, id) == 0) return i;
    return -1;
}

// Where a manifest row's file is, NULL when it is nowhere: the path as written, absolute or
// relative to DIR, or relative to the working directory (`sweep plan` writes DIR/runs/<id>.h5 with
// DIR as it was given), or else DIR/runs/<its name> (the folder moved since it was planned).
static char *manifest_file_path(const merge_ctx *x, const char *file) {
    const char *slash = strrchr(file, '/');
    char *candidates[] = {
        file[0] == '/' ? xstrdup(file) : fmt("%s/%s", x->dir, file),
        xstrdup(file),
        fmt("%s/runs/%s", x->dir, slash ? slash + 1 : file),
    };
    char *found = NULL;
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++) {
        if (!found && is_file(candidates[i])) found = candidates[i];
        else free(candidates[i]);
    }
    return found;
}

// The runs: the manifest's rows in order (when there is one), then the files found under `root`
// that no row names, sorted by path.
static void collect_runs(const merge_ctx *x, const manifest *m, const char *root, runvec *rs) {
    for (int i = 0; m && i < m->nrows; i++) {
        run *r = new_run(rs, xstrdup(m->rows[i][m->id_col]));
        r->params = m->rows[i];
        char *path = manifest_file_path(x, m->rows[i][m->file_col]), *canon = path ? canonical(path) : NULL;
        if (canon) {
            r->path = path;
            r->canon = canon;
            r->file = relative_to(x->dir_abs, canon);
        } else {
            free(path);
            r->file = xstrdup(m->rows[i][m->file_col]);
            set_error(r, ST_MISSING, fmt("no file %s", r->file));
        }
    }
    strvec found = { 0 };
    find_h5_files(root, &found);
    if (found.n > 1) qsort(found.v, (size_t)found.n, sizeof *found.v, compare_strings);
    size_t root_len = strlen(root);
    for (int i = 0; i < found.n; i++) {
        char *canon = canonical(found.v[i]);
        if (!canon || (x->out_abs && strcmp(canon, x->out_abs) == 0) || find_run_by_canon(rs, canon) >= 0) {
            free(canon);
            continue;
        }
        const char *under = found.v[i] + root_len + 1;
        char *id = fmt("%.*s", (int)(strlen(under) - 3), under), *file = relative_to(x->dir_abs, canon);
        if (find_run_by_id(rs, id) >= 0) {   // a manifest id names another file: fall back on the path
            free(id);
            id = xstrdup(file);
        }
        if (m) fprintf(stderr, PROG ": note: %s is not in the manifest; merged as '%s'\n", file, id);
        run *r = new_run(rs, id);
        r->path = xstrdup(found.v[i]);
        r->canon = canon;
        r->file = file;
    }
    strvec_free(&found);
}

static void free_run(run *r) {
    free(r->id); free(r->file); free(r->path); free(r->canon); free(r->error); free(r->fired);
    for (int k = 0; k < TX_COUNT; k++) free(r->text[k]);
    for (int k = 0; k < r->nterms; k++) free(r->term_names[k]);
}

static void drop_run(runvec *rs, int i) {
    free_run(&rs->v[i]);
    memmove(&rs->v[i], &rs->v[i + 1], (size_t)(rs->n - i - 1) * sizeof *rs->v);
    rs->n--;
}

static void free_runs(runvec *rs) {
    for (int i = 0; i < rs->n; i++) free_run(&rs->v[i]);
    free(rs->v);
}

// ---- Scaling efficiency ----
//
// Runs scale against the run with the fewest ranks of their group (the first such in table order).
// A group: same scenario, method, variant, parallel, pairs, threads, and
//   weak:   the same batch per rank; eff = (samples/s / ranks) / (samples/s / ranks of the reference)
//   strong: the same global batch;  eff = (T_ref × ranks_ref) / (T × ranks), T the median step time
// Only done runs take part; eff is NaN for the others and when the group has no run at another
// rank count (nothing was scaled).

static int same_group(const run *a, const run *b, int kind) {
    for (int k = 0; k < TX_COUNT; k++)
        if (strcmp(a->text[k], b->text[k]) != 0) return 0;
    int batch = kind == EFF_WEAK ? IN_BATCH_PER_RANK : IN_BATCH;
    return a->ints[IN_VARIANT] == b->ints[IN_VARIANT] && a->ints[IN_THREADS] == b->ints[IN_THREADS] &&
           a->ints[batch] == b->ints[batch];
}

// The figure a run scales by: samples/s per rank (weak) or 1 / (T × ranks) (strong); NaN when unknown.
static double per_rank_rate(const run *r, int kind) {
    double ranks = (double)r->ints[IN_RANKS];
    if (r->state != ST_DONE || ranks < 1) return NAN;
    double v = kind == EFF_WEAK ? r->sums[SM_SAMPLES_PER_S] / ranks : 1.0 / (r->sums[SM_STEP] * ranks);
    return isfinite(v) && v > 0 ? v : NAN;
}

static void scaling(runvec *rs) {
    for (int kind = 0; kind < EFF_COUNT; kind++)
        for (int i = 0; i < rs->n; i++) {
            run *r = &rs->v[i];
            if (isnan(per_rank_rate(r, kind))) continue;
            int ref = -1, scaled = 0;
            for (int j = 0; j < rs->n; j++) {
                const run *o = &rs->v[j];
                if (isnan(per_rank_rate(o, kind)) || !same_group(r, o, kind)) continue;
                if (ref < 0 || o->ints[IN_RANKS] < rs->v[ref].ints[IN_RANKS]) ref = j;
                scaled |= o->ints[IN_RANKS] != r->ints[IN_RANKS];
            }
            if (!scaled) continue;
            r->eff[kind] = per_rank_rate(r, kind) / per_rank_rate(&rs->v[ref], kind);
            r->eff_ref[kind] = rs->v[ref].id;
        }
}

// ---- The summary file ----

// Columns of /runs, gathered before the one fb_h5_write_table call.
typedef struct {
    fb_h5_column *cols;
    void **data;
    char **names;   // each column's name (a copy)
    int n, cap;
    size_t rows;
} columns;

// Adds a column of t->rows values and returns them to fill.
static void *add_column(columns *t, const char *name, fb_col_type type, const char *units, const char *description) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->cols = xrealloc(t->cols, (size_t)t->cap * sizeof *t->cols);
        t->data = xrealloc(t->data, (size_t)t->cap * sizeof *t->data);
        t->names = xrealloc(t->names, (size_t)t->cap * sizeof *t->names);
    }
    size_t elem = type == FB_COL_STR ? sizeof(char *) : type == FB_COL_I64 ? sizeof(int64_t) : sizeof(double);
    t->names[t->n] = xstrdup(name);
    t->cols[t->n] = (fb_h5_column){ t->names[t->n], type, units, description };
    t->data[t->n] = xrealloc(NULL, t->rows * elem);
    return t->data[t->n++];
}

static const char **add_text(columns *t, const char *name, const char *description) {
    return add_column(t, name, FB_COL_STR, "", description);
}

static void free_columns(columns *t) {
    for (int c = 0; c < t->n; c++) {
        free(t->data[c]);
        free(t->names[c]);
    }
    free(t->cols);
    free(t->data);
    free(t->names);
}

// Loss-term names over all runs, in first-seen order.
static void term_union(const runvec *rs, strvec *terms) {
    for (int i = 0; i < rs->n; i++)
        for (int k = 0; k < rs->v[i].nterms; k++) {
            int seen = 0;
            for (int j = 0; j < terms->n; j++) seen |= strcmp(terms->v[j], rs->v[i].term_names[k]) == 0;
            if (!seen) strvec_push(terms, xstrdup(rs->v[i].term_names[k]));
        }
}

static double term_value(const run *r, const char *term) {
    for (int k = 0; k < r->nterms; k++)
        if (strcmp(r->term_names[k], term) == 0) return r->term_values[k];
    return NAN;
}

static void build_columns(const runvec *rs, const manifest *m, const strvec *terms, columns *t) {
    memset(t, 0, sizeof *t);
    t->rows = (size_t)rs->n;
    const run *v = rs->v;
    const char **id = add_text(t, "id", "run id: the manifest's, or the file's path under DIR without .h5");
    const char **file = add_text(t, "file", "result file, relative to DIR");
    const char **state = add_text(t, "state", "done, failed, cut (killed), missing or unreadable");
    const char **error = add_text(t, "error", "failed: the run's error; unreadable: why; missing: where it was looked for");
    for (int i = 0; i < rs->n; i++) {
        id[i] = v[i].id;
        file[i] = v[i].file;
        state[i] = state_names[v[i].state];
        error[i] = v[i].error;
    }
    for (int k = 0; k < TX_COUNT; k++) {
        const char **c = add_text(t, text_fields[k].column, text_fields[k].description);
        for (int i = 0; i < rs->n; i++) c[i] = v[i].text[k];
    }
    for (int k = 0; k < IN_COUNT; k++) {
        int64_t *c = add_column(t, int_fields[k].column, FB_COL_I64, int_fields[k].units, int_fields[k].description);
        for (int i = 0; i < rs->n; i++) c[i] = v[i].ints[k];
    }
    int64_t *steps = add_column(t, "steps_run", FB_COL_I64, "1", "rows of /steps: the steps the file holds");
    for (int i = 0; i < rs->n; i++) steps[i] = v[i].steps_run;
    for (int k = 0; k < SM_COUNT; k++) {
        double *c = add_column(t, summary_fields[k].column, FB_COL_F64, summary_fields[k].units,
                               summary_fields[k].description);
        for (int i = 0; i < rs->n; i++) c[i] = v[i].sums[k];
    }
    double *loss = add_column(t, "final_loss", FB_COL_F64, "1", "last row of /steps/loss");
    for (int i = 0; i < rs->n; i++) loss[i] = v[i].final_loss;
    for (int j = 0; j < terms->n; j++) {
        char *name = fmt("final_%s", terms->v[j]);
        double *c = add_column(t, name, FB_COL_F64, "1", "last row of this loss term in /steps (NaN: the run has no such term)");
        for (int i = 0; i < rs->n; i++) c[i] = term_value(&v[i], terms->v[j]);
        free(name);
    }
    int64_t *nfired = add_column(t, "verdicts_fired", FB_COL_I64, "1", "fired rows of /verdicts (-1: no verdicts)");
    const char **fired = add_text(t, "fired_verdicts", "comma-joined verdict(subject) of the fired verdicts");
    for (int i = 0; i < rs->n; i++) {
        nfired[i] = v[i].verdicts_fired;
        fired[i] = v[i].fired;
    }
    static const char *const eff_desc[EFF_COUNT] = {
        "weak scaling: (samples_per_s/ranks) / that of the group's fewest-rank run; group = scenario, method, "
        "variant, parallel, pairs, threads, batch_per_rank",
        "strong scaling: (median_step_ms x ranks of the group's fewest-rank run) / (median_step_ms x ranks); "
        "group = scenario, method, variant, parallel, pairs, threads, batch (global)",
    };
    for (int k = 0; k < EFF_COUNT; k++) {
        char *name = fmt("%s_efficiency", eff_names[k]), *ref_name = fmt("%s_reference", eff_names[k]);
        double *c = add_column(t, name, FB_COL_F64, "1", eff_desc[k]);
        const char **ref = add_text(t, ref_name, "id of the run the efficiency is relative to (\"\": none)");
        for (int i = 0; i < rs->n; i++) {
            c[i] = v[i].eff[k];
            ref[i] = v[i].eff_ref[k];
        }
        free(name);
        free(ref_name);
    }
    for (int c = 0; m && c < m->header.n; c++) {
        if (!is_param_col(m, c)) continue;
        char *name = fmt("param_%s", m->header.v[c]);
        const char **p = add_text(t, name, "the manifest's column of that name (\"\": not in the manifest)");
        for (int i = 0; i < rs->n; i++) p[i] = v[i].params ? v[i].params[c] : "";
        free(name);
    }
}

// /links/<id>: an external link to the root of each run file that opens, relative to the summary
// file's folder.
static void write_links(fb_h5 *h, const runvec *rs, const char *out_dir_abs) {
    hid_t g = fb_h5_group(h, h->file, "links");
    if (g < 0) return;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);   // an id "sub/run" makes /links/sub/run
    for (int i = 0; i < rs->n; i++) {
        const run *r = &rs->v[i];
        if (r->state == ST_MISSING || r->state == ST_UNREADABLE) continue;
        char *target = relative_to(out_dir_abs, r->canon);
        herr_t rc = -1;
        H5E_BEGIN_TRY { rc = H5Lcreate_external(target, "/", g, r->id, lcpl, H5P_DEFAULT); } H5E_END_TRY;
        if (rc < 0) fprintf(stderr, PROG ": warning: no link /links/%s (-> %s): the id is not a usable link name\n", r->id, target);
        free(target);
    }
    H5Pclose(lcpl);
    H5Gclose(g);
}

static int write_summary(const char *out, const char *out_dir_abs, const merge_ctx *x, const manifest *m,
                         const runvec *rs, const int *count) {
    strvec terms = { 0 };
    term_union(rs, &terms);
    columns t;
    build_columns(rs, m, &terms, &t);
    fb_h5 h;
    fb_status st = FB_OK;
    if (t.n > FB_H5_TABLE_MAX_COLS)
        st = fb_fail(FB_ERR_IO, "/runs would have %d columns (%d of them loss terms and the manifest's parameters); "
                     "at most %d fit", t.n, terms.n + (m ? m->header.n - 2 : 0), FB_H5_TABLE_MAX_COLS);
    else
        st = fb_h5_create(&h, out);
    if (st == FB_OK) {
        hid_t root = h.file;
        fb_h5_attr_string(&h, root, "schema", SUMMARY_SCHEMA);
        fb_h5_attr_int(&h, root, "schema_version", SUMMARY_SCHEMA_VERSION);
        fb_h5_attr_string(&h, root, "fusebench_commit", fb_build_commit);
        char date[64];
        fb_iso_time(date, sizeof date);
        fb_h5_attr_string(&h, root, "date", date);
        fb_h5_attr_string(&h, root, "command_line", fb_cli_command_line());
        fb_h5_attr_string(&h, root, "source_dir", x->dir_abs);
        fb_h5_attr_string(&h, root, "manifest", m ? MANIFEST_NAME : "");
        fb_h5_attr_int(&h, root, "runs", rs->n);
        for (int s = 0; s < ST_COUNT; s++) {
            char name[32];
            snprintf(name, sizeof name, "runs_%s", state_names[s]);
            fb_h5_attr_int(&h, root, name, count[s]);
        }
        fb_h5_write_table(&h, root, "runs", t.cols, t.n, t.rows, (const void *const *)t.data);
        write_links(&h, rs, out_dir_abs);
        st = fb_h5_close(&h);
    }
    if (st != FB_OK) fprintf(stderr, PROG ": %s\n", fb_last_error());
    free_columns(&t);
    strvec_free(&terms);
    return st == FB_OK ? 0 : -1;
}

// ---- Report ----

static void print_number(double v, const char *format, int width) {
    if (isnan(v)) printf(" %*s", width, "-");
    else printf(format, width, v);
}

static void print_table(const runvec *rs) {
    int idw = 2, mw = 6;
    for (int i = 0; i < rs->n; i++) {
        int l = (int)strlen(rs->v[i].id), ml = (int)(strlen(rs->v[i].text[TX_SCENARIO]) + strlen(rs->v[i].text[TX_METHOD]) + 1);
        idw = l > idw ? (l > 40 ? 40 : l) : idw;
        mw = ml > mw ? ml : mw;
    }
    printf("%-*s %-10s %-*s %-12s %5s %3s %5s %5s %10s %9s %11s %6s %6s  %s\n", idw, "id", "state", mw, "method",
           "parallel", "ranks", "thr", "batch", "steps", "samples/s", "step_ms", "final_loss", "weak", "strong",
           "verdicts");
    for (int i = 0; i < rs->n; i++) {
        const run *r = &rs->v[i];
        char method[160] = "", parallel[64] = "";
        if (r->text[TX_METHOD][0]) snprintf(method, sizeof method, "%s/%s", r->text[TX_SCENARIO], r->text[TX_METHOD]);
        if (r->text[TX_PARALLEL][0]) snprintf(parallel, sizeof parallel, "%s/%s", r->text[TX_PARALLEL], r->text[TX_PAIRS]);
        printf("%-*.*s %-10s %-*s %-12s", idw, idw, r->id, state_names[r->state], mw, method, parallel);
        const int64_t ints[] = { r->ints[IN_RANKS], r->ints[IN_THREADS], r->ints[IN_BATCH], r->steps_run };
        const int widths[] = { 5, 3, 5, 5 };
        for (int k = 0; k < 4; k++) print_number(ints[k] < 0 ? NAN : (double)ints[k], " %*.0f", widths[k]);
        print_number(r->sums[SM_SAMPLES_PER_S], " %*.1f", 10);
        print_number(r->sums[SM_STEP], " %*.4f", 9);
        print_number(r->final_loss, " %*.6g", 11);
        print_number(r->eff[EFF_WEAK], " %*.3f", 6);
        print_number(r->eff[EFF_STRONG], " %*.3f", 6);
        printf("  %s\n", r->state == ST_DONE ? (r->fired[0] ? r->fired : "-") : r->error);
    }
}

// ---- Driver ----

static void print_help(const fb_option *opts, int nopts) {
    printf("usage: fusebench merge DIR [--out FILE] [--force]\n\n"
           "Merges the `fusebench train` result files of DIR into one summary HDF5 file (schema\n"
           "fusebench.summary, results/README.md):\n"
           "  - with DIR/" MANIFEST_NAME " (a sweep: a header line, then tab-separated rows with at least\n"
           "    the columns id and file, or out): every row, and every *.h5 under DIR/runs/; a row whose\n"
           "    file is absent is a \"missing\" run; the other columns are copied as param_<name>;\n"
           "  - without: every *.h5 under DIR, recursively.\n"
           "Each run is done (complete), failed (its error is kept), cut (killed), missing or unreadable\n"
           "(not a fusebench.train version %d file: skipped with a warning). The table /runs holds its\n"
           "settings, samples/s, median phase times, final losses, fired verdicts and scaling\n"
           "efficiencies against the fewest-rank run of its group (weak: same batch per rank; strong:\n"
           "same global batch); /links/<id> are external links to the run files (relative to the\n"
           "summary's folder) that h5py follows.\n"
           "Prints a table and `merged N runs: D done, ... -> FILE`. Exit status: 0 merged (failed runs\n"
           "included), 1 the merge could not be done, 2 usage error.\n\n"
           "options:\n", TRAIN_SCHEMA_VERSION);
    fb_cli_print_options(stdout, opts, nopts);
    printf("\nExamples:\n"
           "  bench/fusebench merge sweeps/scaling\n"
           "  bench/fusebench merge my-runs --out my-runs-summary.h5 --force\n");
}

// Removes the first argument that is neither an option nor an option's value from argv and
// returns it (NULL: none).
static char *take_positional(const fb_option *opts, int nopts, int *argc, char **argv) {
    for (int i = 1; i < *argc; i++) {
        char *a = argv[i];
        if (strncmp(a, "--", 2) == 0) {
            for (int k = 0; k < nopts && !strchr(a, '='); k++)
                if (strcmp(a + 2, opts[k].name) == 0 && opts[k].type != FB_OPT_FLAG) i++;   // skip its value
            continue;
        }
        if (a[0] == '-' && a[1]) continue;   // -h
        memmove(&argv[i], &argv[i + 1], (size_t)(*argc - i - 1) * sizeof *argv);
        (*argc)--;
        return a;
    }
    return NULL;
}

// The folder of `path` ("." when it names none).
static char *parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return xstrdup(".");
    return slash == path ? xstrdup("/") : fmt("%.*s", (int)(slash - path), path);
}

// Merges `dir` into `out` (NULL: DIR/summary.h5); returns the exit status.
static int merge(const char *dir, const char *out, int force) {
    if (!is_dir(dir)) {
        fprintf(stderr, PROG ": %s: no such folder\n", dir);
        return FB_EXIT_FAIL;
    }
    merge_ctx x = { .dir = dir, .dir_abs = canonical(dir) };
    char *out_path = out ? xstrdup(out) : fmt("%s/summary.h5", dir), *out_dir = parent_dir(out_path);
    char *out_dir_abs = canonical(out_dir), *manifest_path = fmt("%s/" MANIFEST_NAME, dir), *root = NULL;
    int has_manifest = is_file(manifest_path), rc = FB_EXIT_FAIL, count[ST_COUNT] = { 0 };
    manifest m;
    runvec rs = { 0 };

    // The manifest and the output.
    if (has_manifest && read_manifest(manifest_path, &m) != 0) goto done;
    if (is_file(out_path) && !force) {
        fprintf(stderr, PROG ": %s exists already (--force replaces it)\n", out_path);
        goto done;
    }
    if (!out_dir_abs || !is_dir(out_dir_abs)) {
        fprintf(stderr, PROG ": the folder of %s (%s) does not exist\n", out_path, out_dir);
        goto done;
    }
    x.out_abs = canonical(out_path);

    // The runs.
    root = has_manifest ? fmt("%s/runs", dir) : xstrdup(dir);
    collect_runs(&x, has_manifest ? &m : NULL, root, &rs);
    for (int i = 0; i < rs.n;) {
        if (rs.v[i].path && !read_run(&rs.v[i])) {
            drop_run(&rs, i);
            continue;
        }
        count[rs.v[i].state]++;
        i++;
    }
    if (rs.n == 0) {
        fprintf(stderr, PROG ": nothing to merge: no result file under %s%s\n", root,
                has_manifest ? " and no row in the manifest" : " and no " MANIFEST_NAME);
        goto done;
    }
    scaling(&rs);

    // The summary file and the report.
    if (write_summary(out_path, out_dir_abs, &x, has_manifest ? &m : NULL, &rs, count) != 0) goto done;
    print_table(&rs);
    printf("merged %d run%s: %d done", rs.n, rs.n == 1 ? "" : "s", count[ST_DONE]);
    for (int s = ST_DONE + 1; s < ST_COUNT; s++)
        if (count[s]) printf(", %d %s", count[s], state_names[s]);
    printf(" -> %s\n", out_path);
    rc = FB_EXIT_OK;
done:
    free_runs(&rs);
    if (has_manifest) free_manifest(&m);
    free(root);
    free(x.out_abs);
    free(x.dir_abs);
    free(manifest_path);
    free(out_dir_abs);
    free(out_dir);
    free(out_path);
    return rc;
}

int bench_merge_main(int argc, char **argv) {
    const char *out = NULL;
    int force = 0;
    const fb_option opts[] = {
        { "out", FB_OPT_STRING, &out, "FILE", "summary file (default DIR/summary.h5)", 1, 0, 0 },
        { "force", FB_OPT_FLAG, &force, NULL, "replace an existing summary file", 1, 0, 0 },
    };
    const int nopts = (int)(sizeof opts / sizeof opts[0]);
    const char *dir = take_positional(opts, nopts, &argc, argv);
    fb_cli_result pr = fb_cli_parse(PROG, opts, nopts, argc, argv, 1);
    if (pr == FB_CLI_HELP) {
        print_help(opts, nopts);
        return FB_EXIT_OK;
    }
    if (pr == FB_CLI_ERROR) return FB_EXIT_USAGE;
    if (!dir) {
        fprintf(stderr, PROG ": DIR is required (fusebench merge DIR [--out FILE]; see --help)\n");
        return FB_EXIT_USAGE;
    }
    return merge(dir, out, force);
}
