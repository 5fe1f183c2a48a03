// Row-wise softmax over the last dim, as torch.softmax(x, -1), but an all -inf row gives zeros.
//
// Determinism: each row is computed by one thread; row sums use 32 partial sums in a fixed lane
// pattern (FB_ROW_LANES) combined in a fixed order, so nothing is reassociated and no result
// depends on thread count, vector width or alignment.
#include "softmax.h"
#include <math.h>
#include <string.h>
#include "vecmath.h"

// Row sums use 32 lanes held in four 8-float vectors (GCC/Clang vector extension; four
// accumulators hide the add latency), as in layernorm.c: whole blocks of 32 go to vectors 0..3,
// then up to three whole vectors to 0, 1, 2, then the zero-padded last C % 8 elements to vector 3;
// the lanes are combined in a fixed order.
// Vectors are passed by pointer, never by value (by value they change the ABI on targets without
// 32-byte registers: -Wpsabi).
typedef float fb_v8 __attribute__((vector_size(32)));

static inline void loadn(fb_v8 *v, const float *x, int n) {  // *v = x[0..n), zero-padded
    if (n == 8) {
        memcpy(v, x, sizeof *v);
        return;
    }
    for (int k = 0; k < 8; k++) (*v)[k] = k < n ? x[k] : 0.0f;
}

static inline float lanes_total(const fb_v8 a[4]) {
    fb_v8 v = (a[0] + a[1]) + (a[2] + a[3]);
    float t[8];
    memcpy(t, &v, sizeof t);
    return ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
}

#define FB_ROW_LANES(C, STEP)                                                     \
    do {                                                                          \
        int j_ = 0;                                                               \
        for (; j_ + 32 <= (C); j_ += 32)                                          \
            for (int u_ = 0; u_ < 4; u_++) STEP(u_, j_ + 8 * u_, 8);              \
        for (int u_ = 0; j_ + 8 <= (C); u_++, j_ += 8) STEP(u_, j_, 8);          \
        if (j_ < (C)) STEP(3, j_, (C) - j_);                                      \
    } while (0)

// The maximum does not depend on the order it is taken in, so a plain simd reduction is exact.
// (NaN entries are skipped here; they still make the row NaN through exp below, as in torch.)
static inline float row_max(const float *x, int C) {
    float m = -INFINITY;
    #pragma omp simd reduction(max : m)
    for (int j = 0; j < C; j++) m = x[j] > m ? x[j] : m;
    return m;
}

static inline float row_sum(const float *restrict x, int C) {
    fb_v8 a[4] = {{0}};
#define STEP(u, j, n) do { fb_v8 v; loadn(&v, x + (j), (n)); a[u] += v; } while (0)
    FB_ROW_LANES(C, STEP);
#undef STEP
    return lanes_total(a);
}

static inline float row_dot(const float *restrict x, const float *restrict y, int C) {
    fb_v8 a[4] = {{0}};
#define STEP(u, j, n) do { fb_v8 v, w; loadn(&v, x + (j), (n)); loadn(&w, y + (j), (n)); a[u] += v * w; } while (0)
    FB_ROW_LANES(C, STEP);
#undef STEP
    return lanes_total(a);
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
        const float inv = 1.0f / row_sum(o, C);
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
