// datasets/unifrac: libssu driven from C against scikit-bio and ssu (tests/unifrac_check.py writes
// the cases and their references):
//   - the worked case of SOURCE-SYSTEMS.md: rows S1 and S3 equal the stated values, scikit-bio's
//     and ssu's matrices, from a tidy and from an untidy (comments, blanks, quotes) tree;
//   - 50 samples x 200 ASVs, three kinds: fp64 vs scikit-bio <= 1e-5, fp32 <= 1e-4, vs ssu;
//   - stripes on P = 1, 2, 3 and 30 ranks (30 > 25 stripes: empty ranks) merged equal the
//     one-process matrix bit for bit; 1 and 2 threads agree bit for bit;
//   - a table written by fb_biom_write gives the same matrix as python3-biom-format's;
//   - files: write + read round trips, read by h5py / scikit-bio as the source system does, ssu's
//     own files and the source system's `distances` key read back, fixed-length ids;
//   - batch submatrices and every error: a sample absent from the matrix, an asymmetric (and
//     non-square, non-hollow, NaN, duplicate-id, short-order) file, a BIOM observation missing
//     from the tree, a quote in a label, a table libssu cannot read, bad partials.
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testutil.h"
#include "../datasets/biom.h"
#include "../datasets/unifrac.h"

static char dir[256];

static const char *path_of(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

typedef struct { double *d; char **ids; int n; } dmat;

static void dmat_free(dmat *m) {
    free(m->d);
    fb_unifrac_free_ids(m->ids, m->n);
    memset(m, 0, sizeof *m);
}

static dmat compute(const char *table, const char *tree, fb_unifrac_kind kind, int fp32, int threads) {
    dmat m;
    if (fb_unifrac_compute(path_of(table), path_of(tree), kind, fp32, threads, &m.d, &m.ids, &m.n) != FB_OK)
        fail_msg("compute %s %s %s fp32=%d: %s", table, tree, fb_unifrac_kind_name(kind), fp32, fb_last_error());
    return m;
}

static dmat read_file(const char *name) {
    dmat m;
    if (fb_unifrac_read(path_of(name), &m.d, &m.ids, &m.n) != FB_OK) fail_msg("read %s: %s", name, fb_last_error());
    return m;
}

// max |a - b| over two matrices of the same ids; fails when the ids differ.
static double max_diff(const dmat *a, const dmat *b) {
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++) assert_string_equal(a->ids[i], b->ids[i]);
    double worst = 0;
    for (size_t i = 0; i < (size_t)a->n * a->n; i++) worst = fmax(worst, fabs(a->d[i] - b->d[i]));
    return worst;
}

static void expect_close(const char *what, const dmat *got, const dmat *want, double tol) {
    double e = max_diff(got, want);
    printf("  %-58s max |diff| %.3e (tolerance %.0e)\n", what, e, tol);
    if (!(e <= tol)) fail_msg("%s: %.3e > %.0e", what, e, tol);
}

static void expect_error(fb_status got, fb_status want, const char *message) {
    if (got != want || strstr(fb_last_error(), message) == NULL)
        fail_msg("got status %d \"%s\", want %d with \"%s\"", got, fb_last_error(), want, message);
}

// Temporary trees written for libssu still in TMPDIR (set to the scratch folder): none may outlive a call.
static int tree_copies(void) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strncmp(e->d_name, "fb_ssu_tree_", 12) == 0;
    if (d) closedir(d);
    return n;
}

// ---- The worked case ----

static void test_worked_case(void **state) {
    (void)state;
    static const double s1[6] = {0, 0.2, 0.571429, 0.6, 0.5, 0.2};
    static const double s3[6] = {0.571429, 0.428571, 0, 0.714286, 0.857143, 0.428571};
    dmat m = compute("worked.biom", "worked.nwk", FB_UNIFRAC_UNWEIGHTED, 0, 1);
    assert_int_equal(m.n, 6);
    const char *ids[6] = {"S1", "S2", "S3", "S4", "S5", "S6"};
    double worst = 0;
    for (int j = 0; j < 6; j++) {
        assert_string_equal(m.ids[j], ids[j]);
        worst = fmax(worst, fmax(fabs(m.d[j] - s1[j]), fabs(m.d[2 * 6 + j] - s3[j])));
    }
    printf("  %-58s max |diff| %.3e (tolerance 1e-06)\n", "worked case rows S1, S3 vs SOURCE-SYSTEMS.md", worst);
    assert_true(worst <= 1e-6);
    for (int k = 0; k < FB_UNIFRAC_KIND_COUNT; k++) {
        char name[128], what[128];
        dmat ours = k == 0 ? m : compute("worked.biom", "worked.nwk", (fb_unifrac_kind)k, 0, 1);
        snprintf(name, sizeof name, "skbio_worked_%s.h5", fb_unifrac_kind_name((fb_unifrac_kind)k));
        dmat sk = read_file(name);
        snprintf(what, sizeof what, "worked %s fp64 vs scikit-bio", fb_unifrac_kind_name((fb_unifrac_kind)k));
        expect_close(what, &ours, &sk, 1e-6);
        snprintf(name, sizeof name, "ssu_worked_%s_fp64.h5", fb_unifrac_kind_name((fb_unifrac_kind)k));
        dmat ssu = read_file(name);
        snprintf(what, sizeof what, "worked %s fp64 vs ssu", fb_unifrac_kind_name((fb_unifrac_kind)k));
        expect_close(what, &ours, &ssu, 0);
        // The untidy tree (comments, blanks, newlines, quotes, an internal label) is the same tree.
        dmat messy = compute("worked.biom", "worked_messy.nwk", (fb_unifrac_kind)k, 0, 1);
        assert_true(max_diff(&messy, &ours) == 0);
        dmat_free(&messy);
        dmat_free(&ssu);
        dmat_free(&sk);
        dmat_free(&ours);
    }
}

// ---- 50 samples x 200 ASVs ----

static void test_random_vs_references(void **state) {
    (void)state;
    for (int k = 0; k < FB_UNIFRAC_KIND_COUNT; k++) {
        const char *kn = fb_unifrac_kind_name((fb_unifrac_kind)k);
        char name[128], what[128];
        snprintf(name, sizeof name, "skbio_random_%s.h5", kn);
        dmat sk = read_file(name);
        for (int fp32 = 0; fp32 <= 1; fp32++) {
            dmat ours = compute("random.biom", "random.nwk", (fb_unifrac_kind)k, fp32, 2);
            assert_int_equal(ours.n, 50);
            snprintf(what, sizeof what, "random %s %s vs scikit-bio", kn, fp32 ? "fp32" : "fp64");
            expect_close(what, &ours, &sk, fp32 ? 1e-4 : 1e-5);
            snprintf(name, sizeof name, "ssu_random_%s_%s.h5", kn, fp32 ? "fp32" : "fp64");
            dmat ssu = read_file(name);
            snprintf(what, sizeof what, "random %s %s vs ssu", kn, fp32 ? "fp32" : "fp64");
            expect_close(what, &ours, &ssu, 0);
            dmat_free(&ssu);
            dmat_free(&ours);
        }
        dmat_free(&sk);
    }
}

// 1 and 2 OpenMP threads: the same bits.
static void test_threads(void **state) {
    (void)state;
    dmat one = compute("random.biom", "random.nwk", FB_UNIFRAC_WEIGHTED_NORMALIZED, 0, 1);
    dmat two = compute("random.biom", "random.nwk", FB_UNIFRAC_WEIGHTED_NORMALIZED, 0, 2);
    assert_true(max_diff(&one, &two) == 0);
    assert_memory_equal(one.d, two.d, sizeof(double) * 50 * 50);
    dmat_free(&one);
    dmat_free(&two);
}

// ---- Stripes on P ranks ----

static void merged(const char *table, const char *tree, fb_unifrac_kind kind, int fp32, int P, dmat *out) {
    void **bufs = calloc((size_t)P, sizeof *bufs);
    size_t *sizes = calloc((size_t)P, sizeof *sizes);
    for (int r = P - 1; r >= 0; r--)   // any order
        if (fb_unifrac_partial(path_of(table), path_of(tree), kind, fp32, 1, r, P, &bufs[r], &sizes[r]) != FB_OK)
            fail_msg("partial %d of %d: %s", r, P, fb_last_error());
    if (fb_unifrac_merge((const void *const *)bufs, sizes, P, &out->d, &out->ids, &out->n) != FB_OK)
        fail_msg("merge of %d: %s", P, fb_last_error());
    for (int r = 0; r < P; r++) free(bufs[r]);
    free(bufs);
    free(sizes);
}

static void test_distributed(void **state) {
    (void)state;
    // The stripe split: contiguous, covering, within one stripe of each other.
    int start, stop, prev = 0;
    for (int r = 0; r < 3; r++) {
        fb_unifrac_stripe_range(50, r, 3, &start, &stop);
        assert_int_equal(start, prev);
        assert_true(stop - start == 8 || stop - start == 9);
        prev = stop;
    }
    assert_int_equal(prev, fb_unifrac_stripes(50));
    assert_int_equal(fb_unifrac_stripes(6), 3);
    assert_int_equal(fb_unifrac_stripes(7), 4);

    const int ranks[] = {1, 2, 3, 30};
    for (int k = 0; k < FB_UNIFRAC_KIND_COUNT; k++)
        for (int fp32 = 0; fp32 <= 1; fp32++) {
            dmat whole = compute("random.biom", "random.nwk", (fb_unifrac_kind)k, fp32, 1);
            for (size_t p = 0; p < sizeof ranks / sizeof *ranks; p++) {
                dmat m;
                merged("random.biom", "random.nwk", (fb_unifrac_kind)k, fp32, ranks[p], &m);
                assert_true(max_diff(&m, &whole) == 0);
                assert_memory_equal(m.d, whole.d, sizeof(double) * 50 * 50);
                dmat_free(&m);
            }
            dmat_free(&whole);
        }
    printf("  stripes merged from 1, 2, 3, 30 ranks == one process, bit for bit (3 kinds x fp64/fp32)\n");
    // The worked case from its untidy tree, on 2 ranks.
    dmat whole = compute("worked.biom", "worked_messy.nwk", FB_UNIFRAC_UNWEIGHTED, 0, 1), m;
    merged("worked.biom", "worked_messy.nwk", FB_UNIFRAC_UNWEIGHTED, 0, 2, &m);
    assert_memory_equal(m.d, whole.d, sizeof(double) * 36);
    dmat_free(&m);
    dmat_free(&whole);
    assert_int_equal(tree_copies(), 0);
}

static void test_bad_partials(void **state) {
    (void)state;
    void *b[3];
    size_t s[3];
    for (int r = 0; r < 3; r++)
        assert_int_equal(fb_unifrac_partial(path_of("random.biom"), path_of("random.nwk"), FB_UNIFRAC_UNWEIGHTED, 0, 1,
                                            r, 3, &b[r], &s[r]), FB_OK);
    dmat m;
    const void *two[2] = {b[0], b[2]};
    size_t two_s[2] = {s[0], s[2]};
    expect_error(fb_unifrac_merge(two, two_s, 2, &m.d, &m.ids, &m.n), FB_ERR_IO, "UniFrac partials cover 17 of 25 stripes");
    assert_null(m.d);
    const void *dup[3] = {b[0], b[1], b[1]};
    size_t dup_s[3] = {s[0], s[1], s[1]};
    expect_error(fb_unifrac_merge(dup, dup_s, 3, &m.d, &m.ids, &m.n), FB_ERR_IO, "UniFrac partials 1 and 2 overlap");
    void *w;
    size_t ws;
    assert_int_equal(fb_unifrac_partial(path_of("random.biom"), path_of("random.nwk"), FB_UNIFRAC_WEIGHTED_NORMALIZED, 0,
                                        1, 1, 3, &w, &ws), FB_OK);
    const void *mixed[3] = {b[0], w, b[2]};
    size_t mixed_s[3] = {s[0], ws, s[2]};
    expect_error(fb_unifrac_merge(mixed, mixed_s, 3, &m.d, &m.ids, &m.n), FB_ERR_IO,
                 "UniFrac partial 1 was computed on other samples, kind or precision than partial 0");
    size_t short_s[3] = {s[0], s[1] - 8, s[2]};
    expect_error(fb_unifrac_merge((const void *const *)b, short_s, 3, &m.d, &m.ids, &m.n), FB_ERR_IO,
                 "UniFrac partial 1: ");
    ((char *)b[2])[0] = 'X';
    expect_error(fb_unifrac_merge((const void *const *)b, s, 3, &m.d, &m.ids, &m.n), FB_ERR_IO,
                 "UniFrac partial 2: not a fusebench partial buffer");
    free(w);
    expect_error(fb_unifrac_partial(path_of("random.biom"), path_of("random.nwk"), FB_UNIFRAC_UNWEIGHTED, 0, 1, 3, 3,
                                    &w, &ws), FB_ERR_CONFIG, "rank 3 of 3 ranks");
    assert_null(w);
    for (int r = 0; r < 3; r++) free(b[r]);
}

// ---- Our BIOM writer (datasets/biom.c) feeds libssu the same table ----

static void test_our_biom_writer(void **state) {
    (void)state;
    char *obs[5] = {"GG_OTU_1", "GG_OTU_2", "GG_OTU_3", "GG_OTU_4", "GG_OTU_5"};
    char *samples[6] = {"S1", "S2", "S3", "S4", "S5", "S6"};
    // CSC, observation indices increasing within each sample.
    int64_t indptr[7] = {0, 2, 5, 9, 11, 12, 15};
    int32_t indices[15] = {1, 3, 1, 3, 4, 0, 2, 3, 4, 1, 2, 1, 1, 2, 3};
    double data[15] = {5, 2, 1, 1, 1, 1, 1, 1, 1, 2, 4, 3, 1, 2, 1};
    fb_table t = {.n_obs = 5, .n_samples = 6, .obs_ids = obs, .sample_ids = samples, .indptr = indptr,
                  .indices = indices, .data = data};
    if (fb_biom_write(path_of("ours.biom"), &t, NULL) != FB_OK) fail_msg("fb_biom_write: %s", fb_last_error());
    for (int k = 0; k < FB_UNIFRAC_KIND_COUNT; k++) {
        dmat a = compute("ours.biom", "worked.nwk", (fb_unifrac_kind)k, 0, 1);
        dmat b = compute("worked.biom", "worked.nwk", (fb_unifrac_kind)k, 0, 1);
        assert_true(max_diff(&a, &b) == 0);
        dmat_free(&a);
        dmat_free(&b);
    }
}

// ---- Files ----

static void python_check(const char *file, const char *ref, const char *ids, const char *dtype, double tol) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/unifrac_check.py check '%s' '%s' '%s' %s %g", FB_SOURCE_DIR,
             path_of(file), path_of(ref), ids, dtype, tol);
    if (system(cmd) != 0) fail_msg("%s failed", cmd);
}

static void test_files(void **state) {
    (void)state;
    dmat m = compute("random.biom", "random.nwk", FB_UNIFRAC_UNWEIGHTED, 0, 1);
    // fp64: bit for bit; fp32: each value rounded to float.
    assert_int_equal(fb_unifrac_write(path_of("ours64.h5"), m.d, (const char *const *)m.ids, m.n, 0), FB_OK);
    assert_int_equal(fb_unifrac_write(path_of("ours32.h5"), m.d, (const char *const *)m.ids, m.n, 1), FB_OK);
    assert_int_equal(access(path_of("ours64.h5.tmp"), F_OK), -1);
    dmat r64 = read_file("ours64.h5"), r32 = read_file("ours32.h5");
    assert_true(max_diff(&r64, &m) == 0);
    for (int i = 0; i < m.n * m.n; i++) assert_true(r32.d[i] == (double)(float)m.d[i]);
    // As the source system reads them (h5py, scikit-bio's DistanceMatrix), against scikit-bio.
    char ids[2048] = "";
    for (int i = 0; i < m.n; i++) snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%s", i ? "," : "", m.ids[i]);
    python_check("ours64.h5", "skbio_random_unweighted.h5", ids, "float64", 1e-5);
    python_check("ours32.h5", "skbio_random_unweighted.h5", ids, "float32", 1e-4);
    dmat_free(&r64);
    dmat_free(&r32);
    dmat_free(&m);

    // The source system's `distances` key (float32 here), and fixed-length ids.
    dmat d = read_file("distances.h5"), sk = read_file("skbio_worked_unweighted.h5");
    expect_close("`distances` key (float32) vs scikit-bio", &d, &sk, 1e-7);
    dmat fixed = read_file("fixed_ids.h5");
    assert_true(max_diff(&fixed, &sk) == 0);
    dmat_free(&fixed);
    dmat_free(&d);
    dmat_free(&sk);

    // An unwritable place leaves nothing behind.
    double one = 0;
    const char *id = "S1";
    expect_error(fb_unifrac_write("/nonexistent-dir/u.h5", &one, &id, 1, 0), FB_ERR_IO, "/nonexistent-dir/u.h5.tmp");
}

static void test_bad_files(void **state) {
    (void)state;
    static const struct { const char *file, *message; } cases[] = {
        {"bad_square.h5", "bad_square.h5: 'matrix' is 6 x 5, not a square matrix"},
        {"bad_asym.h5", "bad_asym.h5: not symmetric: matrix[1][4] = 0.60000000099999995 but matrix[4][1] = 0.59999999999999998"},
        {"bad_diag.h5", "bad_diag.h5: diagonal matrix[2][2] = 0.5 is not 0"},
        {"bad_nan.h5", "bad_nan.h5: matrix[0][3] = nan is not finite"},
        {"bad_dup.h5", "bad_dup.h5: sample id 'S2' appears twice (at 1 and 3)"},
        {"bad_order.h5", "bad_order.h5: 'order' has 5 sample ids for a 6 x 6 matrix"},
        {"worked.biom", "worked.biom: no dataset 'matrix' (Striped UniFrac) or 'distances'"},
        {"worked.nwk", "cannot open UniFrac matrix"},
        {"absent.h5", "cannot open UniFrac matrix"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        dmat m;
        expect_error(fb_unifrac_read(path_of(cases[k].file), &m.d, &m.ids, &m.n), FB_ERR_IO, cases[k].message);
        assert_null(m.d);
        assert_int_equal(m.n, 0);
    }
}

// ---- Batches ----

static void test_submatrix(void **state) {
    (void)state;
    dmat m = read_file("ssu_worked_unweighted_fp64.h5");
    fb_strindex *rows;
    assert_int_equal(fb_strindex_build((const char *const *)m.ids, m.n, "sample id", "w.h5", &rows), FB_OK);
    const char *batch[4] = {"S3", "S1", "S6", "S3"};
    double out[16];
    assert_int_equal(fb_unifrac_submatrix(out, m.d, m.n, rows, "w.h5", batch, 4), FB_OK);
    const int r[4] = {2, 0, 5, 2};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) assert_true(out[i * 4 + j] == m.d[r[i] * 6 + r[j]]);
    assert_true(out[1] == m.d[2 * 6 + 0] && out[1] > 0.57 && out[1] < 0.572);
    const char *bad[3] = {"S1", "S7", "S9"};
    expect_error(fb_unifrac_submatrix(out, m.d, m.n, rows, "w.h5", bad, 3), FB_ERR_CONFIG,
                 "w.h5: sample 'S7' (batch position 1) is not in the UniFrac matrix");
    assert_int_equal(fb_unifrac_submatrix(out, m.d, m.n, rows, "w.h5", batch, 0), FB_OK);
    fb_strindex_free(rows);
    dmat_free(&m);
}

// ---- Bad inputs to the computation ----

static void test_bad_inputs(void **state) {
    (void)state;
    dmat m;
    void *buf;
    size_t size;
    char want[1024];
    snprintf(want, sizeof want, "table %s: observation 'GG_OTU_9' is not a tip of tree %s", path_of("missing.biom"),
             path_of("worked.nwk"));
    expect_error(fb_unifrac_compute(path_of("missing.biom"), path_of("worked.nwk"), FB_UNIFRAC_UNWEIGHTED, 0, 1, &m.d,
                                    &m.ids, &m.n), FB_ERR_IO, want);
    assert_null(m.d);
    expect_error(fb_unifrac_partial(path_of("missing.biom"), path_of("worked.nwk"), FB_UNIFRAC_UNWEIGHTED, 0, 1, 0, 2,
                                    &buf, &size), FB_ERR_IO, want);
    assert_null(buf);
    expect_error(fb_unifrac_compute(path_of("worked.biom"), path_of("quote.nwk"), FB_UNIFRAC_UNWEIGHTED, 0, 1, &m.d,
                                    &m.ids, &m.n), FB_ERR_IO, "label 'GG'OTU_3' holds a quote, which libssu's Newick reader cannot read");
    expect_error(fb_unifrac_compute(path_of("nocsr.biom"), path_of("worked.nwk"), FB_UNIFRAC_UNWEIGHTED, 0, 1, &m.d,
                                    &m.ids, &m.n), FB_ERR_IO, "nocsr.biom: no dataset 'observation/matrix/data'");
    expect_error(fb_unifrac_compute(path_of("absent.biom"), path_of("worked.nwk"), FB_UNIFRAC_UNWEIGHTED, 0, 1, &m.d,
                                    &m.ids, &m.n), FB_ERR_IO, "cannot open BIOM table");
    expect_error(fb_unifrac_compute(path_of("worked.biom"), path_of("absent.nwk"), FB_UNIFRAC_UNWEIGHTED, 0, 1, &m.d,
                                    &m.ids, &m.n), FB_ERR_IO, "cannot open tree");
    expect_error(fb_unifrac_compute(path_of("worked.biom"), path_of("worked.biom"), FB_UNIFRAC_UNWEIGHTED, 0, 1, &m.d,
                                    &m.ids, &m.n), FB_ERR_IO, "worked.biom line 1 col 1: an HDF5 file, not Newick text (table and tree swapped?)");
    expect_error(fb_unifrac_compute(path_of("worked.biom"), path_of("worked.nwk"), (fb_unifrac_kind)7, 0, 1, &m.d,
                                    &m.ids, &m.n), FB_ERR_CONFIG, "unknown UniFrac kind 7");
    fb_unifrac_kind kind;
    assert_int_equal(fb_unifrac_kind_parse("weighted_normalized", &kind), FB_OK);
    assert_int_equal(kind, FB_UNIFRAC_WEIGHTED_NORMALIZED);
    expect_error(fb_unifrac_kind_parse("generalized", &kind), FB_ERR_CONFIG, "unknown UniFrac kind 'generalized'");
    assert_int_equal(tree_copies(), 0);
}

// ---- Set-up: the cases and references, in a scratch folder ----

static int setup(void **state) {
    (void)state;
    if (tmpdir_make(dir, sizeof dir, "unifrac") != 0) return -1;
    setenv("TMPDIR", dir, 1);   // where fb_unifrac_* put their tree copies (tree_copies counts them)
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/unifrac_check.py make %s", FB_SOURCE_DIR, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "%s failed: scikit-bio, biom-format or ssu missing? (make deps installs python3-skbio, "
                "python3-biom-format, unifrac-tools)\n", cmd);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return tmpdir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worked_case),
        cmocka_unit_test(test_random_vs_references),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_distributed),
        cmocka_unit_test(test_bad_partials),
        cmocka_unit_test(test_our_biom_writer),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_submatrix),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests_name("unifrac", tests, setup, teardown);
}
