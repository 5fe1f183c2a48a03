// losses (mse, huber, cross_entropy, unifrac_pairwise): PyTorch fixtures, row decomposition of the
// UniFrac loss (partial losses sum to the whole, gradient rows bitwise), finite differences,
// accumulation, 1 vs 2 threads, bad input.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/loss.h"

// The loss value is a double; check_against takes floats (and records the worst-error table), so it
// is compared after rounding to float: that adds at most 6e-8 relative, far below TOL_TORCH.
static void check_loss(const fixture *f, const char *name, double loss) {
    float got = (float)loss;
    check_against(f, name, &got, 1, TOL_TORCH);
}

static float fixture_scalar(const fixture *f, const char *name) {
    float v;
    fixture_load(f, name, &v, 1);
    return v;
}

// ---- PyTorch fixtures. `dout` (a random scalar) is the upstream gradient: our grad_scale. ----

static void torch_pointwise(const char *name, int huber) {
    fixture f;
    fixture_open(&f, "loss", name);
    size_t n = (size_t)fixture_int(&f, "n");
    float *pred = alloc_floats(n), *target = alloc_floats(n), *dpred = alloc_floats(n);
    fixture_load(&f, "pred", pred, n);
    fixture_load(&f, "target", target, n);
    float scale = fixture_scalar(&f, "dout");
    double L;
    if (huber)
        assert_int_equal(huber_loss(&L, dpred, pred, target, n, (float)fixture_double_attr(&f, "delta"), scale), FB_OK);
    else
        assert_int_equal(mse_loss(&L, dpred, pred, target, n, scale), FB_OK);
    check_loss(&f, "out", L);
    check_against(&f, "dpred", dpred, n, TOL_TORCH);
    fixture_close(&f);
    free(pred); free(target); free(dpred);
}

static void test_torch_mse(void **state) {
    (void)state;
    torch_pointwise("mse_small", 0);
    torch_pointwise("mse_matrix", 0);
    torch_pointwise("mse_chunks", 0);
}

static void test_torch_huber(void **state) {
    (void)state;
    torch_pointwise("huber_delta1", 1);
    torch_pointwise("huber_delta_half", 1);
}

static void torch_ce(const char *name) {
    fixture f;
    fixture_open(&f, "loss", name);
    int B = fixture_int(&f, "B"), C = fixture_int(&f, "C");
    size_t nb;
    double *lab = fixture_doubles(&f, "labels", &nb);
    assert_int_equal(nb, (size_t)B);
    int32_t *labels = malloc((size_t)B * sizeof(int32_t));
    for (int b = 0; b < B; b++) labels[b] = (int32_t)lab[b];
    float *logits = alloc_floats((size_t)B * C), *dlogits = alloc_floats((size_t)B * C);
    fixture_load(&f, "logits", logits, (size_t)B * C);
    double L;
    assert_int_equal(cross_entropy_loss(&L, dlogits, logits, labels, B, C, fixture_scalar(&f, "dout")), FB_OK);
    check_loss(&f, "out", L);
    check_against(&f, "dlogits", dlogits, (size_t)B * C, TOL_TORCH);
    fixture_close(&f);
    free(lab); free(labels); free(logits); free(dlogits);
}

static void test_torch_cross_entropy(void **state) {
    (void)state;
    torch_ce("ce_small");
    torch_ce("ce_wide");
    torch_ce("ce_shifted");
    torch_ce("ce_one_class");
}

static void torch_unifrac(const char *name) {
    fixture f;
    fixture_open(&f, "loss", name);
    int N = fixture_int(&f, "N"), D = fixture_int(&f, "D"), block = fixture_int(&f, "block");
    float *e = alloc_floats((size_t)N * D), *T = alloc_floats((size_t)N * N), *de = alloc_floats((size_t)N * D);
    fixture_load(&f, "e", e, (size_t)N * D);
    fixture_load(&f, "target", T, (size_t)N * N);
    double L, lo;
    assert_int_equal(unifrac_pairwise_loss(&L, de, e, T, N, D, block, 0, N, fixture_scalar(&f, "dout")), FB_OK);
    check_loss(&f, "out", L);
    check_against(&f, "de", de, (size_t)N * D, TOL_TORCH);
    // The partial loss of rows [0, N/2), as torch computes it from the mask.
    assert_int_equal(unifrac_pairwise_loss(&lo, NULL, e, T, N, D, block, 0, N / 2, 1.0f), FB_OK);
    check_loss(&f, "loss_lo", lo);
    fixture_close(&f);
    free(e); free(T); free(de);
}

static void test_torch_unifrac(void **state) {
    (void)state;
    const char *cases[] = {"unifrac_n6_all", "unifrac_n6_block3", "unifrac_n6_block2", "unifrac_n16_all",
                           "unifrac_n16_block8", "unifrac_n16_block4"};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) torch_unifrac(cases[c]);
}

// Identical rows: the pair sits under the 1e-8 clamp and contributes no gradient (torch agrees);
// in n16_tied_block4 one tied pair is inside a block of 4 and one is masked out across blocks.
static void test_torch_unifrac_tied(void **state) {
    (void)state;
    torch_unifrac("unifrac_n6_tied");
    torch_unifrac("unifrac_n16_tied_block4");
    // The tied pair alone: its gradient is exactly zero.
    float e[2 * 3] = {0.5f, -1.0f, 2.0f, 0.5f, -1.0f, 2.0f}, T[4] = {0, 0.7f, 0.7f, 0}, de[6] = {0};
    double L;
    assert_int_equal(unifrac_pairwise_loss(&L, de, e, T, 2, 3, 0, 0, 2, 1.0f), FB_OK);
    double pred = tanh(1e-4 / 10.0);
    assert_true(fabs(L - (pred - 0.7f) * (pred - 0.7f)) < 1e-15);
    for (int i = 0; i < 6; i++) assert_true(de[i] == 0.0f);
}

// ---- Random UniFrac problems for the non-fixture tests ----

typedef struct { int N, D, block; float *e, *T, *de; } uf_case;

// e in [-scale, scale]; T symmetric in [0, 1] with a zero diagonal (like a UniFrac matrix).
static void uf_setup(uf_case *c, int N, int D, int block, uint64_t seed, float scale) {
    c->N = N; c->D = D; c->block = block;
    c->e = alloc_floats((size_t)N * D);
    c->T = alloc_floats((size_t)N * N);
    c->de = alloc_floats((size_t)N * D);
    fill_uniform(c->e, (size_t)N * D, seed, scale);
    float *u = alloc_floats((size_t)N * N);
    fill_uniform(u, (size_t)N * N, seed + 1, 1.0f);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            c->T[(size_t)i * N + j] = i == j ? 0.0f : 0.5f + 0.25f * (u[(size_t)i * N + j] + u[(size_t)j * N + i]);
    free(u);
}

static void uf_teardown(uf_case *c) { free(c->e); free(c->T); free(c->de); }

// ---- Decomposition: what makes R ranks on a global batch give the 1-rank result ----

#define CANARY 12345.0f

// Splits [0, N) at `cuts` (nparts ranges); the partial losses must sum to the whole-batch loss and
// every range's gradient rows (in a buffer of just those rows, canaries after it) must be bitwise
// the whole-batch rows.
static void check_split(const uf_case *c, const int *cuts, int nparts, double whole, const float *de_whole) {
    int N = c->N, D = c->D;
    double sum = 0;
    for (int p = 0; p < nparts; p++) {
        int r0 = cuts[p], r1 = cuts[p + 1];
        size_t nr = (size_t)(r1 - r0) * D;
        float *rows = alloc_floats(nr + 8);
        for (int k = 0; k < 8; k++) rows[nr + k] = CANARY;
        double part;
        assert_int_equal(unifrac_pairwise_loss(&part, rows, c->e, c->T, N, D, c->block, r0, r1, 1.0f), FB_OK);
        sum += part;
        assert_true(bitwise_equal(rows, de_whole + (size_t)r0 * D, nr));
        for (int k = 0; k < 8; k++) assert_true(rows[nr + k] == CANARY);
        free(rows);
    }
    double rel = fabs(sum - whole) / fabs(whole);
    printf("  split N=%d block=%-2d into %d ranges: |Σ partial - whole| / whole = %.2e, gradient rows bitwise\n",
           N, c->block, nparts, rel);
    assert_true(rel <= 1e-6);
}

static void test_unifrac_decomposition(void **state) {
    (void)state;
    const int N = 48, D = 19;
    const int blocks[] = {0, 24, 12, 6};
    for (size_t b = 0; b < sizeof blocks / sizeof *blocks; b++) {
        uf_case c;
        uf_setup(&c, N, D, blocks[b], 301 + b, 2.0f);
        double whole;
        assert_int_equal(unifrac_pairwise_loss(&whole, c.de, c.e, c.T, N, D, c.block, 0, N, 1.0f), FB_OK);
        int one[] = {0, N}, two[] = {0, N / 2, N}, four[] = {0, N / 4, N / 2, 3 * N / 4, N};
        int uneven[] = {0, 5, 5, 29, 47, N};  // an empty range and ranges crossing blocks
        check_split(&c, one, 1, whole, c.de);
        check_split(&c, two, 2, whole, c.de);
        check_split(&c, four, 4, whole, c.de);
        check_split(&c, uneven, 5, whole, c.de);
        uf_teardown(&c);
    }
}

// block = N (DDP --pairs local on one rank's whole batch) is block 0, bit for bit. The FSDP
// "blockdiag" path (block k = per-rank batch over the R·k gathered rows) has loss = mean over ranks
// of the local losses, and its gradient times R (the harness's grad_scale) is each rank's local
// gradient — equal up to rounding (the 1/P factor differs).
static void test_unifrac_scopes(void **state) {
    (void)state;
    const int R = 4, k = 10, N = R * k, D = 12;
    uf_case c;
    uf_setup(&c, N, D, 0, 401, 2.0f);
    float *de_n = alloc_floats((size_t)N * D), *de_bd = alloc_floats((size_t)N * D), *de_loc = alloc_floats((size_t)N * D);
    double L0, LN, Lbd, mean_local = 0;
    assert_int_equal(unifrac_pairwise_loss(&L0, c.de, c.e, c.T, N, D, 0, 0, N, 1.0f), FB_OK);
    assert_int_equal(unifrac_pairwise_loss(&LN, de_n, c.e, c.T, N, D, N, 0, N, 1.0f), FB_OK);
    assert_true(memcmp(&L0, &LN, sizeof L0) == 0);
    assert_true(bitwise_equal(c.de, de_n, (size_t)N * D));
    assert_int_equal(unifrac_pairwise_loss(&Lbd, de_bd, c.e, c.T, N, D, k, 0, N, (float)R), FB_OK);
    float *Tr = alloc_floats((size_t)k * k);
    for (int r = 0; r < R; r++) {  // rank r alone: its k rows and their k x k target
        for (int i = 0; i < k; i++)
            memcpy(Tr + (size_t)i * k, c.T + (size_t)(r * k + i) * N + r * k, (size_t)k * sizeof(float));
        double Lr;
        assert_int_equal(unifrac_pairwise_loss(&Lr, de_loc + (size_t)r * k * D, c.e + (size_t)r * k * D, Tr,
                                               k, D, 0, 0, k, 1.0f), FB_OK);
        mean_local += Lr / R;
    }
    double gerr = 0, gmax = 0;
    for (size_t i = 0; i < (size_t)N * D; i++) {
        gerr = fmax(gerr, fabs(de_bd[i] - de_loc[i]));
        gmax = fmax(gmax, fabs(de_loc[i]));
    }
    printf("  blockdiag k=%d over %d ranks: loss vs mean of local %.2e rel, R x grad vs local grad %.2e rel\n",
           k, R, fabs(Lbd - mean_local) / mean_local, gerr / gmax);
    assert_true(fabs(Lbd - mean_local) <= 1e-12 * mean_local);
    assert_true(gerr <= 1e-6 * gmax);
    assert_int_equal(unifrac_pair_count(N, 0), N * (N - 1) / 2);
    assert_int_equal(unifrac_pair_count(N, k), R * k * (k - 1) / 2);
    free(Tr); free(de_n); free(de_bd); free(de_loc);
    uf_teardown(&c);
}

// ---- Finite differences ----
//
// Inputs are rounded to multiples of 2^-12 and the step is h = 2^-10, so x ± h is exact in float32
// and the loss (summed in double) is evaluated at exactly the intended points. What remains is the
// central-difference truncation h²/6 · f''' (zero for MSE, and for Huber away from its kink |r| =
// delta, which the data avoid) and the float32 rounding of the analytic gradient (~1e-7 relative):
// tolerance 1e-6 relative to max |grad| (observed <= 1e-7). A UniFrac pair of identical rows is an
// even function of the step (d = |h|), so its central difference is exactly the kernel's zero
// gradient.

#define FD_H 0x1p-10f
#define FD_TOL 1e-6

static void quantize(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = ldexpf(nearbyintf(ldexpf(x[i], 12)), -12);
}

typedef struct { int kind; float *pred, *target; size_t n; float delta; int32_t *labels; int B, C; uf_case *uf; } fd_ctx;

static double fd_loss(void *ctx) {
    fd_ctx *c = ctx;
    double L = NAN;
    fb_status s = FB_ERR_INTERNAL;
    switch (c->kind) {
        case 0: s = mse_loss(&L, NULL, c->pred, c->target, c->n, 1.0f); break;
        case 1: s = huber_loss(&L, NULL, c->pred, c->target, c->n, c->delta, 1.0f); break;
        case 2: s = cross_entropy_loss(&L, NULL, c->pred, c->labels, c->B, c->C, 1.0f); break;
        default: s = unifrac_pairwise_loss(&L, NULL, c->uf->e, c->uf->T, c->uf->N, c->uf->D, c->uf->block, 0,
                                           c->uf->N, 1.0f);
    }
    assert_int_equal(s, FB_OK);
    return L;
}

static void test_fd_pointwise(void **state) {
    (void)state;
    enum { n = 40 };
    float pred[n], target[n], grad[n];
    fill_uniform(pred, n, 501, 2.5f);
    fill_uniform(target, n, 502, 1.0f);
    quantize(pred, n);
    quantize(target, n);
    const float deltas[] = {1.0f, 0.5f};
    for (int d = 0; d < 2; d++)  // keep every residual at least 4h away from the Huber kink
        for (int i = 0; i < n; i++) {
            float r = pred[i] - target[i];
            if (fabsf(fabsf(r) - deltas[d]) < 4 * FD_H) pred[i] += copysignf(8 * FD_H, r);
        }
    fd_ctx c = {.pred = pred, .target = target, .n = n};
    memset(grad, 0, sizeof grad);
    double L;
    assert_int_equal(mse_loss(&L, grad, pred, target, n, 1.0f), FB_OK);
    fd_check("mse", fd_loss, &c, &(fd_var){"pred", pred, n, grad}, 1, FD_H, n, FD_TOL);
    c.kind = 1;
    for (int d = 0; d < 2; d++) {
        c.delta = deltas[d];
        memset(grad, 0, sizeof grad);
        assert_int_equal(huber_loss(&L, grad, pred, target, n, c.delta, 1.0f), FB_OK);
        fd_check(d ? "huber delta 0.5" : "huber delta 1", fd_loss, &c, &(fd_var){"pred", pred, n, grad}, 1, FD_H, n,
                 FD_TOL);
    }
}

static void test_fd_cross_entropy(void **state) {
    (void)state;
    enum { B = 5, C = 7 };
    float logits[B * C], grad[B * C] = {0};
    int32_t labels[B] = {3, 0, 6, 6, 2};
    fill_uniform(logits, B * C, 511, 3.0f);
    quantize(logits, B * C);
    fd_ctx c = {.kind = 2, .pred = logits, .labels = labels, .B = B, .C = C};
    double L;
    assert_int_equal(cross_entropy_loss(&L, grad, logits, labels, B, C, 1.0f), FB_OK);
    fd_check("cross_entropy", fd_loss, &c, &(fd_var){"logits", logits, B * C, grad}, 1, FD_H, B * C, FD_TOL);
}

static void fd_unifrac(const char *label, int N, int D, int block, int tie) {
    uf_case u;
    uf_setup(&u, N, D, block, 521 + N + block, 2.0f);
    if (tie) memcpy(u.e + (size_t)tie * D, u.e, (size_t)D * sizeof(float));  // row `tie` = row 0
    quantize(u.e, (size_t)N * D);
    double L;
    assert_int_equal(unifrac_pairwise_loss(&L, u.de, u.e, u.T, N, D, block, 0, N, 1.0f), FB_OK);
    fd_ctx c = {.kind = 3, .uf = &u};
    fd_check(label, fd_loss, &c, &(fd_var){"e", u.e, (size_t)N * D, u.de}, 1, FD_H, N * D, FD_TOL);
    uf_teardown(&u);
}

static void test_fd_unifrac(void **state) {
    (void)state;
    fd_unifrac("unifrac N=6 D=5 all", 6, 5, 0, 0);
    fd_unifrac("unifrac N=10 D=11 block 5", 10, 11, 5, 0);
    fd_unifrac("unifrac N=6 D=8 tied rows", 6, 8, 0, 3);
    fd_unifrac("unifrac N=8 D=3 block 4 tied", 8, 3, 4, 2);
}

// ---- Accumulation: a second call adds the same gradient again (x + x = 2x exactly) ----

static void test_accumulates(void **state) {
    (void)state;
    uf_case u;
    uf_setup(&u, 9, 6, 3, 601, 2.0f);
    float once[9 * 6];
    assert_int_equal(unifrac_pairwise_loss(NULL, u.de, u.e, u.T, 9, 6, 3, 0, 9, 0.5f), FB_OK);
    memcpy(once, u.de, sizeof once);
    assert_int_equal(unifrac_pairwise_loss(NULL, u.de, u.e, u.T, 9, 6, 3, 0, 9, 0.5f), FB_OK);
    for (int i = 0; i < 9 * 6; i++) assert_true(u.de[i] == 2.0f * once[i]);
    float g[54] = {0}, g1[54];
    assert_int_equal(mse_loss(NULL, g, u.e, u.e + 1, 53, 1.0f), FB_OK);
    memcpy(g1, g, sizeof g);
    assert_int_equal(mse_loss(NULL, g, u.e, u.e + 1, 53, 1.0f), FB_OK);
    for (int i = 0; i < 53; i++) assert_true(g[i] == 2.0f * g1[i]);
    memset(g, 0, sizeof g);
    assert_int_equal(huber_loss(NULL, g, u.e, u.e + 1, 53, 1.0f, 1.0f), FB_OK);
    memcpy(g1, g, sizeof g);
    assert_int_equal(huber_loss(NULL, g, u.e, u.e + 1, 53, 1.0f, 1.0f), FB_OK);
    for (int i = 0; i < 53; i++) assert_true(g[i] == 2.0f * g1[i]);
    int32_t lab[6] = {0, 1, 2, 3, 4, 5};
    memset(g, 0, sizeof g);
    assert_int_equal(cross_entropy_loss(NULL, g, u.e, lab, 6, 9, 1.0f), FB_OK);
    memcpy(g1, g, sizeof g);
    assert_int_equal(cross_entropy_loss(NULL, g, u.e, lab, 6, 9, 1.0f), FB_OK);
    for (int i = 0; i < 54; i++) assert_true(g[i] == 2.0f * g1[i]);
    uf_teardown(&u);
}

// ---- 1 vs 2 threads: every sum has a fixed order (chunks / rows), so the bits must agree ----

static void test_threads_bitwise(void **state) {
    (void)state;
    const int N = 256, D = 64, B = 256, C = 1000;
    const size_t n = 100000;
    double loss[2][6];
    float *grad[2][6];
    for (int t = 0; t < 2; t++) {
        set_threads(t + 1);
        for (int b = 0; b < 2; b++) {
            uf_case u;
            uf_setup(&u, N, D, b ? 64 : 0, 701, 2.0f);
            assert_int_equal(unifrac_pairwise_loss(&loss[t][b], u.de, u.e, u.T, N, D, u.block, 0, N, 1.0f), FB_OK);
            grad[t][b] = u.de; u.de = NULL;
            uf_teardown(&u);
        }
        float *pred = alloc_floats((size_t)B * C), *target = alloc_floats(n);  // pred doubles as the logits
        fill_uniform(pred, (size_t)B * C, 711, 2.0f);
        fill_uniform(target, n, 712, 1.0f);
        grad[t][2] = alloc_floats(n);
        grad[t][3] = alloc_floats(n);
        assert_int_equal(mse_loss(&loss[t][2], grad[t][2], pred, target, n, 1.0f), FB_OK);
        assert_int_equal(huber_loss(&loss[t][3], grad[t][3], pred, target, n, 1.0f, 1.0f), FB_OK);
        int32_t *lab = malloc(B * sizeof(int32_t));
        for (int b = 0; b < B; b++) lab[b] = (b * 37) % C;
        grad[t][4] = alloc_floats((size_t)B * C);
        assert_int_equal(cross_entropy_loss(&loss[t][4], grad[t][4], pred, lab, B, C, 1.0f), FB_OK);
        // Partial rows in parallel too (rows 100..200 of the global-pairs case).
        uf_case u;
        uf_setup(&u, N, D, 0, 701, 2.0f);
        assert_int_equal(unifrac_pairwise_loss(&loss[t][5], u.de, u.e, u.T, N, D, 0, 100, 200, 1.0f), FB_OK);
        grad[t][5] = u.de; u.de = NULL;
        uf_teardown(&u);
        free(pred); free(target); free(lab);
    }
    set_threads(2);
    const size_t sizes[6] = {(size_t)N * D, (size_t)N * D, n, n, (size_t)B * C, (size_t)100 * D};
    for (int k = 0; k < 6; k++) {
        assert_true(memcmp(&loss[0][k], &loss[1][k], sizeof(double)) == 0);
        assert_true(bitwise_equal(grad[0][k], grad[1][k], sizes[k]));
        free(grad[0][k]); free(grad[1][k]);
    }
}

// ---- Bad input ----

static void test_bad_input(void **state) {
    (void)state;
    uf_case u;
    uf_setup(&u, 8, 4, 0, 801, 1.0f);
    double L = -1;
    float *de = u.de;
    // Non-finite embeddings, named by row, whatever the row range asked for.
    u.e[3 * 4 + 2] = NAN;
    assert_int_equal(unifrac_pairwise_loss(&L, de, u.e, u.T, 8, 4, 0, 0, 8, 1.0f), FB_ERR_NONFINITE);
    assert_non_null(strstr(fb_last_error(), "row 3"));
    u.e[3 * 4 + 2] = 0.0f;
    u.e[5 * 4 + 0] = INFINITY;
    assert_int_equal(unifrac_pairwise_loss(&L, de, u.e, u.T, 8, 4, 4, 0, 2, 1.0f), FB_ERR_NONFINITE);
    assert_non_null(strstr(fb_last_error(), "row 5"));
    u.e[5 * 4 + 0] = -INFINITY;
    assert_int_equal(unifrac_pairwise_loss(&L, NULL, u.e, u.T, 8, 4, 0, 0, 8, 1.0f), FB_ERR_NONFINITE);
    u.e[5 * 4 + 0] = 0.5f;
    // A counted target entry must be finite; an uncounted one (lower triangle, outside a block) is not read.
    u.T[1 * 8 + 4] = NAN;
    assert_int_equal(unifrac_pairwise_loss(&L, de, u.e, u.T, 8, 4, 0, 0, 8, 1.0f), FB_ERR_NONFINITE);
    assert_non_null(strstr(fb_last_error(), "T[1][4]"));
    assert_int_equal(unifrac_pairwise_loss(&L, de, u.e, u.T, 8, 4, 4, 0, 8, 1.0f), FB_OK);
    u.T[1 * 8 + 4] = 0.5f;
    u.T[4 * 8 + 1] = INFINITY;
    assert_int_equal(unifrac_pairwise_loss(&L, de, u.e, u.T, 8, 4, 0, 0, 8, 1.0f), FB_OK);
    // Shapes and scopes.
    assert_int_equal(unifrac_pairwise_loss(&L, de, u.e, u.T, 8, 4, 3, 0, 8, 1.0f), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "block 3"));
    assert_int_equal(unifrac_pairwise_loss(&L, de, u.e, u.T, 8, 4, -2, 0, 8, 1.0f), FB_ERR_SHAPE);
    assert_int_equal(unifrac_pairwise_loss(&L, de, u.e, u.T, 8, 4, 0, 0, 9, 1.0f), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "[0, 9)"));
    assert_int_equal(unifrac_pairwise_loss(&L, de, u.e, u.T, 8, 4, 0, 5, 4, 1.0f), FB_ERR_SHAPE);
    assert_int_equal(unifrac_pairwise_loss(&L, de, u.e, u.T, 8, 4, 0, -1, 4, 1.0f), FB_ERR_SHAPE);
    assert_int_equal(unifrac_pairwise_loss(&L, de, u.e, u.T, 8, 0, 0, 0, 8, 1.0f), FB_ERR_SHAPE);
    assert_non_null(strstr(fb_last_error(), "D=0"));
    assert_int_equal(unifrac_pairwise_loss(&L, de, u.e, u.T, 0, 4, 0, 0, 0, 1.0f), FB_ERR_SHAPE);
    // No counted pair: N = 1, or blocks of one row. Loss 0, gradient untouched, no error.
    memset(de, 0, 8 * 4 * sizeof(float));
    L = -1;
    assert_int_equal(unifrac_pairwise_loss(&L, de, u.e, u.T, 1, 4, 0, 0, 1, 1.0f), FB_OK);
    assert_true(L == 0.0);
    L = -1;
    assert_int_equal(unifrac_pairwise_loss(&L, de, u.e, u.T, 8, 4, 1, 0, 8, 1.0f), FB_OK);
    assert_true(L == 0.0);
    for (int i = 0; i < 32; i++) assert_true(de[i] == 0.0f);
    assert_true(unifrac_pair_count(1, 0) == 0 && unifrac_pair_count(6, 3) == 6 && unifrac_pair_count(6, 2) == 3);
    assert_true(unifrac_pair_count(6, 4) == -1 && unifrac_pair_count(0, 0) == -1 && unifrac_pair_count(6, -1) == -1);
    // The other losses.
    assert_int_equal(mse_loss(&L, de, u.e, u.e, 0, 1.0f), FB_ERR_SHAPE);
    assert_int_equal(huber_loss(&L, de, u.e, u.e, 4, 0.0f, 1.0f), FB_ERR_CONFIG);
    assert_int_equal(huber_loss(&L, de, u.e, NULL, 4, 1.0f, 1.0f), FB_ERR_SHAPE);
    int32_t lab[3] = {0, 2, 4};
    assert_int_equal(cross_entropy_loss(&L, de, u.e, lab, 3, 4, 1.0f), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "row 2"));
    lab[2] = -1;
    assert_int_equal(cross_entropy_loss(&L, de, u.e, lab, 3, 4, 1.0f), FB_ERR_CONFIG);
    assert_int_equal(cross_entropy_loss(&L, de, u.e, lab, 3, 0, 1.0f), FB_ERR_SHAPE);
    uf_teardown(&u);
}

// FLOP counts: partial ranges add up to the whole; a hand-counted case.
static void test_flops(void **state) {
    (void)state;
    const int N = 12, D = 5;
    for (int block = 0; block <= 6; block += 3) {
        for (int g = 0; g < 2; g++) {
            double whole = unifrac_pairwise_flops(N, D, block, 0, N, g);
            double parts = unifrac_pairwise_flops(N, D, block, 0, 5, g) + unifrac_pairwise_flops(N, D, block, 5, N, g);
            assert_true(whole == parts);
        }
        double P = (double)unifrac_pair_count(N, block);
        assert_true(unifrac_pairwise_flops(N, D, block, 0, N, 0) == P * (3 * D + 8));
        assert_true(unifrac_pairwise_flops(N, D, block, 0, N, 1) == 2 * P * (6 * D + 14));
    }
    assert_true(mse_loss_flops(10, 1) == 50 && huber_loss_flops(10, 0) == 40);
    assert_true(cross_entropy_loss_flops(2, 3, 1) == 4 * 6 + 6 + 5 * 6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_mse),
        cmocka_unit_test(test_torch_huber),
        cmocka_unit_test(test_torch_cross_entropy),
        cmocka_unit_test(test_torch_unifrac),
        cmocka_unit_test(test_torch_unifrac_tied),
        cmocka_unit_test(test_unifrac_decomposition),
        cmocka_unit_test(test_unifrac_scopes),
        cmocka_unit_test(test_fd_pointwise),
        cmocka_unit_test(test_fd_cross_entropy),
        cmocka_unit_test(test_fd_unifrac),
        cmocka_unit_test(test_accumulates),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_flops),
    };
    int failed = cmocka_run_group_tests_name("loss", tests, NULL, NULL);
    report_worst();
    return failed;
}
