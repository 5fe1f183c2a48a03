// `fusebench train`: trains one scenario model (harness/model.h) with one fusion method under one
// parallel strategy (harness/train.h), prints the per-step breakdown and writes an HDF5 result.
//
// Phases (HPCG's shape): options → MPI set-up and rank census → model and strategy (harness) →
// training steps (progress on rank 0's stderr) → report: per-phase medians, samples/s, the
// exposed-communication share, FOM lines → HDF5 (rank 0).
// Every rank parses the same argv and reaches the same verdict; rank 0 alone prints it. A failure
// inside the run (NaN, a bad shape) stops every rank through the harness's agreement, with the
// failing rank's message printed once by rank 0; every rank exits 1.
#include <math.h>
#include <mpi.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "build_info.h"
#include "../harness/parallel.h"
#include "../harness/train.h"
#include <signal.h>
#include "../io/h5out.h"
#include "cli.h"
#include "machine.h"
#include "mpi_run.h"
#include "train_out.h"
#include "worlds.h"
#include "../datasets/microbiome_files.h"

#define PROG "fusebench train"

typedef struct {
    const char *scenario, *method, *variant, *parallel, *pairs, *optimizer, *out, *checkpoint, *resume;
    int batch, batch_per_rank, steps, threads, warmup, checkpoint_every, no_progress, no_h5, poison_step, nesterov;
    int holdout, trace_every, eval_check_every, no_counters, no_trace, flush_every, overhead, kill_at_step, celestial_raw;
    const char *table, *tree, *metadata, *unifrac, *target_column, *asv_select, *ts_world, *mm_world;
    double rarefy;
    int tokens;
    const char *papi_events;
    int D, H, layers, F;
    double gate_bias, energy_budget, bucket_mb, first_bucket_mb, lr, lr_min, weight_decay, momentum, clip, dropout, progress_seconds;
    int seed;
} topts;

static void print_help(const fb_option *opts, int nopts) {
    printf("usage: [mpirun -np P] fusebench train --scenario NAME [options]\n\n"
           "Trains a miniature of one source system with the chosen fusion method, data-parallel over\n"
           "P MPI ranks (the global batch B is split, B/P rows per rank), and reports per step the\n"
           "time of each phase: data, forward, loss, backward, communication (total and exposed),\n"
           "optimizer, and samples/s.\n\n"
           "scenarios:\n");
    const scenario *sc[] = { &scenario_timeseries, &scenario_multimodal, &scenario_microbiome };
    for (int i = 0; i < 3; i++)
        printf("  %-11s (%s) %s\n              default method: %s\n", sc[i]->name, sc[i]->source, sc[i]->description,
               sc[i]->default_method ? sc[i]->default_method : "(none: --method required)");
    printf("\nparallel strategies:\n"
           "  dataparallel  torch.nn.DataParallel: inputs scattered from rank 0, outputs gathered to\n"
           "                rank 0, the loss over all pairs of the global batch there, output\n"
           "                gradients scattered back, gradients reduced to rank 0, which steps and\n"
           "                broadcasts the parameters every step\n"
           "  ddp           DistributedDataParallel: every rank makes its own rows; gradients averaged\n"
           "                with MPI_Iallreduce in buckets (--bucket-mb; first bucket --first-bucket-mb)\n"
           "                posted as backward finishes them; --bucket-mb 0: one blocking allreduce.\n"
           "                --pairs for a pairwise loss (microbiome's UniFrac term):\n"
           "                  local      each rank's own pairs (DDP)\n"
           "                  global     outputs all-gathered, every pair of the global batch\n"
           "                  blockdiag  gathered, cross-rank pairs masked, pairwise terms x P\n"
           "                             (the source system's FSDP path)\n\n"
           "Data: global row g of step s is sample s*B + g of the scenario's deterministic generator,\n"
           "so any number of ranks trains on the same batches. The same seed, ranks and threads give\n"
           "bitwise-identical losses and parameters; --resume continues a --checkpoint bit for bit.\n"
           "Progress: rank 0 draws a bar on a terminal, else prints a line every --progress-seconds.\n"
           "Greppable lines:\n"
           "  FOM train scenario=.. method=.. parallel=.. ranks=P threads=T batch=B step_ms=MEDIAN\n"
           "      samples_per_s=.. comm_exposed_pct=.. final_loss=..\n"
           "Results: one HDF5 file from rank 0 (schema: results/README.md). Exit status: 0 ok, 1 the\n"
           "run failed (message from rank 0 naming the failing rank), 2 usage error.\n\n"
           "options:\n");
    fb_cli_print_options(stdout, opts, nopts);
    printf("\nExamples:\n"
           "  bench/fusebench train --scenario microbiome --steps 200\n"
           "  mpirun -np 2 bench/fusebench train --scenario microbiome --parallel ddp --pairs global\n"
           "  mpirun -np 4 --oversubscribe bench/fusebench train --scenario multimodal --method gmu \\\n"
           "      --parallel dataparallel --batch 64 --threads 1\n"
           "  bench/fusebench train --scenario timeseries --checkpoint run.ckpt.h5 --checkpoint-every 50\n"
           "  bench/fusebench train --scenario timeseries --resume run.ckpt.h5 --checkpoint run.ckpt.h5\n");
}

static int find_name(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

// Turns the options into a train_config; returns 0 or prints the reason (rank 0) and returns -1.
static int build_config(const topts *o, int rank, int ranks, train_config *c) {
    char why[512] = "";
    *c = train_defaults();
    c->scenario = o->scenario ? scenario_find(o->scenario) : NULL;
    if (!o->scenario) snprintf(why, sizeof why, "--scenario is required (timeseries, multimodal or microbiome)");
    else if (!c->scenario)
        snprintf(why, sizeof why, "--scenario '%s' is unknown (known: timeseries, multimodal, microbiome)", o->scenario);
    int strategy = find_name(o->parallel, train_strategy_names, 2), pairs = find_name(o->pairs, train_pairs_names, 3);
    int optimizer = strcmp(o->optimizer, "adamw") == 0 ? 0 : strcmp(o->optimizer, "sgd") == 0 ? 1 : -1;
    if (!why[0] && strategy < 0) snprintf(why, sizeof why, "--parallel '%s' is unknown (dataparallel or ddp)", o->parallel);
    if (!why[0] && pairs < 0) snprintf(why, sizeof why, "--pairs '%s' is unknown (local, global or blockdiag)", o->pairs);
    if (!why[0] && optimizer < 0) snprintf(why, sizeof why, "--optimizer '%s' is unknown (adamw or sgd)", o->optimizer);
    const char *method = o->method ? o->method : c->scenario ? c->scenario->default_method : NULL;
    if (!why[0] && !method) snprintf(why, sizeof why, "--method is required for the %s scenario", c->scenario->name);
    int variant = 0;
    if (!why[0] && o->variant) {
        const fusion_method *fm = fusion_find(method);
        if (fm) {   // an unknown method is reported by the harness, with the list of those that fit
            variant = fusion_variant_index(fm, o->variant);
            if (variant < 0 && fb_parse_int(o->variant, &variant, why, sizeof why) == 0 &&
                (variant < 0 || variant >= FUSION_MAX_VARIANTS || !fm->variants[variant]))
                variant = -1;
            if (variant < 0) {
                size_t used = (size_t)snprintf(why, sizeof why, "--variant '%s' is not a variant of %s (variants:",
                                               o->variant, fm->name);
                for (int k = 0; k < FUSION_MAX_VARIANTS && fm->variants[k] && used < sizeof why; k++)
                    used += (size_t)snprintf(why + used, sizeof why - used, " %s", fm->variants[k]);
                if (used < sizeof why) snprintf(why + used, sizeof why - used, ")");
            } else {
                why[0] = 0;
            }
        }
    }
    if (!why[0] && !isnan(o->gate_bias) && method && fusion_find(method) && !fusion_find(method)->has_gate_bias)
        snprintf(why, sizeof why, "--gate-bias: %s has no gate with a configurable bias (gated_add and gated_interp do)",
                 method);
    if (!why[0] && !isnan(o->energy_budget) && method && fusion_find(method) && !fusion_find(method)->has_cost_budget)
        snprintf(why, sizeof why, "--energy-budget: %s has no energy budget (energy_aware_adaptive does)", method);
    if (!why[0] && o->batch && o->batch_per_rank)
        snprintf(why, sizeof why, "give --batch (global) or --batch-per-rank, not both");
    if (why[0]) {
        if (rank == 0) fprintf(stderr, PROG ": %s\n", why);
        return -1;
    }
    c->model.method = method;
    c->model.variant = variant;
    c->model.D = o->D; c->model.H = o->H; c->model.layers = o->layers; c->model.F = o->F;
    c->model.dropout = (float)o->dropout;
    c->model.celestial_raw = o->celestial_raw;
    c->holdout = o->holdout;
    c->model.gate_bias_set = !isnan(o->gate_bias);
    c->model.gate_bias = (float)o->gate_bias;
    c->model.cost_budget = isnan(o->energy_budget) ? 0.0f : (float)o->energy_budget;
    static fb_worlds worlds;   // outlives the run (c points into it)
    char wwhy[320];
    if (fb_worlds_parse(c->scenario ? c->scenario->name : NULL, o->ts_world, o->mm_world, &worlds, wwhy,
                        sizeof wwhy) != 0) {
        if (rank == 0) fprintf(stderr, PROG ": %s\n", wwhy);
        return -1;
    }
    c->model.ts_world = worlds.has_ts ? &worlds.ts : NULL;
    c->model.mm_world = worlds.has_mm ? &worlds.mm : NULL;
    c->model.seed = (uint64_t)o->seed;
    c->batch = o->batch ? o->batch : (o->batch_per_rank ? o->batch_per_rank : 8) * ranks;
    c->steps = o->steps;
    c->strategy = (train_strategy)strategy;
    c->pairs = (train_pairs)pairs;
    c->bucket_mb = o->bucket_mb;
    c->first_bucket_mb = o->first_bucket_mb;
    c->optim = optimizer == 0 ? fb_adamw_config() : fb_sgd_config();
    if (o->lr >= 0) c->optim.lr = o->lr;
    if (o->weight_decay >= 0) c->optim.weight_decay = o->weight_decay;
    if (optimizer == 1) {
        if (o->momentum >= 0) c->optim.momentum = o->momentum;
        c->optim.nesterov = o->nesterov;
    }
    c->lr_min = o->lr_min;
    c->warmup = o->warmup;
    c->clip = o->clip;
    c->checkpoint = o->checkpoint;
    c->checkpoint_every = o->checkpoint_every;
    c->resume = o->resume;
    c->progress = !o->no_progress;
    c->progress_seconds = o->progress_seconds;
    c->poison_step = o->poison_step;
    c->monitor.counters = !o->no_counters && !o->no_trace;
    c->monitor.papi_events = o->papi_events;
    c->monitor.trace_every = o->no_trace ? 0 : o->trace_every;
    c->monitor.eval_check_every = o->no_trace ? 0 : o->eval_check_every;
    return 0;
}

static double median_of(const train_result *r, int k, int skip) {
    int n = r->steps - skip;
    if (n <= 0) { skip = 0; n = r->steps; }
    double *x = malloc((size_t)n * sizeof *x);
    if (!x) return NAN;
    for (int i = 0; i < n; i++) x[i] = r->times[(size_t)(i + skip) * TT_COUNT + k];
    fb_stats s = fb_stats_of(x, n);
    free(x);
    return s.median;
}

// --kill-at-step: passes everything to the file's sink, then kills rank 0 after that step (a
// real SIGKILL: no handler, no flush, no atexit), as a Slurm time limit or the OOM killer would.
typedef struct { train_sink *inner; int at; } kill_sink;

static fb_status kill_begin(void *ctx, const train_result *r, const monitor_trace *names) {
    kill_sink *k = ctx;
    return k->inner->begin ? k->inner->begin(k->inner->ctx, r, names) : FB_OK;
}

static fb_status kill_step(void *ctx, const train_result *r, int i, const monitor_trace *trace) {
    kill_sink *k = ctx;
    fb_status st = k->inner->step ? k->inner->step(k->inner->ctx, r, i, trace) : FB_OK;
    if (k->at >= 0 && r->first_step + i == k->at) {
        fflush(stdout);
        raise(SIGKILL);
    }
    return st;
}

// The per-step table, medians, counters, verdicts and FOM line (rank 0). Returns samples/s.
static double report(const train_config *c, const train_result *r, const fb_mpi_run *run, int threads, double *med) {
    const char *const *names = r->term_names;
    const int skip = r->steps > 10 ? r->steps / 10 : 0;   // warm-up steps left out of the medians
    for (int k = 0; k < TT_COUNT; k++) med[k] = median_of(r, k, skip);
    const double sps = med[TT_STEP] > 0 ? c->batch / med[TT_STEP] : 0;
    const double exposed_pct = med[TT_STEP] > 0 ? 100 * med[TT_COMM_EXPOSED] / med[TT_STEP] : 0;
    printf("# model     %zu parameters; %d gradient bucket%s\n", r->n_params, r->nbuckets, r->nbuckets == 1 ? "" : "s");
    printf("\n%-6s %-12s", "step", "loss");
    for (int k = 0; k < r->n_terms; k++) printf(" %-11s", names[k]);
    printf(" %8s %8s %8s %8s %8s %8s %8s %8s %10s\n", "data", "fwd", "loss", "bwd", "comm", "exposed", "optim",
           "step ms", "samples/s");
    const int every = r->steps > 20 ? r->steps / 20 : 1;
    for (int i = 0; i < r->steps; i++) {
        if (i % every && i != r->steps - 1) continue;
        const double *t = r->times + (size_t)i * TT_COUNT;
        printf("%-6d %-12.6g", r->first_step + i, r->loss[i]);
        for (int k = 0; k < r->n_terms; k++) printf(" %-11.5g", r->terms[(size_t)i * r->n_terms + k]);
        printf(" %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f %10.1f\n", t[TT_DATA] * 1e3, t[TT_FORWARD] * 1e3,
               t[TT_LOSS] * 1e3, t[TT_BACKWARD] * 1e3, t[TT_COMM] * 1e3, t[TT_COMM_EXPOSED] * 1e3,
               t[TT_OPTIMIZER] * 1e3, t[TT_STEP] * 1e3, t[TT_STEP] > 0 ? c->batch / t[TT_STEP] : 0);
    }
    printf("\n# medians over steps %d..%d (ms, slowest rank): data %.3f forward %.3f loss %.3f backward %.3f "
           "comm %.3f (exposed %.3f = %.1f%% of the step) optimizer %.3f step %.3f\n",
           r->first_step + skip, r->first_step + r->steps - 1, med[TT_DATA] * 1e3, med[TT_FORWARD] * 1e3,
           med[TT_LOSS] * 1e3, med[TT_BACKWARD] * 1e3, med[TT_COMM] * 1e3, med[TT_COMM_EXPOSED] * 1e3, exposed_pct,
           med[TT_OPTIMIZER] * 1e3, med[TT_STEP] * 1e3);
    if (r->counted) {
        printf("# counters  PAPI %s: %s\n", r->papi_version, r->statement);
        // Unavailable events, those with the same reason on one line.
        for (int e = 0; e < r->n_events; e++) {
            if (r->event_available[e]) continue;
            int first = 1;
            for (int k = 0; k < e; k++) first &= r->event_available[k] || strcmp(r->event_reasons[k], r->event_reasons[e]);
            if (!first) continue;
            printf("#           unavailable:");
            for (int k = e; k < r->n_events; k++)
                if (!r->event_available[k] && !strcmp(r->event_reasons[k], r->event_reasons[e])) printf(" %s", r->event_names[k]);
            printf(" (%s)\n", r->event_reasons[e]);
        }
    }
    printf("# sde       FLOPs forward %.4g backward %.4g loss %.4g optimizer %.4g; allreduce %lld B in %lld calls; "
           "exposed comm %.3f ms; gate-saturated values %lld; NaN/Inf %lld\n",
           (double)r->sde[FB_SDE_FLOPS_FORWARD], (double)r->sde[FB_SDE_FLOPS_BACKWARD], (double)r->sde[FB_SDE_FLOPS_LOSS],
           (double)r->sde[FB_SDE_FLOPS_OPTIMIZER], (long long)r->sde[FB_SDE_ALLREDUCE_BYTES],
           (long long)r->sde[FB_SDE_ALLREDUCE_CALLS], r->sde[FB_SDE_EXPOSED_COMM_NS] * 1e-6,
           (long long)r->sde[FB_SDE_GATE_SATURATED], (long long)r->sde[FB_SDE_NONFINITE]);
    int fired = 0;
    for (int i = 0; i < r->n_verdicts; i++) fired += r->verdicts[i].fired;
    if (r->n_verdicts)
        printf("# verdicts  %d checked, %d fired; NormMonitor warnings (module output norm > 100 or < 0.01 at a "
               "traced step): %lld\n", r->n_verdicts, fired, (long long)r->norm_warnings);
    for (int i = 0; i < r->n_verdicts; i++) {
        const trace_verdict *v = &r->verdicts[i];
        if (v->fired) printf("#   FIRED   %-22s %-24s %s\n", v->name, v->subject, v->detail);
    }
    printf("FOM train scenario=%s method=%s parallel=%s pairs=%s ranks=%d threads=%d batch=%d step_ms=%.4f "
           "samples_per_s=%.1f comm_exposed_pct=%.2f final_loss=%.9g params=%s verdicts_fired=%d\n",
           c->scenario->name, c->model.method, train_strategy_names[c->strategy],
           c->strategy == TRAIN_DDP ? train_pairs_names[c->pairs] : "all", run->size, threads, c->batch,
           med[TT_STEP] * 1e3, sps, exposed_pct, r->loss[r->steps - 1], r->param_checksum, fired);
    if (r->holdout_n > 0) {
        printf("FOM holdout samples=%d loss=%.9g", r->holdout_n, r->holdout_loss);
        for (int k = 0; k < r->n_terms; k++) printf(" %s=%.9g", r->term_names[k], r->holdout_terms[k]);
        if (!isnan(r->holdout_accuracy)) printf(" accuracy=%.4f", r->holdout_accuracy);
        putchar('\n');
    }
    return sps;
}

// --overhead: the same run with every instrument off and on, alternating (off, on) x 3 so that a
// drift of the machine hits both alike. The figure is the ratio of the MEAN step times: traces
// cost on one step in --trace-every, which a median would not see; the medians are printed too.
static int measure_overhead(const train_config *base, const fb_mpi_run *run) {
    enum { ROUNDS = 3 };
    double *steps[2] = { NULL, NULL };
    int n[2] = { 0, 0 };
    for (int round = 0; round < ROUNDS; round++)
        for (int on = 0; on < 2; on++) {
            train_config c = *base;
            c.progress = 0;
            c.sink = NULL;
            if (!on) c.monitor = (monitor_config){ 0 };
            train_result r;
            if (train_run(&c, MPI_COMM_WORLD, &r) != FB_OK) {
                if (run->rank == 0) fprintf(stderr, PROG ": %s\n", fb_last_error());
                free(steps[0]); free(steps[1]);
                return FB_EXIT_FAIL;
            }
            if (run->rank != 0) continue;
            const int skip = r.steps > 10 ? r.steps / 10 : 0;
            double *grown = realloc(steps[on], (size_t)(n[on] + r.steps) * sizeof(double));
            if (grown) {
                steps[on] = grown;
                for (int i = skip; i < r.steps; i++) steps[on][n[on]++] = r.times[(size_t)i * TT_COUNT + TT_STEP];
            }
            train_result_free(&r);
        }
    if (run->rank == 0) {
        const fb_stats off = fb_stats_of(steps[0], n[0]), on = fb_stats_of(steps[1], n[1]);
        const double pct = off.mean > 0 ? 100.0 * (on.mean - off.mean) / off.mean : NAN;
        printf("# overhead  %d rounds of %d steps each way (counters %s, trace every %d, eval check every %d); "
               "step time of the slowest rank, uninstrumented / instrumented: mean %.4f / %.4f ms, "
               "median %.4f / %.4f ms\n", ROUNDS, base->steps, base->monitor.counters ? "on" : "off",
               base->monitor.trace_every, base->monitor.eval_check_every, off.mean * 1e3, on.mean * 1e3,
               off.median * 1e3, on.median * 1e3);
        printf("FOM train-overhead scenario=%s method=%s ranks=%d batch=%d step_ms_off=%.4f step_ms_on=%.4f "
               "overhead_pct=%.2f target=3\n", base->scenario->name, base->model.method, run->size, base->batch,
               off.mean * 1e3, on.mean * 1e3, pct);
    }
    free(steps[0]); free(steps[1]);
    return FB_EXIT_OK;
}

// ---- Microbiome data from files (--table ...) ----

typedef struct { int dataparallel, B, n, rank; } share;

// Which dataset samples this rank holds: row g of step s is sample (s·B + g) mod N, so with B
// dividing N rank r only ever sees the samples k with k mod B in its rows [r·n, r·n + n); otherwise
// every sample passes through every rank. DataParallel: rank 0 makes every batch.
static int wanted(void *ctx, int64_t k, int n_total) {
    const share *s = ctx;
    if (s->dataparallel) return s->rank == 0;
    if (n_total % s->B != 0) return 1;
    const int64_t g = k % s->B;
    return g >= (int64_t)s->rank * s->n && g < (int64_t)(s->rank + 1) * s->n;
}

static int load_microbiome(const topts *o, const fb_mpi_run *run, train_config *c, fb_microbiome_data *d) {
    const char *why = strcmp(c->scenario->name, "microbiome") != 0 ? "--table, --tree, --metadata and --unifrac "
                      "belong to the microbiome scenario" : !o->table || !o->tree || !o->metadata
                      ? "--table, --tree and --metadata go together" : NULL;
    fb_select_mode mode = FB_SELECT_ABUNDANCE;
    if (!why && strcmp(o->asv_select, "abundance") != 0)
        mode = !strcmp(o->asv_select, "first") ? FB_SELECT_FIRST : !strcmp(o->asv_select, "random") ? FB_SELECT_RANDOM
                                                                                                      : (fb_select_mode)-1;
    if (!why && (int)mode < 0) why = "--asv-select must be first, abundance or random";
    if (why) {
        if (run->rank == 0) fprintf(stderr, PROG ": %s\n", why);
        return -1;
    }
    const fb_microbiome_files f = { .table = o->table, .tree = o->tree, .metadata = o->metadata, .unifrac = o->unifrac,
                                    .target = o->target_column, .depth = (int64_t)o->rarefy, .max_tokens = o->tokens,
                                    .select = mode, .seed = c->model.seed, .threads = o->threads };
    // Rank 0 decides the dataset's samples (it reads every sample's counts once); the others learn it.
    fb_microbiome_plan plan = {0};
    fb_status st = run->rank == 0 ? fb_microbiome_plan_make(&f, &plan) : FB_OK;
    if (!fb_mpi_all_ok(st == FB_OK)) {
        if (run->rank == 0) fprintf(stderr, PROG ": %s\n", fb_last_error());
        return -1;
    }
    long long head[4] = { plan.n_total, plan.n_dropped, plan.min_total, plan.max_total };
    MPI_Bcast(head, 4, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
    if (run->rank != 0) {
        plan.n_total = (int)head[0];
        plan.file_index = malloc((size_t)(plan.n_total ? plan.n_total : 1) * sizeof(int32_t));
    }
    MPI_Bcast(plan.file_index, plan.n_total, MPI_INT32_T, 0, MPI_COMM_WORLD);
    if (run->rank == 0) {
        printf("# data      %s: %d samples (reads per sample %lld..%lld)", o->table, plan.n_total, head[2], head[3]);
        if (plan.n_dropped) {
            printf("; %d below the rarefaction depth %.0f dropped:", plan.n_dropped, o->rarefy);
            for (int i = 0; i < plan.n_dropped && i < 8; i++) printf(" %s", plan.dropped[i]);
            if (plan.n_dropped > 8) printf(" ... (+%d)", plan.n_dropped - 8);
        }
        printf("\n");
        if (c->strategy == TRAIN_DDP && plan.n_total % c->batch)
            printf("# data      the global batch %d does not divide the %d samples: every rank holds them all "
                   "(a dividing batch lets each rank read only its own)\n", c->batch, plan.n_total);
    }
    share s = { .dataparallel = c->strategy == TRAIN_DATAPARALLEL, .B = c->batch, .n = c->batch / run->size,
                .rank = run->rank };
    st = fb_microbiome_load(&f, &plan, wanted, &s, d);
    fb_microbiome_plan_free(&plan);
    if (!fb_mpi_all_ok(st == FB_OK)) {
        if (st != FB_OK) fprintf(stderr, PROG ": rank %d: %s\n", run->rank, fb_last_error());
        return -1;
    }
    return 0;
}

// data: the microbiome files' samples when --table is given (freed by the caller).
static int train_main(int argc, char **argv, fb_mpi_run *run, fb_microbiome_data *data) {
    topts o = { .parallel = "ddp", .pairs = "local", .optimizer = "adamw", .steps = 100, .threads = 1, .warmup = -1,
                .bucket_mb = 25.0, .first_bucket_mb = 1.0, .lr = -1, .lr_min = 0, .weight_decay = -1, .momentum = -1,
                .clip = 1.0, .dropout = 0.1, .progress_seconds = 10.0, .poison_step = -1, .seed = 1,
                .trace_every = 10, .eval_check_every = 100, .flush_every = 50, .kill_at_step = -1,
                .target_column = "target", .asv_select = "abundance", .rarefy = 5000, .tokens = 32, .gate_bias = NAN, .energy_budget = NAN };
    const fb_option opts[] = {
        { "scenario", FB_OPT_STRING, &o.scenario, "NAME", "timeseries, multimodal or microbiome (required)", 1, 0, 0 },
        { "method", FB_OPT_STRING, &o.method, "NAME", "fusion method (`fusebench list`) [default: the scenario's]", 1, 0, 0 },
        { "variant", FB_OPT_STRING, &o.variant, "NAME", "variant of the method, by name or index [default: 0, the document's form]", 1, 0, 0 },
        { "parallel", FB_OPT_STRING, &o.parallel, "NAME", "dataparallel or ddp", 1, 0, 0 },
        { "pairs", FB_OPT_STRING, &o.pairs, "NAME", "ddp's pair scope of a pairwise loss: local, global, blockdiag", 1, 0, 0 },
        { "bucket-mb", FB_OPT_DOUBLE, &o.bucket_mb, "MB", "ddp gradient bucket size (MiB); 0 = one blocking allreduce", 0, 1e6, 0 },
        { "first-bucket-mb", FB_OPT_DOUBLE, &o.first_bucket_mb, "MB", "ddp's first (last-layer) bucket size", 0, 1e6, 0 },
        { "batch", FB_OPT_INT, &o.batch, "B", "global batch, split over the ranks [default: 8 per rank]", 0, 1e8, 0 },
        { "batch-per-rank", FB_OPT_INT, &o.batch_per_rank, "N", "rows per rank (global batch = N x ranks)", 0, 1e8, 0 },
        { "steps", FB_OPT_INT, &o.steps, "N", "optimizer steps of the run (the schedule's length)", 1, 1e9, 0 },
        { "optimizer", FB_OPT_STRING, &o.optimizer, "NAME", "adamw (lr 1e-4, wd 0.01, as 003) or sgd (lr 1e-2, momentum 0.9)", 1, 0, 0 },
        { "lr", FB_OPT_DOUBLE, &o.lr, "LR", "peak learning rate [default: the optimizer's]", 0, 1e3, 0 },
        { "lr-min", FB_OPT_DOUBLE, &o.lr_min, "LR", "learning rate at the end of the cosine", 0, 1e3, 0 },
        { "warmup", FB_OPT_INT, &o.warmup, "N", "linear warm-up steps [default -1: 10% of --steps]", -1, 1e9, 0 },
        { "weight-decay", FB_OPT_DOUBLE, &o.weight_decay, "WD", "[default: the optimizer's]", 0, 1e3, 0 },
        { "momentum", FB_OPT_DOUBLE, &o.momentum, "M", "sgd momentum [default 0.9]", 0, 0.999999, 0 },
        { "nesterov", FB_OPT_FLAG, &o.nesterov, NULL, "sgd: Nesterov momentum", 1, 0, 0 },
        { "clip", FB_OPT_DOUBLE, &o.clip, "NORM", "clip the global gradient norm to NORM; 0 = off", 0, 1e30, 0 },
        { "dropout", FB_OPT_DOUBLE, &o.dropout, "P", "dropout of the model and its fusion method", 0, 0.99, 0 },
        { "dim", FB_OPT_INT, &o.D, "D", "model width [default: the scenario's]", 0, 65536, 0 },
        { "heads", FB_OPT_INT, &o.H, "H", "attention heads [default: the scenario's]", 0, 1024, 0 },
        { "layers", FB_OPT_INT, &o.layers, "N", "transformer layers [default: the scenario's]", 0, 1024, 0 },
        { "ffn", FB_OPT_INT, &o.F, "F", "feed-forward width [default: the scenario's]", 0, 1 << 20, 0 },
        { "table", FB_OPT_STRING, &o.table, "FILE", "microbiome: a BIOM 2.1 table (with --tree and --metadata) instead\n"
          "of the synthetic generator; `fusebench data make` writes an example", 1, 0, 0 },
        { "tree", FB_OPT_STRING, &o.tree, "FILE", "microbiome: Newick tree whose tips include every observation", 1, 0, 0 },
        { "metadata", FB_OPT_STRING, &o.metadata, "FILE", "microbiome: TSV with a sample_id column, the target and\n"
          "categorical columns (every other column, sorted by name)", 1, 0, 0 },
        { "unifrac", FB_OPT_STRING, &o.unifrac, "FILE", "microbiome: UniFrac matrix (Striped UniFrac HDF5: order + matrix,\n"
          "or distances); without it, computed with libssu (unweighted)", 1, 0, 0 },
        { "target-column", FB_OPT_STRING, &o.target_column, "NAME", "microbiome: the numeric target column", 1, 0, 0 },
        { "rarefy", FB_OPT_DOUBLE, &o.rarefy, "DEPTH", "microbiome files: rarefaction depth (samples below it are dropped\n"
          "and listed); 0 = none", 0, 1e12, 0 },
        { "tokens", FB_OPT_INT, &o.tokens, "S", "microbiome files: ASVs kept per sample", 1, 1 << 16, 0 },
        { "asv-select", FB_OPT_STRING, &o.asv_select, "MODE", "microbiome files: which ASVs when a sample has more than\n"
          "--tokens: first, abundance or random", 1, 0, 0 },
        { "ts-world", FB_OPT_STRING, &o.ts_world, "SPEC", "timeseries: the generator's component strengths, e.g.\n"
          "celestial=2,calendar=0.5 (trend, weekly, yearly, calendar, celestial,\n"
          "interaction: default 1; noise 0.3)", 1, 0, 0 },
        { "mm-world", FB_OPT_STRING, &o.mm_world, "SPEC", "multimodal: the generator's settings, e.g. frac_a_only=0.4\n"
          "(latent 16, signal 1, noise 0.5, feature_noise 0.1, frac_a_only 0.2,\n"
          "frac_b_only 0.2)", 1, 0, 0 },
        { "celestial-raw", FB_OPT_FLAG, &o.celestial_raw, NULL, "timeseries: no LayerNorm on the celestial path (the\n"
          "000 document's state before its fix: a magnitude imbalance)", 1, 0, 0 },
        { "holdout", FB_OPT_INT, &o.holdout, "N", "after training, evaluate on N held-out samples (generator\n"
          "indices no run trains on): every loss term over all of them\n"
          "(every pair), accuracy for a classifier; 0 = none", 0, 1 << 20, 0 },
        { "gate-bias", FB_OPT_DOUBLE, &o.gate_bias, "B", "initial bias of the fusion gate's last layer [default: the\n"
          "method's: -2, g ~ 0.12, the 000 document's advice; 0 gives the\n"
          "source's g ~ 0.5]; gated_add and gated_interp only", 1, 0, 0 },
        { "energy-budget", FB_OPT_DOUBLE, &o.energy_budget, "MJ", "energy_aware_adaptive: the energy budget its penalty\n"
          "applies above [default: the document's 8 mJ]; that method only", 0, 1e9, 0 },
        { "seed", FB_OPT_INT, &o.seed, "S", "seed of the initialisation, the data and every mask", 0, 2147483647, 0 },
        { "threads", FB_OPT_INT, &o.threads, "T", "OpenMP (and OpenBLAS) threads per rank", 1, 4096, 0 },
        { "checkpoint", FB_OPT_STRING, &o.checkpoint, "FILE", "checkpoint file (HDF5), written atomically every\n"
          "--checkpoint-every steps and at the end; {step} in FILE is replaced\n"
          "by the step count (one file per checkpoint)", 1, 0, 0 },
        { "checkpoint-every", FB_OPT_INT, &o.checkpoint_every, "N", "steps between checkpoints; 0 = at the end only", 0, 1e9, 0 },
        { "resume", FB_OPT_STRING, &o.resume, "FILE", "continue from this checkpoint (same configuration)", 1, 0, 0 },
        { "out", FB_OPT_STRING, &o.out, "FILE", "HDF5 result file [default: results/train-YYYYmmdd-HHMMSS.h5]", 1, 0, 0 },
        { "no-h5", FB_OPT_FLAG, &o.no_h5, NULL, "do not write an HDF5 result file", 1, 0, 0 },
        { "no-progress", FB_OPT_FLAG, &o.no_progress, NULL, "no progress bar or lines", 1, 0, 0 },
        { "progress-seconds", FB_OPT_DOUBLE, &o.progress_seconds, "S", "seconds between progress lines (not on a terminal)", 0, 1e6, 0 },
        { "trace-every", FB_OPT_INT, &o.trace_every, "N", "steps between traces (norms, gradients, fusion diagnostics); 0 = none", 0, 1e9, 0 },
        { "eval-check-every", FB_OPT_INT, &o.eval_check_every, "N", "steps between non-determinism checks (two evaluation\n"
          "passes on the step's batch); 0 = none", 0, 1e9, 0 },
        { "papi-events", FB_OPT_STRING, &o.papi_events, "LIST", "PAPI events, comma-separated, presets or native names\n"
          "[default: " PROF_DEFAULT_EVENTS ",\n PAPI_SP_OPS or PAPI_FP_OPS]; none = PAPI timers only", 1, 0, 0 },
        { "no-counters", FB_OPT_FLAG, &o.no_counters, NULL, "no PAPI counters (traces and SDE counters stay)", 1, 0, 0 },
        { "no-trace", FB_OPT_FLAG, &o.no_trace, NULL, "no counters, traces or checks: the uninstrumented baseline", 1, 0, 0 },
        { "flush-every", FB_OPT_INT, &o.flush_every, "N", "steps between flushes of the result file (a killed run\n"
          "keeps every flushed step)", 1, 1e9, 0 },
        { "overhead", FB_OPT_FLAG, &o.overhead, NULL, "measure the instruments' cost: alternate uninstrumented and\n"
          "fully instrumented runs of --steps, 3 rounds, and print both medians", 1, 0, 0 },
        { "kill-at-step", FB_OPT_INT, &o.kill_at_step, "N", "testing: rank 0 sends itself SIGKILL after step N\n"
          "(the result file must keep every flushed step); -1 = never", -1, 1e9, 0 },
        { "poison-step", FB_OPT_INT, &o.poison_step, "N", "testing: put a NaN into the last sample's output at step N\n"
          "(exercises the failure path of every rank); -1 = never", -1, 1e9, 0 },
    };
    const int nopts = (int)(sizeof opts / sizeof opts[0]);
    fb_cli_result pr = fb_mpi_parse(run, PROG, opts, nopts, argc, argv);
    if (pr == FB_CLI_HELP) {
        if (run->rank == 0) print_help(opts, nopts);
        return FB_EXIT_OK;
    }
    if (pr == FB_CLI_ERROR) return FB_EXIT_USAGE;
    train_config c;
    if (build_config(&o, run->rank, run->size, &c) != 0) return FB_EXIT_USAGE;
    fb_set_threads(o.threads);
    if (o.table || o.tree || o.metadata || o.unifrac) {
        if (load_microbiome(&o, run, &c, data) != 0) return FB_EXIT_FAIL;
        c.model.microbiome_data = data;
    }
    char path[1100] = "";
    if (!o.no_h5 && fb_mpi_results_path(run, PROG, o.out, "train", path, sizeof path) != 0) return FB_EXIT_FAIL;
    if (fb_mpi_census(run) != 0) return FB_EXIT_FAIL;
    if (run->rank == 0) {
        printf("# fusebench train: %s scenario, method %s (variant %d), %s%s%s, %d rank%s, global batch %d\n",
               c.scenario->name, c.model.method, c.model.variant, train_strategy_names[c.strategy],
               c.strategy == TRAIN_DDP ? " --pairs " : "", c.strategy == TRAIN_DDP ? train_pairs_names[c.pairs] : "",
               run->size, run->size > 1 ? "s" : "", c.batch);
        printf("# build     %s, %s\n", fb_build_commit, fb_build_cflags);
        printf("# run       %s on %s; %s\n", run->date, run->all[0].host, fb_cli_command_line());
        fb_mpi_print_header(run, stdout);
        fflush(stdout);
    }

    if (o.overhead) return measure_overhead(&c, run);

    train_result r;
    train_out out;
    train_sink sink;
    kill_sink killer = { .inner = &sink, .at = o.kill_at_step };
    train_sink kill_wrap = { .ctx = &killer, .begin = kill_begin, .step = kill_step };
    int file_ok = 1;
    if (run->rank == 0 && path[0]) {
        if (train_out_open(&out, path, run, &c, fb_cli_command_line(), o.flush_every, &sink) != FB_OK) {
            fprintf(stderr, PROG ": cannot write %s: %s\n", path, fb_last_error());
            file_ok = 0;
        }
    } else {
        memset(&out, 0, sizeof out);
        sink = (train_sink){ 0 };
    }
    if (!fb_mpi_all_ok(file_ok)) return FB_EXIT_FAIL;
    // The same on every rank (the harness agrees on the sink's status every step); only rank 0's
    // sink writes.
    if (!o.no_h5 || o.kill_at_step >= 0) c.sink = &kill_wrap;
    fb_status st = train_run(&c, MPI_COMM_WORLD, &r);
    if (st != FB_OK) {
        if (run->rank == 0) {
            char why[1024];
            snprintf(why, sizeof why, "%s", fb_last_error());
            fprintf(stderr, PROG ": %s\n", why);
            if (path[0] && train_out_finish(&out, 0, why, NULL, NULL, 0) == FB_OK)
                fprintf(stderr, PROG ": %s keeps the steps before the failure (complete = 0)\n", path);
        }
        return FB_EXIT_FAIL;
    }
    int rc = FB_EXIT_OK;
    if (run->rank == 0) {
        double med[TT_COUNT];
        const double sps = report(&c, &r, run, o.threads, med);
        if (path[0]) {
            if (train_out_finish(&out, 1, NULL, &r, med, sps) != FB_OK) {
                fprintf(stderr, PROG ": writing %s failed: %s\n", path, fb_last_error());
                rc = FB_EXIT_FAIL;
            } else {
                printf("# wrote %s\n", path);
            }
        }
        if (c.checkpoint) printf("# checkpoint %s (last at step %d)\n", c.checkpoint, c.steps);
        fflush(stdout);
        train_result_free(&r);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return rc;
}

int bench_train_main(int argc, char **argv) {
    fb_mpi_run run;
    if (fb_mpi_start(&run, &argc, &argv, PROG) != 0) return FB_EXIT_FAIL;
    fb_microbiome_data data = {0};
    int rc = train_main(argc, argv, &run, &data);
    fb_microbiome_data_free(&data);
    fb_mpi_end(&run);
    return rc;
}
