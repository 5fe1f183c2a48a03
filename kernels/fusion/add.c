// add (000 §2.1): out = a + b, position by position.
// a (B, D), b (B, D) -> out (B, D). No parameters. Both branches get the same gradient.
#include "fusion.h"

static fb_status add_create(fusion *f, fb_layout *P, fb_layout *A) {
    (void)P; (void)A;
    FB_REQUIRE(f->c.E == f->c.D, FB_ERR_SHAPE, "add: widths differ (D=%d, E=%d); add needs equal widths", f->c.D, f->c.E);
    return FB_OK;
}

static fb_status add_forward(fusion *f, float *out, const float *a, const float *b) {
    size_t n = (size_t)f->c.B * f->c.D;
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
    return FB_OK;
}

static fb_status add_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b) {
    (void)a; (void)b;
    size_t n = (size_t)f->c.B * f->c.D;
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        if (da) da[i] += dout[i];
        if (db) db[i] += dout[i];
    }
    return FB_OK;
}

static double add_flops(const fusion *f, int backward) {
    return (backward ? 2.0 : 1.0) * f->c.B * f->c.D;
}

const fusion_method fusion_add = {
    .name = "add", .source = "000", .kind = FUSION_VECTOR,
    .variants = {"default", NULL},
    .formula = "out = a + b",
    .create = add_create, .forward = add_forward, .backward = add_backward, .flops = add_flops,
};
