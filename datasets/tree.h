// A rooted phylogenetic tree in memory (what datasets/newick.c parses and writes, what the
// microbiome generator draws, what UniFrac needs). No files here.
#pragma once
#include <stddef.h>

typedef struct {
    int n;            // nodes
    int root;         // index of the root
    int *parent;      // (n) parent index; -1 for the root
    double *length;   // (n) branch length to the parent; NAN where the Newick text gave none
    char **label;     // (n) node label (tips: ASV / OTU ids; internal: optional), NULL when none
} fb_tree;

// Frees every array and zeroes the struct (a zeroed struct is fine).
void fb_tree_free(fb_tree *t);
