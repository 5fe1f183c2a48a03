#include "linear.h"
#include <cblas.h>
#include <math.h>
#include <string.h>

int linear_declare(fb_layout *L, const char *prefix, int IC, int OC, int has_bias,
                   linear_params *p, linear_params *g) {
    float bound = IC > 0 ? 1.0f / sqrtf((float)IC) : 0.0f;
    int w = fb_layout_add(L, prefix, "weight", 2, (int[]){OC, IC}, FB_INIT_UNIFORM, bound,
                          &p->weight, g ? &g->weight : NULL);
    if (has_bias)
        fb_layout_add(L, prefix, "bias", 1, (int[]){OC}, FB_INIT_UNIFORM, bound, &p->bias, g ? &g->bias : NULL);
    else {
        p->bias = NULL;
        if (g) g->bias = NULL;
    }
    return w;
}

void linear_init_xavier(fb_layout *L, int weight_index, int IC, int OC) {
    fb_layout_set_init(L, weight_index, FB_INIT_UNIFORM, sqrtf(6.0f / (float)(IC + OC)));
    // The bias, when declared, is the next tensor in the table.
    if (weight_index + 1 < L->count) {
        const char *w = L->tensors[weight_index].name, *b = L->tensors[weight_index + 1].name;
        size_t n = strlen(w) - strlen("weight");
        if (strncmp(w, b, n) == 0 && strcmp(b + n, "bias") == 0)
            fb_layout_set_init(L, weight_index + 1, FB_INIT_ZERO, 0.0f);
    }
}

void fb_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *Bm, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  // C = beta * C, as cblas does
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, 0, alpha, A, lda, Bm, ldb, beta, C, ldc);
        return;
    }
    fb_flops_add(2.0 * M * N * K);   // common.h's convention: beta·C and alpha are free
    for (int k0 = 0; k0 < K; k0 += FB_GEMM_K_CHUNK) {
        int kc = K - k0 < FB_GEMM_K_CHUNK ? K - k0 : FB_GEMM_K_CHUNK;
        // Row-major: op(A) is (M, K); A itself is (M, K) [no trans] or (K, M) [trans].
        const float *a = trans_a ? A + (size_t)k0 * lda : A + k0;
        const float *b = trans_b ? Bm + k0 : Bm + (size_t)k0 * ldb;
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                    M, N, kc, alpha, a, lda, b, ldb, k0 ? 1.0f : beta, C, ldc);
    }
}

// Seeds every row of out (N, OC) with the bias; returns the beta the first SGEMM must use.
// The bias add itself happens inside the SGEMM (beta = 1), which counts only 2·N·OC·IC, so the
// N·OC of linear_flops_forward's bias term is counted here.
static float bias_rows(float *out, const float *bias, int N, int OC) {
    if (!bias) return 0.0f;
    fb_flops_add((double)N * OC);
    #pragma omp parallel for schedule(static) if ((size_t)N * OC > FB_OMP_MIN_WORK)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
    return 1.0f;
}

// dbias (OC) += column sums of dout (N, OC). Each thread owns a block of columns and sums rows in
// order, so the result does not depend on the thread count.
static void bias_grad(float *dbias, const float *dout, int N, int OC) {
    fb_flops_add((double)N * OC);
    #pragma omp parallel for schedule(static) if ((size_t)N * OC > FB_OMP_MIN_WORK)
    for (int o0 = 0; o0 < OC; o0 += 64) {
        int o1 = o0 + 64 < OC ? o0 + 64 : OC;
        float acc[64] = {0};
        for (int n = 0; n < N; n++) {
            const float *row = dout + (size_t)n * OC;
            for (int o = o0; o < o1; o++) acc[o - o0] += row[o];
        }
        for (int o = o0; o < o1; o++) dbias[o] += acc[o - o0];
    }
}

// The part of a backward that touches one column block of W, `width` wide (leading dim ldw):
// dx (N, width) += dout · W[:, block]; dW[:, block] += doutᵀ · x. (Not `I`: cblas.h pulls in
// complex.h, which defines it.)
static void linear_block_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
                                  int N, int width, int OC, int ldw) {
    if (dx) fb_sgemm(0, 0, N, width, OC, 1.0f, dout, OC, w, ldw, 1.0f, dx, width);
    if (dw) fb_sgemm(1, 0, OC, width, N, 1.0f, dout, OC, x, width, 1.0f, dw, ldw);
}

static fb_status linear_check(const void *inp, const linear_params *p, int N, int IC, int OC) {
    FB_REQUIRE(N > 0 && IC > 0 && OC > 0, FB_ERR_SHAPE,
               "linear: sizes N=%d IC=%d OC=%d must all be > 0", N, IC, OC);
    FB_REQUIRE(inp && p && p->weight, FB_ERR_SHAPE, "linear: missing input or weight");
    return FB_OK;
}

fb_status linear_forward(float *out, const float *inp, const linear_params *p, int N, int IC, int OC) {
    FB_TRY(linear_check(inp, p, N, IC, OC));
    // Seed every row with the bias, then let SGEMM accumulate onto it (beta = 1): no extra pass.
    float beta = bias_rows(out, p->bias, N, OC);
    fb_sgemm(0, 1, N, OC, IC, 1.0f, inp, IC, p->weight, IC, beta, out, OC);
    return FB_OK;
}

fb_status linear_concat_forward(float *out, const float *x1, int I1, const float *x2, int I2,
                                const linear_params *p, int N, int OC) {
    FB_TRY(linear_check(x1, p, N, I1, OC));
    FB_TRY(linear_check(x2, p, N, I2, OC));
    int ldw = I1 + I2;
    float beta = bias_rows(out, p->bias, N, OC);
    fb_sgemm(0, 1, N, OC, I1, 1.0f, x1, I1, p->weight, ldw, beta, out, OC);
    fb_sgemm(0, 1, N, OC, I2, 1.0f, x2, I2, p->weight + I1, ldw, 1.0f, out, OC);
    return FB_OK;
}

fb_status linear_concat_backward(float *dx1, float *dx2, linear_params *g, const float *dout,
                                 const float *x1, int I1, const float *x2, int I2,
                                 const linear_params *p, int N, int OC) {
    FB_TRY(linear_check(x1, p, N, I1, OC));
    FB_TRY(linear_check(x2, p, N, I2, OC));
    int ldw = I1 + I2;
    float *dw = g ? g->weight : NULL;
    linear_block_backward(dx1, dw, dout, x1, p->weight, N, I1, OC, ldw);
    linear_block_backward(dx2, dw ? dw + I1 : NULL, dout, x2, p->weight + I1, N, I2, OC, ldw);
    if (g && g->bias) bias_grad(g->bias, dout, N, OC);
    return FB_OK;
}

fb_status linear_backward(float *dinp, linear_params *g, const float *dout, const float *inp,
                          const linear_params *p, int N, int IC, int OC) {
    FB_TRY(linear_check(inp, p, N, IC, OC));
    linear_block_backward(dinp, g ? g->weight : NULL, dout, inp, p->weight, N, IC, OC, IC);
    if (g && g->bias) bias_grad(g->bias, dout, N, OC);
    return FB_OK;
}

double linear_flops_forward(int N, int IC, int OC, int has_bias) {
    return 2.0 * N * IC * OC + (has_bias ? (double)N * OC : 0.0);
}

double linear_flops_backward(int N, int IC, int OC, int has_bias, int needs_dinp) {
    return (needs_dinp ? 2.0 * N * IC * OC : 0.0) + 2.0 * N * IC * OC + (has_bias ? (double)N * OC : 0.0);
}
