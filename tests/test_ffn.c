// ffn: PyTorch fixtures, finite differences (gelu with dropout, relu away from its kink), 1 vs 2
// threads, row decomposition (row0, row maps), dropout semantics, bad configs, canaries.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/ffn.h"

typedef struct {
    fb_layout P, A;
    ffn_config c;
    ffn_params p, g;
    ffn_acts a, da;
    int N, training;
    fb_rng_key rng;
    float *x, *dx, *out, *probe;
} ffn_case;

static void case_setup(ffn_case *m, ffn_config c, int N) {
    memset(m, 0, sizeof *m);
    m->c = c; m->N = N;
    m->rng = (fb_rng_key){.seed = 99, .step = 4, .site = 11};
    fb_layout_canaries = 1;
    fb_layout_init(&m->P, 2);
    fb_layout_init(&m->A, 2);
    assert_true(ffn_declare(&m->P, "", &c, &m->p, &m->g) >= 0);
    assert_true(ffn_declare_acts(&m->A, "ffn", &c, N, &m->a, &m->da) >= 0);
    assert_int_equal(fb_layout_alloc(&m->P), FB_OK);
    assert_int_equal(fb_layout_alloc(&m->A), FB_OK);
    fb_layout_initialize(&m->P, 5);
    fb_layout_initialize(&m->A, 6);
    m->x = alloc_floats((size_t)N * c.D);
    m->dx = alloc_floats((size_t)N * c.D);
    m->out = alloc_floats((size_t)N * c.D);
    m->probe = alloc_floats((size_t)N * c.D);
}

static void case_teardown(ffn_case *m) {
    assert_int_equal(fb_layout_check_canaries(&m->P), 0);
    assert_int_equal(fb_layout_check_canaries(&m->A), 0);
    fb_layout_free(&m->P);
    fb_layout_free(&m->A);
    free(m->x); free(m->dx); free(m->out); free(m->probe);
}

static fb_status run_forward(ffn_case *m) {
    return ffn_forward(m->out, &m->a, m->x, &m->p, &m->c, m->N, m->training, &m->rng);
}

static fb_status run_backward(ffn_case *m) {
    return ffn_backward(m->dx, &m->g, &m->da, m->probe, m->x, &m->a, &m->p, &m->c, m->N, m->training, &m->rng);
}

static void torch_case(const char *name) {
    fixture f;
    fixture_open(&f, "ffn", name);
    ffn_config c = {fixture_int(&f, "D"), fixture_int(&f, "F"), fixture_int(&f, "gelu") ? FB_ACT_GELU : FB_ACT_RELU, 0.0f};
    ffn_case m;
    case_setup(&m, c, fixture_int(&f, "N"));
    const size_t nx = (size_t)m.N * c.D, nw = (size_t)c.D * c.F;
    fixture_load(&f, "x", m.x, nx);
    fixture_load(&f, "w1", m.p.linear1.weight, nw);
    fixture_load(&f, "b1", m.p.linear1.bias, c.F);
    fixture_load(&f, "w2", m.p.linear2.weight, nw);
    fixture_load(&f, "b2", m.p.linear2.bias, c.D);
    fixture_load(&f, "dout", m.probe, nx);
    assert_int_equal(run_forward(&m), FB_OK);
    assert_int_equal(run_backward(&m), FB_OK);
    check_against(&f, "out", m.out, nx, TOL_TORCH);
    check_against(&f, "dx", m.dx, nx, TOL_TORCH);
    check_against(&f, "dw1", m.g.linear1.weight, nw, TOL_TORCH);
    check_against(&f, "db1", m.g.linear1.bias, c.F, TOL_TORCH);
    check_against(&f, "dw2", m.g.linear2.weight, nw, TOL_TORCH);
    check_against(&f, "db2", m.g.linear2.bias, c.D, TOL_TORCH);
    fixture_close(&f);
    case_teardown(&m);
}

static void test_torch_relu(void **state) { (void)state; torch_case("relu"); }
static void test_torch_gelu(void **state) { (void)state; torch_case("gelu"); }
static void test_torch_wide_gelu(void **state) { (void)state; torch_case("wide_gelu"); }

static double ffn_loss(void *ctx) {
    ffn_case *m = ctx;
    run_forward(m);
    double s = 0;
    for (size_t i = 0; i < (size_t)m->N * m->c.D; i++) s += (double)m->probe[i] * m->out[i];
    return s;
}

static void fd_run(ffn_case *m, const char *block, float h, double tol) {
    assert_int_equal(run_forward(m), FB_OK);
    assert_int_equal(run_backward(m), FB_OK);
    const size_t nx = (size_t)m->N * m->c.D, nw = (size_t)m->c.D * m->c.F;
    fd_var vars[] = {
        {"x", m->x, nx, m->dx},
        {"w1", m->p.linear1.weight, nw, m->g.linear1.weight}, {"b1", m->p.linear1.bias, (size_t)m->c.F, m->g.linear1.bias},
        {"w2", m->p.linear2.weight, nw, m->g.linear2.weight}, {"b2", m->p.linear2.bias, (size_t)m->c.D, m->g.linear2.bias},
    };
    fd_check(block, ffn_loss, m, vars, 5, h, 40, tol);
}

// GELU makes the loss non-linear: truncation O(h²) ~1e-4 plus float32 rounding ~1e-7·|L|/h; the
// Philox dropout mask is fixed, so the loss stays smooth. 2e-3 leaves a wide margin.
static void test_fd_gelu_dropout(void **state) {
    (void)state;
    ffn_case m;
    case_setup(&m, (ffn_config){6, 10, FB_ACT_GELU, 0.3f}, 4);
    m.training = 1;
    fill_uniform(m.x, 24, 1, 1.0f);
    fill_uniform(m.probe, 24, 2, 1.0f);
    fd_run(&m, "ffn gelu p=0.3", 1e-2f, 2e-3);
    case_teardown(&m);
}

// ReLU is piecewise linear, so FD is exact up to rounding unless a step crosses the kink: the test
// asserts every pre-activation is farther from 0 than any step can move it (h·max(1, |x|, |w|)).
static void test_fd_relu_dropout(void **state) {
    (void)state;
    ffn_case m;
    case_setup(&m, (ffn_config){6, 10, FB_ACT_RELU, 0.2f}, 4);
    m.training = 1;
    fill_uniform(m.x, 24, 3, 1.0f);
    fill_uniform(m.probe, 24, 4, 1.0f);
    const float h = 1e-3f;
    assert_int_equal(run_forward(&m), FB_OK);
    float margin = INFINITY;
    for (int i = 0; i < 40; i++) margin = fminf(margin, fabsf(m.a.h[i]));
    printf("  relu: smallest |pre-activation| %.3e (steps move it at most %.1e)\n", (double)margin, 1.0 * h);
    assert_true(margin > 2.0f * h);
    fd_run(&m, "ffn relu p=0.2", h, 2e-3);
    case_teardown(&m);
}

// linear.c is thread-count independent (SGEMM split over M/N, column-blocked bias sums), and the
// activation and Philox dropout are element-wise: 1 and 2 threads must agree bit for bit.
static float *thread_run(int threads, size_t *n) {
    set_threads(threads);
    ffn_case m;
    const int N = 300;
    ffn_config c = {64, 256, FB_ACT_GELU, 0.1f};
    case_setup(&m, c, N);
    m.training = 1;
    fill_uniform(m.x, (size_t)N * c.D, 21, 1.0f);
    fill_uniform(m.probe, (size_t)N * c.D, 22, 1.0f);
    assert_int_equal(run_forward(&m), FB_OK);
    assert_int_equal(run_backward(&m), FB_OK);
    const size_t nx = (size_t)N * c.D, np = fb_layout_numel(&m.P);
    *n = 2 * nx + np;
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

static void test_threads_bitwise(void **state) {
    (void)state;
    size_t n1, n2;
    float *r1 = thread_run(1, &n1), *r2 = thread_run(2, &n2);
    assert_int_equal(n1, n2);
    assert_true(bitwise_equal(r1, r2, n1));
    free(r1); free(r2);
}

// Row decomposition in training with dropout: rows [k, N) alone with rng.row0 = k, and a gathered
// subset (row0 + a row map), give the whole call's output and input-gradient rows bit for bit; the
// tail with row0 = 0 does not. (Every part keeps at least 40 rows: OpenBLAS rounds a small product,
// rows x outputs below ~1200, differently at another row count.)
static void test_decomposition(void **state) {
    (void)state;
    const int N = 100, k = 37;
    const ffn_config c = {32, 64, FB_ACT_GELU, 0.3f};
    ffn_case w;
    case_setup(&w, c, N);
    w.training = 1;
    fill_uniform(w.x, (size_t)N * c.D, 41, 1.0f);
    fill_uniform(w.probe, (size_t)N * c.D, 42, 1.0f);
    assert_int_equal(run_forward(&w), FB_OK);
    assert_int_equal(run_backward(&w), FB_OK);
    int tail[100], map[100], gathered[100], ng = 0;
    for (int i = 0; i < N - k; i++) tail[i] = k + i;
    for (int i = 0; i + 3 < N; i++)   // row0 = 3, every row i with i % 3 != 1
        if (i % 3 != 1) { map[ng] = i; gathered[ng++] = 3 + i; }
    const struct { const char *what; const int *src; int rows; uint64_t row0; const int *map; int expect; } cases[] = {
        {"rows [37, 100), row0 = 37", tail, N - k, (uint64_t)k, NULL, 1},
        {"gathered rows, row0 = 3 + map", gathered, ng, 3, map, 1},
        {"rows [37, 100), row0 = 0 (wrong)", tail, N - k, 0, NULL, 0},
    };
    for (int q = 0; q < 3; q++) {
        const int rows = cases[q].rows, *src = cases[q].src;
        ffn_case m;
        case_setup(&m, c, rows);   // the same parameters (same layout, same init seed)
        m.training = 1;
        m.rng.row0 = cases[q].row0;
        m.rng.row_map = cases[q].map;
        gather_rows(m.x, w.x, src, rows, (size_t)c.D);
        gather_rows(m.probe, w.probe, src, rows, (size_t)c.D);
        assert_int_equal(run_forward(&m), FB_OK);
        assert_int_equal(run_backward(&m), FB_OK);
        const int dout = rows_differing(m.out, w.out, src, rows, (size_t)c.D);
        const int dmask = rows_differing(m.a.a, w.a.a, src, rows, (size_t)c.F);
        const int dgrad = rows_differing(m.dx, w.dx, src, rows, (size_t)c.D);
        printf("  decomposition ffn N=%d %-34s: %d of %d rows differ (out), %d (dropped activations), %d (dx)\n", N,
               cases[q].what, dout, rows, dmask, dgrad);
        if (cases[q].expect) assert_true(dout == 0 && dmask == 0 && dgrad == 0);
        else assert_true(dout > 0 && dmask > 0);
        case_teardown(&m);
    }
    case_teardown(&w);
}

// Training: a = act(h) / (1 - p) or 0 (Philox mask); evaluation: a = act(h) exactly.
static void test_dropout_semantics(void **state) {
    (void)state;
    ffn_case m;
    case_setup(&m, (ffn_config){8, 32, FB_ACT_RELU, 0.25f}, 16);
    fill_uniform(m.x, 128, 31, 1.0f);
    assert_int_equal(run_forward(&m), FB_OK);
    float *plain = alloc_floats(16 * 32);
    memcpy(plain, m.a.a, sizeof(float) * 16 * 32);
    for (int i = 0; i < 16 * 32; i++) assert_true(plain[i] == fmaxf(m.a.h[i], 0.0f));
    m.training = 1;
    assert_int_equal(run_forward(&m), FB_OK);
    int kept = 0, positive = 0;
    for (int i = 0; i < 16 * 32; i++) {
        if (plain[i] <= 0.0f) continue;
        positive++;
        if (m.a.a[i] != 0.0f) { kept++; assert_true(fabsf(m.a.a[i] - plain[i] / 0.75f) <= 1e-6f * plain[i]); }
    }
    printf("  dropout p=0.25 kept %d of %d positive activations\n", kept, positive);
    assert_true(kept > positive / 2 && kept < positive);
    free(plain);
    case_teardown(&m);
}

static void test_bad_config(void **state) {
    (void)state;
    ffn_config c = {0, 8, FB_ACT_RELU, 0.0f};
    assert_int_equal(ffn_check_config(&c), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "D=0"));
    c = (ffn_config){8, -2, FB_ACT_RELU, 0.0f};
    assert_int_equal(ffn_check_config(&c), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "F=-2"));
    c = (ffn_config){8, 8, FB_ACT_SIGMOID, 0.0f};
    assert_int_equal(ffn_check_config(&c), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "relu or gelu"));
    c = (ffn_config){8, 8, FB_ACT_GELU, 1.0f};
    assert_int_equal(ffn_check_config(&c), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "dropout=1"));
    c = (ffn_config){8, 8, FB_ACT_GELU, -0.5f};
    assert_int_equal(ffn_check_config(&c), FB_ERR_CONFIG);
    fb_layout L;
    ffn_params p;
    ffn_acts a;
    fb_layout_init(&L, 1);
    assert_int_equal(ffn_declare(&L, "x", &c, &p, NULL), -1);
    c.dropout = 0.1f;
    assert_int_equal(ffn_declare_acts(&L, "x", &c, 0, &a, NULL), -1);
    assert_non_null(strstr(fb_last_error(), "N=0"));
    fb_layout_free(&L);

    ffn_case m;
    case_setup(&m, (ffn_config){8, 16, FB_ACT_GELU, 0.1f}, 4);
    assert_true(fb_layout_find(&m.P, "linear1.weight") >= 0 && fb_layout_find(&m.P, "linear2.bias") >= 0);
    assert_int_equal(ffn_forward(m.out, &m.a, m.x, &m.p, &m.c, 0, 0, NULL), FB_ERR_SHAPE);
    assert_int_equal(ffn_forward(m.out, &m.a, m.x, &m.p, &m.c, 4, 1, NULL), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "rng"));
    assert_int_equal(ffn_forward(m.out, NULL, m.x, &m.p, &m.c, 4, 0, NULL), FB_ERR_SHAPE);
    assert_int_equal(ffn_backward(m.dx, &m.g, NULL, m.probe, m.x, &m.a, &m.p, &m.c, 4, 0, NULL), FB_ERR_SHAPE);
    assert_int_equal(ffn_forward(m.out, &m.a, m.x, &m.p, &m.c, 4, 0, NULL), FB_OK);
    case_teardown(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_relu),
        cmocka_unit_test(test_torch_gelu),
        cmocka_unit_test(test_torch_wide_gelu),
        cmocka_unit_test(test_fd_gelu_dropout),
        cmocka_unit_test(test_fd_relu_dropout),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_decomposition),
        cmocka_unit_test(test_dropout_semantics),
        cmocka_unit_test(test_bad_config),
    };
    int failed = cmocka_run_group_tests_name("ffn", tests, NULL, NULL);
    report_worst();
    return failed;
}
