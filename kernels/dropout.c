// Inverted dropout with a Philox mask: element j of the site (j = first + i) is kept iff
// fb_uniform(key, j) >= p. The mask comes from fb_philox_words (16 Philox blocks per AVX-512 step)
// compared as integers with fb_uniform_threshold(p), which is exactly the float comparison
// fb_uniform(key, j) >= p (the tests check it against fb_uniform). Work is split in chunks of
// DROPOUT_CHUNK elements aligned to the site's index; a value depends only on (key, j), so the
// thread split cannot change a bit.
#include "dropout.h"
#include <math.h>
#include <string.h>

#define DROPOUT_CHUNK 2048   // elements per chunk (8 KiB of Philox words on the stack)

static fb_status dropout_check(const void *a, const void *b, size_t n, float p, const fb_rng_key *key) {
    FB_REQUIRE(n > 0, FB_ERR_SHAPE, "dropout: n=%zu must be > 0", n);
    FB_REQUIRE(a && b, FB_ERR_SHAPE, "dropout: missing input or output buffer");
    FB_REQUIRE(p >= 0.0f && p <= 1.0f, FB_ERR_CONFIG, "dropout: p=%g outside [0, 1]", (double)p);
    FB_REQUIRE(key, FB_ERR_CONFIG, "dropout: missing rng key");
    return FB_OK;
}

// For each chunk of the site's index range (elements lo .. lo+len-1 of the buffers, at most
// DROPOUT_CHUNK): fills w[0..len) with the chunk's Philox words and runs LOOP, which reads w[k]
// for element lo + k.
#define DROPOUT_FOR_EACH_CHUNK(LOOP)                                                        \
    do {                                                                                    \
        const uint64_t base_ = first & ~(uint64_t)(DROPOUT_CHUNK - 1), end_ = first + n;    \
        const uint64_t nchunks_ = (end_ - base_ + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK;       \
        _Pragma("omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)")               \
        for (uint64_t c_ = 0; c_ < nchunks_; c_++) {                                        \
            uint64_t j0_ = base_ + c_ * DROPOUT_CHUNK, j1_ = j0_ + DROPOUT_CHUNK;            \
            if (j0_ < first) j0_ = first;                                                   \
            if (j1_ > end_) j1_ = end_;                                                     \
            uint32_t w[DROPOUT_CHUNK];                                                      \
            fb_philox_words(w, key, j0_, (size_t)(j1_ - j0_));                              \
            const size_t lo = (size_t)(j0_ - first), len = (size_t)(j1_ - j0_);             \
            LOOP;                                                                           \
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
    const uint32_t thr = fb_uniform_threshold(p);
    // out may alias inp: element i is read before it is written (`simd` allows it).
    DROPOUT_FOR_EACH_CHUNK({
        float *o = out + lo;
        const float *x = inp + lo;
        _Pragma("omp simd")
        for (size_t k = 0; k < len; k++) o[k] = (w[k] >> 8) >= thr ? x[k] * scale : 0.0f;
    });
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
    const uint32_t thr = fb_uniform_threshold(p);
    DROPOUT_FOR_EACH_CHUNK({
        float *restrict g = dinp + lo;
        const float *restrict d = dout + lo;
        _Pragma("omp simd")   // dropped elements keep their bits (a -0 stays -0)
        for (size_t k = 0; k < len; k++) g[k] = (w[k] >> 8) >= thr ? g[k] + d[k] * scale : g[k];
    });
    return FB_OK;
}
