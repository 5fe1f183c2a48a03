// The synthetic microbiome world: the model is documented in synth_microbiome.h.
#include "synth_microbiome.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/rng.h"

#define MEAN_BRANCH 0.1   // mean branch length (exponential)
#define ABUNDANCE_SD 1.0  // log-normal spread of the relative abundances among present ASVs
#define MAIN_EFFECT_SD 0.5
#define READ_WORDS 1024   // Philox words drawn at a time for the reads and presence keys

// One Philox stream per kind of draw (the key's site), so adding draws to one never moves another.
// Per-sample streams start at block (sample << 32): 2^34 words per sample, far more than any
// sample draws (the config limits keep M and the depth below 2^30).
enum { SITE_TREE = 1, SITE_LABEL, SITE_DESIGN, SITE_SAMPLE, SITE_PRESENCE, SITE_ABUNDANCE, SITE_READS };

// ---------------------------------------------------------------------------------------------
// Random draws (kernels/rng.h's Philox, read word by word)

typedef struct {
    fb_rng_key key;
    uint64_t block;   // next block to generate
    uint32_t buf[4];
    int used;         // words of buf already handed out
} sm_stream;

static sm_stream stream_at(uint64_t seed, uint32_t site, uint64_t block) {
    return (sm_stream){.key = {.seed = seed, .site = site}, .block = block, .used = 4};
}

static uint32_t next_word(sm_stream *s) {
    if (s->used == 4) {
        philox4x32_10(&s->key, s->block++, s->buf);
        s->used = 0;
    }
    return s->buf[s->used++];
}

// 53 random bits from two words, as a double in [0, 1).
static double unit53(uint32_t hi, uint32_t lo) {
    return (double)(((uint64_t)hi << 21) | (lo >> 11)) * 0x1p-53;
}

// Uniform in the open interval (0, 1), so its logarithm is finite and negative.
static double next_unit(sm_stream *s) {
    const uint32_t hi = next_word(s), lo = next_word(s);
    return unit53(hi, lo) + 0x1p-54;
}

static double next_normal(sm_stream *s) {   // Box-Muller, the cosine half
    const double u1 = next_unit(s), u2 = next_unit(s);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static int next_index(sm_stream *s, int n) {   // uniform in 0..n-1
    const int i = (int)(next_unit(s) * n);
    return i < n ? i : n - 1;
}

static double next_sign(sm_stream *s) { return next_unit(s) < 0.5 ? -1.0 : 1.0; }

// ---------------------------------------------------------------------------------------------
// Config

fb_synth_microbiome_config fb_synth_microbiome_defaults(void) {
    return (fb_synth_microbiome_config){
        .samples = 1000, .asvs = 2000, .columns = 3, .categories = 4, .missing = 0.05,
        .depth_min = 3000, .depth_max = 30000, .richness = 150,
        .clade_effect = 1.0, .interaction = 0.5, .noise = 0.1, .seed = 0};
}

static int in_range(double x, double lo, double hi) { return x >= lo && x <= hi; }   // false for NaN

fb_status fb_synth_microbiome_check(const fb_synth_microbiome_config *c) {
    FB_REQUIRE(c, FB_ERR_CONFIG, "synth_microbiome: no config");
    FB_REQUIRE(c->samples >= 1 && c->samples <= FB_SM_MAX_SAMPLES, FB_ERR_CONFIG,
               "synth_microbiome: samples=%d outside [1, %d]", c->samples, FB_SM_MAX_SAMPLES);
    FB_REQUIRE(c->asvs >= 2 && c->asvs <= FB_SM_MAX_ASVS, FB_ERR_CONFIG,
               "synth_microbiome: asvs=%d outside [2, %d] (a tree needs two tips)", c->asvs, FB_SM_MAX_ASVS);
    FB_REQUIRE(c->columns >= 1 && c->columns <= FB_SM_MAX_COLUMNS, FB_ERR_CONFIG,
               "synth_microbiome: columns=%d outside [1, %d]", c->columns, FB_SM_MAX_COLUMNS);
    FB_REQUIRE(c->categories >= 1 && c->categories <= FB_SM_MAX_CATEGORIES, FB_ERR_CONFIG,
               "synth_microbiome: categories=%d outside [1, %d]", c->categories, FB_SM_MAX_CATEGORIES);
    FB_REQUIRE(in_range(c->missing, 0.0, 1.0), FB_ERR_CONFIG, "synth_microbiome: missing=%g outside [0, 1]",
               c->missing);
    FB_REQUIRE(c->depth_min >= 1 && c->depth_min <= c->depth_max && c->depth_max <= FB_SM_MAX_DEPTH, FB_ERR_CONFIG,
               "synth_microbiome: depth_min=%lld, depth_max=%lld: need 1 <= depth_min <= depth_max <= %lld",
               (long long)c->depth_min, (long long)c->depth_max, (long long)FB_SM_MAX_DEPTH);
    FB_REQUIRE(c->richness >= 1 && c->richness <= c->asvs && c->richness <= c->depth_min, FB_ERR_CONFIG,
               "synth_microbiome: richness=%d outside [1, min(asvs=%d, depth_min=%lld)] (every present ASV "
               "holds a read)", c->richness, c->asvs, (long long)c->depth_min);
    FB_REQUIRE(in_range(c->clade_effect, 0.0, 100.0), FB_ERR_CONFIG,
               "synth_microbiome: clade_effect=%g outside [0, 100] (a log-fold scale)", c->clade_effect);
    FB_REQUIRE(in_range(c->interaction, 0.0, 1e6), FB_ERR_CONFIG,
               "synth_microbiome: interaction=%g outside [0, 1e6]", c->interaction);
    FB_REQUIRE(in_range(c->noise, 0.0, 1e6), FB_ERR_CONFIG, "synth_microbiome: noise=%g outside [0, 1e6]", c->noise);
    return FB_OK;
}

// ---------------------------------------------------------------------------------------------
// Tree

// Tip r's label: 150 bases, two bits each, from the words of blocks 3r, 3r+1, 3r+2 (uniqueness:
// see the header).
static void draw_label(uint64_t seed, int r, char *out) {
    const fb_rng_key key = {.seed = seed, .site = SITE_LABEL};
    uint32_t w[12];
    for (int b = 0; b < 3; b++) philox4x32_10(&key, 3 * (uint64_t)r + (uint64_t)b, w + 4 * b);
    for (int t = 0; t < FB_SM_SEQUENCE_LENGTH; t++) out[t] = "ACGT"[(w[t / 16] >> (2 * (t % 16))) & 3];
    out[FB_SM_SEQUENCE_LENGTH] = '\0';
}

// Random joining, then renumbering in preorder. Temporary ids: tips 0..M-1, the join of step s
// M + s, the root 2M - 2.
static fb_status draw_tree(const fb_synth_microbiome_config *c, fb_tree *t, int with_labels) {
    const int M = c->asvs, n = 2 * M - 1;
    memset(t, 0, sizeof *t);
    int *kids = malloc((size_t)2 * (M - 1) * sizeof *kids);   // children of join s at 2s, 2s + 1
    int *tparent = malloc((size_t)n * sizeof *tparent), *active = malloc((size_t)M * sizeof *active);
    int *newid = malloc((size_t)n * sizeof *newid), *stack = malloc((size_t)n * sizeof *stack);
    double *tlen = malloc((size_t)n * sizeof *tlen);
    t->parent = malloc((size_t)n * sizeof *t->parent);
    t->length = malloc((size_t)n * sizeof *t->length);
    t->label = calloc((size_t)n, sizeof *t->label);
    t->n = n;
    fb_status st = FB_OK;
    if (!kids || !tparent || !active || !newid || !stack || !tlen || !t->parent || !t->length || !t->label) {
        st = fb_fail(FB_ERR_ALLOC, "synth_microbiome: no memory for a tree of %d tips", M);
        goto done;
    }
    sm_stream rs = stream_at(c->seed, SITE_TREE, 0);
    for (int i = 0; i < M; i++) active[i] = i;
    tparent[n - 1] = -1;
    for (int s = 0, k = M; k > 1; s++, k--) {   // k roots remain; join two of them
        const int i = next_index(&rs, k);
        int j = next_index(&rs, k - 1);
        if (j >= i) j++;
        const int v = M + s;
        kids[2 * s] = active[i];
        kids[2 * s + 1] = active[j];
        tparent[active[i]] = tparent[active[j]] = v;
        active[i] = v;               // the join takes i's slot; the last root fills j's
        active[j] = active[k - 1];
    }
    for (int v = 0; v < n - 1; v++) tlen[v] = -MEAN_BRANCH * log(next_unit(&rs));   // > 0

    // Preorder: pop a node, number it, push its children right then left (left comes out first).
    int top = 0, next = 0, tips = 0;
    stack[top++] = n - 1;
    while (top) {
        const int v = stack[--top], id = next++;
        newid[v] = id;
        t->parent[id] = tparent[v] < 0 ? -1 : newid[tparent[v]];   // parents are numbered first
        t->length[id] = tparent[v] < 0 ? NAN : tlen[v];
        if (v >= M) {
            stack[top++] = kids[2 * (v - M) + 1];
            stack[top++] = kids[2 * (v - M)];
        } else if (with_labels) {
            if (!(t->label[id] = malloc(FB_SM_SEQUENCE_LENGTH + 1))) {
                st = fb_fail(FB_ERR_ALLOC, "synth_microbiome: no memory for tip labels");
                goto done;
            }
            draw_label(c->seed, tips++, t->label[id]);
        }
    }
    t->root = 0;
done:
    free(kids); free(tparent); free(active); free(newid); free(stack); free(tlen);
    if (st != FB_OK) fb_tree_free(t);
    return st;
}

// For a tree numbered in preorder: each node's tips as a range of tip ranks (observations).
static void clade_ranges(const fb_tree *t, int *first_obs, int *n_obs) {
    memset(n_obs, 0, (size_t)t->n * sizeof *n_obs);
    for (int v = 1; v < t->n; v++) n_obs[t->parent[v]] = -1;   // marks internal nodes
    int tips = 0;
    for (int v = 0; v < t->n; v++) {   // preorder: the tips before v are the ranks before v's tips
        first_obs[v] = tips;
        if (n_obs[v] == 0) {
            n_obs[v] = 1;
            tips++;
        } else {
            n_obs[v] = 0;
        }
    }
    for (int v = t->n - 1; v > 0; v--) n_obs[t->parent[v]] += n_obs[v];   // children after parents
}

// ---------------------------------------------------------------------------------------------
// The design constants

void fb_synth_microbiome_signal_free(fb_synth_microbiome_signal *s) {
    free(s->base);
    free(s->shift_clade);
    free(s->shift);
    free(s->interaction);
    free(s->main_effect);
    memset(s, 0, sizeof *s);
}

// The non-root nodes with lo..hi tips (lo raised to 2, hi to lo) into cand; all non-root nodes
// when none has that size (a tiny tree). Returns their count.
static int clade_candidates(const fb_tree *t, const int *count, int lo, int hi, int *cand) {
    lo = lo > 2 ? lo : 2;
    hi = hi > lo ? hi : lo;
    int nc = 0;
    for (int v = 1; v < t->n; v++)
        if (count[v] >= lo && count[v] <= hi) cand[nc++] = v;
    if (!nc)
        for (int v = 1; v < t->n; v++) cand[nc++] = v;
    return nc;
}

static fb_status draw_signal(const fb_synth_microbiome_config *c, const fb_tree *t, fb_synth_microbiome_signal *s) {
    const int M = c->asvs, K = c->columns, C = c->categories, KC = K * C, J = FB_SM_SHIFTS_PER_VALUE,
              G = FB_SM_TARGET_CLADES;
    memset(s, 0, sizeof *s);
    s->columns = K;
    s->categories = C;
    s->asvs = M;
    s->base = malloc((size_t)M * sizeof *s->base);
    s->shift_clade = malloc((size_t)KC * J * sizeof *s->shift_clade);
    s->shift = malloc((size_t)KC * J * sizeof *s->shift);
    s->interaction = malloc((size_t)KC * G * sizeof *s->interaction);
    s->main_effect = malloc((size_t)KC * sizeof *s->main_effect);
    int *first = malloc((size_t)t->n * sizeof *first), *count = malloc((size_t)t->n * sizeof *count);
    int *cand = malloc((size_t)t->n * sizeof *cand);
    fb_status st = FB_OK;
    if (!s->base || !s->shift_clade || !s->shift || !s->interaction || !s->main_effect || !first || !count || !cand) {
        st = fb_fail(FB_ERR_ALLOC, "synth_microbiome: no memory for the design (%d ASVs)", M);
        goto done;
    }
    clade_ranges(t, first, count);
    sm_stream rs = stream_at(c->seed, SITE_DESIGN, 0);
    for (int a = 0; a < M; a++) s->base[a] = next_normal(&rs);
    // Shifted clades: big enough to be seen among a sample's ~richness ASVs, small enough to be a
    // distinct group (several per value may overlap or nest).
    int nc = clade_candidates(t, count, M / 100, M / 10, cand);
    for (int i = 0; i < KC * J; i++) {
        const int v = cand[next_index(&rs, nc)];
        s->shift_clade[i] = (fb_synth_clade){.node = v, .first_obs = first[v], .n_obs = count[v]};
        s->shift[i] = next_sign(&rs) * c->clade_effect * (0.5 + next_unit(&rs));
    }
    // Target clades: distinct, and larger, so that a sample rarely has none of their ASVs (their
    // log-abundance is then a smooth feature, not a presence flag).
    nc = clade_candidates(t, count, M / 20, M / 5, cand);
    double total = 0;
    for (int a = 0; a < M; a++) total += exp(s->base[a]);
    for (int g = 0; g < G; g++) {
        int pick = next_index(&rs, nc), v = cand[pick];
        if (nc > 1) cand[pick] = cand[--nc];   // without replacement while there are any left
        s->target_clade[g] = (fb_synth_clade){.node = v, .first_obs = first[v], .n_obs = count[v]};
        s->target_slope[g] = next_sign(&rs) * (0.5 + next_unit(&rs));
        double share = 0;
        for (int a = first[v]; a < first[v] + count[v]; a++) share += exp(s->base[a]);
        s->target_center[g] = log(share / total);
    }
    for (int i = 0; i < KC * G; i++) s->interaction[i] = next_normal(&rs);
    for (int i = 0; i < KC; i++) s->main_effect[i] = MAIN_EFFECT_SD * next_normal(&rs);
done:
    free(first); free(count); free(cand);
    if (st != FB_OK) fb_synth_microbiome_signal_free(s);
    return st;
}

fb_status fb_synth_microbiome_signal_get(const fb_synth_microbiome_config *c, fb_synth_microbiome_signal *s) {
    memset(s, 0, sizeof *s);
    FB_TRY(fb_synth_microbiome_check(c));
    fb_tree t;
    FB_TRY(draw_tree(c, &t, 0));
    fb_status st = draw_signal(c, &t, s);
    fb_tree_free(&t);
    return st;
}

double fb_synth_microbiome_clade_feature(const fb_synth_microbiome_signal *s, int g, const fb_table *t, int j) {
    const fb_synth_clade *cl = &s->target_clade[g];
    double reads = 0, depth = 0;
    for (int64_t e = t->indptr[j]; e < t->indptr[j + 1]; e++) {
        const int a = t->indices[e];
        depth += t->data[e];
        if (a >= cl->first_obs && a < cl->first_obs + cl->n_obs) reads += t->data[e];
    }
    return log((reads + 1.0) / (depth + 1.0)) - s->target_center[g];
}

// ---------------------------------------------------------------------------------------------
// Samples

// Per-sample values drawn before the counts (serially: O(K) each).
typedef struct {
    int *cat;         // (N, K) true category 0..C-1
    uint8_t *known;   // (N, K) 0 = recorded as unknown
    int64_t *depth;   // (N)
    int *present;     // (N) ASVs present
    double *noise;    // (N) N(0, 1) of the target
    double *target;   // (N)
} sm_samples;

static void draw_sample_header(const fb_synth_microbiome_config *c, int i, sm_samples *S) {
    const int K = c->columns;
    sm_stream rs = stream_at(c->seed, SITE_SAMPLE, (uint64_t)i << 32);
    for (int k = 0; k < K; k++) {
        S->cat[(size_t)i * K + k] = next_index(&rs, c->categories);
        S->known[(size_t)i * K + k] = next_unit(&rs) >= c->missing;
    }
    const double llo = log((double)c->depth_min), lhi = log((double)c->depth_max);
    int64_t d = llround(exp(llo + next_unit(&rs) * (lhi - llo)));
    d = d < c->depth_min ? c->depth_min : d > c->depth_max ? c->depth_max : d;
    const int half = c->richness / 2;
    int64_t n = c->richness - half + next_index(&rs, 2 * half + 1);
    if (n > c->asvs) n = c->asvs;
    if (n > d) n = d;
    S->depth[i] = d;
    S->present[i] = (int)n;
    S->noise[i] = next_normal(&rs);
}

// A bounded heap of the n best (key, index) pairs seen, worst at the root. "Better" is a strict
// total order (the larger key; on a tie the lower index), so the set kept is the top n whatever the
// scan order: ties cannot make it depend on anything but the keys.
static int better(double ka, int ia, double kb, int ib) { return ka > kb || (ka == kb && ia < ib); }

static void heap_sift_down(double *key, int *idx, int n, int at) {
    for (;;) {
        int worst = at;
        const int l = 2 * at + 1, r = l + 1;
        if (l < n && better(key[worst], idx[worst], key[l], idx[l])) worst = l;
        if (r < n && better(key[worst], idx[worst], key[r], idx[r])) worst = r;
        if (worst == at) return;
        const double k = key[at];
        const int i = idx[at];
        key[at] = key[worst], idx[at] = idx[worst];
        key[worst] = k, idx[worst] = i;
        at = worst;
    }
}

static int cmp_int(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

typedef struct {   // one thread's scratch, sized for M
    double *ell, *delta, *heap, *weight, *prob;
    int *alias, *small, *large, *obs;
    int64_t *count;
    uint32_t words[READ_WORDS];
} sm_scratch;

static void scratch_free(sm_scratch *w) {
    free(w->ell); free(w->delta); free(w->heap); free(w->weight); free(w->prob);
    free(w->alias); free(w->small); free(w->large); free(w->obs); free(w->count);
}

static int scratch_alloc(sm_scratch *w, int M) {
    const size_t d = (size_t)(M + 1) * sizeof(double), i = (size_t)M * sizeof(int);
    w->ell = malloc(d); w->delta = malloc(d); w->heap = malloc(d); w->weight = malloc(d); w->prob = malloc(d);
    w->alias = malloc(i); w->small = malloc(i); w->large = malloc(i); w->obs = malloc(i);
    w->count = malloc((size_t)M * sizeof(int64_t));
    return w->ell && w->delta && w->heap && w->weight && w->prob && w->alias && w->small && w->large && w->obs &&
           w->count;
}

// Walker's alias table for weights p[0..n) (Vose's construction, O(n)): a uniform column t is
// kept with probability prob[t], else replaced by alias[t]. p is overwritten.
static void alias_build(double *p, int n, double *prob, int *alias, int *small, int *large) {
    double sum = 0;
    for (int t = 0; t < n; t++) sum += p[t];
    int ns = 0, nl = 0;
    for (int t = 0; t < n; t++) {
        p[t] *= n / sum;
        if (p[t] < 1.0) small[ns++] = t;
        else large[nl++] = t;
    }
    while (ns && nl) {
        const int s = small[--ns], l = large[--nl];
        prob[s] = p[s];
        alias[s] = l;
        p[l] = (p[l] + p[s]) - 1.0;
        if (p[l] < 1.0) small[ns++] = l;
        else large[nl++] = l;
    }
    while (nl) prob[large[--nl]] = 1.0;   // left over: exactly 1 up to rounding
    while (ns) prob[small[--ns]] = 1.0;
}

// Sample i's present ASVs and counts into the table's slots [indptr[i], indptr[i+1]).
// ebase (M) = e^base.
static void draw_sample_counts(const fb_synth_microbiome_config *c, const fb_synth_microbiome_signal *sig,
                               const double *ebase, int i, const sm_samples *S, fb_table *tab, sm_scratch *w) {
    const int M = c->asvs, K = c->columns, C = c->categories, J = FB_SM_SHIFTS_PER_VALUE, n = S->present[i];
    const uint64_t first_word = (uint64_t)i << 34;   // word index of block (i << 32)

    // ℓ: the baseline plus the shifts of the sample's true categories, as range adds over the
    // observations (a clade's tips are a contiguous range): delta holds the changes of the running
    // shift, summed in the scan below.
    double *delta = w->delta;
    memset(delta, 0, (size_t)(M + 1) * sizeof *delta);
    for (int k = 0; k < K; k++)
        for (int j = 0; j < J; j++) {
            const size_t at = ((size_t)k * C + S->cat[(size_t)i * K + k]) * J + j;
            delta[sig->shift_clade[at].first_obs] += sig->shift[at];
            delta[sig->shift_clade[at].first_obs + sig->shift_clade[at].n_obs] -= sig->shift[at];
        }

    // Presence: the n largest ℓ + Gumbel, i.e. n draws without replacement with weights e^ℓ. A
    // bounded heap rather than a selection over all M keys: for n << M most keys lose one
    // predictable comparison with the heap's worst, O(M + n log n log(M/n)) expected.
    // The Gumbel is -log E with E = -log u exponential, so a key beats the worst kept, τ, only if
    // E < e^(ℓ - τ); as E >= 1 - u, an ASV with 1 - u >= e^(ℓ - τ) (almost all of them, once the
    // heap is full) is passed over without a logarithm. e^ℓ = e^base · e^run, with e^run updated
    // where the shifts change. The bound carries a 1e-9 relative margin, far above rounding, so
    // the shortcut never changes which keys are kept; NaN or inf factors (extreme shifts) only
    // disable it.
    const fb_rng_key kp = {.seed = c->seed, .site = SITE_PRESENCE};
    int kept = 0;
    double run = 0, erun = 1.0, etau = INFINITY;   // the shift, e^run, e^-τ (inf while filling: no shortcut)
    for (int a0 = 0; a0 < M; a0 += READ_WORDS) {
        const int m = M - a0 < READ_WORDS ? M - a0 : READ_WORDS;
        fb_philox_words(w->words, &kp, first_word + (uint64_t)a0, (size_t)m);
        for (int t = 0; t < m; t++) {
            const int a = a0 + t;
            if (delta[a] != 0.0) {
                run += delta[a];
                erun = exp(run);
            }
            w->ell[a] = sig->base[a] + run;
            const double u = ((double)w->words[t] + 0.5) * 0x1p-32;   // (0, 1)
            if (1.0 - u > 1.000000001 * (ebase[a] * erun * etau)) continue;
            const double key = w->ell[a] - log(-log(u));
            if (kept < n) {   // filling up: append, and heapify once full
                w->heap[kept] = key;
                w->obs[kept++] = a;
                if (kept == n) {
                    for (int h = n / 2 - 1; h >= 0; h--) heap_sift_down(w->heap, w->obs, n, h);
                    etau = exp(-w->heap[0]);
                }
            } else if (key > w->heap[0]) {   // a is scanned after every kept index: a tie keeps the old
                w->heap[0] = key;
                w->obs[0] = a;
                heap_sift_down(w->heap, w->obs, n, 0);
                etau = exp(-w->heap[0]);
            }
        }
    }
    qsort(w->obs, (size_t)n, sizeof *w->obs, cmp_int);   // the table wants increasing indices

    // Relative abundances (log-normal around ℓ) and the reads.
    sm_stream ra = stream_at(c->seed, SITE_ABUNDANCE, (uint64_t)i << 32);
    double mx = -INFINITY;
    for (int t = 0; t < n; t++) {
        w->weight[t] = w->ell[w->obs[t]] + ABUNDANCE_SD * next_normal(&ra);
        if (w->weight[t] > mx) mx = w->weight[t];
    }
    for (int t = 0; t < n; t++) w->weight[t] = exp(w->weight[t] - mx);
    alias_build(w->weight, n, w->prob, w->alias, w->small, w->large);
    for (int t = 0; t < n; t++) w->count[t] = 1;
    const fb_rng_key kr = {.seed = c->seed, .site = SITE_READS};
    const int64_t reads = S->depth[i] - n;
    for (int64_t r0 = 0; r0 < reads; r0 += READ_WORDS / 2) {
        const int m = reads - r0 < READ_WORDS / 2 ? (int)(reads - r0) : READ_WORDS / 2;
        fb_philox_words(w->words, &kr, first_word + 2 * (uint64_t)r0, 2 * (size_t)m);
        for (int r = 0; r < m; r++) {
            const double x = unit53(w->words[2 * r], w->words[2 * r + 1]) * n;
            int col = (int)x;
            if (col >= n) col = n - 1;
            w->count[x - col < w->prob[col] ? col : w->alias[col]]++;
        }
    }
    const int64_t at = tab->indptr[i];
    for (int t = 0; t < n; t++) {
        tab->indices[at + t] = w->obs[t];
        tab->data[at + t] = (double)w->count[t];
    }
}

// The target of sample i from its counts (already in the table) and true categories.
static double sample_target(const fb_synth_microbiome_config *c, const fb_synth_microbiome_signal *sig, int i,
                            const sm_samples *S, const fb_table *tab) {
    const int K = c->columns, C = c->categories, G = FB_SM_TARGET_CLADES;
    const int *cat = S->cat + (size_t)i * K;
    double y = 0;
    for (int g = 0; g < G; g++) {
        double slope = 0;
        for (int k = 0; k < K; k++) slope += sig->interaction[((size_t)k * C + cat[k]) * G + g];
        y += fb_synth_microbiome_clade_feature(sig, g, tab, i) * (sig->target_slope[g] + c->interaction * slope);
    }
    for (int k = 0; k < K; k++) y += sig->main_effect[(size_t)k * C + cat[k]];
    return y + c->noise * S->noise[i];
}

// ---------------------------------------------------------------------------------------------
// Names

static const struct {
    const char *name;
    const char *values[5];   // natural value names, NULL-terminated ("site" has none: site_1..)
} COLUMNS[] = {
    {"season", {"spring", "summer", "autumn", "winter", NULL}},
    {"site", {NULL}},
    {"host_age_group", {"infant", "child", "adult", "senior", NULL}},
    {"diet", {"omnivore", "vegetarian", "vegan", "pescatarian", NULL}},
    {"body_site", {"gut", "oral", "skin", "nasal", NULL}},
    {"sample_type", {"stool", "swab", "biopsy", "saliva", NULL}},
};
#define N_NAMED_COLUMNS ((int)(sizeof COLUMNS / sizeof COLUMNS[0]))

static char *column_name(int k) {
    char buf[32];
    if (k < N_NAMED_COLUMNS) return strdup(COLUMNS[k].name);
    snprintf(buf, sizeof buf, "factor_%d", k + 1);
    return strdup(buf);
}

// Value v (0-based) of column k, for a column of C values.
static char *value_name(int k, int v, int C, const char *column) {
    if (k < N_NAMED_COLUMNS) {
        int named = 0;
        while (named < 5 && COLUMNS[k].values[named]) named++;
        if (C <= named) return strdup(COLUMNS[k].values[v]);
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%s_%d", column, v + 1);
    return strdup(buf);
}

static char **string_array(int n) { return calloc((size_t)(n ? n : 1), sizeof(char *)); }

// Table ids and the metadata strings.
static fb_status fill_names(const fb_synth_microbiome_config *c, const fb_tree *tree, const sm_samples *S,
                            fb_table *tab, fb_metadata *md) {
    const int N = c->samples, M = c->asvs, K = c->columns, C = c->categories;
    int width = 4;
    for (int n = N / 10000; n; n /= 10) width++;
    tab->obs_ids = string_array(M);
    tab->sample_ids = string_array(N);
    md->sample_ids = string_array(N);
    md->col_names = string_array(K + 1);
    md->values = calloc((size_t)K + 1, sizeof *md->values);
    if (!tab->obs_ids || !tab->sample_ids || !md->sample_ids || !md->col_names || !md->values) goto oom;
    for (int v = 0, r = 0; v < tree->n; v++)
        if (tree->label[v] && !(tab->obs_ids[r++] = strdup(tree->label[v]))) goto oom;
    char buf[32];
    for (int i = 0; i < N; i++) {
        if (snprintf(buf, sizeof buf, "S%0*d", width, i + 1) >= (int)sizeof buf) goto oom;   // width <= 10
        if (!(tab->sample_ids[i] = strdup(buf)) || !(md->sample_ids[i] = strdup(buf))) goto oom;
    }
    for (int k = 0; k <= K; k++) {
        if (!(md->col_names[k] = k < K ? column_name(k) : strdup("target")) || !(md->values[k] = string_array(N)))
            goto oom;
    }
    for (int k = 0; k < K; k++) {
        char **names = string_array(C);   // each value's name, copied per sample
        int ok = names != NULL;
        for (int v = 0; ok && v < C; v++) ok = (names[v] = value_name(k, v, C, md->col_names[k])) != NULL;
        for (int i = 0; ok && i < N; i++) {
            const size_t at = (size_t)i * K + k;
            ok = (md->values[k][i] = strdup(S->known[at] ? names[S->cat[at]] : "")) != NULL;
        }
        for (int v = 0; names && v < C; v++) free(names[v]);
        free(names);
        if (!ok) goto oom;
    }
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof buf, "%.6g", S->target[i]);
        if (!(md->values[K][i] = strdup(buf))) goto oom;
    }
    return FB_OK;
oom:
    return fb_fail(FB_ERR_ALLOC, "synth_microbiome: no memory for the ids of %d samples and %d ASVs", N, M);
}

// ---------------------------------------------------------------------------------------------

fb_status fb_synth_microbiome(const fb_synth_microbiome_config *c, fb_tree *tree, fb_table *table, fb_metadata *md) {
    memset(tree, 0, sizeof *tree);
    memset(table, 0, sizeof *table);
    memset(md, 0, sizeof *md);
    FB_TRY(fb_synth_microbiome_check(c));
    const int N = c->samples, M = c->asvs, K = c->columns;
    fb_synth_microbiome_signal sig = {0};
    sm_samples S = {0};
    double *ebase = NULL;
    fb_status st = draw_tree(c, tree, 1);
    if (st == FB_OK) st = draw_signal(c, tree, &sig);
    if (st != FB_OK) goto done;
    if (!(ebase = malloc((size_t)M * sizeof *ebase))) {
        st = fb_fail(FB_ERR_ALLOC, "synth_microbiome: no memory for %d ASVs", M);
        goto done;
    }
    for (int a = 0; a < M; a++) ebase[a] = exp(sig.base[a]);

    S.cat = malloc((size_t)N * K * sizeof *S.cat);
    S.known = malloc((size_t)N * K);
    S.depth = malloc((size_t)N * sizeof *S.depth);
    S.present = malloc((size_t)N * sizeof *S.present);
    S.noise = malloc((size_t)N * sizeof *S.noise);
    S.target = malloc((size_t)N * sizeof *S.target);
    table->n_obs = M;
    table->n_samples = N;
    md->n_samples = N;
    md->n_cols = K + 1;
    table->indptr = malloc((size_t)(N + 1) * sizeof *table->indptr);
    if (!S.cat || !S.known || !S.depth || !S.present || !S.noise || !S.target || !table->indptr) {
        st = fb_fail(FB_ERR_ALLOC, "synth_microbiome: no memory for %d samples", N);
        goto done;
    }
    table->indptr[0] = 0;
    for (int i = 0; i < N; i++) {
        draw_sample_header(c, i, &S);
        table->indptr[i + 1] = table->indptr[i] + S.present[i];
    }
    const int64_t nnz = table->indptr[N];
    table->indices = malloc((size_t)(nnz ? nnz : 1) * sizeof *table->indices);
    table->data = malloc((size_t)(nnz ? nnz : 1) * sizeof *table->data);
    if (!table->indices || !table->data) {
        st = fb_fail(FB_ERR_ALLOC, "synth_microbiome: no memory for %lld table entries", (long long)nnz);
        goto done;
    }

    int failed = 0;
    #pragma omp parallel
    {
        sm_scratch w;
        const int ok = scratch_alloc(&w, M);
        if (!ok) {
            #pragma omp atomic write
            failed = 1;
        }
        // Each sample is drawn whole by one thread from its own streams: any schedule gives the
        // same table.
        #pragma omp for schedule(dynamic, 4)
        for (int i = 0; i < N; i++) {
            if (!ok) continue;
            draw_sample_counts(c, &sig, ebase, i, &S, table, &w);
            S.target[i] = sample_target(c, &sig, i, &S, table);
        }
        scratch_free(&w);
    }
    if (failed) {
        st = fb_fail(FB_ERR_ALLOC, "synth_microbiome: no memory for the per-thread scratch (%d ASVs)", M);
        goto done;
    }
    st = fill_names(c, tree, &S, table, md);
done:
    fb_synth_microbiome_signal_free(&sig);
    free(ebase);
    free(S.cat); free(S.known); free(S.depth); free(S.present); free(S.noise); free(S.target);
    if (st != FB_OK) {
        fb_tree_free(tree);
        fb_table_free(table);
        fb_metadata_free(md);
    }
    return st;
}
