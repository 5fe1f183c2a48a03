// UniFrac distance matrices: computed by libssu (Striped UniFrac, Debian libssu-dev), in one
// process or as stripe ranges merged on one rank; written and read in Striped UniFrac's HDF5
// layout; batch submatrices for the UniFrac pairwise loss (kernels/loss.h).
//
// How libssu is driven. Its C API (<unifrac/api.hpp>, C-compatible: extern "C" under C++, plain
// declarations under C) reads the BIOM table and the Newick tree from files. The table path is
// passed as given; the tree is first parsed by datasets/newick.c (so errors name line and column,
// and comments, blanks and '' escapes are allowed) and handed to libssu as a canonical copy in a
// temporary file (one line, no comments, every length written): libssu's own reader keeps blanks
// and [comments] as parts of labels, toggles on every quote, and aborts the process on a label
// holding ':' without a length. Labels holding a quote cannot be passed at all and are refused.
// libssu parses lengths with std::stof, i.e. as float32 (exactly what ssu, and the source
// system, compute with), so fp64 distances differ from scikit-bio's (float64 lengths) by about
// 1e-8 (tests/test_unifrac.c prints the figures). A missing length counts as 0 (libssu and
// scikit-bio agree).
// Before libssu runs, the table's ids are read (only observation/ids and sample/ids, after
// checking that the eight datasets libssu opens exist: it aborts the process on a missing one) and
// every observation must be a tip of the tree (fb_tree_check_table: libssu would only say "table
// and tree do not overlap"). libssu then reads the whole table through its own HDF5 (Debian's
// serial build; symbol versioning keeps it apart from our Open MPI build in the same process).
//
// Methods: libssu's "unweighted_fp64" / "weighted_normalized_fp64" / "weighted_unnormalized_fp64"
// and their "_fp32" forms (libssu's bare "unweighted" means fp32). Variance adjustment off,
// generalized alpha unused, tips not bypassed — ssu's defaults.
// Threads: libssu parallelises with OpenMP; `threads` > 0 sets omp_set_num_threads for the call
// (restored after), 0 keeps the current setting (OMP_NUM_THREADS).
#pragma once
#include <stddef.h>
#include "../kernels/common.h"
#include "strindex.h"

typedef enum {
    FB_UNIFRAC_UNWEIGHTED,
    FB_UNIFRAC_WEIGHTED_NORMALIZED,
    FB_UNIFRAC_WEIGHTED_UNNORMALIZED,
    FB_UNIFRAC_KIND_COUNT
} fb_unifrac_kind;

// "unweighted", "weighted_normalized", "weighted_unnormalized" (ssu's -m names without the
// precision suffix); NULL for an unknown kind.
const char *fb_unifrac_kind_name(fb_unifrac_kind kind);
// The kind of a name as above; FB_ERR_CONFIG naming the known ones otherwise.
fb_status fb_unifrac_kind_parse(const char *name, fb_unifrac_kind *kind);

// Frees n strings and the array (a NULL array is fine).
void fb_unifrac_free_ids(char **ids, int n);

// ---- One process ----

// The full matrix of a BIOM table and a Newick tree, in the table's sample order:
// *matrix (n, n) row-major, malloc'd; *sample_ids (n) malloc'd strings (fb_unifrac_free_ids).
// fp32 = 1 computes in float32 (libssu's *_fp32 methods, what the source system ran: ssu -m
// unweighted_fp32), the values widened to double.
fb_status fb_unifrac_compute(const char *table_path, const char *tree_path, fb_unifrac_kind kind, int fp32,
                             int threads, double **matrix, char ***sample_ids, int *n);

// ---- Distributed: stripes on P ranks, merged on one ----
//
// Striped UniFrac computes (N + 1) / 2 stripes; stripe s holds, for every sample k, the distance
// between k and (k + s + 1) mod N. Rank r of P computes stripes [r*S/P, (r+1)*S/P) (S stripes,
// integer division: ranges differ by at most one stripe and cover [0, S) exactly; with P > S some
// ranks get none). No MPI here: the caller (fusebench data unifrac) gathers the buffers, e.g.
// MPI_Gather of the sizes then MPI_Gatherv of the bytes, and merges on one rank.
//
// A partial buffer (bytes, native endianness and doubles: the ranks of one job share a machine
// type) is:
//   char magic[8] = "FBUFPRT1"
//   uint32 n_samples, stripe_start, stripe_stop, stripe_total, kind, fp32, ids_bytes
//   ids_bytes bytes: the n_samples sample ids, each NUL-terminated, in table order
//   (stripe_stop - stripe_start) x n_samples doubles: the stripes, each a row of n_samples
// The merge checks every field against the first buffer's (same table, kind and precision;
// stripes neither missing nor overlapping) and hands the stripes to libssu's merge_partial, so
// the merged matrix equals fb_unifrac_compute's bit for bit.

int fb_unifrac_stripes(int n_samples);   // (n_samples + 1) / 2
void fb_unifrac_stripe_range(int n_samples, int rank, int nranks, int *start, int *stop);

// This rank's stripes (libssu `partial`), serialised into *buf (malloc'd, *size bytes).
fb_status fb_unifrac_partial(const char *table_path, const char *tree_path, fb_unifrac_kind kind, int fp32,
                             int threads, int rank, int nranks, void **buf, size_t *size);
// The full matrix from the P ranks' buffers (any order; empty ranges allowed), as
// fb_unifrac_compute returns it.
fb_status fb_unifrac_merge(const void *const *bufs, const size_t *sizes, int nbufs, double **matrix,
                           char ***sample_ids, int *n);

// ---- Files: Striped UniFrac's HDF5 layout ----
//
// What `ssu ... --format hdf5` (libssu 1.2) writes, and what we write: datasets
//   format  "BDSM" and version "2020.12": 1-element fixed-length, space-padded ASCII strings;
//   order   (N) variable-length strings, the sample ids;
//   matrix  (N, N) float64, or float32 with fp32 = 1 (ssu's hdf5_fp32).
// ssu also writes pcoa_* datasets (a PCoA of the matrix); we do not compute one.
// Written atomically (io/h5out.h: <path>.tmp, renamed when complete).
fb_status fb_unifrac_write(const char *path, const double *matrix, const char *const *ids, int n, int fp32);

// Reads `matrix` — or `distances`, the key the source system (aam) writes — with `order`,
// float32 or float64. Errors name the file; checks: 2-D and square, as many ids as rows, ids
// unique, every value finite, symmetric and with a zero diagonal — exactly, as scikit-bio's
// DistanceMatrix (what the source system builds from the file) requires.
fb_status fb_unifrac_read(const char *path, double **matrix, char ***ids, int *n);

// The (b, b) submatrix for a batch, in batch order: out[i*b + j] = matrix[ri*n + rj] where ri is
// the row of batch_ids[i]. `rows` indexes the matrix's ids (fb_strindex_build(ids, n, "sample id",
// source, &rows)), built once and reused for every batch. The first absent id fails:
// "<source>: sample 'X' (batch position 3) is not in the UniFrac matrix".
fb_status fb_unifrac_submatrix(double *out, const double *matrix, int n, const fb_strindex *rows,
                               const char *source, const char *const *batch_ids, int b);
