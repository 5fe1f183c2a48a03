// BIOM 2.1 reader and writer (layout in biom.h).
//
// Reading works on one "axis" at a time: a compressed-sparse matrix whose rows ("major" entries)
// are the samples (sample/matrix, CSC in BIOM's words) or the observations (observation/matrix,
// CSR), whose entries carry the other axis's ("minor") index. fb_biom_read reads the sample axis
// for the requested samples only; fb_biom_check_consistent reads both and compares them.
//
// Every public function runs its body inside H5E_BEGIN_TRY, so HDF5 prints nothing: a failed
// HDF5 call shows up as our message naming the file and the object.
#include "biom.h"
#include <errno.h>
#include <hdf5.h>
#include <hdf5_hl.h>   // H5LTpath_valid
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "strindex.h"
#include "../io/h5out.h"

#define BIOM_CHUNK 65536   // elements per chunk of the matrix datasets we write

static const char *const AXES[2] = {"observation", "sample"};
enum { OBS = 0, SAMPLE = 1 };

void fb_biom_free_ids(char **ids, int n) {
    for (int i = 0; ids && i < n; i++) free(ids[i]);
    free(ids);
}

static fb_status oom(const char *path, const char *what) {
    return fb_fail(FB_ERR_ALLOC, "%s: out of memory reading %s", path, what);
}

// ---- Opening: what the file is when it is not a BIOM 2.x table ----

// The file could not be opened as HDF5: say what it looks like instead.
static fb_status explain_not_hdf5(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return fb_fail(FB_ERR_IO, "cannot open BIOM table %s: %s", path, strerror(errno));
    char head[1024];
    size_t n = fread(head, 1, sizeof head - 1, f);
    fclose(f);
    head[n] = '\0';
    if (n == 0) return fb_fail(FB_ERR_IO, "BIOM table %s is empty (a BIOM 2.1 table is an HDF5 file)", path);
    if (n >= 8 && memcmp(head, "\211HDF\r\n\032\n", 8) == 0)
        return fb_fail(FB_ERR_IO, "BIOM table %s: an HDF5 file that HDF5 cannot open (truncated or damaged?)", path);
    const char *p = head;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    if (*p == '{')
        return fb_fail(FB_ERR_IO, "%s is a BIOM 1.0 (JSON) table: convert it with `biom convert --to-hdf5` "
                       "(biom convert -i %s -o new.biom --to-hdf5)", path, path);
    if (strncmp(p, "# Constructed from biom file", 28) == 0 || strncmp(p, "#OTU ID", 7) == 0 ||
        strncmp(p, "#OTU_ID", 7) == 0)
        return fb_fail(FB_ERR_IO, "%s is a classic (TSV) table: convert it with `biom convert --to-hdf5 "
                       "--table-type=\"OTU table\"`", path);
    return fb_fail(FB_ERR_IO, "%s is not an HDF5 file (no HDF5 signature); a BIOM 2.1 table is HDF5", path);
}

static int path_valid(hid_t file, const char *name) { return H5LTpath_valid(file, name, 1) > 0; }

// Reads a small integer attribute of the root group into v[0..n); returns the element count
// found (0: missing), or -1 when it is not integers.
static int root_int_attr(hid_t file, const char *name, int64_t *v, int n) {
    if (H5Aexists(file, name) <= 0) return 0;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT), type = H5Aget_type(a), space = H5Aget_space(a);
    hssize_t count = H5Sget_simple_extent_npoints(space);
    int found = -1;
    if (H5Tget_class(type) == H5T_INTEGER && count >= 1 && count <= n &&
        H5Aread(a, H5T_NATIVE_INT64, v) >= 0)
        found = (int)count;
    H5Sclose(space);
    H5Tclose(type);
    H5Aclose(a);
    return found;
}

static const char *const REQUIRED[] = {
    "observation/ids", "observation/matrix/data", "observation/matrix/indices", "observation/matrix/indptr",
    "sample/ids", "sample/matrix/data", "sample/matrix/indices", "sample/matrix/indptr",
};

// Opens a BIOM 2.0/2.1 file and reads its shape (n_obs, n_samples) and nnz (-1 when the
// attribute is missing). `need_obs_matrix`: whether observation/matrix must be there too.
static fb_status biom_open(const char *path, int need_obs_matrix, hid_t *file, int *n_obs, int *n_samples,
                           int64_t *nnz) {
    *file = H5I_INVALID_HID;
    FILE *f = fopen(path, "rb");   // errno says "No such file" or "Permission denied"; HDF5 would not
    if (!f) return fb_fail(FB_ERR_IO, "cannot open BIOM table %s: %s", path, strerror(errno));
    fclose(f);
#if H5_VERSION_GE(1, 12, 0)
    htri_t is_hdf5 = H5Fis_accessible(path, H5P_DEFAULT);
#else
    htri_t is_hdf5 = H5Fis_hdf5(path);
#endif
    if (is_hdf5 <= 0) return explain_not_hdf5(path);
    hid_t fd = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (fd < 0) return explain_not_hdf5(path);

    fb_status st = FB_OK;
    for (size_t i = 0; i < sizeof REQUIRED / sizeof *REQUIRED && st == FB_OK; i++) {
        if (!need_obs_matrix && strncmp(REQUIRED[i], "observation/matrix", 18) == 0) continue;
        if (!path_valid(fd, REQUIRED[i]))
            st = fb_fail(FB_ERR_IO, "%s is an HDF5 file but not a BIOM table: it has no '%s'", path, REQUIRED[i]);
    }
    int64_t v[2] = {0, 0};
    if (st == FB_OK) {
        int found = root_int_attr(fd, "format-version", v, 2);
        if (found == 0)
            st = fb_fail(FB_ERR_IO, "%s: no 'format-version' attribute (not a BIOM 2.x table)", path);
        else if (found != 2)
            st = fb_fail(FB_ERR_IO, "%s: the 'format-version' attribute is not two integers", path);
        else if (v[0] != 2 || v[1] < 0 || v[1] > 1)
            st = fb_fail(FB_ERR_IO, "%s: BIOM format-version %lld.%lld; this reader knows 2.0 and 2.1", path,
                         (long long)v[0], (long long)v[1]);
    }
    if (st == FB_OK) {
        if (root_int_attr(fd, "shape", v, 2) != 2 || v[0] < 0 || v[1] < 0 || v[0] > INT_MAX || v[1] > INT_MAX)
            st = fb_fail(FB_ERR_IO, "%s: the 'shape' attribute is missing or not two non-negative integers "
                         "(up to %d)", path, INT_MAX);
        *n_obs = (int)v[0];
        *n_samples = (int)v[1];
    }
    if (st == FB_OK) {
        int found = root_int_attr(fd, "nnz", nnz, 1);
        if (found == 0) *nnz = -1;
        else if (found < 0 || *nnz < 0) st = fb_fail(FB_ERR_IO, "%s: the 'nnz' attribute is not a non-negative integer", path);
    }
    if (st != FB_OK) {
        H5Fclose(fd);
        return st;
    }
    *file = fd;
    return FB_OK;
}

// ---- Datasets ----

// Opens `name` as a 1-D dataset whose type class is `cls` (or, when float_ok, H5T_FLOAT) and returns
// its length in *len.
static fb_status open_1d(hid_t file, const char *path, const char *name, H5T_class_t cls, int float_ok, hid_t *d,
                         hsize_t *len) {
    *d = H5Dopen2(file, name, H5P_DEFAULT);
    if (*d < 0) return fb_fail(FB_ERR_IO, "%s: cannot open dataset '%s'", path, name);
    hid_t space = H5Dget_space(*d), type = H5Dget_type(*d);
    int rank = H5Sget_simple_extent_ndims(space);
    H5T_class_t c = H5Tget_class(type);
    if (rank == 1) H5Sget_simple_extent_dims(space, len, NULL);
    H5Sclose(space);
    H5Tclose(type);
    fb_status st = FB_OK;
    if (rank != 1) st = fb_fail(FB_ERR_IO, "%s: '%s' is not a 1-D dataset (rank %d)", path, name, rank);
    else if (c != cls && !(float_ok && c == H5T_FLOAT) && *len > 0)
        st = fb_fail(FB_ERR_IO, "%s: '%s' holds %s, not %s", path, name,
                     c == H5T_STRING ? "strings" : c == H5T_FLOAT ? "floats" : "values of another type",
                     cls == H5T_STRING ? "strings" : float_ok ? "numbers" : "integers");
    if (st != FB_OK) {
        H5Dclose(*d);
        *d = H5I_INVALID_HID;
    }
    return st;
}

// Reads axis's ids: n strings, variable- or fixed-length, each strdup'd; checks they are unique.
static fb_status read_ids(hid_t file, const char *path, int axis, int n, char ***out) {
    char name[32];
    snprintf(name, sizeof name, "%s/ids", AXES[axis]);
    *out = NULL;
    hid_t d;
    hsize_t len = 0;
    FB_TRY(open_1d(file, path, name, H5T_STRING, 0, &d, &len));
    char **ids = calloc(n > 0 ? (size_t)n : 1, sizeof *ids);
    fb_status st = FB_OK;
    if (!ids) st = oom(path, name);
    else if (len != (hsize_t)n)
        st = fb_fail(FB_ERR_IO, "%s: '%s' holds %llu ids but the 'shape' attribute says %d %ss", path, name,
                     (unsigned long long)len, n, AXES[axis]);
    if (st == FB_OK && n > 0) {
        hid_t ftype = H5Dget_type(d), mem = H5Tcopy(H5T_C_S1);
        H5Tset_cset(mem, H5Tget_cset(ftype));
        herr_t rc;
        if (H5Tis_variable_str(ftype) > 0) {
            H5Tset_size(mem, H5T_VARIABLE);
            char **raw = calloc((size_t)n, sizeof *raw);
            rc = raw ? H5Dread(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) : -1;
            for (int i = 0; rc >= 0 && i < n; i++)
                if (!(ids[i] = strdup(raw[i] ? raw[i] : ""))) rc = -2;
            if (raw && rc != -1) {
                hid_t space = H5Dget_space(d);
#if H5_VERSION_GE(1, 12, 0)
                H5Treclaim(mem, space, H5P_DEFAULT, raw);
#else
                H5Dvlen_reclaim(mem, space, H5P_DEFAULT, raw);
#endif
                H5Sclose(space);
            }
            free(raw);
        } else {   // fixed length: NUL-padded copies, so each id ends at its first NUL or its size
            size_t size = H5Tget_size(ftype);
            H5Tset_size(mem, size);
            H5Tset_strpad(mem, H5T_STR_NULLPAD);
            char *raw = malloc((size_t)n * size);
            rc = raw ? H5Dread(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) : -1;
            for (int i = 0; rc >= 0 && i < n; i++)
                if (!(ids[i] = strndup(raw + (size_t)i * size, size))) rc = -2;
            free(raw);
        }
        H5Tclose(mem);
        H5Tclose(ftype);
        if (rc == -2) st = oom(path, name);
        else if (rc < 0) st = fb_fail(FB_ERR_IO, "%s: cannot read '%s' (truncated or damaged file?)", path, name);
    }
    H5Dclose(d);
    if (st == FB_OK) {
        fb_strindex *ix;
        char what[32];
        snprintf(what, sizeof what, "%s id", AXES[axis]);
        st = fb_strindex_build((const char *const *)ids, n, what, path, &ix);
        fb_strindex_free(ix);
    }
    if (st != FB_OK) {
        fb_biom_free_ids(ids, n);
        return st;
    }
    *out = ids;
    return FB_OK;
}

typedef struct { hsize_t start, count; } span;

// Reading spans of a dataset: spans less than READ_GAP elements apart are read together with what
// lies between them (a gap smaller than a chunk costs no more I/O or inflation than skipping it),
// up to READ_WINDOW elements per read, then copied out. A rank's samples — one block, or every
// P-th sample — thus take a few large reads instead of one per sample, and memory stays at one
// window whatever the table's size.
#define READ_GAP BIOM_CHUNK
#define READ_WINDOW ((hsize_t)1 << 20)

static herr_t read_range(hid_t d, hid_t memtype, hsize_t start, hsize_t count, void *buf) {
    hid_t fspace = H5Dget_space(d), mspace = H5Screate_simple(1, &count, NULL);
    herr_t rc = fspace >= 0 && mspace >= 0 ? H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count, NULL) : -1;
    if (rc >= 0) rc = H5Dread(d, memtype, mspace, fspace, H5P_DEFAULT, buf);
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    return rc;
}

// Reads the elements of every span (ascending, non-overlapping) of 1-D dataset d, one after
// another, into buf (elements of `size` bytes in memory type memtype). Returns < 0 on failure,
// -2 when out of memory.
static herr_t read_spans(hid_t d, hid_t memtype, size_t size, const span *s, int ns, void *buf) {
    char *out = buf, *window = NULL;
    hsize_t window_len = 0;
    herr_t rc = 0;
    for (int i = 0, j; i < ns && rc >= 0; i = j) {
        const hsize_t start = s[i].start;
        hsize_t end = start + s[i].count;
        for (j = i + 1; j < ns && s[j].start - end <= READ_GAP && s[j].start + s[j].count - start <= READ_WINDOW; j++)
            end = s[j].start + s[j].count;
        if (j == i + 1) {   // alone: straight into place
            if (s[i].count) rc = read_range(d, memtype, start, s[i].count, out);
            out += s[i].count * size;
            continue;
        }
        if (end - start > window_len) {
            char *grown = realloc(window, (end - start) * size);
            if (!grown) {
                free(window);
                return -2;   // out of memory, not a read error
            }
            window = grown;
            window_len = end - start;
        }
        rc = read_range(d, memtype, start, end - start, window);
        for (int k = i; k < j && rc >= 0; k++) {
            memcpy(out, window + (s[k].start - start) * size, s[k].count * size);
            out += s[k].count * size;
        }
    }
    free(window);
    return rc;
}

static int i64_cmp(const void *a, const void *b) {
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

typedef struct { int32_t index; double value; } entry;

static int entry_cmp(const void *a, const void *b) {
    const entry *x = a, *y = b;
    return (x->index > y->index) - (x->index < y->index);
}

// Checks one row's entries (minor indices in range, finite values) and sorts them by index when a
// file lists them out of order; an index present twice is an error. `row` names the row in messages.
static fb_status check_row(const char *path, int axis, const char *row_id, int n_minor, char *const *minor_ids,
                           int32_t *idx, double *val, int64_t n) {
    const int minor = 1 - axis;
    char b1[96], b2[96];
    int sorted = 1;
    for (int64_t k = 0; k < n; k++) {
        if (idx[k] < 0 || idx[k] >= n_minor)
            return fb_fail(FB_ERR_IO, "%s: %s '%s' has an entry for %s index %d, outside [0, %d)", path, AXES[axis],
                           fb_abbrev(row_id, b1, sizeof b1), AXES[minor], idx[k], n_minor);
        if (!isfinite(val[k]))
            return fb_fail(FB_ERR_IO, "%s: %s '%s' has a non-finite count (%g) for %s '%s'", path, AXES[axis],
                           fb_abbrev(row_id, b1, sizeof b1), val[k], AXES[minor],
                           fb_abbrev(minor_ids[idx[k]], b2, sizeof b2));
        if (k > 0 && idx[k] <= idx[k - 1]) sorted = 0;
    }
    if (sorted) return FB_OK;
    entry *e = malloc((size_t)n * sizeof *e);
    if (!e) return oom(path, "a row's entries");
    for (int64_t k = 0; k < n; k++) e[k] = (entry){idx[k], val[k]};
    qsort(e, (size_t)n, sizeof *e, entry_cmp);
    fb_status st = FB_OK;
    for (int64_t k = 0; k < n; k++) {
        idx[k] = e[k].index;
        val[k] = e[k].value;
        if (k > 0 && idx[k] == idx[k - 1] && st == FB_OK)
            st = fb_fail(FB_ERR_IO, "%s: %s '%s' lists %s '%s' twice", path, AXES[axis], fb_abbrev(row_id, b1, sizeof b1),
                         AXES[minor], fb_abbrev(minor_ids[idx[k]], b2, sizeof b2));
    }
    free(e);
    return st;
}

// One axis's matrix, restricted to some of its rows.
typedef struct {
    int64_t *indptr;    // (n_rows + 1)
    int32_t *indices;   // (nnz) minor index of each entry
    double *data;       // (nnz)
} csx;

static void csx_free(csx *m) {
    free(m->indptr);
    free(m->indices);
    free(m->data);
    memset(m, 0, sizeof *m);
}

// Rows rows[0..n_rows) (distinct, in range) of axis's matrix, in that order. ids[axis] name the
// rows in messages, ids[1 - axis] the entries.
static fb_status read_axis(hid_t file, const char *path, int axis, const int n[2], char **const ids[2], int64_t nnz_attr,
                           const int *rows, int n_rows, csx *out) {
    memset(out, 0, sizeof *out);
    const int n_major = n[axis], n_minor = n[1 - axis];
    char name[3][48];
    static const char *const PART[3] = {"indptr", "indices", "data"};
    for (int i = 0; i < 3; i++) snprintf(name[i], sizeof name[i], "%s/matrix/%s", AXES[axis], PART[i]);

    hid_t d[3] = {H5I_INVALID_HID, H5I_INVALID_HID, H5I_INVALID_HID};
    hsize_t len[3] = {0, 0, 0};
    int64_t *file_indptr = NULL, *order = NULL;
    span *spans = NULL;
    int32_t *idx = NULL;
    double *val = NULL;
    fb_status st = FB_OK;
    for (int i = 0; i < 3 && st == FB_OK; i++) st = open_1d(file, path, name[i], H5T_INTEGER, i == 2, &d[i], &len[i]);
    if (st != FB_OK) goto done;

    // indptr: all of it (n_major + 1 values, small), checked before any entry is read.
    if (len[0] != (hsize_t)n_major + 1) {
        st = fb_fail(FB_ERR_IO, "%s: '%s' has %llu values; %d %ss need %d", path, name[0], (unsigned long long)len[0],
                     n_major, AXES[axis], n_major + 1);
        goto done;
    }
    if (!(file_indptr = malloc(len[0] * sizeof *file_indptr))) { st = oom(path, name[0]); goto done; }
    if (H5Dread(d[0], H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, file_indptr) < 0) {
        st = fb_fail(FB_ERR_IO, "%s: cannot read '%s' (truncated or damaged file?)", path, name[0]);
        goto done;
    }
    if (file_indptr[0] != 0) {
        st = fb_fail(FB_ERR_IO, "%s: '%s' starts at %lld, not 0", path, name[0], (long long)file_indptr[0]);
        goto done;
    }
    char b[96];
    for (int r = 0; r < n_major; r++)
        if (file_indptr[r + 1] < file_indptr[r]) {
            st = fb_fail(FB_ERR_IO, "%s: '%s' decreases at %s %d ('%s'): %lld after %lld", path, name[0], AXES[axis], r,
                         fb_abbrev(ids[axis][r], b, sizeof b), (long long)file_indptr[r + 1], (long long)file_indptr[r]);
            goto done;
        }
    const int64_t nnz = file_indptr[n_major];
    if (len[1] != len[2] || len[1] != (hsize_t)nnz || (nnz_attr >= 0 && nnz_attr != nnz)) {
        st = fb_fail(FB_ERR_IO, "%s: %s/matrix disagrees on the entry count: indptr ends at %lld, indices has %llu, "
                     "data %llu, the 'nnz' attribute says %lld", path, AXES[axis], (long long)nnz,
                     (unsigned long long)len[1], (unsigned long long)len[2], (long long)nnz_attr);
        goto done;
    }

    // The wanted rows in file order (`order`), merged into spans of consecutive rows.
    if (!(order = malloc(((size_t)n_rows + 1) * sizeof *order)) || !(spans = malloc(((size_t)n_rows + 1) * sizeof *spans)) ||
        !(out->indptr = malloc(((size_t)n_rows + 1) * sizeof *out->indptr))) {
        st = oom(path, name[0]);
        goto done;
    }
    int ascending = 1;
    for (int i = 0; i < n_rows; i++) {
        order[i] = ((int64_t)rows[i] << 32) | (uint32_t)i;   // sort key: file row, then position
        if (i > 0 && rows[i] < rows[i - 1]) ascending = 0;
    }
    if (!ascending) qsort(order, (size_t)n_rows, sizeof *order, i64_cmp);
    int ns = 0;
    hsize_t total = 0;
    for (int i = 0; i < n_rows; i++) {
        const int r = (int)(order[i] >> 32);
        const hsize_t start = (hsize_t)file_indptr[r], count = (hsize_t)(file_indptr[r + 1] - file_indptr[r]);
        if (ns > 0 && spans[ns - 1].start + spans[ns - 1].count == start) spans[ns - 1].count += count;
        else spans[ns++] = (span){start, count};
        total += count;
    }
    // Output offsets in the caller's row order.
    out->indptr[0] = 0;
    for (int i = 0; i < n_rows; i++) out->indptr[i + 1] = out->indptr[i] + file_indptr[rows[i] + 1] - file_indptr[rows[i]];

    idx = malloc((total ? total : 1) * sizeof *idx);
    val = malloc((total ? total : 1) * sizeof *val);
    if (!idx || !val) { st = oom(path, name[2]); goto done; }
    herr_t rc = read_spans(d[1], H5T_NATIVE_INT32, sizeof *idx, spans, ns, idx);
    if (rc >= 0) rc = read_spans(d[2], H5T_NATIVE_DOUBLE, sizeof *val, spans, ns, val);
    if (rc == -2) {
        st = oom(path, name[2]);
        goto done;
    }
    if (rc < 0) {
        st = fb_fail(FB_ERR_IO, "%s: cannot read %s/matrix entries (truncated or damaged file?)", path, AXES[axis]);
        goto done;
    }
    if (ascending) {
        out->indices = idx;
        out->data = val;
        idx = NULL;
        val = NULL;
    } else {   // from file order to the caller's
        out->indices = malloc((total ? total : 1) * sizeof *out->indices);
        out->data = malloc((total ? total : 1) * sizeof *out->data);
        if (!out->indices || !out->data) { st = oom(path, name[2]); goto done; }
        int64_t at = 0;
        for (int i = 0; i < n_rows; i++) {
            const int pos = (int)(uint32_t)order[i];
            const int64_t cnt = out->indptr[pos + 1] - out->indptr[pos];
            memcpy(out->indices + out->indptr[pos], idx + at, (size_t)cnt * sizeof *idx);
            memcpy(out->data + out->indptr[pos], val + at, (size_t)cnt * sizeof *val);
            at += cnt;
        }
    }
    for (int i = 0; i < n_rows && st == FB_OK; i++) {
        const int64_t o = out->indptr[i];
        st = check_row(path, axis, ids[axis][rows[i]], n_minor, ids[1 - axis], out->indices + o, out->data + o,
                       out->indptr[i + 1] - o);
    }
done:
    for (int i = 0; i < 3; i++)
        if (d[i] >= 0) H5Dclose(d[i]);
    free(file_indptr);
    free(order);
    free(spans);
    free(idx);
    free(val);
    if (st != FB_OK) csx_free(out);
    return st;
}

// The same entries indexed the other way: m's n_major rows (over n_minor columns) become n_minor
// rows; within each, entries come in increasing major index (CSC <-> CSR).
static fb_status transpose(const char *path, const csx *m, int n_major, int n_minor, csx *out) {
    const int64_t nnz = m->indptr[n_major];
    out->indptr = calloc((size_t)n_minor + 1, sizeof *out->indptr);
    out->indices = malloc((nnz ? (size_t)nnz : 1) * sizeof *out->indices);
    out->data = malloc((nnz ? (size_t)nnz : 1) * sizeof *out->data);
    int64_t *fill = malloc(((size_t)n_minor + 1) * sizeof *fill);
    if (!out->indptr || !out->indices || !out->data || !fill) {
        free(fill);
        csx_free(out);
        return fb_fail(FB_ERR_ALLOC, "%s: out of memory transposing %lld entries", path, (long long)nnz);
    }
    for (int64_t k = 0; k < nnz; k++) out->indptr[m->indices[k] + 1]++;
    for (int c = 0; c < n_minor; c++) out->indptr[c + 1] += out->indptr[c];
    memcpy(fill, out->indptr, ((size_t)n_minor + 1) * sizeof *fill);
    for (int r = 0; r < n_major; r++)
        for (int64_t k = m->indptr[r]; k < m->indptr[r + 1]; k++) {
            const int64_t at = fill[m->indices[k]]++;
            out->indices[at] = r;
            out->data[at] = m->data[k];
        }
    free(fill);
    return FB_OK;
}

// rows (n_sel, caller frees): the requested sample indices, checked, or 0..n_file-1 when NULL.
static fb_status selection(const char *path, const int *samples, int n_sel, int n_file, int **rows, int *n_rows) {
    if (!samples) n_sel = n_file;
    if (n_sel < 0) return fb_fail(FB_ERR_CONFIG, "fb_biom_read(%s): %d samples requested", path, n_sel);
    int *r = malloc(((size_t)n_sel + 1) * sizeof *r);
    unsigned char *seen = calloc((size_t)n_file + 1, 1);
    fb_status st = r && seen ? FB_OK : oom(path, "the sample selection");
    for (int i = 0; i < n_sel && st == FB_OK; i++) {
        r[i] = samples ? samples[i] : i;
        if (r[i] < 0 || r[i] >= n_file)
            st = fb_fail(FB_ERR_CONFIG, "fb_biom_read(%s): sample index %d (position %d) is outside the table's %d samples",
                         path, r[i], i, n_file);
        else if (seen[r[i]]++)
            st = fb_fail(FB_ERR_CONFIG, "fb_biom_read(%s): sample index %d requested twice", path, r[i]);
    }
    free(seen);
    if (st != FB_OK) {
        free(r);
        return st;
    }
    *rows = r;
    *n_rows = n_sel;
    return FB_OK;
}

static fb_status read_sample_ids(const char *path, char ***ids, int *n) {
    hid_t file;
    int n_obs;
    int64_t nnz;
    FB_TRY(biom_open(path, 0, &file, &n_obs, n, &nnz));
    fb_status st = read_ids(file, path, SAMPLE, *n, ids);
    H5Fclose(file);
    return st;
}

fb_status fb_biom_read_sample_ids(const char *path, char ***ids, int *n) {
    fb_status st;
    *ids = NULL;
    H5E_BEGIN_TRY { st = read_sample_ids(path, ids, n); } H5E_END_TRY;
    if (st != FB_OK) *n = 0;
    return st;
}

static fb_status read_table(const char *path, const int *samples, int n_sel, fb_table *t) {
    hid_t file;
    int n[2];
    int64_t nnz;
    FB_TRY(biom_open(path, 0, &file, &n[OBS], &n[SAMPLE], &nnz));
    char **ids[2] = {NULL, NULL};
    int *rows = NULL, n_rows = 0;
    csx m = {0};
    fb_status st = selection(path, samples, n_sel, n[SAMPLE], &rows, &n_rows);
    if (st == FB_OK) st = read_ids(file, path, OBS, n[OBS], &ids[OBS]);
    if (st == FB_OK) st = read_ids(file, path, SAMPLE, n[SAMPLE], &ids[SAMPLE]);
    if (st == FB_OK) st = read_axis(file, path, SAMPLE, n, ids, nnz, rows, n_rows, &m);
    H5Fclose(file);
    char **sel_ids = st == FB_OK ? calloc((size_t)n_rows + 1, sizeof *sel_ids) : NULL;
    if (st == FB_OK && !sel_ids) st = oom(path, "sample ids");
    if (st == FB_OK) {
        for (int i = 0; i < n_rows; i++) {   // move the selected ids out; the rest are freed below
            sel_ids[i] = ids[SAMPLE][rows[i]];
            ids[SAMPLE][rows[i]] = NULL;
        }
        *t = (fb_table){.n_obs = n[OBS], .n_samples = n_rows, .obs_ids = ids[OBS], .sample_ids = sel_ids,
                        .indptr = m.indptr, .indices = m.indices, .data = m.data};
        ids[OBS] = NULL;
    } else {
        csx_free(&m);
    }
    fb_biom_free_ids(ids[OBS], n[OBS]);
    fb_biom_free_ids(ids[SAMPLE], n[SAMPLE]);
    free(rows);
    return st;
}

fb_status fb_biom_read(const char *path, const int *samples, int n_samples, fb_table *t) {
    fb_status st;
    memset(t, 0, sizeof *t);
    H5E_BEGIN_TRY { st = read_table(path, samples, n_samples, t); } H5E_END_TRY;
    return st;
}

// ---- Both axes agree ----

static fb_status check_consistent(const char *path) {
    hid_t file;
    int n[2];
    int64_t nnz;
    FB_TRY(biom_open(path, 1, &file, &n[OBS], &n[SAMPLE], &nnz));
    char **ids[2] = {NULL, NULL};
    int *rows = NULL, n_rows;
    csx by_sample = {0}, by_obs = {0}, obs_t = {0};
    const int n_max = n[OBS] > n[SAMPLE] ? n[OBS] : n[SAMPLE];
    fb_status st = selection(path, NULL, 0, n_max, &rows, &n_rows);   // 0..n_max-1, for either axis
    for (int axis = 0; axis < 2 && st == FB_OK; axis++) st = read_ids(file, path, axis, n[axis], &ids[axis]);
    if (st == FB_OK) st = read_axis(file, path, SAMPLE, n, ids, nnz, rows, n[SAMPLE], &by_sample);
    if (st == FB_OK) st = read_axis(file, path, OBS, n, ids, nnz, rows, n[OBS], &by_obs);
    H5Fclose(file);
    if (st == FB_OK) st = transpose(path, &by_obs, n[OBS], n[SAMPLE], &obs_t);
    char b1[96], b2[96], b3[96];
    for (int j = 0; j < n[SAMPLE] && st == FB_OK; j++) {
        const int64_t a0 = by_sample.indptr[j], a1 = by_sample.indptr[j + 1], c0 = obs_t.indptr[j], c1 = obs_t.indptr[j + 1];
        for (int64_t k = 0; k < a1 - a0 && k < c1 - c0 && st == FB_OK; k++) {
            const int32_t oa = by_sample.indices[a0 + k], oc = obs_t.indices[c0 + k];
            const double va = by_sample.data[a0 + k], vc = obs_t.data[c0 + k];
            if (oa != oc)
                st = fb_fail(FB_ERR_IO, "%s: sample/matrix and observation/matrix disagree on sample '%s': entry %lld is "
                             "observation '%s' in one and '%s' in the other", path, fb_abbrev(ids[SAMPLE][j], b1, sizeof b1),
                             (long long)k, fb_abbrev(ids[OBS][oa], b2, sizeof b2), fb_abbrev(ids[OBS][oc], b3, sizeof b3));
            else if (va != vc)
                st = fb_fail(FB_ERR_IO, "%s: sample/matrix and observation/matrix disagree on sample '%s', observation "
                             "'%s': %.17g vs %.17g", path, fb_abbrev(ids[SAMPLE][j], b1, sizeof b1),
                             fb_abbrev(ids[OBS][oa], b2, sizeof b2), va, vc);
        }
        if (st == FB_OK && a1 - a0 != c1 - c0)
            st = fb_fail(FB_ERR_IO, "%s: sample/matrix and observation/matrix disagree on sample '%s': %lld entries vs %lld",
                         path, fb_abbrev(ids[SAMPLE][j], b1, sizeof b1), (long long)(a1 - a0), (long long)(c1 - c0));
    }
    csx_free(&by_sample);
    csx_free(&by_obs);
    csx_free(&obs_t);
    for (int axis = 0; axis < 2; axis++) fb_biom_free_ids(ids[axis], n[axis]);
    free(rows);
    return st;
}

fb_status fb_biom_check_consistent(const char *path) {
    fb_status st;
    H5E_BEGIN_TRY { st = check_consistent(path); } H5E_END_TRY;
    return st;
}

// ---- Writing ----

// The table must be what readers expect: ids present and unique, indptr from 0 and not
// decreasing, indices in range and increasing within a sample, counts finite.
static fb_status check_for_write(const char *path, const fb_table *t) {
    const char *f = "fb_biom_write";
    FB_REQUIRE(t->n_obs >= 0 && t->n_samples >= 0, FB_ERR_CONFIG, "%s(%s): table of %d observations x %d samples", f,
               path, t->n_obs, t->n_samples);
    FB_REQUIRE(t->indptr && (t->n_obs == 0 || t->obs_ids) && (t->n_samples == 0 || t->sample_ids), FB_ERR_CONFIG,
               "%s(%s): the table has no indptr or no ids", f, path);
    FB_REQUIRE(t->indptr[0] == 0, FB_ERR_CONFIG, "%s(%s): indptr starts at %lld, not 0", f, path, (long long)t->indptr[0]);
    for (int j = 0; j < t->n_samples; j++) {
        FB_REQUIRE(t->indptr[j + 1] >= t->indptr[j], FB_ERR_CONFIG, "%s(%s): indptr decreases at sample %d", f, path, j);
        for (int64_t k = t->indptr[j]; k < t->indptr[j + 1]; k++) {
            const int32_t o = t->indices[k];
            FB_REQUIRE(o >= 0 && o < t->n_obs && (k == t->indptr[j] || o > t->indices[k - 1]), FB_ERR_CONFIG,
                       "%s(%s): sample %d entry %lld: observation index %d is out of range or not increasing", f, path, j,
                       (long long)(k - t->indptr[j]), o);
            FB_REQUIRE(isfinite(t->data[k]), FB_ERR_CONFIG, "%s(%s): sample %d has a non-finite count", f, path, j);
        }
    }
    for (int axis = 0; axis < 2; axis++) {
        char *const *ids = axis == OBS ? t->obs_ids : t->sample_ids;
        const int n = axis == OBS ? t->n_obs : t->n_samples;
        for (int i = 0; i < n; i++) FB_REQUIRE(ids[i], FB_ERR_CONFIG, "%s(%s): %s id %d is NULL", f, path, AXES[axis], i);
        fb_strindex *ix;
        char what[32];
        snprintf(what, sizeof what, "%s id", AXES[axis]);
        fb_status st = fb_strindex_build((const char *const *)ids, n, what, path, &ix);
        fb_strindex_free(ix);
        if (st != FB_OK) return st == FB_ERR_ALLOC ? st : FB_ERR_CONFIG;   // the message says which id
    }
    return FB_OK;
}

static fb_status write_failed(fb_h5 *h, const char *axis, const char *name) {
    h->failed = 1;
    return fb_fail(FB_ERR_IO, "%s: cannot write '%s/%s'", h->tmp, axis, name);
}

// A 1-D dataset of n values: chunked with shuffle + deflate 1 when `compress` and n > 0 (an empty
// dataset is contiguous: a chunk cannot be 0 long).
static fb_status write_1d(fb_h5 *h, hid_t group, const char *axis, const char *name, hid_t ftype, hid_t mtype,
                          size_t n, const void *buf, int compress) {
    hsize_t dim = n, chunk = n < BIOM_CHUNK ? n : BIOM_CHUNK;
    hid_t space = H5Screate_simple(1, &dim, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (compress && n > 0 && dcpl >= 0) {
        H5Pset_chunk(dcpl, 1, &chunk);
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, 1);
    }
    hid_t d = space >= 0 && dcpl >= 0 ? H5Dcreate2(group, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)
                                      : H5I_INVALID_HID;
    herr_t rc = d >= 0 && n > 0 ? H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) : 0;
    if (d >= 0) H5Dclose(d);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return d < 0 || rc < 0 ? write_failed(h, axis, name) : FB_OK;
}

// One axis group: ids, matrix/{data, indices, indptr}, empty metadata/ and group-metadata/.
static fb_status write_axis(fb_h5 *h, int axis, char *const *ids, int n_rows, const csx *m) {
    const char *ax = AXES[axis];
    const int64_t nnz = m->indptr[n_rows];
    hid_t g = fb_h5_group(h, h->file, ax);
    if (g < 0) return FB_ERR_IO;
    hid_t sub[3] = {fb_h5_group(h, g, "metadata"), fb_h5_group(h, g, "group-metadata"), fb_h5_group(h, g, "matrix")};
    fb_status st = sub[0] < 0 || sub[1] < 0 || sub[2] < 0 ? FB_ERR_IO : FB_OK;
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, H5T_VARIABLE);
    H5Tset_cset(str, H5T_CSET_UTF8);
    if (st == FB_OK) st = write_1d(h, g, ax, "ids", str, str, (size_t)n_rows, ids, 0);
    if (st == FB_OK) st = write_1d(h, g, ax, "matrix/data", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, (size_t)nnz, m->data, 1);
    if (st == FB_OK)
        st = write_1d(h, g, ax, "matrix/indices", H5T_STD_I32LE, H5T_NATIVE_INT32, (size_t)nnz, m->indices, 1);
    // indptr as int32 like biom-format whenever it fits (readers take either).
    if (st == FB_OK)
        st = write_1d(h, g, ax, "matrix/indptr", nnz <= INT32_MAX ? H5T_STD_I32LE : H5T_STD_I64LE, H5T_NATIVE_INT64,
                      (size_t)n_rows + 1, m->indptr, 1);
    H5Tclose(str);
    for (int i = 0; i < 3; i++)
        if (sub[i] >= 0) H5Gclose(sub[i]);
    H5Gclose(g);
    return st;
}

static fb_status write_contents(fb_h5 *h, const fb_table *t, const csx *by_obs, const char *table_id) {
    char date[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", localtime_r(&now, &tm));
    const int64_t version[2] = {2, 1}, shape[2] = {t->n_obs, t->n_samples};
    FB_TRY(fb_h5_attr_string(h, h->file, "id", table_id ? table_id : "No Table ID"));
    FB_TRY(fb_h5_attr_string(h, h->file, "type", "OTU table"));
    FB_TRY(fb_h5_attr_string(h, h->file, "format-url", "http://biom-format.org"));
    FB_TRY(fb_h5_attr_int_array(h, h->file, "format-version", version, 2));
    FB_TRY(fb_h5_attr_string(h, h->file, "generated-by", "fusebench"));
    FB_TRY(fb_h5_attr_string(h, h->file, "creation-date", date));
    FB_TRY(fb_h5_attr_int_array(h, h->file, "shape", shape, 2));
    FB_TRY(fb_h5_attr_int(h, h->file, "nnz", t->indptr[t->n_samples]));
    FB_TRY(write_axis(h, OBS, t->obs_ids, t->n_obs, by_obs));
    const csx by_sample = {t->indptr, t->indices, t->data};
    return write_axis(h, SAMPLE, t->sample_ids, t->n_samples, &by_sample);
}

fb_status fb_biom_write(const char *path, const fb_table *t, const char *table_id) {
    FB_TRY(check_for_write(path, t));
    csx by_obs = {0};
    const csx by_sample = {t->indptr, t->indices, t->data};
    FB_TRY(transpose(path, &by_sample, t->n_samples, t->n_obs, &by_obs));
    fb_h5 h;
    fb_status st = fb_h5_create(&h, path);
    if (st == FB_OK) {
        H5E_BEGIN_TRY { st = write_contents(&h, t, &by_obs, table_id); } H5E_END_TRY;
        if (st == FB_OK) st = fb_h5_close(&h);
        else fb_h5_discard(&h);
    }
    csx_free(&by_obs);
    return st;
}
