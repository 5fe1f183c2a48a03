#include "unifrac.h"
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <unifrac/api.hpp>
#include "../io/h5out.h"
#include "newick.h"

static const char *const kind_names[FB_UNIFRAC_KIND_COUNT] = {
    [FB_UNIFRAC_UNWEIGHTED] = "unweighted",
    [FB_UNIFRAC_WEIGHTED_NORMALIZED] = "weighted_normalized",
    [FB_UNIFRAC_WEIGHTED_UNNORMALIZED] = "weighted_unnormalized",
};

const char *fb_unifrac_kind_name(fb_unifrac_kind kind) {
    return (kind >= 0 && kind < FB_UNIFRAC_KIND_COUNT) ? kind_names[kind] : NULL;
}

fb_status fb_unifrac_kind_parse(const char *name, fb_unifrac_kind *kind) {
    for (int k = 0; k < FB_UNIFRAC_KIND_COUNT; k++)
        if (strcmp(name, kind_names[k]) == 0) {
            *kind = (fb_unifrac_kind)k;
            return FB_OK;
        }
    return fb_fail(FB_ERR_CONFIG, "unknown UniFrac kind '%s' (known: unweighted, weighted_normalized, "
                   "weighted_unnormalized)", name);
}

void fb_unifrac_free_ids(char **ids, int n) {
    for (int i = 0; ids && i < n; i++) free(ids[i]);
    free(ids);
}

static char **copy_ids(char *const *src, int n) {
    char **ids = calloc((size_t)(n > 0 ? n : 1), sizeof *ids);
    for (int i = 0; ids && i < n; i++)
        if (!(ids[i] = strdup(src[i]))) {
            fb_unifrac_free_ids(ids, i);
            return NULL;
        }
    return ids;
}

// ---------------------------------------------------------------------------------------------
// HDF5 helpers (our HDF5: the Open MPI build)

// Opens an HDF5 file read-only, quietly (our messages say what failed).
static hid_t open_h5(const char *path, const char *what) {
    hid_t f;
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (f < 0) fb_fail(FB_ERR_IO, "cannot open %s %s (missing, or not HDF5)", what, path);
    return f;
}

static int has_dataset(hid_t file, const char *name) {
    htri_t yes = 0;
    H5E_BEGIN_TRY {   // H5Lexists fails when an intermediate group is missing: that is a "no"
        yes = H5Lexists(file, name, H5P_DEFAULT);
        if (yes > 0) {
            hid_t obj = H5Oopen(file, name, H5P_DEFAULT);
            yes = obj >= 0 && H5Iget_type(obj) == H5I_DATASET;
            if (obj >= 0) H5Oclose(obj);
        }
    } H5E_END_TRY;
    return yes > 0;
}

// A 1-D dataset of strings (variable-length, as h5py and ssu write them, or fixed-length, as
// numpy's 'S' arrays are; trailing NULs and blanks of fixed-length ones are dropped) into
// malloc'd strings. `path` names the file in messages.
static fb_status read_strings(hid_t file, const char *name, const char *path, char ***out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    hid_t ds, type = H5I_INVALID_HID, space = H5I_INVALID_HID, mem = H5I_INVALID_HID;
    H5E_BEGIN_TRY { ds = H5Dopen2(file, name, H5P_DEFAULT); } H5E_END_TRY;
    if (ds < 0) return fb_fail(FB_ERR_IO, "%s: no dataset '%s'", path, name);
    fb_status st = FB_OK;
    char **ids = NULL;
    int n = 0;
    type = H5Dget_type(ds);
    space = H5Dget_space(ds);
    hsize_t dims[1] = {0};
    if (H5Tget_class(type) != H5T_STRING)
        st = fb_fail(FB_ERR_IO, "%s: '%s' does not hold strings", path, name);
    else if (H5Sget_simple_extent_ndims(space) != 1 || H5Sget_simple_extent_dims(space, dims, NULL) != 1 ||
             dims[0] > (hsize_t)INT32_MAX)
        st = fb_fail(FB_ERR_IO, "%s: '%s' is not a 1-D list of strings", path, name);
    else if (!(ids = calloc(dims[0] ? dims[0] : 1, sizeof *ids)))
        st = fb_fail(FB_ERR_ALLOC, "%s: out of memory for %llu ids", path, (unsigned long long)dims[0]);
    n = (int)dims[0];
    if (st == FB_OK && H5Tis_variable_str(type) > 0) {
        mem = H5Tcopy(H5T_C_S1);
        H5Tset_size(mem, H5T_VARIABLE);
        H5Tset_cset(mem, H5Tget_cset(type));
        char **raw = calloc((size_t)(n ? n : 1), sizeof *raw);
        if (!raw || H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0)
            st = fb_fail(FB_ERR_IO, "%s: cannot read the strings of '%s'", path, name);
        for (int i = 0; st == FB_OK && i < n; i++)
            if (!(ids[i] = strdup(raw[i] ? raw[i] : ""))) st = fb_fail(FB_ERR_ALLOC, "%s: out of memory", path);
        if (raw) {
            H5Dvlen_reclaim(mem, space, H5P_DEFAULT, raw);
            free(raw);
        }
    } else if (st == FB_OK) {
        size_t width = H5Tget_size(type);
        mem = H5Tcopy(H5T_C_S1);
        H5Tset_size(mem, width + 1);   // room for a terminator: HDF5 converts space/NUL padding to it
        H5Tset_strpad(mem, H5T_STR_NULLTERM);
        char *raw = malloc((size_t)(n ? n : 1) * (width + 1));
        if (!raw || H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0)
            st = fb_fail(FB_ERR_IO, "%s: cannot read the strings of '%s'", path, name);
        for (int i = 0; st == FB_OK && i < n; i++) {
            char *s = raw + (size_t)i * (width + 1);
            size_t len = strnlen(s, width);
            while (len > 0 && s[len - 1] == ' ') len--;
            if (!(ids[i] = strndup(s, len))) st = fb_fail(FB_ERR_ALLOC, "%s: out of memory", path);
        }
        free(raw);
    }
    if (mem >= 0) H5Tclose(mem);
    H5Tclose(type);
    H5Sclose(space);
    H5Dclose(ds);
    if (st != FB_OK) {
        fb_unifrac_free_ids(ids, n);
        return st;
    }
    *out = ids;
    *n_out = n;
    return FB_OK;
}

// ---------------------------------------------------------------------------------------------
// Getting a table and a tree ready for libssu

typedef struct {
    char tree_copy[4096];   // the canonical tree libssu reads (removed by finish_inputs)
    char **sample_ids;      // (n_samples) the table's, in its order
    int n_samples;
} ssu_inputs;

// What libssu's BIOM reader opens (it throws, i.e. aborts the process, on a missing one).
static const char *const biom_datasets[] = {
    "observation/ids", "sample/ids",
    "observation/matrix/data", "observation/matrix/indices", "observation/matrix/indptr",
    "sample/matrix/data", "sample/matrix/indices", "sample/matrix/indptr",
};

// The table's sample and observation ids, after checking that libssu can read the file.
static fb_status read_table_ids(const char *path, char ***samples, int *n_samples, char ***obs, int *n_obs) {
    *samples = *obs = NULL;
    *n_samples = *n_obs = 0;
    hid_t f = open_h5(path, "BIOM table");
    if (f < 0) return FB_ERR_IO;
    fb_status st = FB_OK;
    for (size_t i = 0; i < sizeof biom_datasets / sizeof *biom_datasets && st == FB_OK; i++)
        if (!has_dataset(f, biom_datasets[i]))
            st = fb_fail(FB_ERR_IO, "table %s: no dataset '%s' (libssu reads BIOM 2.1 tables with both the "
                         "observation and the sample matrix)", path, biom_datasets[i]);
    if (st == FB_OK) st = read_strings(f, "sample/ids", path, samples, n_samples);
    if (st == FB_OK) st = read_strings(f, "observation/ids", path, obs, n_obs);
    H5Fclose(f);
    if (st == FB_OK && (*n_samples == 0 || *n_obs == 0))
        st = fb_fail(FB_ERR_IO, "table %s is empty (%d samples, %d observations)", path, *n_samples, *n_obs);
    if (st != FB_OK) {
        fb_unifrac_free_ids(*samples, *n_samples);
        fb_unifrac_free_ids(*obs, *n_obs);
        *samples = *obs = NULL;
        *n_samples = *n_obs = 0;
    }
    return st;
}

// libssu's Newick reader toggles quoting on every quote character, so no label may hold one.
static fb_status check_ssu_labels(const fb_tree *t, const char *tree_path) {
    for (int i = 0; i < t->n; i++)
        if (t->label[i] && strchr(t->label[i], '\'')) {
            char buf[96];
            return fb_fail(FB_ERR_IO, "tree %s: label '%s' holds a quote, which libssu's Newick reader cannot read",
                           tree_path, fb_abbrev(t->label[i], buf, sizeof buf));
        }
    return FB_OK;
}

static fb_status write_tree_copy(const fb_tree *t, const char *tree_path, char *copy, size_t size) {
    const char *dir = getenv("TMPDIR");
    snprintf(copy, size, "%s/fb_ssu_tree_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(copy);
    if (fd < 0) return fb_fail(FB_ERR_IO, "cannot create a temporary copy of tree %s (%s): %s", tree_path, copy,
                               strerror(errno));
    FILE *f = fdopen(fd, "w");
    fb_status st = f ? fb_newick_fprint(f, copy, t, FB_NEWICK_ALL_LENGTHS)
                     : fb_fail(FB_ERR_IO, "cannot write %s: %s", copy, strerror(errno));
    if (f && fclose(f) != 0 && st == FB_OK) st = fb_fail(FB_ERR_IO, "cannot write %s: %s", copy, strerror(errno));
    if (!f) close(fd);
    if (st != FB_OK) unlink(copy);
    return st;
}

static void finish_inputs(ssu_inputs *in) {
    if (in->tree_copy[0]) unlink(in->tree_copy);
    fb_unifrac_free_ids(in->sample_ids, in->n_samples);
    memset(in, 0, sizeof *in);
}

// Parses the tree, reads the table's ids, checks that every observation is a tip and that
// libssu can read both, and writes the canonical tree copy.
static fb_status prepare_inputs(const char *table_path, const char *tree_path, fb_unifrac_kind kind, ssu_inputs *in) {
    memset(in, 0, sizeof *in);
    if (!fb_unifrac_kind_name(kind)) return fb_fail(FB_ERR_CONFIG, "unknown UniFrac kind %d", (int)kind);
    fb_tree tree;
    FB_TRY(fb_newick_read(tree_path, &tree));
    char **obs = NULL;
    int n_obs = 0;
    fb_status st = check_ssu_labels(&tree, tree_path);
    if (st == FB_OK) st = read_table_ids(table_path, &in->sample_ids, &in->n_samples, &obs, &n_obs);
    if (st == FB_OK) st = fb_tree_check_table(&tree, tree_path, (const char *const *)obs, n_obs, table_path);
    if (st == FB_OK) st = write_tree_copy(&tree, tree_path, in->tree_copy, sizeof in->tree_copy);
    fb_unifrac_free_ids(obs, n_obs);
    fb_tree_free(&tree);
    if (st != FB_OK) finish_inputs(in);
    return st;
}

// libssu's method name: "<kind>_fp64" or "<kind>_fp32".
static void method_name(fb_unifrac_kind kind, int fp32, char *buf, size_t size) {
    snprintf(buf, size, "%s_%s", kind_names[kind], fp32 ? "fp32" : "fp64");
}

static fb_status compute_failed(ComputeStatus s, const char *call, const char *table_path, const char *tree_path) {
    static const char *const why[] = {
        [okay] = "no error", [tree_missing] = "tree file missing", [table_missing] = "table file missing",
        [table_empty] = "table empty", [unknown_method] = "unknown method",
        [table_and_tree_do_not_overlap] = "table and tree do not overlap", [output_error] = "output error",
        [invalid_method] = "invalid method",
    };
    const char *w = (s >= 0 && (size_t)s < sizeof why / sizeof *why && why[s]) ? why[s] : "unknown status";
    return fb_fail(FB_ERR_IO, "libssu %s on table %s and tree %s failed: %s (status %d)", call, table_path,
                   tree_path, w, (int)s);
}

// The result's sample ids must be the table's, in order (libssu keeps the table's order).
static fb_status check_order(char *const *got, unsigned n, const ssu_inputs *in, const char *table_path) {
    if ((int)n != in->n_samples)
        return fb_fail(FB_ERR_INTERNAL, "libssu returned %u samples for table %s, which has %d", n, table_path,
                       in->n_samples);
    for (unsigned i = 0; i < n; i++)
        if (strcmp(got[i], in->sample_ids[i]) != 0)
            return fb_fail(FB_ERR_INTERNAL, "libssu returned sample %u as '%s', table %s has '%s'", i, got[i],
                           table_path, in->sample_ids[i]);
    return FB_OK;
}

// Runs `call` with `threads` OpenMP threads (0: as set), restoring the setting after.
#define WITH_THREADS(threads, call)                                  \
    do {                                                             \
        int saved_threads_ = omp_get_max_threads();                  \
        if ((threads) > 0) omp_set_num_threads(threads);             \
        call;                                                        \
        omp_set_num_threads(saved_threads_);                         \
    } while (0)

// ---------------------------------------------------------------------------------------------
// One process

fb_status fb_unifrac_compute(const char *table_path, const char *tree_path, fb_unifrac_kind kind, int fp32,
                             int threads, double **matrix, char ***sample_ids, int *n) {
    *matrix = NULL;
    *sample_ids = NULL;
    *n = 0;
    ssu_inputs in;
    FB_TRY(prepare_inputs(table_path, tree_path, kind, &in));
    char method[64];
    method_name(kind, fp32, method, sizeof method);
    fb_status st = FB_OK;
    ComputeStatus cs;
    mat_full_fp64_t *r64 = NULL;
    mat_full_fp32_t *r32 = NULL;
    if (fp32) WITH_THREADS(threads, cs = one_off_matrix_fp32(table_path, in.tree_copy, method, false, 1.0, false, 1, NULL, &r32));
    else WITH_THREADS(threads, cs = one_off_matrix(table_path, in.tree_copy, method, false, 1.0, false, 1, NULL, &r64));
    if (cs != okay) st = compute_failed(cs, fp32 ? "one_off_matrix_fp32" : "one_off_matrix", table_path, tree_path);
    if (st == FB_OK) st = check_order(fp32 ? r32->sample_ids : r64->sample_ids, fp32 ? r32->n_samples : r64->n_samples,
                                      &in, table_path);
    if (st == FB_OK) {
        size_t N = (size_t)in.n_samples;
        *matrix = malloc(N * N * sizeof **matrix);
        if (!*matrix) st = fb_fail(FB_ERR_ALLOC, "out of memory for a %zu x %zu UniFrac matrix", N, N);
        for (size_t i = 0; st == FB_OK && i < N * N; i++) (*matrix)[i] = fp32 ? (double)r32->matrix[i] : r64->matrix[i];
    }
    if (st == FB_OK) {
        *sample_ids = in.sample_ids;   // the table's ids, now the caller's
        *n = in.n_samples;
        in.sample_ids = NULL;
        in.n_samples = 0;
    }
    if (r32) destroy_mat_full_fp32(&r32);
    if (r64) destroy_mat_full_fp64(&r64);
    finish_inputs(&in);
    if (st != FB_OK) {
        free(*matrix);
        *matrix = NULL;
    }
    return st;
}

// ---------------------------------------------------------------------------------------------
// Distributed

int fb_unifrac_stripes(int n_samples) { return (n_samples + 1) / 2; }

void fb_unifrac_stripe_range(int n_samples, int rank, int nranks, int *start, int *stop) {
    long long S = fb_unifrac_stripes(n_samples);
    *start = (int)(S * rank / nranks);
    *stop = (int)(S * (rank + 1) / nranks);
}

#define PARTIAL_MAGIC_FB "FBUFPRT1"
enum { HDR_N, HDR_START, HDR_STOP, HDR_TOTAL, HDR_KIND, HDR_FP32, HDR_IDS_BYTES, HDR_WORDS };
#define HDR_BYTES (8 + HDR_WORDS * sizeof(uint32_t))

fb_status fb_unifrac_partial(const char *table_path, const char *tree_path, fb_unifrac_kind kind, int fp32,
                             int threads, int rank, int nranks, void **buf, size_t *size) {
    *buf = NULL;
    *size = 0;
    FB_REQUIRE(nranks > 0 && rank >= 0 && rank < nranks, FB_ERR_CONFIG, "rank %d of %d ranks", rank, nranks);
    ssu_inputs in;
    FB_TRY(prepare_inputs(table_path, tree_path, kind, &in));
    int start, stop;
    fb_unifrac_stripe_range(in.n_samples, rank, nranks, &start, &stop);
    fb_status st = FB_OK;
    partial_mat_t *pm = NULL;
    if (stop > start) {   // libssu refuses an empty range; such a rank sends a header and the ids
        char method[64];
        method_name(kind, fp32, method, sizeof method);
        ComputeStatus cs;
        WITH_THREADS(threads, cs = partial(table_path, in.tree_copy, method, false, 1.0, false, 1, (unsigned)start,
                                           (unsigned)stop, &pm));
        if (cs != okay) st = compute_failed(cs, "partial", table_path, tree_path);
        if (st == FB_OK) st = check_order(pm->sample_ids, pm->n_samples, &in, table_path);
        if (st == FB_OK && ((int)pm->stripe_start != start || (int)pm->stripe_stop != stop ||
                            (int)pm->stripe_total != fb_unifrac_stripes(in.n_samples) || !pm->is_upper_triangle))
            st = fb_fail(FB_ERR_INTERNAL, "libssu partial returned stripes [%u, %u) of %u for [%d, %d)",
                         pm->stripe_start, pm->stripe_stop, pm->stripe_total, start, stop);
    }
    size_t ids_bytes = 0;
    for (int i = 0; i < in.n_samples; i++) ids_bytes += strlen(in.sample_ids[i]) + 1;
    size_t N = (size_t)in.n_samples, bytes = HDR_BYTES + ids_bytes + (size_t)(stop - start) * N * sizeof(double);
    char *out = NULL;
    if (st == FB_OK && ids_bytes > UINT32_MAX) st = fb_fail(FB_ERR_CONFIG, "%s: sample ids too long", table_path);
    if (st == FB_OK && !(out = malloc(bytes))) st = fb_fail(FB_ERR_ALLOC, "out of memory for %zu bytes", bytes);
    if (st == FB_OK) {
        uint32_t hdr[HDR_WORDS] = {
            [HDR_N] = (uint32_t)N, [HDR_START] = (uint32_t)start, [HDR_STOP] = (uint32_t)stop,
            [HDR_TOTAL] = (uint32_t)fb_unifrac_stripes(in.n_samples), [HDR_KIND] = (uint32_t)kind,
            [HDR_FP32] = fp32 ? 1u : 0u, [HDR_IDS_BYTES] = (uint32_t)ids_bytes,
        };
        char *p = out;
        memcpy(p, PARTIAL_MAGIC_FB, 8);
        memcpy(p + 8, hdr, sizeof hdr);
        p += HDR_BYTES;
        for (int i = 0; i < in.n_samples; i++) {
            size_t len = strlen(in.sample_ids[i]) + 1;
            memcpy(p, in.sample_ids[i], len);
            p += len;
        }
        for (int s = 0; s < stop - start; s++, p += N * sizeof(double)) memcpy(p, pm->stripes[s], N * sizeof(double));
        *buf = out;
        *size = bytes;
    }
    if (pm) destroy_partial_mat(&pm);
    finish_inputs(&in);
    return st;
}

// One received buffer, checked and unpacked. Stripes point into the buffer.
typedef struct {
    uint32_t hdr[HDR_WORDS];
    const char *ids;            // ids_bytes bytes of NUL-terminated ids
    const unsigned char *data;  // (stop - start, n) doubles, maybe unaligned
} partial_view;

static fb_status view_partial(const void *buf, size_t size, int which, partial_view *v) {
    const char *b = buf;
    if (!buf || size < HDR_BYTES || memcmp(b, PARTIAL_MAGIC_FB, 8) != 0)
        return fb_fail(FB_ERR_IO, "UniFrac partial %d: not a fusebench partial buffer (%zu bytes)", which, size);
    memcpy(v->hdr, b + 8, sizeof v->hdr);
    uint64_t n = v->hdr[HDR_N], start = v->hdr[HDR_START], stop = v->hdr[HDR_STOP], total = v->hdr[HDR_TOTAL];
    if (n == 0 || total != (n + 1) / 2 || start > stop || stop > total || v->hdr[HDR_KIND] >= FB_UNIFRAC_KIND_COUNT ||
        v->hdr[HDR_FP32] > 1)
        return fb_fail(FB_ERR_IO, "UniFrac partial %d: bad header (%llu samples, stripes [%llu, %llu) of %llu)", which,
                       (unsigned long long)n, (unsigned long long)start, (unsigned long long)stop,
                       (unsigned long long)total);
    uint64_t want = HDR_BYTES + (uint64_t)v->hdr[HDR_IDS_BYTES] + (stop - start) * n * sizeof(double);
    if (size != want)
        return fb_fail(FB_ERR_IO, "UniFrac partial %d: %zu bytes, its header says %llu", which, size,
                       (unsigned long long)want);
    v->ids = b + HDR_BYTES;
    v->data = (const unsigned char *)v->ids + v->hdr[HDR_IDS_BYTES];
    // Exactly n NUL-terminated ids fill ids_bytes.
    uint64_t count = 0;
    for (uint32_t i = 0; i < v->hdr[HDR_IDS_BYTES]; i++) count += v->ids[i] == '\0';
    if (count != n || (v->hdr[HDR_IDS_BYTES] > 0 && v->ids[v->hdr[HDR_IDS_BYTES] - 1] != '\0'))
        return fb_fail(FB_ERR_IO, "UniFrac partial %d: its ids are not %llu strings", which, (unsigned long long)n);
    return FB_OK;
}

static void free_partial_mat(partial_mat_t *pm) {
    if (!pm) return;
    for (uint32_t s = 0; pm->stripes && s < pm->stripe_stop - pm->stripe_start; s++) free(pm->stripes[s]);
    free(pm->stripes);
    free(pm->sample_ids);   // the strings point into the received buffer
    free(pm);
}

// A libssu partial_mat_t for a view: ids point into the buffer, stripes are copied (aligned).
static partial_mat_t *to_partial_mat(const partial_view *v) {
    partial_mat_t *pm = calloc(1, sizeof *pm);
    if (!pm) return NULL;
    uint32_t n = v->hdr[HDR_N], ns = v->hdr[HDR_STOP] - v->hdr[HDR_START];
    pm->n_samples = n;
    pm->stripe_start = v->hdr[HDR_START];
    pm->stripe_stop = v->hdr[HDR_START];   // raised as stripes are filled, so a failure frees what exists
    pm->stripe_total = v->hdr[HDR_TOTAL];
    pm->is_upper_triangle = true;
    pm->sample_ids = malloc(n * sizeof *pm->sample_ids);
    pm->stripes = calloc(ns ? ns : 1, sizeof *pm->stripes);
    if (!pm->sample_ids || !pm->stripes) {
        free_partial_mat(pm);
        return NULL;
    }
    const char *id = v->ids;
    for (uint32_t i = 0; i < n; i++, id += strlen(id) + 1) pm->sample_ids[i] = (char *)id;
    for (uint32_t s = 0; s < ns; s++) {
        if (!(pm->stripes[s] = malloc(n * sizeof(double)))) {
            free_partial_mat(pm);
            return NULL;
        }
        memcpy(pm->stripes[s], v->data + (size_t)s * n * sizeof(double), n * sizeof(double));
        pm->stripe_stop++;
    }
    return pm;
}

fb_status fb_unifrac_merge(const void *const *bufs, const size_t *sizes, int nbufs, double **matrix,
                           char ***sample_ids, int *n) {
    *matrix = NULL;
    *sample_ids = NULL;
    *n = 0;
    FB_REQUIRE(nbufs > 0, FB_ERR_CONFIG, "no UniFrac partials to merge");
    partial_view *views = calloc((size_t)nbufs, sizeof *views);
    partial_mat_t **pms = calloc((size_t)nbufs, sizeof *pms);
    fb_status st = (views && pms) ? FB_OK : fb_fail(FB_ERR_ALLOC, "out of memory merging %d partials", nbufs);
    // Every buffer must describe the same computation; stripes must cover [0, total) once.
    uint64_t covered = 0;
    for (int i = 0; i < nbufs && st == FB_OK; i++) {
        st = view_partial(bufs[i], sizes[i], i, &views[i]);
        if (st != FB_OK) break;
        const uint32_t *h = views[i].hdr, *h0 = views[0].hdr;
        if (h[HDR_N] != h0[HDR_N] || h[HDR_KIND] != h0[HDR_KIND] || h[HDR_FP32] != h0[HDR_FP32] ||
            h[HDR_IDS_BYTES] != h0[HDR_IDS_BYTES] || memcmp(views[i].ids, views[0].ids, h[HDR_IDS_BYTES]) != 0)
            st = fb_fail(FB_ERR_IO, "UniFrac partial %d was computed on other samples, kind or precision than "
                         "partial 0", i);
        for (int j = 0; j < i && st == FB_OK; j++) {
            const uint32_t *g = views[j].hdr;
            if (h[HDR_START] < g[HDR_STOP] && g[HDR_START] < h[HDR_STOP])
                st = fb_fail(FB_ERR_IO, "UniFrac partials %d and %d overlap (stripes [%u, %u) and [%u, %u))", j, i,
                             g[HDR_START], g[HDR_STOP], h[HDR_START], h[HDR_STOP]);
        }
        covered += h[HDR_STOP] - h[HDR_START];
    }
    if (st == FB_OK && covered != views[0].hdr[HDR_TOTAL])
        st = fb_fail(FB_ERR_IO, "UniFrac partials cover %llu of %u stripes", (unsigned long long)covered,
                     views[0].hdr[HDR_TOTAL]);
    // libssu's merge, on the non-empty partials. libssu 1.2's merge_partial reads the stripe
    // pointers but frees none of them (its header says "the buffers will be destroyed": they are
    // not; valgrind and ASan agree), so free_partial_mat releases them after.
    int used = 0;
    for (int i = 0; i < nbufs && st == FB_OK; i++) {
        if (views[i].hdr[HDR_STOP] == views[i].hdr[HDR_START]) continue;
        if (!(pms[used++] = to_partial_mat(&views[i]))) st = fb_fail(FB_ERR_ALLOC, "out of memory merging partials");
    }
    mat_t *m = NULL;
    if (st == FB_OK) {
        MergeStatus ms = merge_partial(pms, used, 1, &m);
        if (ms != merge_okay) st = fb_fail(FB_ERR_IO, "libssu merge_partial failed (status %d)", (int)ms);
    }
    // Condensed upper triangle (row i, columns i+1..N-1, in order) -> full symmetric matrix.
    size_t N = views ? views[0].hdr[HDR_N] : 0;
    if (st == FB_OK && (m->n_samples != N || (size_t)m->cf_size != N * (N - 1) / 2 || !m->is_upper_triangle))
        st = fb_fail(FB_ERR_INTERNAL, "libssu merge_partial returned %u samples, %u values", m->n_samples, m->cf_size);
    if (st == FB_OK && !(*matrix = malloc(N * N * sizeof **matrix)))
        st = fb_fail(FB_ERR_ALLOC, "out of memory for a %zu x %zu UniFrac matrix", N, N);
    if (st == FB_OK) {
        const double *cf = m->condensed_form;
        for (size_t i = 0; i < N; i++) {
            (*matrix)[i * N + i] = 0.0;
            for (size_t j = i + 1; j < N; j++, cf++) (*matrix)[i * N + j] = (*matrix)[j * N + i] = *cf;
        }
        if (!(*sample_ids = copy_ids(m->sample_ids, (int)N))) st = fb_fail(FB_ERR_ALLOC, "out of memory");
        else *n = (int)N;
    }
    if (m) destroy_mat(&m);
    for (int i = 0; pms && i < used; i++) free_partial_mat(pms[i]);
    free(pms);
    free(views);
    if (st != FB_OK) {
        free(*matrix);
        *matrix = NULL;
    }
    return st;
}

// ---------------------------------------------------------------------------------------------
// Files

// A 1-element fixed-length space-padded ASCII string dataset, as ssu writes `format` and `version`.
static herr_t write_tag(hid_t file, const char *name, const char *value) {
    hid_t ftype = H5Tcopy(H5T_FORTRAN_S1), mtype = H5Tcopy(H5T_C_S1);
    H5Tset_size(ftype, strlen(value));
    H5Tset_size(mtype, strlen(value) + 1);
    hsize_t one = 1;
    hid_t space = H5Screate_simple(1, &one, NULL);
    hid_t ds = H5Dcreate2(file, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, value);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(space);
    H5Tclose(ftype);
    H5Tclose(mtype);
    return rc;
}

static herr_t write_order(hid_t file, const char *const *ids, int n) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    hsize_t dim = (hsize_t)n;
    hid_t space = H5Screate_simple(1, &dim, NULL);
    hid_t ds = H5Dcreate2(file, "order", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(space);
    H5Tclose(type);
    return rc;
}

// `matrix` as float64, or float32 (HDF5 converts the doubles on write).
static herr_t write_matrix(hid_t file, const double *matrix, int n, int fp32) {
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)n};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t ds = H5Dcreate2(file, "matrix", fp32 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, matrix);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(space);
    return rc;
}

fb_status fb_unifrac_write(const char *path, const double *matrix, const char *const *ids, int n, int fp32) {
    FB_REQUIRE(n > 0, FB_ERR_SHAPE, "%s: a UniFrac matrix needs at least one sample (got %d)", path, n);
    fb_h5 h;
    FB_TRY(fb_h5_create(&h, path));
    herr_t rc;
    H5E_BEGIN_TRY {
        rc = write_tag(h.file, "format", "BDSM");
        if (rc >= 0) rc = write_tag(h.file, "version", "2020.12");
        if (rc >= 0) rc = write_order(h.file, ids, n);
        if (rc >= 0) rc = write_matrix(h.file, matrix, n, fp32);
    } H5E_END_TRY;
    if (rc < 0) {
        fb_h5_discard(&h);
        return fb_fail(FB_ERR_IO, "writing UniFrac matrix %s failed (disk full?)", h.tmp);
    }
    return fb_h5_close(&h);
}

// Square, finite, symmetric, zero diagonal: the first offending entry fails.
static fb_status check_distances(const char *path, const double *d, int n) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double v = d[(size_t)i * n + j];
            if (!isfinite(v)) return fb_fail(FB_ERR_IO, "%s: matrix[%d][%d] = %g is not finite", path, i, j, v);
            if (i == j && v != 0.0) return fb_fail(FB_ERR_IO, "%s: diagonal matrix[%d][%d] = %.17g is not 0", path, i, j, v);
            if (j > i && v != d[(size_t)j * n + i])
                return fb_fail(FB_ERR_IO, "%s: not symmetric: matrix[%d][%d] = %.17g but matrix[%d][%d] = %.17g", path,
                               i, j, v, j, i, d[(size_t)j * n + i]);
        }
    return FB_OK;
}

fb_status fb_unifrac_read(const char *path, double **matrix, char ***ids, int *n) {
    *matrix = NULL;
    *ids = NULL;
    *n = 0;
    hid_t f = open_h5(path, "UniFrac matrix");
    if (f < 0) return FB_ERR_IO;
    const char *name = has_dataset(f, "matrix") ? "matrix" : has_dataset(f, "distances") ? "distances" : NULL;
    fb_status st = name ? FB_OK : fb_fail(FB_ERR_IO, "%s: no dataset 'matrix' (Striped UniFrac) or 'distances'", path);
    char **order = NULL;
    int n_order = 0;
    double *d = NULL;
    hsize_t dims[2] = {0, 0};
    if (st == FB_OK) {
        hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), space = H5Dget_space(ds), type = H5Dget_type(ds);
        if (H5Tget_class(type) != H5T_FLOAT || H5Sget_simple_extent_ndims(space) != 2)
            st = fb_fail(FB_ERR_IO, "%s: '%s' is not a 2-D float matrix", path, name);
        else {
            H5Sget_simple_extent_dims(space, dims, NULL);
            if (dims[0] != dims[1] || dims[0] == 0 || dims[0] > 1000000)
                st = fb_fail(FB_ERR_IO, "%s: '%s' is %llu x %llu, not a square matrix of 1 to 10^6 samples", path,
                             name, (unsigned long long)dims[0], (unsigned long long)dims[1]);
            else if (!(d = malloc(dims[0] * dims[1] * sizeof *d)))
                st = fb_fail(FB_ERR_ALLOC, "%s: out of memory for %llu x %llu", path, (unsigned long long)dims[0],
                             (unsigned long long)dims[1]);
            else if (H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, d) < 0)
                st = fb_fail(FB_ERR_IO, "%s: cannot read '%s'", path, name);
        }
        H5Tclose(type);
        H5Sclose(space);
        H5Dclose(ds);
    }
    if (st == FB_OK) st = read_strings(f, "order", path, &order, &n_order);
    H5Fclose(f);
    if (st == FB_OK && (hsize_t)n_order != dims[0])
        st = fb_fail(FB_ERR_IO, "%s: 'order' has %d sample ids for a %llu x %llu matrix", path, n_order,
                     (unsigned long long)dims[0], (unsigned long long)dims[0]);
    fb_strindex *unique = NULL;
    if (st == FB_OK) st = fb_strindex_build((const char *const *)order, n_order, "sample id", path, &unique);
    fb_strindex_free(unique);
    if (st == FB_OK) st = check_distances(path, d, n_order);
    if (st != FB_OK) {
        free(d);
        fb_unifrac_free_ids(order, n_order);
        return st;
    }
    *matrix = d;
    *ids = order;
    *n = n_order;
    return FB_OK;
}

fb_status fb_unifrac_submatrix(double *out, const double *matrix, int n, const fb_strindex *rows,
                               const char *source, const char *const *batch_ids, int b) {
    FB_REQUIRE(b >= 0, FB_ERR_SHAPE, "batch of %d samples", b);
    int stack_rows[64];
    int *r = b <= 64 ? stack_rows : malloc((size_t)b * sizeof *r);
    if (!r) return fb_fail(FB_ERR_ALLOC, "out of memory for a batch of %d", b);
    fb_status st = FB_OK;
    for (int i = 0; i < b && st == FB_OK; i++) {
        r[i] = fb_strindex_find(rows, batch_ids[i]);
        char buf[96];
        if (r[i] < 0 || r[i] >= n)
            st = fb_fail(FB_ERR_CONFIG, "%s: sample '%s' (batch position %d) is not in the UniFrac matrix", source,
                         fb_abbrev(batch_ids[i], buf, sizeof buf), i);
    }
    for (int i = 0; i < b && st == FB_OK; i++)
        for (int j = 0; j < b; j++) out[(size_t)i * b + j] = matrix[(size_t)r[i] * n + r[j]];
    if (r != stack_rows) free(r);
    return st;
}
