#include "cli.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// ---- Numbers ----

int fb_parse_int(const char *s, int *out, char *why, size_t why_size) {
    if (!s || !*s) { snprintf(why, why_size, "an empty value is not an integer"); return -1; }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end != '\0') { snprintf(why, why_size, "'%s' is not an integer", s); return -1; }
    if (errno == ERANGE || v < INT_MIN || v > INT_MAX) {
        snprintf(why, why_size, "'%s' is out of the int range", s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int fb_parse_double(const char *s, double *out, char *why, size_t why_size) {
    if (!s || !*s) { snprintf(why, why_size, "an empty value is not a number"); return -1; }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || !isfinite(v)) { snprintf(why, why_size, "'%s' is not a finite number", s); return -1; }
    if (errno == ERANGE) { snprintf(why, why_size, "'%s' is out of range", s); return -1; }
    *out = v;
    return 0;
}

int fb_parse_int_list(const char *s, fb_int_list *out, int all_value, char *why, size_t why_size) {
    fb_int_list l = { 0 };
    if (!s || !*s) { snprintf(why, why_size, "an empty list"); return -1; }
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        if (len == 0 || len >= sizeof item) {
            snprintf(why, why_size, "'%s' is not a comma-separated list of integers", s);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        int v;
        if (all_value > 0 && strcmp(item, "all") == 0) v = all_value;
        else if (fb_parse_int(item, &v, why, why_size) != 0) {
            snprintf(why, why_size, "'%s' in '%s' is not an integer%s", item, s, all_value > 0 ? " (or 'all')" : "");
            return -1;
        }
        if (l.n == FB_LIST_MAX) { snprintf(why, why_size, "more than %d entries in '%s'", FB_LIST_MAX, s); return -1; }
        int dup = 0;
        for (int i = 0; i < l.n; i++) dup |= l.v[i] == v;
        if (!dup) l.v[l.n++] = v;   // "1,all" on a 1-core machine is just "1"
        if (!comma) break;
        p = comma + 1;
    }
    *out = l;
    return 0;
}

void fb_int_list_format(const fb_int_list *l, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < l->n && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%d", i ? "," : "", l->v[i]);
}

// ---- Options ----

static const fb_option *find_option(const fb_option *opts, int nopts, const char *name, size_t len) {
    for (int i = 0; i < nopts; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0) return &opts[i];
    return NULL;
}

static int in_range(const fb_option *o, double v) { return o->min > o->max || (v >= o->min && v <= o->max); }

static fb_cli_result set_value(const char *prog, const fb_option *o, const char *val) {
    char why[256];
    switch (o->type) {
    case FB_OPT_FLAG:
        *(int *)o->value = 1;
        return FB_CLI_OK;
    case FB_OPT_INT: {
        int v;
        if (fb_parse_int(val, &v, why, sizeof why) != 0) {
            fprintf(stderr, "%s: --%s: %s\n", prog, o->name, why);
            return FB_CLI_ERROR;
        }
        if (!in_range(o, v)) {
            fprintf(stderr, "%s: --%s: %d is out of range (%.0f..%.0f)\n", prog, o->name, v, o->min, o->max);
            return FB_CLI_ERROR;
        }
        *(int *)o->value = v;
        return FB_CLI_OK;
    }
    case FB_OPT_DOUBLE: {
        double v;
        if (fb_parse_double(val, &v, why, sizeof why) != 0) {
            fprintf(stderr, "%s: --%s: %s\n", prog, o->name, why);
            return FB_CLI_ERROR;
        }
        if (!in_range(o, v)) {
            fprintf(stderr, "%s: --%s: %g is out of range (%g..%g)\n", prog, o->name, v, o->min, o->max);
            return FB_CLI_ERROR;
        }
        *(double *)o->value = v;
        return FB_CLI_OK;
    }
    case FB_OPT_STRING:
        if (!*val) { fprintf(stderr, "%s: --%s: empty value\n", prog, o->name); return FB_CLI_ERROR; }
        *(const char **)o->value = val;
        return FB_CLI_OK;
    case FB_OPT_INT_LIST: {
        fb_int_list l;
        if (fb_parse_int_list(val, &l, o->all_value, why, sizeof why) != 0) {
            fprintf(stderr, "%s: --%s: %s\n", prog, o->name, why);
            return FB_CLI_ERROR;
        }
        for (int i = 0; i < l.n; i++)
            if (!in_range(o, l.v[i])) {
                fprintf(stderr, "%s: --%s: %d in '%s' is out of range (%.0f..%.0f)\n", prog, o->name, l.v[i], val,
                        o->min, o->max);
                return FB_CLI_ERROR;
            }
        *(fb_int_list *)o->value = l;
        return FB_CLI_OK;
    }
    }
    return FB_CLI_ERROR;
}

fb_cli_result fb_cli_parse(const char *prog, const fb_option *opts, int nopts, int argc, char **argv, int first) {
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return FB_CLI_HELP;
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            fprintf(stderr, "%s: unexpected argument '%s' (options are --name value; see %s --help)\n", prog, arg, prog);
            return FB_CLI_ERROR;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const fb_option *o = find_option(opts, nopts, name, len);
        if (!o) {
            fprintf(stderr, "%s: unknown option '--%.*s' (see %s --help)\n", prog, (int)len, name, prog);
            return FB_CLI_ERROR;
        }
        const char *val;
        if (o->type == FB_OPT_FLAG) {
            if (eq) { fprintf(stderr, "%s: --%s takes no value (got '%s')\n", prog, o->name, eq + 1); return FB_CLI_ERROR; }
            val = "";
        } else if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: --%s needs a value (%s)\n", prog, o->name, o->metavar ? o->metavar : "VALUE");
                return FB_CLI_ERROR;
            }
            val = argv[++i];
        }
        if (set_value(prog, o, val) != FB_CLI_OK) return FB_CLI_ERROR;
    }
    return FB_CLI_OK;
}

void fb_cli_print_options(FILE *f, const fb_option *opts, int nopts) {
    for (int i = 0; i < nopts; i++) {
        const fb_option *o = &opts[i];
        char head[96], def[160] = "";
        if (o->type == FB_OPT_FLAG) snprintf(head, sizeof head, "--%s", o->name);
        else snprintf(head, sizeof head, "--%s %s", o->name, o->metavar ? o->metavar : "VALUE");
        switch (o->type) {
        case FB_OPT_FLAG: break;
        case FB_OPT_INT: snprintf(def, sizeof def, "%d", *(int *)o->value); break;
        case FB_OPT_DOUBLE:   // NaN: "not given", the help text says what then
            if (!isnan(*(double *)o->value)) snprintf(def, sizeof def, "%g", *(double *)o->value);
            break;
        case FB_OPT_STRING: {
            const char *s = *(const char **)o->value;
            if (s) snprintf(def, sizeof def, "%s", s);
            break;
        }
        case FB_OPT_INT_LIST: fb_int_list_format(o->value, def, sizeof def); break;
        }
        fprintf(f, "  %-22s ", head);
        // Indent continuation lines of the help text under its first line.
        for (const char *p = o->help; *p; p++) {
            fputc(*p, f);
            if (*p == '\n') fprintf(f, "  %-22s ", "");
        }
        if (def[0]) fprintf(f, " [default: %s]", def);
        fputc('\n', f);
    }
    fprintf(f, "  %-22s %s\n", "--help, -h", "print this help and exit");
}

static char command_line[4096];

void fb_cli_set_command_line(int argc, char **argv) {
    size_t used = 0;
    command_line[0] = '\0';
    for (int i = 0; i < argc && used < sizeof command_line; i++) {
        // Quote arguments a shell would split, so the line can be pasted back.
        int quote = argv[i][0] == '\0' || strpbrk(argv[i], " \t\"'$\\*?;&|<>()") != NULL;
        used += (size_t)snprintf(command_line + used, sizeof command_line - used, quote ? "%s'%s'" : "%s%s",
                                 i ? " " : "", argv[i]);
    }
}

const char *fb_cli_command_line(void) { return command_line; }

// ---- Timing ----

double fb_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

fb_stats fb_stats_of(const double *x, int n) {
    fb_stats s = { 0 };
    s.n = n;
    if (n <= 0) { s.median = s.min = s.max = s.mean = NAN; return s; }
    double stack[256], *y = n <= 256 ? stack : malloc((size_t)n * sizeof *y);
    if (!y) { s.median = s.min = s.max = s.mean = NAN; return s; }
    memcpy(y, x, (size_t)n * sizeof *y);
    qsort(y, (size_t)n, sizeof *y, cmp_double);
    s.min = y[0];
    s.max = y[n - 1];
    s.median = n % 2 ? y[n / 2] : 0.5 * (y[n / 2 - 1] + y[n / 2]);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += y[i];
    s.mean = sum / n;
    if (y != stack) free(y);
    return s;
}

// ---- Results ----

void fb_iso_time(char *buf, size_t size) {
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%S%z", &tm);
}

int fb_results_path(char *buf, size_t size, const char *kind) {
    if (mkdir("results", 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "fusebench: cannot create results/: %s\n", strerror(errno));
        return -1;
    }
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    for (int k = 1; k < 1000; k++) {
        int n = k == 1 ? snprintf(buf, size, "results/%s-%s.h5", kind, stamp)
                       : snprintf(buf, size, "results/%s-%s-%d.h5", kind, stamp, k);
        if (n < 0 || (size_t)n >= size) { fprintf(stderr, "fusebench: results path too long\n"); return -1; }
        if (access(buf, F_OK) != 0) return 0;
    }
    fprintf(stderr, "fusebench: no free results/%s-%s-N.h5 name\n", kind, stamp);
    return -1;
}
