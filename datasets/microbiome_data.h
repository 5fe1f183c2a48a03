// The microbiome scenario's data when it comes from files (a BIOM table, a Newick tree, a metadata
// TSV, a UniFrac matrix) instead of the synthetic generator: per sample the model's tokens, the
// categorical ids and the regression target, and its UniFrac distances. Plain arrays: the harness
// (harness/scenario_microbiome.c) reads this struct and never a file; datasets/microbiome_data.c
// builds it from the files.
//
// Sample order: the dataset's samples are numbered 0..n_total-1 (the table's order, restricted to
// samples present in every file and kept by rarefaction). A process holds n of them (its rank's
// share, or all), listed in `index` (increasing).
#pragma once
#include <stdint.h>
#include "../kernels/common.h"

typedef struct {
    int n_total;          // samples in the dataset
    int n;                // samples held here
    int64_t *index;       // (n) dataset index of each held sample, increasing
    int S;                // tokens per sample (ASVs kept; padding 0 after them)
    int V;                // vocabulary: observations of the table (token id = observation index + 1)
    int K;                // categorical columns (sorted by name)
    int card;             // the largest cardinality of a column (codes 1..card, 0 = unknown)
    int32_t *tokens;      // (n, S)
    float *log_abund;     // (n, S) log(1 + count) of each token (0 for padding)
    int32_t *cats;        // (n, K)
    float *target;        // (n) the numeric target column
    float *unifrac;       // (n, n_total) UniFrac distance of each held sample to every sample
    char **sample_ids;    // (n) of the held samples
    char **column_names;  // (K)
    char *target_name;
} fb_microbiome_data;

void fb_microbiome_data_free(fb_microbiome_data *d);
// Row of dataset sample k among the held ones, or -1 (binary search in index).
int fb_microbiome_data_row(const fb_microbiome_data *d, int64_t k);
