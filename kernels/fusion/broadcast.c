#include "broadcast.h"
#include <cblas.h>
#include <string.h>

#define BCAST_COLS 64   // columns per task of the position sums

void fusion_sum_positions(float *u, const float *x, int B, int S, int W, float scale, int accumulate,
                          float *acc) {
    const int blocks = (W + BCAST_COLS - 1) / BCAST_COLS;
    const size_t SW = (size_t)S * W;
    #pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * SW > FB_OMP_MIN_WORK)
    for (int b = 0; b < B; b++)
        for (int k = 0; k < blocks; k++) {
            const int w0 = k * BCAST_COLS, n = W - w0 < BCAST_COLS ? W - w0 : BCAST_COLS;
            float sum[BCAST_COLS] = {0};
            const float *xb = x + (size_t)b * SW + w0;
            if (acc) {
                float *ab = acc + (size_t)b * SW + w0;
                for (int s = 0; s < S; s++) {
                    const float *restrict row = xb + (size_t)s * W;
                    float *restrict arow = ab + (size_t)s * W;
                    #pragma omp simd
                    for (int j = 0; j < n; j++) { sum[j] += row[j]; arow[j] += row[j]; }
                }
            } else {
                for (int s = 0; s < S; s++) {
                    const float *restrict row = xb + (size_t)s * W;
                    #pragma omp simd
                    for (int j = 0; j < n; j++) sum[j] += row[j];
                }
            }
            float *ub = u + (size_t)b * W + w0;
            if (accumulate)
                for (int j = 0; j < n; j++) ub[j] += scale * sum[j];
            else
                for (int j = 0; j < n; j++) ub[j] = scale * sum[j];
        }
}

static fb_status bcast_check(const float *x, const float *c, const linear_params *p, int B, int S, int I1, int I2, int OC) {
    FB_REQUIRE(B > 0 && S > 0 && I1 > 0 && I2 > 0 && OC > 0, FB_ERR_SHAPE,
               "linear_bcast: sizes B=%d S=%d I1=%d I2=%d OC=%d must all be > 0", B, S, I1, I2, OC);
    FB_REQUIRE(x && c && p && p->weight, FB_ERR_SHAPE, "linear_bcast: missing input or weight");
    return FB_OK;
}

fb_status linear_bcast_forward(float *out, float *u, const float *x, int I1, const float *c, int I2,
                               const linear_params *p, int B, int S, int OC) {
    FB_TRY(bcast_check(x, c, p, B, S, I1, I2, OC));
    const int ldw = I1 + I2;
    float beta = 0.0f;
    if (p->bias) {   // added by the SGEMM (beta = 1); its B·OC is counted here (common.h)
        for (int b = 0; b < B; b++) memcpy(u + (size_t)b * OC, p->bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
        fb_flops_add((double)B * OC);
    }
    fb_sgemm(0, 1, B, OC, I2, 1.0f, c, I2, p->weight + I1, ldw, beta, u, OC);
    const int N = B * S;
    #pragma omp parallel for schedule(static) if ((size_t)N * OC > FB_OMP_MIN_WORK)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, u + (size_t)(n / S) * OC, (size_t)OC * sizeof(float));
    fb_sgemm(0, 1, N, OC, I1, 1.0f, x, I1, p->weight, ldw, 1.0f, out, OC);
    return FB_OK;
}

fb_status linear_bcast_backward(float *dx, float *dc, linear_params *g, float *du, const float *dout,
                                const float *x, int I1, const float *c, int I2,
                                const linear_params *p, int B, int S, int OC) {
    FB_TRY(bcast_check(x, c, p, B, S, I1, I2, OC));
    const int ldw = I1 + I2, N = B * S;
    fusion_sum_positions(du, dout, B, S, OC, 1.0f, 0, NULL);
    fb_flops_add((double)N * OC);   // the sums above (and Σ_b du below) are linear_bcast_flops_backward's
    if (dx) fb_sgemm(0, 0, N, I1, OC, 1.0f, dout, OC, p->weight, ldw, 1.0f, dx, I1);
    if (dc) fb_sgemm(0, 0, B, I2, OC, 1.0f, du, OC, p->weight + I1, ldw, 1.0f, dc, I2);
    if (g && g->weight) {
        fb_sgemm(1, 0, OC, I1, N, 1.0f, dout, OC, x, I1, 1.0f, g->weight, ldw);
        fb_sgemm(1, 0, OC, I2, B, 1.0f, du, OC, c, I2, 1.0f, g->weight + I1, ldw);
    }
    if (g && g->bias) {
        fusion_sum_positions(g->bias, du, 1, B, OC, 1.0f, 1, NULL);   // Σ_b du
        fb_flops_add((double)B * OC);
    }
    return FB_OK;
}

double linear_bcast_flops_forward(int B, int S, int I1, int I2, int OC) {
    return 2.0 * B * S * I1 * OC + 2.0 * B * I2 * OC + (double)B * OC;   // the seeding copy is free
}

double linear_bcast_flops_backward(int B, int S, int I1, int I2, int OC, int needs_dinp) {
    double n = (double)B * S;
    return (needs_dinp ? 2.0 * n * I1 * OC + 2.0 * B * I2 * OC : 0.0) + 2.0 * n * I1 * OC + 2.0 * B * I2 * OC
         + n * OC + (double)B * OC;   // Σ_s dout, Σ_b du
}
