#include "testutil.h"
#include <ftw.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>

#ifndef FB_SOURCE_DIR
#define FB_SOURCE_DIR "."
#endif

// Line-buffered stdout so our lines and cmocka's (stderr) interleave in order in a pipe.
__attribute__((constructor)) static void line_buffer_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

#define MAX_BLOCKS 64
static struct { char block[64]; double worst; } worst_table[MAX_BLOCKS];
static int worst_count;

static void record_worst(const char *block, double err) {
    for (int i = 0; i < worst_count; i++)
        if (strcmp(worst_table[i].block, block) == 0) {
            if (err > worst_table[i].worst || isnan(err)) worst_table[i].worst = err;
            return;
        }
    if (worst_count < MAX_BLOCKS) {
        snprintf(worst_table[worst_count].block, sizeof worst_table[0].block, "%s", block);
        worst_table[worst_count++].worst = err;
    }
}

void report_worst(void) {
    for (int i = 0; i < worst_count; i++)
        printf("worst-error %-40s %.3e\n", worst_table[i].block, worst_table[i].worst);
}

void fixture_open(fixture *f, const char *file, const char *case_name) {
    char path[1024];
    const char *dir = getenv("FB_FIXTURE_DIR");
    snprintf(path, sizeof path, "%s/%s.h5", dir ? dir : FB_SOURCE_DIR "/tests/fixtures", file);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    f->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f->file < 0) fail_msg("fixture %s missing (run `make refs` to regenerate)", path);
    f->group = H5Gopen2(f->file, case_name, H5P_DEFAULT);
    if (f->group < 0) fail_msg("fixture %s has no case '%s'", path, case_name);
    snprintf(f->label, sizeof f->label, "%s/%s", file, case_name);
}

void fixture_close(fixture *f) {
    H5Gclose(f->group);
    H5Fclose(f->file);
}

int fixture_has(const fixture *f, const char *name) {
    return H5Lexists(f->group, name, H5P_DEFAULT) > 0;
}

static void *fixture_read(const fixture *f, const char *name, size_t *n, hid_t memtype, size_t elsize) {
    hid_t ds = H5Dopen2(f->group, name, H5P_DEFAULT);
    if (ds < 0) fail_msg("fixture %s has no dataset '%s'", f->label, name);
    hid_t sp = H5Dget_space(ds);
    hssize_t count = H5Sget_simple_extent_npoints(sp);
    void *buf = malloc((size_t)(count > 0 ? count : 1) * elsize);
    if (!buf || H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        fail_msg("fixture %s: cannot read '%s'", f->label, name);
    H5Sclose(sp);
    H5Dclose(ds);
    if (n) *n = (size_t)count;
    return buf;
}

float *fixture_floats(const fixture *f, const char *name, size_t *n) {
    return fixture_read(f, name, n, H5T_NATIVE_FLOAT, sizeof(float));
}

void fixture_load(const fixture *f, const char *name, float *dst, size_t n) {
    size_t m;
    float *src = fixture_floats(f, name, &m);
    if (m != n) fail_msg("%s/%s: fixture has %zu values, the kernel %zu", f->label, name, m, n);
    memcpy(dst, src, n * sizeof(float));
    free(src);
}

double *fixture_doubles(const fixture *f, const char *name, size_t *n) {
    return fixture_read(f, name, n, H5T_NATIVE_DOUBLE, sizeof(double));
}

static double read_attr(const fixture *f, const char *attr) {
    double v = 0;
    hid_t a = H5Aopen(f->group, attr, H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) fail_msg("fixture %s has no attribute '%s'", f->label, attr);
    H5Aclose(a);
    return v;
}

int fixture_has_attr(const fixture *f, const char *attr) { return H5Aexists(f->group, attr) > 0; }

void fixture_string_attr(const fixture *f, const char *attr, char *buf, size_t size) {
    hid_t a = H5Aopen(f->group, attr, H5P_DEFAULT);
    if (a < 0) fail_msg("fixture %s has no attribute '%s'", f->label, attr);
    hid_t type = H5Aget_type(a);
    if (H5Tis_variable_str(type) > 0) {
        char *s = NULL;
        hid_t mem = H5Tcopy(H5T_C_S1);
        H5Tset_size(mem, H5T_VARIABLE);
        H5Tset_cset(mem, H5Tget_cset(type));
        if (H5Aread(a, mem, &s) < 0 || !s) fail_msg("fixture %s: cannot read '%s'", f->label, attr);
        snprintf(buf, size, "%s", s);
        H5free_memory(s);
        H5Tclose(mem);
    } else {
        size_t n = H5Tget_size(type);
        char *tmp = calloc(n + 1, 1);
        H5Aread(a, type, tmp);
        snprintf(buf, size, "%s", tmp);
        free(tmp);
    }
    H5Tclose(type);
    H5Aclose(a);
}

int fixture_int(const fixture *f, const char *attr) { return (int)lround(read_attr(f, attr)); }
double fixture_double_attr(const fixture *f, const char *attr) { return read_attr(f, attr); }

double max_rel_err(const float *got, const double *want, size_t n) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (isnan(d) || d > diff) diff = isnan(d) ? NAN : d;
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
        if (isnan(diff)) break;
    }
    // A reference that is zero up to float64 rounding (a gradient that vanishes mathematically,
    // e.g. the key bias of softmax attention) has no scale: the error is then absolute.
    return scale > ZERO_REFERENCE ? diff / scale : diff;
}

double check_against(const fixture *f, const char *name, const float *got, size_t n, double tol) {
    size_t m = 0;
    double *want = fixture_doubles(f, name, &m);
    if (m != n) fail_msg("%s/%s: %zu values, fixture has %zu", f->label, name, n, m);
    double err = max_rel_err(got, want, n);
    free(want);
    char block[64];
    snprintf(block, sizeof block, "%.*s", (int)strcspn(f->label, "/"), f->label);
    record_worst(block, err);
    printf("  torch %-28s %-10s max rel err %.3e (tol %.0e)\n", f->label, name, err, tol);
    if (!(err <= tol)) fail_msg("%s/%s: max rel err %.3e above %.0e", f->label, name, err, tol);
    return err;
}

double fd_check(const char *block, fd_loss_fn loss, void *ctx, fd_var *vars, int nvars,
                float h, int samples, double tol) {
    double worst = 0;
    for (int v = 0; v < nvars; v++) {
        fd_var *var = &vars[v];
        double scale = 0, err = 0;
        for (size_t i = 0; i < var->n; i++) if (fabs(var->grad[i]) > scale) scale = fabs(var->grad[i]);
        int count = samples < (int)var->n ? samples : (int)var->n;
        for (int s = 0; s < count; s++) {
            size_t i = (size_t)s * var->n / (size_t)count;
            float saved = var->x[i];
            var->x[i] = saved + h; double lp = loss(ctx);
            var->x[i] = saved - h; double lm = loss(ctx);
            var->x[i] = saved;
            double fd = (lp - lm) / (2.0 * h);
            double e = fabs(fd - var->grad[i]) / (scale > 0 ? scale : 1.0);
            if (e > err || isnan(e)) err = isnan(e) ? INFINITY : e;
        }
        printf("  fd    %-28s %-10s max rel err %.3e (tol %.0e, h %.0e)\n", block, var->name, err, tol, h);
        if (!(err <= tol)) fail_msg("%s: finite-difference gradient of %s off by %.3e (tol %.0e)", block, var->name, err, tol);
        if (err > worst) worst = err;
    }
    return worst;
}

void fill_uniform(float *x, size_t n, uint64_t seed, float scale) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;  // xorshift64
        x[i] = scale * (2.0f * (float)((s >> 40) * (1.0 / 16777216.0)) - 1.0f);
    }
}

float *alloc_floats(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) fail_msg("out of memory for %zu floats", n);
    return p;
}

void set_threads(int n) {
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int bitwise_equal(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

void gather_rows(float *part, const float *whole, const int *src, int rows, size_t row_size) {
    for (int i = 0; i < rows; i++) memcpy(part + (size_t)i * row_size, whole + (size_t)src[i] * row_size, row_size * sizeof(float));
}

int rows_differing(const float *part, const float *whole, const int *src, int rows, size_t row_size) {
    int n = 0;
    for (int i = 0; i < rows; i++) n += !bitwise_equal(part + (size_t)i * row_size, whole + (size_t)src[i] * row_size, row_size);
    return n;
}

int tmpdir_make(char *dir, size_t size, const char *name) {
    snprintf(dir, size, "%s/fb_%s_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", name);
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int tmpdir_remove(const char *dir) {
    if (getenv("FB_KEEP_TMP")) {
        printf("FB_KEEP_TMP: files kept in %s\n", dir);
        return 0;
    }
    return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

fb_status model_run_create(model_run *r, const scenario *s, const model_config *c, uint64_t param_seed) {
    memset(r, 0, sizeof *r);
    fb_layout_canaries = 1;
    fb_layout_init(&r->P, 2);
    fb_layout_init(&r->A, 2);
    const fb_status st = model_create(&r->m, s, c, &r->P, &r->A);
    if (st != FB_OK) {
        fb_layout_free(&r->P);
        fb_layout_free(&r->A);
        return st;
    }
    assert_int_equal(fb_layout_alloc(&r->P), FB_OK);
    assert_int_equal(fb_layout_alloc(&r->A), FB_OK);
    fb_layout_initialize(&r->P, param_seed);
    const model *m = &r->m;
    r->B = m->c.B;
    r->x = alloc_floats((size_t)r->B * m->in_stride);
    r->y = alloc_floats((size_t)r->B * m->y_stride);
    r->out = alloc_floats((size_t)r->B * m->out_dim);
    r->dout = alloc_floats((size_t)r->B * m->out_dim);
    model_run_samples(r, 0);
    r->b = (model_batch){ .B = r->B, .x = r->x, .y = r->y, .first = 0, .step = 0, .training = 0 };
    return FB_OK;
}

void model_run_samples(model_run *r, uint64_t first) {
    const model *m = &r->m;
    for (int i = 0; i < r->B; i++)
        m->s->sample(m, first + (uint64_t)i, r->x + (size_t)i * m->in_stride, r->y + (size_t)i * m->y_stride);
}

void model_run_destroy(model_run *r) {
    assert_int_equal(fb_layout_check_canaries(&r->P), 0);
    assert_int_equal(fb_layout_check_canaries(&r->A), 0);
    model_destroy(&r->m);
    fb_layout_free(&r->P);
    fb_layout_free(&r->A);
    free(r->x), free(r->y), free(r->out), free(r->dout);
}
