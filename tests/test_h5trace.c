// io/h5trace: live HDF5 traces. A finished file read back with the HDF5 C API (shapes, values,
// units, dimension scales, chunking, `complete`); appends that leave the file byte-identical until
// a flush; refusal to overwrite; bad arguments; a failed run (`error`, complete = 0); a child
// process killed with SIGKILL after 0, 1 and hundreds of flushes (exactly the flushed rows are
// there); tests/h5trace_check.py on a finished and a killed file (h5py, h5dump -H, xarray via
// h5netcdf); and the time of one flush of 100 series x 10 rows x 200 labels (printed).
#include <errno.h>
#include <ftw.h>
#include <hdf5_hl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "testutil.h"
#include "../io/h5trace.h"

#define SCHEMA "fusebench.test_trace"
#define NLAB_MAX 256   // labels a test series may have
#define NVAR_MAX 8     // variables a test series may have

static char tmpdir[256];

static void tmp_path(char *buf, size_t size, const char *name) { snprintf(buf, size, "%s/%s", tmpdir, name); }

// ---- Test series: what is written, and the value every cell must hold ----

typedef struct {
    int sid;                    // seeds the values (cell_value)
    const char *name;           // group path from the root
    const char *label_dim;      // NULL when nlabels == 0
    const char *const *labels;  // (nlabels)
    int nlabels;
    const fb_h5_var *vars;      // (nvars)
    int nvars;
    size_t chunk_steps;
} series_spec;

static const char *const CLASSES[] = { "cat", "dog", "bird" };
static const fb_h5_var CLASS_VARS[] = {
    { "loss", "1", "cross-entropy of the samples of each class", 1 },
    { "lr", "1", NULL, 0 },   // a per-step variable inside a labelled series
    { "accuracy", "1", "fraction classified right", 1 },
};
static const fb_h5_var TIMING_VARS[] = {
    { "forward", "ms", "forward pass time", 0 },
    { "backward", "ms", NULL, 0 },
};
static const series_spec PER_CLASS = { 0, "train/per_class", "class", CLASSES, 3, CLASS_VARS, 3, 4 };
static const series_spec TIMING = { 1, "train/timing", NULL, NULL, 0, TIMING_VARS, 2, 0 };

// Row i's step (not its index, so a mix-up of the two shows).
static int64_t step_of(size_t i) { return 10 * (int64_t)i + 3; }

// Exact in float64 and distinct for every series, variable, step and label.
static double cell_value(int sid, int var, int64_t step, int label) {
    return sid * 1e7 + (double)step * 1000.0 + var * 100.0 + label + 0.25;
}

static size_t var_width(const series_spec *sp, int v) { return sp->vars[v].per_label ? (size_t)sp->nlabels : 1; }

static fb_h5_series *create_series(fb_h5 *h, hid_t parent, const char *name, const series_spec *sp) {
    fb_h5_series *s = NULL;
    fb_status st = fb_h5_series_create(h, parent, name, sp->label_dim, sp->labels, sp->nlabels, sp->vars, sp->nvars,
                                       sp->chunk_steps, &s);
    if (st != FB_OK) fail_msg("creating series %s: %s", sp->name, fb_last_error());
    return s;
}

// Appends rows [from, to) of sp to s.
static fb_status append_rows(fb_h5_series *s, const series_spec *sp, size_t from, size_t to) {
    static double buf[NVAR_MAX][NLAB_MAX];
    const double *row[NVAR_MAX];
    for (size_t i = from; i < to; i++) {
        for (int v = 0; v < sp->nvars; v++) {
            for (size_t l = 0; l < var_width(sp, v); l++) buf[v][l] = cell_value(sp->sid, v, step_of(i), (int)l);
            row[v] = buf[v];
        }
        fb_status st = fb_h5_series_append(s, step_of(i), row);
        if (st != FB_OK) return st;
    }
    return FB_OK;
}

// ---- Reading back with the C API ----

// A fixture view (testutil's readers) of group `name` of an open file.
static fixture view_of(hid_t file, const char *path, const char *name) {
    fixture f = { file, H5Gopen2(file, name, H5P_DEFAULT), "" };
    if (f.group < 0) fail_msg("%s has no group '%s'", path, name);
    snprintf(f.label, sizeof f.label, "%.90s:%.90s", path, name);   // labels name the file in messages
    return f;
}

static hid_t open_live_result(const char *path) {
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) fail_msg("cannot open %s read-only", path);
    return file;
}

// Root attributes: schema tag, complete flag and (when `error` is not NULL) the error message;
// error == NULL: the file must have no `error` attribute.
static void check_root(hid_t file, const char *path, int complete, const char *error) {
    fixture root = { file, file, "" };
    snprintf(root.label, sizeof root.label, "%.180s", path);
    char buf[1024];
    fixture_string_attr(&root, "schema", buf, sizeof buf);
    assert_string_equal(buf, SCHEMA);
    assert_int_equal(fixture_int(&root, "schema_version"), 1);
    assert_int_equal(fixture_int(&root, "complete"), complete);
    if (!error) {
        assert_false(fixture_has_attr(&root, "error"));
        return;
    }
    fixture_string_attr(&root, "error", buf, sizeof buf);
    if (!strstr(buf, error)) fail_msg("%s: error attribute '%s' lacks '%s'", path, buf, error);
}

static void check_dims(hid_t d, int rank, hsize_t rows, hsize_t cols) {
    hsize_t dims[2], maxdims[2];
    hid_t space = H5Dget_space(d);
    assert_int_equal(H5Sget_simple_extent_dims(space, dims, maxdims), rank);
    H5Sclose(space);
    assert_int_equal(dims[0], rows);
    assert_true(maxdims[0] == H5S_UNLIMITED);
    if (rank == 2) assert_true(dims[1] == cols && maxdims[1] == cols);
}

// The layout of h5trace.h for series sp with `rows` rows: shapes, steps, labels, values, units,
// chunks and filters, and dimension scales attached to every variable.
static void check_series(hid_t file, const char *path, const series_spec *sp, size_t rows) {
    fixture g = view_of(file, path, sp->name);
    char buf[256];
    hid_t step = H5Dopen2(g.group, "step", H5P_DEFAULT), labels = H5I_INVALID_HID;
    assert_true(step >= 0);
    assert_true(H5DSis_scale(step) > 0);
    assert_true(H5DSget_scale_name(step, buf, sizeof buf) > 0);
    assert_string_equal(buf, "step");
    check_dims(step, 1, rows, 1);
    size_t n;
    double *steps = fixture_doubles(&g, "step", &n);
    assert_int_equal(n, rows);
    for (size_t i = 0; i < rows; i++) assert_true(steps[i] == (double)step_of(i));
    free(steps);
    if (sp->nlabels) {
        labels = H5Dopen2(g.group, sp->label_dim, H5P_DEFAULT);
        assert_true(labels >= 0 && H5DSis_scale(labels) > 0);
        assert_true(H5DSget_scale_name(labels, buf, sizeof buf) > 0);
        assert_string_equal(buf, sp->label_dim);
        char *got[NLAB_MAX];
        hid_t type = H5Dget_type(labels), space = H5Dget_space(labels);
        assert_true(H5Tis_variable_str(type) > 0 && H5Tget_cset(type) == H5T_CSET_UTF8);
        assert_int_equal(H5Sget_simple_extent_npoints(space), sp->nlabels);
        assert_true(H5Dread(labels, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, got) >= 0);
        for (int l = 0; l < sp->nlabels; l++) assert_string_equal(got[l], sp->labels[l]);
        H5Dvlen_reclaim(type, space, H5P_DEFAULT, got);
        H5Tclose(type);
        H5Sclose(space);
    }
    for (int v = 0; v < sp->nvars; v++) {
        const fb_h5_var *var = &sp->vars[v];
        hid_t d = H5Dopen2(g.group, var->name, H5P_DEFAULT);
        if (d < 0) fail_msg("%s: no variable %s/%s", path, sp->name, var->name);
        check_dims(d, var->per_label ? 2 : 1, rows, (hsize_t)sp->nlabels);
        assert_true(H5DSis_attached(d, step, 0) > 0);
        if (var->per_label) assert_true(H5DSis_attached(d, labels, 1) > 0);
        hid_t dcpl = H5Dget_create_plist(d);
        hsize_t chunk[2];
        assert_int_equal(H5Pget_layout(dcpl), H5D_CHUNKED);
        H5Pget_chunk(dcpl, 2, chunk);
        assert_int_equal(chunk[0], sp->chunk_steps ? sp->chunk_steps : FB_H5_SERIES_CHUNK_STEPS);
        assert_int_equal(H5Pget_nfilters(dcpl), 2);   // shuffle + deflate
        H5Pclose(dcpl);
        fixture vf = { file, d, "" };
        snprintf(vf.label, sizeof vf.label, "%.90s:%.60s/%.30s", path, sp->name, var->name);
        fixture_string_attr(&vf, "units", buf, sizeof buf);
        assert_string_equal(buf, var->units);
        assert_int_equal(fixture_has_attr(&vf, "description"), var->description != NULL);
        if (var->description) {
            fixture_string_attr(&vf, "description", buf, sizeof buf);
            assert_string_equal(buf, var->description);
        }
        H5Dclose(d);
        double *got = fixture_doubles(&g, var->name, &n);
        size_t w = var_width(sp, v);
        assert_int_equal(n, rows * w);
        for (size_t i = 0; i < rows; i++)
            for (size_t l = 0; l < w; l++)
                if (got[i * w + l] != cell_value(sp->sid, v, step_of(i), (int)l))
                    fail_msg("%s: %s/%s[%zu, %zu] = %.17g, wrote %.17g", path, sp->name, var->name, i, l,
                             got[i * w + l], cell_value(sp->sid, v, step_of(i), (int)l));
        free(got);
    }
    if (labels >= 0) H5Dclose(labels);
    H5Dclose(step);
    H5Gclose(g.group);
}

// ---- A finished trace ----

// Both series written in flushes of `per_flush` rows, `rows` rows each; finished with `ok`.
static void write_finished(const char *path, size_t rows, size_t per_flush, int ok, const char *message) {
    fb_h5 h;
    assert_int_equal(fb_h5_live_create(&h, path, SCHEMA, 1), FB_OK);
    hid_t train = fb_h5_group(&h, h.file, "train");   // a parent group; the other series' name has a '/'
    assert_true(train >= 0);
    fb_h5_series *a = create_series(&h, train, "per_class", &PER_CLASS);
    fb_h5_series *b = create_series(&h, h.file, TIMING.name, &TIMING);
    H5Gclose(train);
    for (size_t r = 0; r < rows; r += per_flush) {
        size_t end = r + per_flush < rows ? r + per_flush : rows;
        assert_int_equal(append_rows(a, &PER_CLASS, r, end), FB_OK);
        assert_int_equal(append_rows(b, &TIMING, r, end), FB_OK);
        assert_int_equal(fb_h5_series_rows(a), end);
        if (end < rows) assert_int_equal(fb_h5_live_flush(&h), FB_OK);   // the last rows: flushed by finish
    }
    assert_int_equal(fb_h5_attr_string(&h, h.file, "host", "test"), FB_OK);   // attributes after flushes
    assert_int_equal(fb_h5_live_finish(&h, ok, message), FB_OK);
    assert_true(h.live == NULL && h.file < 0);
}

static void test_roundtrip(void **state) {
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "roundtrip.h5");
    write_finished(path, 9, 5, 1, NULL);
    hid_t file = open_live_result(path);
    check_root(file, path, 1, NULL);
    check_series(file, path, &PER_CLASS, 9);
    check_series(file, path, &TIMING, 9);
    H5Fclose(file);
}

// Reads a whole file (malloc'd).
static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot read %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    char *buf = malloc(*n ? *n : 1);
    assert_true(buf && fread(buf, 1, *n, f) == *n);
    fclose(f);
    return buf;
}

// Appends touch nothing on disk: the file is byte-identical before and after 100 appends (more
// than one buffer growth), and holds them once flushed.
static void test_append_is_memory_only(void **state) {
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "memory_only.h5");
    fb_h5 h;
    assert_int_equal(fb_h5_live_create(&h, path, SCHEMA, 1), FB_OK);
    fb_h5_series *s = create_series(&h, h.file, PER_CLASS.name, &PER_CLASS);
    assert_int_equal(append_rows(s, &PER_CLASS, 0, 7), FB_OK);
    assert_int_equal(fb_h5_live_flush(&h), FB_OK);
    size_t n0, n1;
    char *before = slurp(path, &n0);
    assert_int_equal(append_rows(s, &PER_CLASS, 7, 107), FB_OK);
    assert_int_equal(fb_h5_series_rows(s), 107);
    char *after = slurp(path, &n1);
    assert_true(n0 == n1 && memcmp(before, after, n0) == 0);
    free(before);
    free(after);
    assert_int_equal(fb_h5_live_finish(&h, 1, NULL), FB_OK);
    hid_t file = open_live_result(path);
    check_series(file, path, &PER_CLASS, 107);
    H5Fclose(file);
}

static void test_refuses_existing(void **state) {
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "existing.h5");
    write_finished(path, 3, 3, 1, NULL);
    fb_h5 h;
    assert_int_equal(fb_h5_live_create(&h, path, SCHEMA, 1), FB_ERR_IO);
    printf("second create: %s\n", fb_last_error());
    assert_non_null(strstr(fb_last_error(), "exists already"));
    assert_non_null(strstr(fb_last_error(), path));
    assert_true(h.live == NULL);
    hid_t file = open_live_result(path);   // the first result is untouched
    check_root(file, path, 1, NULL);
    check_series(file, path, &TIMING, 3);
    H5Fclose(file);
    tmp_path(path, sizeof path, "no/such/folder.h5");
    assert_int_equal(fb_h5_live_create(&h, path, SCHEMA, 1), FB_ERR_IO);
    assert_non_null(strstr(fb_last_error(), "cannot create live HDF5 file"));
}

// ---- Bad arguments ----

typedef struct {
    const char *what, *expect;   // the case; a piece of the message it must give
    const char *name, *label_dim;
    const char *const *labels;
    int nlabels;
    const fb_h5_var *vars;
    int nvars;
    int bad_parent;
} bad_series;

static const char *const WITH_NULL[] = { "a", NULL };
static const fb_h5_var V_PER_LABEL[] = { { "x", "1", NULL, 1 } };
static const fb_h5_var V_STEP[] = { { "step", "1", NULL, 0 } };
static const fb_h5_var V_LABEL_DIM[] = { { "class", "1", NULL, 0 } };
static const fb_h5_var V_TWICE[] = { { "x", "1", NULL, 0 }, { "x", "ms", NULL, 0 } };
static const fb_h5_var V_SLASH[] = { { "a/b", "1", NULL, 0 } };
static const fb_h5_var V_NULL_NAME[] = { { NULL, "1", NULL, 0 } };

static const bad_series BAD_SERIES[] = {
    { "no name", "no series name", NULL, NULL, NULL, 0, V_PER_LABEL, 1, 0 },
    { "empty name", "no series name", "", NULL, NULL, 0, V_PER_LABEL, 1, 0 },
    { "bad parent", "parent group id", "s", NULL, NULL, 0, TIMING_VARS, 2, 1 },
    { "no variables", "at least 1", "s", NULL, NULL, 0, NULL, 1, 0 },
    { "zero variables", "at least 1", "s", NULL, NULL, 0, V_PER_LABEL, 0, 0 },
    { "negative nlabels", "negative", "s", "class", CLASSES, -1, V_PER_LABEL, 1, 0 },
    { "labels missing", "none given", "s", "class", NULL, 3, V_PER_LABEL, 1, 0 },
    { "label dim missing", "label dimension name", "s", NULL, CLASSES, 3, V_PER_LABEL, 1, 0 },
    { "label dim 'step'", "label dimension name", "s", "step", CLASSES, 3, V_PER_LABEL, 1, 0 },
    { "a NULL label", "label 1 of 2 is NULL", "s", "class", WITH_NULL, 2, V_PER_LABEL, 1, 0 },
    { "per label, no labels", "has no labels", "s", NULL, NULL, 0, V_PER_LABEL, 1, 0 },
    { "variable 'step'", "name of a dimension", "s", NULL, NULL, 0, V_STEP, 1, 0 },
    { "variable named as the label dim", "name of a dimension", "s", "class", CLASSES, 3, V_LABEL_DIM, 1, 0 },
    { "variable given twice", "given twice", "s", NULL, NULL, 0, V_TWICE, 2, 0 },
    { "'/' in a variable name", "contains '/'", "s", NULL, NULL, 0, V_SLASH, 1, 0 },
    { "NULL variable name", "contains '/'", "s", NULL, NULL, 0, V_NULL_NAME, 1, 0 },
};

static void expect_error(fb_status got, fb_status want, const char *what, const char *expect) {
    if (got != want)
        fail_msg("%s: status %s, expected %s (%s)", what, fb_status_name(got), fb_status_name(want), fb_last_error());
    if (!strstr(fb_last_error(), expect)) fail_msg("%s: message '%s' lacks '%s'", what, fb_last_error(), expect);
}

static void test_bad_arguments(void **state) {
    (void)state;
    char path[512];
    fb_h5 h;
    expect_error(fb_h5_live_create(NULL, "x.h5", SCHEMA, 1), FB_ERR_CONFIG, "create(NULL)", "no fb_h5");
    expect_error(fb_h5_live_create(&h, NULL, SCHEMA, 1), FB_ERR_CONFIG, "create(path NULL)", "no path");
    expect_error(fb_h5_live_create(&h, "x.h5", NULL, 1), FB_ERR_CONFIG, "create(schema NULL)", "no schema");
    expect_error(fb_h5_live_create(&h, "", SCHEMA, 1), FB_ERR_IO, "create(\"\")", "empty or too long");

    tmp_path(path, sizeof path, "bad_arguments.h5");
    assert_int_equal(fb_h5_live_create(&h, path, SCHEMA, 1), FB_OK);
    fb_h5_series *s = (fb_h5_series *)&h;   // any non-NULL value: a failed create must reset it to NULL
    for (size_t i = 0; i < sizeof BAD_SERIES / sizeof *BAD_SERIES; i++) {
        const bad_series *c = &BAD_SERIES[i];
        fb_status st = fb_h5_series_create(&h, c->bad_parent ? H5I_INVALID_HID : h.file, c->name, c->label_dim,
                                           c->labels, c->nlabels, c->vars, c->nvars, 0, &s);
        expect_error(st, FB_ERR_CONFIG, c->what, c->expect);
        assert_null(s);
    }
    expect_error(fb_h5_series_create(&h, h.file, "s", NULL, NULL, 0, V_STEP, 1, 0, NULL), FB_ERR_CONFIG, "out NULL",
                 "out is NULL");
    s = create_series(&h, h.file, TIMING.name, &TIMING);
    fb_h5_series *dup = NULL;
    expect_error(fb_h5_series_create(&h, h.file, TIMING.name, NULL, NULL, 0, TIMING_VARS, 2, 0, &dup), FB_ERR_CONFIG,
                 "duplicate series", "exists already");

    // Appends: nothing, a variable without values, steps that do not increase.
    double x = 1.0;
    const double *one_missing[2] = { &x, NULL }, *both[2] = { &x, &x };
    expect_error(fb_h5_series_append(NULL, 0, both), FB_ERR_CONFIG, "append(NULL)", "no series");
    expect_error(fb_h5_series_append(s, 0, NULL), FB_ERR_CONFIG, "append(values NULL)", "no values given");
    expect_error(fb_h5_series_append(s, 0, one_missing), FB_ERR_CONFIG, "append(values[1] NULL)", "'backward'");
    assert_int_equal(fb_h5_series_append(s, 5, both), FB_OK);
    expect_error(fb_h5_series_append(s, 5, both), FB_ERR_CONFIG, "same step", "must increase");
    expect_error(fb_h5_series_append(s, 4, both), FB_ERR_CONFIG, "earlier step", "must increase");
    assert_int_equal(fb_h5_series_rows(s), 1);

    // The registry: FB_H5_LIVE_MAX_SERIES in all, then a clear refusal.
    for (int i = 1; i < FB_H5_LIVE_MAX_SERIES; i++) {
        char name[64];
        snprintf(name, sizeof name, "many/s%03d", i);
        assert_int_equal(fb_h5_series_create(&h, h.file, name, NULL, NULL, 0, TIMING_VARS, 1, 0, &dup), FB_OK);
    }
    expect_error(fb_h5_series_create(&h, h.file, "one_too_many", NULL, NULL, 0, TIMING_VARS, 1, 0, &dup),
                 FB_ERR_CONFIG, "too many series", "256 series");

    // The live calls on a file that is not live.
    fb_h5 plain;
    tmp_path(path, sizeof path, "plain.h5");
    assert_int_equal(fb_h5_create(&plain, path), FB_OK);
    expect_error(fb_h5_live_flush(&plain), FB_ERR_CONFIG, "flush(plain file)", "not an open live file");
    expect_error(fb_h5_series_create(&plain, plain.file, "s", NULL, NULL, 0, TIMING_VARS, 1, 0, &dup), FB_ERR_CONFIG,
                 "series_create(plain file)", "not an open live file");
    expect_error(fb_h5_live_finish(&plain, 1, NULL), FB_ERR_CONFIG, "finish(plain file)", "not an open live file");
    expect_error(fb_h5_live_flush(NULL), FB_ERR_CONFIG, "flush(NULL)", "no file given");
    fb_h5_discard(&plain);

    // Argument errors leave the file sound: it finishes complete.
    assert_false(h.failed);
    assert_int_equal(fb_h5_live_finish(&h, 1, NULL), FB_OK);
    expect_error(fb_h5_live_flush(&h), FB_ERR_CONFIG, "flush after finish", "not an open live file");
    tmp_path(path, sizeof path, "bad_arguments.h5");
    hid_t file = open_live_result(path);
    check_root(file, path, 1, NULL);
    H5Fclose(file);
}

// ---- Failed runs ----

// ok = 0: everything appended is kept (the buffered rows too), complete = 0, error = message.
static void test_failed_run(void **state) {
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "failed_run.h5");
    write_finished(path, 5, 3, 0, "diverged: loss is NaN at step 43");
    hid_t file = open_live_result(path);
    check_root(file, path, 0, "diverged: loss is NaN at step 43");
    check_series(file, path, &PER_CLASS, 5);
    check_series(file, path, &TIMING, 5);
    H5Fclose(file);
}

// A write that failed (here an attribute on an invalid id) keeps ok = 1 from marking the file
// complete; finish says so.
static void test_failed_write(void **state) {
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "failed_write.h5");
    fb_h5 h;
    assert_int_equal(fb_h5_live_create(&h, path, SCHEMA, 1), FB_OK);
    fb_h5_series *s = create_series(&h, h.file, TIMING.name, &TIMING);
    assert_int_equal(append_rows(s, &TIMING, 0, 2), FB_OK);
    assert_int_equal(fb_h5_attr_string(&h, H5I_INVALID_HID, "oops", "x"), FB_ERR_IO);
    expect_error(fb_h5_live_finish(&h, 1, NULL), FB_ERR_IO, "finish after a failed write", "earlier write failed");
    hid_t file = open_live_result(path);
    check_root(file, path, 0, "earlier write");
    check_series(file, path, &TIMING, 2);
    H5Fclose(file);
}

// ---- Killed runs ----

typedef struct {
    const char *file;
    int cycles;             // append + flush cycles before the kill
    int rows_per_flush;     // rows per cycle: rows_per_flush + (vary ? cycle % 3 : 0)
    int vary;
    int late_cycle;         // TIMING is created after this many cycles (0: with PER_CLASS)
    int unflushed;          // rows appended after the last flush, lost with the process
} kill_plan;

static size_t plan_rows(const kill_plan *p, int from_cycle) {
    size_t rows = 0;
    for (int c = from_cycle; c < p->cycles; c++) rows += (size_t)(p->rows_per_flush + (p->vary ? c % 3 : 0));
    return rows;
}

static void child_fail(const char *what) {
    fprintf(stderr, "killed-run child: %s failed: %s\n", what, fb_last_error());
    _exit(2);
}

// The child: writes the plan, then dies by SIGKILL with rows in its buffers. No cmocka here.
static void kill_child(const char *path, const kill_plan *p) {
    fb_h5 h;
    fb_h5_series *a = NULL, *b = NULL;
    size_t ra = 0, rb = 0;   // rows appended to each
    if (fb_h5_live_create(&h, path, SCHEMA, 1) != FB_OK) child_fail("create");
    if (fb_h5_series_create(&h, h.file, PER_CLASS.name, PER_CLASS.label_dim, PER_CLASS.labels, PER_CLASS.nlabels,
                            PER_CLASS.vars, PER_CLASS.nvars, PER_CLASS.chunk_steps, &a) != FB_OK)
        child_fail("series");
    for (int c = 0; c <= p->cycles; c++) {
        if (c == p->late_cycle &&
            fb_h5_series_create(&h, h.file, TIMING.name, NULL, NULL, 0, TIMING.vars, TIMING.nvars, 2, &b) != FB_OK)
            child_fail("late series");
        size_t n = c < p->cycles ? (size_t)(p->rows_per_flush + (p->vary ? c % 3 : 0)) : (size_t)p->unflushed;
        if (append_rows(a, &PER_CLASS, ra, ra + n) != FB_OK || (b && append_rows(b, &TIMING, rb, rb + n) != FB_OK))
            child_fail("append");
        ra += n;
        rb += b ? n : 0;
        if (c < p->cycles && fb_h5_live_flush(&h) != FB_OK) child_fail("flush");
    }
    raise(SIGKILL);
    _exit(3);   // not reached
}

// Runs the plan in a child killed with SIGKILL; returns once it is dead.
static void run_killed(const char *path, const kill_plan *p) {
    fflush(NULL);   // the child must not repeat our buffered output
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) kill_child(path, p);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("child writing %s did not die by SIGKILL (status 0x%x; its message is above)", path, status);
}

static void check_killed(const char *path, const kill_plan *p) {
    hid_t file = open_live_result(path);
    check_root(file, path, 0, NULL);
    check_series(file, path, &PER_CLASS, plan_rows(p, 0));
    if (p->late_cycle <= p->cycles) {
        series_spec timing = TIMING;
        timing.chunk_steps = 2;
        check_series(file, path, &timing, plan_rows(p, p->late_cycle));
    }
    H5Fclose(file);
    printf("killed after %d flushes: %zu + %zu rows on disk, %d unflushed rows gone, complete = 0\n", p->cycles,
           plan_rows(p, 0), p->late_cycle <= p->cycles ? plan_rows(p, p->late_cycle) : 0, p->unflushed);
}

static const kill_plan KILL_PLANS[] = {
    { "killed_at_start.h5", 0, 0, 0, 0, 5 },      // only created (and the first series), nothing flushed
    { "killed_after_one.h5", 1, 3, 0, 0, 4 },     // 3 rows flushed, 4 in memory
    // 600 rows in 300 flushes of 1-3 rows (chunks of 4: partial chunks rewritten), a series created after 100
    { "killed_after_many.h5", 300, 1, 1, 100, 5 },
};

static void test_killed(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof KILL_PLANS / sizeof *KILL_PLANS; i++) {
        char path[512];
        tmp_path(path, sizeof path, KILL_PLANS[i].file);
        run_killed(path, &KILL_PLANS[i]);
        check_killed(path, &KILL_PLANS[i]);
    }
}

// ---- The Python readers: h5py, h5dump -H, xarray (h5netcdf) ----

// "GROUP:ROWS[:LABEL_DIM:L1,L2,...]", the series argument of h5trace_check.py.
static void series_arg(char *buf, size_t size, const series_spec *sp, size_t rows) {
    size_t n = (size_t)snprintf(buf, size, " '%s:%zu", sp->name, rows);
    if (sp->nlabels) n += (size_t)snprintf(buf + n, size - n, ":%s:", sp->label_dim);
    for (int l = 0; l < sp->nlabels; l++) n += (size_t)snprintf(buf + n, size - n, "%s%s", l ? "," : "", sp->labels[l]);
    snprintf(buf + n, size - n, "'");
}

// Runs the check on one file; skips the test (cmocka SKIPPED, with the script's reason) when
// python3, xarray or h5netcdf is missing.
static void python_check(const char *path, int complete, size_t rows_a, size_t rows_b) {
    char cmd[4096], a[1024], b[256];
    series_arg(a, sizeof a, &PER_CLASS, rows_a);
    series_arg(b, sizeof b, &TIMING, rows_b);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/h5trace_check.py '%s' %d%s%s", FB_SOURCE_DIR, path, complete,
             a, b);
    printf("$ %s\n", cmd);
    fflush(NULL);
    int rc = system(cmd);
    int code = rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    if (code == 77) skip();   // the script printed which module is missing and how to install it
    if (code != 0) fail_msg("h5trace_check.py on %s failed (exit %d, its output is above)", path, code);
}

static void test_python_readers(void **state) {
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0) {
        printf("SKIP: /usr/bin/python3 is missing (make deps installs python3, python3-xarray, python3-h5netcdf)\n");
        skip();
    }
    char path[512];
    tmp_path(path, sizeof path, "python_finished.h5");
    write_finished(path, 11, 4, 1, NULL);
    python_check(path, 1, 11, 11);
    // A killed file: 12 flushes of 2 rows, the second series created after 4 of them, 3 rows lost.
    const kill_plan p = { "python_killed.h5", 12, 2, 0, 4, 3 };
    tmp_path(path, sizeof path, p.file);
    run_killed(path, &p);
    python_check(path, 0, plan_rows(&p, 0), plan_rows(&p, p.late_cycle));
}

// ---- Flush cost ----

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

// 100 series of one per-label (200 labels) and one per-step variable, chunks of chunk_steps
// rows; 5 cycles of 10 rows per series and one flush each. The flush times are printed, not
// asserted: a flush recompresses the partly filled chunk of every variable, so its cost grows
// with the rows in that chunk (chunk_steps = rows per flush writes whole chunks only).
static void flush_cost(size_t chunk_steps) {
    enum { SERIES = 100, LABELS = 200, ROWS = 10, CYCLES = 5 };
    static char names[LABELS][16];
    static const char *labels[LABELS];
    for (int l = 0; l < LABELS; l++) {
        snprintf(names[l], sizeof names[l], "asv%03d", l);
        labels[l] = names[l];
    }
    static const fb_h5_var vars[] = { { "abundance_error", "1", NULL, 1 }, { "loss", "1", NULL, 0 } };
    series_spec specs[SERIES];
    fb_h5_series *s[SERIES];
    char path[512], gname[SERIES][32];
    snprintf(gname[0], sizeof gname[0], "flush_cost_%zu.h5", chunk_steps);
    tmp_path(path, sizeof path, gname[0]);
    fb_h5 h;
    assert_int_equal(fb_h5_live_create(&h, path, SCHEMA, 1), FB_OK);
    for (int i = 0; i < SERIES; i++) {
        snprintf(gname[i], sizeof gname[i], "series/s%03d", i);
        specs[i] = (series_spec){ i, gname[i], "asv", labels, LABELS, vars, 2, chunk_steps };
        s[i] = create_series(&h, h.file, gname[i], &specs[i]);
    }
    double ms[CYCLES];
    for (int c = 0; c < CYCLES; c++) {
        for (int i = 0; i < SERIES; i++)
            assert_int_equal(append_rows(s[i], &specs[i], (size_t)c * ROWS, (size_t)(c + 1) * ROWS), FB_OK);
        double t0 = now_ms();
        assert_int_equal(fb_h5_live_flush(&h), FB_OK);
        ms[c] = now_ms() - t0;
    }
    assert_int_equal(fb_h5_live_finish(&h, 1, NULL), FB_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    printf("h5trace flush of %d series x %d rows x %d labels (+1 per-step variable), chunk_steps %zu: ms per flush",
           SERIES, ROWS, LABELS, chunk_steps);
    for (int c = 0; c < CYCLES; c++) printf(" %.1f", ms[c]);
    printf("; file %.2f MB after %d rows\n", sb.st_size / 1e6, CYCLES * ROWS);
    hid_t file = open_live_result(path);
    check_series(file, path, &specs[SERIES - 1], CYCLES * ROWS);
    H5Fclose(file);
}

static void test_flush_cost(void **state) {
    (void)state;
    flush_cost(FB_H5_SERIES_CHUNK_STEPS);
    flush_cost(10);
}

// ---- Set-up ----

static int make_tmpdir(void **state) {
    (void)state;
    return tmpdir_make(tmpdir, sizeof tmpdir, "h5trace");
}

static int remove_tmpdir(void **state) {
    (void)state;
    return tmpdir_remove(tmpdir);
}

int main(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);   // failures are tested on purpose; our messages say what failed
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_append_is_memory_only),
        cmocka_unit_test(test_refuses_existing),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_failed_run),
        cmocka_unit_test(test_failed_write),
        cmocka_unit_test(test_killed),
        cmocka_unit_test(test_python_readers),
        cmocka_unit_test(test_flush_cost),
    };
    return cmocka_run_group_tests_name("h5trace", tests, make_tmpdir, remove_tmpdir);
}
