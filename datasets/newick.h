// Newick trees: text <-> fb_tree (datasets/tree.h), and the check that a table's observations are
// tips of its tree.
//
// What the parser accepts (one tree, ended by ';'):
//   - nested '(' ... ')' groups, ',' between siblings; a group may hold one child; a tree may be a
//     single node ("A;");
//   - labels on tips and internal nodes (and the root), all optional: "(,)" is two unnamed tips.
//     Unquoted labels are kept exactly as written, underscores included. The Newick standard reads
//     an unquoted '_' as a blank; libssu (Striped UniFrac) and BIOM tables keep it, and our tips
//     must match BIOM observation ids byte for byte, so we keep it too (scikit-bio converts by
//     default: read with convert_underscores=False to agree). Unquoted labels cannot hold blanks
//     or any of ( ) [ ] ' : ; , — quote those: 'a label (with) blanks'. Inside quotes '' is one
//     quote. An empty label ('' or nothing) is stored as NULL. Control characters (bytes < 0x20,
//     0x7f) are refused in labels, quoted or not: no writer could give them back to a reader;
//   - branch lengths ":<number>" (strtod syntax: signs, decimals, exponents), finite; a node
//     without one gets NAN. UniFrac (libssu, and scikit-bio) counts a missing length as 0;
//   - whitespace and newlines anywhere between tokens, comments "[...]" anywhere between tokens
//     (skipped; a '[' inside a comment is an error: comments do not nest).
// Nodes are numbered in preorder (the root is 0; a node's children follow the text order).
// Errors (FB_ERR_IO) name the source and place: "tree.nwk line 3 col 17: unbalanced ')'" (col
// counts bytes from 1). The parser is iterative (no recursion: any depth), bounded by the text,
// and fuzzed (fuzz/fuzz_newick.c).
#pragma once
#include <stddef.h>
#include <stdio.h>
#include "../kernels/common.h"
#include "strindex.h"
#include "tree.h"

// Parses text[0..len) (NUL bytes inside are errors, no terminator needed) into t, which is
// overwritten (not freed first); on error t is left zeroed. `source` names the text in messages.
fb_status fb_newick_parse(const char *text, size_t len, const char *source, fb_tree *t);
fb_status fb_newick_read(const char *path, fb_tree *t);

// Writes t as one line of Newick ending in ";\n": labels quoted only where they need it
// (see above; '_' does not), lengths with %.17g (they read back bit for bit), missing lengths
// left out. Atomic: <path>.tmp, then rename. Fails on a tree that is not one (a node unreachable
// from the root, a cycle), a label with a control character, or an infinite length.
fb_status fb_newick_write(const char *path, const fb_tree *t);

// The same text to an open stream; `dest` names it in messages. FB_NEWICK_ALL_LENGTHS writes a
// missing length as ":0" (how libssu's reader needs it: it reads "'a:b'" as label a, length b).
enum { FB_NEWICK_ALL_LENGTHS = 1 };
fb_status fb_newick_fprint(FILE *f, const char *dest, const fb_tree *t, int flags);

// Index of the tips' labels -> node (unnamed tips are left out). Fails when two tips share a
// label ("tree T.nwk: tip label 'X' appears twice (nodes 3 and 9)"): UniFrac could not tell
// which one an observation means.
fb_status fb_tree_tip_index(const fb_tree *t, const char *tree_source, fb_strindex **out);

// Every observation id must be a tip label; the first one that is not fails with
// "table T.biom: observation 'ACGT...' is not a tip of tree T.nwk".
fb_status fb_tree_check_table(const fb_tree *t, const char *tree_source, const char *const *obs_ids, int n_obs,
                              const char *table_source);
