#include "h5read.h"
#include <hdf5_hl.h>   // H5LTpath_valid
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// Runs `stmt` with HDF5's automatic error printing off: our messages say what went wrong.
#define QUIET(stmt) do { H5E_BEGIN_TRY { stmt; } H5E_END_TRY; } while (0)

#if H5_VERSION_GE(1, 12, 0)
#define reclaim_vlen(type, space, buf) H5Treclaim(type, space, H5P_DEFAULT, buf)
#else
#define reclaim_vlen(type, space, buf) H5Dvlen_reclaim(type, space, H5P_DEFAULT, buf)
#endif

static const char *objpath(const char *obj) { return obj && *obj ? obj : "/"; }

fb_status fb_h5r_open(fb_h5r *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->file = H5I_INVALID_HID;
    size_t n = strlen(path);
    FB_REQUIRE(n > 0 && n < sizeof r->path, FB_ERR_IO, "HDF5 input path is empty or too long (%zu chars)", n);
    memcpy(r->path, path, n + 1);
    struct stat sb;
    FB_REQUIRE(stat(path, &sb) == 0, FB_ERR_IO, "%s: no such file", path);
    FB_REQUIRE(S_ISREG(sb.st_mode), FB_ERR_IO, "%s: not a regular file", path);
    htri_t is_hdf5 = -1;
    QUIET(is_hdf5 = H5Fis_hdf5(path));
    FB_REQUIRE(is_hdf5 != 0, FB_ERR_IO, "%s: not an HDF5 file", path);
    QUIET(r->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT));
    FB_REQUIRE(r->file >= 0, FB_ERR_IO,
               "%s: cannot open it read-only (unreadable, truncated, or locked by a run still writing it: "
               "HDF5_USE_FILE_LOCKING=FALSE peeks)", path);
    return FB_OK;
}

void fb_h5r_close(fb_h5r *r) {
    if (r->file >= 0) QUIET(H5Fclose(r->file));
    r->file = H5I_INVALID_HID;
}

int fb_h5r_exists(const fb_h5r *r, const char *obj) {
    htri_t valid = -1;
    QUIET(valid = H5LTpath_valid(r->file, objpath(obj), 1));
    return valid > 0;
}

int fb_h5r_attr_exists(const fb_h5r *r, const char *obj, const char *name) {
    htri_t exists = -1;
    if (!fb_h5r_exists(r, obj)) return 0;
    QUIET(exists = H5Aexists_by_name(r->file, objpath(obj), name, H5P_DEFAULT));
    return exists > 0;
}

// ---- Values of an attribute or a dataset (the same code reads both) ----

typedef struct {
    hid_t id;
    int is_attr;
    size_t n;           // elements
    char what[1400];    // "<file>: attribute 'x' of /config" or "<file>: dataset steps/loss", for messages
} source;

static hid_t source_type(const source *s) { return s->is_attr ? H5Aget_type(s->id) : H5Dget_type(s->id); }

static herr_t source_read(const source *s, hid_t memtype, void *buf) {
    return s->is_attr ? H5Aread(s->id, memtype, buf) : H5Dread(s->id, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
}

static void source_close(source *s) {
    if (s->id >= 0 && s->is_attr) H5Aclose(s->id);
    else if (s->id >= 0) H5Dclose(s->id);
    s->id = H5I_INVALID_HID;
}

// Elements of a scalar or 1-D dataspace, or -1 for more dimensions.
static hssize_t vector_length(hid_t space) {
    if (space < 0) return -1;
    int ndims = H5Sget_simple_extent_ndims(space);
    hssize_t n = ndims >= 0 && ndims <= 1 ? H5Sget_simple_extent_npoints(space) : -1;
    H5Sclose(space);
    return n;
}

static fb_status open_attr(const fb_h5r *r, const char *obj, const char *name, source *s) {
    memset(s, 0, sizeof *s);
    s->is_attr = 1;
    snprintf(s->what, sizeof s->what, "%s: attribute '%s' of %s", r->path, name, objpath(obj));
    s->id = H5Aopen_by_name(r->file, objpath(obj), name, H5P_DEFAULT, H5P_DEFAULT);
    FB_REQUIRE(s->id >= 0, FB_ERR_IO, "%s: no attribute '%s' on %s", r->path, name, objpath(obj));
    hssize_t n = vector_length(H5Aget_space(s->id));
    if (n != 1) {
        source_close(s);
        return fb_fail(FB_ERR_IO, "%s holds %lld values, not one", s->what, (long long)n);
    }
    s->n = 1;
    return FB_OK;
}

static fb_status open_dataset(const fb_h5r *r, const char *obj, source *s) {
    memset(s, 0, sizeof *s);
    snprintf(s->what, sizeof s->what, "%s: dataset %s", r->path, objpath(obj));
    s->id = H5Dopen2(r->file, objpath(obj), H5P_DEFAULT);
    FB_REQUIRE(s->id >= 0, FB_ERR_IO, "%s: no dataset %s", r->path, objpath(obj));
    hssize_t n = vector_length(H5Dget_space(s->id));
    if (n < 0) {
        source_close(s);
        return fb_fail(FB_ERR_IO, "%s is not one-dimensional", s->what);
    }
    s->n = (size_t)n;
    return FB_OK;
}

// Reads the s->n numbers of `s` as `memtype` into buf; integer_only refuses floating-point data.
static fb_status read_numbers(const source *s, hid_t memtype, int integer_only, void *buf) {
    hid_t type = source_type(s);
    H5T_class_t cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
    if (type >= 0) H5Tclose(type);
    if (cls != H5T_INTEGER && (integer_only || cls != H5T_FLOAT))
        return fb_fail(FB_ERR_IO, "%s is not %s", s->what, integer_only ? "an integer" : "a number");
    if (s->n && source_read(s, memtype, buf) < 0) return fb_fail(FB_ERR_IO, "%s: cannot read it", s->what);
    return FB_OK;
}

// Reads the s->n strings of `s` into out[0..n) (each malloc'd), variable- or fixed-length.
static fb_status read_strings(const source *s, char **out) {
    hid_t type = source_type(s), mem = H5I_INVALID_HID;
    fb_status st = FB_OK;
    if (type < 0 || H5Tget_class(type) != H5T_STRING) {
        st = fb_fail(FB_ERR_IO, "%s is not a string", s->what);
    } else if (H5Tis_variable_str(type) > 0) {
        char **tmp = calloc(s->n ? s->n : 1, sizeof *tmp);
        mem = H5Tcopy(H5T_C_S1);
        H5Tset_size(mem, H5T_VARIABLE);
        H5Tset_cset(mem, H5Tget_cset(type));
        int read = 0;
        if (!tmp) st = fb_fail(FB_ERR_ALLOC, "%s: out of memory for %zu strings", s->what, s->n);
        else if (s->n && !(read = source_read(s, mem, tmp) >= 0)) st = fb_fail(FB_ERR_IO, "%s: cannot read it", s->what);
        for (size_t i = 0; st == FB_OK && i < s->n; i++)
            if (!(out[i] = strdup(tmp[i] ? tmp[i] : ""))) st = fb_fail(FB_ERR_ALLOC, "%s: out of memory", s->what);
        if (read) {   // HDF5 allocated the strings: hand them back
            hsize_t dim = s->n;
            hid_t space = H5Screate_simple(1, &dim, NULL);
            reclaim_vlen(mem, space, tmp);
            H5Sclose(space);
        }
        free(tmp);
    } else {
        // One byte more than the stored size: HDF5 converts into null-terminated strings, keeping
        // every stored character whatever the file's padding.
        size_t size = H5Tget_size(type) + 1;
        char *buf = malloc(s->n * size + 1);
        mem = H5Tcopy(H5T_C_S1);
        H5Tset_size(mem, size);
        H5Tset_strpad(mem, H5T_STR_NULLTERM);
        if (!buf) st = fb_fail(FB_ERR_ALLOC, "%s: out of memory for %zu strings", s->what, s->n);
        else if (s->n && source_read(s, mem, buf) < 0) st = fb_fail(FB_ERR_IO, "%s: cannot read it", s->what);
        for (size_t i = 0; st == FB_OK && i < s->n; i++)
            if (!(out[i] = strndup(buf + i * size, size))) st = fb_fail(FB_ERR_ALLOC, "%s: out of memory", s->what);
        free(buf);
    }
    if (mem >= 0) H5Tclose(mem);
    if (type >= 0) H5Tclose(type);
    return st;
}

// ---- Attributes ----

static fb_status attr_number(const fb_h5r *r, const char *obj, const char *name, hid_t memtype, int integer_only,
                             void *out) {
    source s;
    FB_TRY(open_attr(r, obj, name, &s));
    fb_status st = read_numbers(&s, memtype, integer_only, out);
    source_close(&s);
    return st;
}

static fb_status attr_string(const fb_h5r *r, const char *obj, const char *name, char **out) {
    source s;
    FB_TRY(open_attr(r, obj, name, &s));
    *out = NULL;
    fb_status st = read_strings(&s, out);
    source_close(&s);
    return st;
}

fb_status fb_h5r_attr_int(const fb_h5r *r, const char *obj, const char *name, int64_t *out) {
    fb_status st;
    QUIET(st = attr_number(r, obj, name, H5T_NATIVE_INT64, 1, out));
    return st;
}

fb_status fb_h5r_attr_double(const fb_h5r *r, const char *obj, const char *name, double *out) {
    fb_status st;
    QUIET(st = attr_number(r, obj, name, H5T_NATIVE_DOUBLE, 0, out));
    return st;
}

fb_status fb_h5r_attr_string(const fb_h5r *r, const char *obj, const char *name, char **out) {
    fb_status st;
    QUIET(st = attr_string(r, obj, name, out));
    return st;
}

// ---- Datasets ----

static fb_status dataset_length(const fb_h5r *r, const char *obj, size_t *n) {
    source s;
    FB_TRY(open_dataset(r, obj, &s));
    *n = s.n;
    source_close(&s);
    return FB_OK;
}

fb_status fb_h5r_length(const fb_h5r *r, const char *obj, size_t *n) {
    fb_status st;
    QUIET(st = dataset_length(r, obj, n));
    return st;
}

// Reads a numeric dataset into a new array of `elem` bytes per value.
static fb_status dataset_numbers(const fb_h5r *r, const char *obj, hid_t memtype, int integer_only, size_t elem,
                                 void **out, size_t *n) {
    source s;
    *out = NULL;
    *n = 0;
    FB_TRY(open_dataset(r, obj, &s));
    void *buf = s.n ? malloc(s.n * elem) : NULL;
    fb_status st = s.n && !buf ? fb_fail(FB_ERR_ALLOC, "%s: out of memory for %zu values", s.what, s.n)
                               : read_numbers(&s, memtype, integer_only, buf);
    if (st == FB_OK) {
        *out = buf;
        *n = s.n;
    } else {
        free(buf);
    }
    source_close(&s);
    return st;
}

fb_status fb_h5r_read_doubles(const fb_h5r *r, const char *obj, double **out, size_t *n) {
    fb_status st;
    void *buf = NULL;
    QUIET(st = dataset_numbers(r, obj, H5T_NATIVE_DOUBLE, 0, sizeof(double), &buf, n));
    *out = buf;
    return st;
}

static fb_status dataset_column(const fb_h5r *r, const char *obj, size_t col, double **out, size_t *n) {
    *out = NULL;
    *n = 0;
    hid_t d = H5Dopen2(r->file, objpath(obj), H5P_DEFAULT);
    FB_REQUIRE(d >= 0, FB_ERR_IO, "%s: no dataset %s", r->path, objpath(obj));
    hid_t space = H5Dget_space(d), type = H5Dget_type(d);
    hsize_t dims[2] = { 0, 0 };
    const int ok_shape = space >= 0 && H5Sget_simple_extent_ndims(space) == 2 &&
                         H5Sget_simple_extent_dims(space, dims, NULL) == 2;
    const H5T_class_t cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
    fb_status st = FB_OK;
    if (!ok_shape || (cls != H5T_FLOAT && cls != H5T_INTEGER))
        st = fb_fail(FB_ERR_IO, "%s: dataset %s is not a 2-D array of numbers", r->path, objpath(obj));
    else if (col >= dims[1])
        st = fb_fail(FB_ERR_IO, "%s: dataset %s has %llu columns, not %zu", r->path, objpath(obj),
                     (unsigned long long)dims[1], col + 1);
    double *buf = st == FB_OK && dims[0] ? malloc(dims[0] * sizeof *buf) : NULL;
    if (st == FB_OK && dims[0]) {
        const hsize_t start[2] = { 0, col }, count[2] = { dims[0], 1 };
        hid_t mem = H5Screate_simple(1, count, NULL);
        if (!buf || mem < 0 || H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dread(d, H5T_NATIVE_DOUBLE, mem, space, H5P_DEFAULT, buf) < 0)
            st = fb_fail(buf ? FB_ERR_IO : FB_ERR_ALLOC, "%s: cannot read column %zu of %s", r->path, col, objpath(obj));
        if (mem >= 0) H5Sclose(mem);
    }
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Dclose(d);
    if (st != FB_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    *n = dims[0];
    return FB_OK;
}

fb_status fb_h5r_read_column(const fb_h5r *r, const char *obj, size_t col, double **out, size_t *n) {
    fb_status st;
    QUIET(st = dataset_column(r, obj, col, out, n));
    return st;
}

fb_status fb_h5r_read_int64s(const fb_h5r *r, const char *obj, int64_t **out, size_t *n) {
    fb_status st;
    void *buf = NULL;
    QUIET(st = dataset_numbers(r, obj, H5T_NATIVE_INT64, 1, sizeof(int64_t), &buf, n));
    *out = buf;
    return st;
}

static fb_status dataset_strings(const fb_h5r *r, const char *obj, char ***out, size_t *n) {
    source s;
    *out = NULL;
    *n = 0;
    FB_TRY(open_dataset(r, obj, &s));
    char **strings = calloc(s.n ? s.n : 1, sizeof *strings);
    fb_status st = strings ? read_strings(&s, strings)
                           : fb_fail(FB_ERR_ALLOC, "%s: out of memory for %zu strings", s.what, s.n);
    if (st == FB_OK) {
        *out = strings;
        *n = s.n;
    } else {
        fb_h5r_free_strings(strings, s.n);
    }
    source_close(&s);
    return st;
}

fb_status fb_h5r_read_strings(const fb_h5r *r, const char *obj, char ***out, size_t *n) {
    fb_status st;
    QUIET(st = dataset_strings(r, obj, out, n));
    return st;
}

void fb_h5r_free_strings(char **strings, size_t n) {
    if (!strings) return;
    for (size_t i = 0; i < n; i++) free(strings[i]);
    free(strings);
}

// ---- Groups ----

static fb_status group_members(const fb_h5r *r, const char *obj, char ***names, size_t *n) {
    *names = NULL;
    *n = 0;
    hid_t g = H5Gopen2(r->file, objpath(obj), H5P_DEFAULT);
    FB_REQUIRE(g >= 0, FB_ERR_IO, "%s: no group %s", r->path, objpath(obj));
    H5G_info_t info;
    fb_status st = H5Gget_info(g, &info) < 0 ? fb_fail(FB_ERR_IO, "%s: cannot list group %s", r->path, objpath(obj))
                                             : FB_OK;
    char **list = st == FB_OK ? calloc(info.nlinks ? info.nlinks : 1, sizeof *list) : NULL;
    if (st == FB_OK && !list) st = fb_fail(FB_ERR_ALLOC, "out of memory listing %s", objpath(obj));
    for (hsize_t i = 0; st == FB_OK && i < info.nlinks; i++) {
        ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
        list[i] = len >= 0 ? malloc((size_t)len + 1) : NULL;
        if (!list[i] || H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, list[i], (size_t)len + 1,
                                           H5P_DEFAULT) < 0)
            st = fb_fail(FB_ERR_IO, "%s: cannot read the name of link %llu of %s", r->path, (unsigned long long)i,
                         objpath(obj));
    }
    H5Gclose(g);
    if (st == FB_OK) {
        *names = list;
        *n = (size_t)info.nlinks;
    } else if (list) {
        fb_h5r_free_strings(list, (size_t)info.nlinks);
    }
    return st;
}

fb_status fb_h5r_members(const fb_h5r *r, const char *obj, char ***names, size_t *n) {
    fb_status st;
    QUIET(st = group_members(r, obj, names, n));
    return st;
}
