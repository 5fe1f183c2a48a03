#include "layout.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rng.h"

#define FB_ALIGN_FLOATS 16
#define FB_CANARY_FLOATS 16
static const uint32_t fb_canary_bits = 0x7fc0dead;  // a quiet NaN with a payload nobody computes
int fb_layout_canaries = 0;

void fb_layout_init(fb_layout *L, int nslots) {
    memset(L, 0, sizeof *L);
    L->nslots = nslots < 1 ? 1 : (nslots > FB_MAX_SLOTS ? FB_MAX_SLOTS : nslots);
}

int fb_layout_add(fb_layout *L, const char *prefix, const char *name, int ndim, const int *dims,
                  fb_init_kind init, float init_arg, float **slot0, float **slot1) {
    if (ndim < 1 || ndim > FB_MAX_DIMS) {
        fb_fail(FB_ERR_SHAPE, "tensor %s.%s: %d dimensions (1..%d allowed)", prefix, name, ndim, FB_MAX_DIMS);
        return -1;
    }
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (dims[d] <= 0) {
            fb_fail(FB_ERR_SHAPE, "tensor %s.%s: dimension %d is %d (must be > 0)", prefix, name, d, dims[d]);
            return -1;
        }
        numel *= (size_t)dims[d];
    }
    if (L->count == L->capacity) {
        int cap = L->capacity ? 2 * L->capacity : 32;
        fb_tensor *t = realloc(L->tensors, (size_t)cap * sizeof *t);
        if (!t) { fb_fail(FB_ERR_ALLOC, "layout table growth"); return -1; }
        L->tensors = t; L->capacity = cap;
    }
    fb_tensor *t = &L->tensors[L->count];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s%s%s", prefix ? prefix : "", (prefix && *prefix) ? "." : "", name);
    t->ndim = ndim;
    memcpy(t->shape, dims, (size_t)ndim * sizeof *dims);
    t->numel = numel;
    t->offset = L->total;
    t->slot[0] = slot0;
    t->slot[1] = L->nslots > 1 ? slot1 : NULL;
    t->init = init;
    t->init_arg = init_arg;
    t->canary = fb_layout_canaries;
    size_t padded = (numel + (t->canary ? FB_CANARY_FLOATS : 0) + FB_ALIGN_FLOATS - 1) / FB_ALIGN_FLOATS * FB_ALIGN_FLOATS;
    L->total += padded;
    return L->count++;
}

void fb_layout_set_init(fb_layout *L, int index, fb_init_kind init, float init_arg) {
    if (index >= 0 && index < L->count) { L->tensors[index].init = init; L->tensors[index].init_arg = init_arg; }
}

void fb_layout_tag_module(fb_layout *L, int index, fb_module_kind kind, int cols) {
    if (index < 0 || index >= L->count || (int)kind < 0 || kind >= FB_MODULE_COUNT) return;
    fb_tensor *t = &L->tensors[index];
    if (cols == 0) cols = t->shape[t->ndim - 1];
    if (cols < 0 || t->numel % (size_t)cols != 0) return;
    t->module = kind;
    t->module_cols = kind == FB_MODULE_NONE ? 0 : cols;
}

void fb_layout_mark_grad_free(fb_layout *L, int index) {
    if (index >= 0 && index < L->count) L->tensors[index].grad_free = 1;
}

static const char *const fb_module_names[] = {
    [FB_MODULE_NONE] = "none", [FB_MODULE_LINEAR] = "linear", [FB_MODULE_LAYERNORM] = "layernorm",
    [FB_MODULE_ATTENTION] = "attention", [FB_MODULE_FUSION] = "fusion",
};
_Static_assert(sizeof fb_module_names / sizeof fb_module_names[0] == FB_MODULE_COUNT,
               "every fb_module_kind needs a name");

const char *fb_module_name(fb_module_kind kind) {
    return ((int)kind >= 0 && kind < FB_MODULE_COUNT) ? fb_module_names[kind] : "unknown";
}

float *fb_layout_ptr(const fb_layout *L, int slot, int index) {
    return L->base[slot] + L->tensors[index].offset;
}

fb_status fb_layout_alloc(fb_layout *L) {
    size_t bytes = (L->total ? L->total : FB_ALIGN_FLOATS) * sizeof(float);
    for (int s = 0; s < L->nslots; s++) {
        L->base[s] = aligned_alloc(64, bytes);
        if (!L->base[s]) return fb_fail(FB_ERR_ALLOC, "layout: %zu bytes for slot %d", bytes, s);
        memset(L->base[s], 0, bytes);
        for (int i = 0; i < L->count; i++) {
            fb_tensor *t = &L->tensors[i];
            if (t->slot[s]) *t->slot[s] = L->base[s] + t->offset;
            float *c = L->base[s] + t->offset + t->numel;
            for (int k = 0; t->canary && k < FB_CANARY_FLOATS; k++) memcpy(&c[k], &fb_canary_bits, sizeof(float));
        }
    }
    return FB_OK;
}

void fb_layout_initialize(fb_layout *L, uint64_t seed) {
    for (int i = 0; i < L->count; i++) {
        fb_tensor *t = &L->tensors[i];
        float *p = L->base[0] + t->offset;
        // The init stream of tensor i is (seed, step = all ones, site = i): no training step uses it.
        fb_rng_key key = {.seed = seed, .step = 0xffffffffu, .site = (uint32_t)i};
        for (size_t j = 0; j < t->numel; j++) {
            switch (t->init) {
            case FB_INIT_ZERO: p[j] = 0.0f; break;
            case FB_INIT_CONST: p[j] = t->init_arg; break;
            case FB_INIT_UNIFORM: p[j] = (2.0f * fb_uniform(&key, j) - 1.0f) * t->init_arg; break;
            case FB_INIT_NORMAL: p[j] = fb_normal(&key, j) * t->init_arg; break;
            }
        }
    }
    for (int s = 1; s < L->nslots; s++) fb_layout_zero(L, s);
}

void fb_layout_zero(fb_layout *L, int slot) {
    for (int i = 0; i < L->count; i++)
        memset(L->base[slot] + L->tensors[i].offset, 0, L->tensors[i].numel * sizeof(float));
}

int fb_layout_find(const fb_layout *L, const char *full_name) {
    for (int i = 0; i < L->count; i++)
        if (strcmp(L->tensors[i].name, full_name) == 0) return i;
    return -1;
}

size_t fb_layout_numel(const fb_layout *L) {
    size_t n = 0;
    for (int i = 0; i < L->count; i++) n += L->tensors[i].numel;
    return n;
}

int fb_layout_check_canaries(const fb_layout *L) {
    int damaged = 0;
    for (int s = 0; s < L->nslots; s++)
        for (int i = 0; i < L->count; i++) {
            if (!L->tensors[i].canary) continue;
            const float *c = L->base[s] + L->tensors[i].offset + L->tensors[i].numel;
            for (int k = 0; k < FB_CANARY_FLOATS; k++)
                if (memcmp(&c[k], &fb_canary_bits, sizeof(float)) != 0) {
                    if (!damaged) fb_fail(FB_ERR_INTERNAL, "canary after %s (slot %d) overwritten", L->tensors[i].name, s);
                    damaged++;
                    break;
                }
        }
    return damaged;
}

void fb_layout_free(fb_layout *L) {
    for (int s = 0; s < L->nslots; s++) free(L->base[s]);
    free(L->tensors);
    memset(L, 0, sizeof *L);
}
