// A feature table (observations x samples, counts) in memory, stored by sample (CSC: each sample's
// non-zero entries together), as BIOM 2.1's `sample/matrix` group and UniFrac want it. No files
// here: datasets/biom.c reads and writes it.
#pragma once
#include <stdint.h>

typedef struct {
    int n_obs, n_samples;
    char **obs_ids;      // (n_obs) observation ids (ASV sequences in the source system)
    char **sample_ids;   // (n_samples)
    int64_t *indptr;     // (n_samples + 1): sample j's entries are [indptr[j], indptr[j + 1])
    int32_t *indices;    // (nnz) observation index of each entry, increasing within a sample
    double *data;        // (nnz) counts
} fb_table;

void fb_table_free(fb_table *t);   // frees every array and zeroes the struct
