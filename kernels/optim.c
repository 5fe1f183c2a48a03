#include "optim.h"
#include <math.h>
#include <string.h>

// ---------------------------------------------------------------- argument checks

static fb_status check_lr_wd(const char *who, double lr, double weight_decay) {
    FB_REQUIRE(isfinite(lr) && lr >= 0.0, FB_ERR_CONFIG, "%s: lr = %g must be finite and >= 0", who, lr);
    FB_REQUIRE(isfinite(weight_decay) && weight_decay >= 0.0, FB_ERR_CONFIG,
               "%s: weight_decay = %g must be finite and >= 0", who, weight_decay);
    return FB_OK;
}

static fb_status check_adamw(double lr, double beta1, double beta2, double eps, double weight_decay) {
    FB_TRY(check_lr_wd("adamw", lr, weight_decay));
    FB_REQUIRE(isfinite(beta1) && beta1 >= 0.0 && beta1 < 1.0, FB_ERR_CONFIG,
               "adamw: beta1 = %g must be in [0, 1)", beta1);
    FB_REQUIRE(isfinite(beta2) && beta2 >= 0.0 && beta2 < 1.0, FB_ERR_CONFIG,
               "adamw: beta2 = %g must be in [0, 1)", beta2);
    FB_REQUIRE(isfinite(eps) && eps > 0.0, FB_ERR_CONFIG, "adamw: eps = %g must be finite and > 0", eps);
    return FB_OK;
}

static fb_status check_sgd(double lr, double momentum, int nesterov, double weight_decay) {
    FB_TRY(check_lr_wd("sgd", lr, weight_decay));
    FB_REQUIRE(isfinite(momentum) && momentum >= 0.0 && momentum < 1.0, FB_ERR_CONFIG,
               "sgd: momentum = %g must be in [0, 1)", momentum);
    FB_REQUIRE(!nesterov || momentum > 0.0, FB_ERR_CONFIG, "sgd: nesterov needs momentum > 0 (momentum = %g)",
               momentum);
    return FB_OK;
}

static fb_status check_buffers(const char *who, size_t n, int64_t t, const void *params, const void *grads) {
    FB_REQUIRE(n > 0, FB_ERR_SHAPE, "%s: n = 0 (the buffers must hold at least one float)", who);
    FB_REQUIRE(params && grads, FB_ERR_SHAPE, "%s: missing params or grads buffer", who);
    FB_REQUIRE(t >= 1, FB_ERR_CONFIG, "%s: step number t = %lld must be >= 1", who, (long long)t);
    return FB_OK;
}

// ---------------------------------------------------------------- AdamW

fb_status fb_adamw_update(float *restrict params, float *restrict m, float *restrict v,
                          const float *restrict grads, size_t n, int64_t t,
                          double lr, double beta1, double beta2, double eps, double weight_decay) {
    FB_TRY(check_buffers("adamw", n, t, params, grads));
    FB_REQUIRE(m && v, FB_ERR_SHAPE, "adamw: missing moment buffer m or v");
    FB_TRY(check_adamw(lr, beta1, beta2, eps, weight_decay));
    // torch's scalars: Python floats (double), rounded to float when the float32 kernel takes them.
    const float decay = (float)(1.0 - lr * weight_decay);
    const float b1 = (float)beta1, c1 = (float)(1.0 - beta1);
    const float b2 = (float)beta2, c2 = (float)(1.0 - beta2);
    const double step_size = lr / (1.0 - pow(beta1, (double)t));
    const float neg_step = (float)(-step_size);
    const float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, (double)t));
    const float epsf = (float)eps;
    // GCC vectorises this loop only under -fno-math-errno (sqrtf may set errno otherwise); the bits
    // are the same either way, since sqrt is exactly rounded in scalar and vector form.
    #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        float p = params[i] * decay;                 // param.mul_(1 - lr * wd)
        float mi = b1 * m[i] + c1 * g;               // exp_avg.mul_(b1).add_(g, alpha=1-b1)
        float vi = b2 * v[i] + c2 * g * g;           // exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)
        float denom = sqrtf(vi) / bc2_sqrt + epsf;   // (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
        m[i] = mi;
        v[i] = vi;
        params[i] = p + neg_step * mi / denom;       // param.addcdiv_(exp_avg, denom, value=-step_size)
    }
    return FB_OK;
}

// ---------------------------------------------------------------- SGD

fb_status fb_sgd_update(float *restrict params, float *restrict buf, const float *restrict grads, size_t n,
                        int64_t t, double lr, double momentum, int nesterov, double weight_decay) {
    FB_TRY(check_buffers("sgd", n, t, params, grads));
    FB_TRY(check_sgd(lr, momentum, nesterov, weight_decay));
    FB_REQUIRE(buf || momentum == 0.0, FB_ERR_SHAPE, "sgd: momentum %g needs a momentum buffer", momentum);
    const float wd = (float)weight_decay, mu = (float)momentum, neg_lr = (float)(-lr);
    const int use_wd = weight_decay != 0.0, use_mu = momentum != 0.0, first = t == 1;
    #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float p = params[i];
        float d = grads[i];
        if (use_wd) d = d + wd * p;                      // d_p.add(param, alpha=wd)
        if (use_mu) {
            float b = first ? d : mu * buf[i] + d;       // clone, or buf.mul_(mu).add_(d_p)
            buf[i] = b;
            d = nesterov ? d + mu * b : b;               // d_p.add(buf, alpha=mu), or buf
        }
        params[i] = p + neg_lr * d;                      // param.add_(d_p, alpha=-lr)
    }
    return FB_OK;
}

// ---------------------------------------------------------------- norms and clipping

// Σ x² sums in double: FB_SUMSQ_LANES interleaved accumulators within a chunk (vectorisable, fixed
// order), chunks of a size that depends on n only, their partial sums added in chunk order. At most
// FB_SUMSQ_MAX_CHUNKS chunks, so the partials fit on the stack.
#define FB_SUMSQ_LANES 16
#define FB_SUMSQ_MIN_CHUNK 4096
#define FB_SUMSQ_MAX_CHUNKS 1024

double fb_sumsq_serial(const float *restrict x, size_t n) {
    double acc[FB_SUMSQ_LANES] = {0};
    size_t i = 0;
    for (; i + FB_SUMSQ_LANES <= n; i += FB_SUMSQ_LANES)
        for (int j = 0; j < FB_SUMSQ_LANES; j++) acc[j] += (double)x[i + j] * (double)x[i + j];
    for (int j = 0; i < n; i++, j++) acc[j] += (double)x[i] * (double)x[i];
    for (int w = FB_SUMSQ_LANES / 2; w > 0; w /= 2)   // pairwise: lane j += lane j + w
        for (int j = 0; j < w; j++) acc[j] += acc[j + w];
    return acc[0];
}

double fb_sumsq(const float *x, size_t n) {
    if (n == 0 || !x) return 0.0;
    size_t chunk = (n + FB_SUMSQ_MAX_CHUNKS - 1) / FB_SUMSQ_MAX_CHUNKS;
    if (chunk < FB_SUMSQ_MIN_CHUNK) chunk = FB_SUMSQ_MIN_CHUNK;
    chunk = (chunk + FB_SUMSQ_LANES - 1) / FB_SUMSQ_LANES * FB_SUMSQ_LANES;
    const int nchunks = (int)((n + chunk - 1) / chunk);
    double partial[FB_SUMSQ_MAX_CHUNKS];
    #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
    for (int c = 0; c < nchunks; c++) {
        size_t lo = (size_t)c * chunk, hi = lo + chunk < n ? lo + chunk : n;
        partial[c] = fb_sumsq_serial(x + lo, hi - lo);
    }
    double s = 0.0;
    for (int c = 0; c < nchunks; c++) s += partial[c];
    return s;
}

double fb_norm2(const float *x, size_t n) { return sqrt(fb_sumsq(x, n)); }

fb_status fb_clip_grad_norm(float *restrict grads, size_t n, double max_norm, double *total_norm) {
    FB_REQUIRE(n > 0 && grads, FB_ERR_SHAPE, "clip_grad_norm: empty or missing gradient buffer (n = %zu)", n);
    FB_REQUIRE(isfinite(max_norm) && max_norm >= 0.0, FB_ERR_CONFIG,
               "clip_grad_norm: max_norm = %g must be finite and >= 0", max_norm);
    double total = fb_norm2(grads, n);
    if (total_norm) *total_norm = total;
    FB_REQUIRE(isfinite(total), FB_ERR_NONFINITE,
               "clip_grad_norm: gradient norm is %g; gradients left unscaled", total);
    double coef = max_norm / (total + 1e-6);
    const float scale = (float)(coef < 1.0 ? coef : 1.0);
    #pragma omp parallel for schedule(static) if (n > FB_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) grads[i] *= scale;
    return FB_OK;
}

// ---------------------------------------------------------------- learning-rate schedule

fb_status fb_lr_schedule_init(fb_lr_schedule *s, double lr, double lr_min, int64_t warmup, int64_t total) {
    FB_REQUIRE(isfinite(lr) && lr >= 0.0, FB_ERR_CONFIG, "lr schedule: lr = %g must be finite and >= 0", lr);
    FB_REQUIRE(isfinite(lr_min) && lr_min >= 0.0 && lr_min <= lr, FB_ERR_CONFIG,
               "lr schedule: lr_min = %g must be in [0, lr = %g]", lr_min, lr);
    FB_REQUIRE(warmup >= 0 && total >= warmup, FB_ERR_CONFIG,
               "lr schedule: need 0 <= warmup (%lld) <= total (%lld)", (long long)warmup, (long long)total);
    s->lr = lr; s->lr_min = lr_min; s->warmup = warmup; s->total = total;
    return FB_OK;
}

double fb_lr_at(const fb_lr_schedule *s, int64_t step) {
    if (step < 0) step = 0;
    if (step < s->warmup)   // as transformers: lr * (step / max(1, warmup))
        return s->lr * ((double)step / (double)(s->warmup > 1 ? s->warmup : 1));
    if (step > s->total) return s->lr_min;
    int64_t span = s->total - s->warmup;
    double progress = (double)(step - s->warmup) / (double)(span > 1 ? span : 1);
    double f = 0.5 * (1.0 + cos(M_PI * progress));
    if (f < 0.0) f = 0.0;
    return s->lr_min + (s->lr - s->lr_min) * f;
}

// ---------------------------------------------------------------- optimizer state

fb_optim_config fb_adamw_config(void) {
    return (fb_optim_config){ .kind = FB_OPTIM_ADAMW, .lr = 1e-4, .weight_decay = 0.01,
                              .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8 };
}

fb_optim_config fb_sgd_config(void) {
    return (fb_optim_config){ .kind = FB_OPTIM_SGD, .lr = 1e-2, .momentum = 0.9 };
}

fb_status fb_optim_config_check(const fb_optim_config *cfg) {
    FB_REQUIRE(cfg, FB_ERR_CONFIG, "optim: missing configuration");
    switch (cfg->kind) {
    case FB_OPTIM_ADAMW: return check_adamw(cfg->lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay);
    case FB_OPTIM_SGD: return check_sgd(cfg->lr, cfg->momentum, cfg->nesterov, cfg->weight_decay);
    }
    return fb_fail(FB_ERR_CONFIG, "optim: unknown optimizer kind %d", (int)cfg->kind);
}

fb_status fb_optim_init(fb_optim *o, const fb_optim_config *cfg, float *params, const float *grads,
                        float *m, float *v, size_t n, int64_t step) {
    FB_REQUIRE(o, FB_ERR_CONFIG, "optim: missing optimizer struct");
    FB_TRY(fb_optim_config_check(cfg));
    FB_REQUIRE(n > 0, FB_ERR_SHAPE, "optim: n = 0 (the buffers must hold at least one float)");
    FB_REQUIRE(params && grads, FB_ERR_SHAPE, "optim: missing params or grads buffer");
    int adamw = cfg->kind == FB_OPTIM_ADAMW;
    FB_REQUIRE(!adamw || (m && v), FB_ERR_SHAPE, "optim: AdamW needs both moment buffers m and v");
    FB_REQUIRE(adamw || m || cfg->momentum == 0.0, FB_ERR_SHAPE,
               "optim: SGD with momentum %g needs a momentum buffer m", cfg->momentum);
    FB_REQUIRE(step >= 0, FB_ERR_CONFIG, "optim: step = %lld must be >= 0", (long long)step);
    *o = (fb_optim){ .cfg = *cfg, .n = n, .params = params, .grads = grads, .m = m,
                     .v = adamw ? v : NULL, .step = step };
    if (step == 0) {
        if (o->m) memset(o->m, 0, n * sizeof(float));
        if (o->v) memset(o->v, 0, n * sizeof(float));
    }
    return FB_OK;
}

fb_status fb_optim_step(fb_optim *o, double lr) {
    FB_REQUIRE(o, FB_ERR_CONFIG, "optim: missing optimizer struct");
    const fb_optim_config *c = &o->cfg;
    int64_t t = o->step + 1;
    fb_status s = c->kind == FB_OPTIM_ADAMW
        ? fb_adamw_update(o->params, o->m, o->v, o->grads, o->n, t, lr, c->beta1, c->beta2, c->eps, c->weight_decay)
        : fb_sgd_update(o->params, o->m, o->grads, o->n, t, lr, c->momentum, c->nesterov, c->weight_decay);
    if (s == FB_OK) o->step = t;
    return s;
}
