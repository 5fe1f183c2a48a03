// Inverted dropout with a Philox mask: element j of the site (j = first + i) is kept iff
// fb_uniform(key, j) >= p. One Philox call yields the uniforms of four consecutive elements
// (block j / 4), so the loops run over blocks and use all four words; the values are those
// fb_uniform returns (same block, same word, same conversion), which the tests check.
#include "dropout.h"
#include <math.h>
#include <string.h>

// Must match rng.c's u32_to_unit: the top 24 bits, scaled to [0, 1).
static inline float dropout_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

static fb_status dropout_check(const void *a, const void *b, size_t n, float p, const fb_rng_key *key) {
    FB_REQUIRE(n > 0, FB_ERR_SHAPE, "dropout: n=%zu must be > 0", n);
    FB_REQUIRE(a && b, FB_ERR_SHAPE, "dropout: missing input or output buffer");
    FB_REQUIRE(p >= 0.0f && p <= 1.0f, FB_ERR_CONFIG, "dropout: p=%g outside [0, 1]", (double)p);
    FB_REQUIRE(key, FB_ERR_CONFIG, "dropout: missing rng key");
    return FB_OK;
}

// Calls BODY(i, keep) for every i in [0, n) with keep = (fb_uniform(key, first + i) >= p).
// Blocks are independent, so any thread split gives the same result.
#define DROPOUT_FOR_EACH(BODY)                                                              \
    do {                                                                                    \
        const uint64_t b_lo = first >> 2, b_hi = (first + n + 3) >> 2, end = first + n;    \
        _Pragma("omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)")               \
        for (uint64_t blk = b_lo; blk < b_hi; blk++) {                                     \
            uint32_t w[4];                                                                  \
            philox4x32_10(key, blk, w);                                                     \
            for (int k = 0; k < 4; k++) {                                                   \
                const uint64_t j = 4 * blk + (uint64_t)k;                                   \
                if (j < first || j >= end) continue;                                        \
                const size_t i = (size_t)(j - first);                                       \
                const int keep = dropout_unit(w[k]) >= p;                                   \
                BODY;                                                                       \
            }                                                                               \
        }                                                                                   \
    } while (0)

fb_status dropout_forward(float *out, const float *inp, size_t n, float p, const fb_rng_key *key,
                          uint64_t first, int training) {
    FB_TRY(dropout_check(out, inp, n, p, key));
    if (!training || p == 0.0f) {  // identity (p = 0 keeps every element with scale 1)
        if (out != inp) memmove(out, inp, n * sizeof(float));
        return FB_OK;
    }
    if (p == 1.0f) {  // nothing kept; avoids the infinite scale
        memset(out, 0, n * sizeof(float));
        return FB_OK;
    }
    const float scale = 1.0f / (1.0f - p);
    // out may alias inp: element i is read before it is written.
    DROPOUT_FOR_EACH(out[i] = keep ? inp[i] * scale : 0.0f);
    return FB_OK;
}

fb_status dropout_backward(float *dinp, const float *dout, size_t n, float p, const fb_rng_key *key,
                           uint64_t first, int training) {
    FB_TRY(dropout_check(dinp, dout, n, p, key));
    FB_REQUIRE(dinp != dout, FB_ERR_CONFIG, "dropout: dinp must not alias dout");
    if (!training || p == 0.0f) {
        #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
        for (size_t i = 0; i < n; i++) dinp[i] += dout[i];
        return FB_OK;
    }
    if (p == 1.0f) return FB_OK;  // every gradient is zero
    const float scale = 1.0f / (1.0f - p);
    DROPOUT_FOR_EACH(if (keep) dinp[i] += dout[i] * scale);
    return FB_OK;
}
