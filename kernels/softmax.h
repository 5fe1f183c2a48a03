// Row-wise softmax over the last dim, numerically stable (max subtracted).
#pragma once
#include "common.h"

// out (N, C) = softmax(inp) per row; out may alias inp. A row that is all -inf (every key masked)
// becomes all zeros instead of PyTorch's NaNs, so one empty sample cannot poison a batch.
fb_status softmax_forward(float *out, const float *inp, int N, int C);
// dinp (N, C) += out * (dout - sum(dout * out)) per row.
fb_status softmax_backward(float *dinp, const float *dout, const float *out, int N, int C);
double softmax_flops_forward(int N, int C);
double softmax_flops_backward(int N, int C);
