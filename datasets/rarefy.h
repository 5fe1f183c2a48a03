// Rarefaction (every sample subsampled to the same number of reads, without replacement) and the
// choice of each sample's ASV tokens, as the source system (003) prepares a BIOM table: rarefied
// to 5000 reads (biom-format's Table.subsample, samples below the depth dropped), then at most
// token_limit ASVs per sample (first / abundance / random, its --asv-sampling).
//
// Randomness is Philox (kernels/rng.h) keyed by (seed, a 64-bit FNV-1a hash of the sample's id):
// a sample's draws do not depend on the thread count, on the table's sample order, or on which
// other samples were read with it, so a rank that read a quarter of the table rarefies its
// samples exactly as one rank with the whole table does.
#pragma once
#include <stdint.h>
#include "../kernels/common.h"
#include "table.h"

// Rarefies every sample of t, in place, to `depth` reads drawn without replacement: each of the
// sample's reads is equally likely to be kept, so the counts are one draw of the multivariate
// hypergeometric distribution. Samples whose total is below depth are removed from t; their ids
// move to *dropped (n_dropped of them, in table order; the caller frees each and the array;
// dropped == NULL: they are freed here). Observations stay as they are (biom-format also drops
// the observations left with no reads; indices here stay valid against the file's vocabulary).
// Entries that become 0 are removed.
// Cost: O(nnz + min(depth, total - depth)) time per sample and O(min(depth, total - depth))
// memory, whatever the total (Floyd's sampling of read positions, mapped to observations by a
// binary search over the running counts); OpenMP over samples.
// Errors (t untouched): FB_ERR_CONFIG when depth < 1, the table has no samples, a count is not a
// whole non-negative number (or a total exceeds 2^53), or depth is above every sample's total
// ("rarefaction depth 7000 is above every sample's total (largest: 5210, sample S17)");
// FB_ERR_ALLOC.
fb_status fb_rarefy(fb_table *t, int64_t depth, uint64_t seed, char ***dropped, int *n_dropped);

// How a sample with more than `limit` ASVs keeps `limit` of them (the source's --asv-sampling).
// A sample with at most `limit` ASVs keeps all of them in table order whatever the mode, as the
// source does.
typedef enum {
    FB_SELECT_FIRST,       // the first `limit` in table (observation index) order
    FB_SELECT_ABUNDANCE,   // the `limit` largest counts, largest first, ties in table order
    FB_SELECT_RANDOM,      // the first `limit` of a uniformly random permutation (torch.randperm)
} fb_select_mode;

// The ASVs (entries with a count > 0) of sample `sample` kept as its tokens:
// obs (limit) observation indices, -1 after the last; counts (limit) their counts, 0 after the last.
// seed is used by FB_SELECT_RANDOM only (vary it per epoch for the source's augmentation).
// Errors: FB_ERR_CONFIG for a sample outside the table, limit < 1 or an unknown mode;
// FB_ERR_ALLOC. Thread-safe: callers may run it for many samples in parallel.
fb_status fb_select_tokens(const fb_table *t, int sample, int limit, fb_select_mode mode, uint64_t seed, int32_t *obs,
                           double *counts);
