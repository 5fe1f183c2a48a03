// attention: PyTorch fixtures (both head paths), finite differences (with dropout), 1 vs 2 threads,
// row decomposition (row0, row maps), fully masked rows, initialisation, bad configs, canaries.
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/attention.h"

typedef struct {
    fb_layout P, A;
    mha_config c;
    mha_params p, g;
    mha_acts a, da;
    int B, S, T, self_attn, training;
    fb_rng_key rng;
    float *query, *key, *value, *dquery, *dkey, *dvalue, *out, *weights, *probe;
    uint8_t *mask;   // NULL unless set
} mha_case;

static void case_setup(mha_case *m, mha_config c, int B, int S, int T, int self_attn) {
    memset(m, 0, sizeof *m);
    m->c = c; m->B = B; m->S = S; m->T = T; m->self_attn = self_attn;
    m->rng = (fb_rng_key){.seed = 1234, .step = 7, .site = 3};
    fb_layout_canaries = 1;
    fb_layout_init(&m->P, 2);
    fb_layout_init(&m->A, 2);
    assert_true(mha_declare(&m->P, "attn", &c, &m->p, &m->g) >= 0);
    assert_true(mha_declare_acts(&m->A, "attn", &c, B, S, T, &m->a, &m->da) >= 0);
    assert_int_equal(fb_layout_alloc(&m->P), FB_OK);
    assert_int_equal(fb_layout_alloc(&m->A), FB_OK);
    fb_layout_initialize(&m->P, 7);
    fb_layout_initialize(&m->A, 8);
    const size_t nq = (size_t)B * S * c.D;
    m->query = alloc_floats(nq);
    m->dquery = alloc_floats(nq);
    if (self_attn) {
        m->key = m->value = m->query;
        m->dkey = m->dvalue = m->dquery;
    } else {
        m->key = alloc_floats((size_t)B * T * c.Ek);
        m->value = alloc_floats((size_t)B * T * c.Ev);
        m->dkey = alloc_floats((size_t)B * T * c.Ek);
        m->dvalue = alloc_floats((size_t)B * T * c.Ev);
    }
    m->out = alloc_floats(nq);
    m->probe = alloc_floats(nq);
    m->weights = alloc_floats((size_t)B * S * T);
}

static void case_teardown(mha_case *m) {
    assert_int_equal(fb_layout_check_canaries(&m->P), 0);
    assert_int_equal(fb_layout_check_canaries(&m->A), 0);
    fb_layout_free(&m->P);
    fb_layout_free(&m->A);
    if (!m->self_attn) { free(m->key); free(m->value); free(m->dkey); free(m->dvalue); }
    free(m->query); free(m->dquery); free(m->out); free(m->probe); free(m->weights); free(m->mask);
}

static void random_inputs(mha_case *m, uint64_t seed) {
    fill_uniform(m->query, (size_t)m->B * m->S * m->c.D, seed, 1.0f);
    if (!m->self_attn) {
        fill_uniform(m->key, (size_t)m->B * m->T * m->c.Ek, seed + 1, 1.0f);
        fill_uniform(m->value, (size_t)m->B * m->T * m->c.Ev, seed + 2, 1.0f);
    }
    fill_uniform(m->probe, (size_t)m->B * m->S * m->c.D, seed + 3, 1.0f);
}

// Key padding mask with about a third of the keys padded, never a whole row (key b % T kept).
static void random_mask(mha_case *m, uint64_t seed) {
    float *u = alloc_floats((size_t)m->B * m->T);
    fill_uniform(u, (size_t)m->B * m->T, seed, 1.0f);
    m->mask = calloc((size_t)m->B * m->T, 1);
    for (int b = 0; b < m->B; b++)
        for (int t = 0; t < m->T; t++) m->mask[b * m->T + t] = u[b * m->T + t] < -0.33f && t != b % m->T;
    free(u);
}

static fb_status run_forward(mha_case *m) {
    return mha_forward(m->out, m->weights, &m->a, m->query, m->key, m->value, m->mask, &m->p, &m->c,
                       m->B, m->S, m->T, m->c.Ek, m->c.Ev, m->training, &m->rng);
}

static fb_status run_backward(mha_case *m) {
    return mha_backward(m->dquery, m->dkey, m->dvalue, &m->g, &m->da, m->probe, m->query, m->key, m->value,
                        &m->a, &m->p, &m->c, m->B, m->S, m->T, m->c.Ek, m->c.Ev, m->training, &m->rng);
}

// The key bias adds q·bk to every key of a query's row, a shift the softmax ignores: its gradient is
// exactly 0 (torch's float64 value is ~1e-17), so a relative error is meaningless. Ours is float32
// cancellation noise; it must be tiny on the scale of the query bias's gradient.
static void check_zero_grad(const char *what, const float *got, size_t n, const float *ref, size_t nref, double tol) {
    double mx = 0, scale = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(got[i]));
    for (size_t i = 0; i < nref; i++) scale = fmax(scale, fabs(ref[i]));
    printf("  zero  %-28s %-10s max |grad| %.3e = %.3e of the dbq scale (tol %.0e)\n", "attention", what, mx,
           scale > 0 ? mx / scale : mx, tol);
    assert_true(mx <= tol * scale);
}

// Runs one fixture case with the head products forced to SGEMM (loop_work = 0) or to loops.
static void torch_case(const char *name, int loop_work) {
    fixture f;
    fixture_open(&f, "attention", name);
    mha_config c = {fixture_int(&f, "D"), fixture_int(&f, "Ek"), fixture_int(&f, "Ev"), fixture_int(&f, "H"), 0.0f};
    mha_case m;
    case_setup(&m, c, fixture_int(&f, "B"), fixture_int(&f, "S"), fixture_int(&f, "T"), fixture_int(&f, "self_attn"));
    const int B = m.B, S = m.S, T = m.T, D = c.D;
    if (m.self_attn) {
        fixture_load(&f, "x", m.query, (size_t)B * S * D);
    } else {
        fixture_load(&f, "query", m.query, (size_t)B * S * D);
        fixture_load(&f, "key", m.key, (size_t)B * T * c.Ek);
        fixture_load(&f, "value", m.value, (size_t)B * T * c.Ev);
    }
    fixture_load(&f, "wq", m.p.wq, (size_t)D * D);
    fixture_load(&f, "wk", m.p.wk, (size_t)D * c.Ek);
    fixture_load(&f, "wv", m.p.wv, (size_t)D * c.Ev);
    fixture_load(&f, "wo", m.p.wo, (size_t)D * D);
    fixture_load(&f, "bq", m.p.bq, D);
    fixture_load(&f, "bk", m.p.bk, D);
    fixture_load(&f, "bv", m.p.bv, D);
    fixture_load(&f, "bo", m.p.bo, D);
    if (fixture_int(&f, "masked")) {
        float *mf = alloc_floats((size_t)B * T);
        fixture_load(&f, "mask", mf, (size_t)B * T);
        m.mask = calloc((size_t)B * T, 1);
        for (int i = 0; i < B * T; i++) m.mask[i] = mf[i] != 0.0f;
        free(mf);
    }
    fixture_load(&f, "dout", m.probe, (size_t)B * S * D);
    int saved = mha_loop_work;
    mha_loop_work = loop_work;
    assert_int_equal(run_forward(&m), FB_OK);
    assert_int_equal(run_backward(&m), FB_OK);
    mha_loop_work = saved;
    const double tol = TOL_TORCH_ATTENTION;
    check_against(&f, "out", m.out, (size_t)B * S * D, tol);
    check_against(&f, "weights", m.weights, (size_t)B * S * T, tol);
    if (m.self_attn) {
        check_against(&f, "dx", m.dquery, (size_t)B * S * D, tol);
    } else {
        check_against(&f, "dquery", m.dquery, (size_t)B * S * D, tol);
        check_against(&f, "dkey", m.dkey, (size_t)B * T * c.Ek, tol);
        check_against(&f, "dvalue", m.dvalue, (size_t)B * T * c.Ev, tol);
    }
    check_against(&f, "dwq", m.g.wq, (size_t)D * D, tol);
    check_against(&f, "dwk", m.g.wk, (size_t)D * c.Ek, tol);
    check_against(&f, "dwv", m.g.wv, (size_t)D * c.Ev, tol);
    check_against(&f, "dwo", m.g.wo, (size_t)D * D, tol);
    check_against(&f, "dbq", m.g.bq, D, tol);
    check_zero_grad("dbk", m.g.bk, D, m.g.bq, D, tol);
    check_against(&f, "dbv", m.g.bv, D, tol);
    check_against(&f, "dbo", m.g.bo, D, tol);
    fixture_close(&f);
    case_teardown(&m);
}

static const char *const torch_cases[] = {"self", "self_mask", "cross", "cross_nomask", "two_tokens", "large"};

static void test_torch_sgemm(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof torch_cases / sizeof *torch_cases; i++) torch_case(torch_cases[i], 0);
}

static void test_torch_loops(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof torch_cases / sizeof *torch_cases; i++) torch_case(torch_cases[i], INT_MAX);
}

static double mha_loss(void *ctx) {
    mha_case *m = ctx;
    run_forward(m);
    double s = 0;
    for (size_t i = 0; i < (size_t)m->B * m->S * m->c.D; i++) s += (double)m->probe[i] * m->out[i];
    return s;
}

// Central differences on a float32 forward: the softmax makes the loss non-linear, so the error is
// truncation O(h²) (~1e-4 relative at h = 1e-2) plus rounding ~1e-7·|L|/h (|L| ~ 10: ~1e-4);
// 3e-3 leaves a margin of ~10 while a wrong term (a missing scale, transposed head) gives O(1).
// The dropout mask is a fixed function of (seed, step, site, index), so with training = 1 the loss
// is still smooth in every input and FD applies unchanged.
static void fd_case(int self_attn, float dropout, int masked) {
    mha_config c = {8, self_attn ? 8 : 6, self_attn ? 8 : 5, 2, dropout};
    mha_case m;
    const int T = self_attn ? 3 : 4;
    case_setup(&m, c, 2, 3, T, self_attn);
    m.training = 1;
    random_inputs(&m, 41);
    if (masked) random_mask(&m, 42);
    // Non-zero biases, so their gradients are checked at a generic point.
    fill_uniform(m.p.bq, 8, 43, 0.3f); fill_uniform(m.p.bk, 8, 44, 0.3f);
    fill_uniform(m.p.bv, 8, 45, 0.3f); fill_uniform(m.p.bo, 8, 46, 0.3f);
    assert_int_equal(run_forward(&m), FB_OK);
    assert_int_equal(run_backward(&m), FB_OK);
    fd_var vars[] = {
        {"query", m.query, (size_t)2 * 3 * 8, m.dquery},
        {"key", m.key, (size_t)2 * T * c.Ek, m.dkey},
        {"value", m.value, (size_t)2 * T * c.Ev, m.dvalue},
        {"wq", m.p.wq, 64, m.g.wq}, {"wk", m.p.wk, (size_t)8 * c.Ek, m.g.wk},
        {"wv", m.p.wv, (size_t)8 * c.Ev, m.g.wv}, {"wo", m.p.wo, 64, m.g.wo},
        {"bq", m.p.bq, 8, m.g.bq}, {"bv", m.p.bv, 8, m.g.bv}, {"bo", m.p.bo, 8, m.g.bo},
    };
    check_zero_grad("dbk", m.g.bk, 8, m.g.bq, 8, 1e-5);   // bk's gradient is exactly 0 (see above)
    char block[64];
    snprintf(block, sizeof block, "attention%s%s p=%.2f", self_attn ? " self" : " cross", masked ? " mask" : "", (double)dropout);
    // Self-attention: query = key = value, so only the first of the three is a separate variable.
    if (self_attn) {
        fd_check(block, mha_loss, &m, vars, 1, 1e-2f, 48, 3e-3);
        fd_check(block, mha_loss, &m, vars + 3, 7, 1e-2f, 48, 3e-3);
    } else {
        fd_check(block, mha_loss, &m, vars, 10, 1e-2f, 48, 3e-3);
    }
    case_teardown(&m);
}

static void test_fd_cross(void **state) { (void)state; fd_case(0, 0.0f, 1); }
static void test_fd_cross_dropout(void **state) { (void)state; fd_case(0, 0.3f, 1); }
static void test_fd_self_dropout(void **state) { (void)state; fd_case(1, 0.25f, 0); }

// Runs forward + backward at `threads`, returns every output and gradient concatenated.
static float *thread_run(int threads, mha_config c, int B, int S, int T, size_t *n) {
    set_threads(threads);
    mha_case m;
    case_setup(&m, c, B, S, T, 0);
    m.training = 1;
    random_inputs(&m, 51);
    random_mask(&m, 52);
    fill_uniform(m.p.bq, c.D, 53, 0.3f);
    assert_int_equal(run_forward(&m), FB_OK);
    assert_int_equal(run_backward(&m), FB_OK);
    const size_t nq = (size_t)B * S * c.D, nk = (size_t)B * T * c.Ek, nv = (size_t)B * T * c.Ev;
    const size_t parts[] = {nq, (size_t)B * S * T, nq, nk, nv, fb_layout_numel(&m.P)};
    *n = 0;
    for (int i = 0; i < 6; i++) *n += parts[i];
    float *r = alloc_floats(*n), *w = r;
    memcpy(w, m.out, nq * sizeof(float)); w += nq;
    memcpy(w, m.weights, (size_t)B * S * T * sizeof(float)); w += (size_t)B * S * T;
    memcpy(w, m.dquery, nq * sizeof(float)); w += nq;
    memcpy(w, m.dkey, nk * sizeof(float)); w += nk;
    memcpy(w, m.dvalue, nv * sizeof(float)); w += nv;
    for (int i = 0; i < m.P.count; i++) {   // every parameter gradient
        memcpy(w, fb_layout_ptr(&m.P, 1, i), m.P.tensors[i].numel * sizeof(float));
        w += m.P.tensors[i].numel;
    }
    case_teardown(&m);
    set_threads(2);
    return r;
}

// Every (b, h) is computed by one thread with a thread-count-independent kernel, projections are
// split over M/N only (linear.c), and the averaged weights sum heads in order: 1 and 2 threads must
// agree bit for bit. Two shapes: SGEMM heads, and many 2-token heads on the loop path.
static void threads_case(mha_config c, int B, int S, int T) {
    size_t n1, n2;
    float *r1 = thread_run(1, c, B, S, T, &n1), *r2 = thread_run(2, c, B, S, T, &n2);
    assert_int_equal(n1, n2);
    size_t diff = 0;
    for (size_t i = 0; i < n1; i++) diff += memcmp(&r1[i], &r2[i], sizeof(float)) != 0;
    printf("  threads attention B=%d S=%d T=%d D=%d H=%d: %zu of %zu values differ between 1 and 2 threads\n",
           B, S, T, c.D, c.H, diff, n1);
    assert_true(bitwise_equal(r1, r2, n1));
    free(r1); free(r2);
}

static void test_threads_bitwise(void **state) {
    (void)state;
    threads_case((mha_config){64, 48, 40, 4, 0.1f}, 4, 32, 40);   // S*T*dh = 20480: SGEMM heads
    threads_case((mha_config){64, 32, 32, 4, 0.1f}, 256, 1, 2);   // 2-token heads: loops
}

// Row decomposition in training with dropout: samples [k, B) alone with rng.row0 = k, and a gathered
// subset (row0 + a row map, as the routing methods call it), give the whole batch's outputs,
// averaged weights, dropped probabilities and input gradients for those samples, bit for bit; the
// tail with row0 = 0 does not (the check notices masks indexed by the local row). Bit for bit needs
// the projections' SGEMMs to round a row the same at both row counts: OpenBLAS computes a small
// product (rows x outputs below ~1200 here) with kernels whose rounding depends on the row count,
// so every part below has at least 40 projection rows of 32 outputs.
static void decomposition_case(mha_config c, int B, int S, int T, int k) {
    mha_case w;
    case_setup(&w, c, B, S, T, 0);
    w.training = 1;
    random_inputs(&w, 81);
    random_mask(&w, 82);
    assert_int_equal(run_forward(&w), FB_OK);
    assert_int_equal(run_backward(&w), FB_OK);
    int tail[64], map[64], gathered[64], ng = 0;
    for (int i = 0; i < B - k; i++) tail[i] = k + i;
    for (int i = 0; i + 1 < B; i++)   // row0 = 1, every sample i with i % 3 != 1
        if (i % 3 != 1) { map[ng] = i; gathered[ng++] = 1 + i; }
    const struct { const char *what; const int *src; int rows; uint64_t row0; const int *map; int expect; } cases[] = {
        {"rows [k, B), row0 = k", tail, B - k, (uint64_t)k, NULL, 1},
        {"gathered rows, row0 = 1 + map", gathered, ng, 1, map, 1},
        {"rows [k, B), row0 = 0 (wrong)", tail, B - k, 0, NULL, 0},
    };
    const size_t D = c.D, SD = (size_t)S * D, ST = (size_t)S * T;
    for (int q = 0; q < 3; q++) {
        const int rows = cases[q].rows, *src = cases[q].src;
        mha_case m;
        case_setup(&m, c, rows, S, T, 0);   // the same parameters (same layout, same init seed)
        m.training = 1;
        m.rng.row0 = cases[q].row0;
        m.rng.row_map = cases[q].map;
        gather_rows(m.query, w.query, src, rows, SD);
        gather_rows(m.key, w.key, src, rows, (size_t)T * c.Ek);
        gather_rows(m.value, w.value, src, rows, (size_t)T * c.Ev);
        gather_rows(m.probe, w.probe, src, rows, SD);
        m.mask = malloc((size_t)rows * T);
        for (int i = 0; i < rows; i++) memcpy(m.mask + (size_t)i * T, w.mask + (size_t)src[i] * T, (size_t)T);
        assert_int_equal(run_forward(&m), FB_OK);
        assert_int_equal(run_backward(&m), FB_OK);
        const int dout = rows_differing(m.out, w.out, src, rows, SD) + rows_differing(m.weights, w.weights, src, rows, ST) +
                         rows_differing(m.a.attd, w.a.attd, src, rows, c.H * ST);
        const int dgrad = rows_differing(m.dquery, w.dquery, src, rows, SD) +
                          rows_differing(m.dkey, w.dkey, src, rows, (size_t)T * c.Ek) +
                          rows_differing(m.dvalue, w.dvalue, src, rows, (size_t)T * c.Ev);
        printf("  decomposition attention B=%d S=%d T=%d k=%d %-30s: %d of %d sample rows differ (out, weights, "
               "attd), %d of %d (dquery, dkey, dvalue)\n", B, S, T, k, cases[q].what, dout, 3 * rows, dgrad, 3 * rows);
        if (cases[q].expect) assert_true(dout == 0 && dgrad == 0);
        else assert_true(dout > 0);
        case_teardown(&m);
    }
    case_teardown(&w);
}

static void test_decomposition(void **state) {
    (void)state;
    decomposition_case((mha_config){32, 24, 20, 4, 0.2f}, 13, 8, 10, 5);   // S*T*dh = 640: SGEMM heads
    decomposition_case((mha_config){32, 32, 32, 4, 0.3f}, 61, 2, 2, 21);   // 2-token heads: loops
}

// A sample whose keys are all padded: weights 0, ctx 0 (so out = bo), no NaN anywhere, and no
// gradient flows into that sample's query, keys or values. torch returns NaN here.
static void test_fully_masked_row(void **state) {
    (void)state;
    mha_config c = {16, 12, 10, 4, 0.2f};
    mha_case m;
    case_setup(&m, c, 3, 4, 5, 0);
    m.training = 1;
    random_inputs(&m, 61);
    fill_uniform(m.p.bo, 16, 62, 0.5f);
    m.mask = calloc(15, 1);
    memset(m.mask + 5, 1, 5);   // sample 1: every key padded
    m.mask[0] = m.mask[13] = 1;
    assert_int_equal(run_forward(&m), FB_OK);
    assert_int_equal(run_backward(&m), FB_OK);
    for (size_t i = 0; i < 3 * 4 * 16; i++) assert_true(isfinite(m.out[i]) && isfinite(m.dquery[i]));
    for (int s = 0; s < 4; s++) {
        for (int t = 0; t < 5; t++) assert_true(m.weights[(4 + s) * 5 + t] == 0.0f);
        for (int d = 0; d < 16; d++) {
            assert_true(m.out[(4 + s) * 16 + d] == m.p.bo[d]);
            assert_true(m.dquery[(4 + s) * 16 + d] == 0.0f);
        }
    }
    for (int i = 0; i < 5 * 12; i++) assert_true(m.dkey[5 * 12 + i] == 0.0f);
    for (int i = 0; i < 5 * 10; i++) assert_true(m.dvalue[5 * 10 + i] == 0.0f);
    for (int i = 0; i < 3 * 5 * 12; i++) assert_true(isfinite(m.dkey[i]));
    for (int i = 0; i < 3 * 5 * 10; i++) assert_true(isfinite(m.dvalue[i]));
    for (int i = 0; i < m.P.count; i++)
        for (size_t j = 0; j < m.P.tensors[i].numel; j++) assert_true(isfinite(fb_layout_ptr(&m.P, 1, i)[j]));
    // The other samples' weights still sum to 1 over their keys (dropout off for this check).
    m.training = 0;
    assert_int_equal(run_forward(&m), FB_OK);
    for (int r = 0; r < 3 * 4; r++) {
        double sum = 0;
        for (int t = 0; t < 5; t++) sum += m.weights[r * 5 + t];
        assert_true(r / 4 == 1 ? sum == 0.0 : fabs(sum - 1.0) < 1e-6);
    }
    case_teardown(&m);
}

// Evaluation mode ignores dropout; training mode keeps each probability with its Philox mask:
// attd = att / (1 - p) or 0, and the returned weights average attd (as torch does when training).
static void test_dropout_semantics(void **state) {
    (void)state;
    mha_config c = {16, 16, 16, 2, 0.5f};
    mha_case m;
    case_setup(&m, c, 2, 6, 6, 1);
    random_inputs(&m, 71);
    m.training = 0;
    assert_int_equal(run_forward(&m), FB_OK);
    float *eval_out = alloc_floats(2 * 6 * 16);
    memcpy(eval_out, m.out, sizeof(float) * 2 * 6 * 16);
    mha_config c0 = c;
    c0.dropout = 0.0f;
    m.c = c0;   // same buffers, dropout 0: must be the same bits
    assert_int_equal(run_forward(&m), FB_OK);
    assert_true(bitwise_equal(eval_out, m.out, 2 * 6 * 16));
    m.c = c;
    m.training = 1;
    assert_int_equal(run_forward(&m), FB_OK);
    size_t kept = 0, n = (size_t)2 * 2 * 6 * 6;
    for (size_t i = 0; i < n; i++) {
        if (m.a.attd[i] != 0.0f) {
            kept++;
            assert_true(fabsf(m.a.attd[i] - 2.0f * m.a.att[i]) <= 1e-7f);
        }
        // dropout.h's mask: element i of the site (index ((b*H + h)*S + s)*T + t) kept iff u >= p
        assert_true((m.a.attd[i] != 0.0f) == (fb_uniform(&m.rng, i) >= 0.5f));
    }
    printf("  dropout p=0.5 kept %zu of %zu probabilities\n", kept, n);
    assert_true(kept > n / 4 && kept < 3 * n / 4);
    for (int b = 0; b < 2; b++)
        for (int s = 0; s < 6; s++)
            for (int t = 0; t < 6; t++) {
                float want = 0.5f * (m.a.attd[((b * 2 + 0) * 6 + s) * 6 + t] + m.a.attd[((b * 2 + 1) * 6 + s) * 6 + t]);
                assert_true(fabsf(m.weights[(b * 6 + s) * 6 + t] - want) <= 1e-6f);
            }
    free(eval_out);
    case_teardown(&m);
}

// torch's initialisation: xavier over the packed (3D, D) in_proj_weight when Ek = Ev = D, over each
// separate weight otherwise; out_proj U(±1/√D); biases 0.
static void check_bound(const float *w, size_t n, float bound) {
    float mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmaxf(mx, fabsf(w[i]));
    assert_true(mx <= bound && mx > 0.9f * bound);
}

static void test_init(void **state) {
    (void)state;
    for (int packed = 0; packed < 2; packed++) {
        mha_config c = {32, packed ? 32 : 16, packed ? 32 : 48, 4, 0.0f};
        fb_layout L;
        mha_params p;
        fb_layout_init(&L, 1);
        assert_true(mha_declare(&L, "", &c, &p, NULL) >= 0);
        assert_int_equal(fb_layout_alloc(&L), FB_OK);
        fb_layout_initialize(&L, 3);
        assert_true(fb_layout_find(&L, "out_proj.weight") >= 0 && fb_layout_find(&L, "q_proj_weight") >= 0);
        check_bound(p.wq, 32 * 32, packed ? sqrtf(6.0f / 128) : sqrtf(6.0f / 64));
        check_bound(p.wk, (size_t)32 * c.Ek, sqrtf(6.0f / (float)(32 + (packed ? 96 : c.Ek))));
        check_bound(p.wv, (size_t)32 * c.Ev, sqrtf(6.0f / (float)(32 + (packed ? 96 : c.Ev))));
        check_bound(p.wo, 32 * 32, 1.0f / sqrtf(32.0f));
        for (int i = 0; i < 32; i++) assert_true(p.bq[i] == 0 && p.bk[i] == 0 && p.bv[i] == 0 && p.bo[i] == 0);
        fb_layout_free(&L);
    }
}

static void test_bad_config(void **state) {
    (void)state;
    mha_config c = {64, 64, 64, 3, 0.0f};
    assert_int_equal(mha_check_config(&c), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "attention: H=3 does not divide D=64"));
    fb_layout L;
    mha_params p, g;
    mha_acts a, da;
    fb_layout_init(&L, 2);
    assert_int_equal(mha_declare(&L, "x", &c, &p, &g), -1);
    assert_int_equal(mha_declare_acts(&L, "x", &c, 2, 3, 4, &a, &da), -1);
    c = (mha_config){0, 8, 8, 2, 0.0f};
    assert_int_equal(mha_check_config(&c), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "D=0"));
    c = (mha_config){8, 8, -1, 2, 0.0f};
    assert_int_equal(mha_check_config(&c), FB_ERR_SHAPE);
    c = (mha_config){8, 8, 8, 0, 0.0f};
    assert_int_equal(mha_check_config(&c), FB_ERR_SHAPE);
    c = (mha_config){8, 8, 8, 2, 1.0f};
    assert_int_equal(mha_check_config(&c), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "dropout"));
    c = (mha_config){8, 8, 8, 2, -0.1f};
    assert_int_equal(mha_check_config(&c), FB_ERR_CONFIG);
    c = (mha_config){8, 8, 8, 2, NAN};
    assert_int_equal(mha_check_config(&c), FB_ERR_CONFIG);
    c = (mha_config){8, 8, 8, 2, 0.0f};
    assert_int_equal(mha_declare_acts(&L, "x", &c, 2, 0, 4, &a, &da), -1);
    assert_non_null(strstr(fb_last_error(), "S=0"));
    fb_layout_free(&L);

    // Calls on a valid case with wrong sizes, widths or a missing key: a status, never a crash.
    mha_case m;
    case_setup(&m, (mha_config){8, 6, 5, 2, 0.1f}, 2, 3, 4, 0);
    random_inputs(&m, 81);
    assert_int_equal(mha_forward(m.out, NULL, &m.a, m.query, m.key, m.value, NULL, &m.p, &m.c, 2, 3, 4, 7, 5, 0, NULL), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "mismatched kdim"));
    assert_int_equal(mha_forward(m.out, NULL, &m.a, m.query, m.key, m.value, NULL, &m.p, &m.c, 2, 3, 4, 6, 8, 0, NULL), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "mismatched vdim"));
    assert_int_equal(mha_backward(m.dquery, m.dkey, m.dvalue, &m.g, &m.da, m.probe, m.query, m.key, m.value,
                                  &m.a, &m.p, &m.c, 2, 3, 4, 5, 5, 0, NULL), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "mismatched kdim"));
    assert_int_equal(mha_forward(m.out, NULL, &m.a, m.query, m.key, m.value, NULL, &m.p, &m.c, 0, 3, 4, 6, 5, 0, NULL), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "B=0"));
    assert_int_equal(mha_forward(m.out, NULL, &m.a, m.query, m.key, m.value, NULL, &m.p, &m.c, 2, 3, -4, 6, 5, 0, NULL), FB_ERR_SHAPE);
    assert_int_equal(mha_forward(m.out, NULL, &m.a, m.query, m.key, m.value, NULL, &m.p, &m.c, 2, 3, 4, 6, 5, 1, NULL), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "rng"));
    assert_int_equal(mha_forward(m.out, NULL, NULL, m.query, m.key, m.value, NULL, &m.p, &m.c, 2, 3, 4, 6, 5, 0, NULL), FB_ERR_SHAPE);
    assert_int_equal(mha_forward(m.out, NULL, &m.a, m.query, NULL, m.value, NULL, &m.p, &m.c, 2, 3, 4, 6, 5, 0, NULL), FB_ERR_SHAPE);
    mha_config bad = m.c;
    bad.H = 3;
    assert_int_equal(mha_forward(m.out, NULL, &m.a, m.query, m.key, m.value, NULL, &m.p, &bad, 2, 3, 4, 6, 5, 0, NULL), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "H=3 does not divide D=8"));
    // Evaluation without an rng is fine even with dropout configured.
    assert_int_equal(mha_forward(m.out, NULL, &m.a, m.query, m.key, m.value, NULL, &m.p, &m.c, 2, 3, 4, 6, 5, 0, NULL), FB_OK);
    case_teardown(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_sgemm),
        cmocka_unit_test(test_torch_loops),
        cmocka_unit_test(test_fd_cross),
        cmocka_unit_test(test_fd_cross_dropout),
        cmocka_unit_test(test_fd_self_dropout),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_decomposition),
        cmocka_unit_test(test_fully_masked_row),
        cmocka_unit_test(test_dropout_semantics),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_bad_config),
    };
    int failed = cmocka_run_group_tests_name("attention", tests, NULL, NULL);
    report_worst();
    return failed;
}
