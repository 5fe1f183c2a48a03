#include "strindex.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { const char *key; int value; } slot;

struct fb_strindex {
    slot *slots;        // (cap) key NULL: empty
    size_t cap, used;   // cap is a power of two, kept at least twice `used`
};

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

// The slot holding key, or the empty slot where it would go.
static slot *probe(const fb_strindex *ix, const char *key) {
    size_t mask = ix->cap - 1, i = (size_t)fnv1a(key) & mask;
    while (ix->slots[i].key && strcmp(ix->slots[i].key, key) != 0) i = (i + 1) & mask;
    return &ix->slots[i];
}

static int alloc_slots(fb_strindex *ix, size_t cap) {
    ix->slots = calloc(cap, sizeof(slot));
    ix->cap = cap;
    return ix->slots != NULL;
}

fb_strindex *fb_strindex_new(int expected) {
    fb_strindex *ix = calloc(1, sizeof *ix);
    size_t cap = 16;
    while (expected > 0 && cap < 2 * (size_t)expected) cap *= 2;
    if (!ix || !alloc_slots(ix, cap)) {
        free(ix);
        return NULL;
    }
    return ix;
}

void fb_strindex_free(fb_strindex *ix) {
    if (!ix) return;
    free(ix->slots);
    free(ix);
}

static int grow(fb_strindex *ix) {
    fb_strindex bigger = {0};
    if (!alloc_slots(&bigger, ix->cap * 2)) return 0;
    for (size_t i = 0; i < ix->cap; i++)
        if (ix->slots[i].key) *probe(&bigger, ix->slots[i].key) = ix->slots[i];
    free(ix->slots);
    ix->slots = bigger.slots;
    ix->cap = bigger.cap;
    return 1;
}

int fb_strindex_add(fb_strindex *ix, const char *key, int value) {
    slot *s = probe(ix, key);
    if (s->key) return s->value;
    if (2 * (ix->used + 1) > ix->cap) {
        if (!grow(ix)) return -2;
        s = probe(ix, key);
    }
    s->key = key;
    s->value = value;
    ix->used++;
    return -1;
}

int fb_strindex_find(const fb_strindex *ix, const char *key) {
    const slot *s = probe(ix, key);
    return s->key ? s->value : -1;
}

fb_status fb_strindex_build(const char *const *keys, int n, const char *what, const char *source,
                            fb_strindex **out) {
    *out = NULL;
    fb_strindex *ix = fb_strindex_new(n);
    if (!ix) return fb_fail(FB_ERR_ALLOC, "%s: out of memory indexing %d %ss", source, n, what);
    for (int i = 0; i < n; i++) {
        if (!keys[i]) continue;
        int prev = fb_strindex_add(ix, keys[i], i);
        if (prev == -1) continue;
        fb_strindex_free(ix);
        if (prev == -2) return fb_fail(FB_ERR_ALLOC, "%s: out of memory indexing %d %ss", source, n, what);
        char buf[96];
        return fb_fail(FB_ERR_IO, "%s: %s '%s' appears twice (at %d and %d)", source, what,
                       fb_abbrev(keys[i], buf, sizeof buf), prev, i);
    }
    *out = ix;
    return FB_OK;
}

const char *fb_abbrev(const char *s, char *buf, size_t size) {
    size_t len = strlen(s);
    if (len <= 64) return s;
    snprintf(buf, size, "%.48s...(%zu bytes)", s, len);
    return buf;
}
