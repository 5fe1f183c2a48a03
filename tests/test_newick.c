// datasets/newick: hand trees (quoted labels with blanks and quotes, internal labels, comments,
// missing lengths, exponents, unnamed tips, a 100000-deep caterpillar), write + read round trips
// (bit for bit), every parse error with its line and column, from text and from a file, write
// errors, the tip index and the BIOM-observation check, and no crash on every prefix and on random
// mutations of a tree (fuzz/fuzz_newick.c goes further).
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testutil.h"
#include "../datasets/newick.h"

static char tmpdir[256];

static fb_tree parse_ok(const char *text) {
    fb_tree t;
    fb_status st = fb_newick_parse(text, strlen(text), "t.nwk", &t);
    if (st != FB_OK) fail_msg("parse of \"%s\" failed: %s", text, fb_last_error());
    return t;
}

static int node_labelled(const fb_tree *t, const char *label) {
    for (int i = 0; i < t->n; i++)
        if (t->label[i] && strcmp(t->label[i], label) == 0) return i;
    fail_msg("no node labelled '%s'", label);
    return -1;
}

// ---- Hand trees ----

// The worked case of SOURCE-SYSTEMS.md: 8 nodes in preorder, underscores kept.
static void test_worked_case(void **state) {
    (void)state;
    fb_tree t = parse_ok("(GG_OTU_1:1,(GG_OTU_2:1,GG_OTU_3:1):1,(GG_OTU_5:1,GG_OTU_4:1):1);");
    assert_int_equal(t.n, 8);
    assert_int_equal(t.root, 0);
    const int parent[8] = {-1, 0, 0, 2, 2, 0, 5, 5};
    const char *label[8] = {NULL, "GG_OTU_1", NULL, "GG_OTU_2", "GG_OTU_3", NULL, "GG_OTU_5", "GG_OTU_4"};
    for (int i = 0; i < 8; i++) {
        assert_int_equal(t.parent[i], parent[i]);
        if (label[i]) assert_string_equal(t.label[i], label[i]);
        else assert_null(t.label[i]);
        assert_true(i == 0 ? isnan(t.length[i]) : t.length[i] == 1.0);
    }
    fb_tree_free(&t);
}

static void test_quoted_labels(void **state) {
    (void)state;
    fb_tree t = parse_ok("('a b':1,'it''s':2,'x,y(z):[w];':3,'''':4, 'GG_OTU_1' :5)'root node';");
    assert_int_equal(t.n, 6);
    assert_string_equal(t.label[0], "root node");
    assert_string_equal(t.label[1], "a b");
    assert_string_equal(t.label[2], "it's");
    assert_string_equal(t.label[3], "x,y(z):[w];");
    assert_string_equal(t.label[4], "'");
    assert_string_equal(t.label[5], "GG_OTU_1");
    assert_true(t.length[3] == 3.0 && t.length[5] == 5.0);
    fb_tree_free(&t);
    // '' alone is an empty label: stored as NULL.
    t = parse_ok("('':1,B);");
    assert_null(t.label[1]);
    fb_tree_free(&t);
}

// Internal labels, comments and whitespace anywhere between tokens, missing lengths, exponents.
static void test_comments_lengths(void **state) {
    (void)state;
    fb_tree t = parse_ok("[head] ( A [c1] : [c2] 1.5e-3 ,\n\t(B:-2.5E+2,C)inner[c3]:.5\r\n)root[c4]:1E2 ; [tail]\n");
    assert_int_equal(t.n, 5);
    int a = node_labelled(&t, "A"), b = node_labelled(&t, "B"), c = node_labelled(&t, "C");
    int in = node_labelled(&t, "inner"), root = node_labelled(&t, "root");
    assert_int_equal(root, 0);
    assert_int_equal(t.parent[a], root);
    assert_int_equal(t.parent[in], root);
    assert_int_equal(t.parent[b], in);
    assert_true(t.length[a] == 1.5e-3 && t.length[b] == -2.5e2 && t.length[in] == 0.5 && t.length[root] == 100.0);
    assert_true(isnan(t.length[c]));
    fb_tree_free(&t);
}

// Unnamed tips, a group with one child, a one-node tree.
static void test_shapes(void **state) {
    (void)state;
    fb_tree t = parse_ok("(,);");
    assert_int_equal(t.n, 3);
    assert_null(t.label[1]);
    assert_null(t.label[2]);
    fb_tree_free(&t);
    t = parse_ok("((A));");
    assert_int_equal(t.n, 3);
    assert_int_equal(t.parent[2], 1);
    fb_tree_free(&t);
    t = parse_ok("(:1,:2)x;");
    assert_true(t.length[1] == 1 && t.length[2] == 2);
    fb_tree_free(&t);
    t = parse_ok("A:3;");
    assert_int_equal(t.n, 1);
    assert_string_equal(t.label[0], "A");
    assert_true(t.length[0] == 3);
    fb_tree_free(&t);
}

// A 100000-deep caterpillar: no recursion in the parser or the writer.
static void test_deep(void **state) {
    (void)state;
    const int depth = 100000;
    size_t cap = (size_t)depth * 12 + 64, n = 0;
    char *text = malloc(cap);
    for (int i = 0; i < depth; i++) text[n++] = '(';
    n += (size_t)sprintf(text + n, "x");
    for (int i = 0; i < depth; i++) n += (size_t)sprintf(text + n, ",t%d)", i);
    text[n++] = ';';
    fb_tree t;
    assert_int_equal(fb_newick_parse(text, n, "deep", &t), FB_OK);
    assert_int_equal(t.n, 2 * depth + 1);
    char path[512];
    snprintf(path, sizeof path, "%s/deep.nwk", tmpdir);
    assert_int_equal(fb_newick_write(path, &t), FB_OK);
    fb_tree back;
    assert_int_equal(fb_newick_read(path, &back), FB_OK);
    assert_int_equal(back.n, t.n);
    fb_tree_free(&t);
    fb_tree_free(&back);
    free(text);
}

// ---- Round trips ----

static void assert_same_tree(const fb_tree *a, const fb_tree *b) {
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->root, b->root);
    for (int i = 0; i < a->n; i++) {
        assert_int_equal(a->parent[i], b->parent[i]);
        if (a->label[i]) assert_string_equal(a->label[i], b->label[i]);
        else assert_null(b->label[i]);
        if (isnan(a->length[i])) assert_true(isnan(b->length[i]));
        else assert_memory_equal(&a->length[i], &b->length[i], sizeof(double));
    }
}

static void roundtrip(const fb_tree *t, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    if (fb_newick_write(path, t) != FB_OK) fail_msg("write %s: %s", path, fb_last_error());
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1);   // the .tmp was renamed
    fb_tree back;
    if (fb_newick_read(path, &back) != FB_OK) fail_msg("read %s: %s", path, fb_last_error());
    assert_same_tree(t, &back);
    fb_tree_free(&back);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next_u64(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return rng_state;
}

// Random trees (preorder parents), labels drawn from an alphabet with every special character,
// lengths of every magnitude: they read back bit for bit.
static void test_roundtrip(void **state) {
    (void)state;
    const char *hand[] = {
        "(GG_OTU_1:1,(GG_OTU_2:1,GG_OTU_3:1):1,(GG_OTU_5:1,GG_OTU_4:1):1);",
        "('a b':1,'it''s':2,'x,y(z):[w];':3,'''':4)'root node':0;",
        "((A,B)x,(,C:1e-300)[comment]:1.7976931348623157e308);",
        "A;",
    };
    for (size_t k = 0; k < sizeof hand / sizeof *hand; k++) {
        fb_tree t = parse_ok(hand[k]);
        roundtrip(&t, "hand.nwk");
        fb_tree_free(&t);
    }
    const char alphabet[] = "AZaz09_-.'|/ ()[]:;,\"\xc3\xa9";
    for (int trial = 0; trial < 50; trial++) {
        int n = 1 + (int)(next_u64() % 300);
        fb_tree t = {.n = n, .root = 0};
        t.parent = malloc((size_t)n * sizeof *t.parent);
        t.length = malloc((size_t)n * sizeof *t.length);
        t.label = calloc((size_t)n, sizeof *t.label);
        t.parent[0] = -1;
        for (int i = 1; i < n; i++) t.parent[i] = (int)(next_u64() % (uint64_t)i);
        for (int i = 0; i < n; i++) {
            uint64_t r = next_u64();
            t.length[i] = (r % 5 == 0) ? NAN : ldexp((double)(r >> 11) / 9007199254740992.0, (int)(r % 64) - 32);
            int len = (int)(next_u64() % 8);
            if (len > 0) {
                t.label[i] = malloc((size_t)len + 1);
                for (int c = 0; c < len; c++) t.label[i][c] = alphabet[next_u64() % (sizeof alphabet - 1)];
                t.label[i][len] = '\0';
            }
        }
        // Parents drawn at random are not in preorder; the writer walks children by index, so the
        // text comes back in preorder: compare text, write, read, write again.
        char p1[512], p2[512];
        snprintf(p1, sizeof p1, "%s/r1.nwk", tmpdir);
        snprintf(p2, sizeof p2, "%s/r2.nwk", tmpdir);
        assert_int_equal(fb_newick_write(p1, &t), FB_OK);
        fb_tree back;
        if (fb_newick_read(p1, &back) != FB_OK) fail_msg("trial %d: %s", trial, fb_last_error());
        assert_int_equal(back.n, n);
        roundtrip(&back, "r2.nwk");
        // Same text both times.
        FILE *a = fopen(p1, "r"), *b = fopen(p2, "r");
        int ca, cb;
        do { ca = fgetc(a); cb = fgetc(b); } while (ca == cb && ca != EOF);
        assert_int_equal(ca, cb);
        fclose(a);
        fclose(b);
        fb_tree_free(&back);
        fb_tree_free(&t);
    }
}

// ---- Errors, each with its place ----

typedef struct { const char *text; size_t len; const char *message; } bad_case;

static void test_parse_errors(void **state) {
    (void)state;
    static const bad_case cases[] = {
        {"(A,B;", 0, "t.nwk line 1 col 5: ';' before the ')' closing the '(' at line 1 col 1"},
        {"(A,(B,C;", 0, "t.nwk line 1 col 8: ';' before the ')' closing the '(' at line 1 col 4"},
        {"(A,B));", 0, "t.nwk line 1 col 6: unbalanced ')'"},
        {"(A,B)", 0, "t.nwk line 1 col 6: unexpected end of text: missing ';'"},
        {"(A,(B,\nC)", 0, "t.nwk line 2 col 3: unexpected end of text before the ')' closing the '(' at line 1 col 1"},
        {"(A,B);x", 0, "t.nwk line 1 col 7: text after ';' (one tree per text)"},
        {"((A,B),(C,D))\n;\n;", 0, "t.nwk line 3 col 1: text after ';' (one tree per text)"},
        {"(A:x,B);", 0, "t.nwk line 1 col 4: branch length 'x' is not a finite number"},
        {"(A:1.5.2,B);", 0, "t.nwk line 1 col 4: branch length '1.5.2' is not a finite number"},
        {"(A:inf,B);", 0, "t.nwk line 1 col 4: branch length 'inf' is not a finite number"},
        {"(A:1e999,B);", 0, "t.nwk line 1 col 4: branch length '1e999' is not a finite number"},
        {"(A:,B);", 0, "t.nwk line 1 col 3: ':' without a branch length"},
        {"(A:1:2,B);", 0, "t.nwk line 1 col 5: a second ':' (one branch length per node)"},
        {"", 0, "t.nwk line 1 col 1: empty tree (no text before the end)"},
        {"  \n [only a comment]\n", 0, "t.nwk line 3 col 1: empty tree (no text before the end)"},
        {";", 0, "t.nwk line 1 col 1: empty tree (';' before any node)"},
        {" '' [x];", 0, "t.nwk line 1 col 2: empty tree (one node with neither label nor length)"},
        {"(A,\n B [unclosed;", 0, "t.nwk line 2 col 4: comment '[' never closed by ']'"},
        {"(A[x[y]],B);", 0, "t.nwk line 1 col 5: '[' inside the comment opened at line 1 col 3 (comments do not nest)"},
        {"(A,B)];", 0, "t.nwk line 1 col 6: unexpected ']' after a node"},
        {"(],B);", 0, "t.nwk line 1 col 2: unexpected ']' (no comment is open)"},
        {"('A,B);", 0, "t.nwk line 1 col 2: quoted label never closed by a quote"},
        {"(A B,C);", 0, "t.nwk line 1 col 4: unexpected 'B' after a node (a label with blanks must be quoted)"},
        {"(A'b',C);", 0, "t.nwk line 1 col 3: unexpected ''' after a node (a label with blanks must be quoted)"},
        {"A,B;", 0, "t.nwk line 1 col 2: ',' outside parentheses (a tree has one root)"},
        {"(A,B)\n\n  (C);", 0, "t.nwk line 3 col 3: unexpected '(' after a node"},
        {"(A\x01,B);", 0, "t.nwk line 1 col 3: control character (byte 0x01) in a label"},
        {"('A\nB',C);", 0, "t.nwk line 1 col 4: control character (byte 0x0a) in a label"},
        {"(A\0B,C);", 8, "t.nwk line 1 col 3: control character (byte 0x00) in a label"},
        {"(\0);", 4, "t.nwk line 1 col 2: NUL byte in the text"},
        {"(A:1 \x02,B);", 0, "t.nwk line 1 col 6: unexpected byte 0x02 after a node"},
        {"\x89HDF\r\n\x1a\n\0\0", 10, "t.nwk line 1 col 1: an HDF5 file, not Newick text (table and tree swapped?)"},
    };
    char path[512];
    snprintf(path, sizeof path, "%s/bad.nwk", tmpdir);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const bad_case *c = &cases[k];
        size_t len = c->len ? c->len : strlen(c->text);
        fb_tree t;
        fb_status st = fb_newick_parse(c->text, len, "t.nwk", &t);
        if (st != FB_ERR_IO || strcmp(fb_last_error(), c->message) != 0)
            fail_msg("case %zu: got status %d \"%s\", want \"%s\"", k, st, fb_last_error(), c->message);
        assert_int_equal(t.n, 0);   // zeroed on error
        assert_null(t.parent);
        // The same from a file: the message names the file.
        FILE *f = fopen(path, "wb");
        fwrite(c->text, 1, len, f);
        fclose(f);
        assert_int_equal(fb_newick_read(path, &t), FB_ERR_IO);
        char want[1024];
        snprintf(want, sizeof want, "%s%s", path, c->message + strlen("t.nwk"));
        assert_string_equal(fb_last_error(), want);
    }
    fb_tree t;
    snprintf(path, sizeof path, "%s/absent.nwk", tmpdir);
    assert_int_equal(fb_newick_read(path, &t), FB_ERR_IO);
    assert_non_null(strstr(fb_last_error(), "cannot open tree"));
    assert_non_null(strstr(fb_last_error(), "absent.nwk"));
}

static void test_write_errors(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/w.nwk", tmpdir);
    int parent[3] = {-1, 2, 1};   // nodes 1 and 2 are each other's parent
    double length[3] = {NAN, 1, 1};
    char *label[3] = {NULL, "a", "b"};
    fb_tree t = {.n = 3, .root = 0, .parent = parent, .length = length, .label = label};
    assert_int_equal(fb_newick_write(path, &t), FB_ERR_IO);
    assert_non_null(strstr(fb_last_error(), "1 of 3 nodes reachable from the root"));
    assert_int_equal(access(path, F_OK), -1);
    parent[1] = 0; parent[2] = 5;
    assert_int_equal(fb_newick_write(path, &t), FB_ERR_IO);
    assert_non_null(strstr(fb_last_error(), "node 2 has parent 5"));
    parent[2] = 0;
    label[1] = "tab\there";
    assert_int_equal(fb_newick_write(path, &t), FB_ERR_IO);
    assert_non_null(strstr(fb_last_error(), "control character (byte 0x09)"));
    label[1] = "a";
    length[2] = INFINITY;
    assert_int_equal(fb_newick_write(path, &t), FB_ERR_IO);
    assert_non_null(strstr(fb_last_error(), "node 2 has an infinite branch length"));
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1);   // a failed write leaves no .tmp
    length[2] = 2;
    assert_int_equal(fb_newick_write("/nonexistent-dir/x.nwk", &t), FB_ERR_IO);
    assert_non_null(strstr(fb_last_error(), "/nonexistent-dir/x.nwk.tmp"));
    // Missing lengths are left out, or written as :0 for libssu.
    char buf[256];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    assert_int_equal(fb_newick_fprint(f, "mem", &t, FB_NEWICK_ALL_LENGTHS), FB_OK);
    fclose(f);
    assert_string_equal(buf, "(a:1,b:2):0;\n");
}

// ---- Tips and tables ----

static void test_tips_and_table(void **state) {
    (void)state;
    fb_tree t = parse_ok("(GG_OTU_1:1,(GG_OTU_2:1,GG_OTU_3:1)inner:1,(GG_OTU_5:1,GG_OTU_4:1):1);");
    fb_strindex *tips;
    assert_int_equal(fb_tree_tip_index(&t, "T.nwk", &tips), FB_OK);
    assert_int_equal(fb_strindex_find(tips, "GG_OTU_4"), 7);
    assert_int_equal(fb_strindex_find(tips, "GG_OTU_1"), 1);
    assert_int_equal(fb_strindex_find(tips, "inner"), -1);   // internal labels are not tips
    assert_int_equal(fb_strindex_find(tips, "GG OTU 1"), -1);
    fb_strindex_free(tips);

    const char *ok[] = {"GG_OTU_3", "GG_OTU_1", "GG_OTU_5"};
    assert_int_equal(fb_tree_check_table(&t, "T.nwk", ok, 3, "T.biom"), FB_OK);
    const char *missing[] = {"GG_OTU_3", "GG_OTU_9", "GG_OTU_8"};
    assert_int_equal(fb_tree_check_table(&t, "T.nwk", missing, 3, "T.biom"), FB_ERR_IO);
    assert_string_equal(fb_last_error(), "table T.biom: observation 'GG_OTU_9' is not a tip of tree T.nwk");
    const char *internal[] = {"inner"};
    assert_int_equal(fb_tree_check_table(&t, "T.nwk", internal, 1, "T.biom"), FB_ERR_IO);
    assert_string_equal(fb_last_error(), "table T.biom: observation 'inner' is not a tip of tree T.nwk");
    // A 250-base ASV id is abbreviated in the message.
    char asv[251];
    for (int i = 0; i < 250; i++) asv[i] = "ACGT"[i % 4];
    asv[250] = '\0';
    const char *long_id[] = {asv};
    assert_int_equal(fb_tree_check_table(&t, "T.nwk", long_id, 1, "T.biom"), FB_ERR_IO);
    assert_string_equal(fb_last_error(), "table T.biom: observation "
                        "'ACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGT...(250 bytes)' is not a tip of tree T.nwk");
    fb_tree_free(&t);

    t = parse_ok("((A,B),(C,A));");
    assert_int_equal(fb_tree_tip_index(&t, "T.nwk", &tips), FB_ERR_IO);
    assert_string_equal(fb_last_error(), "tree T.nwk: tip label 'A' appears twice (nodes 2 and 6)");
    fb_tree_free(&t);
}

// ---- No crash on damaged text ----

// Every prefix and 20000 random byte mutations of a tree using every construct either parse or
// fail with a message; under `make sanitize` any out-of-bounds read fails here.
static void test_damaged(void **state) {
    (void)state;
    const char *good = "[c]('a b':1,'it''s':2e-3,(B:-2.5E+2,C)inner[x]:.5,(,)):1;\n";
    size_t n = strlen(good);
    char *buf = malloc(n + 1);
    int ok = 0, failed = 0;
    for (size_t k = 0; k <= n; k++) {
        memcpy(buf, good, k);   // exact length: no terminator past the prefix
        fb_tree t;
        if (fb_newick_parse(buf, k, "prefix", &t) == FB_OK) ok++;
        else {
            failed++;
            assert_true(strncmp(fb_last_error(), "prefix line ", 12) == 0);
        }
        fb_tree_free(&t);
    }
    assert_int_equal(ok, 2);   // the whole text, and the text without its final newline
    const char bytes[] = "()[],:;' _a1.e-\n\0\x01\xff";
    for (int trial = 0; trial < 20000; trial++) {
        memcpy(buf, good, n);
        int edits = 1 + (int)(next_u64() % 4);
        for (int e = 0; e < edits; e++) buf[next_u64() % n] = bytes[next_u64() % (sizeof bytes - 1)];
        fb_tree t;
        if (fb_newick_parse(buf, n, "mutant", &t) != FB_OK) {
            failed++;
            assert_true(strncmp(fb_last_error(), "mutant line ", 12) == 0);
        }
        fb_tree_free(&t);
    }
    assert_true(failed > 0);
    free(buf);
}

static int make_tmpdir(void **state) {
    (void)state;
    return tmpdir_make(tmpdir, sizeof tmpdir, "newick");
}

static int remove_tmpdir(void **state) {
    (void)state;
    return tmpdir_remove(tmpdir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worked_case),
        cmocka_unit_test(test_quoted_labels),
        cmocka_unit_test(test_comments_lengths),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_deep),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_tips_and_table),
        cmocka_unit_test(test_damaged),
    };
    return cmocka_run_group_tests_name("newick", tests, make_tmpdir, remove_tmpdir);
}
