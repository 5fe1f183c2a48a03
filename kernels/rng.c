#include <math.h>
#include <stddef.h>
#include <string.h>
#include "rng.h"
#include "common.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void philox4x32_10(const fb_rng_key *key, uint64_t block, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)block, c1 = (uint32_t)(block >> 32), c2 = key->step, c3 = key->site;
    uint32_t k0 = (uint32_t)key->seed, k1 = (uint32_t)(key->seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1; c3 = (uint32_t)p0; c0 = n0; c2 = n2;
        k0 += PHILOX_W0; k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

static inline float u32_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

float fb_uniform(const fb_rng_key *key, uint64_t index) {
    uint32_t w[4];
    philox4x32_10(key, index >> 2, w);
    return u32_to_unit(w[index & 3]);
}

float fb_normal(const fb_rng_key *key, uint64_t index) {
    uint32_t w[4];
    philox4x32_10(key, index, w);  // one block per normal: words 0,1 feed Box-Muller
    float u1 = ((float)(w[0] >> 8) + 1.0f) * (1.0f / 16777216.0f);  // (0, 1], log is finite
    float u2 = u32_to_unit(w[1]);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647f * u2);
}

// philox_group(key, b0, out): out[0 .. 4 PHILOX_GROUP) = the four words of blocks
// b0 .. b0 + PHILOX_GROUP - 1 in element order (word k of block b0 + m at out[4m + k]).
#if defined(__AVX512F__)
// Sixteen blocks in the lanes of one AVX-512 vector per Philox word, four such vectors interleaved
// (64 blocks) to hide the multiply latency. The 32x32 -> 64-bit products come from vpmuludq on the
// even lanes and on the odd lanes shifted down; one masked in-lane shuffle each gathers the high
// and the low halves. Lane l = 4q + m (q the 128-bit quarter) of vector g runs block
// b0 + 16g + 4m + q: after the in-quarter 4x4 transposes (unpack 32, then 64), output vector m
// then holds blocks b0+16g+4m .. +3 in element order, so no cross-quarter shuffle is needed.
#define PHILOX_GROUP 64
static inline void mulhilo16(__m512i a, __m512i m, __m512i *hi, __m512i *lo) {
    const __m512i even = _mm512_mul_epu32(a, m);                          // lanes 2i: 64-bit products
    const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);    // lanes 2i+1
    *hi = _mm512_mask_shuffle_epi32(odd, (__mmask16)0x5555, even, _MM_PERM_CDAB);
    *lo = _mm512_mask_shuffle_epi32(even, (__mmask16)0xAAAA, odd, _MM_PERM_CDAB);
}

static void philox_group(const fb_rng_key *key, uint64_t b0, uint32_t *out) {
    enum { NV = PHILOX_GROUP / 16 };
    const __m512i lane = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m512i c0[NV], c1[NV], c2[NV], c3[NV];
    for (int g = 0; g < NV; g++) {
        const uint64_t b = b0 + 16 * (uint64_t)g;
        const __m512i lo = _mm512_set1_epi32((int)(uint32_t)b), hi = _mm512_set1_epi32((int)(uint32_t)(b >> 32));
        c0[g] = _mm512_add_epi32(lo, lane);
        c1[g] = _mm512_mask_add_epi32(hi, _mm512_cmplt_epu32_mask(c0[g], lo), hi, _mm512_set1_epi32(1));  // carry
        c2[g] = _mm512_set1_epi32((int)key->step);
        c3[g] = _mm512_set1_epi32((int)key->site);
    }
    const __m512i m0 = _mm512_set1_epi32((int)PHILOX_M0), m1 = _mm512_set1_epi32((int)PHILOX_M1);
    const __m512i w0 = _mm512_set1_epi32((int)PHILOX_W0), w1 = _mm512_set1_epi32((int)PHILOX_W1);
    __m512i k0 = _mm512_set1_epi32((int)(uint32_t)key->seed), k1 = _mm512_set1_epi32((int)(uint32_t)(key->seed >> 32));
    for (int round = 0; round < 10; round++) {
        for (int g = 0; g < NV; g++) {
            __m512i h0, l0, h1, l1;
            mulhilo16(c0[g], m0, &h0, &l0);
            mulhilo16(c2[g], m1, &h1, &l1);
            c0[g] = _mm512_ternarylogic_epi32(h1, c1[g], k0, 0x96);   // h1 ^ c1 ^ k0
            c2[g] = _mm512_ternarylogic_epi32(h0, c3[g], k1, 0x96);   // h0 ^ c3 ^ k1
            c1[g] = l1;
            c3[g] = l0;
        }
        k0 = _mm512_add_epi32(k0, w0);
        k1 = _mm512_add_epi32(k1, w1);
    }
    for (int g = 0; g < NV; g++) {
        const __m512i t0 = _mm512_unpacklo_epi32(c0[g], c1[g]), t1 = _mm512_unpackhi_epi32(c0[g], c1[g]);
        const __m512i t2 = _mm512_unpacklo_epi32(c2[g], c3[g]), t3 = _mm512_unpackhi_epi32(c2[g], c3[g]);
        uint32_t *o = out + 64 * g;
        _mm512_storeu_si512((void *)(o + 0), _mm512_unpacklo_epi64(t0, t2));
        _mm512_storeu_si512((void *)(o + 16), _mm512_unpackhi_epi64(t0, t2));
        _mm512_storeu_si512((void *)(o + 32), _mm512_unpacklo_epi64(t1, t3));
        _mm512_storeu_si512((void *)(o + 48), _mm512_unpackhi_epi64(t1, t3));
    }
}
#else
#define PHILOX_GROUP 4
static void philox_group(const fb_rng_key *key, uint64_t b0, uint32_t *out) {
    for (int m = 0; m < PHILOX_GROUP; m++) philox4x32_10(key, b0 + (uint64_t)m, out + 4 * m);
}
#endif

void fb_philox_words(uint32_t *w, const fb_rng_key *key, uint64_t first, size_t n) {
    enum { WORDS = 4 * PHILOX_GROUP };
    const uint64_t end = first + n;
    uint64_t j = first;
    while (j < end) {
        const uint64_t off = j & 3;
        if (off == 0 && end - j >= WORDS) {   // whole groups straight into w
            philox_group(key, j >> 2, w + (j - first));
            j += WORDS;
            continue;
        }
        uint32_t tmp[WORDS];                  // a ragged end: the same blocks, partly copied
        philox_group(key, j >> 2, tmp);
        const uint64_t m = end - j < WORDS - off ? end - j : WORDS - off;
        memcpy(w + (j - first), tmp + off, (size_t)m * sizeof *w);
        j += m;
    }
}

#define FB_RNG_CHUNK 1024   // elements per chunk (a multiple of 4 PHILOX_GROUP)

void fb_uniform_fill(float *u, const fb_rng_key *key, uint64_t first, size_t n) {
    // Chunks aligned to multiples of 64 of the element index; each element's value depends only
    // on (key, first + i), so the split does not matter for the result.
    const uint64_t base = first & ~(uint64_t)(FB_RNG_CHUNK - 1), end = first + n;
    const uint64_t nchunks = (end - base + FB_RNG_CHUNK - 1) / FB_RNG_CHUNK;
    #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
    for (uint64_t c = 0; c < nchunks; c++) {
        uint64_t lo = base + c * FB_RNG_CHUNK, hi = lo + FB_RNG_CHUNK;
        if (lo < first) lo = first;
        if (hi > end) hi = end;
        uint32_t w[FB_RNG_CHUNK];
        fb_philox_words(w, key, lo, (size_t)(hi - lo));
        float *o = u + (lo - first);
        #pragma omp simd
        for (size_t i = 0; i < hi - lo; i++) o[i] = u32_to_unit(w[i]);
    }
}
