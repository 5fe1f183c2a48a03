// datasets/metadata: reading a TSV (sample_id anywhere, CRLF, byte-order mark, blank lines, no
// final newline, quoted fields, column names stripped), every error with its line number, write +
// read round trips (tabs, quotes, empty values), lookups (a 20,000-sample match), and the
// categorical encoding against hand-computed codes (byte-order sort, pandas' missing spellings,
// fitting on a subset, model columns sorted by name).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testutil.h"
#include "../datasets/metadata.h"

static char tmpdir[256];

static const char *write_file(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

static fb_metadata read_ok(const char *path) {
    fb_metadata m;
    if (fb_metadata_read(path, &m) != FB_OK) fail_msg("fb_metadata_read(%s): %s", path, fb_last_error());
    return m;
}

static const char *value(const fb_metadata *m, const char *sample, const char *col) {
    const int r = fb_metadata_find_sample(m, sample), c = fb_metadata_find_column(m, col);
    if (r < 0 || c < 0) fail_msg("no sample '%s' or column '%s'", sample, col);
    return m->values[c][r];
}

// ---- Reading ----

static void test_read(void **state) {
    (void)state;
    // Byte-order mark, sample_id third, CRLF, a blank line, blanks around a column name, a quoted
    // field with a tab and a doubled quote, empty fields, no newline at the end.
    const char *path = write_file("m.tsv",
                                  "\xEF\xBB\xBF" "age\t body site \tsample_id\tnote\r\n"
                                  "34\tgut\tS1\t\"a\tb \"\"c\"\"\"\r\n"
                                  "\r\n"
                                  "\tskin\tS2\t\r\n"
                                  "NA\t\"\"\tS3\tplain \"quote\" inside");
    fb_metadata m = read_ok(path);
    assert_int_equal(m.n_samples, 3);
    assert_int_equal(m.n_cols, 3);
    assert_string_equal(m.col_names[0], "age");
    assert_string_equal(m.col_names[1], "body site");
    assert_string_equal(m.col_names[2], "note");
    assert_string_equal(m.sample_ids[0], "S1");
    assert_string_equal(m.sample_ids[2], "S3");
    assert_string_equal(value(&m, "S1", "note"), "a\tb \"c\"");
    assert_string_equal(value(&m, "S2", "age"), "");
    assert_string_equal(value(&m, "S2", "note"), "");
    assert_string_equal(value(&m, "S3", "body site"), "");
    assert_string_equal(value(&m, "S3", "age"), "NA");
    assert_string_equal(value(&m, "S3", "note"), "plain \"quote\" inside");
    fb_metadata_free(&m);

    // Only the id column; a header with no rows.
    m = read_ok(write_file("ids.tsv", "sample_id\nA\nB\n"));
    assert_int_equal(m.n_samples, 2);
    assert_int_equal(m.n_cols, 0);
    fb_metadata_free(&m);
    m = read_ok(write_file("header.tsv", "x\tsample_id\n"));
    assert_int_equal(m.n_samples, 0);
    assert_int_equal(m.n_cols, 1);
    fb_metadata_free(&m);
}

// One bad file: FB_ERR_IO, the message holds the file name and `want`.
static void expect_bad(const char *name, const char *text, const char *want) {
    const char *path = write_file(name, text);
    fb_metadata m;
    fb_status st = fb_metadata_read(path, &m);
    printf("  %s: %s\n", name, fb_last_error());
    if (st != FB_ERR_IO) fail_msg("%s: status %s, expected an I/O error", name, fb_status_name(st));
    if (!strstr(fb_last_error(), want)) fail_msg("%s: message lacks \"%s\": %s", name, want, fb_last_error());
    assert_null(m.sample_ids);
    assert_int_equal(m.n_samples, 0);
}

static void test_errors(void **state) {
    (void)state;
    fb_metadata m;
    char missing[512];
    snprintf(missing, sizeof missing, "%s/none.tsv", tmpdir);
    assert_int_equal(fb_metadata_read(missing, &m), FB_ERR_IO);
    assert_non_null(strstr(fb_last_error(), "none.tsv: No such file"));

    expect_bad("empty.tsv", "", "empty.tsv is empty (no header line)");
    expect_bad("blank.tsv", "\n\r\n\n", "blank.tsv is empty (no header line)");
    expect_bad("noid.tsv", "sample\tage\nS1\t3\n", "noid.tsv line 1: no 'sample_id' column");
    expect_bad("qiime.tsv", "#SampleID\tage\nS1\t3\n", "column 1 is '#SampleID': rename it to sample_id");
    expect_bad("dupcol.tsv", "sample_id\tage\tage\n", "dupcol.tsv line 1: header names column 'age' twice (columns 2 and 3)");
    expect_bad("nameless.tsv", "sample_id\t\tage\n", "nameless.tsv line 1: header column 2 has no name");

    // Line 17 has 5 fields where the header has 6 (lines 1 header, 2-16 rows).
    char text[4096] = "sample_id\ta\tb\tc\td\te\n";
    for (int i = 2; i <= 16; i++) snprintf(text + strlen(text), sizeof text - strlen(text), "S%d\t1\t2\t3\t4\t5\n", i);
    strcat(text, "S17\t1\t2\t3\t4\n");
    expect_bad("M.tsv", text, "M.tsv line 17: 5 fields, header has 6");
    expect_bad("long.tsv", "sample_id\ta\nS1\t1\t2\n", "long.tsv line 2: 3 fields, header has 2");
    expect_bad("dup.tsv", "sample_id\tx\nS1\t1\n\nS2\t2\nS3\t3\nS4\t4\nS5\t5\nS6\t6\nS3\t7\n",
               "dup.tsv line 9: sample id 'S3' already on line 5");
    expect_bad("noid2.tsv", "x\tsample_id\n1\tS1\n2\t\n", "noid2.tsv line 3: empty sample id");
    expect_bad("quote.tsv", "sample_id\tx\nS1\t\"open\n", "quote.tsv line 2, field 2: unterminated quote");
    expect_bad("after.tsv", "sample_id\tx\nS1\t\"a\"b\n", "after.tsv line 2, field 2: text after the closing quote");
}

// ---- Writing ----

static void test_roundtrip(void **state) {
    (void)state;
    char path[512], tmp[600];
    snprintf(path, sizeof path, "%s/w.tsv", tmpdir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    static const char *ids[3] = {"S1", "\"quoted id\"", "S 3"};
    static const char *names[2] = {"site", "note \"x\""};
    static const char *vals[2][3] = {{"gut", "", "NA"}, {"tab\there", "\"", " spaces "}};
    fb_metadata m = {.n_samples = 3, .n_cols = 2};
    m.sample_ids = calloc(3, sizeof(char *));
    m.col_names = calloc(2, sizeof(char *));
    m.values = calloc(2, sizeof(char **));
    for (int r = 0; r < 3; r++) m.sample_ids[r] = strdup(ids[r]);
    for (int c = 0; c < 2; c++) {
        m.col_names[c] = strdup(names[c]);
        m.values[c] = calloc(3, sizeof(char *));
        for (int r = 0; r < 3; r++) m.values[c][r] = strdup(vals[c][r]);
    }
    if (fb_metadata_write(path, &m) != FB_OK) fail_msg("%s", fb_last_error());
    assert_int_equal(access(tmp, F_OK), -1);
    fb_metadata r = read_ok(path);
    assert_int_equal(r.n_samples, 3);
    assert_int_equal(r.n_cols, 2);
    for (int i = 0; i < 3; i++) assert_string_equal(r.sample_ids[i], ids[i]);
    for (int c = 0; c < 2; c++) {
        assert_string_equal(r.col_names[c], names[c]);
        for (int i = 0; i < 3; i++) assert_string_equal(r.values[c][i], vals[c][i]);
    }
    fb_metadata_free(&r);

    // Refused: a line break in a value, a repeated sample id; nothing written.
    unlink(path);
    free(m.values[1][2]);
    m.values[1][2] = strdup("two\nlines");
    assert_int_equal(fb_metadata_write(path, &m), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "sample 'S 3', column 'note \"x\"'"));
    free(m.values[1][2]);
    m.values[1][2] = strdup("one line");
    free(m.sample_ids[2]);
    m.sample_ids[2] = strdup("S1");
    assert_int_equal(fb_metadata_write(path, &m), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "sample id 'S1' appears twice"));
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(access(tmp, F_OK), -1);
    fb_metadata_free(&m);
}

// ---- Lookups ----

static void test_lookups(void **state) {
    (void)state;
    enum { N = 20000 };
    char path[512];
    snprintf(path, sizeof path, "%s/big.tsv", tmpdir);
    FILE *f = fopen(path, "w");
    fprintf(f, "group\tsample_id\n");
    for (int i = 0; i < N; i++) fprintf(f, "g%d\tsample.%d\n", i % 7, i);
    fclose(f);
    fb_metadata m = read_ok(path);
    assert_int_equal(m.n_samples, N);
    assert_int_equal(fb_metadata_find_column(&m, "group"), 0);
    assert_int_equal(fb_metadata_find_column(&m, "sample_id"), -1);
    assert_int_equal(fb_metadata_find_sample(&m, "sample.12345"), 12345);
    assert_int_equal(fb_metadata_find_sample(&m, "nope"), -1);
    // Every id in reverse order, and some unknown ones.
    char **ids = calloc(N + 2, sizeof(char *));
    int *rows = calloc(N + 2, sizeof(int));
    for (int i = 0; i < N; i++) ids[i] = m.sample_ids[N - 1 - i];
    ids[N] = "sample.x";
    ids[N + 1] = "";
    assert_int_equal(fb_metadata_match(&m, (const char *const *)ids, N + 2, rows), FB_OK);
    for (int i = 0; i < N; i++) assert_int_equal(rows[i], N - 1 - i);
    assert_int_equal(rows[N], -1);
    assert_int_equal(rows[N + 1], -1);
    free(ids);
    free(rows);
    fb_metadata_free(&m);
}

// ---- Encoding ----

static void test_encode(void **state) {
    (void)state;
    const char *path = write_file("enc.tsv",
                                  "sample_id\tsite\tdepth\tzeta\tBody\n"
                                  "A\tgut\t10\tx\t1\n"
                                  "B\tskin\t9\tx\t1\n"
                                  "C\t\t1\tx\t1\n"
                                  "D\tNA\t\tx\t1\n"
                                  "E\tgut\tnan\tx\t1\n"
                                  "F\toral\tNone\tx\t1\n"
                                  "G\tSkin\t10\tx\t1\n"
                                  "H\tn/a\tnull\tx\t1\n");
    fb_metadata m = read_ok(path);
    int codes[8], K;
    char **cats;
    // site: byte order puts "Skin" before "gut" before "oral" before "skin"; "", NA, n/a missing.
    assert_int_equal(fb_metadata_encode(&m, 0, codes, &K, &cats), FB_OK);
    const int site[8] = {2, 4, 0, 0, 2, 3, 1, 0};
    const char *site_cats[4] = {"Skin", "gut", "oral", "skin"};
    assert_int_equal(K, 4);
    for (int i = 0; i < 8; i++) assert_int_equal(codes[i], site[i]);
    for (int i = 0; i < K; i++) {
        assert_string_equal(cats[i], site_cats[i]);
        free(cats[i]);
    }
    free(cats);
    // depth: strings, so "1" < "10" < "9" (the source's sorted(str(v))); nan, None, null missing.
    assert_int_equal(fb_metadata_encode(&m, 1, codes, &K, NULL), FB_OK);
    const int depth[8] = {2, 3, 1, 0, 0, 0, 2, 0};
    assert_int_equal(K, 3);
    for (int i = 0; i < 8; i++) assert_int_equal(codes[i], depth[i]);
    // Fitted on rows A and B only: gut 1, skin 2; everything else unknown.
    const int fit[2] = {0, 1};
    assert_int_equal(fb_metadata_encode_fit(&m, 0, fit, 2, codes, &K, NULL), FB_OK);
    const int fitted[8] = {1, 2, 0, 0, 1, 0, 0, 0};
    assert_int_equal(K, 2);
    for (int i = 0; i < 8; i++) assert_int_equal(codes[i], fitted[i]);
    assert_int_equal(fb_metadata_encode(&m, 3, codes, &K, NULL), FB_OK);   // Body: one value
    assert_int_equal(K, 1);
    assert_int_equal(fb_metadata_encode(&m, 4, codes, &K, NULL), FB_ERR_CONFIG);
    const int bad_fit[1] = {8};
    assert_int_equal(fb_metadata_encode_fit(&m, 0, bad_fit, 1, codes, &K, NULL), FB_ERR_CONFIG);

    // Model columns sorted by name: Body (3) < depth (1) < site (0) < zeta (2).
    int cols[4];
    assert_int_equal(fb_metadata_model_columns(&m, NULL, 0, cols), FB_OK);
    const int all[4] = {3, 1, 0, 2};
    for (int i = 0; i < 4; i++) assert_int_equal(cols[i], all[i]);
    const char *pick[3] = {"zeta", "site", "Body"};
    assert_int_equal(fb_metadata_model_columns(&m, pick, 3, cols), FB_OK);
    assert_int_equal(cols[0], 3);
    assert_int_equal(cols[1], 0);
    assert_int_equal(cols[2], 2);
    const char *unknown[2] = {"site", "ph"}, *twice[2] = {"site", "site"};
    assert_int_equal(fb_metadata_model_columns(&m, unknown, 2, cols), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "no column 'ph' (columns: site, depth, zeta, Body)"));
    assert_int_equal(fb_metadata_model_columns(&m, twice, 2, cols), FB_ERR_CONFIG);
    fb_metadata_free(&m);

    assert_true(fb_metadata_is_missing("") && fb_metadata_is_missing("NaN") && fb_metadata_is_missing("<NA>"));
    assert_false(fb_metadata_is_missing("0") || fb_metadata_is_missing("na") || fb_metadata_is_missing(" "));
}

static int make_tmpdir(void **state) {
    (void)state;
    return tmpdir_make(tmpdir, sizeof tmpdir, "metadata");
}

static int remove_tmpdir(void **state) {
    (void)state;
    return tmpdir_remove(tmpdir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_encode),
    };
    return cmocka_run_group_tests_name("metadata", tests, make_tmpdir, remove_tmpdir);
}
