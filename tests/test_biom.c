// datasets/biom: BIOM 2.1 write + read round trips (bit for bit, with an all-zero observation, an
// empty sample, empty tables, ids longer than any message), reading a subset of samples in any
// order, the CSR part agreeing with the CSC part, python3-biom-format both ways (its to_hdf5 files
// with variable-length, fixed-length and out-of-order entries read by us; our files loaded by its
// load_table and passed by its validator), every kind of bad input with a message naming the file
// and the problem, and the time to write, read (all samples, a rank's quarter) and rarefy a
// 10,000-sample x 20,000-ASV table (printed).
#include <hdf5.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "testutil.h"
#include "../datasets/biom.h"
#include "../datasets/rarefy.h"

static char tmpdir[256];

static void tmp_path(char *buf, size_t size, const char *name) { snprintf(buf, size, "%s/%s", tmpdir, name); }

static char *xstrdup(const char *s) {
    char *d = strdup(s);
    if (!d) fail_msg("out of memory");
    return d;
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) fail_msg("out of memory for %zu x %zu bytes", n, size);
    return p;
}

// A table from a dense (n_obs, n_samples) row-major matrix; ids copied.
static fb_table from_dense(int n_obs, int n_samples, const double *dense, const char *const *obs_ids,
                           const char *const *sample_ids) {
    fb_table t = {.n_obs = n_obs, .n_samples = n_samples};
    t.obs_ids = xcalloc((size_t)n_obs, sizeof(char *));
    t.sample_ids = xcalloc((size_t)n_samples, sizeof(char *));
    for (int o = 0; o < n_obs; o++) t.obs_ids[o] = xstrdup(obs_ids[o]);
    for (int s = 0; s < n_samples; s++) t.sample_ids[s] = xstrdup(sample_ids[s]);
    t.indptr = xcalloc((size_t)n_samples + 1, sizeof(int64_t));
    t.indices = xcalloc((size_t)n_obs * n_samples, sizeof(int32_t));
    t.data = xcalloc((size_t)n_obs * n_samples, sizeof(double));
    int64_t k = 0;
    for (int s = 0; s < n_samples; s++) {
        for (int o = 0; o < n_obs; o++)
            if (dense[(size_t)o * n_samples + s] != 0) {
                t.indices[k] = o;
                t.data[k++] = dense[(size_t)o * n_samples + s];
            }
        t.indptr[s + 1] = k;
    }
    return t;
}

// Sample `col` of `a` equals sample `j` of `b`: id, entries, counts bit for bit.
static void assert_sample_equal(const fb_table *a, int col, const fb_table *b, int j) {
    assert_string_equal(a->sample_ids[col], b->sample_ids[j]);
    const int64_t na = a->indptr[col + 1] - a->indptr[col], nb = b->indptr[j + 1] - b->indptr[j];
    if (na != nb) fail_msg("sample '%s': %lld entries vs %lld", b->sample_ids[j], (long long)na, (long long)nb);
    for (int64_t k = 0; k < na; k++) {
        assert_int_equal(a->indices[a->indptr[col] + k], b->indices[b->indptr[j] + k]);
        if (memcmp(&a->data[a->indptr[col] + k], &b->data[b->indptr[j] + k], sizeof(double)) != 0)
            fail_msg("sample '%s' entry %lld: %.17g vs %.17g", b->sample_ids[j], (long long)k,
                     a->data[a->indptr[col] + k], b->data[b->indptr[j] + k]);
    }
}

static void assert_tables_equal(const fb_table *a, const fb_table *b) {
    assert_int_equal(a->n_obs, b->n_obs);
    assert_int_equal(a->n_samples, b->n_samples);
    for (int o = 0; o < a->n_obs; o++) assert_string_equal(a->obs_ids[o], b->obs_ids[o]);
    for (int s = 0; s < a->n_samples; s++) assert_sample_equal(a, s, b, s);
}

static fb_table read_ok(const char *path, const int *samples, int n) {
    fb_table t;
    fb_status st = fb_biom_read(path, samples, n, &t);
    if (st != FB_OK) fail_msg("fb_biom_read(%s) failed: %s", path, fb_last_error());
    return t;
}

static void write_ok(const char *path, const fb_table *t) {
    if (fb_biom_write(path, t, "test_biom") != FB_OK) fail_msg("fb_biom_write(%s) failed: %s", path, fb_last_error());
}

// A status and a message holding the path and every given substring.
static void expect_error(fb_status got, fb_status want, const char *path, const char *const *parts, int nparts) {
    const char *msg = fb_last_error();
    printf("  expected error: %s\n", msg);
    if (got != want) fail_msg("status %s, expected %s (%s)", fb_status_name(got), fb_status_name(want), msg);
    if (path && !strstr(msg, path)) fail_msg("message does not name %s: %s", path, msg);
    for (int i = 0; i < nparts; i++)
        if (!strstr(msg, parts[i])) fail_msg("message lacks \"%s\": %s", parts[i], msg);
}

#define EXPECT_READ_ERROR(path, ...)                                                                    \
    do {                                                                                                \
        const char *parts_[] = {__VA_ARGS__};                                                           \
        fb_table t_;                                                                                    \
        expect_error(fb_biom_read(path, NULL, 0, &t_), FB_ERR_IO, path, parts_, sizeof parts_ / sizeof *parts_); \
        assert_null(t_.indptr);                                                                         \
    } while (0)

// ---- The hand table ----

// 5 observations x 6 samples: observation O4 never occurs, sample S5 is empty, one id is a
// 200-base sequence (longer than the messages abbreviate), counts from 0.25 to 2^40.
#define HAND_OBS 5
#define HAND_SAMPLES 6
static const double HAND[HAND_OBS * HAND_SAMPLES] = {
    1, 0, 3, 0, 0, 0.25,
    0, 7, 1, 2, 0, 0,
    4, 0, 0, 9, 0, 1099511627776.0,
    0, 0, 0, 0, 0, 0,
    2, 5, 6, 0, 0, 11,
};

static fb_table hand_table(void) {
    static char asv[201];
    for (int i = 0; i < 200; i++) asv[i] = "ACGT"[(i * 7 + i / 3) % 4];
    const char *obs[HAND_OBS] = {"O1", asv, "O3", "O4", "GG_OTU_5"};
    const char *samples[HAND_SAMPLES] = {"S1", "S2", "S3", "sample.4", "S5", "S6"};
    return from_dense(HAND_OBS, HAND_SAMPLES, HAND, obs, samples);
}

static void test_roundtrip(void **state) {
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "hand.biom");
    fb_table t = hand_table(), r = {0};
    write_ok(path, &t);
    r = read_ok(path, NULL, 0);
    assert_tables_equal(&t, &r);
    if (fb_biom_check_consistent(path) != FB_OK) fail_msg("%s", fb_last_error());
    char **ids;
    int n;
    assert_int_equal(fb_biom_read_sample_ids(path, &ids, &n), FB_OK);
    assert_int_equal(n, HAND_SAMPLES);
    for (int s = 0; s < n; s++) assert_string_equal(ids[s], t.sample_ids[s]);
    fb_biom_free_ids(ids, n);
    // Written atomically: no .tmp left behind.
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1);
    fb_table_free(&t);
    fb_table_free(&r);
}

// Empty tables: no samples, no observations, both.
static void test_empty_tables(void **state) {
    (void)state;
    const char *obs[2] = {"O1", "O2"}, *samples[3] = {"S1", "S2", "S3"};
    const double zeros[6] = {0};
    const int shapes[3][2] = {{2, 0}, {0, 3}, {0, 0}};
    char path[512];
    tmp_path(path, sizeof path, "empty.biom");
    for (int i = 0; i < 3; i++) {
        fb_table t = from_dense(shapes[i][0], shapes[i][1], zeros, obs, samples);
        write_ok(path, &t);
        fb_table r = read_ok(path, NULL, 0);
        assert_tables_equal(&t, &r);
        assert_int_equal(r.indptr[r.n_samples], 0);
        if (fb_biom_check_consistent(path) != FB_OK) fail_msg("%s", fb_last_error());
        fb_table_free(&t);
        fb_table_free(&r);
    }
}

static void test_subset(void **state) {
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "subset.biom");
    fb_table t = hand_table();
    write_ok(path, &t);
    const int sets[4][4] = {{1, 2, 3}, {5, 0, 4, 2}, {4}, {0}};
    const int sizes[4] = {3, 4, 1, 0};   // contiguous, out of order, the empty sample, none
    for (int c = 0; c < 4; c++) {
        fb_table r = read_ok(path, sets[c], sizes[c]);
        assert_int_equal(r.n_samples, sizes[c]);
        assert_int_equal(r.n_obs, t.n_obs);
        for (int o = 0; o < t.n_obs; o++) assert_string_equal(r.obs_ids[o], t.obs_ids[o]);
        for (int j = 0; j < sizes[c]; j++) assert_sample_equal(&r, j, &t, sets[c][j]);
        fb_table_free(&r);
    }
    // Bad selections.
    fb_table r;
    const int out[2] = {1, 6}, twice[3] = {2, 0, 2};
    const char *p1[] = {"sample index 6", "6 samples"}, *p2[] = {"sample index 2 requested twice"};
    expect_error(fb_biom_read(path, out, 2, &r), FB_ERR_CONFIG, path, p1, 2);
    expect_error(fb_biom_read(path, twice, 3, &r), FB_ERR_CONFIG, path, p2, 1);
    fb_table_free(&t);
}

// ---- python3-biom-format ----

// Runs tests/biom_check.py with `args`; skips the test when python3 or a module is missing (77).
static void biom_check(const char *args) {
    if (access("/usr/bin/python3", X_OK) != 0) {
        printf("SKIP: /usr/bin/python3 is missing (make deps installs python3-biom-format, python3-h5py)\n");
        skip();
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/biom_check.py %s", FB_SOURCE_DIR, args);
    printf("$ %s\n", cmd);
    fflush(NULL);
    int rc = system(cmd);
    int code = rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    if (code == 77) skip();
    if (code != 0) fail_msg("biom_check.py %s failed (exit %d, its output is above)", args, code);
}

// The sidecar format of biom_check.py (shape / obs / sample / entry lines) as a table.
static fb_table read_sidecar(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s", path);
    char line[1024];
    int n_obs = -1, n_samples = -1, no = 0, ns = 0;
    char **obs = NULL, **samples = NULL;
    double *dense = NULL;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *tab = strchr(line, '\t');
        if (!tab) fail_msg("%s: bad line '%s'", path, line);
        *tab++ = '\0';
        if (strcmp(line, "shape") == 0) {
            if (sscanf(tab, "%d\t%d", &n_obs, &n_samples) != 2) fail_msg("%s: bad shape line", path);
            obs = xcalloc((size_t)n_obs, sizeof *obs);
            samples = xcalloc((size_t)n_samples, sizeof *samples);
            dense = xcalloc((size_t)n_obs * n_samples, sizeof *dense);
        } else if (strcmp(line, "obs") == 0 && no < n_obs) {
            obs[no++] = xstrdup(tab);
        } else if (strcmp(line, "sample") == 0 && ns < n_samples) {
            samples[ns++] = xstrdup(tab);
        } else if (strcmp(line, "entry") == 0) {
            char *end;
            long o = strtol(tab, &end, 10), s = strtol(end, &end, 10);
            double v = strtod(end, &end);
            if (o < 0 || o >= n_obs || s < 0 || s >= n_samples) fail_msg("%s: bad entry line", path);
            dense[(size_t)o * n_samples + s] = v;
        } else {
            fail_msg("%s: unexpected line '%s'", path, line);
        }
    }
    fclose(f);
    if (no != n_obs || ns != n_samples) fail_msg("%s: %d/%d obs, %d/%d samples", path, no, n_obs, ns, n_samples);
    fb_table t = from_dense(n_obs, n_samples, dense, (const char *const *)obs, (const char *const *)samples);
    for (int i = 0; i < n_obs; i++) free(obs[i]);
    for (int i = 0; i < n_samples; i++) free(samples[i]);
    free(obs);
    free(samples);
    free(dense);
    return t;
}

static void write_sidecar(const char *path, const fb_table *t) {
    FILE *f = fopen(path, "w");
    if (!f) fail_msg("cannot write %s", path);
    fprintf(f, "shape\t%d\t%d\n", t->n_obs, t->n_samples);
    for (int o = 0; o < t->n_obs; o++) fprintf(f, "obs\t%s\n", t->obs_ids[o]);
    for (int s = 0; s < t->n_samples; s++) fprintf(f, "sample\t%s\n", t->sample_ids[s]);
    for (int s = 0; s < t->n_samples; s++)
        for (int64_t k = t->indptr[s]; k < t->indptr[s + 1]; k++)
            fprintf(f, "entry\t%d\t%d\t%.17g\n", t->indices[k], s, t->data[k]);
    fclose(f);
}

// Files written by biom-format's Table.to_hdf5: variable-length UTF-8 ids (one non-ASCII),
// fixed-length ids (BIOM 2.0 style), entries out of order within samples, no samples.
static void test_python_writes(void **state) {
    (void)state;
    static const char *const VARIANTS[4] = {"", "--fixed-ids", "--unsorted", "--no-samples"};
    for (int v = 0; v < 4; v++) {
        char path[512], side[512], args[1200];
        tmp_path(path, sizeof path, "py.biom");
        tmp_path(side, sizeof side, "py.txt");
        snprintf(args, sizeof args, "write '%s' '%s' %s", path, side, VARIANTS[v]);
        biom_check(args);
        fb_table want = read_sidecar(side), got = read_ok(path, NULL, 0);
        assert_tables_equal(&want, &got);
        if (fb_biom_check_consistent(path) != FB_OK) fail_msg("%s: %s", VARIANTS[v], fb_last_error());
        fb_table_free(&got);
        if (want.n_samples == 0) {
            fb_table_free(&want);
            continue;
        }
        // A subset from the python file too (hyperslabs over its gzip chunks).
        const int sel[2] = {4, 1};
        got = read_ok(path, sel, 2);
        assert_sample_equal(&got, 0, &want, 4);
        assert_sample_equal(&got, 1, &want, 1);
        fb_table_free(&got);
        fb_table_free(&want);
    }
}

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

// Our files read by biom-format's load_table and passed by its validator: the hand table, a
// random 40 x 25 one with long ids, and empty tables.
static void test_python_reads(void **state) {
    (void)state;
    char path[512], side[512], args[1200];
    tmp_path(path, sizeof path, "ours.biom");
    tmp_path(side, sizeof side, "ours.txt");
    snprintf(args, sizeof args, "check '%s' '%s'", path, side);
    fb_table t = hand_table();
    write_ok(path, &t);
    write_sidecar(side, &t);
    biom_check(args);
    fb_table_free(&t);

    enum { NO = 40, NS = 25 };
    double dense[NO * NS];
    uint64_t s = 12345;
    for (int i = 0; i < NO * NS; i++) dense[i] = xorshift(&s) % 4 == 0 ? (double)(xorshift(&s) % 1000 + 1) : 0;
    for (int j = 0; j < NS; j++) dense[3 * NS + j] = 0;   // an observation nowhere
    for (int o = 0; o < NO; o++) dense[o * NS + 7] = 0;   // an empty sample
    char obs_buf[NO][160], smp_buf[NS][32];
    const char *obs[NO], *smp[NS];
    for (int o = 0; o < NO; o++) {
        for (int c = 0; c < 150; c++) obs_buf[o][c] = "ACGT"[xorshift(&s) % 4];
        obs_buf[o][150] = '\0';
        obs[o] = obs_buf[o];
    }
    for (int j = 0; j < NS; j++) {
        snprintf(smp_buf[j], sizeof smp_buf[j], "site%d.%d", j % 3, j);
        smp[j] = smp_buf[j];
    }
    t = from_dense(NO, NS, dense, obs, smp);
    write_ok(path, &t);
    write_sidecar(side, &t);
    biom_check(args);
    fb_table_free(&t);

    t = from_dense(NO, 0, dense, obs, smp);   // observations, no samples
    write_ok(path, &t);
    write_sidecar(side, &t);
    biom_check(args);
    fb_table_free(&t);
}

// ---- Bad inputs ----

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

// Overwrites 1-D integer dataset `name` of an existing file with values[0..n) (same length).
static void poke_ints(const char *path, const char *name, const int64_t *values) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), d = H5Dopen2(f, name, H5P_DEFAULT);
    if (f < 0 || d < 0 || H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0)
        fail_msg("cannot rewrite %s in %s", name, path);
    H5Dclose(d);
    H5Fclose(f);
}

static void poke_attr(const char *path, const char *name, const int64_t *values, hsize_t n) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, name);
    hid_t s = H5Screate_simple(1, &n, NULL), a = H5Acreate2(f, name, H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0 || a < 0 || H5Awrite(a, H5T_NATIVE_INT64, values) < 0) fail_msg("cannot rewrite attribute %s", name);
    H5Aclose(a);
    H5Sclose(s);
    H5Fclose(f);
}

static void poke_ids(const char *path, const char *name, const char **ids) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), d = H5Dopen2(f, name, H5P_DEFAULT), type = H5Dget_type(d);
    if (f < 0 || d < 0 || H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids) < 0) fail_msg("cannot rewrite %s", name);
    H5Tclose(type);
    H5Dclose(d);
    H5Fclose(f);
}

static void fresh_hand_file(const char *path) {
    fb_table t = hand_table();
    write_ok(path, &t);
    fb_table_free(&t);
}

static void test_bad_files(void **state) {
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "missing.biom");
    EXPECT_READ_ERROR(path, "No such file");
    tmp_path(path, sizeof path, "empty.txt");
    write_text(path, "");
    EXPECT_READ_ERROR(path, "is empty");
    tmp_path(path, sizeof path, "text.biom");
    write_text(path, "this is not a table\n");
    EXPECT_READ_ERROR(path, "not an HDF5 file");
    tmp_path(path, sizeof path, "classic.tsv");
    write_text(path, "# Constructed from biom file\n#OTU ID\tS1\tS2\nO1\t1.0\t0.0\n");
    EXPECT_READ_ERROR(path, "classic (TSV) table", "biom convert --to-hdf5");
    tmp_path(path, sizeof path, "json.biom");
    write_text(path, "  {\"id\": null, \"format\": \"Biological Observation Matrix 1.0.0\", \"format_url\": "
                     "\"http://biom-format.org\", \"type\": \"OTU table\", \"matrix_type\": \"sparse\", "
                     "\"shape\": [1, 1], \"data\": [[0, 0, 1.0]], \"rows\": [{\"id\": \"O1\", \"metadata\": null}], "
                     "\"columns\": [{\"id\": \"S1\", \"metadata\": null}]}\n");
    EXPECT_READ_ERROR(path, "BIOM 1.0 (JSON) table: convert it with `biom convert --to-hdf5`");
    char **ids;
    int n;
    const char *json_parts[] = {"BIOM 1.0 (JSON)"};
    expect_error(fb_biom_read_sample_ids(path, &ids, &n), FB_ERR_IO, path, json_parts, 1);
    assert_null(ids);

    // Truncated: the hand table cut in half (and to its first 100 bytes).
    tmp_path(path, sizeof path, "truncated.biom");
    for (int cut = 0; cut < 2; cut++) {
        fresh_hand_file(path);
        FILE *f = fopen(path, "rb");
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fclose(f);
        if (truncate(path, cut ? 100 : size / 2) != 0) fail_msg("truncate failed");
        EXPECT_READ_ERROR(path, "truncated");
    }

    // HDF5, not BIOM.
    tmp_path(path, sizeof path, "plain.h5");
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dim = 4;
    hid_t s = H5Screate_simple(1, &dim, NULL), d = H5Dcreate2(f, "x", H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(s);
    H5Fclose(f);
    EXPECT_READ_ERROR(path, "not a BIOM table", "observation/ids");
}

// A valid file with one thing wrong at a time.
static void test_bad_contents(void **state) {
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "bad.biom");

    fresh_hand_file(path);
    const int64_t v30[2] = {3, 0}, v10[2] = {1, 0}, v22[2] = {2, 2};
    poke_attr(path, "format-version", v30, 2);
    EXPECT_READ_ERROR(path, "format-version 3.0");
    poke_attr(path, "format-version", v10, 2);
    EXPECT_READ_ERROR(path, "format-version 1.0");
    poke_attr(path, "format-version", v22, 2);
    EXPECT_READ_ERROR(path, "format-version 2.2");

    fresh_hand_file(path);
    const int64_t shape[2] = {HAND_OBS, HAND_SAMPLES + 1};
    poke_attr(path, "shape", shape, 2);
    EXPECT_READ_ERROR(path, "'sample/ids' holds 6 ids", "says 7 samples");

    // The hand table's sample/matrix: indptr 0 3 5 8 10 10 13, indices 0 2 4 | 1 4 | 0 1 4 | 1 2 | | 0 2 4.
    fresh_hand_file(path);
    const int64_t decreasing[7] = {0, 3, 5, 4, 10, 10, 13};
    poke_ints(path, "sample/matrix/indptr", decreasing);
    EXPECT_READ_ERROR(path, "'sample/matrix/indptr' decreases at sample 2 ('S3')");
    const int64_t short_end[7] = {0, 3, 5, 8, 10, 10, 12};
    poke_ints(path, "sample/matrix/indptr", short_end);
    EXPECT_READ_ERROR(path, "entry count", "indptr ends at 12", "indices has 13");
    const int64_t from1[7] = {1, 2, 5, 8, 10, 10, 13};
    poke_ints(path, "sample/matrix/indptr", from1);
    EXPECT_READ_ERROR(path, "starts at 1");

    // Entries: an index out of range, an observation twice in a sample.
    fresh_hand_file(path);
    int64_t idx[13] = {0, 2, 4, 1, 9, 0, 1, 4, 1, 2, 0, 2, 4};
    poke_ints(path, "sample/matrix/indices", idx);
    EXPECT_READ_ERROR(path, "sample 'S2'", "observation index 9", "outside [0, 5)");
    idx[4] = 1;
    poke_ints(path, "sample/matrix/indices", idx);
    EXPECT_READ_ERROR(path, "sample 'S2' lists observation", "twice");

    // Duplicate ids.
    fresh_hand_file(path);
    const char *dup[HAND_SAMPLES] = {"S1", "S2", "S3", "S2", "S5", "S6"};
    poke_ids(path, "sample/ids", dup);
    EXPECT_READ_ERROR(path, "sample id 'S2' appears twice");

    // CSR and CSC parts disagree: only fb_biom_check_consistent looks.
    fresh_hand_file(path);
    int64_t obs_idx[13];
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, "observation/matrix/indices", H5P_DEFAULT);
    H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, obs_idx);
    H5Dclose(d);
    H5Fclose(f);
    obs_idx[0] = 1;   // O1's first entry moves from S1 to S2 (O1 is in S1 and S3 only)
    poke_ints(path, "observation/matrix/indices", obs_idx);
    fb_table t = read_ok(path, NULL, 0);
    fb_table_free(&t);
    const char *parts[] = {"disagree on sample 'S1'"};
    expect_error(fb_biom_check_consistent(path), FB_ERR_IO, path, parts, 1);
}

static void test_write_errors(void **state) {
    (void)state;
    fb_table t = hand_table();
    const char *nodir = "/nonexistent-fusebench-dir/x.biom";
    const char *p1[] = {"cannot create"};
    expect_error(fb_biom_write(nodir, &t, NULL), FB_ERR_IO, nodir, p1, 1);
    char path[512];
    tmp_path(path, sizeof path, "refused.biom");
    t.indices[1] = t.indices[0];   // S1's two entries, same observation
    const char *p2[] = {"sample 0 entry 1", "not increasing"};
    expect_error(fb_biom_write(path, &t, NULL), FB_ERR_CONFIG, path, p2, 2);
    t.indices[1] = 2;
    free(t.sample_ids[2]);
    t.sample_ids[2] = xstrdup("S1");
    const char *p3[] = {"sample id 'S1' appears twice"};
    expect_error(fb_biom_write(path, &t, NULL), FB_ERR_CONFIG, path, p3, 1);
    assert_int_equal(access(path, F_OK), -1);
    fb_table_free(&t);
}

// ---- Benchmark (printed, not asserted) ----

static int int32_cmp(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// 10,000 samples x 20,000 ASVs (150-base ids), 150-250 entries per sample, 10k-50k reads each:
// write, read all, read a rank's quarter (contiguous and strided), rarefy to 5000. The lead's
// figures for the microbiome loader; FB_BIOM_BENCH=0 skips it.
static void test_benchmark(void **state) {
    (void)state;
    const char *env = getenv("FB_BIOM_BENCH");
    if (env && strcmp(env, "0") == 0) skip();
    enum { NO = 20000, NS = 10000 };
    double t0 = now_s();
    fb_table t = {.n_obs = NO, .n_samples = NS};
    t.obs_ids = xcalloc(NO, sizeof(char *));
    t.sample_ids = xcalloc(NS, sizeof(char *));
    t.indptr = xcalloc(NS + 1, sizeof(int64_t));
    uint64_t s = 2024;
    for (int o = 0; o < NO; o++) {
        t.obs_ids[o] = xcalloc(151, 1);
        for (int c = 0; c < 150; c++) t.obs_ids[o][c] = "ACGT"[xorshift(&s) % 4];
    }
    // Each sample: 150-250 distinct ASVs drawn uniformly (rejection on a marker array), in
    // increasing order, counts 1 + uniform [0, 2 total / entries) for a total of 10k-50k reads.
    int64_t cap = 250 * (int64_t)NS;
    t.indices = xcalloc((size_t)cap, sizeof(int32_t));
    t.data = xcalloc((size_t)cap, sizeof(double));
    unsigned char *used = xcalloc(NO, 1);
    for (int j = 0; j < NS; j++) {
        char id[32];
        snprintf(id, sizeof id, "sample.%05d", j);
        t.sample_ids[j] = xstrdup(id);
        const int per = 150 + (int)(xorshift(&s) % 101), total = 10000 + (int)(xorshift(&s) % 40001);
        int32_t *idx = t.indices + t.indptr[j];
        for (int k = 0; k < per;) {
            const int o = (int)(xorshift(&s) % NO);
            if (!used[o]) used[o] = 1, idx[k++] = o;
        }
        qsort(idx, (size_t)per, sizeof *idx, int32_cmp);
        for (int k = 0; k < per; k++) {
            used[idx[k]] = 0;
            t.data[t.indptr[j] + k] = (double)(1 + xorshift(&s) % (uint64_t)(2 * total / per));
        }
        t.indptr[j + 1] = t.indptr[j] + per;
    }
    free(used);
    const int64_t nnz = t.indptr[NS];
    double t1 = now_s();
    char path[512];
    snprintf(path, sizeof path, "/tmp/fb_biom_bench_%d.biom", (int)getpid());
    write_ok(path, &t);
    double t2 = now_s();
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    const long bytes = ftell(f);
    fclose(f);
    fb_table all = read_ok(path, NULL, 0);
    double t3 = now_s();
    assert_int_equal(all.indptr[NS], nnz);
    int *quarter = xcalloc(NS / 4, sizeof(int)), *strided = xcalloc(NS / 4, sizeof(int));
    for (int j = 0; j < NS / 4; j++) {
        quarter[j] = NS / 4 + j;   // rank 1 of 4, block distribution
        strided[j] = 4 * j + 1;    // rank 1 of 4, round robin
    }
    fb_table q = read_ok(path, quarter, NS / 4);
    double t4 = now_s();
    fb_table r = read_ok(path, strided, NS / 4);
    double t5 = now_s();
    char **dropped = NULL;
    int n_dropped = 0;
    if (fb_rarefy(&all, 5000, 7, &dropped, &n_dropped) != FB_OK) fail_msg("%s", fb_last_error());
    double t6 = now_s();
    printf("benchmark: %d samples x %d ASVs, %lld non-zeros, %.1f MB file, %d threads\n", NS, NO, (long long)nnz,
           (double)bytes / 1e6, omp_get_max_threads());
    printf("bench biom_generate_s %.3f\n", t1 - t0);
    printf("bench biom_write_s %.3f\n", t2 - t1);
    printf("bench biom_read_all_s %.3f\n", t3 - t2);
    printf("bench biom_read_quarter_block_s %.3f\n", t4 - t3);
    printf("bench biom_read_quarter_strided_s %.3f\n", t5 - t4);
    printf("bench rarefy_5000_s %.3f (%d threads, %d samples dropped)\n", t6 - t5, omp_get_max_threads(), n_dropped);
    set_threads(1);
    for (int i = 0; i < n_dropped; i++) free(dropped[i]);
    free(dropped);
    fb_table_free(&all);
    all = read_ok(path, NULL, 0);
    double t7 = now_s();
    if (fb_rarefy(&all, 5000, 7, &dropped, &n_dropped) != FB_OK) fail_msg("%s", fb_last_error());
    printf("bench rarefy_5000_1thread_s %.3f\n", now_s() - t7);
    set_threads(omp_get_num_procs());
    for (int i = 0; i < n_dropped; i++) free(dropped[i]);
    free(dropped);
    unlink(path);
    free(quarter);
    free(strided);
    fb_table_free(&t);
    fb_table_free(&all);
    fb_table_free(&q);
    fb_table_free(&r);
}

static int make_tmpdir(void **state) {
    (void)state;
    return tmpdir_make(tmpdir, sizeof tmpdir, "biom");
}

static int remove_tmpdir(void **state) {
    (void)state;
    return tmpdir_remove(tmpdir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_empty_tables),
        cmocka_unit_test(test_subset),
        cmocka_unit_test(test_python_writes),
        cmocka_unit_test(test_python_reads),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bad_contents),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_benchmark),
    };
    return cmocka_run_group_tests_name("biom", tests, make_tmpdir, remove_tmpdir);
}
