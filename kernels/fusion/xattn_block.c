// The residual cross-attention block shared by attention and seq_cross_attention; see xattn_block.h.
#include "xattn_block.h"
#include <stdio.h>
#include <string.h>
#include "../dropout.h"

fb_status xattn_declare(xattn_block *x, const fusion *f, fb_layout *P, fb_layout *A,
                        const char *attn_name, const char *norm_name, const char *act_prefix,
                        int B, int S, int T, int D, int Ek, int H, int residual, float p_resid) {
    const char *m = f->method->name;
    FB_REQUIRE(H > 0 && D % H == 0, FB_ERR_CONFIG, "%s: H=%d heads must divide D=%d", m, H, D);
    FB_REQUIRE(p_resid >= 0.0f && p_resid < 1.0f, FB_ERR_CONFIG, "%s: dropout %g outside [0, 1)", m, (double)p_resid);
    *x = (xattn_block){.B = B, .S = S, .T = T, .D = D, .Ek = Ek, .residual = residual, .p_resid = p_resid,
                       .mc = {.D = D, .Ek = Ek, .Ev = Ek, .H = H, .dropout = f->c.dropout}};
    char name[FB_NAME_MAX], sub[FB_NAME_MAX];
    if (mha_declare(P, fusion_name(f, attn_name, name), &x->mc, &x->p, &x->g) < 0) return FB_ERR_SHAPE;
    snprintf(sub, sizeof sub, "%s%s%s", act_prefix, *act_prefix ? "." : "", "attn");
    if (mha_declare_acts(A, sub, &x->mc, B, S, T, &x->a, &x->da) < 0) return FB_ERR_SHAPE;
    if (fb_layout_add(A, act_prefix, "w", 3, (int[]){B, S, T}, FB_INIT_ZERO, 0, &x->w, NULL) < 0) return FB_ERR_SHAPE;
    if (!residual) return FB_OK;
    if (layernorm_declare(P, fusion_name(f, norm_name, name), D, &x->ln, &x->dln) < 0) return FB_ERR_SHAPE;
    const int N = B * S;
    if (fb_layout_add(A, act_prefix, "r", 3, (int[]){B, S, D}, FB_INIT_ZERO, 0, &x->r, &x->dr) < 0 ||
        fb_layout_add(A, act_prefix, "mean", 1, (int[]){N}, FB_INIT_ZERO, 0, &x->mean, NULL) < 0 ||
        fb_layout_add(A, act_prefix, "rstd", 1, (int[]){N}, FB_INIT_ZERO, 0, &x->rstd, NULL) < 0)
        return FB_ERR_SHAPE;
    return FB_OK;
}

fb_status xattn_forward(xattn_block *x, fusion *f, float *out, const float *q, const float *kv,
                        const uint8_t *mask) {
    const int training = f->c.training, N = f->c.B * x->S;
    const size_t n = (size_t)N * x->D, SD = (size_t)x->S * x->D;   // SD: one sample's row of the masks
    const fb_rng_key ka = fusion_rng(f, XATTN_SITE_ATTN), kr = fusion_rng(f, XATTN_SITE_RESID);
    float *y = x->residual ? x->r : out;
    FB_TRY(mha_forward(y, x->w, &x->a, q, kv, kv, mask, &x->p, &x->mc, f->c.B, x->S, x->T, x->Ek, x->Ek,
                       training, &ka));
    f->diag.attention = x->w;
    f->diag.att_rows = N;
    f->diag.att_cols = x->T;
    if (!x->residual) return FB_OK;
    if (training && x->p_resid > 0.0f) FB_TRY(dropout_rows_forward(y, y, (size_t)f->c.B, SD, x->p_resid, &kr, 1));
    float *restrict r = y;
    #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) r[i] += q[i];
    return layernorm_forward(out, x->mean, x->rstd, r, &x->ln, N, x->D, XATTN_LN_EPS);
}

fb_status xattn_backward(xattn_block *x, fusion *f, float *dq, float *dkv, const float *dout,
                         const float *q, const float *kv) {
    const int training = f->c.training, N = f->c.B * x->S;
    const size_t n = (size_t)N * x->D, SD = (size_t)x->S * x->D;   // SD: one sample's row of the masks
    const fb_rng_key ka = fusion_rng(f, XATTN_SITE_ATTN), kr = fusion_rng(f, XATTN_SITE_RESID);
    const float *dy = dout;
    if (x->residual) {
        float *restrict dr = x->dr;
        memset(dr, 0, n * sizeof(float));
        FB_TRY(layernorm_backward(dr, &x->dln, dout, x->r, x->mean, x->rstd, &x->ln, N, x->D));
        if (dq) {   // the residual branch
            #pragma omp parallel for simd schedule(static) if (n > FB_OMP_MIN_WORK)
            for (size_t i = 0; i < n; i++) dq[i] += dr[i];
        }
        // Dropout is linear: its backward is the same masked scaling, applied in place.
        if (training && x->p_resid > 0.0f) FB_TRY(dropout_rows_forward(dr, dr, (size_t)f->c.B, SD, x->p_resid, &kr, 1));
        dy = dr;
    }
    return mha_backward(dq, dkv, dkv, &x->g, &x->da, dy, q, kv, kv, &x->a, &x->p, &x->mc, f->c.B, x->S, x->T,
                        x->Ek, x->Ek, training, &ka);
}

double xattn_flops(const xattn_block *x, const fusion *f, int backward) {
    const double n = (double)f->c.B * x->S * x->D;
    const int drop = f->c.training && x->p_resid > 0.0f;
    if (!backward)
        return mha_flops_forward(&x->mc, f->c.B, x->S, x->T) +
               (double)f->c.B * x->mc.H * x->S * x->T +                       // head average
               (x->residual ? layernorm_flops_forward(f->c.B * x->S, x->D) + (1 + drop) * n : 0.0);
    return mha_flops_backward(&x->mc, f->c.B, x->S, x->T, 1) +
           (x->residual ? layernorm_flops_backward(f->c.B * x->S, x->D) + (1 + drop) * n : 0.0);
}
