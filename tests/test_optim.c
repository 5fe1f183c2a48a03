// optim: PyTorch fixtures (AdamW, SGD, clip_grad_norm_, LR schedule), 1 vs 2 threads, resume from a
// checkpoint, flat layout buffers, bad arguments.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/layout.h"
#include "../kernels/optim.h"

// The update p_t - p_0 against torch's: the parameters' own float32 rounding (half an ulp of |p|
// per operation, a few operations per step) bounds what this can show, relative to the update's
// size; at lr 1e-4 that is ~1e-3 of the update.
#define TOL_UPDATE 3e-3

static double worst_update;

// ---------------------------------------------------------------- torch fixtures: optimizers

static fb_optim_config config_from(const fixture *f, const char *name) {
    fb_optim_config c;
    if (strncmp(name, "adamw", 5) == 0) {
        c = fb_adamw_config();
        c.beta1 = fixture_double_attr(f, "beta1");
        c.beta2 = fixture_double_attr(f, "beta2");
        c.eps = fixture_double_attr(f, "eps");
    } else {
        c = fb_sgd_config();
        c.momentum = fixture_double_attr(f, "momentum");
        c.nesterov = fixture_int(f, "nesterov");
    }
    c.lr = fixture_double_attr(f, "lr");
    c.weight_decay = fixture_double_attr(f, "weight_decay");
    return c;
}

// Max |(got - p0) - (want - p0)| / max |want - p0|: the update, not the parameter.
static double update_err(const float *got, const double *want, const float *p0, size_t n) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(((double)got[i] - p0[i]) - (want[i] - p0[i]));
        diff = fmax(diff, isnan(d) ? INFINITY : d);
        scale = fmax(scale, fabs(want[i] - p0[i]));
    }
    return scale > 0 ? diff / scale : diff;
}

static void torch_optim_case(const char *name) {
    fixture f;
    fixture_open(&f, "optim", name);
    // Same fixture, labelled so that our float32 against torch's float32 gets its own worst line.
    fixture f32 = f;
    snprintf(f32.label, sizeof f32.label, "optim-vs-torch-float32/%s", name);
    fb_optim_config cfg = config_from(&f, name);
    const size_t n = (size_t)fixture_int(&f, "n");
    const int steps = fixture_int(&f, "steps");
    float *p = alloc_floats(n), *g = alloc_floats(n), *m = alloc_floats(n), *v = alloc_floats(n);
    float *p0 = alloc_floats(n), *grads = alloc_floats(n * steps);
    fixture_load(&f, "p0", p0, n);
    fixture_load(&f, "grads", grads, n * steps);
    memcpy(p, p0, n * sizeof(float));
    fb_optim o;
    int adamw = cfg.kind == FB_OPTIM_ADAMW;
    assert_int_equal(fb_optim_init(&o, &cfg, p, g, m, adamw ? v : NULL, n, 0), FB_OK);
    char ds[32];
    for (int t = 1; t <= steps; t++) {
        memcpy(g, grads + (t - 1) * n, n * sizeof(float));
        assert_int_equal(fb_optim_step(&o, cfg.lr), FB_OK);
        assert_int_equal(o.step, t);
        printf("  step %d\n", t);
        snprintf(ds, sizeof ds, "p_%d", t);
        check_against(&f, ds, p, n, TOL_TORCH);
        double *want = fixture_doubles(&f, ds, NULL);
        double ue = update_err(p, want, p0, n);
        float *torch32 = fixture_floats(&f, (snprintf(ds, sizeof ds, "p32_%d", t), ds), NULL);
        check_against(&f32, ds, p, n, TOL_TORCH);
        printf("  torch float32 itself vs float64: p max rel err %.3e; update p_t - p_0: ours %.3e, torch "
               "float32 %.3e (tol %.0e)\n", max_rel_err(torch32, want, n), ue, update_err(torch32, want, p0, n),
               TOL_UPDATE);
        worst_update = fmax(worst_update, ue);
        assert_true(ue <= TOL_UPDATE);
        free(want);
        free(torch32);
        if (adamw) {
            check_against(&f, (snprintf(ds, sizeof ds, "m_%d", t), ds), m, n, TOL_TORCH);
            check_against(&f, (snprintf(ds, sizeof ds, "v_%d", t), ds), v, n, TOL_TORCH);
        } else if (cfg.momentum > 0) {
            check_against(&f, (snprintf(ds, sizeof ds, "buf_%d", t), ds), m, n, TOL_TORCH);
        }
    }
    fixture_close(&f);
    free(p); free(g); free(m); free(v); free(p0); free(grads);
}

static void test_adamw_default(void **state) { (void)state; torch_optim_case("adamw_default"); }
static void test_adamw_large(void **state) { (void)state; torch_optim_case("adamw_large"); }
static void test_sgd_momentum(void **state) { (void)state; torch_optim_case("sgd_momentum"); }
static void test_sgd_nesterov_wd(void **state) { (void)state; torch_optim_case("sgd_nesterov_wd"); }
static void test_sgd_momentum_wd(void **state) { (void)state; torch_optim_case("sgd_momentum_wd"); }
static void test_sgd_plain_wd(void **state) { (void)state; torch_optim_case("sgd_plain_wd"); }

// ---------------------------------------------------------------- torch fixtures: clipping, schedule

static void torch_clip_case(const char *name) {
    fixture f;
    fixture_open(&f, "optim", name);
    fixture f32 = f;
    snprintf(f32.label, sizeof f32.label, "optim-vs-torch-float32/%s", name);
    const size_t n = (size_t)fixture_int(&f, "n");
    float *g = alloc_floats(n);
    fixture_load(&f, "grads", g, n);
    double total = -1;
    assert_int_equal(fb_clip_grad_norm(g, n, fixture_double_attr(&f, "max_norm"), &total), FB_OK);
    float total_f = (float)total;
    check_against(&f, "total_norm", &total_f, 1, TOL_TORCH);
    check_against(&f, "clipped", g, n, TOL_TORCH);
    check_against(&f32, "total_norm32", &total_f, 1, TOL_TORCH);
    check_against(&f32, "clipped32", g, n, TOL_TORCH);
    double *want = fixture_doubles(&f, "total_norm", NULL);
    printf("  total norm %.9f, torch float64 %.9f: rel err %.3e (in double)\n", total, want[0],
           fabs(total - want[0]) / want[0]);
    assert_true(fabs(total - want[0]) <= 1e-12 * want[0]);
    free(want);
    fixture_close(&f);
    free(g);
}

static void test_clip_active(void **state) { (void)state; torch_clip_case("clip_active"); }
static void test_clip_inactive(void **state) { (void)state; torch_clip_case("clip_inactive"); }

static void torch_schedule_case(const char *name) {
    fixture f;
    fixture_open(&f, "optim", name);
    fb_lr_schedule s;
    assert_int_equal(fb_lr_schedule_init(&s, fixture_double_attr(&f, "lr"), fixture_double_attr(&f, "lr_min"),
                                         fixture_int(&f, "warmup"), fixture_int(&f, "total")), FB_OK);
    size_t count;
    double *want = fixture_doubles(&f, "lr_at", &count);
    assert_int_equal(count, (size_t)s.total + 1);
    double err = 0;
    for (int64_t k = 0; k <= s.total; k++) err = fmax(err, fabs(fb_lr_at(&s, k) - want[k]) / s.lr);
    printf("  torch %-28s lr_at      max err / lr %.3e over steps 0..%lld (tol 1e-12)\n", f.label, err,
           (long long)s.total);
    assert_true(err <= 1e-12);
    // Past `total` the schedule holds lr_min; at the ends it is exact.
    assert_true(fb_lr_at(&s, s.total + 1) == s.lr_min && fb_lr_at(&s, 10 * s.total + 7) == s.lr_min);
    assert_true(fb_lr_at(&s, -3) == fb_lr_at(&s, 0));
    assert_true(fb_lr_at(&s, s.warmup) == s.lr);
    free(want);
    fixture_close(&f);
}

static void test_schedule(void **state) { (void)state; torch_schedule_case("schedule"); }
static void test_schedule_min(void **state) { (void)state; torch_schedule_case("schedule_min"); }
static void test_schedule_nowarmup(void **state) { (void)state; torch_schedule_case("schedule_nowarmup"); }

// ---------------------------------------------------------------- 1 vs 2 threads

// Every element-wise loop does the same operations per element on any thread count, and the norm's
// chunks depend on n alone: one and two threads must agree bit for bit. n is odd so the vector
// loops have tails, and large enough that each loop runs in parallel.
static void test_threads_bitwise(void **state) {
    (void)state;
    const size_t n = (1u << 20) + 13;
    const int steps = 3;
    float *out[2][5];
    double norms[2][3];
    for (int th = 0; th < 2; th++) {
        set_threads(th + 1);
        float *p = alloc_floats(n), *g = alloc_floats(n), *m = alloc_floats(n), *v = alloc_floats(n);
        float *sp = alloc_floats(n), *sb = alloc_floats(n);
        fill_uniform(p, n, 1, 1.0f);
        memcpy(sp, p, n * sizeof(float));
        fb_optim_config ac = fb_adamw_config(), sc = fb_sgd_config();
        sc.nesterov = 1;
        sc.weight_decay = 1e-2;
        fb_optim a, s;
        assert_int_equal(fb_optim_init(&a, &ac, p, g, m, v, n, 0), FB_OK);
        assert_int_equal(fb_optim_init(&s, &sc, sp, g, sb, NULL, n, 0), FB_OK);
        for (int t = 0; t < steps; t++) {
            fill_uniform(g, n, 10 + t, 0.5f);
            assert_int_equal(fb_optim_step(&a, 1e-3), FB_OK);
            assert_int_equal(fb_optim_step(&s, 1e-2), FB_OK);
        }
        fill_uniform(g, n, 99, 2.0f);
        norms[th][0] = fb_norm2(g, n);
        norms[th][1] = fb_norm2(g + 5, n - 100);
        assert_int_equal(fb_clip_grad_norm(g, n, 1.0, &norms[th][2]), FB_OK);
        out[th][0] = p; out[th][1] = m; out[th][2] = v; out[th][3] = sp; out[th][4] = g;
        free(sb);
    }
    set_threads(2);
    const char *what[5] = {"adamw params", "adamw m", "adamw v", "sgd params", "clipped grads"};
    for (int k = 0; k < 5; k++) {
        int same = bitwise_equal(out[0][k], out[1][k], n);
        printf("  threads 1 vs 2: %-14s %s\n", what[k], same ? "bitwise equal" : "DIFFER");
        assert_true(same);
    }
    for (int k = 0; k < 3; k++) assert_true(memcmp(&norms[0][k], &norms[1][k], sizeof(double)) == 0);
    printf("  threads 1 vs 2: norms %.17g %.17g, clip total %.17g bitwise equal\n", norms[0][0], norms[0][1],
           norms[0][2]);
    for (int th = 0; th < 2; th++) for (int k = 0; k < 5; k++) free(out[th][k]);
}

// The chunked, lane-interleaved double sum against a plain long double loop, for sizes around the
// chunk and lane boundaries (n = 1 .. many chunks), slices starting anywhere.
static void test_norm_sizes(void **state) {
    (void)state;
    const size_t sizes[] = {1, 2, 15, 16, 17, 4095, 4096, 4097, 65536 + 3, 5000000};
    float *x = alloc_floats(5000000 + 3);
    fill_uniform(x, 5000000 + 3, 7, 3.0f);
    double worst = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        const float *s = x + k % 3;
        long double ref = 0;
        for (size_t i = 0; i < sizes[k]; i++) ref += (long double)s[i] * s[i];
        double got = fb_norm2(s, sizes[k]), want = sqrtl(ref);
        worst = fmax(worst, fabs(got - want) / want);
    }
    printf("  norm: chunked double sum vs long double, n = 1 .. 5e6: max rel err %.3e (tol 1e-13)\n", worst);
    assert_true(worst <= 1e-13);
    assert_true(fb_norm2(x, 0) == 0.0 && fb_sumsq(NULL, 5) == 0.0);
    free(x);
}

// ---------------------------------------------------------------- resume from a checkpoint

// 10 steps in one go equal 4 steps, a checkpoint (params, moments, step) copied into fresh buffers,
// and 6 more steps: bit for bit, with the LR schedule driven by the restored step count.
static void resume_case(fb_optim_config cfg) {
    const size_t n = 50000;
    const int total = 10, split = 4;
    fb_lr_schedule sched;
    assert_int_equal(fb_lr_schedule_init(&sched, cfg.lr, 0.0, 3, total), FB_OK);
    float *g = alloc_floats(n);
    float *ref[3], *cur[3], *ckpt[3];
    for (int k = 0; k < 3; k++) { ref[k] = alloc_floats(n); cur[k] = alloc_floats(n); ckpt[k] = alloc_floats(n); }
    fill_uniform(ref[0], n, 3, 1.0f);
    memcpy(cur[0], ref[0], n * sizeof(float));
    int adamw = cfg.kind == FB_OPTIM_ADAMW;
    fb_optim a, b;
    assert_int_equal(fb_optim_init(&a, &cfg, ref[0], g, ref[1], adamw ? ref[2] : NULL, n, 0), FB_OK);
    for (int t = 0; t < total; t++) {
        fill_uniform(g, n, 200 + t, 1.0f);
        assert_int_equal(fb_optim_step(&a, fb_lr_at(&sched, a.step)), FB_OK);
    }
    assert_int_equal(fb_optim_init(&b, &cfg, cur[0], g, cur[1], adamw ? cur[2] : NULL, n, 0), FB_OK);
    for (int t = 0; t < split; t++) {
        fill_uniform(g, n, 200 + t, 1.0f);
        assert_int_equal(fb_optim_step(&b, fb_lr_at(&sched, b.step)), FB_OK);
    }
    // Checkpoint: the state is the three buffers and the step count. Restore into fresh buffers.
    for (int k = 0; k < 3; k++) memcpy(ckpt[k], cur[k], n * sizeof(float));
    int64_t saved_step = b.step;
    memset(&b, 0xff, sizeof b);
    for (int k = 0; k < 3; k++) { free(cur[k]); cur[k] = alloc_floats(n); memcpy(cur[k], ckpt[k], n * sizeof(float)); }
    assert_int_equal(fb_optim_init(&b, &cfg, cur[0], g, cur[1], adamw ? cur[2] : NULL, n, saved_step), FB_OK);
    for (int t = split; t < total; t++) {
        fill_uniform(g, n, 200 + t, 1.0f);
        assert_int_equal(fb_optim_step(&b, fb_lr_at(&sched, b.step)), FB_OK);
    }
    assert_int_equal(b.step, total);
    int same = 1;
    for (int k = 0; k < (adamw ? 3 : 2); k++) same &= bitwise_equal(ref[k], cur[k], n);
    printf("  resume %s: 10 steps vs 4 + checkpoint + 6: %s\n", adamw ? "adamw" : "sgd nesterov",
           same ? "bitwise equal" : "DIFFER");
    assert_true(same);
    // step = 0 means a fresh start: the moments are zeroed, whatever the buffers held.
    assert_int_equal(fb_optim_init(&b, &cfg, ckpt[0], g, ckpt[1], adamw ? ckpt[2] : NULL, n, 0), FB_OK);
    assert_true(ckpt[1][0] == 0.0f);
    free(g);
    for (int k = 0; k < 3; k++) { free(ref[k]); free(cur[k]); free(ckpt[k]); }
}

static void test_resume_adamw(void **state) {
    (void)state;
    fb_optim_config c = fb_adamw_config();
    c.lr = 1e-3;
    resume_case(c);
}

static void test_resume_sgd(void **state) {
    (void)state;
    fb_optim_config c = fb_sgd_config();
    c.nesterov = 1;
    c.weight_decay = 1e-3;
    resume_case(c);
}

// ---------------------------------------------------------------- flat layout buffers

typedef struct { float *a, *b, *c; } three;

// Moments allocated through fb_layout (a second layout with the same table): one AdamW call over
// the whole flat buffer (padding included) equals one call per tensor, bit for bit; the zero
// padding stays zero; per-tensor norms are slices of the same buffer.
static void test_layout_buffers(void **state) {
    (void)state;
    int saved = fb_layout_canaries;
    fb_layout_canaries = 0;   // the padding must hold zeros, not NaN sentinels, for a flat update
    fb_layout P, M;
    three p, g, m, v;
    fb_layout_init(&P, 2);
    fb_layout_init(&M, 2);
    const int dims[3] = {7, 33, 3000};
    const char *names[3] = {"a", "b", "c"};
    float **pf[3] = {&p.a, &p.b, &p.c}, **gf[3] = {&g.a, &g.b, &g.c};
    float **mf[3] = {&m.a, &m.b, &m.c}, **vf[3] = {&v.a, &v.b, &v.c};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(fb_layout_add(&P, "net", names[k], 1, &dims[k], FB_INIT_UNIFORM, 0.5f, pf[k], gf[k]), k);
        assert_int_equal(fb_layout_add(&M, "net", names[k], 1, &dims[k], FB_INIT_ZERO, 0.0f, mf[k], vf[k]), k);
    }
    assert_int_equal(fb_layout_alloc(&P), FB_OK);
    assert_int_equal(fb_layout_alloc(&M), FB_OK);
    fb_layout_initialize(&P, 5);
    fb_layout_initialize(&M, 5);
    assert_true(P.total > fb_layout_numel(&P));   // there is padding to cover
    for (int k = 0; k < 3; k++) fill_uniform(*gf[k], (size_t)dims[k], 40 + k, 1.0f);
    // Per-tensor copies of params/grads, updated tensor by tensor with their own moments.
    float *pc = alloc_floats(P.total), *mc = alloc_floats(P.total), *vc = alloc_floats(P.total);
    memcpy(pc, P.base[0], P.total * sizeof(float));
    fb_optim_config c = fb_adamw_config();
    fb_optim o;
    assert_int_equal(fb_optim_init(&o, &c, P.base[0], P.base[1], M.base[0], M.base[1], P.total, 0), FB_OK);
    for (int t = 1; t <= 3; t++) {
        assert_int_equal(fb_optim_step(&o, 1e-3), FB_OK);
        for (int k = 0; k < 3; k++) {
            size_t off = P.tensors[k].offset;
            assert_int_equal(fb_adamw_update(pc + off, mc + off, vc + off, P.base[1] + off, (size_t)dims[k], t,
                                             1e-3, c.beta1, c.beta2, c.eps, c.weight_decay), FB_OK);
        }
    }
    for (int k = 0; k < 3; k++) {
        size_t off = P.tensors[k].offset, nk = (size_t)dims[k];
        assert_true(bitwise_equal(P.base[0] + off, pc + off, nk));
        assert_true(bitwise_equal(M.base[0] + off, mc + off, nk));
        assert_true(bitwise_equal(M.base[1] + off, vc + off, nk));
        for (size_t i = nk; i < (k + 1 < 3 ? P.tensors[k + 1].offset : P.total) - off; i++)
            assert_true(P.base[0][off + i] == 0.0f && M.base[0][off + i] == 0.0f && M.base[1][off + i] == 0.0f);
    }
    // The global norm over the flat buffer (zero padding) is the per-tensor norms combined.
    double sum = 0;
    for (int k = 0; k < 3; k++) {
        double nk = fb_norm2(P.base[1] + P.tensors[k].offset, P.tensors[k].numel);
        sum += nk * nk;
    }
    double global = fb_norm2(P.base[1], P.total);
    printf("  layout: flat AdamW == per-tensor AdamW bitwise; padding stays 0; global norm %.12g vs "
           "per-tensor %.12g\n", global, sqrt(sum));
    assert_true(fabs(global - sqrt(sum)) <= 1e-12 * global);
    free(pc); free(mc); free(vc);
    fb_layout_free(&P);
    fb_layout_free(&M);
    fb_layout_canaries = saved;
}

// ---------------------------------------------------------------- bad arguments

static void expect(fb_status got, fb_status want, const char *needle) {
    const char *msg = fb_last_error();
    printf("  bad argument -> %s: %s\n", fb_status_name(got), msg);
    assert_int_equal(got, want);
    assert_non_null(strstr(msg, needle));
}

static void test_bad_arguments(void **state) {
    (void)state;
    float p[4] = {1, 2, 3, 4}, g[4] = {1, 1, 1, 1}, m[4] = {0}, v[4] = {0};
    const float before[4] = {1, 2, 3, 4};
    // AdamW hyper-parameters.
    expect(fb_adamw_update(p, m, v, g, 4, 1, -1e-3, 0.9, 0.999, 1e-8, 0.0), FB_ERR_CONFIG, "lr");
    expect(fb_adamw_update(p, m, v, g, 4, 1, NAN, 0.9, 0.999, 1e-8, 0.0), FB_ERR_CONFIG, "lr");
    expect(fb_adamw_update(p, m, v, g, 4, 1, 1e-3, 1.0, 0.999, 1e-8, 0.0), FB_ERR_CONFIG, "beta1");
    expect(fb_adamw_update(p, m, v, g, 4, 1, 1e-3, -0.1, 0.999, 1e-8, 0.0), FB_ERR_CONFIG, "beta1");
    expect(fb_adamw_update(p, m, v, g, 4, 1, 1e-3, 0.9, 1.5, 1e-8, 0.0), FB_ERR_CONFIG, "beta2");
    expect(fb_adamw_update(p, m, v, g, 4, 1, 1e-3, 0.9, NAN, 1e-8, 0.0), FB_ERR_CONFIG, "beta2");
    expect(fb_adamw_update(p, m, v, g, 4, 1, 1e-3, 0.9, 0.999, 0.0, 0.0), FB_ERR_CONFIG, "eps");
    expect(fb_adamw_update(p, m, v, g, 4, 1, 1e-3, 0.9, 0.999, INFINITY, 0.0), FB_ERR_CONFIG, "eps");
    expect(fb_adamw_update(p, m, v, g, 4, 1, 1e-3, 0.9, 0.999, 1e-8, -0.01), FB_ERR_CONFIG, "weight_decay");
    expect(fb_adamw_update(p, m, v, g, 4, 0, 1e-3, 0.9, 0.999, 1e-8, 0.0), FB_ERR_CONFIG, "t = 0");
    // Sizes and buffers (FB_ERR_SHAPE, as every kernel reports a zero size or a missing buffer).
    expect(fb_adamw_update(p, m, v, g, 0, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0), FB_ERR_SHAPE, "n = 0");
    expect(fb_adamw_update(p, NULL, v, g, 4, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0), FB_ERR_SHAPE, "moment");
    // SGD.
    expect(fb_sgd_update(p, m, g, 4, 1, INFINITY, 0.9, 0, 0.0), FB_ERR_CONFIG, "lr");
    expect(fb_sgd_update(p, m, g, 4, 1, 0.1, 1.0, 0, 0.0), FB_ERR_CONFIG, "momentum");
    expect(fb_sgd_update(p, m, g, 4, 1, 0.1, 0.0, 1, 0.0), FB_ERR_CONFIG, "nesterov");
    expect(fb_sgd_update(p, m, g, 4, 1, 0.1, 0.9, 0, NAN), FB_ERR_CONFIG, "weight_decay");
    expect(fb_sgd_update(p, NULL, g, 4, 1, 0.1, 0.9, 0, 0.0), FB_ERR_SHAPE, "momentum buffer");
    assert_true(memcmp(p, before, sizeof p) == 0);   // nothing was touched
    // The state struct.
    fb_optim o;
    fb_optim_config c = fb_adamw_config();
    c.eps = -1;
    expect(fb_optim_init(&o, &c, p, g, m, v, 4, 0), FB_ERR_CONFIG, "eps");
    c = fb_adamw_config();
    expect(fb_optim_init(&o, &c, p, g, m, NULL, 4, 0), FB_ERR_SHAPE, "m and v");
    expect(fb_optim_init(&o, &c, p, g, m, v, 4, -2), FB_ERR_CONFIG, "step");
    c.kind = (fb_optim_kind)7;
    expect(fb_optim_init(&o, &c, p, g, m, v, 4, 0), FB_ERR_CONFIG, "kind");
    c = fb_adamw_config();
    assert_int_equal(fb_optim_init(&o, &c, p, g, m, v, 4, 0), FB_OK);
    expect(fb_optim_step(&o, -1.0), FB_ERR_CONFIG, "lr");
    assert_int_equal(o.step, 0);   // a refused step does not count
    // Clipping and the schedule.
    double total = 0;
    expect(fb_clip_grad_norm(g, 4, -1.0, &total), FB_ERR_CONFIG, "max_norm");
    expect(fb_clip_grad_norm(g, 4, NAN, &total), FB_ERR_CONFIG, "max_norm");
    expect(fb_clip_grad_norm(g, 0, 1.0, &total), FB_ERR_SHAPE, "n = 0");
    float bad[3] = {1, NAN, 2};
    expect(fb_clip_grad_norm(bad, 3, 1.0, &total), FB_ERR_NONFINITE, "norm");
    assert_true(isnan(total) && bad[0] == 1.0f && bad[2] == 2.0f);   // left unscaled
    fb_lr_schedule s;
    expect(fb_lr_schedule_init(&s, -1.0, 0.0, 1, 10), FB_ERR_CONFIG, "lr");
    expect(fb_lr_schedule_init(&s, 1e-3, 2e-3, 1, 10), FB_ERR_CONFIG, "lr_min");
    expect(fb_lr_schedule_init(&s, 1e-3, 0.0, 11, 10), FB_ERR_CONFIG, "warmup");
    expect(fb_lr_schedule_init(&s, 1e-3, 0.0, -1, 10), FB_ERR_CONFIG, "warmup");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw_default),
        cmocka_unit_test(test_adamw_large),
        cmocka_unit_test(test_sgd_momentum),
        cmocka_unit_test(test_sgd_nesterov_wd),
        cmocka_unit_test(test_sgd_momentum_wd),
        cmocka_unit_test(test_sgd_plain_wd),
        cmocka_unit_test(test_clip_active),
        cmocka_unit_test(test_clip_inactive),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_schedule_min),
        cmocka_unit_test(test_schedule_nowarmup),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_norm_sizes),
        cmocka_unit_test(test_resume_adamw),
        cmocka_unit_test(test_resume_sgd),
        cmocka_unit_test(test_layout_buffers),
        cmocka_unit_test(test_bad_arguments),
    };
    int failed = cmocka_run_group_tests_name("optim", tests, NULL, NULL);
    printf("optim: worst update error (p_t - p_0 vs float64; float32 rounding of p bounds it) %.3e\n",
           worst_update);
    report_worst();
    return failed;
}
