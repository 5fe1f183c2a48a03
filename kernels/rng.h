// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11 — the generator behind
// cuRAND's and PyTorch's CUDA dropout). A value is a pure function of (seed, step, site, index),
// so a mask does not depend on how elements are split over threads or ranks, and a backward pass
// regenerates the forward's mask instead of storing it.
//   seed  run seed            step  training step (so masks change every step)
//   site  which dropout / sampling site in the model (so two layers never share a mask)
//   index element index within that site's tensor
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct { uint64_t seed; uint32_t step, site; } fb_rng_key;

// Four independent 32-bit words for counter block `block` (elements 4*block .. 4*block+3).
void philox4x32_10(const fb_rng_key *key, uint64_t block, uint32_t out[4]);
// Uniform in [0, 1) with 24 random bits, for element `index`.
float fb_uniform(const fb_rng_key *key, uint64_t index);
// Standard normal (Box-Muller on two uniforms of the same block) for element `index`.
float fb_normal(const fb_rng_key *key, uint64_t index);
// Fills u[0..n) with fb_uniform(key, first + i); OpenMP-parallel, identical for any thread count.
void fb_uniform_fill(float *u, const fb_rng_key *key, uint64_t first, size_t n);

// The raw Philox words behind fb_uniform: w[i] = word (first + i) % 4 of block (first + i) / 4, for
// i in [0, n). Serial (opens no OpenMP region, for use inside parallel loops); 64 blocks at a time
// in AVX-512 vectors, bit for bit philox4x32_10.
void fb_philox_words(uint32_t *w, const fb_rng_key *key, uint64_t first, size_t n);
// fb_uniform(key, j) >= p  iff  (word(j) >> 8) >= fb_uniform_threshold(p), for p in [0, 1]: the
// uniform is (word >> 8) / 2^24 exactly, so the comparison is one on integers.
static inline uint32_t fb_uniform_threshold(float p) {
    const float m = p * 16777216.0f;   // exact (a power-of-two scaling)
    uint32_t t = (uint32_t)m;
    return (float)t < m ? t + 1 : t;   // ceil, without libm
}
