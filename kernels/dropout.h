// Inverted dropout with a counter-based mask (kernels/rng.h): element i of a site is kept iff
// fb_uniform(key, i) >= p, and kept values are scaled by 1/(1-p). The mask is a pure function of
// (seed, step, site, i), so it is the same for any thread or rank split, and the backward pass
// regenerates it instead of storing it. p = 1 zeroes everything; training = 0 is the identity.
#pragma once
#include <stddef.h>
#include "common.h"
#include "rng.h"

// out (n) = dropout(inp); out may alias inp. `first` is the index of inp[0] within the site's
// tensor (a rank holding rows r0.. of a batch passes r0 * row_size, so masks match one process).
fb_status dropout_forward(float *out, const float *inp, size_t n, float p, const fb_rng_key *key,
                          uint64_t first, int training);
// dinp (n) += mask * dout / (1 - p).
fb_status dropout_backward(float *dinp, const float *dout, size_t n, float p, const fb_rng_key *key,
                           uint64_t first, int training);
