#include <stdlib.h>
#include <string.h>
#include "metadata.h"
#include "microbiome_data.h"
#include "table.h"
#include "tree.h"

static void free_strings(char **s, int n) {
    for (int i = 0; s && i < n; i++) free(s[i]);
    free(s);
}

void fb_tree_free(fb_tree *t) {
    free(t->parent);
    free(t->length);
    free_strings(t->label, t->n);
    memset(t, 0, sizeof *t);
}

void fb_table_free(fb_table *t) {
    free_strings(t->obs_ids, t->n_obs);
    free_strings(t->sample_ids, t->n_samples);
    free(t->indptr);
    free(t->indices);
    free(t->data);
    memset(t, 0, sizeof *t);
}

void fb_metadata_free(fb_metadata *m) {
    for (int c = 0; m->values && c < m->n_cols; c++) free_strings(m->values[c], m->n_samples);
    free(m->values);
    free_strings(m->col_names, m->n_cols);
    free_strings(m->sample_ids, m->n_samples);
    memset(m, 0, sizeof *m);
}

void fb_microbiome_data_free(fb_microbiome_data *d) {
    free(d->index);
    free(d->tokens);
    free(d->log_abund);
    free(d->cats);
    free(d->target);
    free(d->unifrac);
    free_strings(d->sample_ids, d->n);
    free_strings(d->column_names, d->K);
    free(d->target_name);
    memset(d, 0, sizeof *d);
}

int fb_microbiome_data_row(const fb_microbiome_data *d, int64_t k) {
    int lo = 0, hi = d->n - 1;
    while (lo <= hi) {
        const int mid = lo + (hi - lo) / 2;
        if (d->index[mid] == k) return mid;
        if (d->index[mid] < k) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}
