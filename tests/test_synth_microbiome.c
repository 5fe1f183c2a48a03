// The synthetic microbiome world (datasets/synth_microbiome.c): determinism (seed, threads,
// prefix of a larger run), the tree, the table and the metadata as the header describes them, the
// target formula recomputed from the counts, the designed signal (UniFrac and Bray-Curtis
// distances shorter within a metadata group than across, beyond a permutation null; the target
// explained by the composition, by the metadata, and further by their interaction), bad configs,
// and the generation time at default sizes and at 10,000 x 20,000 (printed).
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../datasets/synth_microbiome.h"

typedef struct {
    fb_tree tree;
    fb_table table;
    fb_metadata md;
} world;

static void draw(const fb_synth_microbiome_config *c, world *w) {
    fb_status s = fb_synth_microbiome(c, &w->tree, &w->table, &w->md);
    if (s != FB_OK) fail_msg("fb_synth_microbiome: %s", fb_last_error());
}

static void world_free(world *w) {
    fb_tree_free(&w->tree);
    fb_table_free(&w->table);
    fb_metadata_free(&w->md);
}

static int same_string(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

// Sample j of a and sample k of b: the same entries, id and metadata row.
static int same_sample(const world *a, int j, const world *b, int k) {
    const int64_t n = a->table.indptr[j + 1] - a->table.indptr[j];
    if (n != b->table.indptr[k + 1] - b->table.indptr[k]) return 0;
    const int64_t x = a->table.indptr[j], y = b->table.indptr[k];
    if (memcmp(a->table.indices + x, b->table.indices + y, (size_t)n * sizeof(int32_t)) ||
        memcmp(a->table.data + x, b->table.data + y, (size_t)n * sizeof(double)))
        return 0;
    if (strcmp(a->table.sample_ids[j], b->table.sample_ids[k]) || strcmp(a->md.sample_ids[j], b->md.sample_ids[k]))
        return 0;
    for (int c = 0; c < a->md.n_cols; c++)
        if (strcmp(a->md.values[c][j], b->md.values[c][k])) return 0;
    return 1;
}

// Bitwise equality of two worlds (lengths by memcmp: the root's NAN compares equal to itself).
static int same_world(const world *a, const world *b) {
    const fb_tree *s = &a->tree, *t = &b->tree;
    if (s->n != t->n || s->root != t->root || memcmp(s->parent, t->parent, (size_t)s->n * sizeof(int)) ||
        memcmp(s->length, t->length, (size_t)s->n * sizeof(double)))
        return 0;
    for (int v = 0; v < s->n; v++)
        if (!same_string(s->label[v], t->label[v])) return 0;
    if (a->table.n_obs != b->table.n_obs || a->table.n_samples != b->table.n_samples ||
        a->md.n_samples != b->md.n_samples || a->md.n_cols != b->md.n_cols)
        return 0;
    for (int o = 0; o < a->table.n_obs; o++)
        if (strcmp(a->table.obs_ids[o], b->table.obs_ids[o])) return 0;
    for (int c = 0; c < a->md.n_cols; c++)
        if (strcmp(a->md.col_names[c], b->md.col_names[c])) return 0;
    for (int j = 0; j < a->table.n_samples; j++)
        if (!same_sample(a, j, b, j)) return 0;
    return 1;
}

static fb_synth_microbiome_config small_config(void) {
    fb_synth_microbiome_config c = fb_synth_microbiome_defaults();
    c.samples = 200;
    c.asvs = 600;
    c.seed = 7;
    return c;
}

// ---- determinism ----

static void test_determinism(void **state) {
    (void)state;
    fb_synth_microbiome_config c = fb_synth_microbiome_defaults();
    c.seed = 11;
    world a, b, d;
    set_threads(1);
    draw(&c, &a);
    set_threads(2);
    draw(&c, &b);
    assert_true(same_world(&a, &b));   // 1 vs 2 threads, and a second draw of the same seed
    world_free(&b);
    draw(&c, &b);
    assert_true(same_world(&a, &b));
    world_free(&b);

    c.seed = 12;   // another seed: another tree, table and metadata
    draw(&c, &d);
    assert_false(same_world(&a, &d));
    assert_false(same_string(a.table.obs_ids[0], d.table.obs_ids[0]));
    assert_false(same_sample(&a, 0, &d, 0));
    world_free(&d);

    // The first 300 samples of the 1000 are a 300-sample run's (a sample's draws do not depend on N).
    c.seed = 11;
    c.samples = 300;
    draw(&c, &d);
    for (int j = 0; j < 300; j++) assert_true(same_sample(&a, j, &d, j));
    world_free(&d);
    world_free(&a);
}

// ---- tree ----

static int cmp_string(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static void test_tree(void **state) {
    (void)state;
    fb_synth_microbiome_config c = fb_synth_microbiome_defaults();
    world w;
    draw(&c, &w);
    const fb_tree *t = &w.tree;
    const int M = c.asvs, n = t->n;
    assert_int_equal(n, 2 * M - 1);
    assert_int_equal(t->root, 0);
    assert_int_equal(t->parent[0], -1);
    assert_true(isnan(t->length[0]));   // the root has no branch
    int *kids = calloc((size_t)n, sizeof *kids);
    for (int v = 1; v < n; v++) {
        assert_true(t->parent[v] >= 0 && t->parent[v] < v);   // preorder: the parent comes first
        assert_true(isfinite(t->length[v]) && t->length[v] > 0);
        kids[t->parent[v]]++;
    }
    for (int v = 0; v < n; v++) {   // every node reaches the root (bounded walk)
        int u = v, steps = 0;
        while (u != t->root && steps++ < n) u = t->parent[u];
        assert_int_equal(u, t->root);
    }
    // Tips: no children, a label of 150 ACGT bases; internal nodes: two children, no label. The
    // tips in preorder are the table's observations.
    int tips = 0;
    const char **labels = malloc((size_t)M * sizeof *labels);
    for (int v = 0; v < n; v++) {
        if (kids[v]) {
            assert_int_equal(kids[v], 2);
            assert_null(t->label[v]);
            continue;
        }
        assert_non_null(t->label[v]);
        assert_int_equal(strlen(t->label[v]), FB_SM_SEQUENCE_LENGTH);
        assert_int_equal(strspn(t->label[v], "ACGT"), FB_SM_SEQUENCE_LENGTH);
        assert_true(tips < M);
        assert_string_equal(w.table.obs_ids[tips], t->label[v]);
        labels[tips++] = t->label[v];
    }
    assert_int_equal(tips, M);
    qsort(labels, (size_t)M, sizeof *labels, cmp_string);
    for (int i = 1; i < M; i++) assert_true(strcmp(labels[i - 1], labels[i]) < 0);   // unique
    double total = 0;
    for (int v = 1; v < n; v++) total += t->length[v];
    printf("tree: %d tips, %d nodes, mean branch length %.4f (model 0.1)\n", M, n, total / (n - 1));
    free(labels);
    free(kids);
    world_free(&w);
}

// ---- table ----

static void test_table(void **state) {
    (void)state;
    fb_synth_microbiome_config c = fb_synth_microbiome_defaults();
    world w;
    draw(&c, &w);
    const fb_table *t = &w.table;
    const int N = c.samples, M = c.asvs;
    assert_int_equal(t->n_samples, N);
    assert_int_equal(t->n_obs, M);
    assert_int_equal(t->indptr[0], 0);
    int below = 0;
    double present = 0;
    for (int j = 0; j < N; j++) {
        assert_true(t->indptr[j + 1] > t->indptr[j]);
        double depth = 0;
        for (int64_t e = t->indptr[j]; e < t->indptr[j + 1]; e++) {
            assert_true(t->indices[e] >= 0 && t->indices[e] < M);
            if (e > t->indptr[j]) assert_true(t->indices[e] > t->indices[e - 1]);   // increasing
            assert_true(t->data[e] >= 1 && t->data[e] == floor(t->data[e]));
            depth += t->data[e];
        }
        assert_true(depth >= (double)c.depth_min && depth <= (double)c.depth_max);
        below += depth < 5000;
        present += (double)(t->indptr[j + 1] - t->indptr[j]);
        char id[16];
        snprintf(id, sizeof id, "S%04d", j + 1);
        assert_string_equal(t->sample_ids[j], id);
    }
    present /= N;
    // Depth log-uniform on [3000, 30000]: P(depth < 5000) = ln(5/3)/ln(10) = 0.222, sd 0.013 at
    // N = 1000; richness uniform on [75, 225]: mean 150, sd of the mean 1.4.
    printf("table: %lld entries, mean ASVs per sample %.1f (richness %d), %.1f%% of samples below 5000 reads "
           "(model 22.2%%)\n", (long long)t->indptr[N], present, c.richness, 100.0 * below / N);
    assert_true(fabs(present - c.richness) < 0.05 * c.richness);
    assert_true(below > 0.17 * N && below < 0.27 * N);
    world_free(&w);

    // Small corners: richness at its bounds, one depth, one category, everything missing.
    c = small_config();
    c.asvs = 40;
    c.richness = 40;
    c.depth_min = c.depth_max = 40;
    c.categories = 1;
    c.missing = 1.0;
    draw(&c, &w);
    for (int j = 0; j < c.samples; j++) {
        const int64_t n = w.table.indptr[j + 1] - w.table.indptr[j];
        assert_true(n >= 20 && n <= 40);   // [richness/2, richness], capped at M = depth = 40
        double depth = 0;
        for (int64_t e = w.table.indptr[j]; e < w.table.indptr[j + 1]; e++) depth += w.table.data[e];
        assert_true(depth == 40);
        for (int k = 0; k < c.columns; k++) assert_string_equal(w.md.values[k][j], "");
    }
    world_free(&w);
}

// ---- metadata ----

// The values of the default columns with C = 4, as the header names them.
static const char *DEFAULT_VALUES[3][4] = {{"spring", "summer", "autumn", "winter"},
                                           {"site_1", "site_2", "site_3", "site_4"},
                                           {"infant", "child", "adult", "senior"}};

// The category (0-based) of sample i in column k from its recorded value; -1 when unknown.
static int category_of(const world *w, int k, int i, int C) {
    const char *v = w->md.values[k][i];
    if (!*v) return -1;
    for (int x = 0; x < C; x++) {
        char buf[64];
        if (k < 3 && C == 4) snprintf(buf, sizeof buf, "%s", DEFAULT_VALUES[k][x]);
        else snprintf(buf, sizeof buf, "%s_%d", w->md.col_names[k], x + 1);
        if (!strcmp(v, buf)) return x;
    }
    fail_msg("column %s: unexpected value '%s'", w->md.col_names[k], v);
    return -1;
}

static void test_metadata(void **state) {
    (void)state;
    fb_synth_microbiome_config c = fb_synth_microbiome_defaults();
    world w;
    draw(&c, &w);
    const fb_metadata *md = &w.md;
    const int N = c.samples, K = c.columns;
    assert_int_equal(md->n_samples, N);
    assert_int_equal(md->n_cols, K + 1);
    const char *names[] = {"season", "site", "host_age_group", "target"};
    for (int k = 0; k <= K; k++) assert_string_equal(md->col_names[k], names[k]);
    int missing = 0, seen[3][4] = {{0}};
    for (int i = 0; i < N; i++) {
        assert_string_equal(md->sample_ids[i], w.table.sample_ids[i]);
        for (int k = 0; k < K; k++) {
            const char *v = md->values[k][i];
            if (!*v) {
                missing++;
                continue;
            }
            seen[k][category_of(&w, k, i, c.categories)]++;
        }
        char *end;
        const double y = strtod(md->values[K][i], &end);
        assert_true(*md->values[K][i] && !*end && isfinite(y));
    }
    for (int k = 0; k < K; k++)
        for (int x = 0; x < 4; x++) assert_true(seen[k][x] > 150);   // uniform: 237 expected, sd 13
    // 3000 values, 5% missing: 150 expected, sd 12.
    printf("metadata: %d of %d categorical values missing (model %.0f)\n", missing, N * K, c.missing * N * K);
    assert_true(missing > 100 && missing < 200);
    world_free(&w);

    // Beyond the named columns and values: "factor_<k>", "<column>_<c>".
    c = small_config();
    c.columns = 8;
    c.categories = 6;
    draw(&c, &w);
    assert_string_equal(w.md.col_names[6], "factor_7");
    assert_string_equal(w.md.col_names[8], "target");
    for (int i = 0; i < c.samples; i++) {
        const char *v = w.md.values[0][i];
        assert_true(!*v || (!strncmp(v, "season_", 7) && v[7] >= '1' && v[7] <= '6' && !v[8]));
    }
    world_free(&w);
}

// ---- the target is the documented formula ----

// y recomputed from the counts, the recorded categories and the design; NAN when one is unknown.
static double formula_target(const fb_synth_microbiome_config *c, const fb_synth_microbiome_signal *s,
                             const world *w, int i) {
    const int K = c->columns, C = c->categories, G = FB_SM_TARGET_CLADES;
    int cat[FB_SM_MAX_COLUMNS];
    for (int k = 0; k < K; k++)
        if ((cat[k] = category_of(w, k, i, C)) < 0) return NAN;
    double y = 0;
    for (int g = 0; g < G; g++) {
        double slope = s->target_slope[g];
        for (int k = 0; k < K; k++) slope += c->interaction * s->interaction[((size_t)k * C + cat[k]) * G + g];
        y += fb_synth_microbiome_clade_feature(s, g, &w->table, i) * slope;
    }
    for (int k = 0; k < K; k++) y += s->main_effect[k * C + cat[k]];
    return y;
}

static void test_target_formula(void **state) {
    (void)state;
    fb_synth_microbiome_config c = fb_synth_microbiome_defaults();
    c.seed = 3;
    for (int pass = 0; pass < 2; pass++) {
        c.noise = pass ? 0.1 : 0.0;
        world w;
        fb_synth_microbiome_signal s;
        draw(&c, &w);
        assert_int_equal(fb_synth_microbiome_signal_get(&c, &s), FB_OK);
        // The signal's clades are subtrees of the drawn tree: their tips, in preorder, are the
        // observations [first_obs, first_obs + n_obs).
        for (int g = 0; g < FB_SM_TARGET_CLADES; g++) {
            const fb_synth_clade *cl = &s.target_clade[g];
            int tips = 0, rank = 0, v = 0;
            for (; v < cl->node; v++) rank += w.tree.label[v] != NULL;
            for (v = cl->node; v < w.tree.n; v++) {
                int u = v;
                while (u > cl->node) u = w.tree.parent[u];
                if (u == cl->node && w.tree.label[v]) tips++;
            }
            assert_int_equal(rank, cl->first_obs);
            assert_int_equal(tips, cl->n_obs);
        }
        int n = 0;
        double worst = 0, ss = 0;
        for (int i = 0; i < c.samples; i++) {
            const double want = formula_target(&c, &s, &w, i);
            if (isnan(want)) continue;
            const double got = strtod(w.md.values[c.columns][i], NULL), d = got - want;
            n++;
            ss += d * d;
            if (fabs(d) / (fabs(want) + 1e-300) > worst) worst = fabs(d) / (fabs(want) + 1e-300);
        }
        assert_true(n > 800);   // 0.95^3 = 86% of the samples have every column known
        if (pass == 0) {
            printf("target, noise 0: %d complete samples, worst relative error of the written value %.2g\n", n, worst);
            assert_true(worst < 1e-5);   // %.6g: at most 5e-6
        } else {
            const double sd = sqrt(ss / n);
            printf("target, noise 0.1: residual sd %.4f over %d complete samples\n", sd, n);
            assert_true(fabs(sd - c.noise) < 0.015);   // sd of the sd estimate: 0.1 / sqrt(2n) = 0.0024
        }
        fb_synth_microbiome_signal_free(&s);
        world_free(&w);
    }
}

// ---- the designed signal ----

// Unweighted UniFrac of every pair (N, N): Σ lengths of branches above exactly one sample's ASVs
// / Σ above either. A branch is above a sample's ASVs when one of its tips is present; with the
// tree in preorder, a child's presence is passed to its parent by one reverse sweep.
static double *unifrac_matrix(const world *w) {
    const fb_tree *t = &w->tree;
    const int N = w->table.n_samples, n = t->n;
    int *node_of = malloc((size_t)w->table.n_obs * sizeof *node_of);
    for (int v = 0, r = 0; v < n; v++)
        if (t->label[v]) node_of[r++] = v;
    unsigned char *above = calloc((size_t)N * n, 1);
    for (int j = 0; j < N; j++) {
        unsigned char *p = above + (size_t)j * n;
        for (int64_t e = w->table.indptr[j]; e < w->table.indptr[j + 1]; e++) p[node_of[w->table.indices[e]]] = 1;
        for (int v = n - 1; v > 0; v--) p[t->parent[v]] |= p[v];
    }
    double *D = calloc((size_t)N * N, sizeof *D);
    #pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) {
            const unsigned char *a = above + (size_t)i * n, *b = above + (size_t)j * n;
            double unique = 0, total = 0;
            for (int v = 1; v < n; v++) {
                unique += t->length[v] * (a[v] ^ b[v]);
                total += t->length[v] * (a[v] | b[v]);
            }
            D[(size_t)i * N + j] = D[(size_t)j * N + i] = unique / total;
        }
    free(above);
    free(node_of);
    return D;
}

// Bray-Curtis on relative abundances (the samples' depths differ): 1 - Σ min(p_a, q_a).
static double *bray_curtis_matrix(const world *w) {
    const fb_table *t = &w->table;
    const int N = t->n_samples, M = t->n_obs;
    double *P = calloc((size_t)N * M, sizeof *P), *D = calloc((size_t)N * N, sizeof *D);
    for (int j = 0; j < N; j++) {
        double depth = 0;
        for (int64_t e = t->indptr[j]; e < t->indptr[j + 1]; e++) depth += t->data[e];
        for (int64_t e = t->indptr[j]; e < t->indptr[j + 1]; e++) P[(size_t)j * M + t->indices[e]] = t->data[e] / depth;
    }
    #pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) {
            double shared = 0;
            for (int64_t e = t->indptr[j]; e < t->indptr[j + 1]; e++) {
                const double p = P[(size_t)i * M + t->indices[e]], q = P[(size_t)j * M + t->indices[e]];
                shared += p < q ? p : q;
            }
            D[(size_t)i * N + j] = D[(size_t)j * N + i] = 1.0 - shared;
        }
    free(P);
    return D;
}

// Mean distance across groups minus mean distance within groups, over pairs whose labels are both
// known (label -1 = unknown).
static double group_gap(const double *D, int N, const int *label) {
    double within = 0, across = 0;
    long nw = 0, na = 0;
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) {
            if (label[i] < 0 || label[j] < 0) continue;
            if (label[i] == label[j]) within += D[(size_t)i * N + j], nw++;
            else across += D[(size_t)i * N + j], na++;
        }
    return across / na - within / nw;
}

static uint64_t test_rng = 0x243F6A8885A308D3ull;   // xorshift64, for the permutations only
static int test_rand(int n) {
    test_rng ^= test_rng << 13;
    test_rng ^= test_rng >> 7;
    test_rng ^= test_rng << 17;
    return (int)(test_rng % (uint64_t)n);
}

// The gap of a metadata column against PERMUTATIONS relabellings (the null of no metadata effect):
// the observed gap must be positive and exceed the largest permuted |gap| `margin` times.
#define PERMUTATIONS 20
static void check_gap(const char *metric, const double *D, int N, const int *label, double margin) {
    const double gap = group_gap(D, N, label);
    int *perm = malloc((size_t)N * sizeof *perm);
    memcpy(perm, label, (size_t)N * sizeof *perm);
    double null_max = 0;
    for (int p = 0; p < PERMUTATIONS; p++) {
        for (int i = N - 1; i > 0; i--) {
            const int j = test_rand(i + 1), tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        const double g = fabs(group_gap(D, N, perm));
        if (g > null_max) null_max = g;
    }
    double mean = 0;
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) mean += D[(size_t)i * N + j];
    mean /= (double)N * (N - 1) / 2;
    printf("signal: %s mean %.4f, across - within a season %.4f; largest of %d permuted |gaps| %.4f (x%.1f)\n",
           metric, mean, gap, PERMUTATIONS, null_max, gap / null_max);
    assert_true(gap > 0 && gap > margin * null_max);
    free(perm);
}

static void test_signal_distances(void **state) {
    (void)state;
    fb_synth_microbiome_config c = fb_synth_microbiome_defaults();
    c.samples = 300;
    c.seed = 5;
    world w;
    draw(&c, &w);
    int *label = malloc((size_t)c.samples * sizeof *label);
    for (int i = 0; i < c.samples; i++) label[i] = category_of(&w, 0, i, c.categories);
    double *U = unifrac_matrix(&w), *B = bray_curtis_matrix(&w);
    check_gap("unweighted UniFrac", U, c.samples, label, 3.0);
    check_gap("Bray-Curtis", B, c.samples, label, 3.0);
    free(U);
    free(B);
    world_free(&w);

    // Control: with no clade effect the metadata carries no composition signal: the gap is then
    // null noise (permuted gaps are ~0.0005 here, the largest of 20 at most 0.0013 over 12 seeds).
    c.clade_effect = 0;
    draw(&c, &w);
    for (int i = 0; i < c.samples; i++) label[i] = category_of(&w, 0, i, c.categories);
    U = unifrac_matrix(&w);
    const double gap = group_gap(U, c.samples, label);
    printf("signal: clade_effect 0: UniFrac across - within %.4f\n", gap);
    assert_true(fabs(gap) < 0.002);
    free(U);
    free(label);
    world_free(&w);
}

// R² of the least-squares fit of y (n) on the columns cols[0..p) of X (n, stride): normal
// equations solved by Gauss-Jordan elimination with partial pivoting (p <= 64, well conditioned
// here: indicators and log-abundances).
static double r_squared(const double *X, int stride, int n, const int *cols, int p, const double *y) {
    double A[64][65] = {{0}};
    assert_true(p <= 64);
    for (int i = 0; i < n; i++) {
        const double *x = X + (size_t)i * stride;
        for (int a = 0; a < p; a++) {
            for (int b = 0; b < p; b++) A[a][b] += x[cols[a]] * x[cols[b]];
            A[a][p] += x[cols[a]] * y[i];
        }
    }
    for (int c = 0; c < p; c++) {
        int piv = c;
        for (int r = c + 1; r < p; r++)
            if (fabs(A[r][c]) > fabs(A[piv][c])) piv = r;
        for (int k = 0; k <= p; k++) {
            const double t = A[c][k];
            A[c][k] = A[piv][k];
            A[piv][k] = t;
        }
        for (int r = 0; r < p; r++) {
            if (r == c) continue;
            const double f = A[r][c] / A[c][c];
            for (int k = c; k <= p; k++) A[r][k] -= f * A[c][k];
        }
    }
    double mean = 0, total = 0, resid = 0;
    for (int i = 0; i < n; i++) mean += y[i];
    mean /= n;
    for (int i = 0; i < n; i++) {
        const double *x = X + (size_t)i * stride;
        double fit = 0;
        for (int a = 0; a < p; a++) fit += x[cols[a]] * A[a][p] / A[a][a];
        resid += (y[i] - fit) * (y[i] - fit);
        total += (y[i] - mean) * (y[i] - mean);
    }
    return 1.0 - resid / total;
}

// The target against the streams, on the samples whose categories are all known, by nested
// least-squares fits: composition alone (intercept + the G clade log-abundances φ), metadata alone
// (intercept + category indicators), both added, and both with their products φ_g x indicator
// (the model's interaction). Joint fits rather than one clade or one column: a single clade's
// slope changes sign across categories by design (so its marginal correlation can vanish) and a
// single column's main effects are 4 normal draws; over 25 seeds the minima were R² 0.09
// (composition), 0.12 (metadata), 0.10 (gain from the interaction).
// Null levels (no relation; n ~ 850 complete samples): p pure-noise predictors reach E[R²] = p/n,
// sd about sqrt(2p)/n: composition (4) 0.005 +- 0.003, metadata (9) 0.011 +- 0.004; the
// interaction's 36 extra terms would explain 0.042 +- 0.007 of the variance the additive fit leaves
// (at most 0.5 of the total here), i.e. <= 0.021 +- 0.004 of the total. The thresholds, 0.05 of
// the total variance for each, are 10, 9 and 7 null sds above those.
static void test_signal_target(void **state) {
    (void)state;
    fb_synth_microbiome_config c = fb_synth_microbiome_defaults();
    const int K = c.columns, C = c.categories, G = FB_SM_TARGET_CLADES, H = K * (C - 1);
    const int stride = 1 + G + H + G * H;   // [1, φ, indicators, φ x indicators]
    assert_true(stride <= 64);
    int comp[64], meta[64], all[64], np_meta = 0;
    for (int a = 0; a < stride; a++) all[a] = comp[a] = a;   // composition = the first 1 + G
    meta[np_meta++] = 0;
    for (int h = 0; h < H; h++) meta[np_meta++] = 1 + G + h;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        c.seed = seed;
        world w;
        fb_synth_microbiome_signal s;
        draw(&c, &w);
        assert_int_equal(fb_synth_microbiome_signal_get(&c, &s), FB_OK);
        double *X = malloc((size_t)c.samples * stride * sizeof *X), *y = malloc((size_t)c.samples * sizeof *y);
        int n = 0;
        for (int i = 0; i < c.samples; i++) {
            double *x = X + (size_t)n * stride;
            int known = 1;
            x[0] = 1;
            for (int g = 0; g < G; g++) x[1 + g] = fb_synth_microbiome_clade_feature(&s, g, &w.table, i);
            for (int k = 0; k < K; k++) {
                const int cat = category_of(&w, k, i, C);
                known &= cat >= 0;
                for (int v = 1; v < C; v++) x[1 + G + k * (C - 1) + v - 1] = cat == v;
            }
            if (!known) continue;
            for (int g = 0; g < G; g++)
                for (int h = 0; h < H; h++) x[1 + G + H + g * H + h] = x[1 + g] * x[1 + G + h];
            y[n++] = strtod(w.md.values[K][i], NULL);
        }
        const double r_comp = r_squared(X, stride, n, comp, 1 + G, y), r_meta = r_squared(X, stride, n, meta, np_meta, y);
        const double r_add = r_squared(X, stride, n, all, 1 + G + H, y), r_full = r_squared(X, stride, n, all, stride, y);
        printf("signal, seed %llu (%d complete samples): R² of the target on composition %.3f, metadata %.3f, "
               "both added %.3f, with their interaction %.4f\n", (unsigned long long)seed, n, r_comp, r_meta, r_add,
               r_full);
        assert_true(r_comp > 0.05);
        assert_true(r_meta > 0.05);
        assert_true(r_full - r_add > 0.05);
        free(X);
        free(y);
        fb_synth_microbiome_signal_free(&s);
        world_free(&w);
    }
}

// ---- bad configs ----

static void expect_refused(const fb_synth_microbiome_config *c, const char *field) {
    world w;
    memset(&w, 0x5a, sizeof w);   // overwritten: zeroed on failure
    assert_int_equal(fb_synth_microbiome(c, &w.tree, &w.table, &w.md), FB_ERR_CONFIG);
    printf("refused: %s\n", fb_last_error());
    if (!strstr(fb_last_error(), field)) fail_msg("message '%s' does not name %s", fb_last_error(), field);
    assert_int_equal(w.tree.n, 0);
    assert_null(w.table.indptr);
    assert_null(w.md.values);
    fb_synth_microbiome_signal s;
    assert_int_equal(fb_synth_microbiome_signal_get(c, &s), FB_ERR_CONFIG);
    assert_null(s.base);
}

static void test_bad_configs(void **state) {
    (void)state;
    const fb_synth_microbiome_config ok = small_config();
    fb_synth_microbiome_config c;
#define BAD(field, value) do { c = ok; c.field = value; expect_refused(&c, #field); } while (0)
    BAD(samples, 0);
    BAD(samples, -3);
    BAD(asvs, 1);
    BAD(columns, 0);
    BAD(columns, FB_SM_MAX_COLUMNS + 1);
    BAD(categories, 0);
    BAD(categories, FB_SM_MAX_CATEGORIES + 1);
    BAD(missing, -0.1);
    BAD(missing, 1.5);
    BAD(missing, NAN);
    BAD(depth_min, 0);
    BAD(depth_min, 40000);   // above depth_max
    BAD(depth_max, FB_SM_MAX_DEPTH + 1);
    BAD(richness, 0);
    BAD(richness, 601);      // above asvs
    BAD(richness, 3001);     // above depth_min
    BAD(clade_effect, -1);
    BAD(clade_effect, INFINITY);
    BAD(interaction, NAN);
    BAD(noise, -0.5);
#undef BAD
    assert_int_equal(fb_synth_microbiome_check(NULL), FB_ERR_CONFIG);
    assert_int_equal(fb_synth_microbiome_check(&ok), FB_OK);
}

// ---- generation time (printed, not asserted) ----

static void time_one(int samples, int asvs) {
    fb_synth_microbiome_config c = fb_synth_microbiome_defaults();
    c.samples = samples;
    c.asvs = asvs;
    world w;
    const double t0 = omp_get_wtime();
    draw(&c, &w);
    const double t = omp_get_wtime() - t0;
    double reads = 0;
    for (int64_t e = 0; e < w.table.indptr[samples]; e++) reads += w.table.data[e];
    printf("time: %d samples x %d ASVs: %.3f s on %d threads (%.3g reads, %lld entries)\n", samples, asvs, t,
           omp_get_max_threads(), reads, (long long)w.table.indptr[samples]);
    world_free(&w);
}

static void test_timing(void **state) {
    (void)state;
    set_threads(omp_get_num_procs());
    time_one(1000, 2000);
    time_one(10000, 20000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_tree),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_target_formula),
        cmocka_unit_test(test_signal_distances),
        cmocka_unit_test(test_signal_target),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_timing),
    };
    return cmocka_run_group_tests_name("synth_microbiome", tests, NULL, NULL);
}
