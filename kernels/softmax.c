// Row-wise softmax over the last dim, as torch.softmax(x, -1), but an all -inf row gives zeros.
//
// Determinism: each row is computed by one thread; row sums use 32 partial sums in a fixed lane
// pattern (vecmath.h's FB_V8_LANES) combined in a fixed order, so nothing is reassociated and no result
// depends on thread count, vector width or alignment.
#include "softmax.h"
#include <math.h>
#include <string.h>
#include "vecmath.h"

// Row sums: vecmath.h's fixed 32-lane pattern (FB_V8_LANES), as in layernorm.c.

// The maximum does not depend on the order it is taken in, so a plain simd reduction is exact.
// (NaN entries are skipped here; they still make the row NaN through exp below, as in torch.)
static inline float row_max(const float *x, int C) {
    float m = -INFINITY;
    #pragma omp simd reduction(max : m)
    for (int j = 0; j < C; j++) m = x[j] > m ? x[j] : m;
    return m;
}

static inline float row_dot(const float *restrict x, const float *restrict y, int C) {
    fb_v8 a[4] = {{0}};
#define STEP(u, j, n) do { fb_v8 v, w; fb_v8_loadn(&v, x + (j), (n)); fb_v8_loadn(&w, y + (j), (n)); a[u] += v * w; } while (0)
    FB_V8_LANES(C, STEP);
#undef STEP
    return fb_v8_total(a);
}

static fb_status softmax_check(const void *a, const void *b, int N, int C) {
    FB_REQUIRE(N > 0, FB_ERR_SHAPE, "softmax: N=%d must be > 0", N);
    FB_REQUIRE(C > 0, FB_ERR_SHAPE, "softmax: C=%d must be > 0", C);
    FB_REQUIRE(a && b, FB_ERR_SHAPE, "softmax: missing input or output buffer");
    return FB_OK;
}

fb_status softmax_forward(float *out, const float *inp, int N, int C) {
    FB_TRY(softmax_check(out, inp, N, C));
    fb_flops_add(softmax_flops_forward(N, C));
    // out may alias inp: each pass reads element j before writing it.
    #pragma omp parallel for schedule(static) if ((size_t)N * C > FB_OMP_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        const float m = row_max(x, C);
        if (m == -INFINITY) {  // every entry masked: zeros, not 0/0
            memset(o, 0, (size_t)C * sizeof(float));
            continue;
        }
        {   // o = exp(x - m): vecmath.h's exp, whole vectors then one padded vector
            int j = 0;
            for (; j + FB_VL <= C; j += FB_VL) fbv_store(o + j, fbv_exp(fbv_load(x + j) - m));
            if (j < C) fbv_storen(o + j, fbv_exp(fbv_loadn(x + j, (size_t)(C - j), 0.0f) - m), (size_t)(C - j));
        }
        const float inv = 1.0f / fb_row_sum(o, C);
        #pragma omp simd
        for (int j = 0; j < C; j++) o[j] *= inv;
    }
    return FB_OK;
}

fb_status softmax_backward(float *dinp, const float *dout, const float *out, int N, int C) {
    FB_TRY(softmax_check(dout, out, N, C));
    FB_REQUIRE(dinp, FB_ERR_SHAPE, "softmax: missing dinp");
    FB_REQUIRE(dinp != dout, FB_ERR_CONFIG, "softmax: dinp must not alias dout");
    fb_flops_add(softmax_flops_backward(N, C));
    float *restrict dx = dinp;
    const float *restrict dy = dout, *restrict y = out;
    #pragma omp parallel for schedule(static) if ((size_t)N * C > FB_OMP_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *restrict d = dy + (size_t)n * C, *restrict o = y + (size_t)n * C;
        float *restrict g = dx + (size_t)n * C;
        const float dot = row_dot(d, o, C);
        #pragma omp simd
        for (int j = 0; j < C; j++) g[j] += o[j] * (d[j] - dot);
    }
    return FB_OK;
}

// FLOP counts per element, a multiply-add counted as 2 and exp as 1 op:
//   forward 5 (max compare, subtract, exp, sum, scale); backward 5 (dot 2, subtract, multiply,
//   accumulate). The per-row reciprocal is ignored.
double softmax_flops_forward(int N, int C) { return 5.0 * N * C; }
double softmax_flops_backward(int N, int C) { return 5.0 * N * C; }
