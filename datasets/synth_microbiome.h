// A synthetic microbiome world in memory, the data the 003 source system (jbk708/aam) trains on:
// a phylogenetic tree over ASVs, an ASV count table (samples x ASVs) and sample metadata with
// categorical columns and a numeric regression target. The files (BIOM 2.1, Newick, metadata TSV,
// UniFrac matrices) are written from these structs by the other datasets/ writers. No files here.
//
// It follows harness/scenario_microbiome.c's in-memory generator (clade abundance shifts by
// category, per-ASV offsets, log-normal abundances, a target from clade abundances x categories),
// with clades that are real subtrees of a drawn tree instead of fixed index blocks, and presence
// drawn so that unweighted UniFrac (which sees presence only) carries the metadata signal.
//
// Generative model (every draw a function of (seed, stream, sample, index) through Philox,
// kernels/rng.h; notation: N samples, M ASVs, K columns, C categories per column):
//   tree      M tips joined two at a time, the pair chosen uniformly among the remaining roots
//             (random joining: the Kingman coalescent's = the Yule process's topology), rooted,
//             binary; every branch length Exp(mean 0.1), > 0. Tips are labelled with random
//             150-base ACGT strings (the source system's observation ids are the ASV sequences),
//             unique by construction (below); internal nodes unlabelled.
//   design    per ASV a baseline log-abundance base_a ~ N(0, 1) (common and rare ASVs);
//             per (column k, category c) SHIFTS_PER_VALUE subtrees ("clades") with a log-fold
//             shift s = ±clade_effect·U(0.5, 1.5): that category multiplies the abundance of every
//             tip under them by e^s;
//             TARGET_CLADES distinct subtrees g with a slope u_g = ±U(0.5, 1.5), per (k, c, g) an
//             interaction v ~ N(0, 1), per (k, c) a main effect m ~ N(0, 0.5²).
//             Shifted clades are drawn among the subtrees of M/100 .. M/10 tips (seen among a
//             sample's ~richness ASVs, yet a distinct group), target clades among those of
//             M/20 .. M/5 (rarely absent from a sample, so their log-abundance is a smooth feature
//             rather than a presence flag); at least 2 tips, any subtree in a tree too small.
//   sample i  true categories c_ik uniform; each recorded as "" (unknown) with probability
//             `missing` (the true one still drives the data, as unrecorded metadata does);
//             read depth D_i log-uniform in [depth_min, depth_max]; richness n_i uniform in
//             [richness − ⌊richness/2⌋, richness + ⌊richness/2⌋] (mean = richness), capped at M and D_i;
//             ℓ_ia = base_a + Σ_k (shifts of c_ik over the clades holding a);
//             present ASVs: n_i drawn without replacement with probability ∝ e^ℓ (Gumbel top-k:
//             the n_i largest ℓ_ia + Gumbel_ia);
//             relative abundances p_ia ∝ exp(ℓ_ia + N(0, 1)) over the present ASVs (log-normal);
//             counts: 1 read per present ASV (its presence is what the draw decided) + the other
//             D_i − n_i reads multinomial(p) (exact, by Walker's alias method); Σ counts = D_i.
//   target    y_i = Σ_g φ_ig (u_g + interaction·Σ_k v[k, c_ik, g]) + Σ_k m[k, c_ik] + noise·N(0, 1)
//             φ_ig = log((R_ig + 1) / (D_i + 1)) − φ0_g, R_ig the reads under clade g, φ0_g the
//             clade's log share of the baseline weights Σ_{a∈g} e^base_a / Σ_a e^base_a (a rough
//             centring, so that v changes mostly the slope rather than the intercept).
// Why this signal: the 003 model has an ASV path (sample embedding, trained against UniFrac) and
// a categorical path fused into the target path. Categories shift which clades thrive, in presence
// and abundance, so UniFrac distances between samples depend on their metadata (samples sharing a
// value share the favoured clades). The target reads both streams: the composition (φ, which also
// carries abundance noise the metadata cannot explain), the metadata (m, and the unknown values'
// irreducible noise), and their interaction (v: a category changes the size, even the sign, of a
// clade's effect), so no single stream predicts it and how they are fused matters.
//
// Layout of the results:
//   tree   2M − 1 nodes numbered in preorder (root 0, a node's children in increasing index),
//          which is how datasets/newick.c numbers a parsed tree, so writing and reading it back
//          gives the same arrays. The root's length is NAN (it has no branch); every other node's
//          length is positive. The tips, in preorder, are the table's observations 0..M−1 in that
//          order, so the tips under any node are a contiguous range of observations.
//   table  obs_ids = tip labels in observation order; sample ids "S0001".. (zero-padded to at least
//          4 digits, so they sort in sample order); CSC by sample, indices increasing.
//   md     sample_id as the table's; columns = the K categorical columns ("season", "site",
//          "host_age_group", "diet", "body_site", "sample_type", then "factor_7"..), then "target"
//          (written "%.6g"). Values are a column's natural names when it has at least C of them
//          ("spring", "summer", ...), else "<column>_<c>" with c = 1..C ("site_3"); "" = unknown.
// Label uniqueness: tip r's first 64 bases are the 128 bits of Philox block 3r under one key, and
// Philox is a bijection of its counter for a fixed key, so two tips never share them.
//
// Determinism: bitwise a function of the config (seed included), whatever the thread count
// (samples are spread over OpenMP threads; each sample's draws are indexed by the sample). A
// sample's data do not depend on N either: the first n samples of a larger run are a smaller run's
// (their ids too while N stays within the same id width).
//
// Cost: the tree O(M); per sample O(M + D_i): one scan over the M ASVs for the presence keys (a
// bounded heap of the n_i best; most ASVs are passed over by one multiply-compare, see the .c),
// O(n_i) for the alias table, one alias draw per read. O(N·(M + mean depth)) in all, parallel
// over samples; memory O(N·richness + M·150) for the results, O(M) scratch per thread. Measured
// (tests/test_synth_microbiome.c prints it): 1000 x 2000 in ~0.1 s, 10,000 x 20,000 (1.2e8 reads)
// in ~2 s on one core.
#pragma once
#include <stdint.h>
#include "../kernels/common.h"
#include "metadata.h"
#include "table.h"
#include "tree.h"

// Limits of the config (names and ids are generated for any size up to these).
#define FB_SM_MAX_SAMPLES (1 << 28)        // per-sample random streams stay in range
#define FB_SM_MAX_COLUMNS 64
#define FB_SM_MAX_CATEGORIES 1000
#define FB_SM_MAX_ASVS (1 << 28)           // 2M − 1 nodes and the sampling streams stay in range
#define FB_SM_MAX_DEPTH (INT64_C(1) << 30) // reads are drawn one by one: O(depth) per sample
#define FB_SM_SEQUENCE_LENGTH 150          // bases per ASV label
#define FB_SM_SHIFTS_PER_VALUE 3           // clades a category value shifts
#define FB_SM_TARGET_CLADES 4              // clades whose abundance enters the target

typedef struct {
    int samples;                   // N (default 1000)
    int asvs;                      // M tips (default 2000), >= 2
    int columns;                   // categorical metadata columns K (default 3)
    int categories;                // values per column C (default 4)
    double missing;                // fraction of categorical values left empty (default 0.05)
    int64_t depth_min, depth_max;  // read depth per sample, log-uniform (defaults 3000, 30000: about
                                   // 22% of samples fall below the source's 5000 rarefaction depth)
    int richness;                  // expected ASVs present per sample (default 150)
    double clade_effect;           // metadata -> clade log-fold shift scale (default 1.0)
    double interaction;            // metadata x composition interaction in the target (default 0.5)
    double noise;                  // target noise sd (default 0.1)
    uint64_t seed;
} fb_synth_microbiome_config;

fb_synth_microbiome_config fb_synth_microbiome_defaults(void);

// FB_ERR_CONFIG with a message naming the field and its allowed range when c is not valid.
fb_status fb_synth_microbiome_check(const fb_synth_microbiome_config *c);

// Draws the world into tree, table and md (overwritten, not freed first; on error all three are
// left zeroed). Free them with fb_tree_free, fb_table_free, fb_metadata_free.
fb_status fb_synth_microbiome(const fb_synth_microbiome_config *c, fb_tree *tree, fb_table *table,
                              fb_metadata *md);

// ---- The designed signal, for tests and for documenting a generated data set ----

typedef struct {
    int node;                 // tree node at the clade's root
    int first_obs, n_obs;     // its tips: table observations [first_obs, first_obs + n_obs)
} fb_synth_clade;

typedef struct {
    int columns, categories, asvs;
    double *base;             // (M) baseline log-abundance of each observation
    fb_synth_clade *shift_clade;   // (K, C, SHIFTS_PER_VALUE) clades a category value shifts
    double *shift;            // (K, C, SHIFTS_PER_VALUE) their log-fold shifts
    fb_synth_clade target_clade[FB_SM_TARGET_CLADES];
    double target_center[FB_SM_TARGET_CLADES];   // φ0_g
    double target_slope[FB_SM_TARGET_CLADES];    // u_g
    double *interaction;      // (K, C, TARGET_CLADES) v (not yet scaled by config.interaction)
    double *main_effect;      // (K, C) m
} fb_synth_microbiome_signal;

// The design constants the config's world is drawn with (it draws the tree again: O(M)).
fb_status fb_synth_microbiome_signal_get(const fb_synth_microbiome_config *c, fb_synth_microbiome_signal *s);
void fb_synth_microbiome_signal_free(fb_synth_microbiome_signal *s);

// φ_ig of the model above for sample j of a table drawn with this signal (the target's
// composition feature, recomputed from the counts).
double fb_synth_microbiome_clade_feature(const fb_synth_microbiome_signal *s, int g, const fb_table *t, int j);
