// The microbiome scenario's data from a user's files, as the source system (003) takes them: a
// BIOM 2.1 table (observation ids = ASV sequences), a Newick tree, a metadata TSV with a
// `sample_id` column and a numeric target column, and a UniFrac matrix (Striped UniFrac's HDF5
// layout) or none (then computed with libssu from the table and the tree).
//
// Two steps, so that each MPI rank reads only its own samples of the table:
//   1. fb_microbiome_plan (one process, rank 0): which of the table's samples make the dataset and
//      in what order — the table's order, restricted to samples in the metadata and the matrix
//      (one that is missing is an error naming it) and with at least `depth` reads (the others are
//      dropped and reported, as rarefaction drops them). Reads every sample's counts once.
//   2. fb_microbiome_load (every rank, with the plan): reads the wanted samples only (HDF5
//      hyperslabs), rarefies them (draws keyed by sample id: the same as a one-process run),
//      keeps `max_tokens` ASVs each, encodes the categorical columns (sorted by name, 0 =
//      unknown, categories fitted on the whole dataset), the target, and each held sample's row
//      of UniFrac distances.
// No MPI here: the driver broadcasts the plan (plain arrays).
#pragma once
#include <stdint.h>
#include "microbiome_data.h"
#include "rarefy.h"

typedef struct {
    const char *table, *tree, *metadata;
    const char *unifrac;           // NULL: computed with libssu (unweighted, fp64) from table and tree
    const char *target;            // numeric target column (NULL: "target")
    int64_t depth;                 // rarefaction depth (0: none; the source: 5000)
    int max_tokens;                // ASVs kept per sample (0: 32)
    fb_select_mode select;         // which ASVs when a sample has more (source default: abundance? see .c)
    uint64_t seed;                 // rarefaction and random token selection
    int threads;                   // for libssu when it computes the matrix (0: current)
} fb_microbiome_files;

typedef struct {
    int n_total;         // dataset samples
    int32_t *file_index; // (n_total) each one's sample index in the table file
    int n_dropped;       // below the rarefaction depth
    char **dropped;      // (n_dropped) their ids
    int64_t min_total, max_total;   // reads per sample over the table (for the report)
} fb_microbiome_plan;

void fb_microbiome_plan_free(fb_microbiome_plan *p);
fb_status fb_microbiome_plan_make(const fb_microbiome_files *f, fb_microbiome_plan *p);
// want(ctx, k, n_total): 1 when dataset sample k is to be held here. NULL: every sample.
fb_status fb_microbiome_load(const fb_microbiome_files *f, const fb_microbiome_plan *p,
                             int (*want)(void *ctx, int64_t k, int n_total), void *ctx, fb_microbiome_data *d);
