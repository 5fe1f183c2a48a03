// Reading HDF5 files: the read-only counterpart of io/h5out.h, for tools that look into result
// files (fusebench merge) rather than write them.
//
// A file is opened read-only with HDF5's error stack silenced: a missing attribute, a file that is
// not HDF5 or one still locked by a live writer gives one message in fb_last_error() (naming the
// file, the object and what was wrong), never HDF5's stack trace. Objects are addressed by their
// path inside the file: "/" (or "" ) the root, "summary", "steps/loss".
//
// Numbers are converted by HDF5 to the type asked for: an integer attribute or dataset reads as
// double too; a floating-point one does not read as an integer (FB_ERR_IO). Strings may be
// variable- or fixed-length. Every returned array or string is malloc'd and owned by the caller
// (free; fb_h5r_free_strings for string arrays).
//
// Errors: FB_OK, or FB_ERR_IO (FB_ERR_ALLOC when memory runs out) with the reason in fb_last_error().
#pragma once
#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>
#include "../kernels/common.h"

typedef struct {
    hid_t file;
    char path[1024];
} fb_h5r;

// Opens `path` read-only. On failure r->file is H5I_INVALID_HID and the reason says whether the
// file is absent, not HDF5, or could not be opened (e.g. locked by a run still writing it).
fb_status fb_h5r_open(fb_h5r *r, const char *path);
void fb_h5r_close(fb_h5r *r);

// 1 when the group or dataset `obj` exists (every component of its path), else 0.
int fb_h5r_exists(const fb_h5r *r, const char *obj);
// 1 when `obj` exists and carries attribute `name`, else 0.
int fb_h5r_attr_exists(const fb_h5r *r, const char *obj, const char *name);

// Scalar (or one-element) attributes of `obj`.
fb_status fb_h5r_attr_int(const fb_h5r *r, const char *obj, const char *name, int64_t *out);
fb_status fb_h5r_attr_double(const fb_h5r *r, const char *obj, const char *name, double *out);
fb_status fb_h5r_attr_string(const fb_h5r *r, const char *obj, const char *name, char **out);

// Number of elements of the 1-D (or scalar: 1) dataset `obj`.
fb_status fb_h5r_length(const fb_h5r *r, const char *obj, size_t *n);
// The whole 1-D dataset `obj`: *n elements in *out (NULL when *n is 0).
fb_status fb_h5r_read_doubles(const fb_h5r *r, const char *obj, double **out, size_t *n);
fb_status fb_h5r_read_int64s(const fb_h5r *r, const char *obj, int64_t **out, size_t *n);
// Column `col` of the 2-D numeric dataset `obj` (rows, cols): *n = rows values in *out.
fb_status fb_h5r_read_column(const fb_h5r *r, const char *obj, size_t col, double **out, size_t *n);
fb_status fb_h5r_read_strings(const fb_h5r *r, const char *obj, char ***out, size_t *n);
void fb_h5r_free_strings(char **strings, size_t n);

// Names of the links in group `obj`, in name order (*n of them, in *names; free with
// fb_h5r_free_strings).
fb_status fb_h5r_members(const fb_h5r *r, const char *obj, char ***names, size_t *n);
