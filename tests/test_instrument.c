// The kernels' and scenarios' hooks for the training monitor: module tags on activation tensors
// (kernels/layout.h: every scenario tags each kind of module it has, and after a forward pass every
// tagged tensor has a finite, positive mean row norm), fusion call hooks and the last call's
// pointers (kernels/fusion/fusion.h: one enter + leave per fusion call, inputs and gradients seen
// where the scenario keeps them), and model_fusion_points (harness/model.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../harness/model.h"

// What each scenario must show with its default method: the module kinds it has, its fusion
// points, and where point k's a, b and out live in the activation layout (their gradients are the
// same tensors' slot 1).
typedef struct {
    const scenario *s;
    int kinds;                         // bit k: FB_MODULE kind k is tagged at least once
    int n_points;
    const char *names[2], *a[2], *b[2], *out[2];
} expectation;

#define KIND(k) (1 << (k))
static const int all_kinds = KIND(FB_MODULE_LINEAR) | KIND(FB_MODULE_LAYERNORM) | KIND(FB_MODULE_ATTENTION) |
                             KIND(FB_MODULE_FUSION);

static const expectation expected[] = {
    {&scenario_timeseries, all_kinds, 2, {"calendar_fusion", "fusion"},
     {"timeseries.embedding", "timeseries.h2"}, {"timeseries.calendar", "timeseries.celestial_fused"},
     {"timeseries.h0", "timeseries.fused"}},
    {&scenario_multimodal, KIND(FB_MODULE_LINEAR) | KIND(FB_MODULE_FUSION), 1, {"fusion"},
     {"multimodal.pa"}, {"multimodal.pb"}, {"multimodal.fused"}},
    {&scenario_microbiome, all_kinds, 1, {"fusion"},
     {"sample_encoder.y"}, {"categorical.tokens"}, {"fusion_out.z"}},
};

typedef model_run run;

// The scenario with its default method and default sizes, B samples, training with dropout 0.1.
static void run_setup(run *r, const scenario *s, int B) {
    const model_config c = {.method = s->default_method, .B = B, .dropout = 0.1f, .seed = 7};
    if (model_run_create(r, s, &c, 99) != FB_OK) fail_msg("%s: %s", s->name, fb_last_error());
    fill_uniform(r->dout, (size_t)B * r->m.out_dim, 3, 1.0f);
    r->b.step = 1;
    r->b.training = 1;
}

static void run_forward(run *r) {
    if (r->m.s->forward(&r->m, &r->b, r->out) != FB_OK) fail_msg("%s forward: %s", r->m.s->name, fb_last_error());
}

static void run_backward(run *r) {
    fb_layout_zero(&r->P, 1);
    if (r->m.s->backward(&r->m, &r->b, r->dout) != FB_OK) fail_msg("%s backward: %s", r->m.s->name, fb_last_error());
}

// Mean over rows of the L2 norm of each row (cols floats), in double.
static double mean_row_norm(const float *x, size_t rows, int cols) {
    double total = 0.0;
    for (size_t r = 0; r < rows; r++) {
        double ss = 0.0;
        for (int j = 0; j < cols; j++) ss += (double)x[r * cols + j] * x[r * cols + j];
        total += sqrt(ss);
    }
    return total / (double)rows;
}

static const float *tensor(const run *r, int slot, const char *name) {
    const int i = fb_layout_find(&r->A, name);
    if (i < 0) fail_msg("%s: no activation tensor %s", r->m.s->name, name);
    return fb_layout_ptr(&r->A, slot, i);
}

// fb_layout_tag_module: cols 0 is the last dimension; a cols that does not divide, or an index out
// of range, is ignored; names.
static void test_tag_api(void **state) {
    (void)state;
    fb_layout L;
    fb_layout_init(&L, 1);
    const int t = fb_layout_add(&L, "x", "y", 3, (int[]){2, 3, 4}, FB_INIT_ZERO, 0, NULL, NULL);
    assert_int_equal(L.tensors[t].module, FB_MODULE_NONE);
    fb_layout_tag_module(&L, t, FB_MODULE_LINEAR, 0);
    assert_int_equal(L.tensors[t].module, FB_MODULE_LINEAR);
    assert_int_equal(L.tensors[t].module_cols, 4);
    fb_layout_tag_module(&L, t, FB_MODULE_FUSION, 12);
    assert_int_equal(L.tensors[t].module, FB_MODULE_FUSION);
    assert_int_equal(L.tensors[t].module_cols, 12);
    fb_layout_tag_module(&L, t, FB_MODULE_LAYERNORM, 5);   // 24 % 5 != 0: ignored
    fb_layout_tag_module(&L, t + 1, FB_MODULE_LAYERNORM, 0);
    assert_int_equal(L.tensors[t].module, FB_MODULE_FUSION);
    assert_string_equal(fb_module_name(FB_MODULE_LINEAR), "linear");
    assert_string_equal(fb_module_name(FB_MODULE_LAYERNORM), "layernorm");
    assert_string_equal(fb_module_name(FB_MODULE_ATTENTION), "attention");
    assert_string_equal(fb_module_name(FB_MODULE_FUSION), "fusion");
    fb_layout_free(&L);
}

// Every scenario, default method: after one training forward pass, each kind of module it has is
// tagged at least once, and every tagged tensor has a finite, positive mean row norm.
static void test_module_tags(void **state) {
    (void)state;
    for (size_t e = 0; e < sizeof expected / sizeof *expected; e++) {
        const expectation *x = &expected[e];
        run r;
        run_setup(&r, x->s, 4);
        run_forward(&r);
        int count[FB_MODULE_COUNT] = {0}, kinds = 0;
        printf("  %s (%s):\n", x->s->name, x->s->default_method);
        for (int i = 0; i < r.A.count; i++) {
            const fb_tensor *t = &r.A.tensors[i];
            if (t->module == FB_MODULE_NONE) continue;
            assert_true(t->module > FB_MODULE_NONE && t->module < FB_MODULE_COUNT);
            assert_true(t->module_cols > 0 && t->numel % (size_t)t->module_cols == 0);
            const size_t rows = t->numel / (size_t)t->module_cols;
            const double norm = mean_row_norm(fb_layout_ptr(&r.A, 0, i), rows, t->module_cols);
            printf("    %-10s %-44s rows %6zu x %4d  mean row norm %.4g\n", fb_module_name(t->module), t->name, rows,
                   t->module_cols, norm);
            if (!(isfinite(norm) && norm > 0.0))
                fail_msg("%s: tagged tensor %s has mean row norm %g after forward", x->s->name, t->name, norm);
            count[t->module]++;
            kinds |= KIND(t->module);
        }
        printf("    tagged: linear %d, layernorm %d, attention %d, fusion %d\n", count[FB_MODULE_LINEAR],
               count[FB_MODULE_LAYERNORM], count[FB_MODULE_ATTENTION], count[FB_MODULE_FUSION]);
        if (kinds != x->kinds)
            fail_msg("%s: kinds tagged 0x%x, expected 0x%x (bit k: fb_module_kind k)", x->s->name, kinds, x->kinds);
        model_run_destroy(&r);
    }
}

// A counting pair of hooks: calls per direction, and whether every enter was followed by its
// leave on the same fusion, with the call's pointers set inside.
typedef struct {
    int enter[2], leave[2], bad;
    const fusion *inside;
} hook_count;

static void count_enter(void *ctx, const fusion *f, int backward) {
    hook_count *h = ctx;
    h->bad += h->inside != NULL || !f->last_a || !f->last_b || !(backward ? f->last_dout : f->last_out);
    h->inside = f;
    h->enter[backward]++;
}

static void count_leave(void *ctx, const fusion *f, int backward) {
    hook_count *h = ctx;
    h->bad += h->inside != f;
    h->inside = NULL;
    h->leave[backward]++;
}

// Every scenario, default method: model_fusion_points names the points; the hooks see one enter and
// one leave per fusion call (n_points per pass), and the last call's pointers are the scenario's
// tensors (inputs after forward; inputs and their gradients after backward).
static void test_hooks_and_points(void **state) {
    (void)state;
    for (size_t e = 0; e < sizeof expected / sizeof *expected; e++) {
        const expectation *x = &expected[e];
        run r;
        run_setup(&r, x->s, 4);
        fusion *points[MODEL_MAX_FUSION_POINTS];
        const char *names[MODEL_MAX_FUSION_POINTS];
        const int n = model_fusion_points(&r.m, points, names, MODEL_MAX_FUSION_POINTS);
        assert_int_equal(n, x->n_points);
        assert_int_equal(model_fusion_points(&r.m, NULL, NULL, 1), 1);
        for (int k = 0; k < n; k++) {
            assert_string_equal(names[k], x->names[k]);
            assert_null(points[k]->last_a);   // no call yet
        }

        hook_count h = {0};
        fusion_set_hooks(&(fusion_hooks){.enter = count_enter, .leave = count_leave, .ctx = &h});
        run_forward(&r);
        assert_true(h.enter[0] == n && h.leave[0] == n && h.enter[1] == 0 && h.leave[1] == 0);
        for (int k = 0; k < n; k++) {
            assert_ptr_equal(points[k]->last_a, tensor(&r, 0, x->a[k]));
            assert_ptr_equal(points[k]->last_b, tensor(&r, 0, x->b[k]));
            assert_ptr_equal(points[k]->last_out, tensor(&r, 0, x->out[k]));
            assert_null(points[k]->last_da);
        }
        run_backward(&r);
        assert_true(h.enter[1] == n && h.leave[1] == n && h.enter[0] == n);
        for (int k = 0; k < n; k++) {
            assert_ptr_equal(points[k]->last_a, tensor(&r, 0, x->a[k]));
            assert_ptr_equal(points[k]->last_da, tensor(&r, 1, x->a[k]));
            assert_ptr_equal(points[k]->last_db, tensor(&r, 1, x->b[k]));
            assert_ptr_equal(points[k]->last_dout, tensor(&r, 1, x->out[k]));
        }
        assert_int_equal(h.bad, 0);
        printf("  %-10s %d fusion point(s) %s%s%s: forward %d enter / %d leave, backward %d / %d\n", x->s->name, n,
               names[0], n > 1 ? ", " : "", n > 1 ? names[1] : "", h.enter[0], h.leave[0], h.enter[1], h.leave[1]);

        fusion_set_hooks(NULL);   // removed: no more calls reach them
        run_forward(&r);
        assert_int_equal(h.enter[0], n);
        for (int k = 0; k < n; k++) assert_null(points[k]->last_da);   // a forward clears the gradients
        model_run_destroy(&r);
    }
}

// A call the wrapper refuses (missing output) never reaches the hooks or the last-call pointers.
static void test_refused_call(void **state) {
    (void)state;
    fb_layout P, A;
    fb_layout_init(&P, 2);
    fb_layout_init(&A, 2);
    fusion f;
    const fusion_config c = fusion_default_config(3, 1, 1, 8, 8);
    assert_int_equal(fusion_create(&f, fusion_find("add"), &c, &P, &A), FB_OK);
    assert_int_equal(fb_layout_alloc(&P), FB_OK);
    assert_int_equal(fb_layout_alloc(&A), FB_OK);
    float a[24] = {0}, b[24] = {0}, out[24];
    hook_count h = {0};
    fusion_set_hooks(&(fusion_hooks){.enter = count_enter, .leave = count_leave, .ctx = &h});
    assert_int_equal(fusion_forward(&f, NULL, a, b), FB_ERR_SHAPE);
    assert_true(h.enter[0] == 0 && h.leave[0] == 0 && f.last_a == NULL);
    assert_int_equal(fusion_forward(&f, out, a, b), FB_OK);
    assert_true(h.enter[0] == 1 && h.leave[0] == 1 && f.last_a == a && f.last_b == b && f.last_out == out);
    fusion_set_hooks(NULL);
    fusion_destroy(&f);
    fb_layout_free(&P);
    fb_layout_free(&A);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tag_api),
        cmocka_unit_test(test_module_tags),
        cmocka_unit_test(test_hooks_and_points),
        cmocka_unit_test(test_refused_call),
    };
    int failed = cmocka_run_group_tests_name("instrument", tests, NULL, NULL);
    report_worst();
    return failed;
}
