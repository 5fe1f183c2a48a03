// Shared test machinery: PyTorch fixtures (HDF5), error metrics, finite differences, thread runs.
//
// Error metric (used everywhere and printed by every check): the max-norm relative error
//     err = max_i |got_i - want_i| / max_i |want_i|
// (absolute when max |want| < ZERO_REFERENCE: a gradient that is zero in exact arithmetic)
// i.e. the worst element's error relative to the tensor's scale. A per-element relative error is
// not used because entries that cross zero make it meaningless for float32 sums of many terms.
// Fixture references are computed by PyTorch in float64 from the float32 inputs, so `err` measures
// our float32 kernel against the exact result, not against another float32 rounding.
#pragma once
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <hdf5.h>
#include "../harness/model.h"

// Tolerances from the foundation issue.
#define TOL_TORCH 1e-5
#define TOL_TORCH_ATTENTION 1e-4
// Below this max |want| a reference tensor counts as exactly zero and max_rel_err is absolute.
#define ZERO_REFERENCE 1e-10

typedef struct { hid_t file, group; char label[192]; } fixture;

// Opens tests/fixtures/<file>.h5 and its group <case_name>; fails the test when missing.
void fixture_open(fixture *f, const char *file, const char *case_name);
void fixture_close(fixture *f);
int fixture_has(const fixture *f, const char *name);
float *fixture_floats(const fixture *f, const char *name, size_t *n);    // malloc'd copy
// Copies dataset `name` (n values, else the test fails naming both counts) into dst.
void fixture_load(const fixture *f, const char *name, float *dst, size_t n);
double *fixture_doubles(const fixture *f, const char *name, size_t *n);  // malloc'd copy
int fixture_int(const fixture *f, const char *attr);
double fixture_double_attr(const fixture *f, const char *attr);
int fixture_has_attr(const fixture *f, const char *attr);
// Copies a string attribute into buf (fails the test when missing).
void fixture_string_attr(const fixture *f, const char *attr, char *buf, size_t size);

double max_rel_err(const float *got, const double *want, size_t n);
// Compares `got` with the fixture dataset `name`; prints the error and records the worst one per
// block for the summary ("worst <block> <err>"). Returns the error; fails the test above `tol`.
double check_against(const fixture *f, const char *name, const float *got, size_t n, double tol);

// Finite differences. `loss` runs the forward pass and returns sum_i probe_i * out_i in double.
typedef double (*fd_loss_fn)(void *ctx);
typedef struct { const char *name; float *x; size_t n; const float *grad; } fd_var;
// Central differences with step h on `samples` coordinates of each variable (spread evenly);
// error relative to max |grad| of that variable. Returns the worst error and fails above tol.
double fd_check(const char *block, fd_loss_fn loss, void *ctx, fd_var *vars, int nvars,
                float h, int samples, double tol);

// Deterministic test data in [-scale, scale] (not the kernels' RNG, so tests stay independent).
void fill_uniform(float *x, size_t n, uint64_t seed, float scale);
float *alloc_floats(size_t n);   // zeroed, fails the test on OOM
void set_threads(int n);         // OpenMP and OpenBLAS thread count
int bitwise_equal(const float *a, const float *b, size_t n);
// A fresh scratch folder $TMPDIR/fb_<name>_XXXXXX written into dir (size bytes); 0, or -1.
int tmpdir_make(char *dir, size_t size, const char *name);
// Removes it and everything in it, or keeps it (and says where) when FB_KEEP_TMP is set; 0, or -1.
int tmpdir_remove(const char *dir);
// Row decomposition: a sub-batch holds rows src[0..rows) of a whole batch, row_size floats each.
// gather_rows copies them out of the whole; rows_differing counts the sub-batch's rows that are not
// bitwise the whole's (0: the part reproduces the whole run's rows).
void gather_rows(float *part, const float *whole, const int *src, int rows, size_t row_size);
int rows_differing(const float *part, const float *whole, const int *src, int rows, size_t row_size);
// One line for the worst-error table at the end of a test binary.
void report_worst(void);

// A scenario model under test, as the scenario and instrument tests drive it.
typedef struct {
    model m;
    fb_layout P, A;
    int B;                             // the model's c.B (after the scenario's defaults)
    float *x, *y, *out, *dout;         // (B, in_stride), (B, y_stride), (B, out_dim), (B, out_dim)
    double terms[MODEL_MAX_TERMS];
    model_batch b;                     // all B rows: first 0, step 0, evaluation mode
} model_run;
// Creates scenario s's model from c with layout canaries on, initialises the parameters from
// param_seed and fills x, y with the generator's samples 0 .. B-1. Returns model_create's status
// (nothing is left allocated when it fails: a test may expect a refusal).
fb_status model_run_create(model_run *r, const scenario *s, const model_config *c, uint64_t param_seed);
// x, y := the generator's samples first .. first + B - 1.
void model_run_samples(model_run *r, uint64_t first);
// Checks both layouts' canaries (the test fails on an overrun) and frees everything.
void model_run_destroy(model_run *r);
