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

// ---- The TSV (what the source reads with pandas.read_csv(sep="\t", encoding="utf-8-sig")) ----
//
// Reading:
//   - UTF-8; a leading byte-order mark is dropped. Lines end with \n or \r\n (a lone \r is refused); the last line may
//     lack its newline; blank lines are skipped (pandas' skip_blank_lines).
//   - The first non-blank line is the header. Column names are stripped of surrounding blanks (as
//     the source does), must be non-empty and distinct. The sample id column is the one named
//     exactly `sample_id`, anywhere in the header (the source's requirement). QIIME's "#SampleID",
//     "sample-id", "id" ... are not taken silently: the error says to rename the column.
//   - Fields are tab-separated. A field that starts with a double quote is quoted: it runs to the
//     closing quote, "" inside stands for one quote, tabs inside are kept (pandas' default
//     quoting). A quoted field cannot span lines. Unquoted fields are kept byte for byte (pandas
//     does not strip values either).
//   - Every row has exactly the header's number of fields; sample ids are non-empty and distinct.
//   - Values are kept as strings ("" where the field is empty). Which strings mean "missing" is
//     decided by the encoding (fb_metadata_is_missing), not by the reader.
// Errors (fb_last_error names the file and the line): FB_ERR_IO for a missing or unreadable file,
// an empty file ("M.tsv is empty (no header line)"), no sample_id column, a row with the wrong
// number of fields ("M.tsv line 17: 5 fields, header has 6"), a duplicate sample id ("M.tsv line 9:
// sample id 'S3' already on line 4"), an empty sample id, a bad quote; FB_ERR_ALLOC.
// *m is overwritten (not freed first); zeroed on error.
fb_status fb_metadata_read(const char *path, fb_metadata *m);

// Writes m as a TSV fb_metadata_read reads back identically: header "sample_id<TAB>names...",
// one row per sample, fields holding a tab or a double quote quoted. Atomic (<path>.tmp, then
// renamed). FB_ERR_CONFIG for a value or name holding a line break (not representable) or a NULL
// string; FB_ERR_IO when the file cannot be written.
fb_status fb_metadata_write(const char *path, const fb_metadata *m);

// ---- Lookups ----

// Index of column `name` (not sample_id), or -1.
int fb_metadata_find_column(const fb_metadata *m, const char *name);
// Row of sample `id`, or -1. A linear scan: for many ids use fb_metadata_match (one hash index).
int fb_metadata_find_sample(const fb_metadata *m, const char *id);
// rows[i] = the row of ids[i] in m, or -1 where m has no such sample; O(n_samples + n) with a
// hash index built for the call. FB_ERR_ALLOC only.
fb_status fb_metadata_match(const fb_metadata *m, const char *const *ids, int n, int *rows);

// ---- Categorical encoding (the source's CategoricalEncoder) ----

// The strings that mean "missing": the empty string and pandas' default NA spellings ("NA", "N/A",
// "n/a", "NaN", "nan", "-NaN", "-nan", "None", "NULL", "null", "<NA>", "#N/A", "#N/A N/A", "#NA",
// "1.#IND", "-1.#IND", "1.#QNAN", "-1.#QNAN"), which pandas.read_csv turns into NaN before the
// source's encoder drops them.
int fb_metadata_is_missing(const char *value);

// Column col's encoding: its distinct non-missing values sorted (byte order of the UTF-8 strings,
// which is Python's sorted() on str) get codes 1..K; missing values get 0 (unknown).
//   codes (n_samples), *cardinality = K (not counting 0: the embedding table has K + 1 rows),
//   *categories (K) the sorted names, malloc'd (free each and the array); categories NULL: not
//   returned.
// Where the source differs: pandas parses numeric columns into numbers and encodes str(number),
// so spellings it normalises ("01" and "1", "1.50" and "1.5") are one category there, two here.
// Errors: FB_ERR_CONFIG for a column outside [0, n_cols); FB_ERR_ALLOC.
fb_status fb_metadata_encode(const fb_metadata *m, int col, int *codes, int *cardinality, char ***categories);
// The same with the categories taken from rows fit_rows[0..n_fit) only (the source fits its
// encoder on the training samples): a value of another row that is not among them gets 0, as the
// source's transform does for unseen categories.
fb_status fb_metadata_encode_fit(const fb_metadata *m, int col, const int *fit_rows, int n_fit, int *codes,
                                 int *cardinality, char ***categories);

// The categorical columns fed to the model, in the order the model concatenates their embeddings:
// sorted by name (byte order), as the source does. names (n_names) picks columns by name (NULL:
// every column); cols (n_names, or n_cols when names is NULL) receives their indices, sorted.
// Errors: FB_ERR_CONFIG for an unknown or repeated name ("metadata has no column 'x' (columns: a,
// b, c)").
fb_status fb_metadata_model_columns(const fb_metadata *m, const char *const *names, int n_names, int *cols);
