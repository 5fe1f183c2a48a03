#include "microbiome_files.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "biom.h"
#include "metadata.h"
#include "newick.h"
#include "strindex.h"
#include "unifrac.h"

#define DEFAULT_TARGET "target"
#define DEFAULT_TOKENS 32

void fb_microbiome_plan_free(fb_microbiome_plan *p) {
    free(p->file_index);
    for (int i = 0; i < p->n_dropped; i++) free(p->dropped[i]);
    free(p->dropped);
    memset(p, 0, sizeof *p);
}

static char *dup_string(const char *s) {
    char *c = malloc(strlen(s) + 1);
    if (c) strcpy(c, s);
    return c;
}

// The matrix's ids and values (read, or computed from the table and the tree).
static fb_status unifrac_matrix(const fb_microbiome_files *f, double **m, char ***ids, int *n) {
    if (f->unifrac) return fb_unifrac_read(f->unifrac, m, ids, n);
    return fb_unifrac_compute(f->table, f->tree, FB_UNIFRAC_UNWEIGHTED, 0, f->threads, m, ids, n);
}

// Every table sample must be in the metadata and in the matrix: the first that is not is named.
static fb_status check_presence(const fb_microbiome_files *f, char **table_ids, int n_table, const fb_metadata *md,
                                const fb_strindex *matrix_rows, int *md_row) {
    FB_TRY(fb_metadata_match(md, (const char *const *)table_ids, n_table, md_row));
    char buf[80];
    for (int j = 0; j < n_table; j++) {
        FB_REQUIRE(md_row[j] >= 0, FB_ERR_CONFIG, "%s: sample '%s' of table %s has no row in the metadata",
                   f->metadata, fb_abbrev(table_ids[j], buf, sizeof buf), f->table);
        FB_REQUIRE(fb_strindex_find(matrix_rows, table_ids[j]) >= 0, FB_ERR_CONFIG,
                   "%s: sample '%s' of table %s is not in the UniFrac matrix",
                   f->unifrac ? f->unifrac : "the computed UniFrac matrix", fb_abbrev(table_ids[j], buf, sizeof buf),
                   f->table);
    }
    return FB_OK;
}

fb_status fb_microbiome_plan_make(const fb_microbiome_files *f, fb_microbiome_plan *p) {
    memset(p, 0, sizeof *p);
    FB_REQUIRE(f->table && f->tree && f->metadata, FB_ERR_CONFIG,
               "the microbiome data needs a table, a tree and metadata (--table, --tree, --metadata)");
    fb_table t = {0};
    fb_tree tree = {0};
    fb_metadata md = {0};
    double *m = NULL;
    char **mids = NULL;
    int n_m = 0, *md_row = NULL;
    fb_strindex *rows = NULL;
    fb_status st = fb_biom_read(f->table, NULL, 0, &t);
    if (st == FB_OK) st = fb_newick_read(f->tree, &tree);
    if (st == FB_OK)
        st = fb_tree_check_table(&tree, f->tree, (const char *const *)t.obs_ids, t.n_obs, f->table);
    if (st == FB_OK) st = fb_metadata_read(f->metadata, &md);
    if (st == FB_OK) st = unifrac_matrix(f, &m, &mids, &n_m);
    if (st == FB_OK)
        st = fb_strindex_build((const char *const *)mids, n_m, "sample id", f->unifrac ? f->unifrac : "UniFrac", &rows);
    if (st == FB_OK && !(md_row = malloc((size_t)(t.n_samples ? t.n_samples : 1) * sizeof(int))))
        st = fb_fail(FB_ERR_ALLOC, "no memory for %d samples", t.n_samples);
    if (st == FB_OK) st = check_presence(f, t.sample_ids, t.n_samples, &md, rows, md_row);
    if (st == FB_OK) {
        p->file_index = malloc((size_t)(t.n_samples ? t.n_samples : 1) * sizeof(int32_t));
        p->dropped = calloc((size_t)(t.n_samples ? t.n_samples : 1), sizeof(char *));
        if (!p->file_index || !p->dropped) st = fb_fail(FB_ERR_ALLOC, "no memory for the sample plan");
    }
    p->min_total = INT64_MAX;
    for (int j = 0; st == FB_OK && j < t.n_samples; j++) {
        double total = 0;
        for (int64_t e = t.indptr[j]; e < t.indptr[j + 1]; e++) total += t.data[e];
        const int64_t reads = (int64_t)total;
        if (reads < p->min_total) p->min_total = reads;
        if (reads > p->max_total) p->max_total = reads;
        if (f->depth > 0 && reads < f->depth) {
            if (!(p->dropped[p->n_dropped] = dup_string(t.sample_ids[j]))) st = fb_fail(FB_ERR_ALLOC, "no memory");
            p->n_dropped++;
        } else {
            p->file_index[p->n_total++] = j;
        }
    }
    if (st == FB_OK && p->n_total == 0)
        st = fb_fail(FB_ERR_CONFIG, "%s: rarefaction depth %lld is above every sample's total (largest: %lld)",
                     f->table, (long long)f->depth, (long long)p->max_total);
    free(md_row);
    fb_strindex_free(rows);
    free(m);
    fb_unifrac_free_ids(mids, n_m);
    fb_metadata_free(&md);
    fb_tree_free(&tree);
    fb_table_free(&t);
    if (st != FB_OK) fb_microbiome_plan_free(p);
    return st;
}

// The numeric target of every dataset sample (metadata rows md_row).
static fb_status parse_target(const fb_microbiome_files *f, const fb_metadata *md, int col, const int *md_row, int n,
                              const char *const *ids, float *out) {
    for (int i = 0; i < n; i++) {
        const char *v = md->values[col][md_row[i]];
        char *end = NULL;
        errno = 0;
        const double x = strtod(v, &end);
        FB_REQUIRE(!fb_metadata_is_missing(v) && end != v && *end == '\0' && errno == 0 && isfinite(x), FB_ERR_CONFIG,
                   "%s: sample '%s': target column '%s' holds '%s', not a number (every sample needs one)",
                   f->metadata, ids[i], md->col_names[col], v);
        out[i] = (float)x;
    }
    return FB_OK;
}

// The categorical columns: every column but the target, sorted by name; codes fitted on the
// whole dataset (all n_total samples), for the held rows.
static fb_status encode_columns(const fb_metadata *md, int target_col, const int *md_row_all, int n_total,
                                fb_microbiome_data *d, const int *held_md_row) {
    int *cols = malloc((size_t)(md->n_cols ? md->n_cols : 1) * sizeof(int));
    int *codes = malloc((size_t)(md->n_samples ? md->n_samples : 1) * sizeof(int));
    fb_status st = cols && codes ? FB_OK : fb_fail(FB_ERR_ALLOC, "no memory for the metadata encoding");
    if (st == FB_OK) st = fb_metadata_model_columns(md, NULL, 0, cols);
    int K = 0;
    for (int c = 0; st == FB_OK && c < md->n_cols; c++)
        if (cols[c] != target_col) cols[K++] = cols[c];
    if (st == FB_OK && K == 0) st = fb_fail(FB_ERR_CONFIG, "the metadata has no categorical column besides the target");
    if (st == FB_OK) {
        d->K = K;
        d->column_names = calloc((size_t)K, sizeof(char *));
        d->cats = calloc((size_t)(d->n ? d->n : 1) * K, sizeof(int32_t));
        if (!d->column_names || !d->cats) st = fb_fail(FB_ERR_ALLOC, "no memory for %d columns", K);
    }
    for (int k = 0; st == FB_OK && k < K; k++) {
        int card = 0;
        st = fb_metadata_encode_fit(md, cols[k], md_row_all, n_total, codes, &card, NULL);
        if (st != FB_OK) break;
        if (card > d->card) d->card = card;
        if (!(d->column_names[k] = dup_string(md->col_names[cols[k]]))) st = fb_fail(FB_ERR_ALLOC, "no memory");
        for (int i = 0; i < d->n; i++) d->cats[(size_t)i * K + k] = codes[held_md_row[i]];
    }
    if (st == FB_OK && d->card == 0) d->card = 1;   // every value unknown: one (unused) category
    free(cols);
    free(codes);
    return st;
}

fb_status fb_microbiome_load(const fb_microbiome_files *f, const fb_microbiome_plan *p,
                             int (*want)(void *ctx, int64_t k, int n_total), void *ctx, fb_microbiome_data *d) {
    memset(d, 0, sizeof *d);
    const int N = p->n_total, S = f->max_tokens > 0 ? f->max_tokens : DEFAULT_TOKENS;
    const char *target = f->target ? f->target : DEFAULT_TARGET;
    fb_table t = {0};
    fb_metadata md = {0};
    double *m = NULL;
    char **mids = NULL, **table_ids = NULL;
    int n_m = 0, n_table = 0, *md_row_all = NULL, *held_md_row = NULL, *files = NULL, *mrow = NULL;
    fb_strindex *rows = NULL;
    int32_t *obs = malloc((size_t)S * sizeof(int32_t));
    double *cnt = malloc((size_t)S * sizeof(double));
    d->index = malloc((size_t)(N ? N : 1) * sizeof(int64_t));
    fb_status st = obs && cnt && d->index ? FB_OK : fb_fail(FB_ERR_ALLOC, "no memory for %d samples", N);
    for (int64_t k = 0; st == FB_OK && k < N; k++)
        if (!want || want(ctx, k, N)) d->index[d->n++] = k;
    // The dataset's sample ids (all n_total): the file's ids in plan order.
    if (st == FB_OK) st = fb_biom_read_sample_ids(f->table, &table_ids, &n_table);
    if (st == FB_OK && !(files = malloc((size_t)(d->n ? d->n : 1) * sizeof(int))))
        st = fb_fail(FB_ERR_ALLOC, "no memory");
    for (int i = 0; st == FB_OK && i < d->n; i++) files[i] = p->file_index[d->index[i]];
    // This rank's samples only, rarefied as a one-process run would (draws keyed by sample id).
    if (st == FB_OK) st = fb_biom_read(f->table, files, d->n, &t);
    if (st == FB_OK && f->depth > 0 && t.n_samples > 0) {
        int n_dropped = 0;
        st = fb_rarefy(&t, f->depth, f->seed, NULL, &n_dropped);
        if (st == FB_OK && n_dropped)
            st = fb_fail(FB_ERR_INTERNAL, "%s: %d planned samples fell below depth %lld", f->table, n_dropped,
                         (long long)f->depth);
    }
    if (st == FB_OK) st = fb_metadata_read(f->metadata, &md);
    const char **all_ids = st == FB_OK ? malloc((size_t)(N ? N : 1) * sizeof(char *)) : NULL;
    if (st == FB_OK) {
        md_row_all = malloc((size_t)(N ? N : 1) * sizeof(int));
        held_md_row = malloc((size_t)(d->n ? d->n : 1) * sizeof(int));
        if (!all_ids || !md_row_all || !held_md_row) st = fb_fail(FB_ERR_ALLOC, "no memory");
    }
    for (int k = 0; st == FB_OK && k < N; k++) all_ids[k] = table_ids[p->file_index[k]];
    if (st == FB_OK) st = fb_metadata_match(&md, all_ids, N, md_row_all);
    for (int k = 0; st == FB_OK && k < N; k++)
        if (md_row_all[k] < 0) st = fb_fail(FB_ERR_CONFIG, "%s: sample '%s' has no row", f->metadata, all_ids[k]);
    for (int i = 0; st == FB_OK && i < d->n; i++) held_md_row[i] = md_row_all[d->index[i]];
    // Target and categorical columns.
    const int tcol = st == FB_OK ? fb_metadata_find_column(&md, target) : -1;
    if (st == FB_OK && tcol < 0)
        st = fb_fail(FB_ERR_CONFIG, "%s has no target column '%s' (give --target-column)", f->metadata, target);
    if (st == FB_OK) {
        d->target = malloc((size_t)(d->n ? d->n : 1) * sizeof(float));
        d->sample_ids = calloc((size_t)(d->n ? d->n : 1), sizeof(char *));
        d->tokens = calloc((size_t)(d->n ? d->n : 1) * S, sizeof(int32_t));
        d->log_abund = calloc((size_t)(d->n ? d->n : 1) * S, sizeof(float));
        d->target_name = dup_string(target);
        if (!d->target || !d->sample_ids || !d->tokens || !d->log_abund || !d->target_name)
            st = fb_fail(FB_ERR_ALLOC, "no memory for %d samples", d->n);
    }
    for (int i = 0; st == FB_OK && i < d->n; i++)
        if (!(d->sample_ids[i] = dup_string(t.sample_ids[i]))) st = fb_fail(FB_ERR_ALLOC, "no memory");
    if (st == FB_OK) st = parse_target(f, &md, tcol, held_md_row, d->n, (const char *const *)d->sample_ids, d->target);
    if (st == FB_OK) st = encode_columns(&md, tcol, md_row_all, N, d, held_md_row);
    // Tokens: ASV id = observation index + 1, log(1 + count), padding 0.
    d->S = S;
    d->V = t.n_obs;
    for (int i = 0; st == FB_OK && i < d->n; i++) {
        st = fb_select_tokens(&t, i, S, f->select, f->seed, obs, cnt);
        for (int s = 0; st == FB_OK && s < S && obs[s] >= 0; s++) {
            d->tokens[(size_t)i * S + s] = obs[s] + 1;
            d->log_abund[(size_t)i * S + s] = (float)log1p(cnt[s]);
        }
    }
    // UniFrac rows of the held samples, columns in dataset order.
    if (st == FB_OK) st = unifrac_matrix(f, &m, &mids, &n_m);
    if (st == FB_OK)
        st = fb_strindex_build((const char *const *)mids, n_m, "sample id", f->unifrac ? f->unifrac : "UniFrac", &rows);
    if (st == FB_OK) {
        mrow = malloc((size_t)(N ? N : 1) * sizeof(int));
        d->unifrac = malloc((size_t)(d->n ? d->n : 1) * N * sizeof(float));
        if (!mrow || !d->unifrac) st = fb_fail(FB_ERR_ALLOC, "no memory for %d x %d distances", d->n, N);
    }
    for (int k = 0; st == FB_OK && k < N; k++) {
        mrow[k] = fb_strindex_find(rows, all_ids[k]);
        if (mrow[k] < 0)
            st = fb_fail(FB_ERR_CONFIG, "%s: sample '%s' is not in the UniFrac matrix",
                         f->unifrac ? f->unifrac : "UniFrac", all_ids[k]);
    }
    for (int i = 0; st == FB_OK && i < d->n; i++) {
        const double *row = m + (size_t)mrow[d->index[i]] * n_m;
        for (int k = 0; k < N; k++) d->unifrac[(size_t)i * N + k] = (float)row[mrow[k]];
    }
    d->n_total = N;
    free(obs); free(cnt); free(all_ids); free(md_row_all); free(held_md_row); free(files); free(mrow);
    fb_strindex_free(rows);
    free(m);
    fb_unifrac_free_ids(mids, n_m);
    fb_biom_free_ids(table_ids, n_table);
    fb_metadata_free(&md);
    fb_table_free(&t);
    if (st != FB_OK) fb_microbiome_data_free(d);
    return st;
}
