// libFuzzer target for datasets/newick.c. Any input must parse or fail with a message naming its
// place, never crash (ASan, UBSan); a tree that parses must write back (fb_newick_fprint), that
// text must parse to the same tree (structure, labels, lengths bit for bit), and the tip index
// must build or report a duplicate label.
//   make fuzz FUZZ_SECONDS=600        or   build/fuzz/fuzz_newick -dict=fuzz/newick.dict DIR
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../datasets/newick.h"

// A broken property: say which (and the library's last message), then abort for libFuzzer.
static void broken(const char *property) {
    fprintf(stderr, "PROPERTY FAILED: %s (last error: %s)\n", property, fb_last_error());
    abort();
}

// Lengths compare bit for bit (-0 and 0 differ), any NaN equals any NaN (a missing length).
static int same_length(double a, double b) { return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0; }

static int same_tree(const fb_tree *a, const fb_tree *b) {
    if (a->n != b->n || a->root != b->root) return 0;
    for (int i = 0; i < a->n; i++) {
        if (a->parent[i] != b->parent[i] || !same_length(a->length[i], b->length[i])) return 0;
        if ((a->label[i] == NULL) != (b->label[i] == NULL)) return 0;
        if (a->label[i] && strcmp(a->label[i], b->label[i]) != 0) return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fb_tree t;
    if (fb_newick_parse((const char *)data, size, "fuzz", &t) != FB_OK) {
        if (strncmp(fb_last_error(), "fuzz line ", 10) != 0) broken("a parse error names the line and column");
        return 0;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f || fb_newick_fprint(f, "mem", &t, 0) != FB_OK) broken("a parsed tree writes");
    fclose(f);
    fb_tree back;
    if (fb_newick_parse(text, len, "again", &back) != FB_OK) broken("the written text parses");
    if (!same_tree(&t, &back)) broken("the written text parses to the same tree");
    fb_strindex *tips;
    if (fb_tree_tip_index(&t, "fuzz", &tips) == FB_OK) fb_strindex_free(tips);
    else if (!strstr(fb_last_error(), "appears twice")) broken("the tip index builds or names a duplicate");
    fb_tree_free(&back);
    fb_tree_free(&t);
    free(text);
    return 0;
}
