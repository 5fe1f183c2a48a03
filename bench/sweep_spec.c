// Sweep specifications: parser, product and checks (format in bench/SWEEP.md, API in sweep_spec.h).
//
// Parsing runs in three passes so that every message can name its line:
//   1. lines → keys and value lists (unknown keys and values, duplicates, bad numbers);
//   2. exclusions resolved against the axes' values (an exclusion may precede the line it names);
//   3. the product, run by run: excluded runs dropped, the others checked as `fusebench train`
//      checks its options (harness/train.c), the offending axis's line named.
#include "sweep_spec.h"
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../harness/model.h"
#include "../harness/train.h"

const char *const sweep_launcher_names[3] = { "auto", "srun", "mpirun" };

#define MAX_VALUES 1000   // per axis (a range 1..100000 is a typo, not a sweep)

// ---- The axes ----

static const scenario *const scenarios[] = { &scenario_timeseries, &scenario_multimodal, &scenario_microbiome };
#define NSCENARIOS ((int)(sizeof scenarios / sizeof scenarios[0]))

typedef struct {
    const char *key;
    int min;              // numeric axes: smallest value accepted; string axes: -1
    const char *dflt;     // value when the spec does not name the axis; NULL: required or special
} axis_info;

static const axis_info axes[SWEEP_AXIS_COUNT] = {
    [SWEEP_SCENARIO] = { "scenario", -1, NULL },           // required
    [SWEEP_METHOD] = { "method", -1, NULL },               // default: each scenario's own method
    [SWEEP_ARM] = { "arm", -1, NULL },                     // default: the implicit arm "-"
    [SWEEP_PARALLEL] = { "parallel", -1, "ddp" },
    [SWEEP_PAIRS] = { "pairs", -1, "local" },
    [SWEEP_NODES] = { "nodes", 1, "1" },
    [SWEEP_RANKS_PER_NODE] = { "ranks_per_node", 1, "1" },
    [SWEEP_THREADS] = { "threads", 1, "1" },
    [SWEEP_BATCH] = { "batch", 1, "8" },                   // default: 8 rows per rank, as fusebench train
    [SWEEP_STEPS] = { "steps", 1, "100" },
    [SWEEP_SEED] = { "seed", 0, "1" },
};

int sweep_axis_numeric(sweep_axis a) { return a >= 0 && a < SWEEP_AXIS_COUNT && axes[a].min >= 0; }

// Name i of a string axis; NULL past the last one. The arms' names are s's labels (none without s).
static const char *axis_name(const sweep_spec *s, sweep_axis a, int i) {
    if (i < 0) return NULL;
    switch (a) {
    case SWEEP_SCENARIO: return i < NSCENARIOS ? scenarios[i]->name : NULL;
    case SWEEP_METHOD: return i < FUSION_METHOD_COUNT ? fusion_methods[i]->name : NULL;
    case SWEEP_ARM: return s && i < s->narms ? s->arms[i].label : NULL;
    case SWEEP_PARALLEL: return i < 2 ? train_strategy_names[i] : NULL;
    case SWEEP_PAIRS: return i < 3 ? train_pairs_names[i] : NULL;
    default: return NULL;
    }
}

const char *sweep_axis_value(sweep_axis a, int v, char *buf, size_t size) {
    if (sweep_axis_numeric(a) || a == SWEEP_ARM) snprintf(buf, size, "%d", v);
    else snprintf(buf, size, "%s", axis_name(NULL, a, v) ? axis_name(NULL, a, v) : "?");
    return buf;
}

const char *sweep_run_arm(const sweep_spec *s, const sweep_run *r) { return s->arms[r->v[SWEEP_ARM]].label; }
const char *sweep_run_arm_options(const sweep_spec *s, const sweep_run *r) { return s->arms[r->v[SWEEP_ARM]].options; }

// The microbiome scenario's UniFrac term is a mean over pairs of rows, and its source system needs an
// even batch for it; harness/train.c refuses an odd one (it learns this from the created model; a
// plan creates no model, so the scenario is named here).
static int needs_even_batch(const scenario *sc) { return strcmp(sc->name, "microbiome") == 0; }

// ---- Messages ----

typedef struct {
    sweep_spec *s;
    const char *name;   // the spec's label in messages (its path)
    char *err;
    size_t err_size;
    int line;           // line being parsed (pass 1)
} parser;

static int fail_at(parser *p, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_at(parser *p, int line, const char *fmt, ...) {
    int n = snprintf(p->err, p->err_size, "%s:%d: ", p->name, line);
    if (n < 0 || (size_t)n >= p->err_size) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->err_size - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

// "a, b, c": the names of a string axis, or with fits_of the methods that fit that scenario, into buf.
static void list_names(const sweep_spec *s, sweep_axis a, const scenario *fits_of, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; axis_name(s, a, i) && used < size; i++) {
        char why[256];
        if (fits_of && fits_of->fits(fusion_methods[i], why, sizeof why) != 0) continue;
        used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? ", " : "", axis_name(s, a, i));
    }
}

// ---- Pass 1: lines ----

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

// One value of axis a (no commas) into v; "all" is handled by the caller.
static int parse_value(parser *p, sweep_axis a, const char *text, int *v) {
    if (sweep_axis_numeric(a)) {
        char *end;
        errno = 0;
        long x = strtol(text, &end, 10);
        if (end == text || *end || errno == ERANGE || x > INT_MAX)
            return fail_at(p, p->line, "%s: '%s' is not an integer", axes[a].key, text);
        if (x < axes[a].min) return fail_at(p, p->line, "%s: %ld is below %d", axes[a].key, x, axes[a].min);
        *v = (int)x;
        return 0;
    }
    for (int i = 0; axis_name(p->s, a, i); i++)
        if (strcmp(text, axis_name(p->s, a, i)) == 0) { *v = i; return 0; }
    char known[1024];
    list_names(p->s, a, NULL, known, sizeof known);
    return fail_at(p, p->line, "unknown %s '%s' (known: %s%s)", axes[a].key, text, known, a == SWEEP_METHOD ? ", all" : "");
}

static int add_value(parser *p, sweep_values *vals, sweep_axis a, int v) {
    char buf[64];
    for (int i = 0; i < vals->n; i++)
        if (vals->val[i] == v)
            return fail_at(p, p->line, "%s: %s is listed twice", axes[a].key, sweep_axis_value(a, v, buf, sizeof buf));
    if (vals->n == MAX_VALUES) return fail_at(p, p->line, "%s: more than %d values", axes[a].key, MAX_VALUES);
    if (vals->n % 16 == 0) {
        int *grown = realloc(vals->val, (size_t)(vals->n + 16) * sizeof *grown);
        if (!grown) return fail_at(p, p->line, "out of memory");
        vals->val = grown;
    }
    vals->val[vals->n++] = v;
    return 0;
}

// "v, v, A..B, ..." of axis a.
static int parse_list(parser *p, sweep_axis a, char *text) {
    sweep_values *vals = &p->s->axes[a];
    vals->line = p->line;
    for (char *item = text, *next; item; item = next) {
        char *comma = strchr(item, ',');
        next = comma ? comma + 1 : NULL;
        if (comma) *comma = '\0';
        item = trim(item);
        if (!*item)
            return fail_at(p, p->line, "%s: an empty value in the list (two commas, or a comma at an end)", axes[a].key);
        if (a == SWEEP_METHOD && strcmp(item, "all") == 0) {
            if (vals->n || next) return fail_at(p, p->line, "method: `all` stands alone (it is every method that fits)");
            vals->all = 1;
            return 0;
        }
        char *dots = sweep_axis_numeric(a) ? strstr(item, "..") : NULL;
        int lo, hi;
        if (dots) {   // an inclusive range A..B
            *dots = '\0';
            if (parse_value(p, a, trim(item), &lo) || parse_value(p, a, trim(dots + 2), &hi)) return -1;
            if (hi < lo) return fail_at(p, p->line, "%s: the range %d..%d is empty", axes[a].key, lo, hi);
            if (hi - lo >= MAX_VALUES) return fail_at(p, p->line, "%s: more than %d values", axes[a].key, MAX_VALUES);
        } else if (parse_value(p, a, item, &lo)) {
            return -1;
        } else {
            hi = lo;
        }
        for (int v = lo; v <= hi; v++)
            if (add_value(p, vals, a, v)) return -1;
    }
    return 0;
}

static int has_shell_chars(const char *s) { return strpbrk(s, ";&|<>$`'\"\\(){}*?!~#") != NULL; }

// Does option token t (from `extra`, an arm or `sbatch`) set one of the options in `taken` ("--out"
// matches "--out" and "--out=..."; a short option "-N" matches "-N", "-N4")?
static const char *takes_over(const char *t, const char *const *taken) {
    for (; *taken; taken++) {
        size_t n = strlen(*taken);
        if (strncmp(t, *taken, n) == 0 && (t[n] == '\0' || t[n] == '=' || ((*taken)[1] != '-' && t[n])))
            return *taken;
    }
    return NULL;
}

// extra, arms, sbatch: option tokens the sweep does not set itself, no shell syntax (the text goes
// into command lines and scripts as is). A train option's value may look like an option (`--gate-bias
// -6`): it starts with '-', so only the options in `taken` are refused.
static int parse_options(parser *p, const char *key, const char *text, const char *const *taken, char *dst, size_t size) {
    if (has_shell_chars(text))
        return fail_at(p, p->line, "%s: no shell syntax (quotes, $, ;, |, ...) allowed in '%s'", key, text);
    if (strlen(text) >= size) return fail_at(p, p->line, "%s: longer than %zu characters", key, size - 1);
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", text);
    int expect_option = 1;
    for (char *save = NULL, *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        const char *which = t[0] == '-' ? takes_over(t, taken) : NULL;
        if (which) return fail_at(p, p->line, "%s: %s is set by the sweep itself (one of its axes or files)", key, which);
        if (expect_option && t[0] != '-')
            return fail_at(p, p->line, "%s: '%s' is not an option (options start with -)", key, t);
        // sbatch options are --name=value words; train's take their values as the next words.
        expect_option = strcmp(key, "sbatch") == 0;
    }
    memcpy(dst, text, strlen(text) + 1);
    return 0;
}

static const char *const train_taken[] = { "--scenario", "--method", "--parallel", "--pairs", "--batch",
                                           "--batch-per-rank", "--steps", "--seed", "--threads", "--out",
                                           "--no-h5", "--help", NULL };
static const char *const sbatch_taken[] = { "--array", "--nodes", "--ntasks-per-node", "--ntasks", "--cpus-per-task",
                                            "--output", "--error", "--job-name", "--dependency", "--parsable",
                                            "-a", "-N", "-n", "-c", "-o", "-e", "-J", "-d", NULL };

// `arm: LABEL OPTIONS...`, one arm per line; the options are checked as `extra`'s are.
static int parse_arm(parser *p, char *value) {
    sweep_spec *s = p->s;
    static const char label_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+-";
    const size_t n = strcspn(value, " \t");
    char *options = value + n;
    if (*options) *options++ = '\0';
    options = trim(options);
    // The label is a manifest cell (tabs, shell words) and the value of `exclude: arm=LABEL` (spaces,
    // '='), hence the plain characters; a leading '-' is a forgotten label (`arm: --celestial-raw`).
    if (value[0] == '-' || strspn(value, label_chars) != n)
        return fail_at(p, p->line, "arm: '%s' is not a label (letters, digits, _ . + -, not starting with -): "
                       "an arm is `arm: LABEL OPTIONS...`", value);
    if (n >= sizeof s->arms->label)
        return fail_at(p, p->line, "arm: label '%s' is longer than %zu characters", value, sizeof s->arms->label - 1);
    for (int i = 0; i < s->narms; i++)
        if (strcmp(s->arms[i].label, value) == 0)
            return fail_at(p, p->line, "arm: label '%s' is given twice (first on line %d)", value, s->arms[i].line);
    if (s->narms == SWEEP_MAX_ARMS) return fail_at(p, p->line, "arm: more than %d arms", SWEEP_MAX_ARMS);
    sweep_arm *grown = realloc(s->arms, (size_t)(s->narms + 1) * sizeof *grown);
    if (!grown) return fail_at(p, p->line, "out of memory");
    s->arms = grown;
    sweep_arm *arm = &s->arms[s->narms];
    *arm = (sweep_arm){ .line = p->line };
    memcpy(arm->label, value, n + 1);
    if (parse_options(p, "arm", options, train_taken, arm->options, sizeof arm->options)) return -1;
    s->narms++;
    return 0;
}

// Keys other than the axes. Their line numbers live in key_line[SWEEP_AXIS_COUNT + k].
enum { KEY_BATCH_PER_RANK, KEY_EXTRA, KEY_SBATCH, KEY_LAUNCHER, KEY_EXCLUDE, KEY_OTHER_COUNT };
static const char *const other_keys[KEY_OTHER_COUNT] = { "batch_per_rank", "extra", "sbatch", "launcher", "exclude" };

// The keys a spec line may start with, or (axes_only) those an exclusion may name.
static void list_keys(char *buf, size_t size, int axes_only) {
    size_t used = 0;
    for (int a = 0; a < SWEEP_AXIS_COUNT && used < size; a++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", a ? ", " : "", axes[a].key);
    for (int k = 0; k < (axes_only ? 1 : KEY_OTHER_COUNT) && used < size; k++)
        used += (size_t)snprintf(buf + used, size - used, ", %s", other_keys[k]);
}

typedef struct { int line; char *text; } raw_exclusion;

typedef struct {
    int key_line[SWEEP_AXIS_COUNT + KEY_OTHER_COUNT];
    int nraw;
    raw_exclusion *raw;
} lines_state;

static int parse_line(parser *p, lines_state *ls, char *line) {
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    line = trim(line);
    if (!*line) return 0;
    char *k = line;
    while (islower((unsigned char)*k) || *k == '_') k++;
    size_t klen = (size_t)(k - line);
    char *value = k;
    while (isspace((unsigned char)*value)) value++;
    if (*value == ':') value++;
    else if (value == k && *value) klen = 0;   // "scenario=x": neither a colon nor a space after the key
    value = trim(value);
    if (klen == 0) return fail_at(p, p->line, "expected `key: value, value, ...`, got '%s'", line);
    char key[32];
    snprintf(key, sizeof key, "%.*s", (int)(klen < sizeof key ? klen : sizeof key - 1), line);
    int slot = -1;
    for (int a = 0; a < SWEEP_AXIS_COUNT; a++)
        if (strcmp(key, axes[a].key) == 0) slot = a;
    for (int o = 0; o < KEY_OTHER_COUNT; o++)
        if (strcmp(key, other_keys[o]) == 0) slot = SWEEP_AXIS_COUNT + o;
    if (slot < 0 || klen >= sizeof key) {
        char known[512];
        list_keys(known, sizeof known, 0);
        return fail_at(p, p->line, "unknown key '%.*s' (keys: %s)", (int)klen, line, known);
    }
    if (!*value) return fail_at(p, p->line, "%s: no value", key);
    const int bpr = SWEEP_AXIS_COUNT + KEY_BATCH_PER_RANK;
    if (slot == SWEEP_ARM) return parse_arm(p, value);   // repeatable: one arm per line
    if (slot == SWEEP_AXIS_COUNT + KEY_EXCLUDE) {
        char *copy = strdup(value);
        raw_exclusion *grown = copy ? realloc(ls->raw, (size_t)(ls->nraw + 1) * sizeof *grown) : NULL;
        if (!grown) {
            free(copy);
            return fail_at(p, p->line, "out of memory");
        }
        ls->raw = grown;
        ls->raw[ls->nraw++] = (raw_exclusion){ p->line, copy };
        return 0;
    }
    if ((slot == SWEEP_BATCH && ls->key_line[bpr]) || (slot == bpr && ls->key_line[SWEEP_BATCH]))
        return fail_at(p, p->line, "give batch (global) or batch_per_rank, not both (the other is on line %d)",
                       ls->key_line[slot == bpr ? SWEEP_BATCH : bpr]);
    if (ls->key_line[slot]) return fail_at(p, p->line, "%s is given twice (first on line %d)", key, ls->key_line[slot]);
    ls->key_line[slot] = p->line;
    sweep_spec *s = p->s;
    if (slot < SWEEP_AXIS_COUNT) return parse_list(p, (sweep_axis)slot, value);
    switch (slot - SWEEP_AXIS_COUNT) {
    case KEY_BATCH_PER_RANK:
        s->batch_per_rank = 1;
        return parse_list(p, SWEEP_BATCH, value);
    case KEY_EXTRA: return parse_options(p, key, value, train_taken, s->extra, sizeof s->extra);
    case KEY_SBATCH: return parse_options(p, key, value, sbatch_taken, s->sbatch, sizeof s->sbatch);
    case KEY_LAUNCHER:
        for (int i = 0; i < 3; i++)
            if (strcmp(value, sweep_launcher_names[i]) == 0) { s->launcher = (sweep_launcher)i; return 0; }
        return fail_at(p, p->line, "launcher: '%s' is not auto, srun or mpirun", value);
    }
    return fail_at(p, p->line, "internal: key '%s' has no handler", key);
}

// Defaults of the axes the spec did not name (line 0).
static int fill_defaults(parser *p) {
    sweep_spec *s = p->s;
    if (!s->axes[SWEEP_SCENARIO].n)
        return fail_at(p, p->line ? p->line : 1,
                       "no `scenario:` line (timeseries, multimodal or microbiome); every spec needs one");
    p->line = 0;
    if (!s->narms) {   // one implicit arm: every spec without arms gives the runs it gave before arms
        if (!(s->arms = calloc(1, sizeof *s->arms))) return fail_at(p, 1, "out of memory");
        snprintf(s->arms[0].label, sizeof s->arms[0].label, "-");
        s->narms = 1;
    }
    for (int i = 0; i < s->narms; i++)
        if (add_value(p, &s->axes[SWEEP_ARM], SWEEP_ARM, i)) return -1;
    s->axes[SWEEP_ARM].line = s->arms[0].line;
    for (int a = 0; a < SWEEP_AXIS_COUNT; a++) {
        if (s->axes[a].n || s->axes[a].all || !axes[a].dflt) continue;
        char dflt[32];
        snprintf(dflt, sizeof dflt, "%s", axes[a].dflt);
        if (a == SWEEP_BATCH) s->batch_per_rank = 1;
        if (parse_list(p, (sweep_axis)a, dflt)) return -1;
        s->axes[a].line = 0;
    }
    return 0;
}

// ---- Pass 2: exclusions ----

// 1 when the method axis lists no methods itself: `all`, or nothing (each scenario's own method).
static int methods_per_scenario(const sweep_values *m) { return m->all || !m->n; }

// With methods_per_scenario: does method i run in scenario sc? (`all`: every method that fits it.)
static int scenario_runs(const sweep_values *m, const scenario *sc, int i) {
    char why[256];
    return m->all ? sc->fits(fusion_methods[i], why, sizeof why) == 0
                  : strcmp(fusion_methods[i]->name, sc->default_method) == 0;
}

// Could value v appear on axis a of some run?
static int axis_has(const sweep_spec *s, sweep_axis a, int v) {
    const sweep_values *vals = &s->axes[a];
    if (a == SWEEP_METHOD && methods_per_scenario(vals)) {
        const sweep_values *sc = &s->axes[SWEEP_SCENARIO];
        for (int i = 0; i < sc->n; i++)
            if (scenario_runs(vals, scenarios[sc->val[i]], v)) return 1;
        return 0;
    }
    for (int i = 0; i < vals->n; i++)
        if (vals->val[i] == v) return 1;
    return 0;
}

static int resolve_exclusion(parser *p, const raw_exclusion *raw, sweep_exclusion *e) {
    sweep_spec *s = p->s;
    *e = (sweep_exclusion){ .line = raw->line };
    p->line = raw->line;
    char *save = NULL;
    for (char *t = strtok_r(raw->text, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        char *eq = strchr(t, '=');
        if (!eq || eq == t || !eq[1])
            return fail_at(p, raw->line,
                           "exclude: '%s' is not key=value (e.g. exclude: parallel=dataparallel pairs=global)", t);
        *eq = '\0';
        int a = -1;
        for (int i = 0; i < SWEEP_AXIS_COUNT; i++)
            if (strcmp(t, axes[i].key) == 0) a = i;
        if (strcmp(t, "batch_per_rank") == 0) a = SWEEP_BATCH;
        if (a < 0) {
            char known[512];
            list_keys(known, sizeof known, 1);
            return fail_at(p, raw->line, "exclude: unknown key '%s' (keys: %s)", t, known);
        }
        if (a == SWEEP_BATCH && (strcmp(t, "batch_per_rank") == 0) != s->batch_per_rank)
            return fail_at(p, raw->line, "exclude: this spec's batches are %s, so exclude by %s=",
                           s->batch_per_rank ? "rows per rank" : "global", s->batch_per_rank ? "batch_per_rank" : "batch");
        for (int i = 0; i < e->n; i++)
            if (e->axis[i] == a) return fail_at(p, raw->line, "exclude: %s appears twice (a run has one value of it)", t);
        const char *text = eq + 1;
        int v;
        if (parse_value(p, (sweep_axis)a, text, &v)) return -1;   // names the line, the axis and its values
        if (!axis_has(s, (sweep_axis)a, v)) {
            char where[64];
            if (s->axes[a].line) snprintf(where, sizeof where, "%s is on line %d", t, s->axes[a].line);
            else snprintf(where, sizeof where, "%s takes its default", t);
            return fail_at(p, raw->line, "exclude: %s=%s names a value the sweep does not have (%s)", t, text, where);
        }
        e->axis[e->n] = a;
        e->val[e->n++] = v;
    }
    return 0;
}

// ---- Pass 3: the product ----

static int excluded(sweep_spec *s, const sweep_run *r) {
    for (int i = 0; i < s->nexcl; i++) {
        sweep_exclusion *e = &s->excl[i];
        int all = 1;
        for (int c = 0; c < e->n && all; c++) all = r->v[e->axis[c]] == e->val[c];
        if (all) { e->matched++; return 1; }
    }
    return 0;
}

// The line to name for axis a (its own, or when it took its default, the scenario's).
static int line_of(const sweep_spec *s, sweep_axis a) {
    return s->axes[a].line ? s->axes[a].line : s->axes[SWEEP_SCENARIO].line;
}

// The checks `fusebench train` makes of its options (harness/train.c check_config, trainer_setup).
static int check_run(parser *p, const sweep_run *r) {
    const sweep_spec *s = p->s;
    const scenario *sc = scenarios[r->v[SWEEP_SCENARIO]];
    const fusion_method *fm = fusion_methods[r->v[SWEEP_METHOD]];
    char why[256], ranks[96], fitting[1024];
    if (sc->fits(fm, why, sizeof why) != 0) {
        list_names(s, SWEEP_METHOD, sc, fitting, sizeof fitting);
        return fail_at(p, line_of(s, SWEEP_METHOD), "method %s does not fit the %s scenario (%s); methods that do: %s",
                       fm->name, sc->name, why, fitting);
    }
    if (r->v[SWEEP_PARALLEL] == TRAIN_DATAPARALLEL && r->v[SWEEP_PAIRS] == TRAIN_PAIRS_BLOCKDIAG)
        return fail_at(p, line_of(s, SWEEP_PAIRS), "pairs blockdiag applies to ddp only (dataparallel always sees every "
                       "pair); add `exclude: parallel=dataparallel pairs=blockdiag`");
    snprintf(ranks, sizeof ranks, "%d rank%s (nodes %d x ranks_per_node %d)", r->ranks, r->ranks > 1 ? "s" : "",
             r->v[SWEEP_NODES], r->v[SWEEP_RANKS_PER_NODE]);
    const int bline = line_of(s, SWEEP_BATCH);
    if (!s->batch_per_rank && r->ranks > r->batch)
        return fail_at(p, bline, "batch %d over %s: every rank needs at least one sample", r->batch, ranks);
    if (!s->batch_per_rank && r->batch % r->ranks)
        return fail_at(p, bline, "batch %d does not divide over %s", r->batch, ranks);
    if (needs_even_batch(sc) && r->batch % 2) {
        if (s->batch_per_rank)
            return fail_at(p, bline, "batch_per_rank %d x %s = %d is odd: the %s scenario's UniFrac loss needs an even "
                           "global batch", r->v[SWEEP_BATCH], ranks, r->batch, sc->name);
        return fail_at(p, bline, "batch %d is odd: the %s scenario's UniFrac loss needs an even global batch", r->batch,
                       sc->name);
    }
    return 0;
}

static int add_run(parser *p, sweep_run r) {
    sweep_spec *s = p->s;
    r.ranks = r.v[SWEEP_NODES] * r.v[SWEEP_RANKS_PER_NODE];
    r.batch = s->batch_per_rank ? r.v[SWEEP_BATCH] * r.ranks : r.v[SWEEP_BATCH];
    if (excluded(s, &r)) return 0;
    if (check_run(p, &r)) return -1;
    if (s->nruns == SWEEP_MAX_RUNS)
        return fail_at(p, line_of(s, SWEEP_SEED), "the product has more than %d runs (run ids end at r%04d)",
                       SWEEP_MAX_RUNS, SWEEP_MAX_RUNS);
    if (s->nruns % 64 == 0) {
        sweep_run *grown = realloc(s->runs, (size_t)(s->nruns + 64) * sizeof *grown);
        if (!grown) return fail_at(p, 1, "out of memory");
        s->runs = grown;
    }
    s->runs[s->nruns++] = r;
    return 0;
}

// Odometer over the axes from `a` on (recursive: the method axis's values depend on the scenario).
static int expand(parser *p, sweep_run *r, int a, int *total) {
    if (a == SWEEP_AXIS_COUNT) { ++*total; return add_run(p, *r); }
    const sweep_values *vals = &p->s->axes[a];
    if (a == SWEEP_METHOD && methods_per_scenario(vals)) {
        const scenario *sc = scenarios[r->v[SWEEP_SCENARIO]];
        for (int i = 0; i < FUSION_METHOD_COUNT; i++) {
            if (!scenario_runs(vals, sc, i)) continue;
            r->v[a] = i;
            if (expand(p, r, a + 1, total)) return -1;
        }
        return 0;
    }
    for (int i = 0; i < vals->n; i++) {
        r->v[a] = vals->val[i];
        if (expand(p, r, a + 1, total)) return -1;
    }
    return 0;
}

// ---- Entry points ----

void sweep_spec_free(sweep_spec *s) {
    for (int a = 0; a < SWEEP_AXIS_COUNT; a++) free(s->axes[a].val);
    free(s->excl);
    free(s->arms);
    free(s->runs);
    memset(s, 0, sizeof *s);
}

static int parse_all(parser *p, char *text, lines_state *ls) {
    sweep_spec *s = p->s;
    p->line = 0;
    for (char *line = text, *next; line; line = next) {
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl) *nl = '\0';
        else if (!*line) break;   // the empty end after a final newline is not a line
        p->line++;
        if (parse_line(p, ls, line)) return -1;
    }
    if (fill_defaults(p)) return -1;
    if (ls->nraw) {
        s->excl = calloc((size_t)ls->nraw, sizeof *s->excl);
        if (!s->excl) return fail_at(p, ls->raw[0].line, "out of memory");
    }
    for (int i = 0; i < ls->nraw; i++, s->nexcl++)
        if (resolve_exclusion(p, &ls->raw[i], &s->excl[i])) return -1;
    sweep_run r = { 0 };
    int total = 0;
    if (expand(p, &r, 0, &total)) return -1;
    if (s->nruns == 0) {
        char lines[256] = "";
        size_t used = 0;
        for (int i = 0; i < s->nexcl && used < sizeof lines; i++)
            used += (size_t)snprintf(lines + used, sizeof lines - used, "%s%d", i ? ", " : "", s->excl[i].line);
        return fail_at(p, s->excl[s->nexcl - 1].line, "the exclusions (line%s %s) exclude every run (the product has %d): "
                       "the sweep is empty", s->nexcl > 1 ? "s" : "", lines, total);
    }
    return 0;
}

int sweep_spec_parse(sweep_spec *s, const char *text, const char *name, char *err, size_t err_size) {
    memset(s, 0, sizeof *s);
    parser p = { .s = s, .name = name ? name : "spec", .err = err, .err_size = err_size };
    lines_state ls = { 0 };
    char *copy = strdup(text ? text : "");
    int rc = copy ? parse_all(&p, copy, &ls) : fail_at(&p, 0, "out of memory");
    for (int i = 0; i < ls.nraw; i++) free(ls.raw[i].text);
    free(ls.raw);
    free(copy);
    if (rc) sweep_spec_free(s);
    return rc;
}

char *sweep_read_text(const char *path, char *err, size_t err_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t n = 0, cap = 0;
    int bad = 0;
    for (;;) {
        if (cap - n < 4096 + 1) {
            const size_t want = 2 * cap + 4096 + 1;
            char *grown = realloc(text, want);
            if (!grown) { bad = 1; break; }
            text = grown;
            cap = want;
        }
        const size_t got = fread(text + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    bad |= ferror(f);
    fclose(f);
    if (!bad) {
        text[n] = '\0';
        if (strlen(text) == n) return text;
    }
    snprintf(err, err_size, "%s: %s", path, bad ? "read error (or out of memory)" : "not a text file (a NUL byte)");
    free(text);
    return NULL;
}

int sweep_spec_load(sweep_spec *s, const char *path, char *err, size_t err_size) {
    memset(s, 0, sizeof *s);
    char *text = sweep_read_text(path, err, err_size);
    if (!text) return -1;
    int rc = sweep_spec_parse(s, text, path, err, err_size);
    free(text);
    return rc;
}

// ---- Job array index lists ----

void sweep_rows_format(const int *rows, int n, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used < size;) {
        int j = i;
        while (j + 1 < n && rows[j + 1] == rows[j] + 1) j++;
        used += (size_t)(j == i ? snprintf(buf + used, size - used, "%s%d", i ? "," : "", rows[i])
                                : snprintf(buf + used, size - used, "%s%d-%d", i ? "," : "", rows[i], rows[j]));
        i = j + 1;
    }
}

int sweep_rows_parse(const char *s, int *rows, int max) {
    int n = 0;
    const char *p = s;
    if (!*p) return -1;
    for (;;) {
        char *end;
        long lo = strtol(p, &end, 10), hi = lo;
        if (end == p || lo < 1 || lo > INT_MAX) return -1;
        if (*end == '-') {
            p = end + 1;
            hi = strtol(p, &end, 10);
            if (end == p || hi < lo || hi > INT_MAX) return -1;
        }
        for (long v = lo; v <= hi; v++) {
            if (n == max || (n && v <= rows[n - 1])) return -1;
            rows[n++] = (int)v;
        }
        if (*end == '\0') return n;
        if (*end != ',') return -1;
        p = end + 1;
    }
}
