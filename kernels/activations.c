// Element-wise activations (PyTorch semantics). Each element is independent, and vecmath.h's vector
// and scalar forms agree bit for bit, so splitting the range over threads cannot change a result:
// any thread count gives the same bits. GELU, sigmoid and tanh run vecmath.h's vector forms over
// chunks of FB_ACT_CHUNK elements (the last one ragged: a padded vector).
#include "activations.h"
#include <string.h>

static const char *const fb_activation_names[] = {
    [FB_ACT_IDENTITY] = "identity", [FB_ACT_RELU] = "relu", [FB_ACT_GELU] = "gelu",
    [FB_ACT_SIGMOID] = "sigmoid", [FB_ACT_TANH] = "tanh",
};
_Static_assert(sizeof fb_activation_names / sizeof fb_activation_names[0] == FB_ACT_COUNT,
               "every fb_activation needs a name");

const char *fb_activation_name(fb_activation a) {
    return ((int)a >= 0 && a < FB_ACT_COUNT) ? fb_activation_names[a] : "unknown";
}

int fb_activation_parse(const char *name) {
    for (int a = 0; name && a < FB_ACT_COUNT; a++)
        if (strcmp(name, fb_activation_names[a]) == 0) return a;
    return -1;
}

#define FB_ACT_PARALLEL _Pragma("omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)")

#define FB_ACT_CHUNK 1024   // elements per parallel chunk (a multiple of every FB_VL)

// out[i] = FN(inp[i]) (FN a vector function), i < n; out may alias inp.
#define FB_ACT_MAP(out, inp, n, FN)                                                         \
    do {                                                                                    \
        const size_t nc_ = ((n) + FB_ACT_CHUNK - 1) / FB_ACT_CHUNK;                         \
        _Pragma("omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)")               \
        for (size_t c_ = 0; c_ < nc_; c_++) {                                               \
            const size_t lo_ = c_ * FB_ACT_CHUNK;                                           \
            const size_t hi_ = lo_ + FB_ACT_CHUNK < (n) ? lo_ + FB_ACT_CHUNK : (n);         \
            FB_VM_MAP(out, inp, lo_, hi_, FN);                                              \
        }                                                                                   \
    } while (0)

// dx[i] += gelu'(x[i]) * dy[i]
static inline void gelu_backward_range(float *restrict dx, const float *restrict dy, const float *restrict x,
                                       size_t lo, size_t hi) {
    size_t i = lo;
    for (; i + FB_VL <= hi; i += FB_VL)
        fbv_store(dx + i, fbv_load(dx + i) + fbv_gelu_grad(fbv_load(x + i)) * fbv_load(dy + i));
    if (i < hi) {
        const size_t r = hi - i;
        fbv_storen(dx + i, fbv_loadn(dx + i, r, 0.0f) + fbv_gelu_grad(fbv_loadn(x + i, r, 0.0f)) * fbv_loadn(dy + i, r, 0.0f), r);
    }
}

fb_status activation_forward(fb_activation a, float *out, const float *inp, size_t n) {
    FB_REQUIRE((int)a >= 0 && a < FB_ACT_COUNT, FB_ERR_CONFIG, "activation: unknown activation %d", (int)a);
    FB_REQUIRE(n > 0, FB_ERR_SHAPE, "activation %s: n=%zu must be > 0", fb_activation_names[a], n);
    FB_REQUIRE(out && inp, FB_ERR_SHAPE, "activation %s: missing input or output", fb_activation_names[a]);
    fb_flops_add(activation_flops_forward(a, n));
    // out may alias inp: element i is read before it is written, which `simd` allows.
    switch (a) {
    case FB_ACT_IDENTITY:
        if (out != inp) memmove(out, inp, n * sizeof(float));
        break;
    case FB_ACT_RELU:
        // NaN < 0 is false, so NaN propagates as in torch.relu.
        FB_ACT_PARALLEL
        for (size_t i = 0; i < n; i++) out[i] = inp[i] < 0.0f ? 0.0f : inp[i];
        break;
    case FB_ACT_GELU:
        FB_ACT_MAP(out, inp, n, fbv_gelu);
        break;
    case FB_ACT_SIGMOID:
        FB_ACT_MAP(out, inp, n, fbv_sigmoid);
        break;
    case FB_ACT_TANH:
        FB_ACT_MAP(out, inp, n, fbv_tanh);
        break;
    default:
        break;
    }
    return FB_OK;
}

fb_status activation_backward(fb_activation a, float *dinp, const float *dout, const float *inp,
                              const float *out, size_t n) {
    FB_REQUIRE((int)a >= 0 && a < FB_ACT_COUNT, FB_ERR_CONFIG, "activation: unknown activation %d", (int)a);
    const char *name = fb_activation_names[a];
    FB_REQUIRE(n > 0, FB_ERR_SHAPE, "activation %s: n=%zu must be > 0", name, n);
    FB_REQUIRE(dinp && dout, FB_ERR_SHAPE, "activation %s backward: missing dinp or dout", name);
    FB_REQUIRE(dinp != dout, FB_ERR_CONFIG, "activation %s backward: dinp must not alias dout", name);
    FB_REQUIRE(inp || !(a == FB_ACT_RELU || a == FB_ACT_GELU), FB_ERR_SHAPE,
               "activation %s backward needs inp (got NULL)", name);
    FB_REQUIRE(out || !(a == FB_ACT_SIGMOID || a == FB_ACT_TANH), FB_ERR_SHAPE,
               "activation %s backward needs out (got NULL)", name);
    fb_flops_add(activation_flops_backward(a, n));
    float *restrict dx = dinp;
    const float *restrict dy = dout, *restrict x = inp, *restrict y = out;
    switch (a) {
    case FB_ACT_IDENTITY:
        FB_ACT_PARALLEL
        for (size_t i = 0; i < n; i++) dx[i] += dy[i];
        break;
    case FB_ACT_RELU:
        // torch's threshold_backward: the gradient passes where x > 0 (0 at x = 0).
        FB_ACT_PARALLEL
        for (size_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case FB_ACT_GELU: {
        const size_t nc = (n + FB_ACT_CHUNK - 1) / FB_ACT_CHUNK;
        #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
        for (size_t c = 0; c < nc; c++)
            gelu_backward_range(dx, dy, x, c * FB_ACT_CHUNK, c * FB_ACT_CHUNK + FB_ACT_CHUNK < n ? c * FB_ACT_CHUNK + FB_ACT_CHUNK : n);
        break;
    }
    case FB_ACT_SIGMOID:
        // torch's sigmoid_backward: dout * (1 - y) * y
        FB_ACT_PARALLEL
        for (size_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - y[i]) * y[i];
        break;
    case FB_ACT_TANH:
        // torch's tanh_backward: dout * (1 - y^2)
        FB_ACT_PARALLEL
        for (size_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
        break;
    default:
        break;
    }
    return FB_OK;
}

// FLOP counts per element, a multiply-add counted as 2 and each exp/erf/tanh call as 1 op:
//   forward:  identity 0; relu 1 (compare); gelu 5 (scale, erf, add, two multiplies);
//             sigmoid 3 (exp, add, divide); tanh 1
//   backward (derivative, times dout, accumulate): identity 1; relu 2; gelu 12 (derivative 10:
//             scale, erf, add, half, square, scale, exp, two multiplies, add); sigmoid 4; tanh 4
double activation_flops_forward(fb_activation a, size_t n) {
    static const double per[FB_ACT_COUNT] = {
        [FB_ACT_IDENTITY] = 0, [FB_ACT_RELU] = 1, [FB_ACT_GELU] = 5, [FB_ACT_SIGMOID] = 3, [FB_ACT_TANH] = 1,
    };
    return ((int)a >= 0 && a < FB_ACT_COUNT) ? per[a] * (double)n : 0.0;
}

double activation_flops_backward(fb_activation a, size_t n) {
    static const double per[FB_ACT_COUNT] = {
        [FB_ACT_IDENTITY] = 1, [FB_ACT_RELU] = 2, [FB_ACT_GELU] = 12, [FB_ACT_SIGMOID] = 4, [FB_ACT_TANH] = 4,
    };
    return ((int)a >= 0 && a < FB_ACT_COUNT) ? per[a] * (double)n : 0.0;
}
