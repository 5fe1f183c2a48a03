// Linear layer with PyTorch's layout: out = inp · weightᵀ + bias, weight (OC, IC).
#pragma once
#include "layout.h"

// Every SGEMM of fusebench goes through fb_sgemm (row-major, cblas_sgemm's arguments). It splits
// the reduction dimension K into chunks of FB_GEMM_K_CHUNK accumulated in a fixed order: OpenBLAS
// 0.3.21 blocks K differently in its single- and multi-threaded drivers once K exceeds its K block
// (384 for SGEMM on AVX-512), so an unsplit SGEMM gives different bits on 1 and 2 threads. With
// K <= 256 per call, every element's summation order is independent of the thread count. The
// cost is one extra read/write of C per 256 of K (< 2% of the FLOPs' time at the shapes here).
#define FB_GEMM_K_CHUNK 256
void fb_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *Bm, int ldb, float beta, float *C, int ldc);

typedef struct {
    float *weight;  // (OC, IC)
    float *bias;    // (OC), NULL when the layer has none
} linear_params;

// Declares `prefix.weight` (and `prefix.bias`) with PyTorch's nn.Linear default initialisation:
// U(-1/sqrt(IC), 1/sqrt(IC)) for both (kaiming_uniform with a = sqrt(5)). Returns the weight's index.
int linear_declare(fb_layout *L, const char *prefix, int IC, int OC, int has_bias,
                   linear_params *p, linear_params *g);
// Xavier-uniform weight, zero bias (the init the 000 and 003 systems use).
void linear_init_xavier(fb_layout *L, int weight_index, int IC, int OC);

// out (N, OC) = inp (N, IC) · weightᵀ (+ bias)
fb_status linear_forward(float *out, const float *inp, const linear_params *p, int N, int IC, int OC);
// Accumulates: dinp (N, IC) += dout · weight (skipped when dinp is NULL);
// g->weight (OC, IC) += doutᵀ · inp; g->bias (OC) += column sums of dout (skipped when NULL).
fb_status linear_backward(float *dinp, linear_params *g, const float *dout, const float *inp,
                          const linear_params *p, int N, int IC, int OC);
// Linear over a concatenation without forming it: out (N, OC) = [x1 (N, I1) ; x2 (N, I2)] · Wᵀ + b
// with W (OC, I1 + I2). Two SGEMMs on column blocks of W (leading dimension I1 + I2) replace the
// (N, I1 + I2) temporary that torch.cat builds. p is declared with IC = I1 + I2.
fb_status linear_concat_forward(float *out, const float *x1, int I1, const float *x2, int I2,
                                const linear_params *p, int N, int OC);
// Accumulates dx1 (N, I1), dx2 (N, I2) (either may be NULL) and g->weight (OC, I1 + I2), g->bias.
fb_status linear_concat_backward(float *dx1, float *dx2, linear_params *g, const float *dout,
                                 const float *x1, int I1, const float *x2, int I2,
                                 const linear_params *p, int N, int OC);

// FLOPs of one forward / backward (multiply-add = 2 FLOPs), for the benchmark and the counters.
double linear_flops_forward(int N, int IC, int OC, int has_bias);
double linear_flops_backward(int N, int IC, int OC, int has_bias, int needs_dinp);
