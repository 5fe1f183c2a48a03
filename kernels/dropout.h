// Inverted dropout with a counter-based mask (kernels/rng.h): element i of a site is kept iff
// fb_uniform(key, i) >= p, and kept values are scaled by 1/(1-p). The mask is a pure function of
// (seed, step, site, i), so it is the same for any thread or rank split, and the backward pass
// regenerates it instead of storing it. p = 1 zeroes everything; training = 0 is the identity.
#pragma once
#include <stddef.h>
#include "common.h"
#include "rng.h"

// out (n) = dropout(inp); out may alias inp. `first` is the index of inp[0] within the site's
// tensor; the key's row0 / row_map are not read (a flat range has no rows): a caller with rows
// uses dropout_rows_forward, or passes fb_rng_row_first(key, 0, row_size).
fb_status dropout_forward(float *out, const float *inp, size_t n, float p, const fb_rng_key *key,
                          uint64_t first, int training);
// dinp (n) += mask * dout / (1 - p).
fb_status dropout_backward(float *dinp, const float *dout, size_t n, float p, const fb_rng_key *key,
                           uint64_t first, int training);

// The same on `rows` rows of row_size elements, indexed by the global row (kernels/rng.h): element
// j of local row r is element fb_rng_row_first(key, r, row_size) + j of the site, so rows [k, B)
// run alone with key->row0 = k get the whole batch's masks. out, inp (rows, row_size).
fb_status dropout_rows_forward(float *out, const float *inp, size_t rows, size_t row_size, float p,
                               const fb_rng_key *key, int training);
// dinp (rows, row_size) += mask * dout / (1 - p).
fb_status dropout_rows_backward(float *dinp, const float *dout, size_t rows, size_t row_size, float p,
                                const fb_rng_key *key, int training);
