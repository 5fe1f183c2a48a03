// The FLOP counter (kernels/common.h): the kernels' own counts, added at the leaves. The counter's
// delta over a leaf kernel equals its *_flops_* function exactly (linear, layernorm, activations,
// softmax, losses); over a composite it is the FLOPs of its SGEMMs and leaf kernels, a lower bound
// of its documented count: within 5% for attention (the per-head softmax is inline), and for the
// fusion methods at most flops() — at least 80% of it for concat_mlp and gated_add, printed for
// every method. Counts depend on shapes only: 1 and 2 threads count the same, and attention's
// small-head loops count what its SGEMM path counts.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/activations.h"
#include "../kernels/attention.h"
#include "../kernels/fusion/fusion.h"
#include "../kernels/layernorm.h"
#include "../kernels/linear.h"
#include "../kernels/loss.h"
#include "../kernels/softmax.h"

// The counter's increase over one statement (the tests run their kernels from one thread).
#define DELTA(stmt)                                              \
    ({                                                           \
        const long long before_ = fb_flops_read();               \
        if ((stmt) != FB_OK) fail_msg("%s: %s", #stmt, fb_last_error()); \
        fb_flops_read() - before_;                               \
    })

// A leaf kernel's delta must be its FLOP function's value, exactly.
static void expect_exact(const char *what, long long delta, double flops) {
    printf("  %-34s counted %12lld  *_flops_* %14.0f\n", what, delta, flops);
    if (delta != llround(flops)) fail_msg("%s: counted %lld FLOPs, its FLOP function says %.0f", what, delta, flops);
}

// A composite's delta: at most `flops` and at least `min_ratio` of it. Returns delta / flops.
static double expect_bound(const char *what, long long delta, double flops, double min_ratio) {
    const double ratio = (double)delta / flops;
    printf("  %-34s counted %12lld  flops() %14.0f  ratio %.4f\n", what, delta, flops, ratio);
    if ((double)delta > flops * (1.0 + 1e-12))
        fail_msg("%s: counted %lld FLOPs, more than its documented %.0f", what, delta, flops);
    if (ratio < min_ratio) fail_msg("%s: counted only %.1f%% of its documented FLOPs", what, 100.0 * ratio);
    return ratio;
}

// linear: 2·N·IC·OC from the SGEMMs (IC = 300 > the 256 K chunk: several SGEMM calls) plus the
// bias term; backward with and without dinp.
static void test_linear(void **state) {
    (void)state;
    const int N = 37, IC = 300, OC = 19;
    for (int has_bias = 0; has_bias <= 1; has_bias++) {
        fb_layout L;
        linear_params p, g;
        fb_layout_init(&L, 2);
        assert_true(linear_declare(&L, "lin", IC, OC, has_bias, &p, &g) >= 0);
        assert_int_equal(fb_layout_alloc(&L), FB_OK);
        fb_layout_initialize(&L, 3);
        float *x = alloc_floats((size_t)N * IC), *dx = alloc_floats((size_t)N * IC), *y = alloc_floats((size_t)N * OC);
        fill_uniform(x, (size_t)N * IC, 1, 1.0f);
        char what[64];
        snprintf(what, sizeof what, "linear forward (bias %d)", has_bias);
        expect_exact(what, DELTA(linear_forward(y, x, &p, N, IC, OC)), linear_flops_forward(N, IC, OC, has_bias));
        snprintf(what, sizeof what, "linear backward (bias %d)", has_bias);
        expect_exact(what, DELTA(linear_backward(dx, &g, y, x, &p, N, IC, OC)),
                     linear_flops_backward(N, IC, OC, has_bias, 1));
        snprintf(what, sizeof what, "linear backward, no dinp (bias %d)", has_bias);
        expect_exact(what, DELTA(linear_backward(NULL, &g, y, x, &p, N, IC, OC)),
                     linear_flops_backward(N, IC, OC, has_bias, 0));
        free(x); free(dx); free(y);
        fb_layout_free(&L);
    }
}

// The other leaves: layernorm, every activation, softmax, the losses.
static void test_leaf_kernels(void **state) {
    (void)state;
    const int N = 33, D = 70;
    const size_t n = (size_t)N * D;
    float *x = alloc_floats(n), *y = alloc_floats(n), *dx = alloc_floats(n), *dy = alloc_floats(n);
    float *mean = alloc_floats(N), *rstd = alloc_floats(N);
    fill_uniform(x, n, 4, 1.0f);
    fill_uniform(dy, n, 5, 1.0f);

    fb_layout L;
    layernorm_params p, g;
    fb_layout_init(&L, 2);
    assert_true(layernorm_declare(&L, "ln", D, &p, &g) >= 0);
    assert_int_equal(fb_layout_alloc(&L), FB_OK);
    fb_layout_initialize(&L, 3);
    expect_exact("layernorm forward", DELTA(layernorm_forward(y, mean, rstd, x, &p, N, D, 1e-5f)),
                 layernorm_flops_forward(N, D));
    expect_exact("layernorm backward", DELTA(layernorm_backward(dx, &g, dy, x, mean, rstd, &p, N, D)),
                 layernorm_flops_backward(N, D));
    fb_layout_free(&L);

    for (int a = 0; a < FB_ACT_COUNT; a++) {
        char what[64];
        snprintf(what, sizeof what, "activation %s forward", fb_activation_name(a));
        expect_exact(what, DELTA(activation_forward(a, y, x, n)), activation_flops_forward(a, n));
        snprintf(what, sizeof what, "activation %s backward", fb_activation_name(a));
        expect_exact(what, DELTA(activation_backward(a, dx, dy, x, y, n)), activation_flops_backward(a, n));
    }
    expect_exact("softmax forward", DELTA(softmax_forward(y, x, N, D)), softmax_flops_forward(N, D));
    expect_exact("softmax backward", DELTA(softmax_backward(dx, dy, y, N, D)), softmax_flops_backward(N, D));

    double loss;
    expect_exact("mse loss + gradient", DELTA(mse_loss(&loss, dx, x, y, n, 1.0f)), mse_loss_flops(n, 1));
    expect_exact("huber loss", DELTA(huber_loss(&loss, NULL, x, y, n, 1.0f, 1.0f)), huber_loss_flops(n, 0));
    int32_t labels[33];
    for (int i = 0; i < N; i++) labels[i] = (i * 7) % D;
    expect_exact("cross-entropy + gradient", DELTA(cross_entropy_loss(&loss, dx, x, labels, N, D, 1.0f)),
                 cross_entropy_loss_flops(N, D, 1));
    float *T = alloc_floats((size_t)N * N);
    fill_uniform(T, (size_t)N * N, 6, 0.5f);
    for (size_t i = 0; i < (size_t)N * N; i++) T[i] += 0.5f;
    expect_exact("unifrac rows [5, 20) + gradient", DELTA(unifrac_pairwise_loss(&loss, dx, x, T, N, D, 0, 5, 20, 1.0f)),
                 unifrac_pairwise_flops(N, D, 0, 5, 20, 1));
    expect_exact("unifrac all rows, loss only", DELTA(unifrac_pairwise_loss(&loss, NULL, x, T, N, D, 0, 0, N, 1.0f)),
                 unifrac_pairwise_flops(N, D, 0, 0, N, 0));
    free(x); free(y); free(dx); free(dy); free(mean); free(rstd); free(T);
}

// Multi-head attention: projections and head products counted, the inline per-head softmax not:
// within 5% of mha_flops_*. The SGEMM and the loop paths for the heads count the same.
static void test_attention(void **state) {
    (void)state;
    const int B = 4, S = 16, T = 12, D = 64, Ek = 48, Ev = 40;
    const mha_config c = {.D = D, .Ek = Ek, .Ev = Ev, .H = 4, .dropout = 0.0f};
    fb_layout P, A;
    mha_params p, g;
    mha_acts a, da;
    fb_layout_init(&P, 2);
    fb_layout_init(&A, 2);
    assert_true(mha_declare(&P, "mha", &c, &p, &g) >= 0);
    assert_true(mha_declare_acts(&A, "mha", &c, B, S, T, &a, &da) >= 0);
    assert_int_equal(fb_layout_alloc(&P), FB_OK);
    assert_int_equal(fb_layout_alloc(&A), FB_OK);
    fb_layout_initialize(&P, 7);
    const size_t nq = (size_t)B * S * D, nk = (size_t)B * T * Ek, nv = (size_t)B * T * Ev;
    float *q = alloc_floats(nq), *k = alloc_floats(nk), *v = alloc_floats(nv), *out = alloc_floats(nq);
    float *dq = alloc_floats(nq), *dk = alloc_floats(nk), *dv = alloc_floats(nv);
    fill_uniform(q, nq, 1, 1.0f);
    fill_uniform(k, nk, 2, 1.0f);
    fill_uniform(v, nv, 3, 1.0f);
    const int saved = mha_loop_work;
    long long fwd[2], bwd[2];
    for (int path = 0; path < 2; path++) {
        mha_loop_work = path ? 1 << 30 : 0;   // 0: every head product through fb_sgemm; 1: loops
        fwd[path] = DELTA(mha_forward(out, NULL, &a, q, k, v, NULL, &p, &c, B, S, T, Ek, Ev, 0, NULL));
        bwd[path] = DELTA(mha_backward(dq, dk, dv, &g, &da, out, q, k, v, &a, &p, &c, B, S, T, Ek, Ev, 0, NULL));
        printf("  attention heads through %s:\n", path ? "loops" : "SGEMM");
        expect_bound("  mha forward", fwd[path], mha_flops_forward(&c, B, S, T), 0.95);
        expect_bound("  mha backward", bwd[path], mha_flops_backward(&c, B, S, T, 1), 0.95);
    }
    mha_loop_work = saved;
    assert_true(fwd[0] == fwd[1] && bwd[0] == bwd[1]);
    free(q); free(k); free(v); free(out); free(dq); free(dk); free(dv);
    fb_layout_free(&P);
    fb_layout_free(&A);
}

typedef struct {
    fusion f;
    fb_layout P, A;
    float *a, *b, *out, *dout, *da, *db;
} fusion_run;

// Creates `m` on config c (parameters initialised, inputs filled); 0 when the method refuses it.
static int fusion_setup(fusion_run *r, const fusion_method *m, const fusion_config *c) {
    memset(r, 0, sizeof *r);
    fb_layout_init(&r->P, 2);
    fb_layout_init(&r->A, 2);
    if (fusion_create(&r->f, m, c, &r->P, &r->A) != FB_OK) {
        fb_layout_free(&r->P);
        fb_layout_free(&r->A);
        return 0;
    }
    assert_int_equal(fb_layout_alloc(&r->P), FB_OK);
    assert_int_equal(fb_layout_alloc(&r->A), FB_OK);
    fb_layout_initialize(&r->P, 99);
    const size_t na = (size_t)c->B * c->S * c->D, nb = (size_t)c->B * c->T * c->E, nout = fusion_out_size(&r->f);
    r->a = alloc_floats(na); r->da = alloc_floats(na);
    r->b = alloc_floats(nb); r->db = alloc_floats(nb);
    r->out = alloc_floats(nout); r->dout = alloc_floats(nout);
    fill_uniform(r->a, na, 5, 1.0f);
    fill_uniform(r->b, nb, 6, 1.0f);
    fill_uniform(r->dout, nout, 7, 1.0f);
    return 1;
}

static void fusion_teardown(fusion_run *r) {
    fusion_destroy(&r->f);
    fb_layout_free(&r->P);
    fb_layout_free(&r->A);
    free(r->a); free(r->b); free(r->out); free(r->dout); free(r->da); free(r->db);
}

static fusion_config config_for(const fusion_method *m) {
    fusion_config c = m->kind == FUSION_VECTOR ? fusion_default_config(32, 1, 1, 64, 64)
                                               : fusion_default_config(6, 12, 5, 64, 64);
    c.F = 128;   // small inner widths and depths keep the deep methods quick
    c.L = 8;
    c.layers = 2;
    return c;   // training, dropout 0.1: the methods' randomness is live
}

// One forward and one backward of `m`; the deltas against its flops(). min_ratio applies to both.
static void fusion_case(const fusion_method *m, double min_ratio) {
    fusion_config c = config_for(m);
    fusion_run r;
    if (!fusion_setup(&r, m, &c)) fail_msg("%s: %s", m->name, fb_last_error());
    // flops() after the call: a routed method's count follows the routes its forward took.
    char what[64];
    snprintf(what, sizeof what, "%s forward", m->name);
    const long long fwd = DELTA(fusion_forward(&r.f, r.out, r.a, r.b));
    expect_bound(what, fwd, m->flops(&r.f, 0), min_ratio);
    snprintf(what, sizeof what, "%s backward", m->name);
    const long long bwd = DELTA(fusion_backward(&r.f, r.da, r.db, r.dout, r.a, r.b));
    expect_bound(what, bwd, m->flops(&r.f, 1), min_ratio);
    fusion_teardown(&r);
}

// concat_mlp and gated_add (the multimodal and timeseries defaults): SGEMMs and leaf kernels are
// at least 80% of the documented FLOPs.
static void test_fusion_defaults(void **state) {
    (void)state;
    fusion_case(fusion_find("concat_mlp"), 0.80);
    fusion_case(fusion_find("gated_add"), 0.80);
}

// Every method: the count never exceeds its flops() (the lower-bound promise of common.h); the
// ratio is printed (low where a method's work is mostly inline elementwise loops).
static void test_fusion_every_method(void **state) {
    (void)state;
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) fusion_case(fusion_methods[i], 0.0);
}

// The count depends on shapes only: a fusion method (SGEMMs in and out of OpenMP regions, leaf
// kernels) and attention count the same on 1 and 2 threads.
static void test_threads(void **state) {
    (void)state;
    long long count[2];
    for (int t = 0; t < 2; t++) {
        set_threads(t + 1);
        const long long before = fb_flops_read();
        for (int i = 0; i < FUSION_METHOD_COUNT; i++) {
            const fusion_method *m = fusion_methods[i];
            fusion_config c = config_for(m);
            fusion_run r;
            if (!fusion_setup(&r, m, &c)) fail_msg("%s: %s", m->name, fb_last_error());
            if (fusion_forward(&r.f, r.out, r.a, r.b) != FB_OK ||
                fusion_backward(&r.f, r.da, r.db, r.dout, r.a, r.b) != FB_OK)
                fail_msg("%s: %s", m->name, fb_last_error());
            fusion_teardown(&r);
        }
        count[t] = fb_flops_read() - before;
    }
    set_threads(2);
    printf("  every method forward + backward: %lld FLOPs on 1 thread, %lld on 2\n", count[0], count[1]);
    assert_true(count[0] == count[1] && count[0] > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_leaf_kernels),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_fusion_defaults),
        cmocka_unit_test(test_fusion_every_method),
        cmocka_unit_test(test_threads),
    };
    int failed = cmocka_run_group_tests_name("flops", tests, NULL, NULL);
    report_worst();
    return failed;
}
