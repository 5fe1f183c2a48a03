// `fusebench list` and `fusebench describe METHOD`: the fusion-method table as users see it.
// Both read only kernels/fusion's table, so a new method appears here with no change.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/fusion/fusion.h"
#include "cli.h"

static const char *kind_name(fusion_kind k) { return k == FUSION_VECTOR ? "vector" : "sequence"; }

// Parameter count and FLOPs of a method at a given shape (declares into scratch layouts).
static int method_figures(const fusion_method *m, int B, int S, int T, int D, int E, size_t *params,
                          double *ff, double *fb, int *out_positions) {
    fusion f;
    fb_layout P, A;
    fb_layout_init(&P, 1);
    fb_layout_init(&A, 1);
    fusion_config c = fusion_default_config(B, m->kind == FUSION_VECTOR ? 1 : S, m->kind == FUSION_VECTOR ? 1 : T, D, E);
    fb_status st = fusion_create(&f, m, &c, &P, &A);
    if (st == FB_OK) {
        *params = fb_layout_numel(&P);
        *ff = m->flops(&f, 0);
        *fb = m->flops(&f, 1);
        *out_positions = f.out_positions;
        fusion_destroy(&f);
    }
    fb_layout_free(&P);
    fb_layout_free(&A);
    return st == FB_OK ? 0 : -1;
}

static void variants_string(const fusion_method *m, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int v = 0; v < FUSION_MAX_VARIANTS && m->variants[v] && used < size; v++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", v ? "," : "", m->variants[v]);
}

int bench_list_main(int argc, char **argv) {
    int tsv = 0, D = 256, B = 256, S = 64, T = 8;
    const fb_option opts[] = {
        { "tsv", FB_OPT_FLAG, &tsv, NULL, "tab-separated output with a header line, for scripts", 1, 0, 0 },
        { "dim", FB_OPT_INT, &D, "D", "width D at which parameters and FLOPs are counted", 1, 1 << 20, 0 },
        { "batch", FB_OPT_INT, &B, "B", "batch at which FLOPs are counted", 1, 1 << 20, 0 },
        { "seq", FB_OPT_INT, &S, "S", "sequence positions (sequence methods)", 1, 1 << 20, 0 },
        { "tokens", FB_OPT_INT, &T, "T", "tokens of b (sequence methods)", 1, 1 << 20, 0 },
    };
    const int nopts = (int)(sizeof opts / sizeof opts[0]);
    fb_cli_result r = fb_cli_parse("fusebench list", opts, nopts, argc, argv, 1);
    if (r == FB_CLI_HELP) {
        printf("usage: fusebench list [options]\n\nEvery fusion method: its kind (vector: a (B,D), b (B,E); sequence:\n"
               "a (B,S,D), b (B,T,E)), source document, variants (the first is the default, the document's\n"
               "form), the width of b in its source system, parameters and forward/backward FLOPs at the\n"
               "given shape.\n\noptions:\n");
        fb_cli_print_options(stdout, opts, nopts);
        return FB_EXIT_OK;
    }
    if (r == FB_CLI_ERROR) return FB_EXIT_USAGE;
    if (tsv) printf("name\tkind\tsource\tvariants\ttypical_E\tE\tparams\tflops_fwd\tflops_bwd\n");
    else printf("%-22s %-8s %-6s %-6s %10s %12s %12s  %s\n", "method", "kind", "source", "E", "params", "MFLOP fwd",
                "MFLOP bwd", "variants (first = default)");
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) {
        const fusion_method *m = fusion_methods[i];
        int E = m->typical_E ? m->typical_E : D, outp = 0;
        size_t params = 0;
        double ff = 0, fb = 0;
        char variants[256];
        variants_string(m, variants, sizeof variants);
        if (method_figures(m, B, S, T, D, E, &params, &ff, &fb, &outp) != 0) {
            fprintf(stderr, "fusebench list: %s at D=%d E=%d: %s\n", m->name, D, E, fb_last_error());
            return FB_EXIT_FAIL;
        }
        if (tsv)
            printf("%s\t%s\t%s\t%s\t%d\t%d\t%zu\t%.0f\t%.0f\n", m->name, kind_name(m->kind), m->source, variants,
                   m->typical_E, E, params, ff, fb);
        else
            printf("%-22s %-8s %-6s %-6d %10zu %12.2f %12.2f  %s\n", m->name, kind_name(m->kind), m->source, E, params,
                   ff * 1e-6, fb * 1e-6, variants);
    }
    if (!tsv)
        printf("\nFLOPs at B=%d, D=%d (sequence methods: S=%d, T=%d); E = the width of b in the method's source\n"
               "system, or D. `fusebench describe METHOD` shows a method's formula.\n", B, D, S, T);
    return FB_EXIT_OK;
}

int bench_describe_main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        printf("usage: fusebench describe METHOD\n\nShows a fusion method's formula, kind, source document, variants,\n"
               "and its parameter tensors at D = 256.\n");
        return argc < 2 ? FB_EXIT_USAGE : FB_EXIT_OK;
    }
    const fusion_method *m = fusion_find(argv[1]);
    if (!m) {
        fprintf(stderr, "fusebench describe: unknown method '%s'. Known:", argv[1]);
        for (int i = 0; i < FUSION_METHOD_COUNT; i++) fprintf(stderr, " %s", fusion_methods[i]->name);
        fprintf(stderr, "\n");
        return FB_EXIT_USAGE;
    }
    char variants[256];
    variants_string(m, variants, sizeof variants);
    int D = 256, E = m->typical_E ? m->typical_E : D;
    printf("%s  (document %s, %s method)\n\n  %s\n\n", m->name, m->source, kind_name(m->kind), m->formula);
    printf("inputs    %s\n", m->kind == FUSION_VECTOR ? "a (B, D), b (B, E)" : "a (B, S, D), b (B, T, E)");
    printf("variants  %s (the first is the default: the document's form)\n", variants);
    printf("source    kernels/fusion/%s.c (its header comment records every choice)\n", m->name);
    fusion f;
    fb_layout P, A;
    fb_layout_init(&P, 1);
    fb_layout_init(&A, 1);
    fusion_config c = fusion_default_config(1, m->kind == FUSION_VECTOR ? 1 : 8, m->kind == FUSION_VECTOR ? 1 : 4, D, E);
    c.prefix = "";
    if (fusion_create(&f, m, &c, &P, &A) != FB_OK) {
        fprintf(stderr, "fusebench describe: %s: %s\n", m->name, fb_last_error());
        return FB_EXIT_FAIL;
    }
    printf("outputs   %s\n", f.out_positions == 1 && m->kind == FUSION_SEQUENCE ? "(B, D) (pooled)" : m->kind == FUSION_VECTOR ? "(B, D)" : "(B, S, D)");
    printf("\nparameters at D = %d, E = %d (%zu values):\n", D, E, fb_layout_numel(&P));
    for (int i = 0; i < P.count; i++) {
        const fb_tensor *t = &P.tensors[i];
        char shape[64];
        size_t used = 0;
        for (int d = 0; d < t->ndim; d++) used += (size_t)snprintf(shape + used, sizeof shape - used, "%s%d", d ? ", " : "", t->shape[d]);
        printf("  %-44s (%s)\n", t->name, shape);
    }
    if (!P.count) printf("  none\n");
    fusion_destroy(&f);
    fb_layout_free(&P);
    fb_layout_free(&A);
    return FB_EXIT_OK;
}
