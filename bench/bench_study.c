// fusebench study: each claim of the design documents measured by one command (studies/study.h).
//
//   fusebench study --list
//   fusebench study NAME [--out DIR]      plan the study's sweep into DIR, run it here (mpirun), analyse
//                                         the runs into DIR/study.h5, print the verdict, plot it
//   fusebench study NAME --analyse DIR    analyse (and plot) the runs already in DIR again
//   fusebench study --all [--out DIR]     every study into DIR/<name>/, then the HTML report of DIR
//
// The sweep machinery is `fusebench sweep` itself (run as a child process: plan, then run --local
// --no-merge), so a study's runs are ordinary sweep runs: DIR/manifest.tsv, runs/, logs/, and
// `fusebench sweep status DIR` works on them. The analysis reads the runs' result files through
// io/h5read.h into studies/study.h's in-memory runs; the verdict logic never sees a file.
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "../io/h5out.h"
#include "../io/h5read.h"
#include "../studies/study.h"
#include "build_info.h"
#include "cli.h"
#include "proc.h"
#include "sweep_spec.h"

#define PROG                 "fusebench study"
#define STUDY_SCHEMA         "fusebench.study"
#define STUDY_SCHEMA_VERSION 1

static void usage(FILE *f) {
    fprintf(f, "usage: fusebench study NAME [--out DIR] [--no-plot]\n"
               "       fusebench study NAME --analyse DIR [--no-plot]\n"
               "       fusebench study --all [--out DIR] [--no-plot]\n"
               "       fusebench study --list | NAME --spec\n\n"
               "Runs one study: a small seeded experiment (a sweep of `fusebench train` runs, run here with\n"
               "mpirun one after another) that measures a claim of the design documents, then derives its\n"
               "verdict from the measured figures: CONFIRMED, REFUTED or INCONCLUSIVE, with the figures that\n"
               "decided it and the threshold used. Writes DIR (default results/study-NAME-<date>-<time>/):\n"
               "the sweep (manifest.tsv, sweep.spec, runs/, logs/), study.h5 (the verdict, the rule, every\n"
               "figure: results/README.md) and study.png (plots/study_plot.py). --all runs every study into\n"
               "DIR/<name>/ (default results/studies-<date>-<time>/) and writes the HTML report of DIR.\n"
               "Exit status: 0 when every run finished and a verdict was derived (whatever it is), 1 when a\n"
               "run or a write failed, 2 on a usage error.\n\noptions:\n");
}

static void list_studies(void) {
    printf("%-24s %-5s %-6s %s\n", "study", "doc", "~min", "claim");
    for (int i = 0; i < study_count; i++) {
        const study_def *d = study_defs[i];
        printf("%-24s %-5s %-6s %s\n", d->name, d->document, d->minutes, d->claim);
    }
    printf("\nfusebench study NAME runs one; fusebench study --all (make studies) runs them all.\n");
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void stamp(char *buf, size_t size) {
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(buf, size, "%Y%m%d-%H%M%S", &tm);
}

// ---- Loading the runs ----

// The labels of a (step, label) dataset's second dimension: the string dataset beside it.
static int column_of(const fb_h5r *h, const char *dataset, const char *want) {
    char group[160];
    snprintf(group, sizeof group, "%s", dataset);
    char *slash = strrchr(group, '/');
    if (!slash) return -1;
    *slash = '\0';
    const char *const dims[] = { "tensor", "module", "expert" };
    for (int d = 0; d < 3; d++) {
        char path[200];
        snprintf(path, sizeof path, "%s/%s", group, dims[d]);
        char **labels;
        size_t n;
        if (!fb_h5r_exists(h, path) || fb_h5r_read_strings(h, path, &labels, &n) != FB_OK) continue;
        int found = -1;
        for (size_t i = 0; i < n && found < 0; i++)
            if (strstr(labels[i], want)) found = (int)i;
        fb_h5r_free_strings(labels, n);
        return found;
    }
    return -1;
}

// One key of a run (study.h): a dataset, an attribute of its parent object, or "DATASET@LABEL".
// A key the file does not have is left out (the analysis sees it absent).
static int load_key(const fb_h5r *h, const char *key, study_run *r) {
    double *v = NULL;
    size_t n = 0;
    char path[160];
    snprintf(path, sizeof path, "%s", key);
    char *at = strchr(path, '@');
    fb_status st = FB_ERR_IO;
    if (at) {
        *at = '\0';
        const int col = fb_h5r_exists(h, path) ? column_of(h, path, at + 1) : -1;
        if (col >= 0) st = fb_h5r_read_column(h, path, (size_t)col, &v, &n);
    } else if (fb_h5r_exists(h, path)) {
        st = fb_h5r_read_doubles(h, path, &v, &n);
    } else {
        char *slash = strrchr(path, '/');
        double x;
        if (slash) *slash = '\0';
        if (slash && fb_h5r_attr_exists(h, path, slash + 1) && fb_h5r_attr_double(h, path, slash + 1, &x) == FB_OK) {
            v = malloc(sizeof *v);
            if (v) *v = x, n = 1, st = FB_OK;
        }
    }
    int rc = st == FB_OK ? study_run_put(r, key, v, n) : 0;
    free(v);
    return rc;
}

// The study's runs, in the sweep's order: their settings from the spec, their figures from
// DIR/runs/<id>.h5. A run whose file is missing or not complete stays in the set, not complete.
static int load_runs(const char *dir, const study_def *def, study_set *set, int *incomplete) {
    char path[PATH_MAX], err[1024];
    snprintf(path, sizeof path, "%s/sweep.spec", dir);
    sweep_spec spec;
    if (sweep_spec_load(&spec, path, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return -1;
    }
    *incomplete = 0;
    int rc = 0;
    for (int i = 0; i < spec.nruns && rc == 0; i++) {
        const sweep_run *sr = &spec.runs[i];
        study_run *r = study_set_add(set);
        if (!r) {
            rc = -1;
            break;
        }
        char v[64];
        snprintf(r->id, sizeof r->id, "r%04d", i + 1);
        snprintf(r->arm, sizeof r->arm, "%s", sweep_run_arm(&spec, sr));
        snprintf(r->scenario, sizeof r->scenario, "%s",
                 sweep_axis_value(SWEEP_SCENARIO, sr->v[SWEEP_SCENARIO], v, sizeof v));
        snprintf(r->method, sizeof r->method, "%s", sweep_axis_value(SWEEP_METHOD, sr->v[SWEEP_METHOD], v, sizeof v));
        snprintf(r->parallel, sizeof r->parallel, "%s",
                 sweep_axis_value(SWEEP_PARALLEL, sr->v[SWEEP_PARALLEL], v, sizeof v));
        snprintf(r->pairs, sizeof r->pairs, "%s", sweep_axis_value(SWEEP_PAIRS, sr->v[SWEEP_PAIRS], v, sizeof v));
        r->seed = sr->v[SWEEP_SEED];
        r->ranks = sr->ranks;
        r->batch = sr->batch;
        r->steps = sr->v[SWEEP_STEPS];
        r->complete = 0;
        snprintf(path, sizeof path, "%s/runs/%s.h5", dir, r->id);
        fb_h5r h;
        int64_t complete = 0;
        if (!exists(path) || fb_h5r_open(&h, path) != FB_OK) {
            ++*incomplete;
            continue;
        }
        if (fb_h5r_attr_int(&h, "/", "complete", &complete) == FB_OK && complete == 1) {
            r->complete = 1;
            for (const char *const *k = def->needs; *k && rc == 0; k++) rc = load_key(&h, *k, r);
        } else {
            ++*incomplete;
        }
        fb_h5r_close(&h);
    }
    sweep_spec_free(&spec);
    if (rc) fprintf(stderr, PROG ": out of memory loading the runs\n");
    return rc;
}

// ---- study.h5 ----

// The /figures table (at most STUDY_MAX_FIGURES rows: columns of fixed size).
static void write_figures(fb_h5 *h, const study_result *res) {
    static const char *name[STUDY_MAX_FIGURES], *arm[STUDY_MAX_FIGURES], *units[STUDY_MAX_FIGURES],
        *desc[STUDY_MAX_FIGURES];
    static double value[STUDY_MAX_FIGURES], spread[STUDY_MAX_FIGURES], thr[STUDY_MAX_FIGURES];
    static int64_t n[STUDY_MAX_FIGURES], deciding[STUDY_MAX_FIGURES];
    for (int i = 0; i < res->nfig; i++) {
        const study_figure *f = &res->fig[i];
        name[i] = f->name, arm[i] = f->arm, units[i] = f->units, desc[i] = f->description;
        value[i] = f->value, spread[i] = f->spread, thr[i] = f->threshold, n[i] = f->n, deciding[i] = f->deciding;
    }
    const fb_h5_column cols[] = {
        { "name", FB_COL_STR, "", NULL }, { "arm", FB_COL_STR, "", "the arm, METHOD/ARM, or a comparison" },
        { "value", FB_COL_F64, "", "mean over the runs (or the comparison's value)" },
        { "spread", FB_COL_F64, "", "std over the runs (NaN: one run, or not an aggregate)" },
        { "n", FB_COL_I64, "", "runs aggregated" }, { "units", FB_COL_STR, "", NULL },
        { "deciding", FB_COL_I64, "", "1: the verdict's rule used it" },
        { "threshold", FB_COL_F64, "", "what the rule held it to (NaN: none)" },
        { "description", FB_COL_STR, "", NULL },
    };
    const void *data[] = { name, arm, value, spread, n, units, deciding, thr, desc };
    fb_h5_write_table(h, h->file, "figures", cols, 9, (size_t)res->nfig, data);
}

// The /runs table: one row per run of the sweep. Strings point into the runs; the files are built.
static fb_status write_runs(fb_h5 *h, const study_set *set) {
    enum { S_ID, S_ARM, S_SCENARIO, S_METHOD, S_PARALLEL, S_PAIRS, S_FILE, NSTR };
    enum { I_SEED, I_RANKS, I_COMPLETE, NINT };
    const size_t nr = (size_t)set->n;
    const char **str = calloc(NSTR * nr + 1, sizeof *str);
    int64_t *num = calloc(NINT * nr + 1, sizeof *num);
    char (*file)[32] = calloc(nr + 1, sizeof *file);
    if (!str || !num || !file) {
        free(str), free(num), free(file);
        return fb_fail(FB_ERR_ALLOC, "out of memory writing /runs");
    }
    for (size_t i = 0; i < nr; i++) {
        const study_run *r = &set->runs[i];
        snprintf(file[i], sizeof file[i], "runs/%s.h5", r->id);
        const char *row[NSTR] = { r->id, r->arm, r->scenario, r->method, r->parallel, r->pairs, file[i] };
        for (int c = 0; c < NSTR; c++) str[c * nr + i] = row[c];
        num[I_SEED * nr + i] = r->seed, num[I_RANKS * nr + i] = r->ranks, num[I_COMPLETE * nr + i] = r->complete;
    }
    const fb_h5_column cols[] = {
        { "id", FB_COL_STR, "", NULL }, { "arm", FB_COL_STR, "", NULL }, { "scenario", FB_COL_STR, "", NULL },
        { "method", FB_COL_STR, "", NULL }, { "seed", FB_COL_I64, "", NULL }, { "ranks", FB_COL_I64, "", NULL },
        { "parallel", FB_COL_STR, "", NULL }, { "pairs", FB_COL_STR, "", NULL },
        { "file", FB_COL_STR, "", "relative to the study folder" },
        { "complete", FB_COL_I64, "", "1: the run finished" },
    };
    const void *data[] = { str + S_ID * nr, str + S_ARM * nr, str + S_SCENARIO * nr, str + S_METHOD * nr,
                           num + I_SEED * nr, num + I_RANKS * nr, str + S_PARALLEL * nr, str + S_PAIRS * nr,
                           str + S_FILE * nr, num + I_COMPLETE * nr };
    const fb_status st = fb_h5_write_table(h, h->file, "runs", cols, 10, nr, data);
    free(str), free(num), free(file);
    return st;
}

static int write_study(const char *dir, const study_def *def, const study_set *set, const study_result *res) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/study.h5", dir);
    if (exists(path)) {   // an earlier analysis: replaced only once the new file is whole (fb_h5_close)
        char prev[PATH_MAX + 8];
        snprintf(prev, sizeof prev, "%s.prev", path);
        rename(path, prev);
    }
    fb_h5 h;
    fb_status st = fb_h5_create(&h, path);
    if (st == FB_OK) {
        const hid_t root = h.file;
        char date[64], host[256] = "";
        fb_iso_time(date, sizeof date);
        gethostname(host, sizeof host - 1);
        fb_h5_attr_string(&h, root, "schema", STUDY_SCHEMA);
        fb_h5_attr_int(&h, root, "schema_version", STUDY_SCHEMA_VERSION);
        fb_h5_attr_int(&h, root, "complete", 1);
        fb_h5_attr_string(&h, root, "study", def->name);
        fb_h5_attr_string(&h, root, "document", def->document);
        for (int i = 0; i < study_count; i++)   // its place in the table: reports list studies in this order
            if (study_defs[i] == def) fb_h5_attr_int(&h, root, "order", i);
        fb_h5_attr_string(&h, root, "claim", def->claim);
        fb_h5_attr_string(&h, root, "verdict", study_verdict_names[res->verdict]);
        fb_h5_attr_string(&h, root, "rule", res->rule);
        fb_h5_attr_string(&h, root, "reason", res->reason);
        fb_h5_attr_string(&h, root, "spec", def->spec);
        fb_h5_attr_string(&h, root, "fusebench_commit", fb_build_commit);
        fb_h5_attr_string(&h, root, "date", date);
        fb_h5_attr_string(&h, root, "host", host);
        fb_h5_attr_string(&h, root, "command_line", fb_cli_command_line());
        write_figures(&h, res);
        st = write_runs(&h, set);
        // A failed write marks the file failed: close then removes the .tmp and says so.
        st = st == FB_OK ? fb_h5_close(&h) : (fb_h5_discard(&h), st);
    }
    if (st != FB_OK) {
        fprintf(stderr, PROG ": %s\n", fb_last_error());
        return -1;
    }
    return 0;
}

// ---- One study ----

static void print_result(const study_def *def, const study_result *res, int complete, int total, const char *dir) {
    printf("\nstudy %s (%s): %s\n", def->name, def->document, def->claim);
    printf("  rule    %s\n", res->rule);
    printf("  figures (deciding marked *)\n");
    for (int i = 0; i < res->nfig; i++) {
        const study_figure *f = &res->fig[i];
        char thr[32] = "";
        if (!isnan(f->threshold)) snprintf(thr, sizeof thr, "  [threshold %.4g]", f->threshold);
        printf("  %c %-26s %-34s %12.5g", f->deciding ? '*' : ' ', f->name, f->arm, f->value);
        if (!isnan(f->spread))
            printf(" +- %-10.3g", f->spread);
        else
            printf("    %-10s", "");
        printf(" %-6s n=%d%s\n", strcmp(f->units, "1") ? f->units : "", f->n, thr);
    }
    if (res->dropped)
        printf("  note    %d figures past the table's %d were not kept (raise STUDY_MAX_FIGURES)\n", res->dropped,
               STUDY_MAX_FIGURES);
    printf("  runs    %d of %d complete (%s)\n", complete, total, dir);
    printf("VERDICT %s %s: %s\n", def->name, study_verdict_names[res->verdict], res->reason);
}

// Runs plots/<script> DIR with the system Python, its output in `log`; prints `what` and the outcome.
// 0, or -1 when the script is missing or failed.
static int run_plot_script(const char *script_name, const char *dir, const char *log, const char *what) {
    char exe[PATH_MAX], script[PATH_MAX];
    if (fb_self_exe(PROG, exe, sizeof exe)) return -1;
    fb_plot_script(exe, script_name, script, sizeof script);
    if (access(script, R_OK) != 0) {
        printf("  %s: %s not found\n", what, script);
        return -1;
    }
    char *argv[] = { (char *)fb_python(), script, (char *)dir, NULL };
    const int rc = fb_run_child(argv, &(fb_child_io){ .log = log });
    printf("  %s %s (log %s)\n", what, rc == 0 ? "written" : "FAILED", log);
    if (rc != 0) fb_print_tail(log, 3);
    return rc == 0 ? 0 : -1;
}

// Analyses DIR's runs, writes DIR/study.h5, prints the verdict (also into *verdict); with plot, runs
// plots/study_plot.py. Returns 0, or 1 when runs were incomplete or something failed (the verdict is
// still written).
static int analyse_dir(const char *dir, const study_def *def, int plot, study_verdict *verdict) {
    study_set set = { 0, NULL };
    int incomplete = 0;
    *verdict = STUDY_INCONCLUSIVE;
    if (load_runs(dir, def, &set, &incomplete) != 0) {
        study_set_free(&set);
        return 1;
    }
    static study_result res;
    memset(&res, 0, sizeof res);
    res.verdict = STUDY_INCONCLUSIVE;
    def->analyse(&set, &res);
    *verdict = res.verdict;
    int rc = write_study(dir, def, &set, &res) != 0;
    print_result(def, &res, set.n - incomplete, set.n, dir);
    if (incomplete) printf("  note: %d run(s) missing or unfinished: the verdict uses the finished ones\n", incomplete);
    study_set_free(&set);
    if (plot) {
        char log[PATH_MAX + 16], what[PATH_MAX + 16];
        snprintf(log, sizeof log, "%s/logs/plot.log", dir);
        snprintf(what, sizeof what, "plot: %s/study.png", dir);
        rc |= run_plot_script("study_plot.py", dir, log, what) != 0;
    }
    return rc || incomplete;
}

// Plans the study's sweep into DIR (which must not exist: one_study checked) and runs it here.
static int run_study(const char *dir, const study_def *def) {
    char exe[PATH_MAX], spec_path[] = "/tmp/fusebench-study-XXXXXX";
    if (fb_self_exe(PROG, exe, sizeof exe)) return -1;
    const int fd = mkstemp(spec_path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        fprintf(stderr, PROG ": cannot write a temporary spec: %s\n", strerror(errno));
        return -1;
    }
    fprintf(f, "# fusebench study %s (studies/%s.c): %s\n%s", def->name, def->name, def->claim, def->spec);
    fclose(f);
    static char out[65536];
    char *plan[] = { exe, "sweep", "plan", spec_path, "--out", (char *)dir, NULL };
    int rc = fb_run_child(plan, &(fb_child_io){ .capture = out, .capture_size = sizeof out });
    unlink(spec_path);
    if (rc != 0) {
        fprintf(stderr, PROG ": planning %s's sweep failed:\n%s", def->name, out);
        return -1;
    }
    printf("study %s: %s\n", def->name, def->claim);
    char *run[] = { exe, "sweep", "run", (char *)dir, "--local", "--no-merge", "--no-progress", NULL };
    rc = fb_run_child(run, &(fb_child_io){ 0 });
    if (rc != 0)
        printf("study %s: some runs failed (fusebench sweep status %s): analysing the others\n", def->name, dir);
    return 0;
}

static int one_study(const study_def *def, const char *dir, int analyse_only, int plot, study_verdict *verdict) {
    *verdict = STUDY_INCONCLUSIVE;
    if (analyse_only && !exists(dir)) {
        fprintf(stderr, PROG ": --analyse %s: no such folder\n", dir);
        return FB_EXIT_USAGE;
    }
    if (!analyse_only && exists(dir)) {
        fprintf(stderr, PROG ": %s exists: a study writes a new folder (or give --analyse %s to analyse it again)\n",
                dir, dir);
        return FB_EXIT_USAGE;
    }
    if (!analyse_only && run_study(dir, def) != 0) return FB_EXIT_FAIL;
    return analyse_dir(dir, def, plot, verdict) ? FB_EXIT_FAIL : FB_EXIT_OK;
}

static int all_studies(const char *out, int plot) {
    if (exists(out)) {
        fprintf(stderr, PROG ": %s exists: --all writes a new folder\n", out);
        return FB_EXIT_USAGE;
    }
    if (mkdir(out, 0777) != 0) {
        fprintf(stderr, PROG ": cannot create %s: %s\n", out, strerror(errno));
        return FB_EXIT_FAIL;
    }
    int failed = 0;
    study_verdict verdicts[study_count];
    for (int i = 0; i < study_count; i++) {
        char dir[PATH_MAX + 64];
        snprintf(dir, sizeof dir, "%s/%s", out, study_defs[i]->name);
        failed += one_study(study_defs[i], dir, 0, plot, &verdicts[i]) != FB_EXIT_OK;
    }
    if (plot) {
        char log[PATH_MAX + 16], what[PATH_MAX + 32];
        snprintf(log, sizeof log, "%s/report.log", out);
        snprintf(what, sizeof what, "report: %s/report/index.html", out);
        printf("\n");
        failed += run_plot_script("report.py", out, log, what) != 0;
    }
    printf("\n%-24s %-5s %s\n", "study", "doc", "verdict");
    for (int i = 0; i < study_count; i++)
        printf("%-24s %-5s %s\n", study_defs[i]->name, study_defs[i]->document, study_verdict_names[verdicts[i]]);
    printf("studies: %d run, %d with a failure; results under %s\n", study_count, failed, out);
    return failed ? FB_EXIT_FAIL : FB_EXIT_OK;
}

int bench_study_main(int argc, char **argv) {
    const char *out = NULL, *analyse = NULL;
    int list = 0, all = 0, no_plot = 0, spec = 0;
    const fb_option opts[] = {
        { "out", FB_OPT_STRING, &out, "DIR", "the study folder to create [default: results/study-NAME-<date>-<time>]",
          1, 0, 0 },
        { "analyse", FB_OPT_STRING, &analyse, "DIR", "analyse the runs already in DIR (a study folder) again", 1, 0,
          0 },
        { "all", FB_OPT_FLAG, &all, NULL, "every study, into DIR/<name>/, then the HTML report of DIR", 1, 0, 0 },
        { "list", FB_OPT_FLAG, &list, NULL, "list the studies and exit", 1, 0, 0 },
        { "spec", FB_OPT_FLAG, &spec, NULL, "print the study's sweep specification and exit", 1, 0, 0 },
        { "no-plot", FB_OPT_FLAG, &no_plot, NULL, "no plot (and no report with --all)", 1, 0, 0 },
    };
    const int nopts = (int)(sizeof opts / sizeof opts[0]);
    const int has_name = argc > 1 && argv[1][0] != '-';
    const fb_cli_result pr = fb_cli_parse(PROG, opts, nopts, argc, argv, has_name ? 2 : 1);
    if (pr == FB_CLI_HELP) {
        usage(stdout);
        fb_cli_print_options(stdout, opts, nopts);
        printf("\nstudies: ");
        for (int i = 0; i < study_count; i++) printf("%s%s", i ? ", " : "", study_defs[i]->name);
        printf("\n");
        return FB_EXIT_OK;
    }
    if (pr == FB_CLI_ERROR) return FB_EXIT_USAGE;
    if (list) {
        list_studies();
        return FB_EXIT_OK;
    }
    char stamp_buf[32], dir[PATH_MAX];
    stamp(stamp_buf, sizeof stamp_buf);
    if (all) {
        if (has_name || analyse) {
            fprintf(stderr, PROG ": --all runs every study: give no NAME and no --analyse\n");
            return FB_EXIT_USAGE;
        }
        snprintf(dir, sizeof dir, "%s", out ? out : "");
        if (!out) snprintf(dir, sizeof dir, "results/studies-%s", stamp_buf);
        return all_studies(dir, !no_plot);
    }
    if (!has_name) {
        fprintf(stderr, PROG ": which study? (fusebench study --list)\n");
        return FB_EXIT_USAGE;
    }
    const study_def *def = study_find(argv[1]);
    if (!def) {
        fprintf(stderr, PROG ": unknown study '%s' (known:", argv[1]);
        for (int i = 0; i < study_count; i++) fprintf(stderr, " %s", study_defs[i]->name);
        fprintf(stderr, ")\n");
        return FB_EXIT_USAGE;
    }
    if (spec) {
        fputs(def->spec, stdout);
        return FB_EXIT_OK;
    }
    if (analyse && out) {
        fprintf(stderr, PROG ": give --out (a new study) or --analyse (an existing one), not both\n");
        return FB_EXIT_USAGE;
    }
    if (analyse)
        snprintf(dir, sizeof dir, "%s", analyse);
    else if (out)
        snprintf(dir, sizeof dir, "%s", out);
    else
        snprintf(dir, sizeof dir, "results/study-%s-%s", def->name, stamp_buf);
    study_verdict verdict;
    return one_study(def, dir, analyse != NULL, !no_plot, &verdict);
}
