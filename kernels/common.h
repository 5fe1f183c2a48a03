// fusebench kernel core: status codes, error messages, OpenMP thresholds.
//
// Kernels know nothing of MPI or files. Every routine that can fail returns an fb_status and, on
// failure, leaves a human-readable reason in a thread-local buffer (fb_last_error) that drivers
// print. Kernels never exit and never print.
//
// Shape legend used across kernels/ (comments give every pointer's shape with these letters):
//   B  batch (samples)                 N  rows of a flattened (B*S) or (B*T) matrix
//   S  query / sequence positions      T  key/value tokens of the second stream
//   K  metadata (categorical) tokens   L  perceiver latents
//   D  model dim (a stream's width)    E  second stream's width (kdim / vdim)
//   H  attention heads                 dh head dim = D / H
//   F  feed-forward hidden width       IC/OC linear input/output channels
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    FB_OK = 0,
    FB_ERR_SHAPE,      // a size is zero/negative or sizes disagree
    FB_ERR_CONFIG,     // an option is out of range (heads not dividing D, p outside [0,1), ...)
    FB_ERR_NONFINITE,  // NaN or Inf where a finite value is required
    FB_ERR_ALLOC,      // out of memory
    FB_ERR_IO,         // file or format problem (used by io/, never by kernels)
    FB_ERR_INTERNAL,
    FB_STATUS_COUNT
} fb_status;

const char *fb_status_name(fb_status s);
// Records a failure reason for the calling thread; returns `s` so callers can `return fb_fail(...)`.
fb_status fb_fail(fb_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *fb_last_error(void);
void fb_clear_error(void);

// Shape guard used at the top of every kernel entry point.
#define FB_REQUIRE(cond, status, ...) \
    do { if (!(cond)) return fb_fail((status), __VA_ARGS__); } while (0)
#define FB_TRY(expr) \
    do { fb_status fb_try_s_ = (expr); if (fb_try_s_ != FB_OK) return fb_try_s_; } while (0)

// Below this many floats of work a loop runs on one thread: the fork/join costs more than it saves.
#define FB_OMP_MIN_WORK 16384

// ---- FLOP counter ----
// One process-wide count of the floating-point operations the kernels executed, for the profiling
// layer's FLOPs per training phase: read fb_flops_read() at a phase's start and end, and take the
// difference. Convention: a multiply-add is 2 FLOPs; an SGEMM C = alpha op(A) op(B) + beta C of
// sizes M, N, K counts 2·M·N·K (the alpha and beta scalings are not counted).
//
// What adds to it, each at the leaf, so nothing is counted twice:
//   - every SGEMM, in fb_sgemm (linear.c), and the attention core's small-head products, which
//     are the same GEMMs written as loops (attention.c counts them, once per call, so the count
//     does not depend on mha_loop_work);
//   - the kernels that have a FLOP function, with that function's count, when they run: linear's
//     bias add and bias gradient (the part of linear_flops_* that is not SGEMM; linear_bcast's
//     likewise), layernorm, the activations, softmax and the losses. Dropout has no FLOP
//     function and counts nothing; neither does the optimizer.
// Composite kernels (attention, ffn, encoder_layer) and the fusion methods add nothing themselves:
// their count is that of the SGEMMs and leaf kernels they call. Elementwise work written inline
// in a composite (residual adds, attention's per-head softmax and dropout, a gate's σ and
// multiply-add, a fused activation backward, position sums) is not counted. So over a composite
// the count is "FLOPs of SGEMMs and the leaf kernels", a lower bound of its documented *_flops /
// flops() figure (within a few percent where GEMMs dominate).
// Counts depend on shapes only, never on the thread count. fb_flops_add is one relaxed atomic
// add and may be called from inside OpenMP regions.
extern long long fb_flops_counted_;   // use fb_flops_add / fb_flops_read
static inline void fb_flops_add(double n) {
    __atomic_fetch_add(&fb_flops_counted_, (long long)llround(n), __ATOMIC_RELAXED);
}
long long fb_flops_read(void);
