// A string -> int hash index (open addressing, FNV-1a) for the loaders: Newick tip labels -> node,
// UniFrac matrix sample ids -> row. Keys are borrowed, not copied: an index must not outlive the
// strings it was built from. No files here.
#pragma once
#include <stddef.h>
#include "../kernels/common.h"

typedef struct fb_strindex fb_strindex;

// An empty index sized for about `expected` keys (it grows as needed); NULL when out of memory.
fb_strindex *fb_strindex_new(int expected);
void fb_strindex_free(fb_strindex *ix);
// Adds key -> value (value >= 0). Returns -1 when the key was added, the value already stored
// when the key was present (nothing is changed), or -2 when out of memory.
int fb_strindex_add(fb_strindex *ix, const char *key, int value);
// The value stored for key, or -1.
int fb_strindex_find(const fb_strindex *ix, const char *key);

// Index of keys[0..n) -> position; NULL keys are skipped. A key present twice fails (FB_ERR_IO) with
// "<source>: <what> '<key>' appears twice (at i and j)", so `what` is e.g. "sample id".
fb_status fb_strindex_build(const char *const *keys, int n, const char *what, const char *source,
                            fb_strindex **out);

// For error messages: s itself when it is at most 64 bytes, else its first 48 bytes, "...", and
// its length, written into buf (size >= 80). ASV ids are sequences of 100-500 bases, and
// fb_last_error() holds 512 bytes.
const char *fb_abbrev(const char *s, char *buf, size_t size);
