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
