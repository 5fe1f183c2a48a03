// Metadata TSV reader and writer, lookups, categorical encoding (rules in metadata.h).
#include "metadata.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "strindex.h"

#define ID_COLUMN "sample_id"

// A growable array of owned strings.
typedef struct {
    char **s;
    size_t n, cap;
} strvec;

// Appends s (taking it); on failure frees s and returns 0.
static int strvec_push(strvec *v, char *s) {
    if (!s) return 0;
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        char **grown = realloc(v->s, cap * sizeof *grown);
        if (!grown) {
            free(s);
            return 0;
        }
        v->s = grown;
        v->cap = cap;
    }
    v->s[v->n++] = s;
    return 1;
}

static void strvec_free(strvec *v) {
    for (size_t i = 0; i < v->n; i++) free(v->s[i]);
    free(v->s);
    memset(v, 0, sizeof *v);
}

static fb_status oom(const char *path) { return fb_fail(FB_ERR_ALLOC, "%s: out of memory reading the metadata", path); }

// ---- Reading ----

// Appends the tab-separated fields of `line` (line end removed) to out. A field that starts with
// a double quote is quoted: "" inside is one quote, tabs inside are kept, the closing quote must
// end the field.
static fb_status split_fields(const char *path, int lineno, const char *line, strvec *out) {
    const char *p = line;
    for (int field = 1;; field++) {
        char *value;
        if (*p == '"') {
            value = malloc(strlen(p) + 1);
            if (!value) return oom(path);
            size_t n = 0;
            for (p++;; p++) {
                if (*p == '\0') {
                    free(value);
                    return fb_fail(FB_ERR_IO, "%s line %d, field %d: unterminated quote (a quoted field cannot span lines)",
                                   path, lineno, field);
                }
                if (*p == '"' && p[1] != '"') break;
                if (*p == '"') p++;   // "" stands for one quote
                value[n++] = *p;
            }
            value[n] = '\0';
            p++;
            if (*p != '\t' && *p != '\0') {
                free(value);
                return fb_fail(FB_ERR_IO, "%s line %d, field %d: text after the closing quote", path, lineno, field);
            }
        } else {
            const size_t n = strcspn(p, "\t");
            value = strndup(p, n);
            p += n;
        }
        if (!strvec_push(out, value)) return oom(path);
        if (*p == '\0') return FB_OK;
        p++;   // the tab: another field follows, maybe empty
    }
}

// Strips surrounding blanks in place (column names: the source strips them).
static void strip(char *s) {
    size_t n = strlen(s), a = 0;
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    while (a < n && isspace((unsigned char)s[a])) a++;
    memmove(s, s + a, n - a);
    s[n - a] = '\0';
}

// The header's names checked: non-empty, distinct, one of them sample_id (its index in *id_col).
static fb_status check_header(const char *path, int lineno, const strvec *h, int *id_col) {
    *id_col = -1;
    for (size_t c = 0; c < h->n; c++) {
        if (!h->s[c][0]) return fb_fail(FB_ERR_IO, "%s line %d: header column %zu has no name", path, lineno, c + 1);
        for (size_t d = 0; d < c; d++)
            if (strcmp(h->s[c], h->s[d]) == 0)
                return fb_fail(FB_ERR_IO, "%s line %d: header names column '%s' twice (columns %zu and %zu)", path, lineno,
                               h->s[c], d + 1, c + 1);
        if (strcmp(h->s[c], ID_COLUMN) == 0) *id_col = (int)c;
    }
    if (*id_col >= 0) return FB_OK;
    static const char *const OTHER_ID_NAMES[] = {"#SampleID", "#Sample ID", "sample-id", "sampleid", "sample id", "id",
                                                 "sample_name", "#OTUID", "SampleID"};
    for (size_t c = 0; c < h->n; c++)
        for (size_t i = 0; i < sizeof OTHER_ID_NAMES / sizeof *OTHER_ID_NAMES; i++)
            if (strcmp(h->s[c], OTHER_ID_NAMES[i]) == 0)
                return fb_fail(FB_ERR_IO, "%s line %d: no '" ID_COLUMN "' column; column %zu is '%s': rename it to "
                               ID_COLUMN " (the source system requires that name)", path, lineno, c + 1, h->s[c]);
    return fb_fail(FB_ERR_IO, "%s line %d: no '" ID_COLUMN "' column in the header (%zu columns, the first '%s')", path,
                   lineno, h->n, h->n ? h->s[0] : "");
}

// The rows read so far (cells row-major, header.n per row) into m; takes the strings.
static fb_status build(const char *path, strvec *header, strvec *cells, int id_col, fb_metadata *m) {
    const int nf = (int)header->n, n = nf ? (int)(cells->n / (size_t)nf) : 0;
    m->n_samples = n;
    m->n_cols = nf - 1;
    m->sample_ids = calloc((size_t)n + 1, sizeof *m->sample_ids);
    m->col_names = calloc((size_t)nf, sizeof *m->col_names);
    m->values = calloc((size_t)nf, sizeof *m->values);
    if (!m->sample_ids || !m->col_names || !m->values) return oom(path);
    for (int c = 0, k = 0; c < nf; c++) {
        if (c == id_col) continue;
        if (!(m->values[k] = calloc((size_t)n + 1, sizeof **m->values))) return oom(path);
        m->col_names[k++] = header->s[c];
        header->s[c] = NULL;
    }
    for (int r = 0; r < n; r++)
        for (int c = 0, k = 0; c < nf; c++) {
            char **cell = &cells->s[(size_t)r * nf + c];
            if (c == id_col) m->sample_ids[r] = *cell;
            else m->values[k++][r] = *cell;
            *cell = NULL;
        }
    return FB_OK;
}

static fb_status read_file(const char *path, FILE *f, fb_metadata *m) {
    strvec header = {0}, cells = {0};
    int *lines = NULL;   // (rows) line number of each row, for duplicate messages
    size_t lines_cap = 0;
    fb_strindex *seen = fb_strindex_new(1024);
    char *line = NULL;
    size_t line_cap = 0;
    int lineno = 0, id_col = -1, rows = 0;
    fb_status st = seen ? FB_OK : oom(path);
    ssize_t len;
    while (st == FB_OK && (len = getline(&line, &line_cap, f)) >= 0) {
        lineno++;
        char *text = line;
        if (lineno == 1 && strncmp(text, "\xEF\xBB\xBF", 3) == 0) {   // UTF-8 byte-order mark
            text += 3;
            len -= 3;
        }
        if (len > 0 && text[len - 1] == '\n') text[--len] = '\0';
        if (len > 0 && text[len - 1] == '\r') text[--len] = '\0';
        if (len == 0) continue;   // blank line
        if ((size_t)len != strlen(text)) {
            st = fb_fail(FB_ERR_IO, "%s line %d: a NUL byte (is this a text file?)", path, lineno);
            break;
        }
        // pandas ends a line at a lone CR; a value cannot hold one either (fb_metadata_write could
        // not write it back): say so rather than guess which was meant.
        const char *cr = memchr(text, '\r', (size_t)len);
        if (cr) {
            st = fb_fail(FB_ERR_IO, "%s line %d col %d: a carriage return inside the line (old Mac line ends? "
                         "convert them to \\n)", path, lineno, (int)(cr - text) + 1);
            break;
        }
        if (!header.n) {
            st = split_fields(path, lineno, text, &header);
            for (size_t c = 0; c < header.n; c++) strip(header.s[c]);
            if (st == FB_OK) st = check_header(path, lineno, &header, &id_col);
            continue;
        }
        const size_t before = cells.n;
        st = split_fields(path, lineno, text, &cells);
        if (st != FB_OK) break;
        if (cells.n - before != header.n) {
            st = fb_fail(FB_ERR_IO, "%s line %d: %zu fields, header has %zu", path, lineno, cells.n - before, header.n);
            break;
        }
        const char *id = cells.s[before + (size_t)id_col];
        if (!id[0]) {
            st = fb_fail(FB_ERR_IO, "%s line %d: empty sample id", path, lineno);
            break;
        }
        if ((size_t)rows == lines_cap) {
            lines_cap = lines_cap ? 2 * lines_cap : 1024;
            int *grown = realloc(lines, lines_cap * sizeof *lines);
            if (!grown) {
                st = oom(path);
                break;
            }
            lines = grown;
        }
        lines[rows] = lineno;
        const int prev = fb_strindex_add(seen, id, rows);
        char buf[96];
        if (prev == -2) st = oom(path);
        else if (prev >= 0)
            st = fb_fail(FB_ERR_IO, "%s line %d: sample id '%s' already on line %d", path, lineno,
                         fb_abbrev(id, buf, sizeof buf), lines[prev]);
        rows++;
    }
    if (st == FB_OK && ferror(f)) st = fb_fail(FB_ERR_IO, "cannot read metadata %s: %s", path, strerror(errno));
    if (st == FB_OK && !header.n) st = fb_fail(FB_ERR_IO, "%s is empty (no header line)", path);
    if (st == FB_OK) st = build(path, &header, &cells, id_col, m);
    free(line);
    free(lines);
    fb_strindex_free(seen);
    strvec_free(&header);
    strvec_free(&cells);
    return st;
}

fb_status fb_metadata_read(const char *path, fb_metadata *m) {
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "r");
    if (!f) return fb_fail(FB_ERR_IO, "cannot open metadata %s: %s", path, strerror(errno));
    fb_status st = read_file(path, f, m);
    fclose(f);
    if (st != FB_OK) fb_metadata_free(m);
    return st;
}

// ---- Writing ----

static void put_field(FILE *f, const char *s) {
    if (!strpbrk(s, "\t\"")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

// What fb_metadata_read would not give back as it is.
static fb_status check_writable(const char *path, const fb_metadata *m) {
    const char *f = "fb_metadata_write";
    for (int c = 0; c < m->n_cols; c++) {
        const char *name = m->col_names[c];
        FB_REQUIRE(name && name[0] && !isspace((unsigned char)name[0]) && !isspace((unsigned char)name[strlen(name) - 1]),
                   FB_ERR_CONFIG, "%s(%s): column %d's name is NULL, empty or has surrounding blanks", f, path, c);
        FB_REQUIRE(!strpbrk(name, "\r\n") && strcmp(name, ID_COLUMN) != 0 && fb_metadata_find_column(m, name) == c,
                   FB_ERR_CONFIG, "%s(%s): column name '%s' holds a line break, is '" ID_COLUMN "' or is repeated", f,
                   path, name);
    }
    for (int r = 0; r < m->n_samples; r++) {
        FB_REQUIRE(m->sample_ids[r] && m->sample_ids[r][0] && !strpbrk(m->sample_ids[r], "\r\n"), FB_ERR_CONFIG,
                   "%s(%s): sample %d's id is NULL, empty or holds a line break", f, path, r);
        for (int c = 0; c < m->n_cols; c++)
            FB_REQUIRE(m->values[c][r] && !strpbrk(m->values[c][r], "\r\n"), FB_ERR_CONFIG,
                       "%s(%s): the value of sample '%s', column '%s' is NULL or holds a line break", f, path,
                       m->sample_ids[r], m->col_names[c]);
    }
    fb_strindex *ix;
    fb_status st = fb_strindex_build((const char *const *)m->sample_ids, m->n_samples, "sample id", path, &ix);
    fb_strindex_free(ix);
    return st == FB_OK || st == FB_ERR_ALLOC ? st : FB_ERR_CONFIG;
}

fb_status fb_metadata_write(const char *path, const fb_metadata *m) {
    FB_TRY(check_writable(path, m));
    char tmp[4096];
    FB_REQUIRE(strlen(path) + 5 <= sizeof tmp, FB_ERR_IO, "metadata path %s is too long", path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return fb_fail(FB_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    fputs(ID_COLUMN, f);
    for (int c = 0; c < m->n_cols; c++) {
        fputc('\t', f);
        put_field(f, m->col_names[c]);
    }
    fputc('\n', f);
    for (int r = 0; r < m->n_samples; r++) {
        put_field(f, m->sample_ids[r]);
        for (int c = 0; c < m->n_cols; c++) {
            fputc('\t', f);
            put_field(f, m->values[c][r]);
        }
        fputc('\n', f);
    }
    const int failed = ferror(f);
    if (fclose(f) != 0 || failed) {
        const int e = errno;
        unlink(tmp);
        return fb_fail(FB_ERR_IO, "writing %s failed: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        const int e = errno;
        unlink(tmp);
        return fb_fail(FB_ERR_IO, "renaming %s to %s failed: %s", tmp, path, strerror(e));
    }
    return FB_OK;
}

// ---- Lookups ----

int fb_metadata_find_column(const fb_metadata *m, const char *name) {
    for (int c = 0; c < m->n_cols; c++)
        if (strcmp(m->col_names[c], name) == 0) return c;
    return -1;
}

int fb_metadata_find_sample(const fb_metadata *m, const char *id) {
    for (int r = 0; r < m->n_samples; r++)
        if (strcmp(m->sample_ids[r], id) == 0) return r;
    return -1;
}

fb_status fb_metadata_match(const fb_metadata *m, const char *const *ids, int n, int *rows) {
    fb_strindex *ix;
    FB_TRY(fb_strindex_build((const char *const *)m->sample_ids, m->n_samples, "sample id", "metadata", &ix));
    for (int i = 0; i < n; i++) rows[i] = fb_strindex_find(ix, ids[i]);
    fb_strindex_free(ix);
    return FB_OK;
}

// ---- Encoding ----

int fb_metadata_is_missing(const char *v) {
    static const char *const NA[] = {"", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "None", "NULL", "null", "<NA>",
                                     "#N/A", "#N/A N/A", "#NA", "1.#IND", "-1.#IND", "1.#QNAN", "-1.#QNAN"};
    for (size_t i = 0; i < sizeof NA / sizeof *NA; i++)
        if (strcmp(v, NA[i]) == 0) return 1;
    return 0;
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

fb_status fb_metadata_encode_fit(const fb_metadata *m, int col, const int *fit_rows, int n_fit, int *codes,
                                 int *cardinality, char ***categories) {
    FB_REQUIRE(col >= 0 && col < m->n_cols, FB_ERR_CONFIG, "metadata encoding: column %d is outside [0, %d)", col,
               m->n_cols);
    if (!fit_rows) n_fit = m->n_samples;
    FB_REQUIRE(n_fit >= 0, FB_ERR_CONFIG, "metadata encoding: %d rows to fit", n_fit);
    char *const *v = m->values[col];
    const char **cat = malloc(((size_t)n_fit + 1) * sizeof *cat);   // borrowed from m
    FB_REQUIRE(cat, FB_ERR_ALLOC, "metadata encoding: out of memory");
    int k = 0;
    for (int i = 0; i < n_fit; i++) {
        const int r = fit_rows ? fit_rows[i] : i;
        if (r < 0 || r >= m->n_samples) {
            free(cat);
            return fb_fail(FB_ERR_CONFIG, "metadata encoding: fit row %d is outside the %d samples", r, m->n_samples);
        }
        if (!fb_metadata_is_missing(v[r])) cat[k++] = v[r];
    }
    qsort(cat, (size_t)k, sizeof *cat, str_cmp);
    int K = 0;
    for (int i = 0; i < k; i++)
        if (K == 0 || strcmp(cat[i], cat[K - 1]) != 0) cat[K++] = cat[i];
    for (int r = 0; r < m->n_samples; r++) {
        const char **hit = fb_metadata_is_missing(v[r]) ? NULL : bsearch(&v[r], cat, (size_t)K, sizeof *cat, str_cmp);
        codes[r] = hit ? (int)(hit - cat) + 1 : 0;
    }
    *cardinality = K;
    fb_status st = FB_OK;
    if (categories) {
        *categories = calloc((size_t)K + 1, sizeof **categories);
        for (int i = 0; *categories && i < K; i++)
            if (!((*categories)[i] = strdup(cat[i]))) {
                for (int j = 0; j < i; j++) free((*categories)[j]);
                free(*categories);
                *categories = NULL;
            }
        if (!*categories) st = fb_fail(FB_ERR_ALLOC, "metadata encoding: out of memory");
    }
    free(cat);
    return st;
}

fb_status fb_metadata_encode(const fb_metadata *m, int col, int *codes, int *cardinality, char ***categories) {
    return fb_metadata_encode_fit(m, col, NULL, 0, codes, cardinality, categories);
}

static int by_name(const void *a, const void *b, void *md) {
    char *const *names = ((const fb_metadata *)md)->col_names;
    return strcmp(names[*(const int *)a], names[*(const int *)b]);
}

fb_status fb_metadata_model_columns(const fb_metadata *m, const char *const *names, int n_names, int *cols) {
    if (!names) n_names = m->n_cols;
    for (int i = 0; i < n_names; i++) {
        cols[i] = names ? fb_metadata_find_column(m, names[i]) : i;
        if (cols[i] < 0) {
            char list[256] = "";
            for (int c = 0, n = 0; c < m->n_cols && (size_t)n < sizeof list; c++)
                n += snprintf(list + n, sizeof list - (size_t)n, "%s%s", c ? ", " : "", m->col_names[c]);
            return fb_fail(FB_ERR_CONFIG, "metadata has no column '%s' (columns: %s)", names[i], list);
        }
        for (int j = 0; j < i; j++)
            FB_REQUIRE(cols[j] != cols[i], FB_ERR_CONFIG, "metadata column '%s' is asked for twice", names[i]);
    }
    qsort_r(cols, (size_t)n_names, sizeof *cols, by_name, (void *)m);
    return FB_OK;
}
