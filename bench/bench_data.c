// `fusebench data`: the datasets of the three source systems.
//   data make --scenario microbiome --out DIR   a synthetic world as real files: DIR/table.biom
//        (BIOM 2.1, observation ids = 150-bp ASV sequences), DIR/tree.nwk, DIR/metadata.tsv
//        (sample_id, categorical columns, target), DIR/unifrac.h5 (Striped UniFrac through libssu)
//   data unifrac --table T --tree T --out U.h5  the UniFrac matrix of a table, its stripes spread
//        over the MPI ranks (libssu partial), merged on rank 0 (merge_partial)
// Every option: `fusebench data make --help`, `fusebench data unifrac --help`.
#include <errno.h>
#include <mpi.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "../datasets/biom.h"
#include "../datasets/metadata.h"
#include "../datasets/newick.h"
#include "../datasets/synth_microbiome.h"
#include "../datasets/unifrac.h"
#include "../harness/model.h"
#include "../io/h5out.h"
#include "cli.h"
#include "machine.h"
#include "mpi_run.h"
#include "worlds.h"

#define PROG "fusebench data"

static void usage(FILE *f) {
    fprintf(f, "usage: fusebench data make --scenario microbiome --out DIR [options]\n"
               "       [mpirun -np P] fusebench data unifrac --table T.biom --tree T.nwk --out U.h5 [options]\n"
               "       fusebench data <make|unifrac> --help\n");
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

// ---------------------------------------------------------------- make: records of any scenario

// DIR/<scenario>-records.h5: N samples of the scenario's in-memory generator, as the training loop
// sees them (x (N, in_stride), y (N, y_stride), float32) with the record layout and the sizes.
static int make_records(const char *name, const char *out, int samples, int seed, const fb_synth_ts_world *world,
                        const fb_synth_mm_world *mworld) {
    const scenario *sc = scenario_find(name);
    if (!sc) {
        fprintf(stderr, PROG " make: --scenario '%s' is unknown (timeseries, multimodal, microbiome)\n", name);
        return FB_EXIT_USAGE;
    }
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, PROG " make: cannot create %s: %s\n", out, strerror(errno));
        return FB_EXIT_FAIL;
    }
    char file[64];
    snprintf(file, sizeof file, "%s-records.h5", name);
    char *path = join(out, file);
    struct stat sb;
    if (!path || stat(path, &sb) == 0) {
        fprintf(stderr, PROG " make: %s exists already (remove it or choose another --out)\n", path ? path : out);
        free(path);
        return FB_EXIT_FAIL;
    }
    fb_layout P, A;
    fb_layout_init(&P, 2);
    fb_layout_init(&A, 2);
    model m;
    const model_config c = { .method = sc->default_method, .B = 1, .seed = (uint64_t)seed, .ts_world = world,
                             .mm_world = mworld };
    fb_status st = model_create(&m, sc, &c, &P, &A);
    float *x = NULL, *y = NULL;
    if (st == FB_OK) {
        x = malloc((size_t)samples * m.in_stride * sizeof(float));
        y = malloc((size_t)samples * m.y_stride * sizeof(float));
        if (!x || !y) st = fb_fail(FB_ERR_ALLOC, "no memory for %d records", samples);
    }
    const double t0 = omp_get_wtime();
    for (int i = 0; st == FB_OK && i < samples; i++)
        m.s->sample(&m, (uint64_t)i, x + (size_t)i * m.in_stride, y + (size_t)i * m.y_stride);
    const double t_gen = omp_get_wtime() - t0;
    fb_h5 h;
    if (st == FB_OK && (st = fb_h5_create(&h, path)) == FB_OK) {
        const int64_t dx[2] = { samples, m.in_stride }, dy[2] = { samples, m.y_stride };
        const char *const nx[2] = { "sample", "x_field" }, *const ny[2] = { "sample", "y_field" };
        fb_h5_attr_string(&h, h.file, "schema", "fusebench.records");
        fb_h5_attr_int(&h, h.file, "schema_version", 1);
        fb_h5_attr_string(&h, h.file, "scenario", sc->name);
        fb_h5_attr_string(&h, h.file, "source", sc->source);
        fb_h5_attr_string(&h, h.file, "record_layout", sc->record_layout);
        fb_h5_attr_int(&h, h.file, "seed", seed);
        fb_h5_attr_int(&h, h.file, "seq_len", m.c.seq_len);
        fb_h5_attr_int(&h, h.file, "pred_len", m.c.pred_len);
        fb_h5_attr_int(&h, h.file, "features", m.c.features);
        fb_h5_attr_int(&h, h.file, "feat_a", m.c.feat_a);
        fb_h5_attr_int(&h, h.file, "feat_b", m.c.feat_b);
        fb_h5_attr_int(&h, h.file, "classes", m.c.classes);
        fb_h5_attr_int(&h, h.file, "max_asvs", m.c.max_asvs);
        fb_h5_attr_int(&h, h.file, "columns", m.c.columns);
        fb_h5_write_f32_nd(&h, h.file, "x", 2, dx, nx, x, "1", "inputs, one record per sample (record_layout)");
        fb_h5_write_f32_nd(&h, h.file, "y", 2, dy, ny, y, "1", "targets, one record per sample (record_layout)");
        st = h.failed ? fb_fail(FB_ERR_IO, "writing %s failed", path) : FB_OK;
        st = st == FB_OK ? fb_h5_close(&h) : (fb_h5_discard(&h), st);
    }
    if (st == FB_OK)
        printf("# data make %s: %d records (x %d floats, y %d floats), seed %d, generated in %.3f s\n# wrote %s\n",
               name, samples, m.in_stride, m.y_stride, seed, t_gen, path);
    else
        fprintf(stderr, PROG " make: %s\n", fb_last_error());
    if (m.s) model_destroy(&m);
    fb_layout_free(&P);
    fb_layout_free(&A);
    free(x); free(y); free(path);
    return st == FB_OK ? FB_EXIT_OK : FB_EXIT_FAIL;
}

// ---------------------------------------------------------------- make: the microbiome files

static int make_main(int argc, char **argv) {
    const fb_synth_microbiome_config d = fb_synth_microbiome_defaults();
    const char *scenario = NULL, *out = NULL, *kind_name = "unweighted", *ts_world = NULL, *mm_world = NULL;
    int samples = d.samples, asvs = d.asvs, columns = d.columns, categories = d.categories, richness = d.richness;
    int seed = 1, no_unifrac = 0, fp32 = 0, threads = 0, records = 0;
    double missing = d.missing, clade_effect = d.clade_effect, interaction = d.interaction, noise = d.noise;
    double depth_min = (double)d.depth_min, depth_max = (double)d.depth_max;
    const fb_option opts[] = {
        { "scenario", FB_OPT_STRING, &scenario, "NAME", "timeseries, multimodal or microbiome", 1, 0, 0 },
        { "records", FB_OPT_FLAG, &records, NULL, "write DIR/<scenario>-records.h5: --samples records of the\n"
          "scenario's in-memory generator, as training sees them (timeseries and\n"
          "multimodal always; microbiome: its files unless --records)", 1, 0, 0 },
        { "out", FB_OPT_STRING, &out, "DIR", "folder for table.biom, tree.nwk, metadata.tsv, unifrac.h5 (created;\n"
          "existing files are not overwritten)", 1, 0, 0 },
        { "samples", FB_OPT_INT, &samples, "N", "samples", 1, FB_SM_MAX_SAMPLES, 0 },
        { "ts-world", FB_OPT_STRING, &ts_world, "SPEC", "timeseries: component strengths, e.g. celestial=2,noise=0.1\n"
          "(trend, weekly, yearly, calendar, celestial, interaction, noise)", 1, 0, 0 },
        { "mm-world", FB_OPT_STRING, &mm_world, "SPEC", "multimodal: generator settings, e.g. frac_a_only=0.4\n"
          "(latent, signal, noise, feature_noise, frac_a_only, frac_b_only)", 1, 0, 0 },
        { "asvs", FB_OPT_INT, &asvs, "M", "ASVs (tips of the tree)", 2, FB_SM_MAX_ASVS, 0 },
        { "columns", FB_OPT_INT, &columns, "K", "categorical metadata columns", 1, FB_SM_MAX_COLUMNS, 0 },
        { "categories", FB_OPT_INT, &categories, "C", "values per column", 1, FB_SM_MAX_CATEGORIES, 0 },
        { "missing", FB_OPT_DOUBLE, &missing, "F", "fraction of metadata values left empty (unknown)", 0, 1, 0 },
        { "depth-min", FB_OPT_DOUBLE, &depth_min, "R", "smallest read depth (log-uniform in [min, max])", 1, 1e9, 0 },
        { "depth-max", FB_OPT_DOUBLE, &depth_max, "R", "largest read depth", 1, 1e9, 0 },
        { "richness", FB_OPT_INT, &richness, "N", "mean ASVs present per sample", 1, FB_SM_MAX_ASVS, 0 },
        { "clade-effect", FB_OPT_DOUBLE, &clade_effect, "S", "metadata -> clade log-fold shifts", 0, 100, 0 },
        { "interaction", FB_OPT_DOUBLE, &interaction, "S", "metadata x composition interaction in the target", 0, 100, 0 },
        { "noise", FB_OPT_DOUBLE, &noise, "SD", "target noise", 0, 100, 0 },
        { "seed", FB_OPT_INT, &seed, "S", "seed of everything drawn", 0, 2147483647, 0 },
        { "unifrac", FB_OPT_STRING, &kind_name, "KIND", "unweighted, weighted_normalized or weighted_unnormalized", 1, 0, 0 },
        { "fp32", FB_OPT_FLAG, &fp32, NULL, "UniFrac in float32 (what the source system ran)", 1, 0, 0 },
        { "no-unifrac", FB_OPT_FLAG, &no_unifrac, NULL, "do not compute the UniFrac matrix", 1, 0, 0 },
        { "threads", FB_OPT_INT, &threads, "T", "OpenMP threads (generator and libssu); 0 = OMP_NUM_THREADS", 0, 4096, 0 },
    };
    const int nopts = (int)(sizeof opts / sizeof opts[0]);
    fb_cli_result pr = fb_cli_parse(PROG " make", opts, nopts, argc, argv, 1);
    if (pr == FB_CLI_HELP) {
        printf("usage: fusebench data make --scenario timeseries|multimodal|microbiome --out DIR [options]\n\n"
               "timeseries, multimodal (or --records): DIR/<scenario>-records.h5, --samples records of the\n"
               "scenario's generator (x, y, float32) with their layout. microbiome:\n"
               "Draws the microbiome world of datasets/synth_microbiome.h (metadata categories shift which\n"
               "clades thrive; the target depends on composition, metadata and their interaction) and\n"
               "writes it as the source system's files, ready for\n"
               "  fusebench train --scenario microbiome --table DIR/table.biom --tree DIR/tree.nwk \\\n"
               "      --metadata DIR/metadata.tsv --unifrac DIR/unifrac.h5\n\noptions:\n");
        fb_cli_print_options(stdout, opts, nopts);
        return FB_EXIT_OK;
    }
    if (pr == FB_CLI_ERROR) return FB_EXIT_USAGE;
    if (!scenario || !out) {
        fprintf(stderr, PROG " make: %s is required\n", !scenario ? "--scenario" : "--out DIR");
        return FB_EXIT_USAGE;
    }
    if (threads > 0) fb_set_threads(threads);
    fb_worlds worlds;
    char why[320];
    if (fb_worlds_parse(scenario, ts_world, mm_world, &worlds, why, sizeof why) != 0) {
        fprintf(stderr, PROG " make: %s\n", why);
        return FB_EXIT_USAGE;
    }
    if (records || strcmp(scenario, "microbiome") != 0)
        return make_records(scenario, out, samples, seed, worlds.has_ts ? &worlds.ts : NULL,
                            worlds.has_mm ? &worlds.mm : NULL);
    fb_unifrac_kind kind;
    if (fb_unifrac_kind_parse(kind_name, &kind) != FB_OK) {
        fprintf(stderr, PROG " make: %s\n", fb_last_error());
        return FB_EXIT_USAGE;
    }
    fb_synth_microbiome_config c = d;
    c.samples = samples; c.asvs = asvs; c.columns = columns; c.categories = categories; c.missing = missing;
    c.depth_min = (int64_t)depth_min; c.depth_max = (int64_t)depth_max; c.richness = richness;
    c.clade_effect = clade_effect; c.interaction = interaction; c.noise = noise; c.seed = (uint64_t)seed;
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, PROG " make: cannot create %s: %s\n", out, strerror(errno));
        return FB_EXIT_FAIL;
    }
    char *table = join(out, "table.biom"), *tree = join(out, "tree.nwk"), *meta = join(out, "metadata.tsv");
    char *uni = join(out, "unifrac.h5");
    const char *const paths[] = { table, tree, meta, no_unifrac ? NULL : uni };
    int rc = FB_EXIT_OK;
    for (int i = 0; i < 4 && rc == FB_EXIT_OK; i++) {
        struct stat sb;
        if (paths[i] && stat(paths[i], &sb) == 0) {
            fprintf(stderr, PROG " make: %s exists already (remove it or choose another --out)\n", paths[i]);
            rc = FB_EXIT_FAIL;
        }
    }
    fb_tree t = {0};
    fb_table tab = {0};
    fb_metadata md = {0};
    double *m = NULL;
    char **ids = NULL;
    int n = 0;
    double t0 = omp_get_wtime();
    fb_status st = rc == FB_EXIT_OK ? fb_synth_microbiome(&c, &t, &tab, &md) : FB_ERR_CONFIG;
    const double t_gen = omp_get_wtime() - t0;
    if (st == FB_OK) st = fb_biom_write(table, &tab, "fusebench synthetic microbiome");
    if (st == FB_OK) st = fb_newick_write(tree, &t);
    if (st == FB_OK) st = fb_metadata_write(meta, &md);
    t0 = omp_get_wtime();
    if (st == FB_OK && !no_unifrac) st = fb_unifrac_compute(table, tree, kind, fp32, threads, &m, &ids, &n);
    const double t_uni = omp_get_wtime() - t0;
    if (st == FB_OK && !no_unifrac) st = fb_unifrac_write(uni, m, (const char *const *)ids, n, fp32);
    if (st != FB_OK && rc == FB_EXIT_OK) {
        fprintf(stderr, PROG " make: %s\n", fb_last_error());
        rc = FB_EXIT_FAIL;
    }
    if (rc == FB_EXIT_OK) {
        int64_t nnz = tab.indptr[tab.n_samples];
        printf("# data make microbiome: %d samples x %d ASVs (%lld non-zeros), %d categorical columns + target, "
               "seed %d; generated in %.2f s, UniFrac (%s%s) in %.2f s\n", tab.n_samples, tab.n_obs, (long long)nnz,
               md.n_cols - 1, seed, t_gen, kind_name, fp32 ? ", fp32" : "", no_unifrac ? 0.0 : t_uni);
        for (int i = 0; i < 4; i++)
            if (paths[i]) printf("# wrote %s\n", paths[i]);
    }
    free(m);
    fb_unifrac_free_ids(ids, n);
    fb_metadata_free(&md);
    fb_table_free(&tab);
    fb_tree_free(&t);
    free(table); free(tree); free(meta); free(uni);
    return rc;
}

// ---------------------------------------------------------------- unifrac (MPI)

static int unifrac_main(int argc, char **argv, fb_mpi_run *run) {
    const char *table = NULL, *tree = NULL, *out = NULL, *kind_name = "unweighted";
    int fp32 = 0, threads = 0, check = 0;
    const fb_option opts[] = {
        { "table", FB_OPT_STRING, &table, "FILE", "BIOM 2.1 table (required)", 1, 0, 0 },
        { "tree", FB_OPT_STRING, &tree, "FILE", "Newick tree whose tips include every observation (required)", 1, 0, 0 },
        { "out", FB_OPT_STRING, &out, "FILE", "the matrix, Striped UniFrac's HDF5 layout (required; not overwritten)", 1, 0, 0 },
        { "kind", FB_OPT_STRING, &kind_name, "KIND", "unweighted, weighted_normalized or weighted_unnormalized", 1, 0, 0 },
        { "fp32", FB_OPT_FLAG, &fp32, NULL, "compute in float32", 1, 0, 0 },
        { "threads", FB_OPT_INT, &threads, "T", "OpenMP threads per rank for libssu; 0 = OMP_NUM_THREADS", 0, 4096, 0 },
        { "check", FB_OPT_FLAG, &check, NULL, "also compute the matrix in one process on rank 0 and compare", 1, 0, 0 },
    };
    const int nopts = (int)(sizeof opts / sizeof opts[0]);
    fb_cli_result pr = fb_mpi_parse(run, PROG " unifrac", opts, nopts, argc, argv);
    if (pr == FB_CLI_HELP) {
        if (run->rank == 0) {
            printf("usage: [mpirun -np P] fusebench data unifrac --table T.biom --tree T.nwk --out U.h5 [options]\n\n"
                   "Striped UniFrac (libssu) across MPI ranks: rank r computes its share of the (N+1)/2 stripes\n"
                   "(libssu `partial`), rank 0 gathers and merges them (`merge_partial`) and writes the matrix\n"
                   "(`order`, `matrix`, as ssu --format hdf5). The result equals the one-process matrix bit\n"
                   "for bit (--check compares).\n\noptions:\n");
            fb_cli_print_options(stdout, opts, nopts);
        }
        return FB_EXIT_OK;
    }
    if (pr == FB_CLI_ERROR) return FB_EXIT_USAGE;
    fb_unifrac_kind kind;
    if (!table || !tree || !out || fb_unifrac_kind_parse(kind_name, &kind) != FB_OK) {
        if (run->rank == 0)
            fprintf(stderr, PROG " unifrac: %s\n", !table || !tree || !out ? "--table, --tree and --out are required"
                                                                          : fb_last_error());
        return FB_EXIT_USAGE;
    }
    struct stat sb;
    if (!fb_mpi_all_ok(run->rank != 0 || stat(out, &sb) != 0)) {
        if (run->rank == 0) fprintf(stderr, PROG " unifrac: %s exists already\n", out);
        return FB_EXIT_FAIL;
    }
    double t0 = MPI_Wtime();
    void *buf = NULL;
    size_t size = 0;
    fb_status st = fb_unifrac_partial(table, tree, kind, fp32, threads, run->rank, run->size, &buf, &size);
    const double t_part = MPI_Wtime() - t0;
    if (!fb_mpi_all_ok(st == FB_OK)) {
        // Rank 0 reports its own reason, or says which rank failed.
        if (run->rank == 0) fprintf(stderr, PROG " unifrac: %s\n", st != FB_OK ? fb_last_error() : "another rank failed");
        else if (st != FB_OK) fprintf(stderr, PROG " unifrac (rank %d): %s\n", run->rank, fb_last_error());
        free(buf);
        return FB_EXIT_FAIL;
    }
    // Gather the partial buffers on rank 0 (sizes, then bytes).
    long long mine = (long long)size, *sizes = run->rank == 0 ? calloc((size_t)run->size, sizeof *sizes) : NULL;
    MPI_Gather(&mine, 1, MPI_LONG_LONG, sizes, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
    int *counts = NULL, *displs = NULL;
    char *all = NULL;
    if (run->rank == 0) {
        counts = calloc((size_t)run->size, sizeof *counts);
        displs = calloc((size_t)run->size, sizeof *displs);
        long long total = 0;
        for (int r = 0; r < run->size; r++) {
            counts[r] = (int)sizes[r];
            displs[r] = (int)total;
            total += sizes[r];
        }
        all = malloc((size_t)(total ? total : 1));
    }
    MPI_Gatherv(buf, (int)size, MPI_BYTE, all, counts, displs, MPI_BYTE, 0, MPI_COMM_WORLD);
    free(buf);
    int rc = FB_EXIT_OK;
    if (run->rank == 0) {
        const void **bufs = malloc((size_t)run->size * sizeof *bufs);
        size_t *bsz = malloc((size_t)run->size * sizeof *bsz);
        for (int r = 0; r < run->size; r++) {
            bufs[r] = all + displs[r];
            bsz[r] = (size_t)sizes[r];
        }
        double *m = NULL, *one = NULL;
        char **ids = NULL, **ids1 = NULL;
        int n = 0, n1 = 0;
        st = fb_unifrac_merge(bufs, bsz, run->size, &m, &ids, &n);
        const double t_all = MPI_Wtime() - t0;
        if (st == FB_OK) st = fb_unifrac_write(out, m, (const char *const *)ids, n, fp32);
        if (st == FB_OK) {
            printf("# data unifrac: %d samples, %s%s, %d rank%s; rank 0's stripes %.2f s, all (gather + merge) %.2f s\n",
                   n, kind_name, fp32 ? " fp32" : "", run->size, run->size > 1 ? "s" : "", t_part, t_all);
            printf("# wrote %s\n", out);
        }
        if (st == FB_OK && check) {
            st = fb_unifrac_compute(table, tree, kind, fp32, threads, &one, &ids1, &n1);
            if (st == FB_OK) {
                double worst = 0;
                for (size_t i = 0; i < (size_t)n * n; i++) {
                    const double dlt = m[i] > one[i] ? m[i] - one[i] : one[i] - m[i];
                    if (dlt > worst) worst = dlt;
                }
                printf("FOM data-unifrac samples=%d ranks=%d max_abs_diff_vs_one_process=%.3g\n", n, run->size, worst);
                if (worst != 0) st = fb_fail(FB_ERR_INTERNAL, "the merged matrix differs from the one-process one by %g", worst);
            }
        }
        if (st != FB_OK) {
            fprintf(stderr, PROG " unifrac: %s\n", fb_last_error());
            rc = FB_EXIT_FAIL;
        }
        free(m); free(one);
        fb_unifrac_free_ids(ids, n);
        fb_unifrac_free_ids(ids1, n1);
        free(bufs); free(bsz);
    }
    free(sizes); free(counts); free(displs); free(all);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return rc;
}

int bench_data_main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? FB_EXIT_USAGE : FB_EXIT_OK;
    }
    if (strcmp(argv[1], "make") == 0) return make_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "unifrac") == 0) {
        fb_mpi_run run;
        if (fb_mpi_start(&run, &argc, &argv, PROG " unifrac") != 0) return FB_EXIT_FAIL;
        int rc = unifrac_main(argc - 1, argv + 1, &run);
        fb_mpi_end(&run);
        return rc;
    }
    fprintf(stderr, PROG ": unknown action '%s' (make or unifrac)\n", argv[1]);
    usage(stderr);
    return FB_EXIT_USAGE;
}
