// Sample metadata in memory (a TSV with a `sample_id` column), and its categorical encoding as the
// source system (003) does it. datasets/metadata.c reads and writes the TSV.
#pragma once
#include "../kernels/common.h"

typedef struct {
    int n_samples, n_cols;
    char **sample_ids;   // (n_samples)
    char **col_names;    // (n_cols) without the sample_id column
    char ***values;      // [col][sample] raw strings ("" for missing)
} fb_metadata;

void fb_metadata_free(fb_metadata *m);
