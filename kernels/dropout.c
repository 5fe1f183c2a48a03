// Inverted dropout with a Philox mask: element j of the site (j = first + i) is kept iff
// fb_uniform(key, j) >= p. The mask comes from fb_philox_words (16 Philox blocks per AVX-512 step)
// compared as integers with fb_uniform_threshold(p), which is exactly the float comparison
// fb_uniform(key, j) >= p (the tests check it against fb_uniform). Work is split in chunks of
// DROPOUT_CHUNK elements aligned to the site's index; a value depends only on (key, j), so the
// thread split cannot change a bit. The row-wise form (dropout_rows_*) is the flat one at
// first = row0 * row_size; with a row map each row runs the same chunk loop on its own range.
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

// The mask on len elements whose Philox words are w[0..len): kept iff (w >> 8) >= thr. Forward:
// o = x * scale or 0 (o may alias x: element k is read before it is written, which `simd`
// allows). Backward: g += d * scale where kept; dropped elements keep their bits (a -0 stays -0).
static inline void mask_forward(float *o, const float *x, const uint32_t *w, size_t len, uint32_t thr, float scale) {
    #pragma omp simd
    for (size_t k = 0; k < len; k++) o[k] = (w[k] >> 8) >= thr ? x[k] * scale : 0.0f;
}

static inline void mask_backward(float *restrict g, const float *restrict d, const uint32_t *w, size_t len,
                                 uint32_t thr, float scale) {
    #pragma omp simd
    for (size_t k = 0; k < len; k++) g[k] = (w[k] >> 8) >= thr ? g[k] + d[k] * scale : g[k];
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
    DROPOUT_FOR_EACH_CHUNK(mask_forward(out + lo, inp + lo, w, len, thr, scale));
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
    DROPOUT_FOR_EACH_CHUNK(mask_backward(dinp + lo, dout + lo, w, len, thr, scale));
    return FB_OK;
}

// For each local row r of a row-mapped call and each chunk of it (elements lo .. lo+len-1 of the
// buffers, at most DROPOUT_CHUNK, of the site's range starting at fb_rng_row_first(key, r, row_size)):
// fills w[0..len) with the chunk's Philox words and runs LOOP. Rows are split over threads.
#define DROPOUT_FOR_EACH_MAPPED_ROW(LOOP)                                                            \
    do {                                                                                             \
        _Pragma("omp parallel for schedule(static) if (rows * row_size > FB_OMP_MIN_WORK)")          \
        for (size_t r_ = 0; r_ < rows; r_++) {                                                       \
            const uint64_t j0_ = fb_rng_row_first(key, r_, row_size);                                \
            uint32_t w[DROPOUT_CHUNK];                                                               \
            for (size_t c_ = 0; c_ < row_size; c_ += DROPOUT_CHUNK) {                                \
                const size_t len = row_size - c_ < DROPOUT_CHUNK ? row_size - c_ : DROPOUT_CHUNK;    \
                fb_philox_words(w, key, j0_ + c_, len);                                              \
                const size_t lo = r_ * row_size + c_;                                                \
                LOOP;                                                                                \
            }                                                                                        \
        }                                                                                            \
    } while (0)

// Without a row map the rows are one contiguous range of the site; the identity and p = 1 read
// no mask.
static int dropout_rows_flat(const fb_rng_key *key, float p, int training) {
    return !key->row_map || !training || p == 0.0f || p == 1.0f;
}

fb_status dropout_rows_forward(float *out, const float *inp, size_t rows, size_t row_size, float p,
                               const fb_rng_key *key, int training) {
    FB_TRY(dropout_check(out, inp, rows * row_size, p, key));
    if (dropout_rows_flat(key, p, training))
        return dropout_forward(out, inp, rows * row_size, p, key, fb_rng_row_first(key, 0, row_size), training);
    const float scale = 1.0f / (1.0f - p);
    const uint32_t thr = fb_uniform_threshold(p);
    DROPOUT_FOR_EACH_MAPPED_ROW(mask_forward(out + lo, inp + lo, w, len, thr, scale));
    return FB_OK;
}

fb_status dropout_rows_backward(float *dinp, const float *dout, size_t rows, size_t row_size, float p,
                                const fb_rng_key *key, int training) {
    FB_TRY(dropout_check(dinp, dout, rows * row_size, p, key));
    if (dropout_rows_flat(key, p, training))
        return dropout_backward(dinp, dout, rows * row_size, p, key, fb_rng_row_first(key, 0, row_size), training);
    FB_REQUIRE(dinp != dout, FB_ERR_CONFIG, "dropout: dinp must not alias dout");
    const float scale = 1.0f / (1.0f - p);
    const uint32_t thr = fb_uniform_threshold(p);
    DROPOUT_FOR_EACH_MAPPED_ROW(mask_backward(dinp + lo, dout + lo, w, len, thr, scale));
    return FB_OK;
}
