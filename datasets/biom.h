// BIOM 2.1 feature tables (HDF5) in and out of an fb_table.
//
// The file (http://biom-format.org/documentation/format_versions/biom-2.1.html):
//   /                     attributes id, type, format-url, format-version = [2, 1], generated-by,
//                         creation-date, shape = [observations, samples], nnz
//   observation/ids       (n_obs) variable-length UTF-8 strings (ASV sequences in the source system)
//   observation/matrix/   data (nnz) float64, indices (nnz) int32, indptr (n_obs + 1): CSR, one row
//                         per observation, its entries' sample indices
//   sample/ids            (n_samples)
//   sample/matrix/        the same entries as CSC: one row per sample, its observation indices
//   {observation,sample}/metadata/, group-metadata/   per-id metadata (not read; written empty)
// Readers take the sample/ axis only (it is the one a rank needs: its samples' entries are
// contiguous), and read both variable-length and fixed-length strings. BIOM 2.0 files (same
// layout) are read too; any other format-version is refused.
//
// Every function returns FB_OK or an error whose fb_last_error() names the file and what is wrong:
//   FB_ERR_IO      the file is missing, unreadable, not HDF5, truncated, not a BIOM table, a BIOM 1.0
//                  JSON or a classic TSV table (with the `biom convert` line that fixes it), or its
//                  contents disagree (shape vs ids, indptr vs indices, an index out of range, an
//                  observation listed twice in a sample, a non-finite count, a duplicate id)
//   FB_ERR_CONFIG  a requested sample index is out of range or repeated; a table to write is
//                  inconsistent
//   FB_ERR_ALLOC   out of memory
// HDF5's own error stack is silenced, so only that message shows.
#pragma once
#include "../kernels/common.h"
#include "table.h"

// The file's sample ids, in file order (cheap: for deciding which rank reads which samples).
// *ids (n) is malloc'd, each string too; free with fb_biom_free_ids. On error *ids = NULL, *n = 0.
fb_status fb_biom_read_sample_ids(const char *path, char ***ids, int *n);
void fb_biom_free_ids(char **ids, int n);

// The table restricted to samples[0..n_samples) (indices into the file's sample order, in the
// order wanted; samples == NULL: every sample in file order), read from sample/matrix with HDF5
// hyperslabs so only those samples' entries are read. Observation ids: all of the file's (the
// table's ASV vocabulary), so observation indices agree across ranks. Entries come out with
// increasing observation index within each sample (sorted here when a file has them out of
// order). *t is overwritten (not freed first); on error it is zeroed.
fb_status fb_biom_read(const char *path, const int *samples, int n_samples, fb_table *t);

// Reads observation/matrix (CSR) as well as sample/matrix and checks they hold the same entries
// (a test helper: fb_biom_read never looks at the CSR part). FB_ERR_IO names the first difference.
fb_status fb_biom_check_consistent(const char *path);

// Writes t as BIOM 2.1 with both the CSR and the CSC parts, ids as variable-length UTF-8, counts
// float64, indices int32, indptr int32 (int64 when nnz does not fit; both are valid), chunked with
// shuffle + deflate 1; what python3-biom-format's load_table and Striped UniFrac read. Atomic:
// written to <path>.tmp, renamed to <path> only when complete. table_id NULL: "No Table ID" (what
// biom-format writes). Refuses (FB_ERR_CONFIG) a table whose indptr/indices are inconsistent or
// whose ids are missing or repeated.
fb_status fb_biom_write(const char *path, const fb_table *t, const char *table_id);
