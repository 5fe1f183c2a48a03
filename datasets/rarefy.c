// Rarefaction and token selection (what and why in rarefy.h).
//
// Rarefying a sample of N reads to n: the kept reads are a uniformly random n-subset of the read
// positions 0..N-1, where positions [cum[e], cum[e+1]) are entry e's reads. Floyd's algorithm draws
// such a subset with exactly n uniform integer draws and a set of the positions drawn so far —
// never an array of the N reads. The set is
//   - a bitmap of N bits when N <= BITMAP_READS (2 MB): membership is one bit, and each entry's
//     count is a popcount over its range of positions — O(n + N/64 + entries);
//   - beyond, a hash set of n positions, each drawn position counted for its entry by a binary
//     search over cum — O(n log entries), memory O(n) whatever N.
// When n > N/2 the N - n reads to drop are drawn instead (same distribution, less work).
#include "rarefy.h"
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "strindex.h"
#include "../kernels/rng.h"

// Separate streams for the two uses of one seed.
#define TAG_RAREFY 0x7261726566790001ull   // "rarefy"
#define TAG_SELECT 0x73656c6563740002ull   // "select"

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// A sample's own stream of Philox words: key (seed, tag) x (hash of the sample id), counter = word
// index. Words are generated 256 at a time (whole AVX-512 groups of fb_philox_words).
#define STREAM_WORDS 256
typedef struct {
    fb_rng_key key;
    uint64_t next;   // index of the first word not yet generated
    int pos;         // next unused word in buf
    uint32_t buf[STREAM_WORDS];
} stream;

static void stream_init(stream *s, uint64_t seed, uint64_t tag, const char *sample_id) {
    const uint64_t h = fnv1a(sample_id);
    memset(s, 0, sizeof *s);
    s->key.seed = splitmix64(seed ^ tag);
    s->key.step = (uint32_t)h;
    s->key.site = (uint32_t)(h >> 32);
    s->pos = STREAM_WORDS;
}

static uint32_t stream_u32(stream *s) {
    if (s->pos == STREAM_WORDS) {
        fb_philox_words(s->buf, &s->key, s->next, STREAM_WORDS);
        s->next += STREAM_WORDS;
        s->pos = 0;
    }
    return s->buf[s->pos++];
}

static uint64_t stream_u64(stream *s) {
    const uint64_t hi = stream_u32(s);
    return hi << 32 | stream_u32(s);
}

// Uniform in [0, m), m >= 1, exactly: Lemire's multiply-shift, rejecting the 2^w mod m values that
// would make some results one draw more likely than others; one 32-bit word when m <= 2^32.
static uint64_t uniform_below(stream *s, uint64_t m) {
    if (m <= ((uint64_t)1 << 32)) {
        uint64_t p = (uint64_t)stream_u32(s) * m;
        if ((uint32_t)p < m) {
            const uint32_t threshold = (uint32_t)(((uint64_t)1 << 32) % m);
            while ((uint32_t)p < threshold) p = (uint64_t)stream_u32(s) * m;
        }
        return p >> 32;
    }
    unsigned __int128 p = (unsigned __int128)stream_u64(s) * m;
    if ((uint64_t)p < m) {
        const uint64_t threshold = -m % m;
        while ((uint64_t)p < threshold) p = (unsigned __int128)stream_u64(s) * m;
    }
    return (uint64_t)(p >> 64);
}

// ---- Rarefaction ----

// Open-addressing set of read positions (>= 0; -1 marks an empty slot), 2^bits slots, at most
// half full; Fibonacci hashing (the top bits of p times 2^64 / golden ratio).
typedef struct {
    int64_t *slot;
    int bits;
} posset;

static void posset_clear(posset *h, int64_t k) {
    h->bits = 4;
    while (((uint64_t)1 << h->bits) < 2 * (uint64_t)k) h->bits++;
    memset(h->slot, 0xff, ((size_t)1 << h->bits) * sizeof *h->slot);   // all -1
}

// Inserts p; returns 0 when it was already there.
static int posset_add(posset *h, int64_t p) {
    const uint64_t mask = ((uint64_t)1 << h->bits) - 1;
    uint64_t i = ((uint64_t)p * 0x9E3779B97F4A7C15ull) >> (64 - h->bits);
    while (h->slot[i] != -1) {
        if (h->slot[i] == p) return 0;
        i = (i + 1) & mask;
    }
    h->slot[i] = p;
    return 1;
}

#define BITMAP_READS ((int64_t)1 << 24)   // samples up to this many reads use a bitmap

// Reads of positions [lo, hi) marked in the bitmap.
static int64_t count_bits(const uint64_t *bits, int64_t lo, int64_t hi) {
    if (lo >= hi) return 0;
    const int64_t wl = lo >> 6, wh = (hi - 1) >> 6;
    const uint64_t first = ~0ull << (lo & 63), last = ~0ull >> (63 - ((hi - 1) & 63));
    if (wl == wh) return __builtin_popcountll(bits[wl] & first & last);
    int64_t c = __builtin_popcountll(bits[wl] & first) + __builtin_popcountll(bits[wh] & last);
    for (int64_t w = wl + 1; w < wh; w++) c += __builtin_popcountll(bits[w]);
    return c;
}

// Per-thread scratch, sized for the largest sample.
typedef struct {
    uint64_t *bits;  // (BITMAP_READS / 64, or less) the bitmap path's set
    posset set;      // the hash path's set
    int64_t *cum;    // (entries + 1) running counts of the sample
    int64_t *hits;   // (entries) drawn reads per entry
} scratch;

// The entry whose reads [cum[e], cum[e+1]) hold position p (cum[0] = 0 <= p < cum[n]).
static int entry_of(const int64_t *cum, int n, int64_t p) {
    int lo = 0, hi = n;   // cum[lo] <= p < cum[hi]
    while (hi - lo > 1) {
        const int mid = lo + (hi - lo) / 2;
        if (cum[mid] <= p) lo = mid;
        else hi = mid;
    }
    return lo;
}

// Rarefies one sample's n entries (counts in `data`, whole, total >= depth) to depth reads;
// writes its non-zero results to out_idx/out_data (which may be idx/data themselves) and returns
// how many.
static int rarefy_sample(const int32_t *idx, const double *data, int n, int64_t depth, stream *rng, scratch *w,
                         int32_t *out_idx, double *out_data) {
    w->cum[0] = 0;
    for (int e = 0; e < n; e++) w->cum[e + 1] = w->cum[e] + (int64_t)data[e];
    const int64_t total = w->cum[n];
    // Draw k positions: the kept reads, or (keep = 0) the dropped ones when fewer.
    const int keep = depth <= total - depth;
    const int64_t k = keep ? depth : total - depth;
    // Floyd: for j = total-k .. total-1, draw r in [0, j]; add r, or j when r is taken (j is never
    // taken yet). Every k-subset of [0, total) comes out with the same probability.
    if (total <= BITMAP_READS) {
        uint64_t *bits = w->bits;
        memset(bits, 0, (size_t)((total + 63) >> 6) * sizeof *bits);
        for (int64_t j = total - k; j < total; j++) {
            const int64_t r = (int64_t)uniform_below(rng, (uint64_t)j + 1);
            const int64_t p = bits[r >> 6] >> (r & 63) & 1 ? j : r;
            bits[p >> 6] |= 1ull << (p & 63);
        }
        for (int e = 0; e < n; e++) w->hits[e] = count_bits(bits, w->cum[e], w->cum[e + 1]);
    } else {
        memset(w->hits, 0, (size_t)n * sizeof *w->hits);
        posset_clear(&w->set, k);
        for (int64_t j = total - k; j < total; j++) {
            int64_t p = (int64_t)uniform_below(rng, (uint64_t)j + 1);
            if (!posset_add(&w->set, p)) {
                p = j;
                posset_add(&w->set, j);
            }
            w->hits[entry_of(w->cum, n, p)]++;
        }
    }
    int m = 0;
    for (int e = 0; e < n; e++) {
        const int64_t c = keep ? w->hits[e] : (int64_t)data[e] - w->hits[e];
        if (c > 0) {
            out_idx[m] = idx[e];
            out_data[m++] = (double)c;
        }
    }
    return m;
}

// Counts must be whole, non-negative and sum exactly in a double; fills totals (n_samples).
static fb_status check_counts(const fb_table *t, int64_t *totals) {
    char b1[96], b2[96];
    for (int j = 0; j < t->n_samples; j++) {
        double sum = 0;
        for (int64_t k = t->indptr[j]; k < t->indptr[j + 1]; k++) {
            const double v = t->data[k];
            if (!(v >= 0) || v != floor(v))
                return fb_fail(FB_ERR_CONFIG, "rarefaction needs whole, non-negative read counts: sample '%s' has %g "
                               "for observation '%s'", fb_abbrev(t->sample_ids[j], b1, sizeof b1), v,
                               fb_abbrev(t->obs_ids[t->indices[k]], b2, sizeof b2));
            sum += v;
        }
        if (sum > 9007199254740992.0)   // 2^53: beyond it a double sum is no longer exact
            return fb_fail(FB_ERR_CONFIG, "rarefaction: sample '%s' has %g reads, more than 2^53",
                           fb_abbrev(t->sample_ids[j], b1, sizeof b1), sum);
        totals[j] = (int64_t)sum;
    }
    return FB_OK;
}

// Frees everything fb_rarefy allocated (NULLs are fine).
static void free_work(int64_t *totals, int64_t *new_n, char **gone, scratch *w, int nt) {
    for (int i = 0; w && i < nt; i++) {
        free(w[i].bits);
        free(w[i].set.slot);
        free(w[i].cum);
        free(w[i].hits);
    }
    free(w);
    free(gone);
    free(totals);
    free(new_n);
}

fb_status fb_rarefy(fb_table *t, int64_t depth, uint64_t seed, char ***dropped, int *n_dropped) {
    if (dropped) *dropped = NULL;
    if (n_dropped) *n_dropped = 0;
    FB_REQUIRE(depth >= 1, FB_ERR_CONFIG, "rarefaction depth %lld must be at least 1", (long long)depth);
    FB_REQUIRE(t->n_samples > 0, FB_ERR_CONFIG, "rarefaction: the table has no samples");
    const int ns = t->n_samples, nt = omp_get_max_threads();
    int64_t *totals = malloc((size_t)ns * sizeof *totals), *new_n = malloc((size_t)ns * sizeof *new_n);
    if (!totals || !new_n) {
        free_work(totals, new_n, NULL, NULL, 0);
        return fb_fail(FB_ERR_ALLOC, "rarefaction: out of memory");
    }
    fb_status st = check_counts(t, totals);
    // The largest sample, for the message when none reaches the depth; the dropped samples; the
    // scratch sizes: the largest bitmap, the largest hash set, the most entries.
    int largest = 0, max_entries = 0, nd = 0;
    int64_t max_bitmap = 0, max_hash_k = 0;
    for (int j = 0; j < ns && st == FB_OK; j++) {
        if (totals[j] > totals[largest]) largest = j;
        const int e = (int)(t->indptr[j + 1] - t->indptr[j]);
        if (e > max_entries) max_entries = e;
        if (totals[j] < depth) {
            nd++;
            continue;
        }
        const int64_t k = depth <= totals[j] - depth ? depth : totals[j] - depth;
        if (totals[j] <= BITMAP_READS && totals[j] > max_bitmap) max_bitmap = totals[j];
        if (totals[j] > BITMAP_READS && k > max_hash_k) max_hash_k = k;
    }
    if (st == FB_OK && nd == ns)
        st = fb_fail(FB_ERR_CONFIG, "rarefaction depth %lld is above every sample's total (largest: %lld, sample %s)",
                     (long long)depth, (long long)totals[largest], t->sample_ids[largest]);
    if (st != FB_OK) {
        free_work(totals, new_n, NULL, NULL, 0);
        return st;
    }

    // Everything allocated before the table changes, so a failure leaves it untouched.
    uint64_t cap = 16;   // hash slots, as posset_clear sizes them
    while (cap < 2 * (uint64_t)max_hash_k) cap *= 2;
    char **gone = malloc(((size_t)nd + 1) * sizeof *gone);
    scratch *w = calloc((size_t)nt, sizeof *w);
    int ok = gone && w;
    for (int i = 0; ok && i < nt; i++) {
        w[i] = (scratch){.bits = malloc(((size_t)(max_bitmap >> 6) + 1) * sizeof(uint64_t)),
                         .set.slot = malloc(cap * sizeof(int64_t)),
                         .cum = malloc(((size_t)max_entries + 1) * sizeof(int64_t)),
                         .hits = malloc(((size_t)max_entries + 1) * sizeof(int64_t))};
        ok = w[i].bits && w[i].set.slot && w[i].cum && w[i].hits;
    }
    if (!ok) {
        free_work(totals, new_n, gone, w, nt);
        return fb_fail(FB_ERR_ALLOC, "rarefaction: out of memory for the sampling scratch");
    }

    // In place: a sample's result overwrites its own entries, never more of them (rarefy_sample
    // writes entry m only after reading entries up to e >= m). Each sample's result depends on its
    // own stream only, so any schedule gives the same table.
    #pragma omp parallel for num_threads(nt) schedule(dynamic, 16)
    for (int j = 0; j < ns; j++) {
        const int64_t o = t->indptr[j];
        new_n[j] = -1;
        if (totals[j] < depth) continue;
        stream rng;
        stream_init(&rng, seed, TAG_RAREFY, t->sample_ids[j]);
        new_n[j] = rarefy_sample(t->indices + o, t->data + o, (int)(t->indptr[j + 1] - o), depth, &rng,
                                 &w[omp_get_thread_num()], t->indices + o, t->data + o);
    }

    // Compact: kept samples in order, their entries moved down; dropped ids handed out in order.
    int kept = 0;
    int64_t at = 0;
    for (int j = 0, d = 0; j < ns; j++) {
        if (new_n[j] < 0) {
            gone[d++] = t->sample_ids[j];
            continue;
        }
        memmove(t->indices + at, t->indices + t->indptr[j], (size_t)new_n[j] * sizeof *t->indices);
        memmove(t->data + at, t->data + t->indptr[j], (size_t)new_n[j] * sizeof *t->data);
        at += new_n[j];
        t->sample_ids[kept++] = t->sample_ids[j];
        new_n[kept - 1] = at;   // the new indptr[kept]: kept - 1 <= j, a slot already read
    }
    for (int j = 0; j < kept; j++) t->indptr[j + 1] = new_n[j];
    t->n_samples = kept;
    // Shrinking never fails in practice; if it does, the larger blocks are still valid.
    int32_t *si = realloc(t->indices, (at ? (size_t)at : 1) * sizeof *si);
    double *sd = realloc(t->data, (at ? (size_t)at : 1) * sizeof *sd);
    if (si) t->indices = si;
    if (sd) t->data = sd;
    if (dropped) {
        *dropped = gone;
        gone = NULL;
    } else {
        for (int d = 0; d < nd; d++) free(gone[d]);
    }
    if (n_dropped) *n_dropped = nd;
    free_work(totals, new_n, gone, w, nt);
    return FB_OK;
}

// ---- Token selection ----

typedef struct { double count; int32_t obs; } token;

// Largest count first; equal counts in table order (the observation index is increasing in it).
static int by_abundance(const void *a, const void *b) {
    const token *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return (x->obs > y->obs) - (x->obs < y->obs);
}

fb_status fb_select_tokens(const fb_table *t, int sample, int limit, fb_select_mode mode, uint64_t seed, int32_t *obs,
                           double *counts) {
    FB_REQUIRE(sample >= 0 && sample < t->n_samples, FB_ERR_CONFIG, "token selection: sample %d is outside the table's %d",
               sample, t->n_samples);
    FB_REQUIRE(limit >= 1, FB_ERR_CONFIG, "token selection: limit %d must be at least 1", limit);
    FB_REQUIRE(mode == FB_SELECT_FIRST || mode == FB_SELECT_ABUNDANCE || mode == FB_SELECT_RANDOM, FB_ERR_CONFIG,
               "token selection: unknown mode %d", (int)mode);
    const int64_t o = t->indptr[sample], n_entries = t->indptr[sample + 1] - o;
    token *tok = malloc((n_entries ? (size_t)n_entries : 1) * sizeof *tok);
    FB_REQUIRE(tok, FB_ERR_ALLOC, "token selection: out of memory for %lld entries", (long long)n_entries);
    int n = 0;   // the sample's ASVs: entries with reads, in table order
    for (int64_t k = 0; k < n_entries; k++)
        if (t->data[o + k] > 0) tok[n++] = (token){t->data[o + k], t->indices[o + k]};
    if (n > limit && mode == FB_SELECT_ABUNDANCE) {
        qsort(tok, (size_t)n, sizeof *tok, by_abundance);
    } else if (n > limit && mode == FB_SELECT_RANDOM) {
        // The first `limit` steps of a Fisher-Yates shuffle: a uniform random ordered subset.
        stream rng;
        stream_init(&rng, seed, TAG_SELECT, t->sample_ids[sample]);
        for (int i = 0; i < limit; i++) {
            const int j = i + (int)uniform_below(&rng, (uint64_t)(n - i));
            const token tmp = tok[i];
            tok[i] = tok[j];
            tok[j] = tmp;
        }
    }
    const int m = n < limit ? n : limit;
    for (int i = 0; i < limit; i++) {
        obs[i] = i < m ? tok[i].obs : -1;
        counts[i] = i < m ? tok[i].count : 0;
    }
    free(tok);
    return FB_OK;
}
