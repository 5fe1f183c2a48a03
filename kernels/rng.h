// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11 — the generator behind
// cuRAND's and PyTorch's CUDA dropout). A value is a pure function of (seed, step, site, index),
// so a mask does not depend on how elements are split over threads or ranks, and a backward pass
// regenerates the forward's mask instead of storing it.
//   seed  run seed            step  training step (so masks change every step)
//   site  which dropout / sampling site in the model (so two layers never share a mask)
//   index element index within that site's tensor
// A kernel that sees only some rows of a batch (a rank's share, a gathered subset) indexes its
// draws by the GLOBAL row, so the draws of a row do not depend on how the batch is split:
//   index = global_row * per_row + offset within the row,  global_row = row0 + local row
// (fb_rng_row_first). A zero-initialised key (row0 = 0, no row map) is a whole-batch call.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t seed;
    uint32_t step, site;
    // The global index, in the call's leading dimension, of the first row the call sees (0 for a
    // whole-batch call): a rank running rows [r0, r1) of the batch as its local rows 0.. sets r0.
    uint64_t row0;
    // NULL, or a gathered call's rows: local row r is row row0 + row_map[r] (a routing method
    // running a path on the samples routed to it). Only kernels that take rows as they are read
    // it (mha, ffn, dropout_rows); one that regroups rows (encoder_layer) refuses it.
    const int *row_map;
} fb_rng_key;

// The global row of the call's local row r.
static inline uint64_t fb_rng_row(const fb_rng_key *key, size_t r) {
    return key->row0 + (key->row_map ? (uint64_t)key->row_map[r] : (uint64_t)r);
}
// The site index of the first element of local row r when every row holds per_row elements.
static inline uint64_t fb_rng_row_first(const fb_rng_key *key, size_t r, uint64_t per_row) {
    return fb_rng_row(key, r) * per_row;
}
// The key for an inner call whose rows are `split` consecutive rows per row of this call (an
// encoder layer's B samples as the B·S token rows of its FFN: split = S). Not for a row map.
static inline fb_rng_key fb_rng_split_rows(const fb_rng_key *key, uint64_t split) {
    fb_rng_key k = *key;
    k.row0 *= split;
    return k;
}

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
