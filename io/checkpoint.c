#include "checkpoint.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "h5out.h"

#define CKPT_FORMAT "fusebench-checkpoint"
#define CKPT_VERSION 1

fb_status fb_checkpoint_write(const char *path, const fb_checkpoint *c) {
    fb_h5 h;
    FB_TRY(fb_h5_create(&h, path));
    hid_t root = h.file;
    fb_h5_attr_string(&h, root, "format", CKPT_FORMAT);
    fb_h5_attr_int(&h, root, "version", CKPT_VERSION);
    fb_h5_attr_string(&h, root, "fingerprint", c->fingerprint);
    fb_h5_attr_int(&h, root, "step", c->step);
    fb_h5_attr_int(&h, root, "n", (int64_t)c->n);
    fb_h5_write_floats(&h, root, "params", c->params, c->n);
    if (c->m) fb_h5_write_floats(&h, root, "m", c->m, c->n);
    if (c->v) fb_h5_write_floats(&h, root, "v", c->v, c->n);
    return fb_h5_close(&h);
}

// Reads a string attribute into a malloc'd buffer (NULL when missing or not a string).
static char *read_string_attr(hid_t loc, const char *name) {
    if (H5Aexists(loc, name) <= 0) return NULL;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    char *out = NULL;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5T_CSET_UTF8);
        char *v = NULL;
        if (H5Aread(a, mt, &v) >= 0 && v) {
            out = strdup(v);
            H5free_memory(v);
        }
        H5Tclose(mt);
    }
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return out;
}

static int read_int_attr(hid_t loc, const char *name, int64_t *value) {
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return -1;
    herr_t rc = H5Aread(a, H5T_NATIVE_INT64, value);
    H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

static fb_status read_floats(hid_t file, const char *path, const char *name, float *out, size_t n) {
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
        return fb_fail(FB_ERR_IO, "checkpoint %s has no dataset '%s'", path, name);
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t s = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
    hssize_t count = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    herr_t rc = -1;
    if (count == (hssize_t)n) rc = n ? H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) : 0;
    if (s >= 0) H5Sclose(s);
    if (d >= 0) H5Dclose(d);
    if (count != (hssize_t)n)
        return fb_fail(FB_ERR_IO, "checkpoint %s: dataset '%s' holds %lld values, expected %zu", path, name,
                       (long long)count, n);
    if (rc < 0) return fb_fail(FB_ERR_IO, "checkpoint %s: reading dataset '%s' failed", path, name);
    return FB_OK;
}

// The first "key=value" item of `got` that differs from `want`, for the error message.
static void first_difference(const char *want, const char *got, char *buf, size_t size) {
    const char *w = want, *g = got;
    while (*w && *g) {
        size_t lw = strcspn(w, ";"), lg = strcspn(g, ";");
        if (lw != lg || strncmp(w, g, lw) != 0) {
            snprintf(buf, size, "checkpoint has '%.*s', this run '%.*s'", (int)lg, g, (int)lw, w);
            return;
        }
        w += lw; g += lg;
        while (*w == ';' || *w == ' ') w++;
        while (*g == ';' || *g == ' ') g++;
    }
    snprintf(buf, size, "item counts differ");
}

fb_status fb_checkpoint_read(const char *path, const char *fingerprint, size_t n, float *params, float *m,
                             float *v, int64_t *step) {
    hid_t file;
    H5E_BEGIN_TRY { file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (file < 0) return fb_fail(FB_ERR_IO, "cannot open checkpoint %s (missing, or not an HDF5 file)", path);
    fb_status st = FB_OK;
    char *format = NULL, *fp = NULL;
    int64_t version = 0, nfile = -1;
    H5E_BEGIN_TRY {
        format = read_string_attr(file, "format");
        fp = read_string_attr(file, "fingerprint");
        if (!format || strcmp(format, CKPT_FORMAT) != 0 || read_int_attr(file, "version", &version) != 0) {
            st = fb_fail(FB_ERR_IO, "%s is not a fusebench checkpoint (no format = \"%s\" attribute)", path, CKPT_FORMAT);
        } else if (version != CKPT_VERSION) {
            st = fb_fail(FB_ERR_IO, "checkpoint %s has version %lld; this build reads version %d", path,
                         (long long)version, CKPT_VERSION);
        } else if (!fp || read_int_attr(file, "step", step) != 0 || read_int_attr(file, "n", &nfile) != 0) {
            st = fb_fail(FB_ERR_IO, "checkpoint %s lacks its fingerprint, step or n attribute", path);
        } else if (strcmp(fp, fingerprint) != 0) {
            char diff[512];
            first_difference(fingerprint, fp, diff, sizeof diff);
            st = fb_fail(FB_ERR_CONFIG, "checkpoint %s was written by a different run configuration (%s)", path, diff);
        } else if (nfile != (int64_t)n) {
            st = fb_fail(FB_ERR_CONFIG, "checkpoint %s holds %lld parameters, this model has %zu", path,
                         (long long)nfile, n);
        } else {
            st = read_floats(file, path, "params", params, n);
            if (st == FB_OK && m) st = read_floats(file, path, "m", m, n);
            if (st == FB_OK && v) st = read_floats(file, path, "v", v, n);
        }
    } H5E_END_TRY;
    free(format);
    free(fp);
    H5Fclose(file);
    return st;
}
