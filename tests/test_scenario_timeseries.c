// The timeseries scenario (harness/scenario_timeseries.c): its generator against a Python twin,
// the whole model + MSE against PyTorch (out, loss, every parameter gradient), finite differences
// through model and loss, every fitting method end to end and the refusal of the others, row
// decomposition (loss terms and forward rows), 1 vs 2 threads bitwise, canaries, and the time of a
// default step.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "testutil.h"
#include "../harness/model.h"

// Every kernel behind a dropout site (dropout, mha, ffn, encoder_layer, the fusion methods) indexes
// its draws by the global row (fb_rng_key.row0), so the dropout-on decomposition is asserted.
#define KERNELS_TAKE_ROW_OFFSET 1

typedef model_run ts_run;

static model_config small_config(const char *method, int B) {
    return (model_config){.method = method, .B = B, .D = 16, .H = 2, .layers = 1, .seq_len = 8, .pred_len = 3,
                          .features = 1, .dropout = 0.1f, .seed = 5};
}

static fb_status run_create(ts_run *r, const model_config *c) {
    return model_run_create(r, &scenario_timeseries, c, 17);
}

static model_batch batch(const ts_run *r, int training, uint32_t step) {
    return (model_batch){.B = r->B, .x = r->x, .y = r->y, .first = 0, .step = step, .training = training};
}

// Zeroed gradients, forward, loss on all rows, backward. Returns the loss.
static double run_step(ts_run *r, const model_batch *b) {
    fb_layout_zero(&r->P, 1);
    if (r->m.s->forward(&r->m, b, r->out) != FB_OK) fail_msg("forward: %s", fb_last_error());
    double terms[MODEL_MAX_TERMS] = {0};
    if (r->m.s->loss(&r->m, r->out, b->y, b->B, 0, b->B, 0, terms, r->dout) != FB_OK) fail_msg("loss: %s", fb_last_error());
    if (r->m.s->backward(&r->m, b, r->dout) != FB_OK) fail_msg("backward: %s", fb_last_error());
    return terms[0];
}

// ---------------------------------------------------------------- PyTorch and the generator twin

static const char *const fixture_cases[] = {"gated_add", "attention"};

static model_config fixture_config(const fixture *fx, char *method, size_t size) {
    fixture_string_attr(fx, "method", method, size);
    return (model_config){.method = method, .B = fixture_int(fx, "B"), .D = fixture_int(fx, "D"),
                          .H = fixture_int(fx, "H"), .layers = fixture_int(fx, "layers"),
                          .seq_len = fixture_int(fx, "seq_len"), .pred_len = fixture_int(fx, "pred_len"),
                          .features = fixture_int(fx, "features"), .dropout = 0.0f,
                          .seed = (uint64_t)fixture_int(fx, "seed")};
}

static void test_generator_twin(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof fixture_cases / sizeof *fixture_cases; k++) {
        fixture fx;
        fixture_open(&fx, "scenario_timeseries", fixture_cases[k]);
        char method[64];
        model_config c = fixture_config(&fx, method, sizeof method);
        ts_run r;
        if (run_create(&r, &c) != FB_OK) fail_msg("create: %s", fb_last_error());
        // Same libm, same order of operations: only a last-bit difference of a float cast could
        // show; the records are otherwise identical.
        check_against(&fx, "x", r.x, (size_t)r.B * r.m.in_stride, 1e-6);
        check_against(&fx, "y", r.y, (size_t)r.B * r.m.y_stride, 1e-6);
        // Deterministic in (seed, index): again, alone, and a different index differs.
        float *x2 = alloc_floats((size_t)r.m.in_stride), *y2 = alloc_floats((size_t)r.m.y_stride);
        r.m.s->sample(&r.m, 1, x2, y2);
        assert_true(bitwise_equal(x2, r.x + r.m.in_stride, (size_t)r.m.in_stride));
        assert_true(bitwise_equal(y2, r.y + r.m.y_stride, (size_t)r.m.y_stride));
        r.m.s->sample(&r.m, 12345, x2, y2);
        assert_false(bitwise_equal(y2, r.y + r.m.y_stride, (size_t)r.m.y_stride));
        free(x2); free(y2);
        fixture_close(&fx);
        model_run_destroy(&r);
    }
}

static void test_torch(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof fixture_cases / sizeof *fixture_cases; k++) {
        fixture fx;
        fixture_open(&fx, "scenario_timeseries", fixture_cases[k]);
        char method[64];
        model_config c = fixture_config(&fx, method, sizeof method);
        ts_run r;
        if (run_create(&r, &c) != FB_OK) fail_msg("create: %s", fb_last_error());
        fixture_load(&fx, "x", r.x, (size_t)r.B * r.m.in_stride);
        fixture_load(&fx, "y", r.y, (size_t)r.B * r.m.y_stride);
        char name[160];
        for (int i = 0; i < r.P.count; i++) {
            snprintf(name, sizeof name, "param/%s", r.P.tensors[i].name);
            if (!fixture_has(&fx, name)) fail_msg("%s: the PyTorch model has no parameter %s", fx.label, r.P.tensors[i].name);
            fixture_load(&fx, name, fb_layout_ptr(&r.P, 0, i), r.P.tensors[i].numel);
        }
        hid_t pg = H5Gopen2(fx.group, "param", H5P_DEFAULT);
        H5G_info_t info;
        H5Gget_info(pg, &info);
        H5Gclose(pg);
        if ((int)info.nlinks != r.P.count)
            fail_msg("%s: PyTorch has %d parameters, the C model %d", fx.label, (int)info.nlinks, r.P.count);
        model_batch b = batch(&r, 1, 3);   // training with p = 0: every dropout is the identity
        float loss = (float)run_step(&r, &b);
        check_against(&fx, "out", r.out, (size_t)r.B * r.m.out_dim, TOL_TORCH_ATTENTION);
        check_against(&fx, "loss", &loss, 1, TOL_TORCH_ATTENTION);
        for (int i = 0; i < r.P.count; i++) {
            snprintf(name, sizeof name, "grad/%s", r.P.tensors[i].name);
            check_against(&fx, name, fb_layout_ptr(&r.P, 1, i), r.P.tensors[i].numel, TOL_TORCH_ATTENTION);
        }
        fixture_close(&fx);
        model_run_destroy(&r);
    }
}

// ---------------------------------------------------------------- finite differences

typedef struct { ts_run *r; model_batch b; } fd_ctx;

static double fd_loss(void *p) {
    fd_ctx *c = p;
    if (c->r->m.s->forward(&c->r->m, &c->b, c->r->out) != FB_OK) fail_msg("forward: %s", fb_last_error());
    double terms[MODEL_MAX_TERMS] = {0};
    if (c->r->m.s->loss(&c->r->m, c->r->out, c->b.y, c->b.B, 0, c->b.B, 0, terms, NULL) != FB_OK)
        fail_msg("loss: %s", fb_last_error());
    return terms[0];
}

// One tensor of each kind: embeddings, scalar linears, LayerNorms, the calendar fusion, attention
// and FFN weights of the deep path, the celestial path, the method, the head.
static const char *const fd_tensors[] = {
    "series_embedding.weight", "calendar.dow.weight", "calendar.quarter.weight", "calendar.scalar.1.weight",
    "calendar.scalar.5.bias", "calendar.proj.weight", "calendar.norm.weight", "calendar_fusion.proj.weight",
    "calendar_fusion.norm.bias", "encoder.layers.0.self_attn.q_proj_weight", "encoder.layers.0.self_attn.v_proj_bias",
    "encoder.layers.0.linear1.weight", "encoder.layers.0.norm2.weight", "celestial.proj.weight", "celestial.nodes",
    "celestial.attn.k_proj_weight", "celestial.attn.out_proj.weight", "celestial.norm.weight", "fusion.gate.0.weight",
    "fusion.norm_b.weight", "fusion.cross_attention.v_proj_weight", "fusion.norm.weight", "head.weight", "head.bias",
};

static void fd_case(const char *method) {
    model_config c = small_config(method, 3);
    ts_run r;
    if (run_create(&r, &c) != FB_OK) fail_msg("create: %s", fb_last_error());
    // Training with dropout 0.1: the masks are pure functions of (seed, step, site, index), so the
    // loss is a smooth function of the parameters and backward must regenerate the same masks.
    fd_ctx ctx = {&r, batch(&r, 1, 9)};
    run_step(&r, &ctx.b);
    fd_var vars[sizeof fd_tensors / sizeof *fd_tensors];
    int n = 0;
    for (size_t k = 0; k < sizeof fd_tensors / sizeof *fd_tensors; k++) {
        int i = fb_layout_find(&r.P, fd_tensors[k]);
        if (i < 0) continue;   // a tensor of the other path or method
        vars[n++] = (fd_var){r.P.tensors[i].name, fb_layout_ptr(&r.P, 0, i), r.P.tensors[i].numel,
                             fb_layout_ptr(&r.P, 1, i)};
    }
    assert_true(n >= 15);
    char block[64];
    snprintf(block, sizeof block, "timeseries/%s", method);
    // Double-precision loss over float32 forwards: rounding ~1e-7 |L| / h, which for tensors with
    // small gradients (a one-element bias) needs h >= 1e-2; at h = 2e-2 the truncation error of
    // the deep, smooth (GELU) model stays ~1e-3 of the largest gradient (measured: h = 3e-3 gives
    // 2e-2 on calendar.scalar.5.bias from rounding, h = 3e-2 gives 1.4e-3 from truncation).
    fd_check(block, fd_loss, &ctx, vars, n, 2e-2f, 6, 5e-3);
    model_run_destroy(&r);
}

static void test_finite_differences(void **state) {
    (void)state;
    fd_case("gated_add");   // vector path: celestial attention + LN_c, position-wise method
    fd_case("attention");   // sequence path: the method attends to the 13 tokens
}

// ---------------------------------------------------------------- every method

static int finite_all(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

// Every parameter gradient finite (tensor by tensor: the padding holds NaN canaries).
static int finite_grads(const fb_layout *P) {
    for (int t = 0; t < P->count; t++)
        if (!finite_all(fb_layout_ptr(P, 1, t), P->tensors[t].numel)) return 0;
    return 1;
}

static void test_every_method(void **state) {
    (void)state;
    char why[256];
    int fitting = 0, refused = 0;
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) {
        const fusion_method *fm = fusion_methods[i];
        model_config c = small_config(fm->name, 2);
        ts_run r;
        if (scenario_timeseries.fits(fm, why, sizeof why) != 0) {
            refused++;
            model m;
            fb_layout P, A;
            fb_layout_init(&P, 2);
            fb_layout_init(&A, 2);
            assert_int_equal(model_create(&m, &scenario_timeseries, &c, &P, &A), FB_ERR_CONFIG);
            const char *msg = fb_last_error();
            printf("  refuse %-22s %s\n", fm->name, msg);
            assert_non_null(strstr(msg, "methods that do:"));
            assert_non_null(strstr(msg, why));
            for (int j = 0; j < FUSION_METHOD_COUNT; j++) {
                char w2[256];
                if (scenario_timeseries.fits(fusion_methods[j], w2, sizeof w2) == 0 &&
                    !strstr(msg, fusion_methods[j]->name))
                    fail_msg("refusal of %s does not list %s", fm->name, fusion_methods[j]->name);
            }
            fb_layout_free(&P);
            fb_layout_free(&A);
            continue;
        }
        fitting++;
        if (run_create(&r, &c) != FB_OK) fail_msg("%s fits but create failed: %s", fm->name, fb_last_error());
        model_batch b = batch(&r, 1, 4);
        double loss = run_step(&r, &b);
        assert_true(isfinite(loss));
        if (!finite_all(r.out, (size_t)r.B * r.m.out_dim)) fail_msg("%s: non-finite output", fm->name);
        if (!finite_grads(&r.P)) fail_msg("%s: non-finite gradient", fm->name);
        // Non-zero gradients in the deep path and the head; the celestial path and the method
        // are reported (a method may legitimately cut b off for a step: modality_dropout's batch
        // draw, a route to a only).
        const char *where[] = {"encoder.layers.0.linear1.weight", "head.weight"};
        for (size_t k = 0; k < sizeof where / sizeof *where; k++) {
            int t = fb_layout_find(&r.P, where[k]);
            assert_true(t >= 0);
            double s = 0;
            for (size_t e = 0; e < r.P.tensors[t].numel; e++) s += fabs(fb_layout_ptr(&r.P, 1, t)[e]);
            if (!(s > 0)) fail_msg("%s: zero gradient in %s", fm->name, where[k]);
        }
        double fs = 0, cs = 0;
        for (int t = 0; t < r.P.count; t++) {
            const char *tn = r.P.tensors[t].name;
            double *acc = !strncmp(tn, "fusion.", 7) ? &fs : !strncmp(tn, "celestial.", 10) ? &cs : NULL;
            for (size_t e = 0; acc && e < r.P.tensors[t].numel; e++) *acc += fabs(fb_layout_ptr(&r.P, 1, t)[e]);
        }
        printf("  method %-22s %-8s loss %.4f  |grad fusion.*| %.3e  |grad celestial.*| %.3e\n", fm->name,
               fm->kind == FUSION_VECTOR ? "vector" : "sequence", loss, fs, cs);
        model_run_destroy(&r);
    }
    printf("  %d methods fit, %d refused\n", fitting, refused);
    assert_true(fitting > 0 && refused > 0);
}

// ---------------------------------------------------------------- decomposition

// Loss terms of rows [0, k) and [k, N) sum to the whole and give the same gradient rows; a forward
// of rows [k, N) alone with first = k gives the full batch's out rows.
static void decomposition_case(const char *method, float dropout, int training, int expect_equal) {
    const int N = 6, k = 2;
    model_config c = small_config(method, N);
    c.dropout = dropout;
    ts_run r;
    if (run_create(&r, &c) != FB_OK) fail_msg("create: %s", fb_last_error());
    const int P = r.m.out_dim;
    model_batch b = batch(&r, training, 21);
    double whole[MODEL_MAX_TERMS], lo[MODEL_MAX_TERMS], hi[MODEL_MAX_TERMS];
    float *dwhole = alloc_floats((size_t)N * P), *dparts = alloc_floats((size_t)N * P);
    assert_int_equal(r.m.s->forward(&r.m, &b, r.out), FB_OK);
    assert_int_equal(r.m.s->loss(&r.m, r.out, r.y, N, 0, N, 0, whole, dwhole), FB_OK);
    assert_int_equal(r.m.s->loss(&r.m, r.out, r.y, N, 0, k, 0, lo, dparts), FB_OK);
    assert_int_equal(r.m.s->loss(&r.m, r.out, r.y, N, k, N, 0, hi, dparts + (size_t)k * P), FB_OK);
    double rel = fabs(lo[0] + hi[0] - whole[0]) / fabs(whole[0]);
    printf("  decomposition %-10s loss terms [0,%d) + [%d,%d) vs whole: rel diff %.3e, gradient rows bitwise\n", method, k,
           k, N, rel);
    assert_true(rel < 1e-12);
    assert_true(bitwise_equal(dwhole, dparts, (size_t)N * P));

    float *full = alloc_floats((size_t)N * P), *part = alloc_floats((size_t)N * P);
    memcpy(full, r.out, (size_t)N * P * sizeof(float));
    model_batch tail = {.B = N - k, .x = r.x + (size_t)k * r.m.in_stride, .y = r.y + (size_t)k * r.m.y_stride,
                        .first = (uint64_t)k, .step = 21, .training = training};
    assert_int_equal(r.m.s->forward(&r.m, &tail, part), FB_OK);
    double worst = 0;
    for (size_t i = 0; i < (size_t)(N - k) * P; i++) {
        double d = fabs((double)part[i] - full[(size_t)k * P + i]);
        if (d > worst) worst = d;
    }
    int same = bitwise_equal(part, full + (size_t)k * P, (size_t)(N - k) * P);
    printf("  decomposition %-10s forward rows [%d,%d), first=%d, dropout %.1f, training %d: max |diff| %.3e%s\n", method,
           k, N, k, (double)dropout, training, worst, same ? " (bitwise)" : "");
    if (expect_equal && !(worst <= 1e-6)) fail_msg("rows [%d, %d) alone differ from the full batch by %.3e", k, N, worst);
    // The backward of the part runs too (activations of the smaller batch).
    fb_layout_zero(&r.P, 1);
    double t2[MODEL_MAX_TERMS];
    assert_int_equal(r.m.s->loss(&r.m, part, tail.y, N - k, 0, N - k, 0, t2, r.dout), FB_OK);
    assert_int_equal(r.m.s->backward(&r.m, &tail, r.dout), FB_OK);
    assert_true(finite_grads(&r.P));
    free(dwhole); free(dparts); free(full); free(part);
    model_run_destroy(&r);
}

static void test_decomposition(void **state) {
    (void)state;
    // Rows of a smaller batch go through GEMMs of other shapes: equal to ~1 ulp, not bit for bit.
    const char *methods[] = {"gated_add", "attention"};
    for (int i = 0; i < 2; i++) {
        decomposition_case(methods[i], 0.1f, 0, 1);   // evaluation
        decomposition_case(methods[i], 0.0f, 1, 1);   // training, no dropout
        decomposition_case(methods[i], 0.1f, 1, KERNELS_TAKE_ROW_OFFSET);
    }
}

// ---------------------------------------------------------------- threads

static void test_threads_bitwise(void **state) {
    (void)state;
    float *res[2][3];
    size_t sizes[3];
    double loss[2];
    for (int method = 0; method < 2; method++) {
        const char *name = method ? "attention" : "gated_add";
        for (int t = 0; t < 2; t++) {
            set_threads(t + 1);
            model_config c = {.method = name, .B = 8, .dropout = 0.1f, .seed = 3};   // default sizes
            ts_run r;
            if (run_create(&r, &c) != FB_OK) fail_msg("create: %s", fb_last_error());
            model_batch b = batch(&r, 1, 2);
            loss[t] = run_step(&r, &b);
            float *bufs[3] = {r.out, r.dout, r.P.base[1]};
            size_t n[3] = {(size_t)r.B * r.m.out_dim, (size_t)r.B * r.m.out_dim, r.P.total};
            for (int k = 0; k < 3; k++) {
                sizes[k] = n[k];
                res[t][k] = alloc_floats(n[k]);
                memcpy(res[t][k], bufs[k], n[k] * sizeof(float));
            }
            model_run_destroy(&r);
        }
        set_threads(2);
        const char *what[3] = {"out", "dout", "parameter gradients"};
        if (memcmp(&loss[0], &loss[1], sizeof loss[0])) fail_msg("%s: loss differs between 1 and 2 threads", name);
        for (int k = 0; k < 3; k++) {
            if (!bitwise_equal(res[0][k], res[1][k], sizes[k])) fail_msg("%s: %s differ between 1 and 2 threads", name, what[k]);
            free(res[0][k]); free(res[1][k]);
        }
        printf("  threads %-12s forward, loss, backward: 1 vs 2 threads bitwise identical\n", name);
    }
}

// ---------------------------------------------------------------- bad configs, timing

static void test_bad_config(void **state) {
    (void)state;
    model m;
    fb_layout P, A;
    model_config bad[] = {
        {.method = "gated_add", .B = 2, .D = 24},            // not a multiple of 16
        {.method = "gated_add", .B = 2, .D = 32, .H = 3},    // heads do not divide D
        {.method = "gated_add", .B = 2, .dropout = 1.0f},
        {.method = "gated_add", .B = 0},
        {.method = "no_such_method", .B = 2},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fb_layout_init(&P, 2);
        fb_layout_init(&A, 2);
        assert_int_not_equal(model_create(&m, &scenario_timeseries, &bad[i], &P, &A), FB_OK);
        printf("  bad config %zu: %s\n", i, fb_last_error());
        fb_layout_free(&P);
        fb_layout_free(&A);
    }
    // A calendar id out of range is refused naming the sample.
    model_config c = small_config("gated_add", 2);
    ts_run r;
    assert_int_equal(run_create(&r, &c), FB_OK);
    r.x[r.m.in_stride + r.m.c.seq_len * r.m.c.features + 1] = 12.0f;   // sample 1, day 0, month 12
    model_batch b = batch(&r, 0, 0);
    assert_int_equal(r.m.s->forward(&r.m, &b, r.out), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "sample 1"));
    model_run_destroy(&r);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// The default model at B = 32 on one thread (reported, not asserted: shared machines are noisy).
static void test_default_step_time(void **state) {
    (void)state;
    set_threads(1);
    model_config c = {.method = "gated_add", .B = 32, .dropout = 0.1f, .seed = 1};
    ts_run r;
    assert_int_equal(run_create(&r, &c), FB_OK);
    model_batch b = batch(&r, 1, 1);
    run_step(&r, &b);
    double best = INFINITY;
    for (int it = 0; it < 5; it++) {
        double t0 = now();
        run_step(&r, &b);
        double t = now() - t0;
        if (t < best) best = t;
    }
    printf("  default timeseries (D=%d, H=%d, layers=%d, S=%d, P=%d) B=32, 1 thread: forward+loss+backward %.2f ms; "
           "%zu parameters\n", r.m.c.D, r.m.c.H, r.m.c.layers, r.m.c.seq_len, r.m.c.pred_len, 1e3 * best,
           fb_layout_numel(&r.P));
    model_run_destroy(&r);
    set_threads(2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generator_twin),
        cmocka_unit_test(test_torch),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_every_method),
        cmocka_unit_test(test_decomposition),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_default_step_time),
    };
    int failed = cmocka_run_group_tests_name("scenario_timeseries", tests, NULL, NULL);
    report_worst();
    return failed;
}
