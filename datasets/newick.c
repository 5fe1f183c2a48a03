#include "newick.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// Parsing

typedef struct {
    const char *s;
    size_t len, pos;
    const char *source;
    fb_tree *t;
    int cap;        // allocated nodes
    size_t *at;     // (cap) offset where each node starts, for "'(' never closed" messages
} parser;

static int is_blank(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static int is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }
// Characters that end an unquoted label or a length.
static int is_delim(unsigned char c) { return is_blank(c) || (c != '\0' && strchr("()[]':;,", c) != NULL); }

static void line_col(const parser *p, size_t at, int *line, int *col) {
    *line = 1;
    size_t start = 0;
    for (size_t i = 0; i < at && i < p->len; i++)
        if (p->s[i] == '\n') { (*line)++; start = i + 1; }
    *col = (int)(at - start) + 1;
}

// Fails with "<source> line L col C: <message>" for offset `at`.
__attribute__((format(printf, 3, 4)))
static fb_status perr(const parser *p, size_t at, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line, col;
    line_col(p, at, &line, &col);
    return fb_fail(FB_ERR_IO, "%s line %d col %d: %s", p->source, line, col, msg);
}

// "'x'" for a printable byte, "byte 0xNN" otherwise, for "unexpected ..." messages.
static const char *show_char(unsigned char c, char buf[16]) {
    if (c > 0x20 && c < 0x7f) snprintf(buf, 16, "'%c'", c);
    else snprintf(buf, 16, "byte 0x%02x", c);
    return buf;
}

static fb_status add_node(parser *p, int parent, int *node) {
    fb_tree *t = p->t;
    if (t->n == p->cap) {
        if (p->cap > INT_MAX / 2) return perr(p, p->pos, "more than %d nodes", p->cap);
        int cap = p->cap ? 2 * p->cap : 64;
        int *par = realloc(t->parent, (size_t)cap * sizeof *par);
        if (par) t->parent = par;
        double *len = realloc(t->length, (size_t)cap * sizeof *len);
        if (len) t->length = len;
        char **lab = realloc(t->label, (size_t)cap * sizeof *lab);
        if (lab) t->label = lab;
        size_t *at = realloc(p->at, (size_t)cap * sizeof *at);
        if (at) p->at = at;
        if (!par || !len || !lab || !at)
            return fb_fail(FB_ERR_ALLOC, "%s: out of memory at %d nodes", p->source, t->n);
        p->cap = cap;
    }
    int i = t->n++;
    t->parent[i] = parent;
    t->length[i] = NAN;
    t->label[i] = NULL;
    p->at[i] = p->pos;
    *node = i;
    return FB_OK;
}

// Skips whitespace and [comments].
static fb_status skip_blank(parser *p) {
    for (;;) {
        while (p->pos < p->len && is_blank((unsigned char)p->s[p->pos])) p->pos++;
        if (p->pos == p->len || p->s[p->pos] != '[') return FB_OK;
        size_t open = p->pos++;
        for (; p->pos < p->len && p->s[p->pos] != ']'; p->pos++)
            if (p->s[p->pos] == '[') {
                int line, col;
                line_col(p, open, &line, &col);
                return perr(p, p->pos, "'[' inside the comment opened at line %d col %d (comments do not nest)", line, col);
            }
        if (p->pos == p->len) return perr(p, open, "comment '[' never closed by ']'");
        p->pos++;
    }
}

// A label at p->pos, quoted or not, into *out (malloc'd; NULL when there is none or it is empty).
static fb_status read_label(parser *p, char **out) {
    *out = NULL;
    if (p->pos == p->len) return FB_OK;
    size_t start = p->pos;
    char *buf;
    size_t n = 0;
    if (p->s[start] != '\'') {
        while (p->pos < p->len && !is_delim((unsigned char)p->s[p->pos])) {
            unsigned char c = (unsigned char)p->s[p->pos];
            if (is_control(c)) return perr(p, p->pos, "control character (byte 0x%02x) in a label", c);
            p->pos++;
        }
        n = p->pos - start;
        if (n == 0) return FB_OK;
        if (!(buf = malloc(n + 1))) return fb_fail(FB_ERR_ALLOC, "%s: out of memory", p->source);
        memcpy(buf, p->s + start, n);
    } else {
        // The unquoted text is never longer than the quoted one.
        p->pos++;
        if (!(buf = malloc(p->len - start))) return fb_fail(FB_ERR_ALLOC, "%s: out of memory", p->source);
        for (;;) {
            if (p->pos == p->len) {
                free(buf);
                return perr(p, start, "quoted label never closed by a quote");
            }
            unsigned char c = (unsigned char)p->s[p->pos];
            if (c == '\'') {
                if (p->pos + 1 < p->len && p->s[p->pos + 1] == '\'') {   // '' is one quote
                    buf[n++] = '\'';
                    p->pos += 2;
                    continue;
                }
                p->pos++;
                break;
            }
            if (is_control(c)) {
                free(buf);
                return perr(p, p->pos, "control character (byte 0x%02x) in a label", c);
            }
            buf[n++] = (char)c;
            p->pos++;
        }
        if (n == 0) {
            free(buf);
            return FB_OK;
        }
    }
    buf[n] = '\0';
    *out = buf;
    return FB_OK;
}

// An optional ":<length>" for node i.
static fb_status read_length(parser *p, int i) {
    FB_TRY(skip_blank(p));
    if (p->pos == p->len || p->s[p->pos] != ':') return FB_OK;
    size_t colon = p->pos++;
    FB_TRY(skip_blank(p));
    size_t start = p->pos;
    while (p->pos < p->len && !is_delim((unsigned char)p->s[p->pos])) p->pos++;
    size_t n = p->pos - start;
    if (n == 0) return perr(p, colon, "':' without a branch length");
    char tok[64];
    if (n >= sizeof tok) return perr(p, start, "branch length '%.24s...' is not a number", p->s + start);
    memcpy(tok, p->s + start, n);
    tok[n] = '\0';
    if (memchr(tok, '\0', n)) return perr(p, start, "NUL byte in a branch length");
    char *end;
    double v = strtod(tok, &end);
    if (end != tok + n || !isfinite(v)) return perr(p, start, "branch length '%s' is not a finite number", tok);
    p->t->length[i] = v;
    return FB_OK;
}

// Label then length after a node (a tip, or an internal node after its ')').
static fb_status read_label_length(parser *p, int i) {
    FB_TRY(skip_blank(p));
    FB_TRY(read_label(p, &p->t->label[i]));
    return read_length(p, i);
}

// Where the innermost group still open (cur) started, for messages.
static fb_status unclosed(const parser *p, size_t at, int cur, const char *what) {
    int line, col;
    line_col(p, p->at[cur], &line, &col);
    return perr(p, at, "%s before the ')' closing the '(' at line %d col %d", what, line, col);
}

static fb_status parse(parser *p) {
    int cur = -1;   // the group collecting children; -1 at the top level
    char cb[16];
    static const char hdf5_signature[8] = "\x89HDF\r\n\x1a\n";   // a BIOM table given as the tree
    if (p->len >= 8 && memcmp(p->s, hdf5_signature, 8) == 0)
        return perr(p, 0, "an HDF5 file, not Newick text (table and tree swapped?)");
    for (;;) {
        // A subtree starts here: '(' opens a group, anything else is a tip (maybe unnamed).
        FB_TRY(skip_blank(p));
        if (p->pos == p->len) {
            if (p->t->n == 0) return perr(p, p->pos, "empty tree (no text before the end)");
            return unclosed(p, p->pos, cur, "unexpected end of text");
        }
        unsigned char c = (unsigned char)p->s[p->pos];
        int node;
        if (c == '(') {
            FB_TRY(add_node(p, cur, &node));
            p->pos++;
            cur = node;
            continue;
        }
        if (c == ';') {
            if (p->t->n == 0) return perr(p, p->pos, "empty tree (';' before any node)");
            return unclosed(p, p->pos, cur, "';'");
        }
        if (c == ']') return perr(p, p->pos, "unexpected ']' (no comment is open)");
        if (c == '\0') return perr(p, p->pos, "NUL byte in the text");
        FB_TRY(add_node(p, cur, &node));
        FB_TRY(read_label_length(p, node));

        // After a node: ',' (a sibling follows), ')' (the group closes), or ';' (the tree ends).
        for (;;) {
            FB_TRY(skip_blank(p));
            if (p->pos == p->len) {
                if (cur >= 0) return unclosed(p, p->pos, cur, "unexpected end of text");
                return perr(p, p->pos, "unexpected end of text: missing ';'");
            }
            c = (unsigned char)p->s[p->pos];
            if (c == ',') {
                if (cur < 0) return perr(p, p->pos, "',' outside parentheses (a tree has one root)");
                p->pos++;
                break;
            }
            if (c == ')') {
                if (cur < 0) return perr(p, p->pos, "unbalanced ')'");
                p->pos++;
                node = cur;
                cur = p->t->parent[cur];
                FB_TRY(read_label_length(p, node));
                continue;
            }
            if (c == ';') {
                if (cur >= 0) return unclosed(p, p->pos, cur, "';'");
                p->pos++;
                FB_TRY(skip_blank(p));
                if (p->pos < p->len) return perr(p, p->pos, "text after ';' (one tree per text)");
                // "'';" would be a tree no writer can give back (it writes ";").
                if (p->t->n == 1 && !p->t->label[0] && isnan(p->t->length[0]))
                    return perr(p, p->at[0], "empty tree (one node with neither label nor length)");
                return FB_OK;
            }
            if (c == '\0') return perr(p, p->pos, "NUL byte in the text");
            if (c == ':') return perr(p, p->pos, "a second ':' (one branch length per node)");
            if (c == '\'' || (!is_delim(c) && !is_control(c)))
                return perr(p, p->pos, "unexpected %s after a node (a label with blanks must be quoted)",
                            show_char(c, cb));
            return perr(p, p->pos, "unexpected %s after a node", show_char(c, cb));
        }
    }
}

fb_status fb_newick_parse(const char *text, size_t len, const char *source, fb_tree *t) {
    memset(t, 0, sizeof *t);
    parser p = {.s = text, .len = len, .source = source ? source : "<newick>", .t = t};
    fb_status st = parse(&p);
    free(p.at);
    if (st != FB_OK) {
        fb_tree_free(t);
        return st;
    }
    t->root = 0;
    return FB_OK;
}

fb_status fb_newick_read(const char *path, fb_tree *t) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) return fb_fail(FB_ERR_IO, "cannot open tree %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            return fb_fail(FB_ERR_ALLOC, "%s: out of memory reading %zu bytes", path, n);
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) free(buf);
        buf = bigger;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return fb_fail(FB_ERR_IO, "cannot read tree %s", path);
    }
    fb_status st = fb_newick_parse(buf, n, path, t);
    free(buf);
    return st;
}

// ---------------------------------------------------------------------------------------------
// Writing

static int needs_quotes(const char *s) {
    for (; *s; s++)
        if (is_delim((unsigned char)*s)) return 1;
    return 0;
}

static fb_status put_label(FILE *f, const char *dest, const fb_tree *t, int i) {
    const char *s = t->label[i];
    if (!s || !*s) return FB_OK;
    for (const char *c = s; *c; c++)
        if (is_control((unsigned char)*c)) {
            char buf[96];
            return fb_fail(FB_ERR_IO, "%s: label '%s' of node %d has a control character (byte 0x%02x)", dest,
                           fb_abbrev(s, buf, sizeof buf), i, (unsigned char)*c);
        }
    if (!needs_quotes(s)) {
        fputs(s, f);
        return FB_OK;
    }
    fputc('\'', f);
    for (const char *c = s; *c; c++) {
        if (*c == '\'') fputc('\'', f);
        fputc(*c, f);
    }
    fputc('\'', f);
    return FB_OK;
}

static fb_status put_length(FILE *f, const char *dest, const fb_tree *t, int i, int flags) {
    double v = t->length[i];
    if (isnan(v)) {
        if (flags & FB_NEWICK_ALL_LENGTHS) fputs(":0", f);
        return FB_OK;
    }
    if (!isfinite(v)) return fb_fail(FB_ERR_IO, "%s: node %d has an infinite branch length", dest, i);
    fprintf(f, ":%.17g", v);
    return FB_OK;
}

// Children of every node as CSR (first[i]..first[i+1] in kids), in increasing node index.
// Checks that parent[] describes one tree rooted at t->root.
static fb_status children(const fb_tree *t, const char *dest, int **first_out, int **kids_out) {
    int n = t->n;
    if (n <= 0 || t->root < 0 || t->root >= n || t->parent[t->root] != -1)
        return fb_fail(FB_ERR_IO, "%s: not a tree (%d nodes, root %d)", dest, n, t->root);
    int *first = calloc((size_t)n + 1, sizeof *first), *kids = malloc((size_t)n * sizeof *kids),
        *fill = malloc((size_t)n * sizeof *fill);
    if (!first || !kids || !fill) {
        free(first); free(kids); free(fill);
        return fb_fail(FB_ERR_ALLOC, "%s: out of memory for %d nodes", dest, n);
    }
    fb_status st = FB_OK;
    for (int i = 0; i < n && st == FB_OK; i++) {
        int p = t->parent[i];
        if (i == t->root) continue;
        if (p < 0 || p >= n || p == i) st = fb_fail(FB_ERR_IO, "%s: node %d has parent %d (not a tree)", dest, i, p);
        else first[p + 1]++;
    }
    for (int i = 0; i < n; i++) first[i + 1] += first[i];
    memcpy(fill, first, (size_t)n * sizeof *fill);
    for (int i = 0; i < n && st == FB_OK; i++)
        if (i != t->root) kids[fill[t->parent[i]]++] = i;
    free(fill);
    if (st != FB_OK) {
        free(first); free(kids);
        return st;
    }
    *first_out = first;
    *kids_out = kids;
    return FB_OK;
}

fb_status fb_newick_fprint(FILE *f, const char *dest, const fb_tree *t, int flags) {
    int *first = NULL, *kids = NULL;
    FB_TRY(children(t, dest, &first, &kids));
    // Iterative depth-first walk: stack of (node, next child). A node is entered once, so a
    // visit count below n means unreachable nodes (a cycle off the root).
    int n = t->n, *node = malloc((size_t)n * sizeof *node), *next = malloc((size_t)n * sizeof *next);
    fb_status st = FB_OK;
    if (!node || !next) st = fb_fail(FB_ERR_ALLOC, "%s: out of memory for %d nodes", dest, n);
    int depth = 0, visited = 0;
    if (st == FB_OK) {
        node[0] = t->root;
        next[0] = first[t->root];
        visited = 1;
        if (first[t->root] < first[t->root + 1]) fputc('(', f);
    }
    while (st == FB_OK && depth >= 0) {
        int i = node[depth];
        if (next[depth] < first[i + 1]) {           // descend into the next child
            if (next[depth] > first[i]) fputc(',', f);
            int c = kids[next[depth]++];
            if (++visited > n) break;
            depth++;
            node[depth] = c;
            next[depth] = first[c];
            if (first[c] < first[c + 1]) fputc('(', f);
            continue;
        }
        if (first[i] < first[i + 1]) fputc(')', f);   // all children written
        st = put_label(f, dest, t, i);
        if (st == FB_OK) st = put_length(f, dest, t, i, flags);
        depth--;
    }
    if (st == FB_OK && visited != n)
        st = fb_fail(FB_ERR_IO, "%s: %d of %d nodes reachable from the root (not a tree)", dest, visited, n);
    if (st == FB_OK) fputs(";\n", f);
    if (st == FB_OK && ferror(f)) st = fb_fail(FB_ERR_IO, "%s: write failed", dest);
    free(node); free(next); free(first); free(kids);
    return st;
}

fb_status fb_newick_write(const char *path, const fb_tree *t) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return fb_fail(FB_ERR_IO, "tree path too long: %s", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return fb_fail(FB_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    fb_status st = fb_newick_fprint(f, path, t, 0);
    if (fclose(f) != 0 && st == FB_OK) st = fb_fail(FB_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (st == FB_OK && rename(tmp, path) != 0)
        st = fb_fail(FB_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (st != FB_OK) remove(tmp);
    return st;
}

// ---------------------------------------------------------------------------------------------
// Tips and tables

fb_status fb_tree_tip_index(const fb_tree *t, const char *tree_source, fb_strindex **out) {
    *out = NULL;
    // A tip is a node that is nobody's parent.
    char *internal = calloc((size_t)(t->n > 0 ? t->n : 1), 1);
    fb_strindex *ix = fb_strindex_new(t->n);
    if (!internal || !ix) {
        free(internal);
        fb_strindex_free(ix);
        return fb_fail(FB_ERR_ALLOC, "%s: out of memory indexing %d nodes", tree_source, t->n);
    }
    for (int i = 0; i < t->n; i++)
        if (t->parent[i] >= 0 && t->parent[i] < t->n) internal[t->parent[i]] = 1;
    fb_status st = FB_OK;
    for (int i = 0; i < t->n && st == FB_OK; i++) {
        if (internal[i] || !t->label[i]) continue;
        int prev = fb_strindex_add(ix, t->label[i], i);
        char buf[96];
        if (prev == -2) st = fb_fail(FB_ERR_ALLOC, "%s: out of memory indexing %d nodes", tree_source, t->n);
        else if (prev >= 0)
            st = fb_fail(FB_ERR_IO, "tree %s: tip label '%s' appears twice (nodes %d and %d)", tree_source,
                         fb_abbrev(t->label[i], buf, sizeof buf), prev, i);
    }
    free(internal);
    if (st != FB_OK) {
        fb_strindex_free(ix);
        return st;
    }
    *out = ix;
    return FB_OK;
}

fb_status fb_tree_check_table(const fb_tree *t, const char *tree_source, const char *const *obs_ids, int n_obs,
                              const char *table_source) {
    fb_strindex *tips;
    FB_TRY(fb_tree_tip_index(t, tree_source, &tips));
    fb_status st = FB_OK;
    for (int i = 0; i < n_obs && st == FB_OK; i++)
        if (fb_strindex_find(tips, obs_ids[i]) < 0) {
            char buf[96];
            st = fb_fail(FB_ERR_IO, "table %s: observation '%s' is not a tip of tree %s", table_source,
                         fb_abbrev(obs_ids[i], buf, sizeof buf), tree_source);
        }
    fb_strindex_free(tips);
    return st;
}
