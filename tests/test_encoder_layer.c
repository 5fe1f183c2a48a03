// encoder_layer: PyTorch fixtures (post/pre-norm, relu/gelu, padding mask), finite differences
// with dropout, 1 vs 2 threads, row decomposition (row0), fully padded sample, bad configs, canaries.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/encoder_layer.h"

typedef struct {
    fb_layout P, A;
    encoder_layer_config c;
    encoder_layer_params p, g;
    encoder_layer_acts a, da;
    int B, S, training;
    fb_rng_key rng;
    float *x, *dx, *out, *probe;
    uint8_t *mask;
} enc_case;

static encoder_layer_config config(int D, int H, int F, fb_activation act, float dropout, int norm_first) {
    return (encoder_layer_config){.D = D, .H = H, .F = F, .activation = act, .dropout = dropout,
                                  .norm_first = norm_first, .eps = 1e-5f, .site = 20};
}

static void case_setup(enc_case *m, encoder_layer_config c, int B, int S) {
    memset(m, 0, sizeof *m);
    m->c = c; m->B = B; m->S = S;
    m->rng = (fb_rng_key){.seed = 2024, .step = 3, .site = 999};   // the site is replaced by c.site + ENC_SITE_*
    fb_layout_canaries = 1;
    fb_layout_init(&m->P, 2);
    fb_layout_init(&m->A, 2);
    assert_true(encoder_layer_declare(&m->P, "", &c, &m->p, &m->g) >= 0);
    assert_true(encoder_layer_declare_acts(&m->A, "enc", &c, B, S, &m->a, &m->da) >= 0);
    assert_int_equal(fb_layout_alloc(&m->P), FB_OK);
    assert_int_equal(fb_layout_alloc(&m->A), FB_OK);
    fb_layout_initialize(&m->P, 9);
    fb_layout_initialize(&m->A, 10);
    const size_t n = (size_t)B * S * c.D;
    m->x = alloc_floats(n);
    m->dx = alloc_floats(n);
    m->out = alloc_floats(n);
    m->probe = alloc_floats(n);
}

static void case_teardown(enc_case *m) {
    assert_int_equal(fb_layout_check_canaries(&m->P), 0);
    assert_int_equal(fb_layout_check_canaries(&m->A), 0);
    fb_layout_free(&m->P);
    fb_layout_free(&m->A);
    free(m->x); free(m->dx); free(m->out); free(m->probe); free(m->mask);
}

static fb_status run_forward(enc_case *m) {
    return encoder_layer_forward(m->out, &m->a, m->x, m->mask, &m->p, &m->c, m->B, m->S, m->training, &m->rng);
}

static fb_status run_backward(enc_case *m) {
    return encoder_layer_backward(m->dx, &m->g, &m->da, m->probe, m->x, &m->a, &m->p, &m->c, m->B, m->S,
                                  m->training, &m->rng);
}

// The fixture's tensor names and ours: (fixture name, parameter, its gradient, numel).
typedef struct { const char *name; float *p, *g; size_t n; } param_map;

static int params_of(enc_case *m, param_map *t) {
    const size_t D = m->c.D, F = m->c.F;
    mha_params *p = &m->p.self_attn, *g = &m->g.self_attn;
    param_map all[] = {
        {"wq", p->wq, g->wq, D * D}, {"wk", p->wk, g->wk, D * D}, {"wv", p->wv, g->wv, D * D},
        {"bq", p->bq, g->bq, D}, {"bk", p->bk, g->bk, D}, {"bv", p->bv, g->bv, D},
        {"wo", p->wo, g->wo, D * D}, {"bo", p->bo, g->bo, D},
        {"w1", m->p.ff.linear1.weight, m->g.ff.linear1.weight, F * D}, {"b1", m->p.ff.linear1.bias, m->g.ff.linear1.bias, F},
        {"w2", m->p.ff.linear2.weight, m->g.ff.linear2.weight, D * F}, {"b2", m->p.ff.linear2.bias, m->g.ff.linear2.bias, D},
        {"g1", m->p.norm1.weight, m->g.norm1.weight, D}, {"be1", m->p.norm1.bias, m->g.norm1.bias, D},
        {"g2", m->p.norm2.weight, m->g.norm2.weight, D}, {"be2", m->p.norm2.bias, m->g.norm2.bias, D},
    };
    memcpy(t, all, sizeof all);
    return (int)(sizeof all / sizeof *all);
}

static void torch_case(const char *name) {
    fixture f;
    fixture_open(&f, "encoder_layer", name);
    encoder_layer_config c = config(fixture_int(&f, "D"), fixture_int(&f, "H"), fixture_int(&f, "F"),
                                    fixture_int(&f, "gelu") ? FB_ACT_GELU : FB_ACT_RELU, 0.0f, fixture_int(&f, "norm_first"));
    c.eps = (float)fixture_double_attr(&f, "eps");
    enc_case m;
    case_setup(&m, c, fixture_int(&f, "B"), fixture_int(&f, "S"));
    const size_t n = (size_t)m.B * m.S * c.D;
    param_map t[16];
    int np = params_of(&m, t);
    fixture_load(&f, "x", m.x, n);
    for (int i = 0; i < np; i++) fixture_load(&f, t[i].name, t[i].p, t[i].n);
    if (fixture_int(&f, "masked")) {
        float *mf = alloc_floats((size_t)m.B * m.S);
        fixture_load(&f, "mask", mf, (size_t)m.B * m.S);
        m.mask = calloc((size_t)m.B * m.S, 1);
        for (int i = 0; i < m.B * m.S; i++) m.mask[i] = mf[i] != 0.0f;
        free(mf);
    }
    fixture_load(&f, "dout", m.probe, n);
    m.training = 1;   // dropout 0: training mode is exact, and it is the path the fixtures used
    assert_int_equal(run_forward(&m), FB_OK);
    assert_int_equal(run_backward(&m), FB_OK);
    const double tol = TOL_TORCH_ATTENTION;
    check_against(&f, "out", m.out, n, tol);
    check_against(&f, "dx", m.dx, n, tol);
    char dname[16];
    for (int i = 0; i < np; i++) {
        // The key bias never has a gradient (softmax shift invariance; see test_attention.c).
        if (strcmp(t[i].name, "bk") == 0) {
            float mx = 0;
            for (size_t j = 0; j < t[i].n; j++) mx = fmaxf(mx, fabsf(t[i].g[j]));
            printf("  zero  encoder_layer dbk max |grad| %.3e\n", (double)mx);
            assert_true(mx < 1e-5f);
            continue;
        }
        snprintf(dname, sizeof dname, "d%s", t[i].name);
        check_against(&f, dname, t[i].g, t[i].n, tol);
    }
    fixture_close(&f);
    case_teardown(&m);
}

static void test_torch_post_relu(void **state) { (void)state; torch_case("post_relu"); }
static void test_torch_post_gelu(void **state) { (void)state; torch_case("post_gelu"); }
static void test_torch_pre_gelu(void **state) { (void)state; torch_case("pre_gelu"); }
static void test_torch_post_relu_mask(void **state) { (void)state; torch_case("post_relu_mask"); }
static void test_torch_pre_gelu_mask(void **state) { (void)state; torch_case("pre_gelu_mask"); }

static double enc_loss(void *ctx) {
    enc_case *m = ctx;
    run_forward(m);
    double s = 0;
    for (size_t i = 0; i < (size_t)m->B * m->S * m->c.D; i++) s += (double)m->probe[i] * m->out[i];
    return s;
}

// GELU everywhere (ReLU's kink would need a margin check on every hidden unit), dropout 0.2 in
// training mode at all four sites, a padding mask. The error is truncation O(h²) plus float32
// rounding of the loss (~1e-7·|L|) divided by 2h; the rounding term dominates and is largest
// relative to post-norm's small wq gradient (measured 3e-3 at h = 3e-3, 8e-4 at 1e-2, 4e-4 at
// 2e-2), so h = 2e-2 and a tolerance of 3e-3; a wrong term gives O(1).
static void fd_case(int norm_first) {
    enc_case m;
    case_setup(&m, config(8, 2, 12, FB_ACT_GELU, 0.2f, norm_first), 2, 3);
    m.training = 1;
    fill_uniform(m.x, 48, 1, 1.0f);
    fill_uniform(m.probe, 48, 2, 1.0f);
    m.mask = calloc(6, 1);
    m.mask[2] = m.mask[3] = 1;
    param_map t[16];
    int np = params_of(&m, t);
    for (int i = 0; i < np; i++)   // generic point: non-trivial biases and norm affines
        if (t[i].n == 8 && strcmp(t[i].name, "g1") && strcmp(t[i].name, "g2")) fill_uniform(t[i].p, 8, 10 + i, 0.3f);
    assert_int_equal(run_forward(&m), FB_OK);
    assert_int_equal(run_backward(&m), FB_OK);
    fd_var vars[17];
    int nv = 0;
    vars[nv++] = (fd_var){"x", m.x, 48, m.dx};
    for (int i = 0; i < np; i++)
        if (strcmp(t[i].name, "bk")) vars[nv++] = (fd_var){t[i].name, t[i].p, t[i].n, t[i].g};
    fd_check(norm_first ? "encoder pre-norm p=0.2" : "encoder post-norm p=0.2", enc_loss, &m, vars, nv, 2e-2f, 32, 3e-3);
    case_teardown(&m);
}

static void test_fd_post(void **state) { (void)state; fd_case(0); }
static void test_fd_pre(void **state) { (void)state; fd_case(1); }

static float *thread_run(int threads, int norm_first, size_t *n) {
    set_threads(threads);
    enc_case m;
    const int B = 4, S = 32;
    encoder_layer_config c = config(64, 4, 128, FB_ACT_GELU, 0.1f, norm_first);
    case_setup(&m, c, B, S);
    m.training = 1;
    const size_t nx = (size_t)B * S * c.D;
    fill_uniform(m.x, nx, 21, 1.0f);
    fill_uniform(m.probe, nx, 22, 1.0f);
    m.mask = calloc((size_t)B * S, 1);
    for (int s = 20; s < S; s++) m.mask[S + s] = 1;
    assert_int_equal(run_forward(&m), FB_OK);
    assert_int_equal(run_backward(&m), FB_OK);
    *n = 2 * nx + fb_layout_numel(&m.P);
    float *r = alloc_floats(*n), *w = r;
    memcpy(w, m.out, nx * sizeof(float)); w += nx;
    memcpy(w, m.dx, nx * sizeof(float)); w += nx;
    for (int i = 0; i < m.P.count; i++) {
        memcpy(w, fb_layout_ptr(&m.P, 1, i), m.P.tensors[i].numel * sizeof(float));
        w += m.P.tensors[i].numel;
    }
    case_teardown(&m);
    set_threads(2);
    return r;
}

// Every part is thread-count independent (attention per (b, h), SGEMMs split over M/N, LayerNorm
// rows and column-blocked weight sums, element-wise dropout/activations): bit for bit.
static void test_threads_bitwise(void **state) {
    (void)state;
    for (int nf = 0; nf < 2; nf++) {
        size_t n1, n2;
        float *r1 = thread_run(1, nf, &n1), *r2 = thread_run(2, nf, &n2);
        assert_int_equal(n1, n2);
        size_t diff = 0;
        for (size_t i = 0; i < n1; i++) diff += memcmp(&r1[i], &r2[i], sizeof(float)) != 0;
        printf("  threads encoder %s-norm: %zu of %zu values differ between 1 and 2 threads\n", nf ? "pre" : "post", diff, n1);
        assert_true(bitwise_equal(r1, r2, n1));
        free(r1); free(r2);
    }
}

// Row decomposition in training with dropout: samples [k, B) alone with rng.row0 = k give the whole
// batch's output and input-gradient rows bit for bit (the attention and residual masks follow the
// sample, the FFN's the token row row0 * S + s); with row0 = 0 they differ. A row map is refused
// (the FFN's token rows could not follow it). Every part keeps 56 token rows of 32 outputs: OpenBLAS
// rounds a small product (rows x outputs below ~1200) differently at another row count.
static void test_decomposition(void **state) {
    (void)state;
    const int B = 10, S = 8, k = 3;
    for (int nf = 0; nf < 2; nf++) {
        const encoder_layer_config c = config(32, 4, 64, FB_ACT_GELU, 0.2f, nf);
        const size_t SD = (size_t)S * c.D;
        enc_case w;
        case_setup(&w, c, B, S);
        w.training = 1;
        fill_uniform(w.x, (size_t)B * SD, 51, 1.0f);
        fill_uniform(w.probe, (size_t)B * SD, 52, 1.0f);
        w.mask = calloc((size_t)B * S, 1);
        for (int b = 0; b < B; b++)
            for (int s = S - b % 3; s < S; s++) w.mask[(size_t)b * S + s] = 1;   // 0..2 padded positions
        assert_int_equal(run_forward(&w), FB_OK);
        assert_int_equal(run_backward(&w), FB_OK);
        int tail[10];
        for (int i = 0; i < B - k; i++) tail[i] = k + i;
        for (int wrong = 0; wrong < 2; wrong++) {
            enc_case m;
            case_setup(&m, c, B - k, S);   // the same parameters (same layout, same init seed)
            m.training = 1;
            m.rng.row0 = wrong ? 0 : (uint64_t)k;
            gather_rows(m.x, w.x, tail, B - k, SD);
            gather_rows(m.probe, w.probe, tail, B - k, SD);
            m.mask = malloc((size_t)(B - k) * S);
            memcpy(m.mask, w.mask + (size_t)k * S, (size_t)(B - k) * S);
            assert_int_equal(run_forward(&m), FB_OK);
            assert_int_equal(run_backward(&m), FB_OK);
            const int dout = rows_differing(m.out, w.out, tail, B - k, SD), dgrad = rows_differing(m.dx, w.dx, tail, B - k, SD);
            printf("  decomposition encoder %s-norm B=%d S=%d samples [%d, %d) with row0 = %d: %d of %d rows differ (out), "
                   "%d (dx)\n", nf ? "pre" : "post", B, S, k, B, wrong ? 0 : k, dout, B - k, dgrad);
            if (!wrong) assert_true(dout == 0 && dgrad == 0);
            else assert_true(dout > 0 && dgrad > 0);
            if (!wrong) {   // a gathered row map is refused, forward and backward
                m.rng.row_map = tail;
                assert_int_equal(run_forward(&m), FB_ERR_CONFIG);
                assert_non_null(strstr(fb_last_error(), "row map"));
                assert_int_equal(run_backward(&m), FB_ERR_CONFIG);
                m.rng.row_map = NULL;
            }
            case_teardown(&m);
        }
        case_teardown(&w);
    }
}

// A sample with every position padded: torch gives NaN; we give finite values (attention output
// bo for that sample) and finite gradients, and the other samples are unaffected.
static void test_fully_padded_sample(void **state) {
    (void)state;
    for (int nf = 0; nf < 2; nf++) {
        enc_case m;
        case_setup(&m, config(16, 4, 32, FB_ACT_RELU, 0.1f, nf), 3, 5);
        m.training = 1;
        fill_uniform(m.x, 240, 31, 1.0f);
        fill_uniform(m.probe, 240, 32, 1.0f);
        m.mask = calloc(15, 1);
        memset(m.mask + 5, 1, 5);
        assert_int_equal(run_forward(&m), FB_OK);
        assert_int_equal(run_backward(&m), FB_OK);
        for (int i = 0; i < 240; i++) assert_true(isfinite(m.out[i]) && isfinite(m.dx[i]));
        for (int i = 5 * 16; i < 10 * 16; i++) assert_true(m.a.sa[i] == m.p.self_attn.bo[i % 16]);
        for (int i = 0; i < m.P.count; i++)
            for (size_t j = 0; j < m.P.tensors[i].numel; j++) assert_true(isfinite(fb_layout_ptr(&m.P, 1, i)[j]));
        case_teardown(&m);
    }
}

// Dropout sites: training with p > 0 changes the output, evaluation with p > 0 equals p = 0, and
// the rng's own site does not matter (sites come from c.site).
static void test_dropout_sites(void **state) {
    (void)state;
    enc_case m;
    case_setup(&m, config(16, 2, 32, FB_ACT_GELU, 0.3f, 0), 2, 4);
    fill_uniform(m.x, 128, 41, 1.0f);
    float *ref = alloc_floats(128), *ref_train = alloc_floats(128);
    assert_int_equal(run_forward(&m), FB_OK);
    memcpy(ref, m.out, sizeof(float) * 128);
    m.c.dropout = 0.0f;
    assert_int_equal(run_forward(&m), FB_OK);
    assert_true(bitwise_equal(ref, m.out, 128));
    m.c.dropout = 0.3f;
    m.training = 1;
    assert_int_equal(run_forward(&m), FB_OK);
    assert_false(bitwise_equal(ref, m.out, 128));
    memcpy(ref_train, m.out, sizeof(float) * 128);
    m.rng.site = 12345;
    assert_int_equal(run_forward(&m), FB_OK);
    assert_true(bitwise_equal(ref_train, m.out, 128));
    m.c.site += ENC_LAYER_SITES;   // the next layer of a stack: other masks
    assert_int_equal(run_forward(&m), FB_OK);
    assert_false(bitwise_equal(ref_train, m.out, 128));
    m.c.site -= ENC_LAYER_SITES;
    free(ref); free(ref_train);
    case_teardown(&m);
}

static void test_names(void **state) {
    (void)state;
    enc_case m;
    case_setup(&m, config(8, 2, 16, FB_ACT_RELU, 0.0f, 0), 1, 2);
    const char *names[] = {"self_attn.q_proj_weight", "self_attn.k_proj_bias", "self_attn.out_proj.weight",
                           "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
                           "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (fb_layout_find(&m.P, names[i]) < 0) fail_msg("parameter %s not declared", names[i]);
    }
    assert_int_equal(m.P.count, 16);
    case_teardown(&m);
}

static void test_bad_config(void **state) {
    (void)state;
    encoder_layer_config c = config(64, 3, 128, FB_ACT_RELU, 0.1f, 0);
    assert_int_equal(encoder_layer_check_config(&c), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "attention: H=3 does not divide D=64"));
    c = config(64, 4, 0, FB_ACT_RELU, 0.1f, 0);
    assert_int_equal(encoder_layer_check_config(&c), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "F=0"));
    c = config(0, 4, 16, FB_ACT_RELU, 0.1f, 0);
    assert_int_equal(encoder_layer_check_config(&c), FB_ERR_SHAPE);
    c = config(64, 4, 128, FB_ACT_RELU, 1.0f, 0);
    assert_int_equal(encoder_layer_check_config(&c), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "dropout"));
    c = config(64, 4, 128, FB_ACT_TANH, 0.1f, 0);
    assert_int_equal(encoder_layer_check_config(&c), FB_ERR_CONFIG);
    c = config(64, 4, 128, FB_ACT_GELU, 0.1f, 2);
    assert_int_equal(encoder_layer_check_config(&c), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "norm_first"));
    c = config(64, 4, 128, FB_ACT_GELU, 0.1f, 0);
    c.eps = 0.0f;
    assert_int_equal(encoder_layer_check_config(&c), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "eps"));
    fb_layout L;
    encoder_layer_params p;
    fb_layout_init(&L, 1);
    c = config(64, 3, 128, FB_ACT_RELU, 0.1f, 0);
    assert_int_equal(encoder_layer_declare(&L, "", &c, &p, NULL), -1);
    fb_layout_free(&L);

    enc_case m;
    case_setup(&m, config(8, 2, 16, FB_ACT_RELU, 0.1f, 0), 2, 3);
    assert_int_equal(encoder_layer_forward(m.out, &m.a, m.x, NULL, &m.p, &m.c, 0, 3, 0, NULL), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "B=0"));
    assert_int_equal(encoder_layer_forward(m.out, &m.a, m.x, NULL, &m.p, &m.c, 2, 3, 1, NULL), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "rng"));
    assert_int_equal(encoder_layer_forward(m.x, &m.a, m.x, NULL, &m.p, &m.c, 2, 3, 0, NULL), FB_ERR_SHAPE);
    encoder_layer_config other = m.c;
    other.norm_first = 1;   // activations were declared for post-norm
    assert_int_equal(encoder_layer_forward(m.out, &m.a, m.x, NULL, &m.p, &other, 2, 3, 0, NULL), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "norm_first"));
    assert_int_equal(encoder_layer_backward(m.dx, &m.g, &m.da, m.dx, m.x, &m.a, &m.p, &m.c, 2, 3, 0, NULL), FB_ERR_SHAPE);
    assert_int_equal(encoder_layer_forward(m.out, &m.a, m.x, NULL, &m.p, &m.c, 2, 3, 0, NULL), FB_OK);
    case_teardown(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_post_relu),
        cmocka_unit_test(test_torch_post_gelu),
        cmocka_unit_test(test_torch_pre_gelu),
        cmocka_unit_test(test_torch_post_relu_mask),
        cmocka_unit_test(test_torch_pre_gelu_mask),
        cmocka_unit_test(test_fd_post),
        cmocka_unit_test(test_fd_pre),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_decomposition),
        cmocka_unit_test(test_fully_padded_sample),
        cmocka_unit_test(test_dropout_sites),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_bad_config),
    };
    int failed = cmocka_run_group_tests_name("encoder_layer", tests, NULL, NULL);
    report_worst();
    return failed;
}
