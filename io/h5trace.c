// Live HDF5 traces (see h5trace.h for the guarantees and the layout).
//
// Each series keeps its rows since the last flush in one row-major buffer; a flush extends every
// dataset of the series by those rows and writes its columns of the buffer straight from there (a
// strided memory selection, no copy), then H5Fflush brings the whole file to a consistent state.
#include "h5trace.h"
#include <hdf5_hl.h>   // H5DSset_scale, H5DSattach_scale
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fb_h5_live {
    int nseries;
    fb_h5_series *series[FB_H5_LIVE_MAX_SERIES];
};

typedef struct {
    char *name;
    hid_t dset;
    size_t offset, width;   // its values in a buffered row: [offset, offset + width); width 1 or nlabels
} series_var;

struct fb_h5_series {
    fb_h5 *h;
    char path[512];            // the group's path in the file, for messages
    hid_t group, step, labels; // labels: H5I_INVALID_HID when nlabels == 0
    int nvars, nlabels;
    series_var *vars;          // (nvars)
    size_t row_width;          // doubles per buffered row: the sum of the vars' widths
    size_t flushed;            // rows on disk
    size_t pending, cap;       // rows buffered since the last flush; rows the buffer holds
    int64_t *steps;            // (cap) the buffered rows' steps
    double *values;            // (cap, row_width) the buffered rows
    int64_t last_step;         // of the last row appended (valid when rows > 0)
};

// An HDF5 call failed: marks the file failed (so finish leaves complete = 0) and records why.
static fb_status io_fail(fb_h5 *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static fb_status io_fail(fb_h5 *h, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    h->failed = 1;
    return fb_fail(FB_ERR_IO, "%s", msg);
}

static fb_status require_live(const fb_h5 *h, const char *fn) {
    FB_REQUIRE(h, FB_ERR_CONFIG, "%s: no file given (NULL)", fn);
    FB_REQUIRE(h->live && h->file >= 0, FB_ERR_CONFIG, "%s: '%s' is not an open live file (from fb_h5_live_create)",
               fn, h->path);
    return FB_OK;
}

// ---- File ----

fb_status fb_h5_live_create(fb_h5 *h, const char *path, const char *schema, int schema_version) {
    FB_REQUIRE(h, FB_ERR_CONFIG, "fb_h5_live_create: no fb_h5 given (NULL)");
    memset(h, 0, sizeof *h);   // h->tmp stays "": there is no temporary name to rename or remove
    h->file = H5I_INVALID_HID;
    h->failed = 1;             // until the file is made
    FB_REQUIRE(path && schema, FB_ERR_CONFIG, "fb_h5_live_create: no %s given (NULL)", path ? "schema" : "path");
    size_t n = strlen(path);
    FB_REQUIRE(n > 0 && n < sizeof h->path, FB_ERR_IO, "live HDF5 output path is empty or too long (%zu chars)", n);
    memcpy(h->path, path, n + 1);
    // H5F_ACC_EXCL below refuses too; this check gives the clear reason.
    struct stat sb;
    FB_REQUIRE(lstat(path, &sb) != 0, FB_ERR_IO,
               "%s exists already; a live trace never overwrites a previous result (remove it or choose another name)",
               path);
    h->live = calloc(1, sizeof *h->live);
    FB_REQUIRE(h->live, FB_ERR_ALLOC, "out of memory for live HDF5 file %s", path);
    // CLOSE_STRONG: fb_h5_live_finish really closes the file, even with an id a caller left open.
    // The default (earliest) library version bounds are kept on purpose: see h5trace.h.
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    H5E_BEGIN_TRY {
        h->file = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, fapl >= 0 ? fapl : H5P_DEFAULT);
    } H5E_END_TRY;
    if (fapl >= 0) H5Pclose(fapl);
    if (h->file < 0) {
        free(h->live);
        h->live = NULL;
        return fb_fail(FB_ERR_IO, "cannot create live HDF5 file %s (exists? folder missing or read-only?)", path);
    }
    h->failed = 0;
    fb_status st = fb_h5_attr_string(h, h->file, "schema", schema);
    if (st == FB_OK) st = fb_h5_attr_int(h, h->file, "schema_version", schema_version);
    if (st == FB_OK) st = fb_h5_attr_int(h, h->file, "complete", 0);
    if (st == FB_OK && H5Fflush(h->file, H5F_SCOPE_GLOBAL) < 0)
        st = io_fail(h, "cannot flush new live HDF5 file %s", path);
    if (st != FB_OK) {   // the file is ours (made with EXCL) and holds nothing yet: remove it
        H5Fclose(h->file);
        h->file = H5I_INVALID_HID;
        unlink(path);
        free(h->live);
        h->live = NULL;
    }
    return st;
}

// Extends dset ((rows,) or (rows, width)) to first + n rows and writes rows [first, first + n)
// from buf, a row-major (n, buf_width) array of `type` whose columns [col0, col0 + width) are this
// dataset's. A rank-1 dataset reads only the first entry of total/start/count (width is then 1).
static herr_t write_rows(hid_t dset, hid_t type, const void *buf, size_t buf_width, size_t col0, size_t width,
                         size_t first, size_t n) {
    hsize_t total[2] = { first + n, width }, start[2] = { first, 0 }, count[2] = { n, width };
    hsize_t mdims[2] = { n, buf_width }, mstart[2] = { 0, col0 };
    herr_t rc = H5Dset_extent(dset, total);
    hid_t fspace = rc >= 0 ? H5Dget_space(dset) : H5I_INVALID_HID, mspace = H5Screate_simple(2, mdims, NULL);
    if (fspace >= 0 && mspace >= 0 && H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
        H5Sselect_hyperslab(mspace, H5S_SELECT_SET, mstart, NULL, count, NULL) >= 0)
        rc = H5Dwrite(dset, type, mspace, fspace, H5P_DEFAULT, buf);
    else
        rc = -1;
    if (fspace >= 0) H5Sclose(fspace);
    if (mspace >= 0) H5Sclose(mspace);
    return rc;
}

// Writes the series' buffered rows. The step dataset is extended last, so a reader that trusts its
// length never sees a row some variable lacks.
static fb_status series_flush(fb_h5_series *s) {
    if (s->pending == 0) return FB_OK;
    for (int v = 0; v < s->nvars; v++) {
        const series_var *var = &s->vars[v];
        if (write_rows(var->dset, H5T_NATIVE_DOUBLE, s->values, s->row_width, var->offset, var->width, s->flushed,
                       s->pending) < 0)
            return io_fail(s->h, "cannot write %zu rows of %s/%s in %s", s->pending, s->path, var->name, s->h->path);
    }
    if (write_rows(s->step, H5T_NATIVE_INT64, s->steps, 1, 0, 1, s->flushed, s->pending) < 0)
        return io_fail(s->h, "cannot write %zu rows of %s/step in %s", s->pending, s->path, s->h->path);
    s->flushed += s->pending;
    s->pending = 0;
    return FB_OK;
}

fb_status fb_h5_live_flush(fb_h5 *h) {
    FB_TRY(require_live(h, "fb_h5_live_flush"));
    fb_status st = FB_OK;
    for (int i = 0; i < h->live->nseries; i++) {   // a failed series does not stop the others
        fb_status si = series_flush(h->live->series[i]);
        if (st == FB_OK) st = si;
    }
    if (H5Fflush(h->file, H5F_SCOPE_GLOBAL) < 0) st = io_fail(h, "cannot flush live HDF5 file %s", h->path);
    return st;
}

static void series_free(fb_h5_series *s) {
    if (!s) return;
    for (int v = 0; v < s->nvars; v++) {
        if (s->vars[v].dset >= 0) H5Dclose(s->vars[v].dset);
        free(s->vars[v].name);
    }
    if (s->labels >= 0) H5Dclose(s->labels);
    if (s->step >= 0) H5Dclose(s->step);
    if (s->group >= 0) H5Gclose(s->group);
    free(s->vars);
    free(s->steps);
    free(s->values);
    free(s);
}

fb_status fb_h5_live_finish(fb_h5 *h, int ok, const char *message) {
    FB_TRY(require_live(h, "fb_h5_live_finish"));
    int failed_before = h->failed;
    fb_status st = fb_h5_live_flush(h);
    if (ok && st == FB_OK && !failed_before) {
        st = fb_h5_attr_int(h, h->file, "complete", 1);
    } else {
        char why[1024];
        if (!ok)
            snprintf(why, sizeof why, "%s", message && *message ? message : "the run failed (no reason given)");
        else if (st != FB_OK)
            snprintf(why, sizeof why, "the final flush failed: %s", fb_last_error());
        else
            snprintf(why, sizeof why, "an earlier write to this file failed (its message went to the caller then)");
        fb_status est = fb_h5_attr_string(h, h->file, "error", why);
        if (st == FB_OK) st = est;
        if (ok && st == FB_OK)
            st = fb_fail(FB_ERR_IO, "live HDF5 file %s: an earlier write failed, so it stays complete = 0", h->path);
    }
    for (int i = 0; i < h->live->nseries; i++) series_free(h->live->series[i]);
    free(h->live);
    h->live = NULL;
    herr_t rc = H5Fclose(h->file);
    h->file = H5I_INVALID_HID;
    if (rc < 0 && st == FB_OK) st = io_fail(h, "closing live HDF5 file %s failed", h->path);
    return st;
}

// ---- Series ----

// A dataset name inside a series group: not empty, no '/', not ".".
static int bad_name(const char *n) { return !n || !*n || strchr(n, '/') || strcmp(n, ".") == 0; }

// Checks every argument of fb_h5_series_create before anything touches the file.
static fb_status series_check(const fb_h5 *h, hid_t parent, const char *name, const char *label_dim,
                              const char *const *labels, int nlabels, const fb_h5_var *vars, int nvars) {
    FB_REQUIRE(name && *name, FB_ERR_CONFIG, "fb_h5_series_create: no series name given");
    FB_REQUIRE(h->live->nseries < FB_H5_LIVE_MAX_SERIES, FB_ERR_CONFIG,
               "series '%s': %s holds %d series already (the most a live file takes)", name, h->path,
               FB_H5_LIVE_MAX_SERIES);
    FB_REQUIRE(H5Iis_valid(parent) > 0, FB_ERR_CONFIG, "series '%s': the parent group id is not valid", name);
    FB_REQUIRE(nvars >= 1 && vars, FB_ERR_CONFIG, "series '%s': %d variables given (at least 1 needed)", name,
               vars ? nvars : 0);
    FB_REQUIRE(nlabels >= 0, FB_ERR_CONFIG, "series '%s': nlabels = %d is negative", name, nlabels);
    if (nlabels > 0) {
        FB_REQUIRE(!bad_name(label_dim) && strcmp(label_dim, "step") != 0, FB_ERR_CONFIG,
                   "series '%s': label dimension name '%s' is missing, contains '/' or is \"step\"", name,
                   label_dim ? label_dim : "(NULL)");
        FB_REQUIRE(labels, FB_ERR_CONFIG, "series '%s': %d labels announced but none given (NULL)", name, nlabels);
        for (int i = 0; i < nlabels; i++)
            FB_REQUIRE(labels[i], FB_ERR_CONFIG, "series '%s': label %d of %d is NULL", name, i, nlabels);
    }
    for (int v = 0; v < nvars; v++) {
        const char *vn = vars[v].name;
        FB_REQUIRE(!bad_name(vn), FB_ERR_CONFIG, "series '%s': variable %d's name '%s' is empty or contains '/'", name,
                   v, vn ? vn : "(NULL)");
        FB_REQUIRE(strcmp(vn, "step") != 0 && (nlabels == 0 || strcmp(vn, label_dim) != 0), FB_ERR_CONFIG,
                   "series '%s': variable '%s' has the name of a dimension", name, vn);
        FB_REQUIRE(!vars[v].per_label || nlabels > 0, FB_ERR_CONFIG,
                   "series '%s': variable '%s' is per label but the series has no labels", name, vn);
        for (int w = 0; w < v; w++)
            FB_REQUIRE(strcmp(vars[w].name, vn) != 0, FB_ERR_CONFIG, "series '%s': variable '%s' given twice", name,
                       vn);
    }
    htri_t exists;
    H5E_BEGIN_TRY { exists = H5Lexists(parent, name, H5P_DEFAULT); } H5E_END_TRY;   // < 0: a parent is missing
    FB_REQUIRE(exists <= 0, FB_ERR_CONFIG, "series '%s' exists already in %s", name, h->path);
    return FB_OK;
}

// An extendible dataset of `type` in s's group: (0,) growing to (nsteps,) when nlabels == 0, else
// (0, nlabels) growing to (nsteps, nlabels); chunks of chunk_steps rows, shuffle + deflate 1.
static hid_t create_extendible(fb_h5_series *s, const char *name, hid_t type, int nlabels, size_t chunk_steps) {
    int rank = nlabels ? 2 : 1;
    hsize_t dims[2] = { 0, (hsize_t)nlabels }, maxdims[2] = { H5S_UNLIMITED, (hsize_t)nlabels };
    hsize_t chunk[2] = { chunk_steps, (hsize_t)(nlabels ? nlabels : 1) };
    hid_t space = H5Screate_simple(rank, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), dapl = H5Pcreate(H5P_DATASET_ACCESS), d = H5I_INVALID_HID;
    if (dcpl >= 0) {
        H5Pset_chunk(dcpl, rank, chunk);
        if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
            H5Pset_shuffle(dcpl);
            H5Pset_deflate(dcpl, 1);
        }
    }
    // The chunk cache holds two chunks at least, so the chunk a flush ends in stays in memory and
    // the next flush completes it without reading it back from the file (default: 1 MiB).
    size_t chunk_bytes = (size_t)chunk[0] * chunk[1] * H5Tget_size(type), cache = 2 * chunk_bytes;
    if (dapl >= 0 && cache > (1u << 20))
        H5Pset_chunk_cache(dapl, H5D_CHUNK_CACHE_NSLOTS_DEFAULT, cache, H5D_CHUNK_CACHE_W0_DEFAULT);
    if (space >= 0 && dcpl >= 0 && dapl >= 0) d = H5Dcreate2(s->group, name, type, space, H5P_DEFAULT, dcpl, dapl);
    if (space >= 0) H5Sclose(space);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (dapl >= 0) H5Pclose(dapl);
    if (d < 0) io_fail(s->h, "cannot create dataset %s/%s in %s", s->path, name, s->h->path);
    return d;
}

// The label coordinate: (nlabels,) variable-length UTF-8 strings, a dimension scale named label_dim.
static fb_status create_labels(fb_h5_series *s, const char *label_dim, const char *const *labels, int nlabels) {
    hsize_t n = (hsize_t)nlabels;
    hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate_simple(1, &n, NULL);
    if (type >= 0) {
        H5Tset_size(type, H5T_VARIABLE);
        H5Tset_cset(type, H5T_CSET_UTF8);
    }
    if (type >= 0 && space >= 0)
        s->labels = H5Dcreate2(s->group, label_dim, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = s->labels >= 0 ? H5Dwrite(s->labels, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels) : -1;
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (rc < 0 || H5DSset_scale(s->labels, label_dim) < 0)
        return io_fail(s->h, "cannot write the labels %s/%s in %s", s->path, label_dim, s->h->path);
    return fb_h5_attr_string(s->h, s->labels, "units", "");
}

static fb_status set_units(fb_h5 *h, hid_t d, const char *units, const char *description) {
    fb_status st = fb_h5_attr_string(h, d, "units", units ? units : "");
    if (st == FB_OK && description) st = fb_h5_attr_string(h, d, "description", description);
    return st;
}

// Makes the group, its coordinates and variables (0 rows) and flushes them to disk.
static fb_status series_build(fb_h5_series *s, hid_t parent, const char *name, const char *label_dim,
                              const char *const *labels, const fb_h5_var *vars, size_t chunk_steps) {
    fb_h5 *h = s->h;
    s->group = fb_h5_group(h, parent, name);
    if (s->group < 0) return FB_ERR_IO;
    if (H5Iget_name(s->group, s->path, sizeof s->path) < 0) snprintf(s->path, sizeof s->path, "%s", name);
    s->step = create_extendible(s, "step", H5T_NATIVE_INT64, 0, chunk_steps);
    if (s->step < 0) return FB_ERR_IO;
    if (H5DSset_scale(s->step, "step") < 0)
        return io_fail(h, "cannot make %s/step a dimension scale in %s", s->path, h->path);
    FB_TRY(set_units(h, s->step, "1", "the run's step number of each row"));
    if (s->nlabels > 0) FB_TRY(create_labels(s, label_dim, labels, s->nlabels));
    for (int v = 0; v < s->nvars; v++) {
        series_var *var = &s->vars[v];
        var->dset = create_extendible(s, var->name, H5T_NATIVE_DOUBLE, vars[v].per_label ? s->nlabels : 0, chunk_steps);
        if (var->dset < 0) return FB_ERR_IO;
        FB_TRY(set_units(h, var->dset, vars[v].units, vars[v].description));
        if (H5DSattach_scale(var->dset, s->step, 0) < 0 ||
            (vars[v].per_label && H5DSattach_scale(var->dset, s->labels, 1) < 0))
            return io_fail(h, "cannot attach the dimension scales to %s/%s in %s", s->path, var->name, h->path);
    }
    if (H5Fflush(h->file, H5F_SCOPE_GLOBAL) < 0) return io_fail(h, "cannot flush live HDF5 file %s", h->path);
    return FB_OK;
}

fb_status fb_h5_series_create(fb_h5 *h, hid_t parent, const char *name, const char *label_dim,
                              const char *const *labels, int nlabels, const fb_h5_var *vars, int nvars,
                              size_t chunk_steps, fb_h5_series **out) {
    FB_REQUIRE(out, FB_ERR_CONFIG, "fb_h5_series_create: no place for the series given (out is NULL)");
    *out = NULL;
    FB_TRY(require_live(h, "fb_h5_series_create"));
    FB_TRY(series_check(h, parent, name, label_dim, labels, nlabels, vars, nvars));
    fb_h5_series *s = calloc(1, sizeof *s);
    series_var *sv = calloc((size_t)nvars, sizeof *sv);
    if (!s || !sv) {
        free(s);
        free(sv);
        return fb_fail(FB_ERR_ALLOC, "out of memory for series '%s'", name);
    }
    s->h = h;
    s->group = s->step = s->labels = H5I_INVALID_HID;
    s->nlabels = nlabels;
    s->vars = sv;
    s->nvars = nvars;
    snprintf(s->path, sizeof s->path, "%s", name);
    fb_status st = FB_OK;
    for (int v = 0; v < nvars; v++) {
        sv[v].dset = H5I_INVALID_HID;
        sv[v].name = strdup(vars[v].name);
        sv[v].offset = s->row_width;
        sv[v].width = vars[v].per_label ? (size_t)nlabels : 1;
        s->row_width += sv[v].width;
        if (!sv[v].name) st = fb_fail(FB_ERR_ALLOC, "out of memory for series '%s'", name);
    }
    if (!chunk_steps) chunk_steps = FB_H5_SERIES_CHUNK_STEPS;
    if (st == FB_OK) st = series_build(s, parent, name, label_dim, labels, vars, chunk_steps);
    if (st != FB_OK) {
        series_free(s);
        return st;
    }
    h->live->series[h->live->nseries++] = s;
    *out = s;
    return FB_OK;
}

// Makes room for one more buffered row (doubling).
static fb_status series_reserve(fb_h5_series *s) {
    if (s->pending < s->cap) return FB_OK;
    size_t cap = s->cap ? 2 * s->cap : 16;
    FB_REQUIRE(cap <= SIZE_MAX / sizeof(double) / s->row_width, FB_ERR_ALLOC, "series %s: %zu rows cannot be buffered",
               s->path, cap);
    int64_t *steps = realloc(s->steps, cap * sizeof *steps);
    if (steps) s->steps = steps;
    double *values = steps ? realloc(s->values, cap * s->row_width * sizeof *values) : NULL;
    if (!values) {
        s->h->failed = 1;   // a row is lost: the file cannot be complete
        return fb_fail(FB_ERR_ALLOC, "series %s: out of memory buffering %zu rows of %zu values", s->path, cap,
                       s->row_width);
    }
    s->values = values;
    s->cap = cap;
    return FB_OK;
}

fb_status fb_h5_series_append(fb_h5_series *s, int64_t step, const double *const *values) {
    FB_REQUIRE(s, FB_ERR_CONFIG, "fb_h5_series_append: no series given (NULL)");
    FB_REQUIRE(values, FB_ERR_CONFIG, "series %s: no values given at step %lld", s->path, (long long)step);
    FB_REQUIRE(fb_h5_series_rows(s) == 0 || step > s->last_step, FB_ERR_CONFIG,
               "series %s: step %lld follows step %lld (steps must increase)", s->path, (long long)step,
               (long long)s->last_step);
    for (int v = 0; v < s->nvars; v++)
        FB_REQUIRE(values[v], FB_ERR_CONFIG, "series %s: no values for '%s' at step %lld", s->path, s->vars[v].name,
                   (long long)step);
    FB_TRY(series_reserve(s));
    double *row = s->values + s->pending * s->row_width;   // (row_width)
    for (int v = 0; v < s->nvars; v++)
        memcpy(row + s->vars[v].offset, values[v], s->vars[v].width * sizeof *row);
    s->steps[s->pending++] = step;
    s->last_step = step;
    return FB_OK;
}

size_t fb_h5_series_rows(const fb_h5_series *s) { return s ? s->flushed + s->pending : 0; }
