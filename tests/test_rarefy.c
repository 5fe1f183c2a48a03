// datasets/rarefy: rarefaction (totals equal the depth, counts never above the original, samples
// below the depth dropped and listed, exact multivariate hypergeometric sampling checked against
// the enumerated distribution and against the hypergeometric mean and variance on both set
// paths, determinism by seed, 1 vs 2 threads, a sample's result independent of the table around
// it, every error) and token selection (first, abundance, random on a hand example).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../datasets/rarefy.h"

#define MAX_E 64

// A sample: its id and entries (observation index, count), observation indices increasing.
typedef struct {
    const char *id;
    int n;
    int32_t obs[MAX_E];
    double count[MAX_E];
} sample_spec;

static fb_table make_table(int n_obs, const sample_spec *s, int ns) {
    fb_table t = {.n_obs = n_obs, .n_samples = ns};
    t.obs_ids = calloc((size_t)n_obs, sizeof(char *));
    t.sample_ids = calloc((size_t)ns + 1, sizeof(char *));
    t.indptr = calloc((size_t)ns + 1, sizeof(int64_t));
    for (int o = 0; o < n_obs; o++) {
        char id[32];
        snprintf(id, sizeof id, "ASV%d", o);
        t.obs_ids[o] = strdup(id);
    }
    for (int j = 0; j < ns; j++) t.indptr[j + 1] = t.indptr[j] + s[j].n;
    t.indices = calloc((size_t)t.indptr[ns] + 1, sizeof(int32_t));
    t.data = calloc((size_t)t.indptr[ns] + 1, sizeof(double));
    for (int j = 0; j < ns; j++) {
        t.sample_ids[j] = strdup(s[j].id);
        memcpy(t.indices + t.indptr[j], s[j].obs, (size_t)s[j].n * sizeof(int32_t));
        memcpy(t.data + t.indptr[j], s[j].count, (size_t)s[j].n * sizeof(double));
    }
    return t;
}

static void rarefy_ok(fb_table *t, int64_t depth, uint64_t seed) {
    char **dropped;
    int nd;
    if (fb_rarefy(t, depth, seed, &dropped, &nd) != FB_OK) fail_msg("fb_rarefy: %s", fb_last_error());
    for (int i = 0; i < nd; i++) free(dropped[i]);
    free(dropped);
}

// Count of observation o in sample j (0 when absent).
static double count_of(const fb_table *t, int j, int32_t o) {
    for (int64_t k = t->indptr[j]; k < t->indptr[j + 1]; k++)
        if (t->indices[k] == o) return t->data[k];
    return 0;
}

static int tables_identical(const fb_table *a, const fb_table *b) {
    if (a->n_samples != b->n_samples || a->indptr[a->n_samples] != b->indptr[b->n_samples]) return 0;
    const int64_t nnz = a->indptr[a->n_samples];
    return memcmp(a->indptr, b->indptr, ((size_t)a->n_samples + 1) * sizeof(int64_t)) == 0 &&
           memcmp(a->indices, b->indices, (size_t)nnz * sizeof(int32_t)) == 0 &&
           memcmp(a->data, b->data, (size_t)nnz * sizeof(double)) == 0;
}

// Five samples: S1 20 reads, S2 7 (below 10), S3 exactly 10, S4 1000 reads over 50 ASVs, S5 32
// million reads (past the bitmap: the hash-set path) with a singleton.
static void five_samples(sample_spec s[5]) {
    memset(s, 0, 5 * sizeof *s);
    s[0] = (sample_spec){"S1", 3, {0, 2, 5}, {5, 10, 5}};
    s[1] = (sample_spec){"S2", 2, {1, 3}, {3, 4}};
    s[2] = (sample_spec){"S3", 4, {0, 1, 2, 3}, {1, 2, 3, 4}};
    s[3].id = "S4";
    s[3].n = 50;
    double sum = 0;
    for (int e = 0; e < 50; e++) {
        s[3].obs[e] = e + 2;
        s[3].count[e] = e < 49 ? 1 + e % 39 : 1000 - sum;   // the last makes the total 1000
        sum += s[3].count[e];
    }
    s[4] = (sample_spec){"S5", 3, {0, 4, 51}, {8e6, 2.4e7 - 1, 1}};
}

static void test_rarefy_basic(void **state) {
    (void)state;
    sample_spec s[5];
    five_samples(s);
    assert_true(s[3].count[49] > 0);
    fb_table t = make_table(52, s, 5), orig = make_table(52, s, 5);
    char **dropped;
    int nd;
    assert_int_equal(fb_rarefy(&t, 10, 42, &dropped, &nd), FB_OK);
    assert_int_equal(nd, 1);
    assert_string_equal(dropped[0], "S2");
    free(dropped[0]);
    free(dropped);
    assert_int_equal(t.n_samples, 4);
    assert_int_equal(t.n_obs, 52);
    const char *kept[4] = {"S1", "S3", "S4", "S5"};
    const int orig_of[4] = {0, 2, 3, 4};
    for (int j = 0; j < 4; j++) {
        assert_string_equal(t.sample_ids[j], kept[j]);
        double total = 0;
        for (int64_t k = t.indptr[j]; k < t.indptr[j + 1]; k++) {
            assert_true(t.data[k] >= 1 && t.data[k] == floor(t.data[k]));
            assert_true(k == t.indptr[j] || t.indices[k] > t.indices[k - 1]);
            assert_true(t.data[k] <= count_of(&orig, orig_of[j], t.indices[k]));
            total += t.data[k];
        }
        assert_true(total == 10);
    }
    // A sample exactly at the depth is unchanged.
    for (int32_t o = 0; o < 4; o++) assert_true(count_of(&t, 1, o) == count_of(&orig, 2, o));
    fb_table_free(&t);
    fb_table_free(&orig);

    // dropped == NULL: the ids are freed here; a depth every sample reaches drops nothing.
    t = make_table(52, s, 5);
    assert_int_equal(fb_rarefy(&t, 5, 1, NULL, &nd), FB_OK);
    assert_int_equal(nd, 0);
    assert_int_equal(t.n_samples, 5);
    fb_table_free(&t);
}

static void test_determinism(void **state) {
    (void)state;
    sample_spec s[5];
    five_samples(s);
    fb_table a = make_table(52, s, 5), b = make_table(52, s, 5), c = make_table(52, s, 5);
    set_threads(1);
    rarefy_ok(&a, 10, 7);
    set_threads(2);
    rarefy_ok(&b, 10, 7);
    rarefy_ok(&c, 10, 8);
    assert_true(tables_identical(&a, &b));   // same seed, 1 vs 2 threads
    assert_false(tables_identical(&a, &c));  // another seed
    // A sample's draws follow its id, not its place: S4 and S1 alone, in the other order, come out
    // as they did in the whole table.
    sample_spec two[2] = {s[3], s[0]};
    fb_table d = make_table(52, two, 2);
    rarefy_ok(&d, 10, 7);
    for (int32_t o = 0; o < 52; o++) {
        assert_true(count_of(&d, 0, o) == count_of(&a, 2, o));
        assert_true(count_of(&d, 1, o) == count_of(&a, 0, o));
    }
    fb_table_free(&a);
    fb_table_free(&b);
    fb_table_free(&c);
    fb_table_free(&d);
}

static void expect_config_error(fb_table *t, int64_t depth, const char *want) {
    const int64_t nnz = t->indptr[t->n_samples];
    const int ns = t->n_samples;
    fb_status st = fb_rarefy(t, depth, 1, NULL, NULL);
    printf("  expected error: %s\n", fb_last_error());
    assert_int_equal(st, FB_ERR_CONFIG);
    if (!strstr(fb_last_error(), want)) fail_msg("message lacks \"%s\": %s", want, fb_last_error());
    assert_int_equal(t->n_samples, ns);   // untouched
    assert_int_equal(t->indptr[ns], nnz);
}

static void test_errors(void **state) {
    (void)state;
    sample_spec s[3] = {{"S1", 2, {0, 1}, {3000, 2000}}, {"S17", 2, {0, 2}, {5000, 210}}, {"S3", 1, {1}, {12}}};
    fb_table t = make_table(3, s, 3);
    expect_config_error(&t, 7000, "rarefaction depth 7000 is above every sample's total (largest: 5210, sample S17)");
    expect_config_error(&t, 0, "rarefaction depth 0 must be at least 1");
    t.data[1] = 2.5;
    expect_config_error(&t, 10, "sample 'S1' has 2.5 for observation 'ASV1'");
    t.data[1] = -1;
    expect_config_error(&t, 10, "whole, non-negative read counts");
    t.data[1] = NAN;
    expect_config_error(&t, 10, "whole, non-negative read counts");
    fb_table_free(&t);
    fb_table empty = make_table(3, s, 0);
    expect_config_error(&empty, 10, "the table has no samples");
    fb_table_free(&empty);
}

// ---- Exactness ----

// Counts {2, 1, 1} rarefied over R seeds: the outcome frequencies against the enumerated
// multivariate hypergeometric probabilities, by Pearson's chi-square. Depth 2 draws the kept reads,
// depth 3 the dropped one (the complement path). The bound 30 is exceeded with probability below
// 1.5e-6 (3 degrees of freedom) and 3.1e-7 (2), so a correct sampler fails this test essentially
// never, while a biased one (e.g. with replacement: (2,0,0) at 1/4 instead of 1/6) gives a
// chi-square in the hundreds at R = 6000.
static void chi_square_case(int64_t depth, int n_out, const double out[][3], const double *prob) {
    enum { R = 6000 };
    int freq[8] = {0};
    sample_spec s = {"tiny", 3, {0, 1, 2}, {2, 1, 1}};
    for (int r = 0; r < R; r++) {
        fb_table t = make_table(3, &s, 1);
        rarefy_ok(&t, depth, 1000 + (uint64_t)r);
        int hit = -1;
        for (int i = 0; i < n_out && hit < 0; i++)
            if (count_of(&t, 0, 0) == out[i][0] && count_of(&t, 0, 1) == out[i][1] && count_of(&t, 0, 2) == out[i][2])
                hit = i;
        if (hit < 0) fail_msg("impossible outcome %g %g %g", count_of(&t, 0, 0), count_of(&t, 0, 1), count_of(&t, 0, 2));
        freq[hit]++;
        fb_table_free(&t);
    }
    double chi2 = 0;
    for (int i = 0; i < n_out; i++) chi2 += (freq[i] - R * prob[i]) * (freq[i] - R * prob[i]) / (R * prob[i]);
    printf("depth %lld: chi-square %.2f over %d outcomes (bound 30)\n", (long long)depth, chi2, n_out);
    assert_true(chi2 < 30);
}

static void test_exact_distribution(void **state) {
    (void)state;
    const double out2[4][3] = {{2, 0, 0}, {1, 1, 0}, {1, 0, 1}, {0, 1, 1}};
    const double p2[4] = {1.0 / 6, 2.0 / 6, 2.0 / 6, 1.0 / 6};
    chi_square_case(2, 4, out2, p2);
    const double out3[3][3] = {{1, 1, 1}, {2, 0, 1}, {2, 1, 0}};
    const double p3[3] = {0.5, 0.25, 0.25};
    chi_square_case(3, 3, out3, p3);
}

// Mean and variance of each observation's rarefied count over R seeds against the hypergeometric
// ones: mean n c/N, variance n (c/N)(1 - c/N)(N - n)/(N - 1). Mean: |z| < 5 with z = (mean - mu) /
// sqrt(var / R) (a false failure per observation below 6e-7). Variance: the ratio of the sample
// variance to the hypergeometric one within [0.8, 1.2]: its standard error is about sqrt(2 / R),
// 2.2% at R = 4000 and 4.5% at R = 1000, so the bounds are 9 and 4.4 standard errors away, while
// sampling with replacement inflates the variance by (N - 1)/(N - n): 1.98 and 3.3 for the small
// sample below (the big one, N >> n, checks the mean only in effect).
static void moments_case(const sample_spec *s, int64_t depth, int R) {
    double total = 0, sum[MAX_E] = {0}, sq[MAX_E] = {0};
    for (int e = 0; e < s->n; e++) total += s->count[e];
    for (int r = 0; r < R; r++) {
        fb_table t = make_table(s->obs[s->n - 1] + 1, s, 1);
        rarefy_ok(&t, depth, 77 + 1000003 * (uint64_t)r);
        for (int e = 0; e < s->n; e++) {
            const double x = count_of(&t, 0, s->obs[e]);
            sum[e] += x;
            sq[e] += x * x;
        }
        fb_table_free(&t);
    }
    const double n = (double)depth, N = total;
    for (int e = 0; e < s->n; e++) {
        const double p = s->count[e] / N, mu = n * p, var = n * p * (1 - p) * (N - n) / (N - 1);
        const double mean = sum[e] / R, svar = (sq[e] - R * mean * mean) / (R - 1);
        const double z = (mean - mu) / sqrt(var / R), ratio = svar / var;
        printf("%s depth %lld obs %d (count %.0f): mean %.3f vs %.3f (z %+.2f), variance ratio %.3f\n", s->id,
               (long long)depth, s->obs[e], s->count[e], mean, mu, z, ratio);
        assert_true(fabs(z) < 5);
        assert_true(ratio > 0.8 && ratio < 1.2);
    }
}

static void test_moments(void **state) {
    (void)state;
    // Bitmap path: 100 reads; depth 50 draws the kept reads, depth 70 the 30 dropped ones.
    const sample_spec small = {"small", 5, {0, 3, 4, 8, 9}, {50, 30, 15, 4, 1}};
    moments_case(&small, 50, 4000);
    moments_case(&small, 70, 4000);
    // Hash-set path: 32 million reads, depth 5000.
    const sample_spec big = {"big", 3, {0, 1, 2}, {8e6, 1.6e7, 8e6}};
    moments_case(&big, 5000, 1000);
}

// ---- Token selection ----

static void test_select(void **state) {
    (void)state;
    // Entries (observation: count) 1:5 3:9 4:9 6:0 7:1 9:20 — the explicit zero is not an ASV.
    sample_spec s[2] = {{"A", 6, {1, 3, 4, 6, 7, 9}, {5, 9, 9, 0, 1, 20}}, {"B", 1, {2}, {4}}};
    fb_table t = make_table(10, s, 2);
    int32_t obs[8];
    double cnt[8];
    assert_int_equal(fb_select_tokens(&t, 0, 3, FB_SELECT_FIRST, 0, obs, cnt), FB_OK);
    const int32_t first[3] = {1, 3, 4};
    for (int i = 0; i < 3; i++) assert_int_equal(obs[i], first[i]);
    assert_true(cnt[0] == 5 && cnt[2] == 9);
    assert_int_equal(fb_select_tokens(&t, 0, 3, FB_SELECT_ABUNDANCE, 0, obs, cnt), FB_OK);
    const int32_t abundant[3] = {9, 3, 4};   // 20, then the tie 9 / 9 in table order
    for (int i = 0; i < 3; i++) assert_int_equal(obs[i], abundant[i]);
    assert_true(cnt[0] == 20 && cnt[1] == 9 && cnt[2] == 9);
    // At most `limit` ASVs: all, in table order, whatever the mode; padding -1 / 0.
    for (int mode = 0; mode < 3; mode++) {
        assert_int_equal(fb_select_tokens(&t, 0, 8, (fb_select_mode)mode, 3, obs, cnt), FB_OK);
        const int32_t all[8] = {1, 3, 4, 7, 9, -1, -1, -1};
        for (int i = 0; i < 8; i++) assert_int_equal(obs[i], all[i]);
        assert_true(cnt[3] == 1 && cnt[5] == 0 && cnt[7] == 0);
    }
    // Random: distinct ASVs of the sample with their counts, deterministic by seed; over many
    // seeds each ASV is kept 3/5 of the time and leads 1/5 of the time (binomial bounds of
    // about 5 standard deviations at 5000 seeds).
    enum { R = 5000 };
    int kept[10] = {0}, lead[10] = {0}, differs = 0;
    int32_t prev[3] = {-1, -1, -1};
    for (int r = 0; r < R; r++) {
        assert_int_equal(fb_select_tokens(&t, 0, 3, FB_SELECT_RANDOM, (uint64_t)r, obs, cnt), FB_OK);
        int32_t again[3];
        double c2[3];
        fb_select_tokens(&t, 0, 3, FB_SELECT_RANDOM, (uint64_t)r, again, c2);
        assert_memory_equal(obs, again, sizeof again);
        for (int i = 0; i < 3; i++) {
            assert_true(obs[i] >= 0 && cnt[i] == count_of(&t, 0, obs[i]) && cnt[i] > 0);
            for (int j = 0; j < i; j++) assert_true(obs[i] != obs[j]);
            kept[obs[i]]++;
        }
        lead[obs[0]]++;
        differs += memcmp(obs, prev, sizeof prev) != 0;
        memcpy(prev, obs, sizeof prev);
    }
    assert_true(differs > R / 2);
    const int32_t asvs[5] = {1, 3, 4, 7, 9};
    for (int i = 0; i < 5; i++) {
        printf("random: ASV %d kept %d / %d, first %d / %d\n", asvs[i], kept[asvs[i]], R, lead[asvs[i]], R);
        assert_true(abs(kept[asvs[i]] - 3 * R / 5) < 5 * 35);   // sd sqrt(R 0.6 0.4) = 34.6
        assert_true(abs(lead[asvs[i]] - R / 5) < 5 * 29);       // sd sqrt(R 0.2 0.8) = 28.3
    }
    assert_int_equal(kept[6], 0);
    // Errors.
    assert_int_equal(fb_select_tokens(&t, 2, 3, FB_SELECT_FIRST, 0, obs, cnt), FB_ERR_CONFIG);
    assert_non_null(strstr(fb_last_error(), "sample 2 is outside"));
    assert_int_equal(fb_select_tokens(&t, 0, 0, FB_SELECT_FIRST, 0, obs, cnt), FB_ERR_CONFIG);
    assert_int_equal(fb_select_tokens(&t, 0, 3, (fb_select_mode)7, 0, obs, cnt), FB_ERR_CONFIG);
    fb_table_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rarefy_basic),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_exact_distribution),
        cmocka_unit_test(test_moments),
        cmocka_unit_test(test_select),
    };
    return cmocka_run_group_tests_name("rarefy", tests, NULL, NULL);
}
