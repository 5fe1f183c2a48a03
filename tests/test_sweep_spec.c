// Sweep specifications (bench/sweep_spec.c, format in bench/SWEEP.md): parsing (comments,
// whitespace, `all`, ranges, defaults), the size and order of the product, arms, exclusions, the
// checks a run must pass, every bad-input message with its line number, and the job array index lists.
//
// bench/ is not part of libfusebench.a (the tests link only the library), so the parser's source is
// compiled into this test directly.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testutil.h"
#include "../bench/sweep_spec.c"

// Parses text (labelled "spec") and fails the test on an error, printing it.
static void parse_ok(sweep_spec *s, const char *text) {
    char err[1024] = "";
    int rc = sweep_spec_parse(s, text, "spec", err, sizeof err);
    if (rc != 0) fail_msg("unexpected error: %s\nspec:\n%s", err, text);
}

static const char *value(const sweep_run *r, sweep_axis a) {
    static char buf[8][64];
    static int k;
    k = (k + 1) % 8;
    return sweep_axis_value(a, r->v[a], buf[k], sizeof buf[k]);
}

static int methods_fitting(const char *scenario_name) {
    const scenario *sc = scenario_find(scenario_name);
    int n = 0;
    char why[256];
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) n += sc->fits(fusion_methods[i], why, sizeof why) == 0;
    return n;
}

// Comments (whole-line and trailing), blank lines, spaces and tabs, a key without its colon.
static void test_format(void **state) {
    (void)state;
    sweep_spec s;
    parse_ok(&s, "# a tiny sweep\n"
                 "\n"
                 "   scenario :  multimodal      # trailing comment\n"
                 "method: gmu ,concat_mlp\n"
                 "\tranks_per_node:\t1,  2\n"
                 "seed 1, 2\n"
                 "steps: 4\n"
                 "batch: 8\n"
                 "   # indented comment\n");
    assert_int_equal(s.nruns, 2 * 2 * 2);
    // Product order: method outer, ranks_per_node, seed innermost.
    const char *expect[8][3] = { { "gmu", "1", "1" }, { "gmu", "1", "2" }, { "gmu", "2", "1" }, { "gmu", "2", "2" },
                                 { "concat_mlp", "1", "1" }, { "concat_mlp", "1", "2" }, { "concat_mlp", "2", "1" },
                                 { "concat_mlp", "2", "2" } };
    for (int i = 0; i < 8; i++) {
        const sweep_run *r = &s.runs[i];
        assert_string_equal(value(r, SWEEP_SCENARIO), "multimodal");
        assert_string_equal(value(r, SWEEP_METHOD), expect[i][0]);
        assert_string_equal(value(r, SWEEP_RANKS_PER_NODE), expect[i][1]);
        assert_string_equal(value(r, SWEEP_SEED), expect[i][2]);
        assert_int_equal(r->batch, 8);
        assert_int_equal(r->ranks, atoi(expect[i][1]));
        assert_int_equal(r->v[SWEEP_STEPS], 4);
    }
    assert_int_equal(s.axes[SWEEP_METHOD].line, 4);
    assert_int_equal(s.axes[SWEEP_SEED].line, 6);
    sweep_spec_free(&s);
}

// What a spec leaves out takes fusebench train's defaults; the method is each scenario's own.
static void test_defaults(void **state) {
    (void)state;
    sweep_spec s;
    parse_ok(&s, "scenario: timeseries, multimodal, microbiome\n");
    assert_int_equal(s.nruns, 3);
    const char *methods[] = { "gated_add", "concat_mlp", "categorical_concat" };
    for (int i = 0; i < 3; i++) {
        const sweep_run *r = &s.runs[i];
        assert_string_equal(value(r, SWEEP_METHOD), methods[i]);
        assert_string_equal(value(r, SWEEP_PARALLEL), "ddp");
        assert_string_equal(value(r, SWEEP_PAIRS), "local");
        assert_int_equal(r->ranks, 1);
        assert_int_equal(r->v[SWEEP_THREADS], 1);
        assert_int_equal(r->batch, 8);   // 8 per rank
        assert_int_equal(r->v[SWEEP_STEPS], 100);
        assert_int_equal(r->v[SWEEP_SEED], 1);
    }
    assert_int_equal(s.batch_per_rank, 1);
    assert_int_equal(s.launcher, SWEEP_LAUNCH_AUTO);
    assert_string_equal(s.extra, "");
    // One implicit arm "-" without options, so a spec without arms plans what it did before arms.
    assert_int_equal(s.narms, 1);
    assert_int_equal(s.axes[SWEEP_ARM].line, 0);
    for (int i = 0; i < s.nruns; i++) {
        assert_string_equal(sweep_run_arm(&s, &s.runs[i]), "-");
        assert_string_equal(sweep_run_arm_options(&s, &s.runs[i]), "");
    }
    sweep_spec_free(&s);
}

// Arms: one per line, an axis of the product right inside the method, each run with its options
// (a negative option value included); exclusions name them by label.
static void test_arms(void **state) {
    (void)state;
    sweep_spec s;
    parse_ok(&s, "scenario: multimodal\n"
                 "method: gmu, concat_mlp\n"
                 "arm: raw   --celestial-raw   # trailing comment\n"
                 "seed: 1, 2\n"
                 "arm: layernorm\n"
                 "arm: closed --gate-bias -6 --variant per_sample\n");
    assert_int_equal(s.narms, 3);
    assert_int_equal(s.axes[SWEEP_ARM].line, 3);
    assert_int_equal(s.arms[2].line, 6);
    assert_int_equal(s.nruns, 2 * 3 * 2);
    // Product order: method, arm, then seed innermost.
    const char *labels[] = { "raw", "layernorm", "closed" };
    const char *options[] = { "--celestial-raw", "", "--gate-bias -6 --variant per_sample" };
    for (int i = 0; i < s.nruns; i++) {
        const sweep_run *r = &s.runs[i];
        const int arm = (i / 2) % 3;
        char index[16];
        snprintf(index, sizeof index, "%d", arm);
        assert_string_equal(value(r, SWEEP_METHOD), i < 6 ? "gmu" : "concat_mlp");
        assert_int_equal(r->v[SWEEP_ARM], arm);
        assert_string_equal(value(r, SWEEP_ARM), index);   // the axis value is the index; the label is the spec's
        assert_string_equal(sweep_run_arm(&s, r), labels[arm]);
        assert_string_equal(sweep_run_arm_options(&s, r), options[arm]);
        assert_int_equal(r->v[SWEEP_SEED], 1 + i % 2);
    }
    sweep_spec_free(&s);
    // An exclusion by label: mul does not take the raw arm.
    parse_ok(&s, "scenario: multimodal\nmethod: gmu, mul\narm: raw --celestial-raw\narm: ln\n"
                 "exclude: arm=raw method=mul\n");
    assert_int_equal(s.nruns, 3);
    assert_int_equal(s.excl[0].matched, 1);
    for (int i = 0; i < s.nruns; i++)
        assert_false(strcmp(value(&s.runs[i], SWEEP_METHOD), "mul") == 0 && strcmp(sweep_run_arm(&s, &s.runs[i]), "raw") == 0);
    sweep_spec_free(&s);
    // At most SWEEP_MAX_ARMS arms; the next one is refused on its line.
    char text[64 * (SWEEP_MAX_ARMS + 2)];
    size_t used = (size_t)snprintf(text, sizeof text, "scenario: multimodal\n");
    for (int i = 0; i < SWEEP_MAX_ARMS; i++) used += (size_t)snprintf(text + used, sizeof text - used, "arm: a%d\n", i);
    parse_ok(&s, text);
    assert_int_equal(s.nruns, SWEEP_MAX_ARMS);
    sweep_spec_free(&s);
    snprintf(text + used, sizeof text - used, "arm: one_more\n");
    char err[1024] = "", expect[64];
    assert_int_equal(sweep_spec_parse(&s, text, "spec", err, sizeof err), -1);
    snprintf(expect, sizeof expect, "spec:%d: arm: more than %d arms", SWEEP_MAX_ARMS + 2, SWEEP_MAX_ARMS);
    assert_string_equal(err, expect);
}

// `all` is every method that fits each scenario (its fits()), so the count differs per scenario.
static void test_all_methods(void **state) {
    (void)state;
    sweep_spec s;
    parse_ok(&s, "scenario: multimodal\nmethod: all\n");
    assert_int_equal(s.nruns, methods_fitting("multimodal"));
    assert_true(s.nruns > 1);
    sweep_spec_free(&s);
    parse_ok(&s, "scenario: timeseries, multimodal\nmethod: all\nseed: 1, 2\n");
    assert_int_equal(s.nruns, 2 * (methods_fitting("timeseries") + methods_fitting("multimodal")));
    for (int i = 0; i < s.nruns; i++) {
        const scenario *sc = scenario_find(value(&s.runs[i], SWEEP_SCENARIO));
        char why[256];
        assert_int_equal(sc->fits(fusion_methods[s.runs[i].v[SWEEP_METHOD]], why, sizeof why), 0);
    }
    sweep_spec_free(&s);
}

// A..B ranges, batch_per_rank, nodes x ranks_per_node, extra, sbatch and launcher.
static void test_ranges_and_options(void **state) {
    (void)state;
    sweep_spec s;
    parse_ok(&s, "scenario: microbiome\n"
                 "nodes: 1, 2\n"
                 "ranks_per_node: 2\n"
                 "threads: 1..2\n"
                 "batch_per_rank: 2\n"
                 "seed: 0..4\n"
                 "extra: --trace-every 5 --no-counters\n"
                 "sbatch: --partition=debug --time=00:10:00\n"
                 "launcher: mpirun\n");
    assert_int_equal(s.nruns, 2 * 2 * 5);
    for (int i = 0; i < s.nruns; i++) {
        const sweep_run *r = &s.runs[i];
        assert_int_equal(r->ranks, r->v[SWEEP_NODES] * 2);
        assert_int_equal(r->batch, 2 * r->ranks);
    }
    assert_int_equal(s.runs[0].v[SWEEP_SEED], 0);
    assert_int_equal(s.runs[4].v[SWEEP_SEED], 4);
    assert_string_equal(s.extra, "--trace-every 5 --no-counters");
    assert_string_equal(s.sbatch, "--partition=debug --time=00:10:00");
    assert_int_equal(s.launcher, SWEEP_LAUNCH_MPIRUN);
    sweep_spec_free(&s);
}

// Exclusions: every condition must hold; they may come before the lines they name; each counts
// the runs it removed; an exclusion keeps a run train would refuse out of the checks.
static void test_exclusions(void **state) {
    (void)state;
    sweep_spec s;
    parse_ok(&s, "exclude parallel=dataparallel pairs=global   # dataparallel sees every pair anyway\n"
                 "scenario: microbiome\n"
                 "parallel: ddp, dataparallel\n"
                 "pairs: local, global, blockdiag\n"
                 "ranks_per_node: 1, 2\n"
                 "exclude: parallel=dataparallel pairs=blockdiag\n"
                 "exclude: ranks_per_node=2 pairs=local parallel=ddp\n");
    // 2 x 3 x 2 = 12, less dataparallel+global (2), dataparallel+blockdiag (2), ddp+local on 2 ranks (1).
    assert_int_equal(s.nruns, 7);
    assert_int_equal(s.nexcl, 3);
    assert_int_equal(s.excl[0].matched, 2);
    assert_int_equal(s.excl[1].matched, 2);
    assert_int_equal(s.excl[2].matched, 1);
    for (int i = 0; i < s.nruns; i++) {
        const sweep_run *r = &s.runs[i];
        assert_false(r->v[SWEEP_PARALLEL] == TRAIN_DATAPARALLEL && r->v[SWEEP_PAIRS] != TRAIN_PAIRS_LOCAL);
        assert_false(r->v[SWEEP_PARALLEL] == TRAIN_DDP && r->v[SWEEP_PAIRS] == TRAIN_PAIRS_LOCAL && r->ranks == 2);
    }
    sweep_spec_free(&s);
    // A method that does not fit a scenario is fine once excluded there (attention fits the
    // timeseries scenario, not the multimodal one).
    parse_ok(&s, "scenario: timeseries, multimodal\nmethod: gmu, attention\nexclude: scenario=multimodal method=attention\n");
    assert_int_equal(s.nruns, 3);
    sweep_spec_free(&s);
    parse_ok(&s, "scenario: multimodal\nmethod: all\nexclude: method=gmu\n");
    assert_int_equal(s.nruns, methods_fitting("multimodal") - 1);
    sweep_spec_free(&s);
    parse_ok(&s, "scenario: multimodal\nbatch_per_rank: 4, 8\nexclude: batch_per_rank=8\n");
    assert_int_equal(s.nruns, 1);
    assert_int_equal(s.runs[0].batch, 4);
    sweep_spec_free(&s);
}

typedef struct {
    const char *text;
    int line;
    const char *message;   // a part of the message after "spec:LINE: "
} bad_case;

// Every refusal names its line; the spec is left empty.
static void test_bad_input(void **state) {
    (void)state;
    const bad_case cases[] = {
        { "scenario: multimodal\nthread: 2\n", 2, "unknown key 'thread' (keys: scenario, method," },
        { "scenario: multimodal\nScenario: x\n", 2, "expected `key: value, value, ...`" },
        { "scenario=multimodal\n", 1, "expected `key: value, value, ...`" },
        { "scenario: weather\n", 1, "unknown scenario 'weather' (known: timeseries, multimodal, microbiome)" },
        { "scenario: multimodal\n\nmethod: gmux\n", 3, "unknown method 'gmux' (known: add," },
        { "scenario: multimodal\nparallel: fsdp\n", 2, "unknown parallel 'fsdp' (known: dataparallel, ddp)" },
        { "scenario: multimodal\npairs: all\n", 2, "unknown pairs 'all' (known: local, global, blockdiag)" },
        { "scenario: multimodal\nnodes: two\n", 2, "nodes: 'two' is not an integer" },
        { "scenario: multimodal\nthreads: 0\n", 2, "threads: 0 is below 1" },
        { "scenario: multimodal\nseed: -1\n", 2, "seed: -1 is below 0" },
        { "scenario: multimodal\nseed: 1,,2\n", 2, "seed: an empty value in the list" },
        { "scenario: multimodal\nseed: 1,\n", 2, "seed: an empty value in the list" },
        { "scenario: multimodal\nseed: 1, 2, 1\n", 2, "seed: 1 is listed twice" },
        { "scenario: multimodal\nseed: 5..2\n", 2, "seed: the range 5..2 is empty" },
        { "scenario: multimodal\nseed: 1..5000\n", 2, "seed: more than 1000 values" },
        { "scenario: multimodal\nsteps:\n", 2, "steps: no value" },
        { "scenario: multimodal\nmethod: all, gmu\n", 2, "`all` stands alone" },
        { "scenario: multimodal\nsteps: 4\nscenario: timeseries\n", 3, "scenario is given twice (first on line 1)" },
        { "scenario: multimodal\nbatch: 8\nbatch_per_rank: 2\n", 3, "give batch (global) or batch_per_rank, not both (the other is on line 2)" },
        { "# nothing\nmethod: gmu\n", 2, "no `scenario:` line" },
        { "", 1, "no `scenario:` line" },
        // A method that does not fit its scenario (the scenario's fits()), on the method line.
        { "scenario: timeseries\nsteps: 4\nmethod: gmu, perceiver\n", 3,
          "method perceiver does not fit the timeseries scenario (" },
        { "scenario: timeseries\nmethod: perceiver\n", 2, "; methods that do: add, mul," },
        // The batch against the ranks, on the batch line.
        { "scenario: multimodal\nbatch: 2\nranks_per_node: 1, 4\n", 2,
          "batch 2 over 4 ranks (nodes 1 x ranks_per_node 4): every rank needs at least one sample" },
        { "scenario: multimodal\nnodes: 2\nranks_per_node: 2\nbatch: 6\n", 4,
          "batch 6 does not divide over 4 ranks (nodes 2 x ranks_per_node 2)" },
        { "scenario: microbiome\nbatch: 8, 7\n", 2, "batch 7 is odd: the microbiome scenario's UniFrac loss needs an even global batch" },
        { "scenario: microbiome\nbatch_per_rank: 3\n", 2, "batch_per_rank 3 x 1 rank (nodes 1 x ranks_per_node 1) = 3 is odd" },
        { "scenario: multimodal\nbatch: 7\n", -1, NULL },   // odd is fine without a pairwise loss
        { "scenario: multimodal\nparallel: dataparallel\npairs: local, blockdiag\n", 3,
          "pairs blockdiag applies to ddp only (dataparallel always sees every pair); add `exclude: parallel=dataparallel pairs=blockdiag`" },
        // Exclusions.
        { "scenario: multimodal\nparallel: ddp\nexclude: parallel=ddp\n", 3,
          "the exclusions (line 3) exclude every run (the product has 1): the sweep is empty" },
        { "scenario: multimodal\nseed: 1, 2\nexclude: seed=1\nexclude: seed=2\n", 4,
          "the exclusions (lines 3, 4) exclude every run (the product has 2)" },
        { "scenario: multimodal\nexclude: colour=red\n", 2, "exclude: unknown key 'colour' (keys: scenario," },
        { "scenario: multimodal\nexclude: parallel\n", 2, "exclude: 'parallel' is not key=value" },
        { "scenario: multimodal\nexclude: parallel=ddp parallel=dataparallel\n", 2, "exclude: parallel appears twice" },
        { "scenario: multimodal\nexclude: pairs=global\n", 2, "exclude: pairs=global names a value the sweep does not have (pairs takes its default)" },
        { "scenario: multimodal\nseed: 1, 2\nexclude: seed=3\n", 3, "exclude: seed=3 names a value the sweep does not have (seed is on line 2)" },
        { "scenario: multimodal\nexclude: pairs=globl\n", 2, "unknown pairs 'globl'" },
        { "scenario: multimodal\nbatch: 8\nexclude: batch_per_rank=8\n", 3, "exclude: this spec's batches are global, so exclude by batch=" },
        // extra, sbatch, launcher.
        { "scenario: multimodal\nextra: --out x.h5\n", 2, "extra: --out is set by the sweep itself" },
        { "scenario: multimodal\nextra: --batch-per-rank=4\n", 2, "extra: --batch-per-rank is set by the sweep itself" },
        { "scenario: multimodal\nextra: --trace-every 5; rm -rf /\n", 2, "extra: no shell syntax" },
        { "scenario: multimodal\nextra: trace-every 5\n", 2, "extra: 'trace-every' is not an option" },
        { "scenario: multimodal\nsbatch: --partition=debug --array=1\n", 2, "sbatch: --array is set by the sweep itself" },
        { "scenario: multimodal\nsbatch: -N2\n", 2, "sbatch: -N is set by the sweep itself" },
        { "scenario: multimodal\nsbatch: --partition debug\n", 2, "sbatch: 'debug' is not an option" },
        { "scenario: multimodal\nlauncher: ssh\n", 2, "launcher: 'ssh' is not auto, srun or mpirun" },
        // Arms.
        { "scenario: multimodal\narm: raw --celestial-raw\nseed: 1\narm: raw\n", 4,
          "arm: label 'raw' is given twice (first on line 2)" },
        { "scenario: multimodal\narm: --celestial-raw\n", 2, "arm: '--celestial-raw' is not a label" },
        { "scenario: multimodal\narm: r/aw --celestial-raw\n", 2, "arm: 'r/aw' is not a label" },
        { "scenario: multimodal\narm:\n", 2, "arm: no value" },
        { "scenario: multimodal\narm: " "0123456789012345678901234567890123456789012345678901234567890123" "\n", 2,
          "arm: label '0123456789012345678901234567890123456789012345678901234567890123' is longer than 63 characters" },
        { "scenario: multimodal\narm: raw --celestial-raw; rm -rf /\n", 2, "arm: no shell syntax" },
        { "scenario: multimodal\narm: raw --out x.h5\n", 2, "arm: --out is set by the sweep itself" },
        { "scenario: multimodal\narm: raw celestial-raw\n", 2, "arm: 'celestial-raw' is not an option" },
        { "scenario: multimodal\narm: raw --celestial-raw\nexclude: arm=ln\n", 3, "unknown arm 'ln' (known: raw)" },
        { "scenario: multimodal\nexclude: arm=raw\n", 2, "unknown arm 'raw' (known: -)" },
        { "scenario: multimodal\narm: a\narm: b\nexclude: arm=a\nexclude: arm=b\n", 5,
          "the exclusions (lines 4, 5) exclude every run (the product has 2)" },
        { "scenario: multimodal\nseed: 1..100\nthreads: 1..100\n", 2, "the product has more than 9999 runs" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        sweep_spec s;
        char err[1024] = "", prefix[32];
        int rc = sweep_spec_parse(&s, c->text, "spec", err, sizeof err);
        if (!c->message) {
            if (rc != 0) fail_msg("case %zu: unexpected error: %s", i, err);
            sweep_spec_free(&s);
            continue;
        }
        snprintf(prefix, sizeof prefix, "spec:%d: ", c->line);
        printf("  %s\n", err);
        if (rc == 0) fail_msg("case %zu accepted; expected \"%s%s\"", i, prefix, c->message);
        if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, c->message))
            fail_msg("case %zu: got \"%s\"\n  expected \"%s...%s...\"", i, err, prefix, c->message);
        assert_int_equal(s.nruns, 0);   // nothing is left to free or to write
        assert_null(s.runs);
    }
}

// Reading from a file labels the messages with its path; a missing file is named.
static void test_load(void **state) {
    (void)state;
    char dir[] = "/tmp/fb_sweep_spec_XXXXXX", path[64], err[1024];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/bad.spec", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("scenario: multimodal\n# ok so far\nmethod: nope\n", f);
    fclose(f);
    sweep_spec s;
    assert_int_equal(sweep_spec_load(&s, path, err, sizeof err), -1);
    char expect[128];
    snprintf(expect, sizeof expect, "%s:3: unknown method 'nope'", path);
    assert_true(strncmp(err, expect, strlen(expect)) == 0);
    remove(path);
    assert_int_equal(sweep_spec_load(&s, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open"));
    rmdir(dir);
}

// Job array index lists: compressed ranges and back; malformed lists refused.
static void test_rows(void **state) {
    (void)state;
    const int rows[] = { 1, 2, 3, 5, 7, 8, 9, 12 };
    char buf[128];
    sweep_rows_format(rows, 8, buf, sizeof buf);
    assert_string_equal(buf, "1-3,5,7-9,12");
    int back[16];
    assert_int_equal(sweep_rows_parse(buf, back, 16), 8);
    assert_memory_equal(back, rows, sizeof rows);
    sweep_rows_format(rows, 1, buf, sizeof buf);
    assert_string_equal(buf, "1");
    const char *bad[] = { "", "0", "3-1", "1,,2", "2,1", "1-3,2", "x", "1-", "1;2" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_int_equal(sweep_rows_parse(bad[i], back, 16), -1);
    assert_int_equal(sweep_rows_parse("1-20", back, 16), -1);   // more than fit
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_methods),
        cmocka_unit_test(test_ranges_and_options),
        cmocka_unit_test(test_arms),
        cmocka_unit_test(test_exclusions),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_rows),
    };
    return cmocka_run_group_tests_name("sweep_spec", tests, NULL, NULL);
}
