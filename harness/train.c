// The training loop and the two strategies (train.h). Every rank runs the same sequence of
// collectives whatever happens: a rank that fails still takes part in the next par_agree, which
// then stops every rank with the failing rank's message, so an error never leaves a rank waiting.
#include "train.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../io/checkpoint.h"
#include "parallel.h"

const char *const train_strategy_names[2] = { "dataparallel", "ddp" };
const char *const train_pairs_names[3] = { "local", "global", "blockdiag" };
const char *const train_time_names[TT_COUNT] = { "data", "forward", "loss", "backward", "comm",
                                                 "comm_exposed", "optimizer", "step" };

train_config train_defaults(void) {
    train_config c;
    memset(&c, 0, sizeof c);
    c.model.dropout = 0.1f;
    c.model.seed = 1;
    c.batch = 8;
    c.steps = 100;
    c.strategy = TRAIN_DDP;
    c.pairs = TRAIN_PAIRS_LOCAL;
    c.bucket_mb = 25.0;
    c.first_bucket_mb = 1.0;
    c.optim = fb_adamw_config();
    c.lr_min = 0.0;
    c.warmup = -1;        // 10% of the steps
    c.clip = 1.0;
    c.checkpoint_every = 0;
    c.progress = 1;
    c.progress_seconds = 10.0;
    c.poison_step = -1;
    c.monitor = (monitor_config){ .counters = 1, .papi_events = NULL, .trace_every = 10, .eval_check_every = 100 };
    return c;
}

typedef struct {
    const train_config *c;
    par comm;
    model m;
    fb_layout P, A;
    int B, n, P_ranks, rank;          // global batch, rows per rank, ranks, this rank
    int warmup;
    float *x, *y, *out, *dout;        // this rank's n rows
    float *x_all, *y_all, *out_all, *dout_all;   // B rows (dataparallel root; ddp gathered scopes)
    float *rec, *rec_all;             // packed [out | y] rows for the all-gather
    float *eval_out;                  // rank 0: the second evaluation pass of the non-determinism check
    monitor *mon;
    float *m1, *m2;                   // optimizer moments (n_total each) where this rank steps
    fb_optim opt;
    fb_lr_schedule sched;
    char fingerprint[1024];
    int steps_optimizer;              // 1 on the ranks that run the optimizer
} trainer;

static float *alloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p) memset(p, 0, bytes ? bytes : 64);
    return p;
}

static void trainer_free(trainer *t) {
    free(t->x); free(t->y); free(t->out); free(t->dout);
    free(t->x_all); free(t->y_all); free(t->out_all); free(t->dout_all);
    free(t->rec); free(t->rec_all); free(t->m1); free(t->m2); free(t->eval_out);
    monitor_destroy(t->mon);
    t->mon = NULL;
    if (t->m.s) model_destroy(&t->m);
    fb_layout_free(&t->P);
    fb_layout_free(&t->A);
    par_free(&t->comm);
}

// Everything a bitwise continuation depends on (ranks and threads only change rounding, so they
// are not part of it: a resumed run on other ranks continues within rounding).
static void make_fingerprint(trainer *t) {
    const train_config *c = t->c;
    const model_config *mc = &t->m.c;
    const fb_optim_config *o = &c->optim;
    char world[320] = "default";
    if (mc->ts_world)
        snprintf(world, sizeof world, "%.9g/%.9g/%.9g/%.9g/%.9g/%.9g/%.9g", mc->ts_world->trend, mc->ts_world->weekly,
                 mc->ts_world->yearly, mc->ts_world->calendar, mc->ts_world->celestial, mc->ts_world->interaction,
                 mc->ts_world->noise);
    if (mc->mm_world)
        snprintf(world, sizeof world, "%d/%.9g/%.9g/%.9g/%.9g/%.9g", mc->mm_world->latent, mc->mm_world->signal,
                 mc->mm_world->noise, mc->mm_world->feature_noise, mc->mm_world->frac_a_only, mc->mm_world->frac_b_only);
    char gate_bias[32] = "method";
    if (mc->gate_bias_set) snprintf(gate_bias, sizeof gate_bias, "%.9g", mc->gate_bias);
    snprintf(t->fingerprint, sizeof t->fingerprint,
             "scenario=%s; method=%s; variant=%d; D=%d; H=%d; layers=%d; F=%d; dropout=%.9g; seed=%llu; "
             "seq_len=%d; pred_len=%d; features=%d; classes=%d; feat_a=%d; feat_b=%d; max_asvs=%d; vocab=%d; "
             "columns=%d; card=%d; cat_dim=%d; celestial_raw=%d; gate_bias=%s; cost_budget=%.9g; data_samples=%d; ts_world=%s; batch=%d; steps=%d; optimizer=%s; lr=%.9g; lr_min=%.9g; "
             "warmup=%d; weight_decay=%.9g; beta1=%.9g; beta2=%.9g; eps=%.9g; momentum=%.9g; nesterov=%d; clip=%.9g",
             t->m.s->name, t->m.method->name, mc->variant, mc->D, mc->H, mc->layers, mc->F, mc->dropout,
             (unsigned long long)mc->seed, mc->seq_len, mc->pred_len, mc->features, mc->classes, mc->feat_a,
             mc->feat_b, mc->max_asvs, mc->vocab, mc->columns, mc->card, mc->cat_dim, mc->celestial_raw,
             gate_bias, mc->cost_budget, mc->microbiome_data ? mc->microbiome_data->n_total : 0, world, c->batch, c->steps,
             o->kind == FB_OPTIM_ADAMW ? "adamw" : "sgd", o->lr, c->lr_min, t->warmup, o->weight_decay, o->beta1,
             o->beta2, o->eps, o->momentum, o->nesterov, c->clip);
}

static int has_pairwise_term(const model *m) {
    for (int k = 0; k < m->n_terms; k++)
        if (m->term_pairwise[k]) return 1;
    return 0;
}

// Checks the run's shape against the ranks (identical on every rank, so no agreement is needed
// for the verdict itself, but the caller agrees anyway).
static fb_status check_config(const train_config *c, int ranks) {
    FB_REQUIRE(c->holdout >= 0, FB_ERR_CONFIG, "--holdout %d: a sample count is >= 0", c->holdout);
    FB_REQUIRE(!c->holdout || !c->model.microbiome_data, FB_ERR_CONFIG,
               "--holdout needs the synthetic generator: with --table every sample of the files is a training "
               "sample (the run cycles through them), so none is held out");
    FB_REQUIRE(c->scenario, FB_ERR_CONFIG, "no scenario given (known: timeseries, multimodal, microbiome)");
    FB_REQUIRE(c->batch >= 1, FB_ERR_CONFIG, "the global batch must be >= 1 (got %d)", c->batch);
    FB_REQUIRE(c->steps >= 1, FB_ERR_CONFIG, "steps must be >= 1 (got %d)", c->steps);
    FB_REQUIRE(ranks <= c->batch, FB_ERR_CONFIG,
               "%d ranks for a global batch of %d: every rank needs at least one sample (use fewer ranks or a larger --batch)",
               ranks, c->batch);
    FB_REQUIRE(c->batch % ranks == 0, FB_ERR_CONFIG,
               "the global batch %d does not divide over %d ranks (B must be a multiple of the number of ranks)",
               c->batch, ranks);
    FB_REQUIRE(c->strategy == TRAIN_DDP || c->pairs == TRAIN_PAIRS_LOCAL || c->pairs == TRAIN_PAIRS_GLOBAL,
               FB_ERR_CONFIG, "--pairs %s applies to ddp; dataparallel always sees every pair of the global batch",
               train_pairs_names[c->pairs]);
    FB_REQUIRE(c->checkpoint_every >= 0, FB_ERR_CONFIG, "checkpoint interval must be >= 0 (got %d)", c->checkpoint_every);
    FB_REQUIRE(c->clip >= 0 && isfinite(c->clip), FB_ERR_CONFIG, "clip must be a finite norm >= 0 (0: off), got %g", c->clip);
    return fb_optim_config_check(&c->optim);
}

static fb_status trainer_setup(trainer *t, const train_config *c) {
    t->B = c->batch;
    t->n = c->batch / t->P_ranks;
    model_config mc = c->model;
    mc.B = t->n;
    fb_layout_init(&t->P, 2);
    fb_layout_init(&t->A, 2);
    FB_TRY(model_create(&t->m, c->scenario, &mc, &t->P, &t->A));
    FB_REQUIRE(!has_pairwise_term(&t->m) || t->B % 2 == 0, FB_ERR_CONFIG,
               "the %s scenario's pairwise loss (%s) needs an even global batch, as its source system requires "
               "(got B = %d)", t->m.s->name, t->m.term_names[t->m.n_terms - 1], t->B);
    FB_REQUIRE(!has_pairwise_term(&t->m) || c->holdout % 2 == 0, FB_ERR_CONFIG,
               "--holdout %d: the %s scenario's pairwise loss needs an even number of held-out samples",
               c->holdout, t->m.s->name);
    FB_TRY(fb_layout_alloc(&t->P));
    FB_TRY(fb_layout_alloc(&t->A));
    fb_layout_initialize(&t->P, t->m.c.seed);
    const model *m = &t->m;
    const size_t n = (size_t)t->n, B = (size_t)t->B;
    t->x = alloc_floats(n * m->in_stride);
    t->y = alloc_floats(n * m->y_stride);
    t->out = alloc_floats(n * m->out_dim);
    t->dout = alloc_floats(n * m->out_dim);
    FB_REQUIRE(t->x && t->y && t->out && t->dout, FB_ERR_ALLOC, "cannot allocate the batch buffers");
    const int root = t->rank == 0;
    const int dp = c->strategy == TRAIN_DATAPARALLEL;
    const int gathered = c->strategy == TRAIN_DDP && c->pairs != TRAIN_PAIRS_LOCAL;
    if ((dp && root) || gathered) {
        t->y_all = alloc_floats(B * m->y_stride);
        t->out_all = alloc_floats(B * m->out_dim);
        FB_REQUIRE(t->y_all && t->out_all, FB_ERR_ALLOC, "cannot allocate the gathered batch buffers");
    }
    if (dp && root) {
        t->x_all = alloc_floats(B * m->in_stride);
        t->dout_all = alloc_floats(B * m->out_dim);
        FB_REQUIRE(t->x_all && t->dout_all, FB_ERR_ALLOC, "cannot allocate the global batch");
    }
    if (gathered) {
        t->rec = alloc_floats(n * (m->out_dim + m->y_stride));
        t->rec_all = alloc_floats(B * (m->out_dim + m->y_stride));
        FB_REQUIRE(t->rec && t->rec_all, FB_ERR_ALLOC, "cannot allocate the all-gather buffers");
    }
    // Optimizer: on rank 0 for dataparallel, on every rank for ddp.
    t->steps_optimizer = !dp || root;
    t->warmup = c->warmup >= 0 ? c->warmup : c->steps / 10;
    FB_REQUIRE(t->warmup <= c->steps, FB_ERR_CONFIG, "warm-up (%d steps) is longer than the run (%d steps)", t->warmup,
               c->steps);
    FB_TRY(fb_lr_schedule_init(&t->sched, c->optim.lr, c->lr_min, t->warmup, c->steps));
    if (t->steps_optimizer) {
        const size_t total = t->P.total;
        const int adam = c->optim.kind == FB_OPTIM_ADAMW, sgd_buf = c->optim.kind == FB_OPTIM_SGD && c->optim.momentum > 0;
        if (adam || sgd_buf) t->m1 = alloc_floats(total);
        if (adam) t->m2 = alloc_floats(total);
        FB_REQUIRE((!(adam || sgd_buf) || t->m1) && (!adam || t->m2), FB_ERR_ALLOC, "cannot allocate optimizer state");
        FB_TRY(fb_optim_init(&t->opt, &c->optim, t->P.base[0], t->P.base[1], t->m1, t->m2, total, 0));
    }
    make_fingerprint(t);
    if (t->rank == 0 && c->monitor.eval_check_every > 0) {
        t->eval_out = alloc_floats(n * m->out_dim);
        FB_REQUIRE(t->eval_out, FB_ERR_ALLOC, "cannot allocate the evaluation-check buffer");
    }
    FB_TRY(monitor_create(&t->mon, &c->monitor, &t->m, &t->P, &t->A, t->rank, omp_get_max_threads()));
    if (c->strategy == TRAIN_DDP)
        FB_TRY(par_buckets_build(&t->comm, &t->P, c->bucket_mb, c->first_bucket_mb));
    return FB_OK;
}

// FNV-1a over the parameter bytes: a cheap fingerprint of the weights, to check that the ranks
// agree and to compare runs.
static uint64_t param_hash(const fb_layout *P) {
    const unsigned char *b = (const unsigned char *)P->base[0];
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < P->total * sizeof(float); i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static fb_status check_replicas_agree(trainer *t, int step) {
    if (t->c->strategy != TRAIN_DDP || t->P_ranks == 1) return FB_OK;
    unsigned long long h = param_hash(&t->P), lo = 0, hi = 0;
    MPI_Allreduce(&h, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, t->comm.comm);
    MPI_Allreduce(&h, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, t->comm.comm);
    FB_REQUIRE(lo == hi, FB_ERR_INTERNAL,
               "after step %d the ranks' parameters differ (the gradient allreduce gave ranks different sums)", step);
    return FB_OK;
}

// Restores the checkpoint on rank 0 and shares it; returns the completed step count in *start.
static fb_status resume(trainer *t, int *start) {
    int64_t step = 0;
    fb_status st = FB_OK;
    if (t->rank == 0) {
        st = fb_checkpoint_read(t->c->resume, t->fingerprint, t->P.total, t->P.base[0], t->m1, t->m2, &step);
        if (st == FB_OK && step >= t->c->steps)
            st = fb_fail(FB_ERR_CONFIG, "checkpoint %s is at step %lld: nothing left of a %d-step run", t->c->resume,
                         (long long)step, t->c->steps);
    }
    FB_TRY(par_agree(&t->comm, st));
    double s = (double)step;
    par_bcast_doubles(&t->comm, &s, 1, 0);
    par_bcast_floats(&t->comm, t->P.base[0], t->P.total, 0);
    if (t->c->strategy == TRAIN_DDP) {   // every rank steps: every rank needs the moments
        if (t->m1) par_bcast_floats(&t->comm, t->m1, t->P.total, 0);
        if (t->m2) par_bcast_floats(&t->comm, t->m2, t->P.total, 0);
    }
    *start = (int)s;
    if (t->steps_optimizer) t->opt.step = (int64_t)s;
    return FB_OK;
}

// The checkpoint path with "{step}" (if present) replaced by the completed step count.
static void checkpoint_path(const char *pattern, int completed, char *buf, size_t size) {
    const char *at = strstr(pattern, "{step}");
    if (!at) { snprintf(buf, size, "%s", pattern); return; }
    snprintf(buf, size, "%.*s%d%s", (int)(at - pattern), pattern, completed, at + 6);
}

static fb_status write_checkpoint(trainer *t, int completed) {
    fb_status st = FB_OK;
    if (t->rank == 0) {
        char path[1024];
        checkpoint_path(t->c->checkpoint, completed, path, sizeof path);
        fb_checkpoint ck = { .fingerprint = t->fingerprint, .step = completed, .n = t->P.total,
                             .params = t->P.base[0], .m = t->m1, .v = t->m2 };
        st = fb_checkpoint_write(path, &ck);
    }
    return par_agree(&t->comm, st);
}

static fb_status finite_terms(const double *terms, int n, const model *m, int step) {
    for (int k = 0; k < n; k++)
        FB_REQUIRE(isfinite(terms[k]), FB_ERR_NONFINITE, "step %d: the %s loss term is %g", step, m->term_names[k], terms[k]);
    return FB_OK;
}

static void make_records(const trainer *t, int step, int64_t first, int rows, float *x, float *y) {
    const model *m = &t->m;
    for (int i = 0; i < rows; i++)
        m->s->sample(m, (uint64_t)step * (uint64_t)t->B + (uint64_t)(first + i), x + (size_t)i * m->in_stride,
                     y + (size_t)i * m->y_stride);
}

static void grads_ready_hook(void *ctx, int first_final) { par_buckets_ready(ctx, first_final); }

// Two evaluation passes on this step's batch (rank 0, after the update), each with its own random
// stream, as two calls of a PyTorch module in eval mode draw fresh numbers: a deterministic model
// gives the same output bits, a model that samples in evaluation does not. Outside the step's
// timing and phases; the activations it overwrites are not needed any more.
static void eval_check(trainer *t, const model_batch *train_batch, int step) {
    model *m = &t->m;
    model_batch b = *train_batch;
    b.training = 0;
    const size_t n = (size_t)b.B * m->out_dim;
    b.step = UINT32_MAX - 2u * (uint32_t)step;
    fb_status st = m->s->forward(m, &b, t->out);
    b.step--;
    if (st == FB_OK) st = m->s->forward(m, &b, t->eval_out);
    double diff = 0;
    for (size_t i = 0; st == FB_OK && i < n; i++) {
        const double d = fabs((double)t->out[i] - (double)t->eval_out[i]);
        if (d > diff || isnan(d)) diff = isnan(d) ? INFINITY : d;
    }
    monitor_eval_result(t->mon, step, st == FB_OK ? diff : NAN);
}

// The held-out evaluation (train_config.holdout; rank 0, after the last step and the counters, so
// neither the step timings nor the phases see it). Forward in evaluation mode in chunks of this
// rank's batch rows (the activations' size), then the loss over all N rows at once: pair_block 0,
// every pair, so runs trained with different pair scopes are judged by one yardstick.
static fb_status holdout_eval(trainer *t, train_result *r) {
    model *m = &t->m;
    const int N = t->c->holdout, od = m->out_dim;
    float *out = alloc_floats((size_t)N * od), *y = alloc_floats((size_t)N * m->y_stride);
    fb_status st = out && y ? FB_OK : fb_fail(FB_ERR_ALLOC, "cannot allocate the held-out buffers (%d rows)", N);
    for (int i0 = 0; st == FB_OK && i0 < N; i0 += t->n) {
        const int rows = N - i0 < t->n ? N - i0 : t->n;
        for (int i = 0; i < rows; i++)
            m->s->sample(m, TRAIN_HOLDOUT_FIRST + (uint64_t)(i0 + i), t->x + (size_t)i * m->in_stride,
                         y + (size_t)(i0 + i) * m->y_stride);
        const model_batch b = { .B = rows, .x = t->x, .y = y + (size_t)i0 * m->y_stride, .first = (uint64_t)i0,
                                .step = UINT32_MAX, .training = 0 };
        st = m->s->forward(m, &b, out + (size_t)i0 * od);
    }
    if (st == FB_OK) st = m->s->loss(m, out, y, N, 0, N, 0, r->holdout_terms, NULL);   // terms only
    if (st == FB_OK) {
        r->holdout_n = N;
        r->holdout_loss = 0;
        for (int k = 0; k < m->n_terms; k++) r->holdout_loss += r->holdout_terms[k];
        r->holdout_accuracy = m->s->accuracy ? m->s->accuracy(m, out, y, N) : NAN;
    }
    free(out);
    free(y);
    return st;
}

typedef struct {
    double terms[MODEL_MAX_TERMS];
    double grad_norm, lr;
    double times[TT_COUNT];
} step_figures;

// The loss on rows [r0, r1) of N held ones (its phase and time), its terms checked finite.
static fb_status timed_loss(trainer *t, int step, const float *out, const float *y, int N, int r0, int r1, int block,
                            float *dout, step_figures *f) {
    const double t0 = MPI_Wtime();
    monitor_phase_begin(t->mon, PROF_PHASE_LOSS);
    fb_status st = t->m.s->loss(&t->m, out, y, N, r0, r1, block, f->terms, dout);
    monitor_phase_end(t->mon);
    if (st == FB_OK) st = finite_terms(f->terms, t->m.n_terms, &t->m, step);
    f->times[TT_LOSS] = MPI_Wtime() - t0;
    return st;
}

// One optimizer step under either strategy. Returns the agreed status (the same on every rank).
static fb_status train_step(trainer *t, int step, step_figures *f) {
    const train_config *c = t->c;
    model *m = &t->m;
    par *p = &t->comm;
    const int dp = c->strategy == TRAIN_DATAPARALLEL, root = t->rank == 0;
    const int n = t->n, B = t->B, od = m->out_dim, ys = m->y_stride;
    const int64_t first = (int64_t)t->rank * n;
    double *T = f->times;
    memset(f, 0, sizeof *f);
    par_timers_reset(p);
    const double t_step = MPI_Wtime();
    fb_status st = FB_OK;

    // ---- data
    double t0 = MPI_Wtime();
    if (dp) {
        if (root) make_records(t, step, 0, B, t->x_all, t->y_all);
        T[TT_DATA] = MPI_Wtime() - t0;
        par_scatter_floats(p, t->x_all, t->x, n * m->in_stride, 0);
    } else {
        make_records(t, step, first, n, t->x, t->y);
        T[TT_DATA] = MPI_Wtime() - t0;
    }

    // ---- forward
    model_batch batch = { .B = n, .x = t->x, .y = t->y, .first = (uint64_t)first, .step = (uint32_t)step, .training = 1 };
    monitor *mon = t->mon;
    t0 = MPI_Wtime();
    monitor_phase_begin(mon, PROF_PHASE_FORWARD);
    st = m->s->forward(m, &batch, t->out);
    monitor_phase_end(mon);
    T[TT_FORWARD] = MPI_Wtime() - t0;
    if (st == FB_OK && step == c->poison_step && first + n == B) t->out[(size_t)n * od - 1] = NAN;
    if (st == FB_OK) monitor_after_forward(mon, step);
    FB_TRY(par_agree(p, st));

    // ---- loss: terms (reported) and dout (this rank's rows of d(objective)/d(out))
    const int nt = m->n_terms;
    if (dp) {
        par_gather_floats(p, t->out, t->out_all, n * od, 0);
        if (root) {
            st = timed_loss(t, step, t->out_all, t->y_all, B, 0, B, 0, t->dout_all, f);
        }
        FB_TRY(par_agree(p, st));
        par_bcast_doubles(p, f->terms, nt, 0);
        par_scatter_floats(p, t->dout_all, t->dout, n * od, 0);
    } else if (c->pairs == TRAIN_PAIRS_LOCAL) {
        st = timed_loss(t, step, t->out, t->y, n, 0, n, 0, t->dout, f);
        FB_TRY(par_agree(p, st));
        par_allreduce_doubles(p, f->terms, nt);
        for (int k = 0; k < nt; k++) f->terms[k] /= t->P_ranks;   // the mean of the local losses
    } else {
        // Gathered scopes: every rank sees all B rows [out | y] and differentiates its own.
        const int w = od + ys;
        for (int i = 0; i < n; i++) {
            memcpy(t->rec + (size_t)i * w, t->out + (size_t)i * od, (size_t)od * sizeof(float));
            memcpy(t->rec + (size_t)i * w + od, t->y + (size_t)i * ys, (size_t)ys * sizeof(float));
        }
        par_allgather_floats(p, t->rec, t->rec_all, n * w);
        for (int i = 0; i < B; i++) {
            memcpy(t->out_all + (size_t)i * od, t->rec_all + (size_t)i * w, (size_t)od * sizeof(float));
            memcpy(t->y_all + (size_t)i * ys, t->rec_all + (size_t)i * w + od, (size_t)ys * sizeof(float));
        }
        const int block = c->pairs == TRAIN_PAIRS_BLOCKDIAG ? n : 0;
        st = timed_loss(t, step, t->out_all, t->y_all, B, (int)first, (int)first + n, block, t->dout, f);
        // The rows' share of the global objective; DDP's averaging divides by P again.
        const float scale = (float)t->P_ranks;
        for (size_t i = 0; i < (size_t)n * od; i++) t->dout[i] *= scale;
        FB_TRY(par_agree(p, st));
        par_allreduce_doubles(p, f->terms, nt);
        if (block)
            for (int k = 0; k < nt; k++)
                if (m->term_pairwise[k]) f->terms[k] *= t->P_ranks;   // the FSDP path's world-size scaling
    }

    // ---- backward (+ DDP's bucketed allreduce, overlapped)
    fb_layout_zero(&t->P, 1);
    const double exposed_before = p->t.exposed;
    t0 = MPI_Wtime();
    if (!dp) {
        par_buckets_begin(p);
        m->grads_ready = grads_ready_hook;
        m->grads_ready_ctx = p;
    }
    monitor_phase_begin(mon, PROF_PHASE_BACKWARD);
    st = m->s->backward(m, &batch, t->dout);
    m->grads_ready = NULL;
    T[TT_BACKWARD] = MPI_Wtime() - t0 - (p->t.exposed - exposed_before);
    monitor_phase_begin(mon, PROF_PHASE_COMM);
    if (!dp) par_buckets_finish(p);   // always: every rank posts every bucket, even after a failure
    monitor_phase_end(mon);
    FB_TRY(par_agree(p, st));
    monitor_after_backward(mon, step);
    if (dp) {
        monitor_phase_begin(mon, PROF_PHASE_COMM);
        par_reduce_floats(p, t->P.base[1], t->P.total, 0);
        monitor_phase_end(mon);
    }

    // ---- optimizer
    f->lr = fb_lr_at(&t->sched, step);
    double loss = 0;
    for (int k = 0; k < nt; k++) loss += f->terms[k];
    if (t->steps_optimizer) {
        t0 = MPI_Wtime();
        monitor_phase_begin(mon, PROF_PHASE_OPTIMIZER);
        float *g = t->P.base[1];
        const size_t total = t->P.total;
        if (!dp && t->P_ranks > 1) {
            const float inv = 1.0f / (float)t->P_ranks;
            #pragma omp parallel for simd schedule(static) if (total > FB_OMP_MIN_WORK)
            for (size_t i = 0; i < total; i++) g[i] *= inv;
        }
        monitor_before_optimizer(mon, step, g);
        if (c->clip > 0) {
            st = fb_clip_grad_norm(g, total, c->clip, &f->grad_norm);
        } else {
            f->grad_norm = fb_norm2(g, total);
            if (!isfinite(f->grad_norm)) st = fb_fail(FB_ERR_NONFINITE, "non-finite gradient norm");
        }
        monitor_gradients(mon, step, g, f->grad_norm);
        if (st != FB_OK) st = fb_fail(st, "step %d: the gradient norm is %g (non-finite gradients)", step, f->grad_norm);
        if (st == FB_OK) st = fb_optim_step(&t->opt, f->lr);
        monitor_phase_end(mon);
        if (st == FB_OK) monitor_after_optimizer(mon, step, loss);
        T[TT_OPTIMIZER] = MPI_Wtime() - t0;
    }
    FB_TRY(par_agree(p, st));
    if (dp) {
        monitor_phase_begin(mon, PROF_PHASE_COMM);
        par_bcast_floats(p, t->P.base[0], t->P.total, 0);
        monitor_phase_end(mon);
    }
    T[TT_COMM] = p->t.total;
    T[TT_COMM_EXPOSED] = p->t.exposed;
    T[TT_STEP] = MPI_Wtime() - t_step;
    monitor_comm(mon, p->t.bytes, p->t.calls, p->t.exposed);
    if (monitor_eval_check_due(mon, step)) eval_check(t, &batch, step);
    return FB_OK;
}

// ---------------------------------------------------------------- progress (rank 0)

static void format_eta(double s, char *buf, size_t size) {
    long v = s > 0 && s < 1e8 ? (long)(s + 0.5) : 0;
    snprintf(buf, size, "%ld:%02ld:%02ld", v / 3600, v / 60 % 60, v % 60);
}

typedef struct { int tty; double start, last; int shown; } progress;

static void progress_show(progress *pr, const train_config *c, int done, int first, double loss, int B, int final) {
    const double now = MPI_Wtime();
    const int run = done - first;
    const double rate = run > 0 ? run * (double)B / (now - pr->start) : 0;
    const double eta = run > 0 ? (c->steps - done) * (now - pr->start) / run : 0;
    char eta_s[32];
    format_eta(eta, eta_s, sizeof eta_s);
    if (pr->tty) {
        if (!final && now - pr->last < 0.2) return;
        const int width = 30, fill = (int)((double)done / c->steps * width);
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%s] %d/%d  loss %.5g  %.0f samples/s  ETA %s ", bar, done, c->steps, loss, rate, eta_s);
        if (final) fputc('\n', stderr);
    } else {
        if (!final && now - pr->last < c->progress_seconds) return;
        fprintf(stderr, "step %d/%d  loss %.6g  %.1f samples/s  ETA %s\n", done, c->steps, loss, rate, eta_s);
    }
    fflush(stderr);
    pr->last = now;
    pr->shown = 1;
}

// ---------------------------------------------------------------- the run

static fb_status result_alloc(train_result *r, int steps, int n_terms) {
    memset(r, 0, sizeof *r);
    r->terms = calloc((size_t)steps * (n_terms ? n_terms : 1), sizeof(double));
    r->loss = calloc((size_t)steps, sizeof(double));
    r->lr = calloc((size_t)steps, sizeof(double));
    r->grad_norm = calloc((size_t)steps, sizeof(double));
    r->times = calloc((size_t)steps * TT_COUNT, sizeof(double));
    FB_REQUIRE(r->terms && r->loss && r->lr && r->grad_norm && r->times, FB_ERR_ALLOC, "cannot allocate the step records");
    r->n_terms = n_terms;
    return FB_OK;
}

void train_result_free(train_result *r) {
    free(r->terms); free(r->loss); free(r->lr); free(r->grad_norm); free(r->times);
    free(r->event_names); free(r->event_available); free(r->event_reasons);
    free(r->counter_values); free(r->real_ns); free(r->virt_ns); free(r->region_calls);
    memset(r, 0, sizeof *r);
}

// Every rank's counters to rank 0 (collective; called on every rank): values padded to the largest
// team, SDE counters summed, event availability AND-ed over ranks.
static fb_status gather_counters(trainer *t, train_result *r) {
    fb_sde_read(r->sde);
    MPI_Reduce(t->rank == 0 ? MPI_IN_PLACE : r->sde, r->sde, FB_SDE_COUNT, MPI_INT64_T, MPI_SUM, 0, t->comm.comm);
    prof_counters *pc = monitor_counters(t->mon);
    int counted = pc != NULL, all_counted = 0;
    MPI_Allreduce(&counted, &all_counted, 1, MPI_INT, MPI_MIN, t->comm.comm);
    if (!all_counted) return FB_OK;
    const int R = PROF_REGION_COUNT, E = prof_counters_events(pc), mine = prof_counters_threads(pc);
    int T = 0;
    MPI_Allreduce(&mine, &T, 1, MPI_INT, MPI_MAX, t->comm.comm);
    const int P = t->P_ranks, root = t->rank == 0;
    // This rank's block, padded to T threads.
    const size_t nv = (size_t)T * R * (E ? E : 1), nt = (size_t)T * R;
    int64_t *v = calloc(nv, sizeof *v), *virt = calloc(nt, sizeof *virt);
    int *avail = calloc((size_t)(E ? E : 1), sizeof *avail);
    fb_status st = v && virt && avail ? FB_OK : fb_fail(FB_ERR_ALLOC, "cannot allocate the counter gather");
    if (st == FB_OK) {
        memcpy(v, prof_counters_values(pc), (size_t)mine * R * E * sizeof *v);
        memcpy(virt, prof_counters_virt_ns(pc), (size_t)mine * R * sizeof *virt);
        memcpy(avail, prof_counters_available(pc), (size_t)E * sizeof *avail);
    }
    if (root && st == FB_OK) {
        r->counted = 1;
        r->threads = T;
        r->n_events = E;
        r->event_names = calloc((size_t)(E ? E : 1), sizeof *r->event_names);
        r->event_available = calloc((size_t)(E ? E : 1), sizeof *r->event_available);
        r->event_reasons = calloc((size_t)(E ? E : 1), sizeof *r->event_reasons);
        r->counter_values = calloc((size_t)P * nv, sizeof(int64_t));
        r->real_ns = calloc((size_t)P * R, sizeof(int64_t));
        r->virt_ns = calloc((size_t)P * nt, sizeof(int64_t));
        r->region_calls = calloc((size_t)P * R, sizeof(int64_t));
        if (!r->event_names || !r->event_available || !r->event_reasons || !r->counter_values || !r->real_ns ||
            !r->virt_ns || !r->region_calls)
            st = fb_fail(FB_ERR_ALLOC, "cannot allocate the gathered counters");
        for (int e = 0; st == FB_OK && e < E; e++) {
            snprintf(r->event_names[e], sizeof r->event_names[e], "%s", prof_counters_event_name(pc, e));
            snprintf(r->event_reasons[e], sizeof r->event_reasons[e], "%s", prof_counters_event_reason(pc, e));
        }
        snprintf(r->statement, sizeof r->statement, "%s", prof_counters_statement(pc));
        snprintf(r->papi_version, sizeof r->papi_version, "%s", prof_papi_version());
    }
    // Gather only when every rank has its buffers (else every rank returns, the caller agrees).
    int ok = st == FB_OK, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, t->comm.comm);
    if (all_ok) {
        MPI_Gather(v, (int)nv, MPI_INT64_T, r->counter_values, (int)nv, MPI_INT64_T, 0, t->comm.comm);
        MPI_Gather(virt, (int)nt, MPI_INT64_T, r->virt_ns, (int)nt, MPI_INT64_T, 0, t->comm.comm);
        MPI_Gather(prof_counters_real_ns(pc), R, MPI_INT64_T, r->real_ns, R, MPI_INT64_T, 0, t->comm.comm);
        MPI_Gather(prof_counters_calls(pc), R, MPI_INT64_T, r->region_calls, R, MPI_INT64_T, 0, t->comm.comm);
        if (E > 0) {
            MPI_Reduce(root ? MPI_IN_PLACE : avail, avail, E, MPI_INT, MPI_MIN, 0, t->comm.comm);
            if (root) memcpy(r->event_available, avail, (size_t)E * sizeof *avail);
        }
    } else if (st == FB_OK) {
        st = fb_fail(FB_ERR_ALLOC, "another rank could not allocate its counter buffers");
    }
    free(v); free(virt); free(avail);
    return st;
}

static fb_status run(trainer *t, const train_config *c, train_result *res) {
    FB_TRY(par_agree(&t->comm, check_config(c, t->P_ranks)));
    FB_TRY(par_agree(&t->comm, trainer_setup(t, c)));
    int start = 0;
    if (c->resume) FB_TRY(resume(t, &start));
    const int steps = c->steps - start;
    FB_TRY(par_agree(&t->comm, result_alloc(res, steps, t->m.n_terms)));
    res->first_step = start;
    for (int k = 0; k < t->m.n_terms; k++) res->term_names[k] = t->m.term_names[k];
    res->ranks = t->P_ranks;
    res->nbuckets = c->strategy == TRAIN_DDP ? t->comm.nbuckets : 0;
    res->n_params = fb_layout_numel(&t->P);
    const train_sink *sink = t->rank == 0 ? c->sink : NULL;
    if (sink && sink->begin) FB_TRY(par_agree(&t->comm, sink->begin(sink->ctx, res, monitor_names(t->mon))));
    else if (c->sink) FB_TRY(par_agree(&t->comm, FB_OK));

    progress pr = { .tty = isatty(2), .start = MPI_Wtime(), .last = MPI_Wtime() };
    const int show = c->progress && t->rank == 0;
    const double wall0 = MPI_Wtime();
    for (int s = start; s < c->steps; s++) {
        step_figures f;
        fb_status st = train_step(t, s, &f);
        if (st != FB_OK) {
            if (show && pr.shown && pr.tty) fputc('\n', stderr);
            return st;
        }
        const int i = s - start;
        double loss = 0;
        for (int k = 0; k < t->m.n_terms; k++) {
            res->terms[(size_t)i * t->m.n_terms + k] = f.terms[k];
            loss += f.terms[k];
        }
        res->loss[i] = loss;
        res->lr[i] = f.lr;
        res->grad_norm[i] = f.grad_norm;
        // The slowest rank's times, step by step (untimed: reporting).
        memcpy(res->times + (size_t)i * TT_COUNT, f.times, sizeof f.times);
        par_reduce_max_doubles(&t->comm, res->times + (size_t)i * TT_COUNT, TT_COUNT, 0);
        res->steps = i + 1;
        for (int k = 0; k < PAR_KINDS; k++) {
            res->comm_bytes[k] += t->comm.t.bytes[k];
            res->comm_calls[k] += t->comm.t.calls[k];
        }
        const int done = s + 1;
        if (c->checkpoint && ((c->checkpoint_every > 0 && done % c->checkpoint_every == 0) || done == c->steps)) {
            FB_TRY(par_agree(&t->comm, check_replicas_agree(t, s)));
            FB_TRY(write_checkpoint(t, done));
        }
        if (c->sink)
            FB_TRY(par_agree(&t->comm, sink && sink->step ? sink->step(sink->ctx, res, i, monitor_last_trace(t->mon, s))
                                                          : FB_OK));
        if (show) progress_show(&pr, c, done, start, loss, t->B, done == c->steps);
    }
    res->wall = MPI_Wtime() - wall0;
    FB_TRY(par_agree(&t->comm, check_replicas_agree(t, c->steps - 1)));
    FB_TRY(par_agree(&t->comm, gather_counters(t, res)));
    if (t->rank == 0) {
        res->n_verdicts = monitor_verdicts(t->mon, res->verdicts, TRAIN_MAX_VERDICTS);
        res->norm_warnings = monitor_norm_warnings(t->mon);
    }
    res->holdout_accuracy = NAN;
    if (c->holdout > 0) FB_TRY(par_agree(&t->comm, t->rank == 0 ? holdout_eval(t, res) : FB_OK));
    snprintf(res->param_checksum, sizeof res->param_checksum, "%016llx", (unsigned long long)param_hash(&t->P));
    return FB_OK;
}

fb_status train_run(const train_config *c, MPI_Comm comm, train_result *result) {
    trainer t;
    memset(&t, 0, sizeof t);
    memset(result, 0, sizeof *result);
    t.c = c;
    par_init(&t.comm, comm);
    t.P_ranks = t.comm.size;
    t.rank = t.comm.rank;
    fb_status st = run(&t, c, result);
    trainer_free(&t);
    if (st != FB_OK || t.rank != 0) train_result_free(result);
    return st;
}
