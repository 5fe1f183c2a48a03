// mul (000 §2.2): out = a ⊙ b, position by position.
// a (B, D), b (B, D) -> out (B, D). No parameters. da = dout ⊙ b and db = dout ⊙ a: a weak branch
// starves the other's gradient, which is the document's argument against it.
#include "fusion.h"

static fb_status mul_create(fusion *f, fb_layout *P, fb_layout *A) {
    (void)P; (void)A;
    FB_REQUIRE(f->c.E == f->c.D, FB_ERR_SHAPE, "mul: widths differ (D=%d, E=%d); mul needs equal widths", f->c.D, f->c.E);
    return FB_OK;
}

static fb_status mul_forward(fusion *f, float *out, const float *a, const float *b) {
    size_t n = (size_t)f->c.B * f->c.D;
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i];
    return FB_OK;
}

static fb_status mul_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b) {
    size_t n = (size_t)f->c.B * f->c.D;
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        if (da) da[i] += dout[i] * b[i];
        if (db) db[i] += dout[i] * a[i];
    }
    return FB_OK;
}

static double mul_flops(const fusion *f, int backward) {
    return (backward ? 2.0 : 1.0) * f->c.B * f->c.D;
}

const fusion_method fusion_mul = {
    .name = "mul", .source = "000", .kind = FUSION_VECTOR,
    .variants = {"default", NULL},
    .formula = "out = a * b (element-wise)",
    .create = mul_create, .forward = mul_forward, .backward = mul_backward, .flops = mul_flops,
};
