// The multimodal scenario (harness/scenario_multimodal.c): PyTorch fixtures of the whole model
// (logits, loss, its gradient, every parameter gradient) with the records made by the C generator
// and checked against the Python twin's, finite differences through model + loss (dropout on, and
// the returned auxiliary loss), every fitting method and variant, the refusal of the others, row
// decomposition (loss terms, every method's masks and routes through `first`, gradients), 1 vs 2
// threads bitwise, and the generator's design (neither modality alone predicts the label where it
// should not).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../harness/model.h"


typedef model_run mm_run;

static model_config tiny_config(const char *method) {
    return (model_config){.method = method, .B = 5, .D = 8, .classes = 3, .feat_a = 6, .feat_b = 5,
                          .dropout = 0.0f, .seed = 11};
}

static model_config default_config(const char *method, int B) {
    return (model_config){.method = method, .B = B, .dropout = 0.1f, .seed = 3};
}

// Creates the model (canaries on), initialises the parameters and makes records index0.. .
static fb_status run_setup(mm_run *r, const model_config *c, uint64_t index0) {
    const fb_status s = model_run_create(r, &scenario_multimodal, c, 99);
    if (s == FB_OK && index0) model_run_samples(r, index0);
    return s;
}

static double total(const mm_run *r) {
    double t = 0;
    for (int k = 0; k < r->m.n_terms; k++) t += r->terms[k];
    return t;
}

// forward + loss over the whole batch; dout = d(objective)/d(logits).
static double run_forward_loss(mm_run *r) {
    model *m = &r->m;
    if (m->s->forward(m, &r->b, r->out) != FB_OK) fail_msg("forward: %s", fb_last_error());
    if (m->s->loss(m, r->out, r->y, r->b.B, 0, r->b.B, 0, r->terms, r->dout) != FB_OK) fail_msg("loss: %s", fb_last_error());
    return total(r);
}

static double run_step(mm_run *r) {
    fb_layout_zero(&r->P, 1);
    double t = run_forward_loss(r);
    if (r->m.s->backward(&r->m, &r->b, r->dout) != FB_OK) fail_msg("backward: %s", fb_last_error());
    return t;
}

static double fd_objective(void *ctx) { return run_forward_loss(ctx); }

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) if (!isfinite(x[i])) return 0;
    return 1;
}

// Every parameter gradient (tensor by tensor: the padding between them holds canaries).
static int grads_finite(const mm_run *r) {
    for (int i = 0; i < r->P.count; i++)
        if (!all_finite(fb_layout_ptr(&r->P, 1, i), r->P.tensors[i].numel)) return 0;
    return 1;
}

// ---- PyTorch ----

static void check_torch_case(const char *method) {
    fixture fx;
    fixture_open(&fx, "scenario_multimodal", method);
    model_config c = tiny_config(method);
    c.B = fixture_int(&fx, "B");
    c.D = fixture_int(&fx, "D");
    c.feat_a = fixture_int(&fx, "feat_a");
    c.feat_b = fixture_int(&fx, "feat_b");
    c.classes = fixture_int(&fx, "classes");
    c.seed = (uint64_t)fixture_int(&fx, "seed");
    mm_run r;
    if (run_setup(&r, &c, (uint64_t)fixture_int(&fx, "index0")) != FB_OK) fail_msg("%s: %s", method, fb_last_error());
    // The C generator made the same records as the Python twin, bit for bit.
    size_t nx = (size_t)c.B * r.m.in_stride, ny = (size_t)c.B * r.m.y_stride;
    float *want = alloc_floats(nx > ny ? nx : ny);
    fixture_load(&fx, "x", want, nx);
    if (!bitwise_equal(want, r.x, nx)) fail_msg("%s: the C generator's x differs from the Python twin's", method);
    fixture_load(&fx, "y", want, ny);
    if (!bitwise_equal(want, r.y, ny)) fail_msg("%s: the C generator's y differs from the Python twin's", method);
    free(want);
    char name[160];
    for (int i = 0; i < r.P.count; i++) {
        snprintf(name, sizeof name, "param/%s", r.P.tensors[i].name);
        if (!fixture_has(&fx, name)) fail_msg("%s: the PyTorch model has no parameter %s", method, r.P.tensors[i].name);
        fixture_load(&fx, name, fb_layout_ptr(&r.P, 0, i), r.P.tensors[i].numel);
    }
    hid_t pg = H5Gopen2(fx.group, "param", H5P_DEFAULT);
    H5G_info_t info;
    H5Gget_info(pg, &info);
    H5Gclose(pg);
    if ((int)info.nlinks != r.P.count) fail_msg("%s: PyTorch has %d parameters, C %d", method, (int)info.nlinks, r.P.count);

    run_step(&r);
    check_against(&fx, "out", r.out, (size_t)c.B * c.classes, TOL_TORCH);
    float loss = (float)r.terms[0];
    check_against(&fx, "loss", &loss, 1, TOL_TORCH);
    assert_true(r.terms[1] == 0.0);
    check_against(&fx, "dlogits", r.dout, (size_t)c.B * c.classes, TOL_TORCH);
    for (int i = 0; i < r.P.count; i++) {
        snprintf(name, sizeof name, "grad/%s", r.P.tensors[i].name);
        check_against(&fx, name, fb_layout_ptr(&r.P, 1, i), r.P.tensors[i].numel, TOL_TORCH);
    }
    fixture_close(&fx);
    model_run_destroy(&r);
}

static void test_torch(void **state) {
    (void)state;
    check_torch_case("gated");
    check_torch_case("concat_mlp");
    check_torch_case("film");
}

// The generator at the default sizes (and a 37-bit index) against the Python twin, bit for bit.
static void test_generator_twin(void **state) {
    (void)state;
    fixture fx;
    fixture_open(&fx, "scenario_multimodal", "generator_default");
    model_config c = default_config("gated", 1);
    c.seed = (uint64_t)fixture_int(&fx, "seed");
    mm_run r;
    if (run_setup(&r, &c, 0) != FB_OK) fail_msg("%s", fb_last_error());
    assert_int_equal(r.m.c.feat_a, fixture_int(&fx, "feat_a"));
    assert_int_equal(r.m.c.feat_b, fixture_int(&fx, "feat_b"));
    assert_int_equal(r.m.c.classes, fixture_int(&fx, "classes"));
    size_t n;
    double *index = fixture_doubles(&fx, "index", &n);
    const int in = r.m.in_stride, yn = r.m.y_stride;
    float *x = alloc_floats(n * in), *y = alloc_floats(n * yn), *want = alloc_floats(n * in);
    for (size_t i = 0; i < n; i++) r.m.s->sample(&r.m, (uint64_t)index[i], x + i * in, y + i * yn);
    fixture_load(&fx, "x", want, n * in);
    if (!bitwise_equal(want, x, n * in)) fail_msg("default-size x differs from the Python twin's");
    fixture_load(&fx, "y", want, n * yn);
    if (!bitwise_equal(want, y, n * yn)) fail_msg("default-size y differs from the Python twin's");
    printf("  generator: %zu records at the default sizes equal the Python twin's bit for bit\n", n);
    free(index); free(x); free(y); free(want);
    fixture_close(&fx);
    model_run_destroy(&r);
}

// ---- finite differences through model + loss ----

// Finds the router's last bias (3 routes) of energy_aware_adaptive, to push every sample onto the
// fused route (so E[cost] > budget and the returned energy loss has a gradient, and no sampled route
// sits near a tie).
static float *router_bias(const mm_run *r) {
    for (int i = 0; i < r->P.count; i++)
        if (strstr(r->P.tensors[i].name, "router") && strstr(r->P.tensors[i].name, "bias") && r->P.tensors[i].numel == 3)
            return fb_layout_ptr(&r->P, 0, i);
    fail_msg("energy_aware_adaptive: no router bias of 3 routes in the layout");
    return NULL;
}

static void fd_case(const char *method, int variant, float dropout) {
    model_config c = tiny_config(method);
    c.variant = variant;
    c.dropout = dropout;
    c.H = 2;
    mm_run r;
    if (run_setup(&r, &c, 40) != FB_OK) fail_msg("%s: %s", method, fb_last_error());
    r.b = (model_batch){.B = c.B, .x = r.x, .y = r.y, .first = 3, .step = 7, .training = 1};
    int aux = !strcmp(method, "energy_aware_adaptive");
    if (aux) router_bias(&r)[2] += 2.5f;   // r_2 ~ 0.8: E[cost] > budget, routes still mixed
    run_step(&r);
    char block[96];
    snprintf(block, sizeof block, "%s/%d", method, variant);
    printf("  fd    %s: ce %.6f aux %.6f\n", block, r.terms[0], r.terms[1]);
    if (aux) assert_true(r.terms[1] > 0.0);   // the energy loss is in the objective, and in the FD
    fd_var *vars = calloc((size_t)r.P.count, sizeof *vars);
    for (int i = 0; i < r.P.count; i++)
        vars[i] = (fd_var){r.P.tensors[i].name, fb_layout_ptr(&r.P, 0, i), r.P.tensors[i].numel, fb_layout_ptr(&r.P, 1, i)};
    fd_check(block, fd_objective, &r, vars, r.P.count, 1e-2f, 12, 5e-3);
    free(vars);
    model_run_destroy(&r);
}

static void test_finite_differences(void **state) {
    (void)state;
    fd_case("gated", 0, 0.1f);                   // dropout after the fusion, masks fixed by the step
    fd_case("concat_mlp", 0, 0.1f);
    fd_case("film", 0, 0.1f);
    const fusion_method *ea = fusion_find("energy_aware_adaptive");
    assert_non_null(ea);
    fd_case("energy_aware_adaptive", fusion_variant_index(ea, "returned"), 0.0f);   // ce + aux
}

// ---- every method ----

static void test_every_method(void **state) {
    (void)state;
    char fitting[1024] = "";
    int nfit = 0;
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) {
        const fusion_method *fm = fusion_methods[i];
        char why[256];
        if (scenario_multimodal.fits(fm, why, sizeof why) != 0) {
            assert_int_equal(fm->kind, FUSION_SEQUENCE);
            assert_non_null(strstr(why, fm->name));
            continue;
        }
        nfit++;
        snprintf(fitting + strlen(fitting), sizeof fitting - strlen(fitting), "%s%s", nfit > 1 ? ", " : "", fm->name);
        for (int v = 0; v < FUSION_MAX_VARIANTS && fm->variants[v]; v++) {
            model_config c = default_config(fm->name, 16);
            c.variant = v;
            mm_run r;
            if (run_setup(&r, &c, 1000) != FB_OK) fail_msg("%s/%s: %s", fm->name, fm->variants[v], fb_last_error());
            for (int training = 0; training <= 1; training++) {   // the line below shows training
                r.b.training = training;
                r.b.step = 5;
                double t = run_step(&r);
                if (!isfinite(t) || !all_finite(r.out, (size_t)16 * r.m.out_dim) || !all_finite(r.dout, (size_t)16 * r.m.out_dim) ||
                    !grads_finite(&r))
                    fail_msg("%s/%s training=%d: non-finite loss, logits or gradients", fm->name, fm->variants[v], training);
            }
            printf("  method %-24s %-24s forward, loss (ce %.4f aux %.4f), backward finite\n", fm->name,
                   fm->variants[v], r.terms[0], r.terms[1]);
            model_run_destroy(&r);
        }
    }
    assert_true(nfit > 0);
    printf("  fitting methods: %s\n", fitting);
    // A sequence method is refused, and the message lists every fitting method.
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) {
        if (fusion_methods[i]->kind != FUSION_SEQUENCE) continue;
        model_config c = default_config(fusion_methods[i]->name, 4);
        model m;
        fb_layout P, A;
        fb_layout_init(&P, 2); fb_layout_init(&A, 2);
        assert_int_equal(model_create(&m, &scenario_multimodal, &c, &P, &A), FB_ERR_CONFIG);
        const char *msg = fb_last_error();
        assert_non_null(strstr(msg, fusion_methods[i]->name));
        assert_non_null(strstr(msg, "sequence method"));
        assert_non_null(strstr(msg, fitting));
        assert_int_equal(P.count, 0);
        fb_layout_free(&P); fb_layout_free(&A);
        static int shown;
        if (!shown++) printf("  refused: %s\n", msg);
    }
}

// ---- decomposition ----

static int rows_equal(const float *a, const float *b, size_t n, double tol, double *err) {
    double e = 0, scale = 0;
    for (size_t i = 0; i < n; i++) { e = fmax(e, fabs(a[i] - b[i])); scale = fmax(scale, fabs(b[i])); }
    *err = scale > 0 ? e / scale : e;
    return *err <= tol;
}

// Logits of rows [k, N) run alone with first = k vs the same rows of the whole batch (training).
// Returns 1 when equal within 1e-6 (the GEMMs may round a row differently with fewer rows).
static int decomposed_logits_match(const char *method, int variant, int training, double *err, int *bitwise) {
    const int N = 12, k = 5;
    model_config c = default_config(method, N);
    c.D = 32;
    c.variant = variant;
    mm_run r;
    if (run_setup(&r, &c, 500) != FB_OK) fail_msg("%s: %s", method, fb_last_error());
    const int C = r.m.out_dim;
    r.b.training = training;
    r.b.step = 9;
    run_forward_loss(&r);
    float *full = alloc_floats((size_t)N * C);
    memcpy(full, r.out, (size_t)N * C * sizeof(float));
    model_batch part = {.B = N - k, .x = r.x + (size_t)k * r.m.in_stride, .y = r.y + (size_t)k * r.m.y_stride,
                        .first = k, .step = 9, .training = training};
    if (r.m.s->forward(&r.m, &part, r.out) != FB_OK) fail_msg("%s: %s", method, fb_last_error());
    *bitwise = bitwise_equal(r.out, full + (size_t)k * C, (size_t)(N - k) * C);
    int ok = rows_equal(r.out, full + (size_t)k * C, (size_t)(N - k) * C, 1e-6, err);
    free(full);
    model_run_destroy(&r);
    return ok;
}

static void test_decomposition(void **state) {
    (void)state;
    const int N = 12, k = 5;
    model_config c = default_config("gated", N);
    mm_run r;
    if (run_setup(&r, &c, 200) != FB_OK) fail_msg("%s", fb_last_error());
    const int C = r.m.out_dim;
    const model *m = &r.m;
    r.b.training = 1;
    r.b.step = 4;
    run_step(&r);   // the whole batch: logits, terms, dout, gradients
    float *full_out = alloc_floats((size_t)N * C), *full_dout = alloc_floats((size_t)N * C);
    float *full_grad = alloc_floats(r.P.total), *sum_grad = alloc_floats(r.P.total);
    memcpy(full_out, r.out, (size_t)N * C * sizeof(float));
    memcpy(full_dout, r.dout, (size_t)N * C * sizeof(float));
    memcpy(full_grad, r.P.base[1], r.P.total * sizeof(float));
    double whole[MODEL_MAX_TERMS];
    memcpy(whole, r.terms, sizeof whole);

    // Loss terms of [0, k) and [k, N) of the N rows sum to the whole; their dout rows are bitwise
    // the whole run's.
    double t0[MODEL_MAX_TERMS], t1[MODEL_MAX_TERMS];
    float *d = alloc_floats((size_t)N * C);
    assert_int_equal(m->s->loss(m, full_out, r.y, N, 0, k, 0, t0, d), FB_OK);
    assert_int_equal(m->s->loss(m, full_out, r.y, N, k, N, 0, t1, d + (size_t)k * C), FB_OK);
    for (int t = 0; t < m->n_terms; t++) {
        double e = fabs(t0[t] + t1[t] - whole[t]);
        printf("  decomposition: term %-4s [0,%d) %.9f + [%d,%d) %.9f vs whole %.9f (diff %.1e)\n", m->term_names[t], k,
               t0[t], k, N, t1[t], whole[t], e);
        assert_true(e <= 1e-12 * fmax(1.0, fabs(whole[t])));
    }
    if (!bitwise_equal(d, full_dout, (size_t)N * C)) fail_msg("dout rows of a decomposed loss differ from the whole's");

    // Rows [k, N) alone with first = k: the dropout masks, and so the logits, of the whole batch;
    // with first = 0 they differ (the check would notice a mask ignoring `first`).
    model_batch part[2] = {
        {.B = k, .x = r.x, .y = r.y, .first = 0, .step = 4, .training = 1},
        {.B = N - k, .x = r.x + (size_t)k * m->in_stride, .y = r.y + (size_t)k * m->y_stride, .first = k, .step = 4, .training = 1},
    };
    model_batch wrong = part[1];
    wrong.first = 0;
    assert_int_equal(m->s->forward(&r.m, &wrong, r.out), FB_OK);
    double err;
    assert_false(rows_equal(r.out, full_out + (size_t)k * C, (size_t)(N - k) * C, 1e-6, &err));
    // Each part: forward, backward with the whole's dout rows; gradients summed over the parts equal
    // the whole's.
    fb_layout_zero(&r.P, 1);
    for (int p = 0; p < 2; p++) {
        const int r0 = p ? k : 0;
        assert_int_equal(m->s->forward(&r.m, &part[p], r.out), FB_OK);
        double e;
        int bits = bitwise_equal(r.out, full_out + (size_t)r0 * C, (size_t)part[p].B * C);
        if (!rows_equal(r.out, full_out + (size_t)r0 * C, (size_t)part[p].B * C, 1e-6, &e))
            fail_msg("rows [%d, %d) alone with first = %d: logits off by %.2e", r0, r0 + part[p].B, r0, e);
        printf("  decomposition: logits of rows [%d,%d) alone (first = %d, dropout on) %s (err %.1e)\n", r0,
               r0 + part[p].B, r0, bits ? "bitwise equal" : "equal", e);
        assert_int_equal(m->s->backward(&r.m, &part[p], full_dout + (size_t)r0 * C), FB_OK);
    }
    memcpy(sum_grad, r.P.base[1], r.P.total * sizeof(float));
    for (int i = 0; i < r.P.count; i++) {
        const size_t off = r.P.tensors[i].offset, n = r.P.tensors[i].numel;
        if (!rows_equal(sum_grad + off, full_grad + off, n, 1e-5, &err))
            fail_msg("gradient of %s summed over two parts off by %.2e", r.P.tensors[i].name, err);
    }
    printf("  decomposition: parameter gradients of the two parts sum to the whole's\n");
    free(full_out); free(full_dout); free(full_grad); free(sum_grad); free(d);
    model_run_destroy(&r);

    // Every fitting method and variant keeps the decomposition in training (dropout on) and in
    // evaluation: the model's dropout and the method's own randomness (inner dropout, sampled
    // routes, modality masks) follow the global row through first (the keys' row0).
    char differ[1024] = "";
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) {
        const fusion_method *fm = fusion_methods[i];
        char why[256];
        if (scenario_multimodal.fits(fm, why, sizeof why) != 0) continue;
        for (int v = 0; v == 0 || (v < FUSION_MAX_VARIANTS && fm->variants[v]); v++) {
            int bits, bits_eval;
            double e, e_eval;
            const int ok_train = decomposed_logits_match(fm->name, v, 1, &e, &bits);
            const int ok_eval = decomposed_logits_match(fm->name, v, 0, &e_eval, &bits_eval);
            char name[96];
            snprintf(name, sizeof name, "%s/%s", fm->name, fm->variants[v] ? fm->variants[v] : "default");
            printf("  decomposition %-44s training: %-9s (err %.1e)  evaluation: %-9s (err %.1e)\n", name,
                   ok_train ? (bits ? "bitwise" : "equal") : "DIFFERS", e,
                   ok_eval ? (bits_eval ? "bitwise" : "equal") : "DIFFERS", e_eval);
            if (!ok_train || !ok_eval) snprintf(differ + strlen(differ), sizeof differ - strlen(differ), " %s", name);
        }
    }
    if (*differ) fail_msg("rows [k, N) alone with first = k differ from the whole batch's for:%s", differ);
}

// ---- threads ----

static void test_threads_bitwise(void **state) {
    (void)state;
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) {
        const fusion_method *fm = fusion_methods[i];
        char why[256];
        if (scenario_multimodal.fits(fm, why, sizeof why) != 0) continue;
        float *res[2][3];
        double terms[2][MODEL_MAX_TERMS];
        size_t n[3];
        for (int t = 0; t < 2; t++) {
            set_threads(t + 1);
            model_config c = default_config(fm->name, 96);
            mm_run r;
            if (run_setup(&r, &c, 7) != FB_OK) fail_msg("%s: %s", fm->name, fb_last_error());
            r.b.training = 1;
            r.b.step = 2;
            r.b.first = 96;
            run_step(&r);
            memcpy(terms[t], r.terms, sizeof terms[t]);
            float *bufs[3] = {r.out, r.dout, r.P.base[1]};
            size_t sizes[3] = {(size_t)96 * r.m.out_dim, (size_t)96 * r.m.out_dim, r.P.total};
            for (int k = 0; k < 3; k++) {
                n[k] = sizes[k];
                res[t][k] = alloc_floats(n[k]);
                memcpy(res[t][k], bufs[k], n[k] * sizeof(float));
            }
            model_run_destroy(&r);
        }
        set_threads(2);
        const char *what[3] = {"logits", "dout", "parameter gradients"};
        for (int k = 0; k < 3; k++) {
            if (!bitwise_equal(res[0][k], res[1][k], n[k])) fail_msg("%s: %s differ between 1 and 2 threads", fm->name, what[k]);
            free(res[0][k]); free(res[1][k]);
        }
        if (memcmp(terms[0], terms[1], sizeof terms[0])) fail_msg("%s: loss terms differ between 1 and 2 threads", fm->name);
        printf("  threads %-24s 1 vs 2 threads bitwise identical\n", fm->name);
    }
}

// ---- the generator's design ----

// With the default strengths: the modes come in the designed fractions; a modality's code is
// decodable where it is informative (nearest class centroid, fitted on the samples whose label IS
// that code); in mode "both" the label is independent of either decoded code (chance accuracy for
// any function of a alone, or of b alone) and determined by the two together; an uninformative
// modality is recognisable by its energy.
static void test_generator_design(void **state) {
    (void)state;
    model_config c = default_config("gated", 1);
    mm_run r;
    if (run_setup(&r, &c, 0) != FB_OK) fail_msg("%s", fb_last_error());
    const model *m = &r.m;
    const int C = m->c.classes, fa = m->c.feat_a, fb = m->c.feat_b, in = m->in_stride, Ntr = 3000, Nte = 3000;
    float *x = alloc_floats((size_t)(Ntr + Nte) * in), *y = alloc_floats((size_t)(Ntr + Nte) * m->y_stride);
    for (int i = 0; i < Ntr + Nte; i++) m->s->sample(m, (uint64_t)i, x + (size_t)i * in, y + (size_t)i * m->y_stride);
    // Centroids of a over the a_only training samples by label (= ua), likewise b over b_only.
    double *ca = calloc((size_t)C * fa, sizeof(double)), *cb = calloc((size_t)C * fb, sizeof(double));
    int *na = calloc((size_t)C, sizeof(int)), *nb = calloc((size_t)C, sizeof(int));
    int modes[3] = {0, 0, 0};   // both, a_only, b_only
    double energy[2][2] = {{0, 0}, {0, 0}};   // mean |a|^2 by a informative (0/1), count
    for (int i = 0; i < Ntr; i++) {
        const float *xi = x + (size_t)i * in, *yi = y + (size_t)i * m->y_stride;
        int label = (int)yi[0], ia = (int)yi[1], ib = (int)yi[2];
        assert_true(label >= 0 && label < C && (ia || ib));
        modes[ia && ib ? 0 : ia ? 1 : 2]++;
        double e = 0;
        for (int j = 0; j < fa; j++) e += (double)xi[j] * xi[j];
        energy[ia][0] += e; energy[ia][1] += 1;
        if (ia && !ib) { for (int j = 0; j < fa; j++) ca[(size_t)label * fa + j] += xi[j]; na[label]++; }
        if (ib && !ia) { for (int j = 0; j < fb; j++) cb[(size_t)label * fb + j] += xi[fa + j]; nb[label]++; }
    }
    printf("  generator: modes both %.3f a_only %.3f b_only %.3f (designed 0.6 0.2 0.2)\n", modes[0] / (double)Ntr,
           modes[1] / (double)Ntr, modes[2] / (double)Ntr);
    assert_true(fabs(modes[1] / (double)Ntr - 0.2) < 0.03 && fabs(modes[2] / (double)Ntr - 0.2) < 0.03);
    double ratio = (energy[1][0] / energy[1][1]) / (energy[0][0] / energy[0][1]);
    printf("  generator: mean |a|^2 informative / uninformative = %.2f\n", ratio);
    assert_true(ratio > 2.0);
    for (int k = 0; k < C; k++) {
        assert_true(na[k] > 0 && nb[k] > 0);
        for (int j = 0; j < fa; j++) ca[(size_t)k * fa + j] /= na[k];
        for (int j = 0; j < fb; j++) cb[(size_t)k * fb + j] /= nb[k];
    }
    // On the test samples: decoded codes, and the table (decoded code, label) per mode.
    int hit[3][3] = {{0}}, count[3] = {0};    // [mode][a alone, b alone, both]
    int *table_a = calloc((size_t)C * C, sizeof(int)), *table_b = calloc((size_t)C * C, sizeof(int));
    for (int i = Ntr; i < Ntr + Nte; i++) {
        const float *xi = x + (size_t)i * in, *yi = y + (size_t)i * m->y_stride;
        int label = (int)yi[0], ia = (int)yi[1], ib = (int)yi[2], mode = ia && ib ? 0 : ia ? 1 : 2;
        int da = 0, db = 0;
        double best_a = INFINITY, best_b = INFINITY;
        for (int k = 0; k < C; k++) {
            double sa = 0, sb = 0;
            for (int j = 0; j < fa; j++) { double t = xi[j] - ca[(size_t)k * fa + j]; sa += t * t; }
            for (int j = 0; j < fb; j++) { double t = xi[fa + j] - cb[(size_t)k * fb + j]; sb += t * t; }
            if (sa < best_a) { best_a = sa; da = k; }
            if (sb < best_b) { best_b = sb; db = k; }
        }
        count[mode]++;
        hit[mode][0] += da == label;
        hit[mode][1] += db == label;
        hit[mode][2] += (da + db) % C == label;
        if (mode == 0) { table_a[da * C + label]++; table_b[db * C + label]++; }
    }
    const char *mode_name[3] = {"both", "a_only", "b_only"};
    for (int md = 0; md < 3; md++)
        printf("  generator: mode %-6s accuracy of decode(a) %.3f, decode(b) %.3f, (decode(a)+decode(b)) mod C %.3f\n",
               mode_name[md], hit[md][0] / (double)count[md], hit[md][1] / (double)count[md], hit[md][2] / (double)count[md]);
    const double chance = 1.0 / C, slack = 0.05;
    // Signal where designed: a's code decodes on a_only samples, b's on b_only, both on "both".
    assert_true(hit[1][0] > 0.9 * count[1]);
    assert_true(hit[2][1] > 0.9 * count[2]);
    assert_true(hit[0][2] > 0.8 * count[0]);
    // No signal from one modality alone: mode both (label ⟂ each code) and the other modality's
    // single-signal mode.
    assert_true(hit[0][0] < (chance + slack) * count[0] && hit[0][1] < (chance + slack) * count[0]);
    assert_true(hit[2][0] < (chance + slack) * count[2] && hit[1][1] < (chance + slack) * count[1]);
    // The best any function of a alone can do on mode "both": predict each decoded code's most
    // frequent label.
    int best_a = 0, best_b = 0;
    for (int k = 0; k < C; k++) {
        int ma = 0, mb = 0;
        for (int l = 0; l < C; l++) { if (table_a[k * C + l] > ma) ma = table_a[k * C + l]; if (table_b[k * C + l] > mb) mb = table_b[k * C + l]; }
        best_a += ma; best_b += mb;
    }
    printf("  generator: mode both, best predictor from decode(a) %.3f, from decode(b) %.3f (chance %.3f); "
           "not predictable from a alone for %.0f%% of samples, from b alone for %.0f%%\n",
           best_a / (double)count[0], best_b / (double)count[0], chance, 100.0 * (modes[0] + modes[2]) / Ntr,
           100.0 * (modes[0] + modes[1]) / Ntr);
    assert_true(best_a < (chance + slack) * count[0] && best_b < (chance + slack) * count[0]);
    // Deterministic in (seed, index): the same record again, and another seed gives other data.
    float *x2 = alloc_floats((size_t)in), y2[3];
    m->s->sample(m, 17, x2, y2);
    assert_true(bitwise_equal(x2, x + 17 * (size_t)in, (size_t)in));
    free(x2);
    free(ca); free(cb); free(na); free(nb); free(table_a); free(table_b); free(x); free(y);
    model_run_destroy(&r);
}

// ---- bad inputs ----

static void test_bad_inputs(void **state) {
    (void)state;
    model_config c = tiny_config("gated");
    c.classes = 1;
    model m;
    fb_layout P, A;
    fb_layout_init(&P, 2); fb_layout_init(&A, 2);
    assert_int_equal(model_create(&m, &scenario_multimodal, &c, &P, &A), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "classes=1"));
    fb_layout_free(&P); fb_layout_free(&A);

    mm_run r;
    c = tiny_config("gated");
    if (run_setup(&r, &c, 0) != FB_OK) fail_msg("%s", fb_last_error());
    model_batch big = r.b;
    big.B = c.B + 1;
    assert_int_equal(r.m.s->forward(&r.m, &big, r.out), FB_ERR_SHAPE);
    run_forward_loss(&r);
    r.y[r.m.y_stride * 2] = 3.0f;   // class 3 of 3
    assert_int_equal(r.m.s->loss(&r.m, r.out, r.y, c.B, 0, c.B, 0, r.terms, r.dout), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "row 2"));
    assert_int_equal(r.m.s->loss(&r.m, r.out, r.y, c.B, 2, 2, 0, r.terms, r.dout), FB_ERR_SHAPE);
    model_run_destroy(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch),
        cmocka_unit_test(test_generator_twin),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_every_method),
        cmocka_unit_test(test_decomposition),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_generator_design),
        cmocka_unit_test(test_bad_inputs),
    };
    int failed = cmocka_run_group_tests_name("scenario_multimodal", tests, NULL, NULL);
    report_worst();
    return failed;
}
