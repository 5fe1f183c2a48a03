// The microbiome scenario model (harness/scenario_microbiome.c): PyTorch fixtures (out, both loss
// terms, the loss gradient and every parameter gradient, per fusion path), finite differences
// through model + loss, every fitting method end to end and the refusal of the others, row
// decomposition of the loss and of forward/backward (dropout on, every fitting method), 1 vs 2
// threads bitwise, the generator, the UniFrac target on SOURCE-SYSTEMS.md's worked example, bad
// inputs and the speed.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../harness/model.h"


double microbiome_unifrac(const int *parent, const float *blen, int n_nodes, const int *la, int na,
                          const int *lb, int nb, unsigned char *mark, int *list);

typedef model_run run;

// The model of c, its parameters from c->seed + 17, evaluation-mode batch at step 3.
static fb_status run_setup(run *r, const model_config *c) {
    const fb_status st = model_run_create(r, &scenario_microbiome, c, c->seed + 17);
    r->b.step = 3;
    return st;
}

#define TRY(call) do { fb_status s_ = (call); if (s_ != FB_OK) fail_msg("%s: %s", #call, fb_last_error()); } while (0)

// forward, loss over all rows (pair_block), backward of the loss gradient; returns the loss.
static double run_step(run *r, int pair_block, double terms[2]) {
    TRY(r->m.s->forward(&r->m, &r->b, r->out));
    TRY(r->m.s->loss(&r->m, r->out, r->b.y, r->b.B, 0, r->b.B, pair_block, terms, r->dout));
    fb_layout_zero(&r->P, 1);
    TRY(r->m.s->backward(&r->m, &r->b, r->dout));
    return terms[0] + terms[1];
}

static double run_loss(void *ctx) {
    run *r = ctx;
    double terms[2];
    TRY(r->m.s->forward(&r->m, &r->b, r->out));
    TRY(r->m.s->loss(&r->m, r->out, r->b.y, r->b.B, 0, r->b.B, 0, terms, NULL));
    return terms[0] + terms[1];
}

static model_config default_config(const char *method, int B) {
    return (model_config){.method = method, .B = B, .dropout = 0.1f, .seed = 42};
}

static int all_finite(const float *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

// Every parameter gradient finite (tensor by tensor: the canaries between them are not numbers);
// returns their squared norm, or -1.
static double grad_norm2(const fb_layout *P) {
    double s = 0;
    for (int i = 0; i < P->count; i++) {
        const float *g = fb_layout_ptr(P, 1, i);
        if (!all_finite(g, P->tensors[i].numel)) return -1;
        for (size_t k = 0; k < P->tensors[i].numel; k++) s += (double)g[k] * g[k];
    }
    return s;
}

// ---- PyTorch fixtures + finite differences ----

static void check_case(const char *name) {
    fixture fx;
    fixture_open(&fx, "scenario_microbiome", name);
    char method[64], variant[64];
    fixture_string_attr(&fx, "method", method, sizeof method);
    fixture_string_attr(&fx, "variant", variant, sizeof variant);
    const fusion_method *fm = fusion_find(method);
    if (!fm) fail_msg("%s: unknown method %s", name, method);
    model_config c = {.method = method, .variant = fusion_variant_index(fm, variant),
                      .B = fixture_int(&fx, "B"), .D = fixture_int(&fx, "D"), .H = fixture_int(&fx, "H"),
                      .layers = fixture_int(&fx, "layers"), .dropout = 0.0f, .seed = 1,
                      .max_asvs = fixture_int(&fx, "S"), .vocab = fixture_int(&fx, "V"),
                      .columns = fixture_int(&fx, "K"), .card = fixture_int(&fx, "card"),
                      .cat_dim = fixture_int(&fx, "E")};
    if (c.variant < 0) fail_msg("%s: variant %s unknown", name, variant);
    double tol = fixture_double_attr(&fx, "tol");
    run r;
    if (run_setup(&r, &c) != FB_OK) fail_msg("%s: create: %s", name, fb_last_error());
    fixture_load(&fx, "x", r.x, (size_t)c.B * r.m.in_stride);
    fixture_load(&fx, "y", r.y, (size_t)c.B * r.m.y_stride);
    char pname[160];
    for (int i = 0; i < r.P.count; i++) {
        snprintf(pname, sizeof pname, "param/%s", r.P.tensors[i].name);
        if (!fixture_has(&fx, pname)) fail_msg("%s: PyTorch has no parameter %s", name, r.P.tensors[i].name);
        fixture_load(&fx, pname, fb_layout_ptr(&r.P, 0, i), r.P.tensors[i].numel);
    }
    hid_t pg = H5Gopen2(fx.group, "param", H5P_DEFAULT);
    H5G_info_t info;
    H5Gget_info(pg, &info);
    H5Gclose(pg);
    if ((int)info.nlinks != r.P.count) fail_msg("%s: PyTorch has %d parameters, C %d", name, (int)info.nlinks, r.P.count);

    double terms[2];
    run_step(&r, 0, terms);
    const size_t nout = (size_t)c.B * r.m.out_dim;
    check_against(&fx, "out", r.out, nout, tol);
    float h = (float)terms[0], u = (float)terms[1];
    check_against(&fx, "huber", &h, 1, tol);
    check_against(&fx, "unifrac", &u, 1, tol);
    check_against(&fx, "dloss_out", r.dout, nout, tol);
    for (int i = 0; i < r.P.count; i++) {
        snprintf(pname, sizeof pname, "grad/%s", r.P.tensors[i].name);
        check_against(&fx, pname, fb_layout_ptr(&r.P, 1, i), r.P.tensors[i].numel, tol);
    }

    // Finite differences on every parameter through model + loss (the fixture point: smooth, no
    // Huber kink within h). Gradients of the total loss are in slot 1 from run_step. A parameter
    // whose gradient vanishes identically (sample_pooling.norm.bias shifts every embedding alike,
    // so no distance moves; attention key biases) has only rounding noise to compare: skipped, the
    // PyTorch check above covers it (absolute error against 0). h = 2e-2: float32 rounding of the
    // forward over 2h stays below ~3e-3 of the smallest gradients (attention query biases).
    size_t np = r.P.count > 0 ? (size_t)r.P.count : 1;
    fd_var *vars = calloc(np, sizeof *vars);
    int nv = 0;
    for (int i = 0; i < r.P.count; i++) {
        snprintf(pname, sizeof pname, "grad/%s", r.P.tensors[i].name);
        size_t n;
        double *want = fixture_doubles(&fx, pname, &n), mx = 0;
        for (size_t k = 0; k < n; k++) mx = fmax(mx, fabs(want[k]));
        free(want);
        if (mx < ZERO_REFERENCE) continue;
        vars[nv++] = (fd_var){r.P.tensors[i].name, fb_layout_ptr(&r.P, 0, i), r.P.tensors[i].numel,
                              fb_layout_ptr(&r.P, 1, i)};
    }
    char block[96];
    snprintf(block, sizeof block, "microbiome/%s", name);
    fd_check(block, run_loss, &r, vars, nv, 2e-2f, 6, 1e-2);
    free(vars);
    fixture_close(&fx);
    model_run_destroy(&r);
}

static void test_torch_and_fd(void **state) {
    (void)state;
    const char *cases[] = {"categorical_add", "categorical_concat", "seq_cross_attention", "conditional_scaling",
                           "perceiver_shipped", "gmu", "film_head"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_case(cases[i]);
}

// ---- every method: fits and runs, or is refused with the list ----

static void test_methods(void **state) {
    (void)state;
    char fitting[2048] = "";
    int nfit = 0;
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) {
        char why[256];
        if (scenario_microbiome.fits(fusion_methods[i], why, sizeof why) == 0) {
            nfit++;
            strcat(fitting, fusion_methods[i]->name);
            strcat(fitting, " ");
        }
    }
    printf("  fitting methods (%d): %s\n", nfit, fitting);
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) {
        const fusion_method *fm = fusion_methods[i];
        char why[256];
        if (scenario_microbiome.fits(fm, why, sizeof why) != 0) {
            run r;
            model_config c = default_config(fm->name, 8);
            assert_int_equal(run_setup(&r, &c), FB_ERR_CONFIG);
            char msg[512];
            snprintf(msg, sizeof msg, "%s", fb_last_error());
            assert_non_null(strstr(msg, "methods that do:"));
            for (int j = 0; j < FUSION_METHOD_COUNT; j++) {
                char w2[256];
                if (scenario_microbiome.fits(fusion_methods[j], w2, sizeof w2) == 0)
                    assert_non_null(strstr(msg, fusion_methods[j]->name));
            }
            printf("  refused %-22s %s\n", fm->name, why);
            continue;
        }
        for (int v = 0; v < FUSION_MAX_VARIANTS && fm->variants[v]; v++) {
            model_config c = default_config(fm->name, 8);
            c.variant = v;
            run r;
            fb_status st = run_setup(&r, &c);
            if (st != FB_OK) {   // perceiver's document form needs cat_dim = D
                printf("  %-22s %-10s refused at defaults: %s\n", fm->name, fm->variants[v], fb_last_error());
                assert_non_null(strstr(fb_last_error(), "E="));
                c.cat_dim = 64;
                st = run_setup(&r, &c);
                if (st != FB_OK) fail_msg("%s/%s with cat_dim = D: %s", fm->name, fm->variants[v], fb_last_error());
            }
            model_run_samples(&r, 100);
            r.b.training = 1;
            double terms[2];
            double loss = run_step(&r, 0, terms);
            assert_true(isfinite(loss) && terms[1] > 0);
            assert_true(all_finite(r.out, (size_t)r.B * r.m.out_dim));
            double gn = grad_norm2(&r.P);
            assert_true(gn > 0);
            printf("  runs    %-22s %-10s huber %.4f unifrac %.4f |grad| %.3e (%zu parameters)\n", fm->name,
                   fm->variants[v], terms[0], terms[1], sqrt(gn), fb_layout_numel(&r.P));
            model_run_destroy(&r);
        }
    }
    assert_true(nfit >= 6);
}

// ---- row decomposition ----

// One method and variant, in training with dropout on: forward of rows [0, k) and [k, N) with
// first = r0 bitwise the whole batch's rows (every draw, the method's own included, follows the
// global row), and the gradients of the two parts adding up to the whole batch's. With loss_terms,
// also the loss terms of [0, k) + [k, N) = whole and their gradient rows bitwise (the loss is the
// scenario's, whatever the method).
static void decomposition_case(const fusion_method *fm, int variant, int loss_terms) {
    const int N = 8, k = 3;
    char name[96];
    snprintf(name, sizeof name, "%s/%s", fm->name, fm->variants[variant] ? fm->variants[variant] : "default");
    model_config c = default_config(fm->name, N);
    c.variant = variant;
    run r;
    if (run_setup(&r, &c) != FB_OK) {   // a form that needs cat_dim = D (as in test_methods)
        assert_non_null(strstr(fb_last_error(), "E="));
        c.cat_dim = 64;
        if (run_setup(&r, &c) != FB_OK) fail_msg("%s with cat_dim = D: %s", name, fb_last_error());
    }
    model_run_samples(&r, 7);
    r.b.training = 1;   // dropout on
    const int od = r.m.out_dim;
    double whole[2];
    run_step(&r, 0, whole);
    float *out_full = alloc_floats((size_t)N * od), *dout_full = alloc_floats((size_t)N * od);
    float *grad_full = alloc_floats(r.P.total), *grad_parts = alloc_floats(r.P.total);
    memcpy(out_full, r.out, (size_t)N * od * sizeof(float));
    memcpy(dout_full, r.dout, (size_t)N * od * sizeof(float));
    memcpy(grad_full, r.P.base[1], r.P.total * sizeof(float));

    // Loss terms of [0, k) + [k, N) = whole; gradient rows bitwise.
    for (int pb = 0; loss_terms && pb <= N / 2; pb += N / 2) {
        double all[2], a[2], b2[2];
        float *d_all = alloc_floats((size_t)N * od), *d_part = alloc_floats((size_t)N * od);
        TRY(r.m.s->loss(&r.m, out_full, r.y, N, 0, N, pb, all, d_all));
        TRY(r.m.s->loss(&r.m, out_full, r.y, N, 0, k, pb, a, d_part));
        TRY(r.m.s->loss(&r.m, out_full, r.y, N, k, N, pb, b2, d_part + (size_t)k * od));
        for (int t = 0; t < 2; t++) {
            double err = fabs(a[t] + b2[t] - all[t]) / fabs(all[t]);
            printf("  decomp  %-34s %-8s pair_block %d: [0,%d) + [%d,%d) vs whole rel err %.2e\n", name,
                   r.m.term_names[t], pb, k, k, N, err);
            assert_true(err < 1e-12);
        }
        assert_true(bitwise_equal(d_all, d_part, (size_t)N * od));
        free(d_all);
        free(d_part);
    }
    if (loss_terms) {   // N = 1: unifrac is 0.
        double one[2];
        TRY(r.m.s->loss(&r.m, out_full, r.y, 1, 0, 1, 0, one, r.dout));
        assert_true(one[1] == 0.0);
    }

    // Forward of rows [k, N) with first = k: bitwise the whole batch's rows; the gradients of
    // [0, k) and [k, N) add up to the whole batch's.
    fb_layout_zero(&r.P, 1);
    for (int part = 0; part < 2; part++) {
        int r0 = part ? k : 0, r1 = part ? N : k;
        model_batch b = {.B = r1 - r0, .x = r.x + (size_t)r0 * r.m.in_stride, .y = r.y + (size_t)r0 * r.m.y_stride,
                         .first = (uint64_t)r0, .step = r.b.step, .training = 1};
        TRY(r.m.s->forward(&r.m, &b, r.out));
        if (!bitwise_equal(r.out, out_full + (size_t)r0 * od, (size_t)(r1 - r0) * od))
            fail_msg("%s: forward of rows [%d, %d) with first = %d differs from the whole batch's", name, r0, r1, r0);
        TRY(r.m.s->backward(&r.m, &b, dout_full + (size_t)r0 * od));
    }
    memcpy(grad_parts, r.P.base[1], r.P.total * sizeof(float));
    double diff = 0, scale = 0;
    for (int t = 0; t < r.P.count; t++)   // tensor by tensor (the canaries between them are NaN)
        for (size_t i = r.P.tensors[t].offset; i < r.P.tensors[t].offset + r.P.tensors[t].numel; i++) {
            double d = fabs((double)grad_parts[i] - grad_full[i]);
            diff = isnan(d) || d > diff ? d : diff;
            scale = fmax(scale, fabs((double)grad_full[i]));
        }
    printf("  decomp  %-34s forward rows [0,%d) [%d,%d) first=0,%d bitwise; gradients summed vs whole %.2e\n", name,
           k, k, N, k, diff / scale);
    assert_true(diff / scale < 1e-5);   // false for NaN
    free(out_full); free(dout_full); free(grad_full); free(grad_parts);
    model_run_destroy(&r);
}

// Every fitting method and variant, those with their own randomness (dropout, modality masks)
// included: the keys' row0 makes every draw follow the global row.
static void test_decomposition(void **state) {
    (void)state;
    int cases = 0;
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) {
        const fusion_method *fm = fusion_methods[i];
        char why[256];
        if (scenario_microbiome.fits(fm, why, sizeof why) != 0) continue;
        for (int v = 0; v == 0 || (v < FUSION_MAX_VARIANTS && fm->variants[v]); v++) decomposition_case(fm, v, cases++ == 0);
    }
    assert_true(cases >= 6);
}

// ---- threads ----

static void test_threads_bitwise(void **state) {
    (void)state;
    const char *methods[] = {"categorical_add", "seq_cross_attention", "perceiver", "gmu", "film_head"};
    for (size_t mi = 0; mi < sizeof methods / sizeof *methods; mi++) {
        float *res[2][3];
        size_t n[3];
        for (int t = 0; t < 2; t++) {
            set_threads(t + 1);
            model_config c = default_config(methods[mi], 8);
            c.variant = !strcmp(methods[mi], "perceiver");   // shipped
            run r;
            if (run_setup(&r, &c) != FB_OK) fail_msg("%s", fb_last_error());
            model_run_samples(&r, 300);
            r.b.training = 1;
            double terms[2];
            run_step(&r, 0, terms);
            float *bufs[3] = {r.out, r.dout, r.P.base[1]};
            size_t sz[3] = {(size_t)r.B * r.m.out_dim, (size_t)r.B * r.m.out_dim, r.P.total};
            for (int q = 0; q < 3; q++) {
                n[q] = sz[q];
                res[t][q] = alloc_floats(sz[q]);
                memcpy(res[t][q], bufs[q], sz[q] * sizeof(float));
            }
            model_run_destroy(&r);
        }
        set_threads(2);
        const char *what[3] = {"out", "dout", "parameter gradients"};
        for (int q = 0; q < 3; q++) {
            if (!bitwise_equal(res[0][q], res[1][q], n[q])) fail_msg("%s: %s differ between 1 and 2 threads", methods[mi], what[q]);
            free(res[0][q]);
            free(res[1][q]);
        }
        printf("  threads %-22s 1 vs 2 threads bitwise identical (training, dropout 0.1)\n", methods[mi]);
    }
}

// ---- generator ----

static void test_generator(void **state) {
    (void)state;
    model_config c = default_config("categorical_add", 8);
    run r, r2;
    if (run_setup(&r, &c) != FB_OK) fail_msg("%s", fb_last_error());
    if (run_setup(&r2, &c) != FB_OK) fail_msg("%s", fb_last_error());
    const int S = 32, V = 256, K = 3, card = 4, n = 2000;
    const int is = r.m.in_stride, ys = r.m.y_stride;
    assert_int_equal(is, 2 * S + K);
    assert_int_equal(ys, 1 + S);
    float *x = alloc_floats((size_t)is), *y = alloc_floats((size_t)ys), *x2 = alloc_floats((size_t)is),
          *y2 = alloc_floats((size_t)ys);
    int unknown = 0, rich_min = S, rich_max = 0;
    double sum = 0, sum2 = 0;
    for (int i = 0; i < n; i++) {
        r.m.s->sample(&r.m, (uint64_t)i * 7919u, x, y);
        r2.m.s->sample(&r2.m, (uint64_t)i * 7919u, x2, y2);   // another model, same seed: the same record
        assert_true(bitwise_equal(x, x2, (size_t)is) && bitwise_equal(y, y2, (size_t)ys));
        int len = 0;
        while (len < S && x[len] != 0.0f) len++;
        for (int t = 0; t < S; t++) {
            assert_true(y[1 + t] == x[t]);
            if (t < len) {
                assert_true(x[t] >= 1 && x[t] <= V && x[t] == floorf(x[t]));
                assert_true(x[S + t] >= logf(2.0f) - 1e-6f);
                if (t) assert_true(x[S + t] <= x[S + t - 1]);   // sorted by abundance
                for (int u = 0; u < t; u++) assert_true(x[u] != x[t]);
            } else {
                assert_true(x[t] == 0.0f && x[S + t] == 0.0f);
            }
        }
        for (int k = 0; k < K; k++) {
            float v = x[2 * S + k];
            assert_true(v >= 0 && v <= card && v == floorf(v));
            unknown += v == 0.0f;
        }
        assert_true(isfinite(y[0]));
        sum += y[0];
        sum2 += (double)y[0] * y[0];
        if (len < rich_min) rich_min = len;
        if (len > rich_max) rich_max = len;
    }
    double mean = sum / n, sd = sqrt(sum2 / n - mean * mean), pu = (double)unknown / (n * K);
    printf("  generator: richness %d..%d, unknown columns %.3f, target mean %.3f sd %.3f\n", rich_min, rich_max, pu,
           mean, sd);
    assert_true(rich_min >= S / 4 && rich_max == S);
    assert_true(pu > 0.07 && pu < 0.13);
    assert_true(sd > 0.5);
    // Another seed gives other data.
    model_config c3 = c;
    c3.seed = 43;
    run r3;
    if (run_setup(&r3, &c3) != FB_OK) fail_msg("%s", fb_last_error());
    r.m.s->sample(&r.m, 5, x, y);
    r3.m.s->sample(&r3.m, 5, x2, y2);
    assert_false(bitwise_equal(x, x2, (size_t)is));
    free(x); free(y); free(x2); free(y2);
    model_run_destroy(&r);
    model_run_destroy(&r2);
    model_run_destroy(&r3);
}

// The fusion must matter: least squares of the target on features read off the records — recorded
// categories (one-hot, unknown included), clade fractions of the counts (the generator's clades:
// G = 8, ASV v in clade (v - 1) G / V) and their products — explains much more with the products
// (the interaction) than with either stream alone or their sum.
#define GEN_P (1 + 15 + 8 + 120)   // 1, K (card + 1) one-hots, G fractions, G K (card + 1) products
static double r2_of(const double *XtX, const double *Xty, double yty, double ysum, int n, const int *use) {
    int idx[GEN_P], p = 0;
    for (int j = 0; j < GEN_P; j++) if (use[j]) idx[p++] = j;
    double *A = calloc((size_t)p * p, sizeof *A), *b = calloc((size_t)p, sizeof *b);
    for (int a = 0; a < p; a++) {
        b[a] = Xty[idx[a]];
        for (int c = 0; c < p; c++) A[a * p + c] = XtX[idx[a] * GEN_P + idx[c]] + (a == c ? 1e-6 : 0.0);
    }
    for (int k = 0; k < p; k++) {   // Cholesky A = L Lᵀ in place (lower), then two solves
        for (int c = 0; c < k; c++) A[k * p + k] -= A[k * p + c] * A[k * p + c];
        A[k * p + k] = sqrt(A[k * p + k]);
        for (int r = k + 1; r < p; r++) {
            for (int c = 0; c < k; c++) A[r * p + k] -= A[r * p + c] * A[k * p + c];
            A[r * p + k] /= A[k * p + k];
        }
    }
    for (int r = 0; r < p; r++) {
        for (int c = 0; c < r; c++) b[r] -= A[r * p + c] * b[c];
        b[r] /= A[r * p + r];
    }
    for (int r = p - 1; r >= 0; r--) {
        for (int c = r + 1; c < p; c++) b[r] -= A[c * p + r] * b[c];
        b[r] /= A[r * p + r];
    }
    double fit = 0;   // β·Xᵀy = explained sum of squares about 0
    for (int a = 0; a < p; a++) fit += b[a] * Xty[idx[a]];
    free(A);
    free(b);
    double sst = yty - ysum * ysum / n;
    return 1.0 - (yty - fit) / sst;
}

static void test_generator_interaction(void **state) {
    (void)state;
    model_config c = default_config("categorical_add", 8);
    run r;
    if (run_setup(&r, &c) != FB_OK) fail_msg("%s", fb_last_error());
    const int S = 32, V = 256, K = 3, C1 = 5, G = 8, n = 6000;
    double *XtX = calloc(GEN_P * GEN_P, sizeof *XtX), Xty[GEN_P] = {0}, yty = 0, ysum = 0;
    float *x = alloc_floats((size_t)r.m.in_stride), *y = alloc_floats((size_t)r.m.y_stride);
    for (int i = 0; i < n; i++) {
        r.m.s->sample(&r.m, (uint64_t)i, x, y);
        double phi[GEN_P] = {0}, f[8] = {0}, tot = 0;
        for (int t = 0; t < S && x[t] != 0.0f; t++) {
            double cnt = expm1((double)x[S + t]);
            f[(int)((x[t] - 1) * G / V)] += cnt;
            tot += cnt;
        }
        phi[0] = 1;
        for (int k = 0; k < K; k++) phi[1 + k * C1 + (int)x[2 * S + k]] = 1;
        for (int g = 0; g < G; g++) {
            phi[16 + g] = f[g] / tot;
            for (int j = 0; j < K * C1; j++) phi[24 + g * K * C1 + j] = phi[16 + g] * phi[1 + j];
        }
        for (int a = 0; a < GEN_P; a++) {
            Xty[a] += phi[a] * y[0];
            for (int b2 = 0; b2 < GEN_P; b2++) XtX[a * GEN_P + b2] += phi[a] * phi[b2];
        }
        yty += (double)y[0] * y[0];
        ysum += y[0];
    }
    int cats[GEN_P] = {0}, comp[GEN_P] = {0}, add[GEN_P] = {0}, full[GEN_P];
    for (int j = 0; j < GEN_P; j++) {
        full[j] = 1;
        cats[j] = j < 16;
        comp[j] = j == 0 || (j >= 16 && j < 24);
        add[j] = j < 24;
    }
    double rc = r2_of(XtX, Xty, yty, ysum, n, cats), rm = r2_of(XtX, Xty, yty, ysum, n, comp),
           ra = r2_of(XtX, Xty, yty, ysum, n, add), rf = r2_of(XtX, Xty, yty, ysum, n, full);
    printf("  generator R^2 of the target: categories %.3f, composition %.3f, both additive %.3f, "
           "with interaction %.3f\n", rc, rm, ra, rf);
    assert_true(rf > ra + 0.1 && ra > rc + 0.05 && ra > rm + 0.05);
    free(XtX); free(x); free(y);
    model_run_destroy(&r);
}

// The worked example of SOURCE-SYSTEMS.md ("UniFrac, for tests"): tree
// (GG_OTU_1:1,(GG_OTU_2:1,GG_OTU_3:1):1,(GG_OTU_5:1,GG_OTU_4:1):1); nodes 0 root, 1..5 OTUs,
// 6 = (2,3), 7 = (4,5).
static void test_unifrac_worked_example(void **state) {
    (void)state;
    const int parent[8] = {-1, 0, 6, 6, 7, 7, 0, 0};
    const float blen[8] = {0, 1, 1, 1, 1, 1, 1, 1};
    const int s[6][4] = {{2, 4}, {2, 4, 5}, {1, 3, 4, 5}, {2, 3}, {2}, {2, 3, 4}};
    const int ns[6] = {2, 3, 4, 2, 1, 3};
    const double row1[6] = {0, 0.2, 0.571429, 0.6, 0.5, 0.2}, row3[6] = {0.571429, 0.428571, 0, 0.714286, 0.857143, 0.428571};
    unsigned char mark[8] = {0};
    int list[8];
    double worst = 0;
    for (int j = 0; j < 6; j++) {
        double a = microbiome_unifrac(parent, blen, 8, s[0], ns[0], s[j], ns[j], mark, list);
        double b = microbiome_unifrac(parent, blen, 8, s[2], ns[2], s[j], ns[j], mark, list);
        worst = fmax(worst, fmax(fabs(a - row1[j]), fabs(b - row3[j])));
    }
    for (int i = 0; i < 8; i++) assert_int_equal(mark[i], 0);
    printf("  unifrac worked example (rows S1, S3): max abs err %.2e\n", worst);
    assert_true(worst < 1e-6);
}

// ---- edge cases and bad inputs ----

static void test_edges(void **state) {
    (void)state;
    model_config c = default_config("categorical_add", 4);
    run r;
    if (run_setup(&r, &c) != FB_OK) fail_msg("%s", fb_last_error());
    model_run_samples(&r, 11);
    const int S = 32, is = r.m.in_stride;
    // An all-padding sample: uniform pooling weights, finite everything.
    for (int t = 0; t < 2 * S; t++) r.x[is + t] = 0.0f;
    for (int t = 0; t < S; t++) r.y[r.m.y_stride + 1 + t] = 0.0f;
    r.b.training = 1;
    double terms[2];
    run_step(&r, 0, terms);
    assert_true(isfinite(terms[0]) && isfinite(terms[1]));
    assert_true(all_finite(r.out, (size_t)4 * r.m.out_dim) && grad_norm2(&r.P) > 0);
    // A smaller batch than created.
    model_batch b = r.b;
    b.B = 2;
    TRY(r.m.s->forward(&r.m, &b, r.out));
    TRY(r.m.s->backward(&r.m, &b, r.dout));
    b.B = 5;
    assert_int_equal(r.m.s->forward(&r.m, &b, r.out), FB_ERR_SHAPE);
    // Ids out of range.
    r.x[0] = 257.0f;
    assert_int_equal(r.m.s->forward(&r.m, &r.b, r.out), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "ASV id"));
    r.x[0] = 1.0f;
    r.x[2 * S] = 5.0f;
    assert_int_equal(r.m.s->forward(&r.m, &r.b, r.out), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "category id"));
    r.x[2 * S] = 1.0f;
    // Loss: a pair block that does not divide N, NaN in an embedding.
    double t2[2];
    assert_int_equal(r.m.s->loss(&r.m, r.out, r.y, 4, 0, 4, 3, t2, r.dout), FB_ERR_SHAPE);
    TRY(r.m.s->forward(&r.m, &r.b, r.out));
    r.out[1] = NAN;
    assert_int_equal(r.m.s->loss(&r.m, r.out, r.y, 4, 0, 4, 0, t2, r.dout), FB_ERR_NONFINITE);
    model_run_destroy(&r);
    // Bad configs.
    model_config bad = default_config("categorical_add", 4);
    bad.H = 5;
    assert_int_equal(run_setup(&r, &bad), FB_ERR_CONFIG);
    bad = default_config("categorical_add", 0);
    assert_int_equal(run_setup(&r, &bad), FB_ERR_SHAPE);
}

// ---- speed: default model, B = 8, one thread ----

static void test_speed(void **state) {
    (void)state;
    set_threads(1);
    const char *methods[] = {"categorical_add", "seq_cross_attention", "gmu"};
    for (size_t mi = 0; mi < sizeof methods / sizeof *methods; mi++) {
        model_config c = default_config(methods[mi], 8);
        run r;
        if (run_setup(&r, &c) != FB_OK) fail_msg("%s", fb_last_error());
        model_run_samples(&r, 0);
        r.b.training = 1;
        double terms[2];
        for (int i = 0; i < 3; i++) run_step(&r, 0, terms);
        const int reps = 20;
        double t0 = omp_get_wtime();
        for (int i = 0; i < reps; i++) run_step(&r, 0, terms);
        double ms = (omp_get_wtime() - t0) / reps * 1e3;
        printf("  speed   %-22s forward+loss+backward, B=8, 1 thread: %.2f ms (%zu parameters)\n", methods[mi], ms,
               fb_layout_numel(&r.P));
        model_run_destroy(&r);
    }
    set_threads(2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_and_fd),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_decomposition),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_generator),
        cmocka_unit_test(test_generator_interaction),
        cmocka_unit_test(test_unifrac_worked_example),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_speed),
    };
    int failed = cmocka_run_group_tests_name("scenario_microbiome", tests, NULL, NULL);
    report_worst();
    return failed;
}
