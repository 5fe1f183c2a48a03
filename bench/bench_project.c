// `fusebench project`: projects step time and weak-scaling efficiency to 1..1024 nodes for measured
// training runs (profiling/projection.h has the model), from a `fusebench comm` file (the α–β of
// this machine's allreduce) and/or network figures for the links between nodes, and states the
// model's error against every multi-rank run it was given.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../io/h5out.h"
#include "../io/h5read.h"
#include "../profiling/projection.h"
#include "cli.h"

#define PROG "fusebench project"
#define MAX_RUNS 256

typedef struct {
    char file[512], scenario[64], method[64], parallel[32], pairs[32];
    int ranks, batch_per_rank;
    double step_s, comm_s, exposed_s;   // medians of the slowest rank
    proj_run model;
} measured;

static fb_status attr_str(const fb_h5r *r, const char *obj, const char *name, char *dst, size_t size) {
    char *s = NULL;
    FB_TRY(fb_h5r_attr_string(r, obj, name, &s));
    snprintf(dst, size, "%s", s);
    free(s);
    return FB_OK;
}

// One fusebench.train file: its settings, medians and the model's inputs.
static fb_status read_run(const char *path, measured *m) {
    fb_h5r r;
    memset(m, 0, sizeof *m);
    snprintf(m->file, sizeof m->file, "%s", path);
    FB_TRY(fb_h5r_open(&r, path));
    char schema[64] = "";
    int64_t complete = 0, ranks = 0, bpr = 0, params = 0;
    double fwd = 0, bwd = 0, loss = 0, opt = 0, data = 0, step = 0, comm = 0, exposed = 0;
    fb_status st = attr_str(&r, "/", "schema", schema, sizeof schema);
    if (st == FB_OK && strcmp(schema, "fusebench.train") != 0)
        st = fb_fail(FB_ERR_IO, "%s: schema '%s', not a fusebench train result", path, schema);
    if (st == FB_OK) st = fb_h5r_attr_int(&r, "/", "complete", &complete);
    if (st == FB_OK && complete != 1) st = fb_fail(FB_ERR_IO, "%s: the run did not complete (complete = 0)", path);
    if (st == FB_OK) st = fb_h5r_attr_int(&r, "/", "ranks", &ranks);
    if (st == FB_OK) st = attr_str(&r, "config", "scenario", m->scenario, sizeof m->scenario);
    if (st == FB_OK) st = attr_str(&r, "config", "method", m->method, sizeof m->method);
    if (st == FB_OK) st = attr_str(&r, "config", "parallel", m->parallel, sizeof m->parallel);
    if (st == FB_OK) st = attr_str(&r, "config", "pairs", m->pairs, sizeof m->pairs);
    if (st == FB_OK) st = fb_h5r_attr_int(&r, "config", "batch_per_rank", &bpr);
    if (st == FB_OK) st = fb_h5r_attr_int(&r, "config", "parameters", &params);
    const struct { const char *name; double *v; } med[] = {
        { "median_forward_ms", &fwd }, { "median_backward_ms", &bwd }, { "median_loss_ms", &loss },
        { "median_optimizer_ms", &opt }, { "median_data_ms", &data }, { "median_step_ms", &step },
        { "median_comm_ms", &comm }, { "median_comm_exposed_ms", &exposed },
    };
    for (size_t i = 0; st == FB_OK && i < sizeof med / sizeof med[0]; i++)
        st = fb_h5r_attr_double(&r, "summary", med[i].name, med[i].v);
    fb_h5r_close(&r);
    FB_TRY(st);
    m->ranks = (int)ranks;
    m->batch_per_rank = (int)bpr;
    m->step_s = step * 1e-3;
    m->comm_s = comm * 1e-3;
    m->exposed_s = exposed * 1e-3;
    const int dp = strcmp(m->parallel, "dataparallel") == 0, gathered = !dp && strcmp(m->pairs, "local") != 0;
    if (dp) snprintf(m->pairs, sizeof m->pairs, "all");   // DataParallel's loss sees every pair
    m->model = (proj_run){
        .strategy = dp ? PROJ_DATAPARALLEL : gathered ? PROJ_DDP_GATHERED : PROJ_DDP,
        .compute_s = (fwd + bwd + loss + opt + data) * 1e-3,
        .grad_bytes = 4.0 * (double)params,
        // The measured share of the communication not hidden (1 when nothing was measured).
        .exposed = comm > 0 ? exposed / comm : 1.0,
    };
    return FB_OK;
}

// The α–β of this machine's allreduce from a fusebench comm file.
static fb_status read_comm(const char *path, proj_link *link, int *p0) {
    fb_h5r r;
    FB_TRY(fb_h5r_open(&r, path));
    int64_t ranks = 0;
    double *bytes = NULL, *us = NULL;
    size_t nb = 0, nu = 0;
    fb_status st = fb_h5r_attr_int(&r, "/", "ranks", &ranks);
    if (st == FB_OK) st = fb_h5r_read_doubles(&r, "allreduce/bytes", &bytes, &nb);
    if (st == FB_OK) st = fb_h5r_read_doubles(&r, "allreduce/avg_us", &us, &nu);
    fb_h5r_close(&r);
    if (st == FB_OK && nb != nu) st = fb_fail(FB_ERR_IO, "%s: allreduce table columns differ in length", path);
    for (size_t i = 0; st == FB_OK && i < nu; i++) us[i] *= 1e-6;
    if (st == FB_OK) st = proj_fit_allreduce(bytes, us, (int)nb, 1024.0, (int)ranks, link);
    if (st != FB_OK && fb_last_error()[0]) st = fb_fail(st, "%s: %s", path, fb_last_error());
    *p0 = (int)ranks;
    free(bytes);
    free(us);
    return st;
}

int bench_project_main(int argc, char **argv) {
    const char *comm = NULL, *out = NULL;
    double latency_us = -1, bandwidth_gbs = -1;
    int ranks_per_node = 1, max_nodes = 1024;
    const fb_option opts[] = {
        { "comm", FB_OPT_STRING, &comm, "FILE", "a `fusebench comm` result (its allreduce table gives the α–β\n"
          "within a node, and between nodes unless given below)", 1, 0, 0 },
        { "latency-us", FB_OPT_DOUBLE, &latency_us, "US", "link latency between nodes (one-way, per message)", 0, 1e9, 0 },
        { "bandwidth-gbs", FB_OPT_DOUBLE, &bandwidth_gbs, "GB/s", "link bandwidth between nodes", 1e-6, 1e9, 0 },
        { "ranks-per-node", FB_OPT_INT, &ranks_per_node, "R", "ranks on each node of the projection", 1, 4096, 0 },
        { "max-nodes", FB_OPT_INT, &max_nodes, "N", "largest node count (powers of two from 1)", 1, 1 << 20, 0 },
        { "out", FB_OPT_STRING, &out, "FILE", "also write the projection table (HDF5)", 1, 0, 0 },
    };
    const int nopts = (int)(sizeof opts / sizeof opts[0]);
    int first = 1;
    fb_cli_result pr = FB_CLI_OK;
    // Options first, then the train result files.
    int nfiles = 0;
    const char *files[MAX_RUNS];
    char **args = malloc((size_t)argc * sizeof *args);
    int nargs = 0;
    if (!args) return FB_EXIT_FAIL;
    args[nargs++] = argv[0];
    for (int i = first; i < argc; i++) {
        if (argv[i][0] == '-') {
            args[nargs++] = argv[i];
            if (i + 1 < argc && strcmp(argv[i], "--help") && strcmp(argv[i], "-h")) args[nargs++] = argv[++i];
        } else if (nfiles < MAX_RUNS) {
            files[nfiles++] = argv[i];
        }
    }
    pr = fb_cli_parse(PROG, opts, nopts, nargs, args, 1);
    free(args);
    if (pr == FB_CLI_HELP) {
        printf("usage: fusebench project [options] TRAIN.h5 ...\n\n"
               "Projects the step time and weak-scaling efficiency (fixed batch per rank) of each measured\n"
               "training run to 1..max-nodes nodes, for its strategy: ddp's ring allreduce of the gradients\n"
               "(the run's measured exposed share), the gathered pair scopes' allgather, DataParallel's\n"
               "reduce + broadcast trees (profiling/projection.h). Needs --comm, or --latency-us and\n"
               "--bandwidth-gbs. Prints the model's error against every multi-rank run given.\n\noptions:\n");
        fb_cli_print_options(stdout, opts, nopts);
        return FB_EXIT_OK;
    }
    if (pr == FB_CLI_ERROR) return FB_EXIT_USAGE;
    if (nfiles == 0 || (!comm && (latency_us < 0 || bandwidth_gbs < 0))) {
        fprintf(stderr, PROG ": %s\n", nfiles == 0 ? "give one or more fusebench train result files"
                                                  : "give --comm FILE, or --latency-us and --bandwidth-gbs");
        return FB_EXIT_USAGE;
    }
    proj_link intra = {0, 0}, inter = {0, 0};
    int p0 = 0;
    if (comm && read_comm(comm, &intra, &p0) != FB_OK) {
        fprintf(stderr, PROG ": %s\n", fb_last_error());
        return FB_EXIT_FAIL;
    }
    inter = latency_us >= 0 ? (proj_link){ latency_us * 1e-6, 1.0 / (bandwidth_gbs * 1e9) } : intra;
    if (!comm) intra = inter;
    measured *runs = calloc((size_t)nfiles, sizeof *runs);
    if (!runs) return FB_EXIT_FAIL;
    for (int i = 0; i < nfiles; i++)
        if (read_run(files[i], &runs[i]) != FB_OK) {
            fprintf(stderr, PROG ": %s\n", fb_last_error());
            free(runs);
            return FB_EXIT_FAIL;
        }
    printf("# links     within a node: latency %.2f us, bandwidth %.2f GB/s%s; between nodes: %.2f us, %.2f GB/s\n",
           intra.alpha_s * 1e6, 1e-9 / intra.beta_s_per_byte, comm ? " (fitted to the allreduce table)" : "",
           inter.alpha_s * 1e6, 1e-9 / inter.beta_s_per_byte);
    // The model against the runs measured on more than one rank: the 1-rank run of the same
    // scenario, method and batch per rank supplies the compute.
    double worst = 0;
    int checked = 0;
    for (int i = 0; i < nfiles; i++) {
        if (runs[i].ranks < 2) continue;
        const measured *base = NULL;
        for (int j = 0; j < nfiles && !base; j++)
            if (runs[j].ranks == 1 && !strcmp(runs[j].scenario, runs[i].scenario) &&
                !strcmp(runs[j].method, runs[i].method) && runs[j].batch_per_rank == runs[i].batch_per_rank)
                base = &runs[j];
        proj_run m = runs[i].model;
        if (base) m.compute_s = base->model.compute_s;
        const double pred = proj_step(&m, 1, runs[i].ranks, &intra, &inter);
        const double err = (pred - runs[i].step_s) / runs[i].step_s;
        if (fabs(err) > fabs(worst)) worst = err;
        checked++;
        printf("# check     %s %s %s/%s on %d ranks: measured %.3f ms, model %.3f ms (%+.1f%%)\n", runs[i].scenario,
               runs[i].method, runs[i].parallel, runs[i].pairs, runs[i].ranks, runs[i].step_s * 1e3, pred * 1e3,
               100 * err);
    }
    if (checked) printf("FOM project checked_runs=%d worst_rel_error=%.3f\n", checked, worst);
    else printf("# check     no multi-rank run given: the model's error is not measured\n");
    // The projection table.
    printf("\n%-12s %-20s %-22s %6s %7s %12s %10s\n", "scenario", "method", "strategy", "nodes", "ranks", "step ms",
           "efficiency");
    const int nn = (int)floor(log2((double)max_nodes)) + 1, rows_max = nfiles * nn;
    char **sc = calloc((size_t)rows_max, sizeof *sc), **me = calloc((size_t)rows_max, sizeof *me);
    char **strat = calloc((size_t)rows_max, sizeof *strat);
    int64_t *nodes_col = calloc((size_t)rows_max, sizeof(int64_t)), *ranks_col = calloc((size_t)rows_max, sizeof(int64_t));
    double *step_col = calloc((size_t)rows_max, sizeof(double)), *eff_col = calloc((size_t)rows_max, sizeof(double));
    static char strat_buf[MAX_RUNS][64];
    int rows = 0;
    for (int i = 0; i < nfiles && sc && me && strat && nodes_col && ranks_col && step_col && eff_col; i++) {
        if (runs[i].ranks != 1) continue;   // project from the single-rank compute
        snprintf(strat_buf[i], sizeof strat_buf[i], "%s%s%s", runs[i].parallel,
                 strcmp(runs[i].parallel, "ddp") ? "" : "/", strcmp(runs[i].parallel, "ddp") ? "" : runs[i].pairs);
        const double t1 = proj_step(&runs[i].model, 1, 1, &intra, &inter);
        for (int nodes = 1; nodes <= max_nodes; nodes *= 2) {
            const int p = nodes * ranks_per_node;
            const double t = proj_step(&runs[i].model, nodes, p, &intra, &inter);
            printf("%-12s %-20s %-22s %6d %7d %12.3f %9.1f%%\n", runs[i].scenario, runs[i].method, strat_buf[i], nodes,
                   p, t * 1e3, 100 * t1 / t);
            sc[rows] = runs[i].scenario; me[rows] = runs[i].method; strat[rows] = strat_buf[i];
            nodes_col[rows] = nodes; ranks_col[rows] = p; step_col[rows] = t * 1e3; eff_col[rows] = t1 / t;
            rows++;
        }
    }
    int rc = FB_EXIT_OK;
    if (out && rows) {
        fb_h5 h;
        const fb_h5_column cols[] = {
            { "scenario", FB_COL_STR, "", NULL }, { "method", FB_COL_STR, "", NULL },
            { "strategy", FB_COL_STR, "", NULL }, { "nodes", FB_COL_I64, "1", NULL },
            { "ranks", FB_COL_I64, "1", NULL }, { "step_ms", FB_COL_F64, "ms", "projected step time" },
            { "efficiency", FB_COL_F64, "1", "step(1 rank) / step(ranks), weak scaling" },
        };
        const void *data[] = { sc, me, strat, nodes_col, ranks_col, step_col, eff_col };
        fb_status st = fb_h5_create(&h, out);
        if (st == FB_OK) {
            fb_h5_attr_string(&h, h.file, "schema", "fusebench.projection");
            fb_h5_attr_int(&h, h.file, "schema_version", 1);
            fb_h5_attr_double(&h, h.file, "intra_latency_s", intra.alpha_s);
            fb_h5_attr_double(&h, h.file, "intra_s_per_byte", intra.beta_s_per_byte);
            fb_h5_attr_double(&h, h.file, "inter_latency_s", inter.alpha_s);
            fb_h5_attr_double(&h, h.file, "inter_s_per_byte", inter.beta_s_per_byte);
            fb_h5_attr_int(&h, h.file, "checked_runs", checked);
            fb_h5_attr_double(&h, h.file, "worst_rel_error", checked ? worst : NAN);
            st = fb_h5_write_table(&h, h.file, "projection", cols, 7, (size_t)rows, data);
            st = st == FB_OK ? fb_h5_close(&h) : (fb_h5_discard(&h), st);
        }
        if (st != FB_OK) {
            fprintf(stderr, PROG ": %s\n", fb_last_error());
            rc = FB_EXIT_FAIL;
        } else {
            printf("# wrote %s\n", out);
        }
    }
    free(sc); free(me); free(strat); free(nodes_col); free(ranks_col); free(step_col); free(eff_col);
    free(runs);
    return rc;
}
