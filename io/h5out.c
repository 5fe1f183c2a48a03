#include "h5out.h"
#include <hdf5_hl.h>   // H5DSset_label
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Marks the file failed and records the reason.
static fb_status h5_fail(fb_h5 *h, const char *fmt, const char *what) {
    if (h) h->failed = 1;
    return fb_fail(FB_ERR_IO, fmt, what, h ? h->path : "?");
}

fb_status fb_h5_create(fb_h5 *h, const char *path) {
    memset(h, 0, sizeof *h);
    h->file = H5I_INVALID_HID;
    size_t n = strlen(path);
    FB_REQUIRE(n > 0 && n < sizeof h->path, FB_ERR_IO, "HDF5 output path is empty or too long (%zu chars)", n);
    memcpy(h->path, path, n + 1);
    snprintf(h->tmp, sizeof h->tmp, "%s.tmp", path);
    // CLOSE_STRONG: fb_h5_close really closes the file (and anything a caller left open) before
    // the rename.
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    H5E_BEGIN_TRY {   // our message below says what failed; HDF5's stack trace would bury it
        h->file = H5Fcreate(h->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl >= 0 ? fapl : H5P_DEFAULT);
    } H5E_END_TRY;
    if (fapl >= 0) H5Pclose(fapl);
    if (h->file < 0) {
        h->failed = 1;
        return fb_fail(FB_ERR_IO, "cannot create HDF5 file %s (does its folder exist and is it writable?)", h->tmp);
    }
    return FB_OK;
}

fb_status fb_h5_close(fb_h5 *h) {
    if (h->file < 0) {
        unlink(h->tmp);
        return fb_fail(FB_ERR_IO, "HDF5 file %s was not open", h->path);
    }
    herr_t rc = H5Fclose(h->file);
    h->file = H5I_INVALID_HID;
    if (rc < 0 || h->failed) {
        unlink(h->tmp);
        if (rc < 0) return fb_fail(FB_ERR_IO, "closing %s failed; nothing was written", h->tmp);
        // Keep the first error's message (fb_last_error) as it is.
        return FB_ERR_IO;
    }
    if (rename(h->tmp, h->path) != 0) {
        int e = errno;
        unlink(h->tmp);
        return fb_fail(FB_ERR_IO, "renaming %s to %s failed: %s", h->tmp, h->path, strerror(e));
    }
    return FB_OK;
}

void fb_h5_discard(fb_h5 *h) {
    if (h->file >= 0) H5Fclose(h->file);
    h->file = H5I_INVALID_HID;
    if (h->tmp[0]) unlink(h->tmp);
}

hid_t fb_h5_group(fb_h5 *h, hid_t parent, const char *name) {
    htri_t exists = 0;
    H5E_BEGIN_TRY { exists = H5Lexists(parent, name, H5P_DEFAULT); } H5E_END_TRY;   // < 0: a parent is missing
    if (exists > 0) {   // already there (a series made it): open it
        hid_t g = H5Gopen2(parent, name, H5P_DEFAULT);
        if (g < 0) h5_fail(h, "cannot open group '%s' in %s", name);
        return g;
    }
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl >= 0) H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(parent, name, lcpl >= 0 ? lcpl : H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (g < 0) h5_fail(h, "cannot create group '%s' in %s", name);
    return g;
}

static hid_t string_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

// Writes attribute `name` (replacing an existing one) of type `type` over `space`.
static fb_status write_attr(fb_h5 *h, hid_t loc, const char *name, hid_t type, hid_t space, const void *buf) {
    if (type < 0 || space < 0) return h5_fail(h, "cannot make the type of attribute '%s' in %s", name);
    if (H5Aexists(loc, name) > 0) H5Adelete(loc, name);
    hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return h5_fail(h, "cannot create attribute '%s' in %s", name);
    herr_t rc = H5Awrite(a, type, buf);
    H5Aclose(a);
    if (rc < 0) return h5_fail(h, "cannot write attribute '%s' in %s", name);
    return FB_OK;
}

fb_status fb_h5_attr_string(fb_h5 *h, hid_t loc, const char *name, const char *value) {
    const char *v = value ? value : "";
    hid_t t = string_type(), s = H5Screate(H5S_SCALAR);
    fb_status st = write_attr(h, loc, name, t, s, &v);
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    return st;
}

fb_status fb_h5_attr_int(fb_h5 *h, hid_t loc, const char *name, int64_t value) {
    hid_t s = H5Screate(H5S_SCALAR);
    fb_status st = write_attr(h, loc, name, H5T_NATIVE_INT64, s, &value);
    if (s >= 0) H5Sclose(s);
    return st;
}

fb_status fb_h5_attr_double(fb_h5 *h, hid_t loc, const char *name, double value) {
    hid_t s = H5Screate(H5S_SCALAR);
    fb_status st = write_attr(h, loc, name, H5T_NATIVE_DOUBLE, s, &value);
    if (s >= 0) H5Sclose(s);
    return st;
}

static fb_status attr_array(fb_h5 *h, hid_t loc, const char *name, hid_t type, const void *values, size_t n) {
    hsize_t dim = n;
    hid_t s = H5Screate_simple(1, &dim, NULL);
    fb_status st = write_attr(h, loc, name, type, s, values);
    if (s >= 0) H5Sclose(s);
    return st;
}

fb_status fb_h5_attr_int_array(fb_h5 *h, hid_t loc, const char *name, const int64_t *values, size_t n) {
    return attr_array(h, loc, name, H5T_NATIVE_INT64, values, n);
}

fb_status fb_h5_attr_double_array(fb_h5 *h, hid_t loc, const char *name, const double *values, size_t n) {
    return attr_array(h, loc, name, H5T_NATIVE_DOUBLE, values, n);
}

// ---- Tables ----

fb_status fb_h5_write_floats(fb_h5 *h, hid_t parent, const char *name, const float *data, size_t n) {
    hsize_t dims[1] = { (hsize_t)n };
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t d = space >= 0 ? H5Dcreate2(parent, name, H5T_NATIVE_FLOAT, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                         : H5I_INVALID_HID;
    herr_t rc = d >= 0 && n ? H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0;
    if (d >= 0) H5Dclose(d);
    if (space >= 0) H5Sclose(space);
    if (d < 0 || rc < 0) return h5_fail(h, "cannot write dataset '%s' in %s", name);
    return FB_OK;
}

static fb_status write_nd(fb_h5 *h, hid_t parent, const char *name, int ndim, const int64_t *dims,
                          const char *const *dim_names, hid_t type, const void *data, const char *units,
                          const char *description) {
    if (ndim < 1 || ndim > 8 || !data) {
        h->failed = 1;
        return fb_fail(FB_ERR_IO, "dataset '%s': %d dimensions (1..8) or no data", name, ndim);
    }
    hsize_t hd[8];
    for (int i = 0; i < ndim; i++) hd[i] = (hsize_t)dims[i];
    hid_t space = H5Screate_simple(ndim, hd, NULL);
    hid_t d = space >= 0 ? H5Dcreate2(parent, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                         : H5I_INVALID_HID;
    herr_t rc = d >= 0 ? H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
    for (int i = 0; rc >= 0 && dim_names && i < ndim; i++) rc = H5DSset_label(d, (unsigned)i, dim_names[i]);
    if (d >= 0) H5Dclose(d);
    if (space >= 0) H5Sclose(space);
    if (d < 0 || rc < 0) return h5_fail(h, "cannot write dataset '%s' in %s", name);
    hid_t ds = H5Dopen2(parent, name, H5P_DEFAULT);
    if (ds < 0) return h5_fail(h, "cannot reopen dataset '%s' in %s", name);
    fb_status st = fb_h5_attr_string(h, ds, "units", units ? units : "");
    if (st == FB_OK && description) st = fb_h5_attr_string(h, ds, "description", description);
    H5Dclose(ds);
    return st;
}

fb_status fb_h5_write_i64_nd(fb_h5 *h, hid_t parent, const char *name, int ndim, const int64_t *dims,
                             const char *const *dim_names, const int64_t *data, const char *units,
                             const char *description) {
    return write_nd(h, parent, name, ndim, dims, dim_names, H5T_NATIVE_INT64, data, units, description);
}

fb_status fb_h5_write_f32_nd(fb_h5 *h, hid_t parent, const char *name, int ndim, const int64_t *dims,
                             const char *const *dim_names, const float *data, const char *units,
                             const char *description) {
    return write_nd(h, parent, name, ndim, dims, dim_names, H5T_NATIVE_FLOAT, data, units, description);
}

static hid_t column_type(fb_col_type t) {
    switch (t) {
    case FB_COL_F64: return H5Tcopy(H5T_NATIVE_DOUBLE);
    case FB_COL_I64: return H5Tcopy(H5T_NATIVE_INT64);
    case FB_COL_STR: return string_type();
    }
    return H5I_INVALID_HID;
}

fb_status fb_h5_table_create(fb_h5_table *t, fb_h5 *h, hid_t parent, const char *name, const fb_h5_column *cols,
                             int ncols, size_t chunk_rows) {
    memset(t, 0, sizeof *t);
    t->h = h;
    t->group = H5I_INVALID_HID;
    if (ncols < 1 || ncols > FB_H5_TABLE_MAX_COLS) {
        h->failed = 1;
        return fb_fail(FB_ERR_IO, "table '%s': %d columns (1..%d allowed)", name, ncols, FB_H5_TABLE_MAX_COLS);
    }
    t->group = fb_h5_group(h, parent, name);
    if (t->group < 0) return FB_ERR_IO;
    hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = chunk_rows ? chunk_rows : 1024;
    int deflate = H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0;
    char list[2048];
    size_t used = 0;
    list[0] = '\0';
    for (int c = 0; c < ncols; c++) {
        t->types[c] = cols[c].type;
        t->dsets[c] = H5I_INVALID_HID;
        t->ncols = c + 1;
        hid_t type = column_type(cols[c].type), space = H5Screate_simple(1, &zero, &unlimited);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        if (dcpl >= 0) {
            H5Pset_chunk(dcpl, 1, &chunk);
            // Filters only help fixed-size numbers; a string column holds heap references.
            if (deflate && cols[c].type != FB_COL_STR) {
                H5Pset_shuffle(dcpl);
                H5Pset_deflate(dcpl, 1);
            }
        }
        if (type >= 0 && space >= 0 && dcpl >= 0)
            t->dsets[c] = H5Dcreate2(t->group, cols[c].name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        if (type >= 0) H5Tclose(type);
        if (space >= 0) H5Sclose(space);
        if (dcpl >= 0) H5Pclose(dcpl);
        if (t->dsets[c] < 0) {
            fb_h5_table_close(t);
            return h5_fail(h, "cannot create column '%s' in %s", cols[c].name);
        }
        fb_status st = fb_h5_attr_string(h, t->dsets[c], "units", cols[c].units ? cols[c].units : "");
        if (st == FB_OK && cols[c].description) st = fb_h5_attr_string(h, t->dsets[c], "description", cols[c].description);
        if (st != FB_OK) { fb_h5_table_close(t); return st; }
        if (used < sizeof list)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", c ? "," : "", cols[c].name);
    }
    fb_status st = fb_h5_attr_string(h, t->group, "columns", list);
    if (st == FB_OK) st = fb_h5_attr_int(h, t->group, "nrows", 0);
    if (st != FB_OK) fb_h5_table_close(t);
    return st;
}

fb_status fb_h5_table_append(fb_h5_table *t, size_t nrows, const void *const *data) {
    if (nrows == 0) return FB_OK;
    hsize_t start = t->nrows, count = nrows, total = t->nrows + nrows;
    for (int c = 0; c < t->ncols; c++) {
        if (!data[c]) {
            t->h->failed = 1;
            return fb_fail(FB_ERR_IO, "table column %d of %d has no data", c, t->ncols);
        }
        const void *buf = data[c];
        const char **strings = NULL;
        if (t->types[c] == FB_COL_STR) {   // NULL entries become ""
            strings = malloc(nrows * sizeof *strings);
            if (!strings) {
                t->h->failed = 1;
                return fb_fail(FB_ERR_IO, "out of memory for a string column of %zu rows", nrows);
            }
            const char *const *src = data[c];
            for (size_t i = 0; i < nrows; i++) strings[i] = src[i] ? src[i] : "";
            buf = strings;
        }
        hid_t type = column_type(t->types[c]), fspace = H5I_INVALID_HID, mspace = H5Screate_simple(1, &count, NULL);
        herr_t rc = H5Dset_extent(t->dsets[c], &total);
        if (rc >= 0) fspace = H5Dget_space(t->dsets[c]);
        if (fspace >= 0) rc = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count, NULL);
        if (rc >= 0 && fspace >= 0 && mspace >= 0 && type >= 0)
            rc = H5Dwrite(t->dsets[c], type, mspace, fspace, H5P_DEFAULT, buf);
        else
            rc = -1;
        if (type >= 0) H5Tclose(type);
        if (fspace >= 0) H5Sclose(fspace);
        if (mspace >= 0) H5Sclose(mspace);
        free(strings);
        if (rc < 0) {
            char name[256] = "?";
            H5Iget_name(t->dsets[c], name, sizeof name);
            return h5_fail(t->h, "cannot append rows to column %s in %s", name);
        }
    }
    t->nrows = total;
    return fb_h5_attr_int(t->h, t->group, "nrows", (int64_t)t->nrows);
}

fb_status fb_h5_table_close(fb_h5_table *t) {
    for (int c = 0; c < t->ncols; c++)
        if (t->dsets[c] >= 0) H5Dclose(t->dsets[c]);
    if (t->group >= 0) H5Gclose(t->group);
    t->ncols = 0;
    t->group = H5I_INVALID_HID;
    return t->h && t->h->failed ? FB_ERR_IO : FB_OK;
}

fb_status fb_h5_write_table(fb_h5 *h, hid_t parent, const char *name, const fb_h5_column *cols, int ncols,
                            size_t nrows, const void *const *data) {
    fb_h5_table t;
    fb_status st = fb_h5_table_create(&t, h, parent, name, cols, ncols, nrows ? nrows : 1);
    if (st == FB_OK) st = fb_h5_table_append(&t, nrows, data);
    fb_status cst = fb_h5_table_close(&t);
    return st != FB_OK ? st : cst;
}
