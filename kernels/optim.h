// Optimizers over flat buffers: AdamW, SGD with momentum, global-norm gradient clipping, L2 norms
// of buffer slices, and the warm-up + cosine learning-rate schedule.
//
// Parameters and gradients live in one flat buffer per role (layout.h), so every optimizer is one
// loop over n floats, and its moments are more flat buffers of the same n that the caller owns
// (a slot of an fb_layout, or plain aligned_alloc'd memory). The moments and the step count are the
// whole optimizer state: a run checkpointed after k steps and restored into fresh buffers continues
// bit for bit (fb_optim_init with step = k).
//
// Arithmetic follows PyTorch 1.13's single-tensor CPU path in float32, operation by operation, with
// the per-step scalars (bias corrections, step size) computed in double and rounded to float once,
// as torch does with Python floats. Every element-wise loop is OpenMP-parallel above
// FB_OMP_MIN_WORK, and each element sees the same operations on any thread count (-std=c11: no
// implicit fma contraction), so results are bitwise independent of the thread count. Norms sum in
// double over chunks fixed by n alone, added in chunk order: also thread-count independent.
//
// Flat layout buffers: the padding between tensors is zero in production and stays zero under
// every update here (a zero gradient on a zero parameter never moves). Under fb_layout_canaries
// (tests) the padding holds NaN sentinels: there, run optimizers and norms per tensor, not over
// L->total.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "common.h"

// ---------------------------------------------------------------- element-wise kernels (llm.c style)

// One AdamW step, torch.optim.AdamW (amsgrad=False, maximize=False), t = this step's number (>= 1):
//   p ← p·(1 − lr·wd)
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·g·g
//   p ← p − lr/(1 − β1^t) · m / ( sqrt(v) / sqrt(1 − β2^t) + eps )
// params, m, v (n) are updated in place; grads (n) is read only.
fb_status fb_adamw_update(float *params, float *m, float *v, const float *grads, size_t n, int64_t t,
                          double lr, double beta1, double beta2, double eps, double weight_decay);

// One SGD step, torch.optim.SGD(momentum=μ, dampening=0, nesterov, weight_decay), t >= 1:
//   d ← g + wd·p
//   buf ← d at t = 1, else μ·buf + d          (skipped when μ = 0; buf may then be NULL)
//   d ← d + μ·buf (nesterov) or buf (classic)
//   p ← p − lr·d
// params, buf (n) are updated in place; grads (n) is read only.
fb_status fb_sgd_update(float *params, float *buf, const float *grads, size_t n, int64_t t,
                        double lr, double momentum, int nesterov, double weight_decay);

// ---------------------------------------------------------------- norms and clipping

// Σ x_i² (x is (n)), in double; the order of additions depends on n only. 0 for n = 0.
double fb_sumsq(const float *x, size_t n);
// The same sum over one chunk on the calling thread (16 interleaved double lanes, fixed order; no
// OpenMP region): for many short vectors, e.g. the rows of an activation.
double fb_sumsq_serial(const float *x, size_t n);
// sqrt(fb_sumsq): the L2 norm of a buffer or a slice of one (e.g. one tensor of a layout:
// fb_norm2(L->base[1] + t->offset, t->numel)).
double fb_norm2(const float *x, size_t n);
// torch.nn.utils.clip_grad_norm_(max_norm, norm_type=2) over the flat buffer grads (n):
// total = fb_norm2(grads, n); coef = max_norm / (total + 1e-6); grads *= min(coef, 1) (the
// multiply runs even when coef >= 1, as in torch; x·1 is exact). *total_norm receives total.
// A non-finite total returns FB_ERR_NONFINITE and leaves grads unchanged (torch would scale them
// by NaN): the caller skips the step.
fb_status fb_clip_grad_norm(float *grads, size_t n, double max_norm, double *total_norm);

// ---------------------------------------------------------------- learning-rate schedule

// Linear warm-up, then half a cosine down to lr_min at step `total`:
//   step < warmup:          lr · step / max(1, warmup)
//   warmup <= step <= total: lr_min + (lr − lr_min) · ½ (1 + cos(π · progress)),
//                            progress = (step − warmup) / max(1, total − warmup)
//   step > total:           lr_min   (transformers would climb the cosine back up; we hold)
// `step` counts completed optimizer steps, i.e. it is the 0-based index of the step about to be
// taken, as LambdaLR's last_epoch when scheduler.step() follows every optimizer.step(): the first
// step uses lr · 0 / warmup = 0 when warmup > 0. With lr_min = 0 this is
// transformers.get_cosine_schedule_with_warmup(num_cycles=0.5) for every step in [0, total].
typedef struct {
    double lr, lr_min;
    int64_t warmup, total;
} fb_lr_schedule;

// Fills and validates s: 0 <= lr_min <= lr finite, 0 <= warmup <= total.
fb_status fb_lr_schedule_init(fb_lr_schedule *s, double lr, double lr_min, int64_t warmup, int64_t total);
double fb_lr_at(const fb_lr_schedule *s, int64_t step);   // step < 0 counts as 0

// ---------------------------------------------------------------- optimizer state

typedef enum { FB_OPTIM_ADAMW, FB_OPTIM_SGD } fb_optim_kind;

typedef struct {
    fb_optim_kind kind;
    double lr;              // peak learning rate (fb_optim_step takes the scheduled one)
    double weight_decay;    // AdamW: decoupled; SGD: added to the gradient
    double beta1, beta2, eps;   // AdamW
    double momentum;        // SGD, in [0, 1); 0 = plain SGD (no buffer)
    int nesterov;           // SGD; requires momentum > 0
} fb_optim_config;

// AdamW as 003 trains: lr 1e-4, betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
fb_optim_config fb_adamw_config(void);
// SGD: lr 1e-2, momentum 0.9, classic (not nesterov), no weight decay.
fb_optim_config fb_sgd_config(void);
// Checks every hyper-parameter of cfg (finite, lr >= 0, 0 <= β < 1, eps > 0, wd >= 0, ...).
fb_status fb_optim_config_check(const fb_optim_config *cfg);

// Points an optimizer at caller-owned flat buffers, each (n) floats:
//   params  updated in place         grads  read by every step (clip it in place beforehand)
//   m       AdamW first moment, or the SGD momentum buffer (NULL allowed for SGD with momentum 0)
//   v       AdamW second moment (NULL for SGD)
// The state is (m, v, step). step = 0 starts fresh and zeroes m and v; step = k > 0 resumes after
// k completed steps with m and v as the caller restored them from a checkpoint.
typedef struct {
    fb_optim_config cfg;
    size_t n;
    float *params;        // (n)
    const float *grads;   // (n)
    float *m, *v;         // (n) each, see above
    int64_t step;         // completed steps; the next one is step + 1 (torch's state['step'])
} fb_optim;

fb_status fb_optim_init(fb_optim *o, const fb_optim_config *cfg, float *params, const float *grads,
                        float *m, float *v, size_t n, int64_t step);
// One step at learning rate lr (e.g. fb_lr_at(&schedule, o->step)); increments o->step on success.
fb_status fb_optim_step(fb_optim *o, double lr);
