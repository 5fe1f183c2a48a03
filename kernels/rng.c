#include <math.h>
#include <stddef.h>
#include "rng.h"
#include "common.h"

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

void fb_uniform_fill(float *u, const fb_rng_key *key, uint64_t first, size_t n) {
    #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) u[i] = fb_uniform(key, first + i);
}
