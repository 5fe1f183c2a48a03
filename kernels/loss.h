// Losses: MSE, Huber, cross-entropy (PyTorch's mean reduction) and the 003 system's UniFrac
// pairwise loss, written for row-decomposed (multi-rank) evaluation.
//
// Every loss is one fused call: it returns the loss value through a double* (sums accumulate in
// double over float32 inputs) and ACCUMULATES (+=) grad_scale · dL/dinput into the input gradient
// (skipped when that pointer is NULL). grad_scale is the upstream gradient of the loss: 1 for a
// plain training step, a loss weight, or a world-size factor set by the harness.
//
// Sums are taken in a fixed order that does not depend on the thread count (fixed-size chunks of
// elements or one row per task, chunk partials added serially), so 1 and N threads give the same
// bits. NaN/Inf in pred/target/logits propagate into the loss as in PyTorch; only the UniFrac loss
// rejects them (its contract, see below).
#pragma once
#include "common.h"

// MSE, torch.nn.functional.mse_loss: L = (1/n) Σ (pred - target)²;
// dpred (n) += grad_scale · 2 (pred - target) / n. pred, target (n).
fb_status mse_loss(double *loss, float *dpred, const float *pred, const float *target, size_t n,
                   float grad_scale);

// Huber, torch.nn.functional.huber_loss(pred, target, delta=delta): with r = pred - target,
// ℓ = r²/2 where |r| < delta, else delta (|r| - delta/2); L = (1/n) Σ ℓ;
// dpred += grad_scale · clamp(r, -delta, delta) / n. At delta = 1 this equals smooth_l1_loss with
// beta = 1 (the 003 system's target loss); for other deltas huber = delta · smooth_l1(beta=delta).
fb_status huber_loss(double *loss, float *dpred, const float *pred, const float *target, size_t n,
                     float delta, float grad_scale);

// Cross-entropy over class logits, torch.nn.functional.cross_entropy (no weights, no ignore_index,
// no label smoothing): L = (1/B) Σ_b [logsumexp(logits_b) - logits_b[labels_b]];
// dlogits (B, C) += grad_scale · (softmax(logits_b) - onehot(labels_b)) / B.
// logits (B, C); labels (B), each in [0, C) (else FB_ERR_CONFIG naming the row).
fb_status cross_entropy_loss(double *loss, float *dlogits, const float *logits, const int32_t *labels,
                             int B, int C, float grad_scale);

// ---- UniFrac pairwise loss (003 system) ----
// e (N, D): sample embeddings; T (N, N): the UniFrac submatrix in batch order (only T[i][j] with
// i < j is read, so T need not be symmetric). For i ≠ j:
//     d_ij = sqrt(max(Σ_d (e_id - e_jd)², 1e-8)),   pred_ij = tanh(d_ij / 10),
//     L = (1/P) Σ_{counted pairs i<j} (pred_ij - T_ij)²,   L = 0 when P = 0 (N = 1).
// The gradient goes through the max: a pair whose squared distance is below 1e-8 (identical rows)
// contributes nothing to de.
//
// Pair scope `block`: 0 = every pair of the N rows counts (DataParallel; DDP --pairs global after an
// all-gather). k > 0 = only pairs inside the same block of k consecutive rows count (block-diagonal:
// DDP --pairs local on one rank's batch is k = N, identical to 0; the FSDP "blockdiag" path is
// k = per-rank batch over the gathered rows). N % k must be 0. P = unifrac_pair_count(N, block).
//
// Rows [r0, r1): the call computes
//   *loss_part = (1/P) Σ over counted pairs i < j with i in [r0, r1) of (pred_ij - T_ij)², so the
//                partial losses of disjoint row ranges covering [0, N) sum to L (up to double
//                rounding; NULL skips);
//   de_rows (r1 - r0, D) += grad_scale · dL/de_i for i in [r0, r1), over ALL counted pairs touching
//                i (j < i and j > i) (NULL skips).
// Each row is computed the same way whatever the range, so the gradient rows of a decomposed run are
// bitwise those of the whole run: rank r of a "global pairs" run passes its own rows and needs no
// second communication. Threads split rows; 1 and N threads give the same bits.
// Errors: FB_ERR_SHAPE for N, D <= 0, block < 0, N % block != 0, a row range outside [0, N];
// FB_ERR_NONFINITE for NaN/Inf in any row of e (message names the first such row) or in a counted
// target entry (names i, j). All N rows are checked whatever the range, so every rank fails alike.
// Cost O((r1 - r0) · N · D) (O((r1 - r0) · k · D) with a block).
fb_status unifrac_pairwise_loss(double *loss_part, float *de_rows, const float *e, const float *target,
                                int N, int D, int block, int r0, int r1, float grad_scale);
// P, the number of counted pairs: N(N-1)/2 for block 0, (N/k)·k(k-1)/2 for block k; -1 when
// N <= 0, block < 0 or N % block != 0.
int64_t unifrac_pair_count(int N, int block);

// ---- FLOP counts (transcendentals — exp, log, tanh, sqrt — count 1, as in activations.c) ----
// mse: 3 per element for the loss (subtract, square, add) + 2 for the gradient (scale, accumulate).
double mse_loss_flops(size_t n, int with_grad);
// huber: 4 per element for the loss (subtract, abs + compare, square or linear term, add) + 3 for
// the gradient (clamp, scale, accumulate).
double huber_loss_flops(size_t n, int with_grad);
// cross_entropy: 4 per logit (max, subtract, exp, add) + 3 per row (log, add, subtract the label's
// logit) for the loss; the gradient recomputes the probabilities: + 5 per logit (subtract, exp,
// divide, one-hot subtract and scale, accumulate).
double cross_entropy_loss_flops(int B, int C, int with_grad);
// unifrac_pairwise over rows [r0, r1): the loss alone visits the counted pairs (i, j > i) at
// 3D + 8 each (D subtract, square, add; max, sqrt, divide, tanh, subtract, square, add, plus the
// final scale); with the gradient every counted ordered pair (i, j ≠ i) costs 6D + 14 (the distance
// again, the coefficient 2 r (1 - pred²) / (10 d P) · grad_scale, and D subtract, multiply, add).
double unifrac_pairwise_flops(int N, int D, int block, int r0, int r1, int with_grad);
