// Training checkpoints: one HDF5 file per checkpoint, written atomically (io/h5out.h: the data go
// to <path>.tmp, renamed to <path> only after a clean close), so a run killed while writing keeps
// the previous checkpoint under the real name.
//
// Layout (root attributes format = "fusebench-checkpoint", version = 1):
//   attributes  fingerprint   everything that must match for a bitwise continuation (scenario,
//                             method, sizes, seed, optimizer, schedule, ...), as "key=value; ..."
//               step          completed optimizer steps
//               n             floats per buffer (the parameter layout's total, padding included)
//   datasets    params (n)    parameters
//               m (n), v (n)  optimizer moments (present when the optimizer has them)
// A resumed run restores these three buffers and the step: every other input of a step (data,
// dropout masks, learning rate) is a function of (seed, step), so it continues bit for bit.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "../kernels/common.h"

typedef struct {
    const char *fingerprint;
    int64_t step;
    size_t n;
    const float *params;   // (n)
    const float *m, *v;    // (n) each, or NULL
} fb_checkpoint;

fb_status fb_checkpoint_write(const char *path, const fb_checkpoint *c);
// Reads a checkpoint into caller buffers of n floats (m, v: NULL skips them; the file must hold
// those that are asked for). FB_ERR_IO for an unreadable or foreign file; FB_ERR_CONFIG when its
// fingerprint or n differ from the expected ones (the message names the first differing item).
fb_status fb_checkpoint_read(const char *path, const char *fingerprint, size_t n, float *params, float *m,
                             float *v, int64_t *step);
