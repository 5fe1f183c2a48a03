// libFuzzer target for the metadata TSV reader (datasets/metadata.c). fb_metadata_read takes a
// path, so each input is put in a memfd and read through /proc/self/fd/N (no disk). Any input must
// read or fail with a message naming the file, never crash (ASan, UBSan); a table that reads must
// write back (fb_metadata_write, to a scratch folder) and read back identical, and every column must
// encode.
//   make fuzz FUZZ_SECONDS=600        or   build/fuzz/fuzz_tsv -dict=fuzz/tsv.dict DIR
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "../datasets/metadata.h"

static int input_fd = -1;
static char input_path[64], scratch[256], written[300];

// The scratch folder goes at exit and before a property abort (a sanitizer's abort skips it:
// tests/test_fuzz.sh points TMPDIR at its own scratch folder).
static void cleanup(void) {
    if (written[0]) unlink(written);
    if (scratch[0]) rmdir(scratch);
}

// A broken property: say which (and the library's last message), then abort for libFuzzer.
static void broken(const char *property) {
    fprintf(stderr, "PROPERTY FAILED: %s (last error: %s)\n", property, fb_last_error());
    cleanup();
    abort();
}

static void setup(void) {
    input_fd = memfd_create("fuzz_tsv", 0);
    snprintf(input_path, sizeof input_path, "/proc/self/fd/%d", input_fd);
    snprintf(scratch, sizeof scratch, "%s/fuzz_tsv_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (input_fd < 0 || !mkdtemp(scratch)) {
        scratch[0] = '\0';
        broken("set-up: a memfd and a scratch folder");
    }
    snprintf(written, sizeof written, "%s/m.tsv", scratch);
    atexit(cleanup);
}

static int same_metadata(const fb_metadata *a, const fb_metadata *b) {
    if (a->n_samples != b->n_samples || a->n_cols != b->n_cols) return 0;
    for (int i = 0; i < a->n_samples; i++)
        if (strcmp(a->sample_ids[i], b->sample_ids[i]) != 0) return 0;
    for (int c = 0; c < a->n_cols; c++) {
        if (strcmp(a->col_names[c], b->col_names[c]) != 0) return 0;
        for (int i = 0; i < a->n_samples; i++)
            if (strcmp(a->values[c][i], b->values[c][i]) != 0) return 0;
    }
    return 1;
}

static void encode_every_column(const fb_metadata *m) {
    int *codes = malloc(sizeof(int) * (size_t)(m->n_samples + 1)), *cols = malloc(sizeof(int) * (size_t)(m->n_cols + 1));
    if (!codes || !cols) broken("memory for the codes");
    for (int c = 0; c < m->n_cols; c++) {
        int k;
        char **names;
        if (fb_metadata_encode(m, c, codes, &k, &names) != FB_OK) broken("every column encodes");
        for (int i = 0; i < m->n_samples; i++)
            if (codes[i] < 0 || codes[i] > k) broken("codes lie in [0, cardinality]");
        for (int j = 0; j < k; j++) free(names[j]);
        free(names);
    }
    if (fb_metadata_model_columns(m, NULL, 0, cols) != FB_OK) broken("the model columns sort");
    free(codes);
    free(cols);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (input_fd < 0) setup();
    if (ftruncate(input_fd, 0) != 0 || pwrite(input_fd, data, size, 0) != (ssize_t)size) broken("the memfd takes the input");
    fb_metadata m;
    if (fb_metadata_read(input_path, &m) != FB_OK) {
        if (!strstr(fb_last_error(), input_path)) broken("a read error names the file");
        return 0;
    }
    encode_every_column(&m);
    if (fb_metadata_write(written, &m) != FB_OK) broken("a table that reads writes");
    fb_metadata back;
    if (fb_metadata_read(written, &back) != FB_OK) broken("the written table reads");
    if (!same_metadata(&m, &back)) broken("the written table reads back identical");
    fb_metadata_free(&back);
    fb_metadata_free(&m);
    return 0;
}
