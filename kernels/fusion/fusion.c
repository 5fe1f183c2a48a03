#include "fusion.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUSION_METHOD(name) extern const fusion_method fusion_##name;
#include "methods.def"
#undef FUSION_METHOD

#define FUSION_METHOD(name) [FUSION_ID_##name] = &fusion_##name,
const fusion_method *const fusion_methods[FUSION_METHOD_COUNT] = {
#include "methods.def"
};
#undef FUSION_METHOD

const fusion_method *fusion_find(const char *name) {
    for (int i = 0; i < FUSION_METHOD_COUNT; i++)
        if (strcmp(fusion_methods[i]->name, name) == 0) return fusion_methods[i];
    return NULL;
}

int fusion_variant_index(const fusion_method *m, const char *variant) {
    for (int i = 0; i < FUSION_MAX_VARIANTS && m->variants[i]; i++)
        if (strcmp(m->variants[i], variant) == 0) return i;
    return -1;
}

fusion_config fusion_default_config(int B, int S, int T, int D, int E) {
    fusion_config c;
    memset(&c, 0, sizeof c);
    c.prefix = "fusion";
    c.B = B; c.S = S; c.T = T; c.D = D; c.E = E;
    c.H = (D % 8 == 0) ? 8 : 1;
    c.L = 32;
    c.dropout = 0.1f;
    c.gate_bias = -2.0f;
    c.cost_budget = 8.0f;   // energy_aware_adaptive's budget (SOURCE-SYSTEMS 002)
    c.p_a = c.p_b = 0.3f;
    c.threshold = 0.6f;
    c.temperature = 1.0f;
    c.training = 1;
    c.rng.seed = 1234;
    return c;
}

fb_status fusion_create(fusion *f, const fusion_method *m, const fusion_config *c, fb_layout *P, fb_layout *A) {
    memset(f, 0, sizeof *f);
    FB_REQUIRE(m, FB_ERR_CONFIG, "fusion: no method given");
    f->method = m;
    f->c = *c;
    const fusion_config *k = &f->c;
    FB_REQUIRE(k->B > 0 && k->S > 0 && k->T > 0 && k->D > 0 && k->E > 0, FB_ERR_SHAPE,
               "%s: sizes B=%d S=%d T=%d D=%d E=%d must all be > 0 (T=0: no tokens to fuse)",
               m->name, k->B, k->S, k->T, k->D, k->E);
    FB_REQUIRE(m->kind == FUSION_SEQUENCE || (k->S == 1 && k->T == 1), FB_ERR_SHAPE,
               "%s is a vector method: a is (B, D) and b is (B, E); flatten positions into B (got S=%d T=%d)",
               m->name, k->S, k->T);
    int nvariants = 0;
    while (nvariants < FUSION_MAX_VARIANTS && m->variants[nvariants]) nvariants++;
    FB_REQUIRE(k->variant >= 0 && k->variant < (nvariants ? nvariants : 1), FB_ERR_CONFIG,
               "%s: variant %d out of range (it has %d)", m->name, k->variant, nvariants);
    FB_REQUIRE(k->dropout >= 0.0f && k->dropout < 1.0f, FB_ERR_CONFIG,
               "%s: dropout %g outside [0, 1)", m->name, k->dropout);
    f->out_positions = m->kind == FUSION_SEQUENCE ? k->S : 1;
    fb_status s = m->create(f, P, A);
    if (s != FB_OK) fusion_destroy(f);
    return s;
}

// A method's rows are its batch's samples in order: a row map in c.rng would make every inner
// kernel read it as its own rows.
static fb_status fusion_check_rng(const fusion *f) {
    FB_REQUIRE(!f->c.rng.row_map, FB_ERR_CONFIG, "%s: c.rng has a row map; a fusion's rows are its batch's "
               "samples in order (set c.rng.row0 to the first one's global row)", f->method->name);
    return FB_OK;
}

static fusion_hooks fusion_hooks_now;   // all NULL: no hooks

void fusion_set_hooks(const fusion_hooks *h) {
    fusion_hooks_now = h ? *h : (fusion_hooks){0};
}

static void hook_enter(const fusion *f, int backward) {
    if (fusion_hooks_now.enter) fusion_hooks_now.enter(fusion_hooks_now.ctx, f, backward);
}

static void hook_leave(const fusion *f, int backward) {
    if (fusion_hooks_now.leave) fusion_hooks_now.leave(fusion_hooks_now.ctx, f, backward);
}

fb_status fusion_forward(fusion *f, float *out, const float *a, const float *b) {
    FB_REQUIRE(out && a && b, FB_ERR_SHAPE, "%s: missing input or output", f->method->name);
    FB_TRY(fusion_check_rng(f));
    f->last_a = a; f->last_b = b; f->last_out = out;
    f->last_dout = NULL; f->last_da = f->last_db = NULL;
    hook_enter(f, 0);
    const fb_status s = f->method->forward(f, out, a, b);
    hook_leave(f, 0);   // whatever the status: a PAPI interval must close
    // Methods give their weights as (att_rows, att_cols); the positions per sample let a trace
    // compare a sample's query positions (the weights of a single pooled query cannot differ).
    f->diag.att_positions = f->diag.attention && f->c.B > 0 ? f->diag.att_rows / f->c.B : 0;
    return s;
}

fb_status fusion_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b) {
    FB_REQUIRE(dout && a && b, FB_ERR_SHAPE, "%s: missing input or output gradient", f->method->name);
    FB_TRY(fusion_check_rng(f));
    f->last_a = a; f->last_b = b; f->last_dout = dout;
    f->last_da = da; f->last_db = db;
    hook_enter(f, 1);
    const fb_status s = f->method->backward(f, da, db, dout, a, b);
    hook_leave(f, 1);
    return s;
}

void fusion_destroy(fusion *f) {
    if (!f->self) return;   // never created, or already destroyed
    if (f->method && f->method->destroy) f->method->destroy(f);
    else free(f->self);
    f->self = NULL;
}

size_t fusion_out_size(const fusion *f) {
    return (size_t)f->c.B * f->out_positions * f->c.D;
}

const char *fusion_name(const fusion *f, const char *sub, char buf[FB_NAME_MAX]) {
    const char *prefix = f->c.prefix ? f->c.prefix : "";
    snprintf(buf, FB_NAME_MAX, "%s%s%s", prefix, *prefix ? "." : "", sub);
    return buf;
}

fb_rng_key fusion_rng(const fusion *f, uint32_t k) {
    fb_rng_key key = f->c.rng;
    key.site = f->c.rng.site * FUSION_RNG_SITES + k;   // each fusion point owns FUSION_RNG_SITES sites
    return key;
}

fb_status fusion_alloc_self(fusion *f, size_t size) {
    f->self = calloc(1, size);
    return f->self ? FB_OK : fb_fail(FB_ERR_ALLOC, "%s: %zu bytes of state", f->method->name, size);
}
