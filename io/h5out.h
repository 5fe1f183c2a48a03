// The one place that writes HDF5 result files. Kernels know nothing of files; drivers hand this
// module plain arrays.
//
// A result file is written atomically: fb_h5_create opens "<path>.tmp"; fb_h5_close renames it to
// <path> only when every write succeeded (and the close did), so an error never leaves a
// half-written result under the real name (the .tmp is removed).
//
// A "table" is a group with one 1-D dataset per column, all of the same length (rows), each with a
// `units` attribute (and `description` when given); the group's attribute `columns` lists the
// column names in order and `nrows` the row count. Columns are float64, int64 or variable-length
// UTF-8 strings; datasets are chunked with an unlimited length, shuffle + deflate level 1 (H5MD's
// layout), so a trace can grow a table with fb_h5_table_append after creating it.
//
// Errors: every function returns FB_OK or FB_ERR_IO with the reason in fb_last_error(); after the
// first error the file is marked failed and fb_h5_close discards it.
#pragma once
#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>
#include "../kernels/common.h"

typedef struct {
    hid_t file;
    char path[1024], tmp[1040];
    int failed;
    struct fb_h5_live *live;   // a live trace's state (io/h5trace.h); NULL for a file from fb_h5_create
} fb_h5;

fb_status fb_h5_create(fb_h5 *h, const char *path);
// Closes the file; renames <path>.tmp to <path> when nothing failed, else removes the .tmp and
// returns FB_ERR_IO.
fb_status fb_h5_close(fb_h5 *h);
// Closes and removes the .tmp whatever happened (for a driver's error path).
void fb_h5_discard(fb_h5 *h);

// Creates group `name` under `parent` (intermediate groups too), or opens it when it exists;
// returns its id (close with H5Gclose) or H5I_INVALID_HID, marking the file failed.
hid_t fb_h5_group(fb_h5 *h, hid_t parent, const char *name);

// Scalar attributes on a group or dataset (strings: variable-length UTF-8).
fb_status fb_h5_attr_string(fb_h5 *h, hid_t loc, const char *name, const char *value);
fb_status fb_h5_attr_int(fb_h5 *h, hid_t loc, const char *name, int64_t value);
fb_status fb_h5_attr_double(fb_h5 *h, hid_t loc, const char *name, double value);
// 1-D array attributes.
fb_status fb_h5_attr_int_array(fb_h5 *h, hid_t loc, const char *name, const int64_t *values, size_t n);
fb_status fb_h5_attr_double_array(fb_h5 *h, hid_t loc, const char *name, const double *values, size_t n);

// A 1-D float32 dataset of n values (contiguous, uncompressed: checkpoints and parameter dumps).
fb_status fb_h5_write_floats(fb_h5 *h, hid_t parent, const char *name, const float *data, size_t n);

// An N-d int64 dataset (ndim <= 8, row-major data), with a `units` attribute, `description` when
// given, and each dimension labelled (H5DSset_label: h5py's dset.dims[i].label) by dim_names.
fb_status fb_h5_write_i64_nd(fb_h5 *h, hid_t parent, const char *name, int ndim, const int64_t *dims,
                             const char *const *dim_names, const int64_t *data, const char *units,
                             const char *description);

// The same for float32 data.
fb_status fb_h5_write_f32_nd(fb_h5 *h, hid_t parent, const char *name, int ndim, const int64_t *dims,
                             const char *const *dim_names, const float *data, const char *units,
                             const char *description);

// ---- Tables ----

typedef enum { FB_COL_F64, FB_COL_I64, FB_COL_STR } fb_col_type;

typedef struct {
    const char *name;
    fb_col_type type;
    const char *units;         // "ms", "GFLOP/s", "1" (dimensionless), "" for labels
    const char *description;   // NULL: no attribute
} fb_h5_column;

#define FB_H5_TABLE_MAX_COLS 64

typedef struct {
    fb_h5 *h;
    hid_t group;
    int ncols;
    fb_col_type types[FB_H5_TABLE_MAX_COLS];
    hid_t dsets[FB_H5_TABLE_MAX_COLS];
    size_t nrows;
} fb_h5_table;

// Creates the table group `name` under `parent` with the given columns (0 rows); chunk_rows is the
// chunk length of every column (0: 1024).
fb_status fb_h5_table_create(fb_h5_table *t, fb_h5 *h, hid_t parent, const char *name, const fb_h5_column *cols,
                             int ncols, size_t chunk_rows);
// Appends nrows rows: data[c] points at nrows values of column c's type (double, int64_t, or
// const char * for strings; a NULL string is stored as "").
fb_status fb_h5_table_append(fb_h5_table *t, size_t nrows, const void *const *data);
fb_status fb_h5_table_close(fb_h5_table *t);
// create + append + close in one call.
fb_status fb_h5_write_table(fb_h5 *h, hid_t parent, const char *name, const fb_h5_column *cols, int ncols,
                            size_t nrows, const void *const *data);
