// Every fusion method in the table, generically: PyTorch fixtures (every output, input gradient
// and parameter gradient, loaded and compared by layout name), finite differences, 1 vs 2 threads,
// row decomposition (c.rng.row0), canaries, and bad inputs. A method in methods.def without a
// fixture case fails here.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/fusion/fusion.h"

typedef struct {
    fusion f;
    fb_layout P, A;
    float *a, *b, *out, *dout, *da, *db;
    size_t na, nb, nout;
} fusion_run;

static fb_status run_setup(fusion_run *r, const fusion_method *m, const fusion_config *c) {
    memset(r, 0, sizeof *r);
    fb_layout_canaries = 1;
    fb_layout_init(&r->P, 2);
    fb_layout_init(&r->A, 2);
    fb_status s = fusion_create(&r->f, m, c, &r->P, &r->A);
    if (s != FB_OK) { fb_layout_free(&r->P); fb_layout_free(&r->A); return s; }
    assert_int_equal(fb_layout_alloc(&r->P), FB_OK);
    assert_int_equal(fb_layout_alloc(&r->A), FB_OK);
    fb_layout_initialize(&r->P, 99);
    r->na = (size_t)c->B * c->S * c->D;
    r->nb = (size_t)c->B * c->T * c->E;
    r->nout = fusion_out_size(&r->f);
    r->a = alloc_floats(r->na); r->da = alloc_floats(r->na);
    r->b = alloc_floats(r->nb); r->db = alloc_floats(r->nb);
    r->out = alloc_floats(r->nout); r->dout = alloc_floats(r->nout);
    return FB_OK;
}

static void run_teardown(fusion_run *r) {
    assert_int_equal(fb_layout_check_canaries(&r->P), 0);
    assert_int_equal(fb_layout_check_canaries(&r->A), 0);
    fusion_destroy(&r->f);
    fb_layout_free(&r->P); fb_layout_free(&r->A);
    free(r->a); free(r->b); free(r->out); free(r->dout); free(r->da); free(r->db);
}

static void run_forward_backward(fusion_run *r) {
    fb_layout_zero(&r->P, 1);
    memset(r->da, 0, r->na * sizeof(float));
    memset(r->db, 0, r->nb * sizeof(float));
    if (fusion_forward(&r->f, r->out, r->a, r->b) != FB_OK) fail_msg("forward: %s", fb_last_error());
    if (fusion_backward(&r->f, r->da, r->db, r->dout, r->a, r->b) != FB_OK) fail_msg("backward: %s", fb_last_error());
}

static double fusion_loss(void *ctx) {
    fusion_run *r = ctx;
    if (fusion_forward(&r->f, r->out, r->a, r->b) != FB_OK) fail_msg("forward: %s", fb_last_error());
    double s = 0;
    for (size_t i = 0; i < r->nout; i++) s += (double)r->dout[i] * r->out[i];
    return s;
}

static double attr_or(const fixture *fx, const char *name, double fallback) {
    return fixture_has_attr(fx, name) ? fixture_double_attr(fx, name) : fallback;
}

// Optional padding masks stored in a fixture as 0/1 values: a_mask (B, S), b_mask (B, T).
static uint8_t *mask_from_fixture(const fixture *fx, const char *name) {
    if (!fixture_has(fx, name)) return NULL;
    size_t n;
    double *v = fixture_doubles(fx, name, &n);
    uint8_t *m = malloc(n);
    for (size_t i = 0; i < n; i++) m[i] = v[i] != 0.0;
    free(v);
    return m;
}

static fusion_config config_from_fixture(const fixture *fx, const fusion_method *m) {
    fusion_config c = fusion_default_config(fixture_int(fx, "B"), fixture_int(fx, "S"), fixture_int(fx, "T"),
                                            fixture_int(fx, "D"), fixture_int(fx, "E"));
    c.prefix = "";   // tensor names then match the PyTorch module's parameter names
    c.H = (int)attr_or(fx, "H", c.H);
    c.F = (int)attr_or(fx, "F", c.F);
    c.L = (int)attr_or(fx, "L", c.L);
    c.layers = (int)attr_or(fx, "layers", c.layers);
    c.dropout = (float)attr_or(fx, "dropout", 0.0);
    c.gate_bias = (float)attr_or(fx, "gate_bias", c.gate_bias);
    c.p_a = (float)attr_or(fx, "p_a", c.p_a);
    c.p_b = (float)attr_or(fx, "p_b", c.p_b);
    c.threshold = (float)attr_or(fx, "threshold", c.threshold);
    c.temperature = (float)attr_or(fx, "temperature", c.temperature);
    c.training = (int)attr_or(fx, "training", 0);
    char variant[64];
    fixture_string_attr(fx, "variant", variant, sizeof variant);
    c.variant = fusion_variant_index(m, variant);
    if (c.variant < 0) fail_msg("%s: fixture variant '%s' unknown to the C method", fx->label, variant);
    return c;
}

typedef struct { const fusion_method *m; char cases[16][64]; int ncases; } case_list;

static herr_t collect_case(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g; (void)info;
    case_list *l = data;
    if (l->ncases < 16) snprintf(l->cases[l->ncases++], 64, "%s", name);
    return 0;
}

static case_list fixture_cases(const fusion_method *m) {
    case_list l = {.m = m};
    char path[1024];
    const char *dir = getenv("FB_FIXTURE_DIR");
    snprintf(path, sizeof path, "%s/fusion/%s.h5", dir ? dir : FB_SOURCE_DIR "/tests/fixtures", m->name);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return l;
    H5Literate(file, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_case, &l);
    H5Fclose(file);
    return l;
}

static void check_case(const fusion_method *m, const char *case_name) {
    char file[96], group[96];
    snprintf(file, sizeof file, "fusion/%s", m->name);
    snprintf(group, sizeof group, "%s/%s", m->name, case_name);
    fixture fx;
    fixture_open(&fx, file, case_name);
    snprintf(fx.label, sizeof fx.label, "%s", group);
    fusion_config c = config_from_fixture(&fx, m);
    double tol = attr_or(&fx, "tol", TOL_TORCH);
    uint8_t *a_mask = mask_from_fixture(&fx, "a_mask"), *b_mask = mask_from_fixture(&fx, "b_mask");
    c.a_mask = a_mask;
    c.b_mask = b_mask;
    fusion_run r;
    if (run_setup(&r, m, &c) != FB_OK) fail_msg("%s: create failed: %s", group, fb_last_error());
    fixture_load(&fx, "a", r.a, r.na);
    fixture_load(&fx, "b", r.b, r.nb);
    fixture_load(&fx, "dout", r.dout, r.nout);
    char name[160];
    for (int i = 0; i < r.P.count; i++) {
        snprintf(name, sizeof name, "param/%s", r.P.tensors[i].name);
        if (!fixture_has(&fx, name)) fail_msg("%s: the PyTorch module has no parameter %s", group, r.P.tensors[i].name);
        fixture_load(&fx, name, fb_layout_ptr(&r.P, 0, i), r.P.tensors[i].numel);
    }
    if (fixture_has(&fx, "param")) {  // and PyTorch has no parameter we lack
        hid_t pg = H5Gopen2(fx.group, "param", H5P_DEFAULT);
        H5G_info_t info;
        H5Gget_info(pg, &info);
        H5Gclose(pg);
        if ((int)info.nlinks != r.P.count)
            fail_msg("%s: PyTorch has %d parameters, the C method %d", group, (int)info.nlinks, r.P.count);
    } else if (r.P.count) fail_msg("%s: PyTorch module has no parameters, the C method %d", group, r.P.count);

    run_forward_backward(&r);
    check_against(&fx, "out", r.out, r.nout, tol);
    check_against(&fx, "da", r.da, r.na, tol);
    check_against(&fx, "db", r.db, r.nb, tol);
    for (int i = 0; i < r.P.count; i++) {
        snprintf(name, sizeof name, "grad/%s", r.P.tensors[i].name);
        check_against(&fx, name, fb_layout_ptr(&r.P, 1, i), r.P.tensors[i].numel, tol);
    }

    // Finite differences on the same case: every input and parameter.
    int nvars = 2 + r.P.count;
    fd_var *vars = calloc((size_t)nvars, sizeof *vars);
    vars[0] = (fd_var){"a", r.a, r.na, r.da};
    vars[1] = (fd_var){"b", r.b, r.nb, r.db};
    for (int i = 0; i < r.P.count; i++)
        vars[2 + i] = (fd_var){r.P.tensors[i].name, fb_layout_ptr(&r.P, 0, i), r.P.tensors[i].numel, fb_layout_ptr(&r.P, 1, i)};
    // The loss is smooth at the fixture points; float32 rounding in the forward sums over 2h
    // bounds the error at ~1e-7 * |L| / h, so 5e-3 relative to the largest gradient is ample.
    fd_check(group, fusion_loss, &r, vars, nvars, (float)attr_or(&fx, "fd_h", 1e-2), 12, attr_or(&fx, "fd_tol", 5e-3));
    free(vars);
    fixture_close(&fx);
    run_teardown(&r);
    free(a_mask);
    free(b_mask);
}

static void test_torch_and_fd(void **state) {
    (void)state;
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) {
        case_list l = fixture_cases(fusion_methods[i]);
        if (l.ncases == 0) fail_msg("method %s has no PyTorch fixture (tests/refs/fusion/%s.py)", fusion_methods[i]->name, fusion_methods[i]->name);
        for (int k = 0; k < l.ncases; k++) check_case(fusion_methods[i], l.cases[k]);
    }
}

// Every method, default variant, at a size that goes parallel: 1 and 2 threads must agree bit for
// bit (kernels fix every reduction order; OpenBLAS never splits a GEMM's K dimension).
static void test_threads_bitwise(void **state) {
    (void)state;
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) {
        const fusion_method *m = fusion_methods[i];
        fusion_config c = m->kind == FUSION_VECTOR ? fusion_default_config(300, 1, 1, 96, 96)
                                                   : fusion_default_config(12, 40, 5, 64, 64);  // B*S = 480 rows > OpenBLAS K block
        float *res[2][4];
        size_t sizes[4];
        for (int t = 0; t < 2; t++) {
            set_threads(t + 1);
            fusion_run r;
            if (run_setup(&r, m, &c) != FB_OK) fail_msg("%s: %s", m->name, fb_last_error());
            fill_uniform(r.a, r.na, 5, 1.0f);
            fill_uniform(r.b, r.nb, 6, 1.0f);
            fill_uniform(r.dout, r.nout, 7, 1.0f);
            run_forward_backward(&r);
            float *bufs[4] = {r.out, r.da, r.db, r.P.base[1]};
            size_t n[4] = {r.nout, r.na, r.nb, r.P.total};
            for (int k = 0; k < 4; k++) {
                sizes[k] = n[k];
                res[t][k] = alloc_floats(n[k]);
                if (n[k]) memcpy(res[t][k], bufs[k], n[k] * sizeof(float));
            }
            run_teardown(&r);
        }
        set_threads(2);
        const char *what[4] = {"out", "da", "db", "parameter gradients"};
        for (int k = 0; k < 4; k++) {
            if (!bitwise_equal(res[0][k], res[1][k], sizes[k]))
                fail_msg("%s: %s differ between 1 and 2 threads", m->name, what[k]);
            free(res[0][k]); free(res[1][k]);
        }
        printf("  threads %-24s 1 vs 2 threads bitwise identical\n", m->name);
    }
}

// Row decomposition: every method and variant, in training with its randomness live (dropout 0.1,
// modality masks p = 0.5, sampled routes; shomr's threshold low enough that samples take every
// route), over three steps. Samples [k, B) run alone — a method created for B - k samples with the
// same parameters, c.rng.row0 = k — give the whole batch's output rows, input-gradient rows and
// routes bit for bit: every draw follows the sample's global row (and a draw made once for the
// whole batch does not depend on row0). Printed per case: the routes the part took, whether the
// method has randomness (its output changes with the step) and in how many rows the tail with
// row0 = 0 differs (all, for per-sample draws). Sizes keep every part's products at 25+ rows of 64
// outputs (a routed path's too: 200 vector samples): OpenBLAS rounds a small product (rows x
// outputs below ~1200) differently at another row count.
static void decomposition_case(const fusion_method *m, int variant) {
    const int vec = m->kind == FUSION_VECTOR, B = vec ? 320 : 40, k = vec ? 120 : 15, steps = 3;
    fusion_config c = vec ? fusion_default_config(B, 1, 1, 64, 64) : fusion_default_config(B, 4, 3, 64, 64);
    c.F = 128;       // small inner widths and depths keep the deep methods quick
    c.L = 8;
    c.layers = 2;
    c.threshold = 0.52f;
    c.p_a = c.p_b = 0.5f;
    c.variant = variant;
    fusion_run w, t;
    if (run_setup(&w, m, &c) != FB_OK) fail_msg("%s: %s", m->name, fb_last_error());
    fusion_config ct = c;
    ct.B = B - k;
    ct.rng.row0 = (uint64_t)k;
    if (run_setup(&t, m, &ct) != FB_OK) fail_msg("%s: %s", m->name, fb_last_error());
    fill_uniform(w.a, w.na, 11, 1.0f);
    fill_uniform(w.b, w.nb, 12, 1.0f);
    fill_uniform(w.dout, w.nout, 13, 1.0f);
    const size_t ra = w.na / B, rb = w.nb / B, ro = w.nout / B;   // floats per sample
    int tail[320];
    for (int r = 0; r < B - k; r++) tail[r] = k + r;
    gather_rows(t.a, w.a, tail, B - k, ra);
    gather_rows(t.b, w.b, tail, B - k, rb);
    gather_rows(t.dout, w.dout, tail, B - k, ro);

    float *first = alloc_floats(w.nout), *again = alloc_floats(w.nout);
    int dout = 0, dgrad = 0, droutes = 0, local = 0, random = 0, counts[8] = {0};
    for (int step = 0; step < steps; step++) {
        w.f.c.rng.step = t.f.c.rng.step = 5 + (uint32_t)step;
        t.f.c.rng.row0 = (uint64_t)k;
        run_forward_backward(&w);
        run_forward_backward(&t);
        dout += rows_differing(t.out, w.out, tail, B - k, ro);
        dgrad += rows_differing(t.da, w.da, tail, B - k, ra) + rows_differing(t.db, w.db, tail, B - k, rb);
        if (w.f.diag.routes) {
            if (!t.f.diag.routes) fail_msg("%s: routes in the whole batch, none in the part", m->name);
            for (int r = 0; r < B - k; r++) {
                droutes += t.f.diag.routes[r] != w.f.diag.routes[k + r];
                if (t.f.diag.routes[r] >= 0 && t.f.diag.routes[r] < 8) counts[t.f.diag.routes[r]]++;
            }
        }
        if (step == 0) memcpy(first, w.out, w.nout * sizeof(float));
        else random |= !bitwise_equal(first, w.out, w.nout);
        t.f.c.rng.row0 = 0;   // the tail as if it were a whole batch
        if (fusion_forward(&t.f, again, t.a, t.b) != FB_OK) fail_msg("%s: %s", m->name, fb_last_error());
        local += rows_differing(again, w.out, tail, B - k, ro);
    }
    char name[96], used[64] = "";
    snprintf(name, sizeof name, "%s/%s", m->name, m->variants[variant] ? m->variants[variant] : "default");
    for (int e = 0; w.f.diag.routes && e < w.f.diag.experts && e < 8; e++)
        snprintf(used + strlen(used), sizeof used - strlen(used), "%s%d", e ? "/" : " (", counts[e]);
    if (*used) snprintf(used + strlen(used), sizeof used - strlen(used), ")");
    printf("  decomposition %-44s [%d,%d) row0=%d, %d steps: %d of %d rows differ (out), %d (da, db), %d routes%s; "
           "randomness %s, row0=0 differs in %d rows\n", name, k, B, k, steps, dout, steps * (B - k), dgrad, droutes,
           used, random ? "yes" : "no", local);
    if (dout || dgrad || droutes)
        fail_msg("%s: samples [%d, %d) alone with row0 = %d differ from the whole batch's", name, k, B, k);
    free(first);
    free(again);
    run_teardown(&t);
    run_teardown(&w);
}

// Max |a - b| / max |b| over n floats (0 when both are zero).
static double rel_diff(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return den > 0 ? num / den : num;
}

// A lowered batch (fusion.h: c.B may be lowered between calls). In evaluation no sample sees
// another, so a call on the first k rows with c.B = k must give the whole batch's first k output and
// input-gradient rows, and the parameter gradients of the whole batch whose d(out) rows past k are
// zero (within rounding: OpenBLAS blocks a product differently by row count). A block that kept
// the B it was created with would run stale rows past k through backward.
static void test_lowered_batch(void **state) {
    (void)state;
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) {
        const fusion_method *m = fusion_methods[i];
        const int vec = m->kind == FUSION_VECTOR, B = vec ? 96 : 12, k = vec ? 40 : 5;
        fusion_config c = vec ? fusion_default_config(B, 1, 1, 64, 64) : fusion_default_config(B, 4, 3, 64, 64);
        c.F = 128;
        c.L = 8;
        c.layers = 2;
        c.training = 0;
        fusion_run r;
        if (run_setup(&r, m, &c) != FB_OK) fail_msg("%s: %s", m->name, fb_last_error());
        fill_uniform(r.a, r.na, 21, 1.0f);
        fill_uniform(r.b, r.nb, 22, 1.0f);
        fill_uniform(r.dout, r.nout, 23, 1.0f);
        const size_t ra = r.na / B, rb = r.nb / B, ro = r.nout / B;
        for (size_t j = (size_t)k * ro; j < r.nout; j++) r.dout[j] = 0.0f;   // rows past k count for nothing
        run_forward_backward(&r);
        float *out = alloc_floats(r.nout), *da = alloc_floats(r.na), *db = alloc_floats(r.nb), *dp = alloc_floats(r.P.total);
        memcpy(out, r.out, r.nout * sizeof(float));
        memcpy(da, r.da, r.na * sizeof(float));
        memcpy(db, r.db, r.nb * sizeof(float));
        memcpy(dp, r.P.base[1], r.P.total * sizeof(float));
        // Rows past k change (a lowered call must neither read nor write them).
        fill_uniform(r.a + (size_t)k * ra, r.na - (size_t)k * ra, 31, 1.0f);
        fill_uniform(r.b + (size_t)k * rb, r.nb - (size_t)k * rb, 32, 1.0f);
        fill_uniform(r.dout + (size_t)k * ro, r.nout - (size_t)k * ro, 33, 1.0f);
        r.f.c.B = k;
        run_forward_backward(&r);
        const double e_out = rel_diff(r.out, out, (size_t)k * ro), e_da = rel_diff(r.da, da, (size_t)k * ra),
                     e_db = rel_diff(r.db, db, (size_t)k * rb);
        double e_p = 0;
        for (int t = 0; t < r.P.count; t++) {   // per tensor: the padding holds canaries
            const fb_tensor *tt = &r.P.tensors[t];
            e_p = fmax(e_p, rel_diff(r.P.base[1] + tt->offset, dp + tt->offset, tt->numel));
        }
        printf("  lowered %-24s c.B %d -> %d: out %.1e, da %.1e, db %.1e, parameter gradients %.1e\n", m->name, B, k,
               e_out, e_da, e_db, e_p);
        if (e_out > 1e-5 || e_da > 1e-5 || e_db > 1e-5 || e_p > 1e-5)
            fail_msg("%s: a call with c.B lowered to %d differs from the whole batch's first %d rows", m->name, k, k);
        r.f.c.B = B;
        free(out); free(da); free(db); free(dp);
        run_teardown(&r);
    }
}

static void test_decomposition(void **state) {
    (void)state;
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) {
        const fusion_method *m = fusion_methods[i];
        for (int v = 0; v == 0 || (v < FUSION_MAX_VARIANTS && m->variants[v]); v++) decomposition_case(m, v);
    }
}

static void test_bad_inputs(void **state) {
    (void)state;
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) {
        const fusion_method *m = fusion_methods[i];
        fusion_config c = m->kind == FUSION_VECTOR ? fusion_default_config(4, 1, 1, 16, 16)
                                                   : fusion_default_config(2, 5, 3, 16, 16);
        fusion f;
        fb_layout P, A;
        fb_layout_init(&P, 2); fb_layout_init(&A, 2);
        fusion_config zero_tokens = c;
        zero_tokens.T = 0;
        assert_int_equal(fusion_create(&f, m, &zero_tokens, &P, &A), FB_ERR_SHAPE);
        assert_non_null(strstr(fb_last_error(), m->name));
        fusion_config bad_variant = c;
        bad_variant.variant = FUSION_MAX_VARIANTS;
        assert_int_equal(fusion_create(&f, m, &bad_variant, &P, &A), FB_ERR_CONFIG);
        fb_layout_free(&P); fb_layout_free(&A);

        // NaN in an input: the documented result is that it propagates to the output, as in
        // PyTorch (the harness's NaN/Inf counters report it), unless the method's design drops
        // that input (a route or modality mask that skips a); either way no crash, no stray write.
        fusion_run r;
        if (run_setup(&r, m, &c) != FB_OK) fail_msg("%s: %s", m->name, fb_last_error());
        fill_uniform(r.a, r.na, 1, 1.0f);
        fill_uniform(r.b, r.nb, 2, 1.0f);
        r.a[0] = NAN;
        fb_status s = fusion_forward(&r.f, r.out, r.a, r.b);
        assert_true(s == FB_OK || s == FB_ERR_NONFINITE);
        int nan_seen = 0;
        for (size_t k = 0; k < r.nout; k++) nan_seen |= isnan(r.out[k]);
        printf("  nan   %-24s NaN in a: %s\n", m->name, s != FB_OK ? "refused" : nan_seen ? "propagates to out" : "dropped by the method");
        if (!strcmp(m->name, "add") || !strcmp(m->name, "mul") || !strcmp(m->name, "gated")) assert_true(nan_seen);
        run_teardown(&r);
    }
}

// Widths that do not match a method that needs equal widths are refused with both numbers named.
static void test_mismatched_widths(void **state) {
    (void)state;
    const char *equal_width[] = {"add", "mul"};
    for (size_t i = 0; i < sizeof equal_width / sizeof *equal_width; i++) {
        const fusion_method *m = fusion_find(equal_width[i]);
        assert_non_null(m);
        fusion_config c = fusion_default_config(4, 1, 1, 16, 12);
        fusion f;
        fb_layout P, A;
        fb_layout_init(&P, 2); fb_layout_init(&A, 2);
        assert_int_equal(fusion_create(&f, m, &c, &P, &A), FB_ERR_SHAPE);
        assert_non_null(strstr(fb_last_error(), "E=12"));
        fb_layout_free(&P); fb_layout_free(&A);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_and_fd),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_decomposition),
        cmocka_unit_test(test_lowered_batch),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_mismatched_widths),
    };
    int failed = cmocka_run_group_tests_name("fusion", tests, NULL, NULL);
    report_worst();
    return failed;
}
