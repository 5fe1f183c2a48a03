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

static fb_status linear_check(const void *inp, const linear_params *p, int N, int IC, int OC) {
    FB_REQUIRE(N > 0 && IC > 0 && OC > 0, FB_ERR_SHAPE,
               "linear: sizes N=%d IC=%d OC=%d must all be > 0", N, IC, OC);
    FB_REQUIRE(inp && p && p->weight, FB_ERR_SHAPE, "linear: missing input or weight");
    return FB_OK;
}

fb_status linear_forward(float *out, const float *inp, const linear_params *p, int N, int IC, int OC) {
    FB_TRY(linear_check(inp, p, N, IC, OC));
    float beta = 0.0f;
    if (p->bias) {
        // Seed every row with the bias, then let SGEMM accumulate onto it (beta = 1): no extra pass.
        #pragma omp parallel for schedule(static) if ((size_t)N * OC > FB_OMP_MIN_WORK)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, p->bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, IC, p->weight, IC, beta, out, OC);
    return FB_OK;
}

fb_status linear_backward(float *dinp, linear_params *g, const float *dout, const float *inp,
                          const linear_params *p, int N, int IC, int OC) {
    FB_TRY(linear_check(inp, p, N, IC, OC));
    if (dinp)  // (N, IC) += (N, OC) · (OC, IC)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, p->weight, IC, 1.0f, dinp, IC);
    if (g && g->weight)  // (OC, IC) += (OC, N) · (N, IC)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, g->weight, IC);
    if (g && g->bias) {
        // Each thread owns a block of columns and sums rows in order: the result does not depend
        // on the thread count.
        #pragma omp parallel if ((size_t)N * OC > FB_OMP_MIN_WORK)
        {
            #pragma omp for schedule(static)
            for (int o0 = 0; o0 < OC; o0 += 64) {
                int o1 = o0 + 64 < OC ? o0 + 64 : OC;
                float acc[64] = {0};
                for (int n = 0; n < N; n++) {
                    const float *row = dout + (size_t)n * OC;
                    for (int o = o0; o < o1; o++) acc[o - o0] += row[o];
                }
                for (int o = o0; o < o1; o++) g->bias[o] += acc[o - o0];
            }
        }
    }
    return FB_OK;
}

double linear_flops_forward(int N, int IC, int OC, int has_bias) {
    return 2.0 * N * IC * OC + (has_bias ? (double)N * OC : 0.0);
}

double linear_flops_backward(int N, int IC, int OC, int has_bias, int needs_dinp) {
    return (needs_dinp ? 2.0 * N * IC * OC : 0.0) + 2.0 * N * IC * OC + (has_bias ? (double)N * OC : 0.0);
}
