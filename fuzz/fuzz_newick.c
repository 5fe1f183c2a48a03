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

// Lengths compare bit for bit (-0 and 0 differ), any NaN equals any NaN (a missing length).
static int same_length(double a, double b) { return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0; }

static void same_or_abort(const fb_tree *a, const fb_tree *b) {
    if (a->n != b->n || a->root != b->root) abort();
    for (int i = 0; i < a->n; i++) {
        if (a->parent[i] != b->parent[i] || !same_length(a->length[i], b->length[i])) abort();
        if ((a->label[i] == NULL) != (b->label[i] == NULL)) abort();
        if (a->label[i] && strcmp(a->label[i], b->label[i]) != 0) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fb_tree t;
    if (fb_newick_parse((const char *)data, size, "fuzz", &t) != FB_OK) {
        if (strncmp(fb_last_error(), "fuzz line ", 10) != 0) abort();   // errors say where
        return 0;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f || fb_newick_fprint(f, "mem", &t, 0) != FB_OK) abort();
    fclose(f);
    fb_tree back;
    if (fb_newick_parse(text, len, "again", &back) != FB_OK) abort();
    same_or_abort(&t, &back);
    fb_strindex *tips;
    if (fb_tree_tip_index(&t, "fuzz", &tips) == FB_OK) fb_strindex_free(tips);
    fb_tree_free(&back);
    fb_tree_free(&t);
    free(text);
    return 0;
}
