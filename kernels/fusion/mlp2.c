// Two-layer MLP over a concatenation (see mlp2.h), shared by concat_mlp and modality_dropout.
#include "mlp2.h"
#include <string.h>
#include "../dropout.h"

// Rows of this call: the owning fusion's current batch (c.B may be lowered between calls).
static int rows_now(const mlp2 *m) { return m->owner->c.B < m->N ? m->owner->c.B : m->N; }

fb_status mlp2_declare(mlp2 *m, const fusion *f, fb_layout *P, fb_layout *A, const char *act_prefix,
                       int N, int I1, int I2, int F, int OC, fb_activation act) {
    FB_REQUIRE(act == FB_ACT_RELU || act == FB_ACT_GELU, FB_ERR_INTERNAL,
               "%s: mlp2 supports relu and gelu (got %s)", f->method->name, fb_activation_name(act));
    *m = (mlp2){.N = N, .I1 = I1, .I2 = I2, .F = F, .OC = OC, .act = act, .owner = f};
    char name[FB_NAME_MAX];
    if (linear_declare(P, fusion_name(f, "fc1", name), I1 + I2, F, 1, &m->fc1, &m->dfc1) < 0) return FB_ERR_SHAPE;
    if (linear_declare(P, fusion_name(f, "fc2", name), F, OC, 1, &m->fc2, &m->dfc2) < 0) return FB_ERR_SHAPE;
    fusion_name(f, act_prefix, name);
    if (fb_layout_add(A, name, "h", 2, (int[]){N, F}, FB_INIT_ZERO, 0, &m->h, &m->dh) < 0) return FB_ERR_SHAPE;
    if (fb_layout_add(A, name, "y", 2, (int[]){N, F}, FB_INIT_ZERO, 0, &m->y, &m->dy) < 0) return FB_ERR_SHAPE;
    return FB_OK;
}

fb_status mlp2_forward(mlp2 *m, float *out, const float *x1, const float *x2, float p,
                       const fb_rng_key *key, int training) {
    const int N = rows_now(m);
    size_t n = (size_t)N * m->F;
    FB_TRY(linear_concat_forward(m->h, x1, m->I1, x2, m->I2, &m->fc1, N, m->F));
    FB_TRY(activation_forward(m->act, m->y, m->h, n));
    if (training && p > 0.0f) FB_TRY(dropout_rows_forward(m->y, m->y, (size_t)N, (size_t)m->F, p, key, 1));
    return linear_forward(out, m->y, &m->fc2, N, m->F, m->OC);
}

fb_status mlp2_backward(mlp2 *m, float *dx1, float *dx2, const float *dout, const float *x1,
                        const float *x2, float p, const fb_rng_key *key, int training) {
    const int N = rows_now(m);
    size_t n = (size_t)N * m->F;
    float *restrict dy = m->dy;
    const float *restrict h = m->h;
    memset(dy, 0, n * sizeof(float));
    FB_TRY(linear_backward(dy, &m->dfc2, dout, m->y, &m->fc2, N, m->F, m->OC));
    // Through the activation, in place (dropout's mask and scale commute with it).
    if (m->act == FB_ACT_RELU) {
        #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
        for (size_t i = 0; i < n; i++) dy[i] = h[i] > 0.0f ? dy[i] : 0.0f;
    } else {
        #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
        for (size_t i = 0; i < n; i++) dy[i] *= fb_gelu_grad(h[i]);
    }
    const float *dpre = dy;
    if (training && p > 0.0f) {   // the mask is regenerated from the same key
        memset(m->dh, 0, n * sizeof(float));
        FB_TRY(dropout_rows_backward(m->dh, dy, (size_t)N, (size_t)m->F, p, key, 1));
        dpre = m->dh;
    }
    return linear_concat_backward(dx1, dx2, &m->dfc1, dpre, x1, m->I1, x2, m->I2, &m->fc1, N, m->F);
}

double mlp2_flops(const mlp2 *m, int backward, int dropout_active, int needs_dx) {
    const int N = rows_now(m);
    size_t n = (size_t)N * m->F;
    int IC = m->I1 + m->I2;
    if (!backward)
        return linear_flops_forward(N, IC, m->F, 1) + activation_flops_forward(m->act, n)
             + (dropout_active ? (double)n : 0.0) + linear_flops_forward(N, m->F, m->OC, 1);
    return linear_flops_backward(N, m->F, m->OC, 1, 1) + activation_flops_backward(m->act, n)
         + (dropout_active ? (double)n : 0.0) + linear_flops_backward(N, IC, m->F, 1, needs_dx);
}
