// `fusebench kernels`: forward and backward time of every kernel-core block, its GFLOP/s, and the
// fraction of this machine's SGEMM ceiling (measured in the same run, at the same thread count)
// that it reaches.
//
// Phases (HPCG's shape): options → machine probe (clock, FMA peak, BLAS identity) → SGEMM ceiling
// per thread count → per block: set-up, per thread count warm-up + validation (every activation and
// gradient finite) + timed forward runs + timed backward runs → report (table, FOM lines, HDF5).
//
// Timing discipline (OSU's): warm-up runs are not timed; each timed region holds exactly one
// forward or one backward call; a backward run is preceded, outside its timer, by a forward run
// (so it reads fresh saved activations, as in training) and by zeroing every gradient (backward
// accumulates). Median, min and max over --reps runs; GFLOP/s = the block's FLOP count / median.
// Timings are warm-cache: the same buffers are reused run after run.
//
// A block is one line in `blocks[]`: {name, bound, description, setup, forward, backward, flops
// forward, flops backward, teardown}. Set-up declares the block's parameters (with gradients) into
// c->P and its activations (with gradients) into c->A; the harness allocates, initialises, zeroes
// and validates those layouts, so a block only names its tensors once. Fusion methods (next issue)
// become more lines of the same table.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "build_info.h"
#include "../io/h5out.h"
#include "../kernels/activations.h"
#include "../kernels/attention.h"
#include "../kernels/dropout.h"
#include "../kernels/encoder_layer.h"
#include "../kernels/ffn.h"
#include "../kernels/layernorm.h"
#include "../kernels/linear.h"
#include "../kernels/softmax.h"
#include "../kernels/fusion/fusion.h"
#include "cli.h"
#include "machine.h"

#define PROG "fusebench kernels"
#define SCHEMA "fusebench.kernels"
#define SCHEMA_VERSION 1
#define INIT_SEED 20240501u

// ---- Shapes ----

typedef struct {
    int B, S, T, D, E, H, F;
    double dropout;   // the dropout block's p, and every dropout inside attention / ffn / encoder_layer
    int norm_first;   // encoder_layer: 0 post-norm (torch's default), 1 pre-norm
    // Fusion methods (--methods): vector methods fuse a (VB, MD) with b (VB, E); sequence methods
    // a (SB, MS, MD) with b (SB, MT, E), E = the method's typical width in its source (or MD).
    int VB, SB, MS, MT, MD, ML;
} kshapes;

// ---- The block table ----

typedef struct bench_block bench_block;

typedef struct {
    const bench_block *block;
    const kshapes *s;
    fb_layout P;        // slot 0 parameters, slot 1 their gradients
    fb_layout A;        // slot 0 activations (inputs, outputs, saved values, dout), slot 1 their gradients
    void *self;         // the block's own struct: its pointer fields are bound by P and A
    int declare_failed; // a declaration failed (reason in fb_last_error)
    char shape[96];     // printed in the table: what runs, at which sizes
} bench_case;

struct bench_block {
    const char *name;
    const char *bound;   // "gemm": SGEMM does most of the work; "eltwise": element- or row-wise loops
    const char *what;    // for --help
    int arg;             // block-specific (the activation of the activation blocks)
    fb_status (*setup)(bench_case *c);
    fb_status (*forward)(bench_case *c);
    fb_status (*backward)(bench_case *c);
    double (*flops_fwd)(const bench_case *c);
    double (*flops_bwd)(const bench_case *c);
    void (*teardown)(bench_case *c);   // NULL: the harness frees the layouts and self
};

// Declares an activation `name` (and its gradient when g != NULL) in c->A.
static void act(bench_case *c, const char *name, int ndim, const int *dims, fb_init_kind init, float **a, float **g) {
    if (fb_layout_add(&c->A, "", name, ndim, dims, init, init == FB_INIT_NORMAL ? 1.0f : 0.0f, a, g) < 0)
        c->declare_failed = 1;
}

// ---- Simple blocks: linear, layernorm, activations, softmax, dropout ----
// One struct serves them all; each block uses the fields it needs.

typedef struct {
    int N, C;                 // the block works on (N, C) matrices
    fb_activation act;
    linear_params lp, lg;
    layernorm_params np, ng;
    fb_rng_key key;
    float *x, *dx;            // input (N, C) and its gradient
    float *y;                 // output (N, OC)
    float *dy;                // gradient arriving from above (N, OC): a fixed random tensor
    float *mean, *rstd;       // layernorm's saved statistics (N)
} simple_block;

static simple_block *simple_new(bench_case *c, int N, int C, int OC) {
    simple_block *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    c->self = b;
    b->N = N;
    b->C = C;
    act(c, "x", 2, (int[]){ N, C }, FB_INIT_NORMAL, &b->x, &b->dx);
    act(c, "y", 2, (int[]){ N, OC }, FB_INIT_ZERO, &b->y, NULL);
    act(c, "dy", 2, (int[]){ N, OC }, FB_INIT_NORMAL, &b->dy, NULL);
    return b;
}

#define SIMPLE(c) ((simple_block *)(c)->self)

// linear: (N, D) -> (N, D) with bias, N = B·S.
static fb_status linear_setup(bench_case *c) {
    int N = c->s->B * c->s->S, D = c->s->D;
    simple_block *b = simple_new(c, N, D, D);
    if (!b) return fb_fail(FB_ERR_ALLOC, "linear block");
    if (linear_declare(&c->P, "linear", D, D, 1, &b->lp, &b->lg) < 0) c->declare_failed = 1;
    snprintf(c->shape, sizeof c->shape, "(%d,%d)x(%d,%d)^T", N, D, D, D);
    return FB_OK;
}
static fb_status linear_fwd(bench_case *c) {
    simple_block *b = SIMPLE(c);
    return linear_forward(b->y, b->x, &b->lp, b->N, b->C, b->C);
}
static fb_status linear_bwd(bench_case *c) {
    simple_block *b = SIMPLE(c);
    return linear_backward(b->dx, &b->lg, b->dy, b->x, &b->lp, b->N, b->C, b->C);
}
static double linear_ff(const bench_case *c) { return linear_flops_forward(SIMPLE(c)->N, SIMPLE(c)->C, SIMPLE(c)->C, 1); }
static double linear_fb(const bench_case *c) {
    return linear_flops_backward(SIMPLE(c)->N, SIMPLE(c)->C, SIMPLE(c)->C, 1, 1);
}

// layernorm: (N, D), affine, eps 1e-5.
static fb_status layernorm_setup(bench_case *c) {
    int N = c->s->B * c->s->S, D = c->s->D;
    simple_block *b = simple_new(c, N, D, D);
    if (!b) return fb_fail(FB_ERR_ALLOC, "layernorm block");
    if (layernorm_declare(&c->P, "layernorm", D, &b->np, &b->ng) < 0) c->declare_failed = 1;
    act(c, "mean", 1, (int[]){ N }, FB_INIT_ZERO, &b->mean, NULL);
    act(c, "rstd", 1, (int[]){ N }, FB_INIT_ZERO, &b->rstd, NULL);
    snprintf(c->shape, sizeof c->shape, "(%d,%d)", N, D);
    return FB_OK;
}
static fb_status layernorm_fwd(bench_case *c) {
    simple_block *b = SIMPLE(c);
    return layernorm_forward(b->y, b->mean, b->rstd, b->x, &b->np, b->N, b->C, 1e-5f);
}
static fb_status layernorm_bwd(bench_case *c) {
    simple_block *b = SIMPLE(c);
    return layernorm_backward(b->dx, &b->ng, b->dy, b->x, b->mean, b->rstd, &b->np, b->N, b->C);
}
static double layernorm_ff(const bench_case *c) { return layernorm_flops_forward(SIMPLE(c)->N, SIMPLE(c)->C); }
static double layernorm_fb(const bench_case *c) { return layernorm_flops_backward(SIMPLE(c)->N, SIMPLE(c)->C); }

// gelu / relu / sigmoid / tanh: element-wise on (N, D).
static fb_status activation_setup(bench_case *c) {
    int N = c->s->B * c->s->S, D = c->s->D;
    simple_block *b = simple_new(c, N, D, D);
    if (!b) return fb_fail(FB_ERR_ALLOC, "activation block");
    b->act = (fb_activation)c->block->arg;
    snprintf(c->shape, sizeof c->shape, "(%d,%d)", N, D);
    return FB_OK;
}
static fb_status activation_fwd(bench_case *c) {
    simple_block *b = SIMPLE(c);
    return activation_forward(b->act, b->y, b->x, (size_t)b->N * b->C);
}
static fb_status activation_bwd(bench_case *c) {
    simple_block *b = SIMPLE(c);
    return activation_backward(b->act, b->dx, b->dy, b->x, b->y, (size_t)b->N * b->C);
}
static double activation_ff(const bench_case *c) {
    return activation_flops_forward(SIMPLE(c)->act, (size_t)SIMPLE(c)->N * SIMPLE(c)->C);
}
static double activation_fb(const bench_case *c) {
    return activation_flops_backward(SIMPLE(c)->act, (size_t)SIMPLE(c)->N * SIMPLE(c)->C);
}

// softmax: the attention scores' softmax, rows B·H·S of length T.
static fb_status softmax_setup(bench_case *c) {
    int N = c->s->B * c->s->H * c->s->S, T = c->s->T;
    simple_block *b = simple_new(c, N, T, T);
    if (!b) return fb_fail(FB_ERR_ALLOC, "softmax block");
    snprintf(c->shape, sizeof c->shape, "(%d,%d)", N, T);
    return FB_OK;
}
static fb_status softmax_fwd(bench_case *c) {
    simple_block *b = SIMPLE(c);
    return softmax_forward(b->y, b->x, b->N, b->C);
}
static fb_status softmax_bwd(bench_case *c) {
    simple_block *b = SIMPLE(c);
    return softmax_backward(b->dx, b->dy, b->y, b->N, b->C);
}
static double softmax_ff(const bench_case *c) { return softmax_flops_forward(SIMPLE(c)->N, SIMPLE(c)->C); }
static double softmax_fb(const bench_case *c) { return softmax_flops_backward(SIMPLE(c)->N, SIMPLE(c)->C); }

// dropout: (N, D) at --dropout p, training mode. dropout.h has no FLOP count; we count the one
// multiply per element (the Philox integer work that decides the mask is not floating point).
static fb_status dropout_setup(bench_case *c) {
    int N = c->s->B * c->s->S, D = c->s->D;
    simple_block *b = simple_new(c, N, D, D);
    if (!b) return fb_fail(FB_ERR_ALLOC, "dropout block");
    b->key = (fb_rng_key){ .seed = INIT_SEED, .step = 1, .site = 1 };
    snprintf(c->shape, sizeof c->shape, "(%d,%d) p=%g", N, D, c->s->dropout);
    return FB_OK;
}
static fb_status dropout_fwd(bench_case *c) {
    simple_block *b = SIMPLE(c);
    return dropout_forward(b->y, b->x, (size_t)b->N * b->C, (float)c->s->dropout, &b->key, 0, 1);
}
static fb_status dropout_bwd(bench_case *c) {
    simple_block *b = SIMPLE(c);
    return dropout_backward(b->dx, b->dy, (size_t)b->N * b->C, (float)c->s->dropout, &b->key, 0, 1);
}
static double dropout_flops(const bench_case *c) { return (double)SIMPLE(c)->N * SIMPLE(c)->C; }

// ---- Composite blocks: attention, ffn, encoder_layer ----
// They run in training mode with dropout p = --dropout (0.1 in every source system) and GELU (the
// activation all three source systems use), without padding masks, without returning attention
// weights (as inside nn.TransformerEncoderLayer).

typedef struct {
    int B, S, T, E;
    fb_rng_key key;
    mha_config mc;
    mha_params mp, mg;
    mha_acts ma, mda;
    ffn_config fc;
    ffn_params fp, fg;
    ffn_acts fa, fda;
    encoder_layer_config ec;
    encoder_layer_params ep, eg;
    encoder_layer_acts ea, eda;
    float *x, *dx;      // (B, S, D) input (the query for attention)
    float *kv, *dkv;    // (B, T, E) key = value of cross-attention
    float *y, *dy;      // (B, S, D) output and the gradient arriving from above
} composite_block;

#define COMP(c) ((composite_block *)(c)->self)

static composite_block *composite_new(bench_case *c) {
    composite_block *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    c->self = b;
    const kshapes *s = c->s;
    b->B = s->B;
    b->S = s->S;
    b->T = s->T;
    b->E = s->E;
    b->key = (fb_rng_key){ .seed = INIT_SEED, .step = 1, .site = 0 };
    act(c, "x", 3, (int[]){ s->B, s->S, s->D }, FB_INIT_NORMAL, &b->x, &b->dx);
    act(c, "y", 3, (int[]){ s->B, s->S, s->D }, FB_INIT_ZERO, &b->y, NULL);
    act(c, "dy", 3, (int[]){ s->B, s->S, s->D }, FB_INIT_NORMAL, &b->dy, NULL);
    return b;
}

// attention: self-attention over (B,S,D); attention_cross: queries (B,S,D), key = value (B,T,E).
static fb_status attention_setup(bench_case *c) {
    const kshapes *s = c->s;
    int cross = c->block->arg;
    composite_block *b = composite_new(c);
    if (!b) return fb_fail(FB_ERR_ALLOC, "attention block");
    if (!cross) b->T = s->S, b->E = s->D;
    b->mc = (mha_config){ .D = s->D, .Ek = b->E, .Ev = b->E, .H = s->H, .dropout = (float)s->dropout };
    FB_TRY(mha_check_config(&b->mc));
    if (cross) act(c, "kv", 3, (int[]){ s->B, b->T, b->E }, FB_INIT_NORMAL, &b->kv, &b->dkv);
    if (mha_declare(&c->P, "attn", &b->mc, &b->mp, &b->mg) < 0) c->declare_failed = 1;
    if (mha_declare_acts(&c->A, "attn", &b->mc, s->B, s->S, b->T, &b->ma, &b->mda) < 0) c->declare_failed = 1;
    if (cross)
        snprintf(c->shape, sizeof c->shape, "q(%d,%d,%d) kv(%d,%d) H=%d", s->B, s->S, s->D, b->T, b->E, s->H);
    else
        snprintf(c->shape, sizeof c->shape, "(%d,%d,%d) H=%d", s->B, s->S, s->D, s->H);
    return FB_OK;
}
static fb_status attention_fwd(bench_case *c) {
    composite_block *b = COMP(c);
    const float *kv = b->kv ? b->kv : b->x;
    return mha_forward(b->y, NULL, &b->ma, b->x, kv, kv, NULL, &b->mp, &b->mc, b->B, b->S, b->T, b->E, b->E, 1, &b->key);
}
static fb_status attention_bwd(bench_case *c) {
    composite_block *b = COMP(c);
    const float *kv = b->kv ? b->kv : b->x;
    float *dkv = b->kv ? b->dkv : b->dx;
    return mha_backward(b->dx, dkv, dkv, &b->mg, &b->mda, b->dy, b->x, kv, kv, &b->ma, &b->mp, &b->mc, b->B, b->S,
                        b->T, b->E, b->E, 1, &b->key);
}
static double attention_ff(const bench_case *c) {
    return mha_flops_forward(&COMP(c)->mc, COMP(c)->B, COMP(c)->S, COMP(c)->T);
}
static double attention_fb(const bench_case *c) {
    return mha_flops_backward(&COMP(c)->mc, COMP(c)->B, COMP(c)->S, COMP(c)->T, 1);
}

// ffn: D -> F -> D on N = B*S rows, GELU, dropout between the linears.
static fb_status ffn_setup(bench_case *c) {
    const kshapes *s = c->s;
    composite_block *b = composite_new(c);
    if (!b) return fb_fail(FB_ERR_ALLOC, "ffn block");
    b->fc = (ffn_config){ .D = s->D, .F = s->F, .activation = FB_ACT_GELU, .dropout = (float)s->dropout };
    FB_TRY(ffn_check_config(&b->fc));
    if (ffn_declare(&c->P, "ffn", &b->fc, &b->fp, &b->fg) < 0) c->declare_failed = 1;
    if (ffn_declare_acts(&c->A, "ffn", &b->fc, s->B * s->S, &b->fa, &b->fda) < 0) c->declare_failed = 1;
    snprintf(c->shape, sizeof c->shape, "(%d,%d)->%d->%d gelu", s->B * s->S, s->D, s->F, s->D);
    return FB_OK;
}
static fb_status ffn_fwd(bench_case *c) {
    composite_block *b = COMP(c);
    return ffn_forward(b->y, &b->fa, b->x, &b->fp, &b->fc, b->B * b->S, 1, &b->key);
}
static fb_status ffn_bwd(bench_case *c) {
    composite_block *b = COMP(c);
    return ffn_backward(b->dx, &b->fg, &b->fda, b->dy, b->x, &b->fa, &b->fp, &b->fc, b->B * b->S, 1, &b->key);
}
static double ffn_ff(const bench_case *c) { return ffn_flops_forward(&COMP(c)->fc, COMP(c)->B * COMP(c)->S); }
static double ffn_fb(const bench_case *c) { return ffn_flops_backward(&COMP(c)->fc, COMP(c)->B * COMP(c)->S, 1); }

// encoder_layer: nn.TransformerEncoderLayer(D, H, F, dropout, gelu), post-norm unless --norm-first.
static fb_status encoder_setup(bench_case *c) {
    const kshapes *s = c->s;
    composite_block *b = composite_new(c);
    if (!b) return fb_fail(FB_ERR_ALLOC, "encoder_layer block");
    b->ec = (encoder_layer_config){ .D = s->D, .H = s->H, .F = s->F, .activation = FB_ACT_GELU,
                                    .dropout = (float)s->dropout, .norm_first = s->norm_first, .eps = 1e-5f, .site = 0 };
    FB_TRY(encoder_layer_check_config(&b->ec));
    if (encoder_layer_declare(&c->P, "enc", &b->ec, &b->ep, &b->eg) < 0) c->declare_failed = 1;
    if (encoder_layer_declare_acts(&c->A, "enc", &b->ec, s->B, s->S, &b->ea, &b->eda) < 0) c->declare_failed = 1;
    snprintf(c->shape, sizeof c->shape, "(%d,%d,%d) H=%d F=%d %s", s->B, s->S, s->D, s->H, s->F,
             s->norm_first ? "pre" : "post");
    return FB_OK;
}
static fb_status encoder_fwd(bench_case *c) {
    composite_block *b = COMP(c);
    return encoder_layer_forward(b->y, &b->ea, b->x, NULL, &b->ep, &b->ec, b->B, b->S, 1, &b->key);
}
static fb_status encoder_bwd(bench_case *c) {
    composite_block *b = COMP(c);
    return encoder_layer_backward(b->dx, &b->eg, &b->eda, b->dy, b->x, &b->ea, &b->ep, &b->ec, b->B, b->S, 1, &b->key);
}
static double encoder_ff(const bench_case *c) { return encoder_layer_flops_forward(&COMP(c)->ec, COMP(c)->B, COMP(c)->S); }
static double encoder_fb(const bench_case *c) {
    return encoder_layer_flops_backward(&COMP(c)->ec, COMP(c)->B, COMP(c)->S, 1);
}

// ---- Fusion methods: one generic entry per row of the method table (kernels/fusion) ----

typedef struct {
    fusion f;
    float *a, *da, *b, *db;    // inputs and their gradients
    float *out, *dout;         // output and the fixed random gradient arriving from above
} method_block;

#define METHOD(c) ((method_block *)(c)->self)

static fb_status method_setup(bench_case *c) {
    const fusion_method *m = fusion_methods[c->block->arg];
    const kshapes *s = c->s;
    int vector = m->kind == FUSION_VECTOR;
    int B = vector ? s->VB : s->SB, S = vector ? 1 : s->MS, T = vector ? 1 : s->MT, D = s->MD;
    int E = m->typical_E ? m->typical_E : D;
    method_block *b = calloc(1, sizeof *b);
    if (!b) return fb_fail(FB_ERR_ALLOC, "method state");
    c->self = b;
    fusion_config cfg = fusion_default_config(B, S, T, D, E);
    cfg.L = s->ML;
    cfg.dropout = (float)s->dropout;
    cfg.H = (D % s->H == 0) ? s->H : 1;
    FB_TRY(fusion_create(&b->f, m, &cfg, &c->P, &c->A));
    int rows_out = b->f.out_positions;
    act(c, "a", 3, (int[]){ B, S, D }, FB_INIT_NORMAL, &b->a, &b->da);
    act(c, "b", 3, (int[]){ B, T, E }, FB_INIT_NORMAL, &b->b, &b->db);
    act(c, "out", 3, (int[]){ B, rows_out, D }, FB_INIT_ZERO, &b->out, NULL);
    act(c, "dout", 3, (int[]){ B, rows_out, D }, FB_INIT_NORMAL, &b->dout, NULL);
    if (vector) snprintf(c->shape, sizeof c->shape, "a(%d,%d) b(%d,%d)", B, D, B, E);
    else snprintf(c->shape, sizeof c->shape, "a(%d,%d,%d) b(%d,%d,%d)", B, S, D, B, T, E);
    return FB_OK;
}
static fb_status method_fwd(bench_case *c) {
    method_block *b = METHOD(c);
    return fusion_forward(&b->f, b->out, b->a, b->b);
}
static fb_status method_bwd(bench_case *c) {
    method_block *b = METHOD(c);
    return fusion_backward(&b->f, b->da, b->db, b->dout, b->a, b->b);
}
static double method_ff(const bench_case *c) { return METHOD(c)->f.method->flops(&METHOD(c)->f, 0); }
static double method_fb(const bench_case *c) { return METHOD(c)->f.method->flops(&METHOD(c)->f, 1); }
static void method_teardown(bench_case *c) {
    if (c->self) fusion_destroy(&METHOD(c)->f);
}

// Rows of the method table as benchmark blocks (built once: the table is static).
static bench_block method_blocks[FUSION_METHOD_COUNT];
static void build_method_blocks(void) {
    for (int i = 0; i < FUSION_METHOD_COUNT; i++)
        method_blocks[i] = (bench_block){ fusion_methods[i]->name, "method", fusion_methods[i]->formula, i,
                                          method_setup, method_fwd, method_bwd, method_ff, method_fb,
                                          method_teardown };
}

static const bench_block blocks[] = {
    { "linear", "gemm", "(N,D)->(N,D) with bias, N = B*S", 0,
      linear_setup, linear_fwd, linear_bwd, linear_ff, linear_fb, NULL },
    { "layernorm", "eltwise", "LayerNorm over D of (N,D), affine", 0,
      layernorm_setup, layernorm_fwd, layernorm_bwd, layernorm_ff, layernorm_fb, NULL },
    { "gelu", "eltwise", "exact (erf) GELU on (N,D)", FB_ACT_GELU,
      activation_setup, activation_fwd, activation_bwd, activation_ff, activation_fb, NULL },
    { "relu", "eltwise", "ReLU on (N,D)", FB_ACT_RELU,
      activation_setup, activation_fwd, activation_bwd, activation_ff, activation_fb, NULL },
    { "sigmoid", "eltwise", "sigmoid on (N,D)", FB_ACT_SIGMOID,
      activation_setup, activation_fwd, activation_bwd, activation_ff, activation_fb, NULL },
    { "tanh", "eltwise", "tanh on (N,D)", FB_ACT_TANH,
      activation_setup, activation_fwd, activation_bwd, activation_ff, activation_fb, NULL },
    { "softmax", "eltwise", "row softmax of attention scores (B*H*S,T)", 0,
      softmax_setup, softmax_fwd, softmax_bwd, softmax_ff, softmax_fb, NULL },
    { "dropout", "eltwise", "inverted dropout on (N,D), Philox mask, p = --dropout", 0,
      dropout_setup, dropout_fwd, dropout_bwd, dropout_flops, dropout_flops, NULL },
    { "attention", "gemm", "multi-head self-attention on (B,S,D), H heads, dropout p", 0,
      attention_setup, attention_fwd, attention_bwd, attention_ff, attention_fb, NULL },
    { "attention_cross", "gemm", "cross-attention: queries (B,S,D), key = value (B,T,E)", 1,
      attention_setup, attention_fwd, attention_bwd, attention_ff, attention_fb, NULL },
    { "ffn", "gemm", "Linear(D,F), GELU, dropout p, Linear(F,D) on (N,D)", 0,
      ffn_setup, ffn_fwd, ffn_bwd, ffn_ff, ffn_fb, NULL },
    { "encoder_layer", "gemm", "TransformerEncoderLayer(D,H,F,p,gelu) on (B,S,D), post-norm (or --norm-first)", 0,
      encoder_setup, encoder_fwd, encoder_bwd, encoder_ff, encoder_fb, NULL },
};
#define NBLOCKS ((int)(sizeof blocks / sizeof blocks[0]))

// ---- Harness ----

static void case_free(bench_case *c) {
    if (c->block && c->block->teardown) c->block->teardown(c);
    fb_layout_free(&c->P);
    fb_layout_free(&c->A);
    free(c->self);
    c->self = NULL;
}

static fb_status case_setup(bench_case *c, const bench_block *blk, const kshapes *s) {
    memset(c, 0, sizeof *c);
    c->block = blk;
    c->s = s;
    fb_layout_init(&c->P, 2);
    fb_layout_init(&c->A, 2);
    fb_status st = blk->setup(c);
    if (st == FB_OK && c->declare_failed) st = FB_ERR_SHAPE;   // reason already in fb_last_error
    if (st == FB_OK) st = fb_layout_alloc(&c->P);
    if (st == FB_OK) st = fb_layout_alloc(&c->A);
    if (st == FB_OK) {
        fb_layout_initialize(&c->P, INIT_SEED);
        fb_layout_initialize(&c->A, INIT_SEED + 1);
    }
    return st;
}

static void zero_grads(bench_case *c) {
    fb_layout_zero(&c->P, 1);
    fb_layout_zero(&c->A, 1);
}

// Validation, after the warm-up and after the timed runs: every activation, every activation
// gradient and every parameter gradient is finite.
static fb_status check_finite(const bench_case *c) {
    const fb_layout *Ls[3] = { &c->A, &c->A, &c->P };
    const int slots[3] = { 0, 1, 1 };
    const char *role[3] = { "activation", "activation gradient", "parameter gradient" };
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < Ls[k]->count; i++) {
            const float *p = fb_layout_ptr(Ls[k], slots[k], i);
            size_t n = Ls[k]->tensors[i].numel;
            for (size_t j = 0; j < n; j++)
                if (!isfinite(p[j]))
                    return fb_fail(FB_ERR_NONFINITE, "%s: %s %s[%zu] = %g", c->block->name,
                                   role[k], Ls[k]->tensors[i].name, j, (double)p[j]);
        }
    return FB_OK;
}

typedef struct {
    const char *block, *bound, *pass;
    char shape[96];
    int threads, reps;
    fb_stats ms;
    double flops, gflops, ceiling_gflops, ceiling_pct, peak_pct;
} result_row;

typedef struct {
    kshapes s;
    fb_int_list threads;
    int reps, warmup, gemm_size, no_h5, small;
    const char *blocks, *methods, *out;
} kopts;

// Runs one block at one thread count: warm-up, validation, timed forward runs, timed backward
// runs, validation. Fills rows[0] (forward) and rows[1] (backward).
static fb_status run_block(bench_case *c, const kopts *o, int threads, double *times, result_row rows[2]) {
    const bench_block *b = c->block;
    fb_set_threads(threads);
    for (int w = 0; w < o->warmup; w++) {
        FB_TRY(b->forward(c));
        zero_grads(c);
        FB_TRY(b->backward(c));
    }
    if (o->warmup > 0) FB_TRY(check_finite(c));
    for (int r = 0; r < o->reps; r++) {
        double t0 = fb_now();
        fb_status st = b->forward(c);
        times[r] = (fb_now() - t0) * 1e3;
        FB_TRY(st);
    }
    rows[0].ms = fb_stats_of(times, o->reps);
    for (int r = 0; r < o->reps; r++) {
        FB_TRY(b->forward(c));
        zero_grads(c);
        double t0 = fb_now();
        fb_status st = b->backward(c);
        times[r] = (fb_now() - t0) * 1e3;
        FB_TRY(st);
    }
    rows[1].ms = fb_stats_of(times, o->reps);
    FB_TRY(check_finite(c));
    rows[0].flops = b->flops_fwd(c);
    rows[1].flops = b->flops_bwd(c);
    for (int k = 0; k < 2; k++) {
        rows[k].block = b->name;
        rows[k].bound = b->bound;
        rows[k].pass = k ? "bwd" : "fwd";
        snprintf(rows[k].shape, sizeof rows[k].shape, "%s", c->shape);
        rows[k].threads = threads;
        rows[k].reps = o->reps;
        rows[k].gflops = rows[k].flops / (rows[k].ms.median * 1e-3) * 1e-9;
    }
    return FB_OK;
}

// ---- Report ----

static const char *suggest_coretype(const fb_machine *m) {
    if (strstr(m->isa, "avx512f")) return "SkylakeX";
    if (strstr(m->isa, "avx2")) return "Haswell";
    return NULL;
}

// OpenBLAS kernel types older than AVX2 (a fallback when OpenBLAS misreads the CPU).
static int old_core(const char *core) {
    static const char *old[] = { "Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Sandybridge",
                                 "Atom", "Barcelona", "Bobcat", "Bulldozer", "Piledriver", "Katmai",
                                 "Coppermine", "Northwood", "Opteron", "Banias", "Generic" };
    for (size_t i = 0; i < sizeof old / sizeof old[0]; i++)
        if (strcasecmp(core, old[i]) == 0) return 1;
    return 0;
}

static void print_header(const fb_machine *m, const kopts *o, const fb_sgemm_ceiling *ceil, int nceil,
                         const char *date, char host[]) {
    const kshapes *s = &o->s;
    char threads[128];
    fb_int_list_format(&o->threads, threads, sizeof threads);
    printf("# fusebench kernels: forward/backward time of each kernel block vs this machine's SGEMM ceiling\n");
    printf("# build     %s, %s\n", fb_build_commit, fb_build_cflags);
    printf("# run       %s on %s; %s\n", date, host, fb_cli_command_line());
    printf("# cpu       %s: %d core%s (%d logical CPU%s allowed: %s), %s\n", m->cpu_model, m->cores,
           m->cores > 1 ? "s" : "", m->logical_cpus, m->logical_cpus > 1 ? "s" : "", m->cpus_allowed, m->isa);
    printf("# clock     %.2f GHz measured: %s\n", m->clock_ghz, m->clock_method);
    printf("# fp32 fma  %d FLOPs/cycle/core measured: %s\n", m->flops_per_cycle, m->fma_method);
    printf("# peak      FP32 %.1f GFLOP/s = %s (%.1f per core)\n", m->peak_gflops, m->peak_method, m->peak_gflops_core);
    printf("# blas      %s\n", m->blas_config);
    printf("# blas core %s (kernel type OpenBLAS chose; OPENBLAS_CORETYPE %s%s%s), %s threading, %s\n", m->blas_corename,
           m->openblas_coretype[0] ? "= '" : "unset", m->openblas_coretype, m->openblas_coretype[0] ? "'" : "",
           m->blas_parallel, m->blas_library);
    const char *pb = getenv("OMP_PROC_BIND"), *pl = getenv("OMP_PLACES");
    printf("# openmp    threads %s; OMP_PROC_BIND=%s OMP_PLACES=%s\n", threads, pb ? pb : "(unset)", pl ? pl : "(unset)");
    for (int i = 0; i < nceil; i++) {
        double pk = fb_machine_peak(m, ceil[i].threads);
        printf("# ceiling   SGEMM %d^3, %d thread%s: %.1f GFLOP/s median (min %.1f, max %.1f) = %.0f%% of the "
               "%.1f GFLOP/s peak\n",
               ceil[i].n, ceil[i].threads, ceil[i].threads > 1 ? "s" : "", ceil[i].median_gflops, ceil[i].min_gflops,
               ceil[i].max_gflops, 100.0 * ceil[i].median_gflops / pk, pk);
    }
    printf("# shapes    B=%d S=%d T=%d D=%d E=%d H=%d F=%d dropout=%g; N = B*S = %d\n", s->B, s->S, s->T, s->D, s->E, s->H,
           s->F, s->dropout, s->B * s->S);
    if (strcmp(o->methods, "none"))
        printf("# fusion    vector methods a (%d,%d); sequence methods a (%d,%d,%d), %d tokens of b; b's width is the\n"
               "#           method's width in its source system (fusebench list) or D; %d latents, H=%d, dropout=%g,\n"
               "#           training mode (routes sampled)\n",
               s->VB, s->MD, s->SB, s->MS, s->MD, s->MT, s->ML, s->H, s->dropout);
    printf("# timing    median of %d runs after %d warm-up runs (min, max shown); backward timed alone, after an\n"
           "#           untimed forward and gradient zeroing; GFLOP/s = FLOPs / median; %%ceil = GFLOP/s / SGEMM\n"
           "#           ceiling at the same thread count (meaningful for gemm-bound blocks)\n",
           o->reps, o->warmup);
    const char *sug = suggest_coretype(m);
    char low[256] = "";
    size_t used = 0;
    for (int i = 0; i < nceil; i++) {
        double pct = 100.0 * ceil[i].median_gflops / fb_machine_peak(m, ceil[i].threads);
        if (pct < 50.0 && used < sizeof low)
            used += (size_t)snprintf(low + used, sizeof low - used, "%s%.0f%% at %d thread%s", used ? ", " : "", pct,
                                     ceil[i].threads, ceil[i].threads > 1 ? "s" : "");
    }
    if (used)
        printf("# WARNING   SGEMM runs far below the theoretical peak (%s; < 50%%). The usual cause is\n"
               "#           OpenBLAS using kernels for an older CPU: it chose '%s' (Debian's OpenBLAS falls back\n"
               "#           to SSE3 'Prescott' inside a process that imported torch); set OPENBLAS_CORETYPE=%s.\n"
               "#           Other causes: other processes on these cores, more threads than cores.\n",
               low, m->blas_corename, sug ? sug : "<your CPU's type>");
    if (old_core(m->blas_corename) && sug)
        printf("# WARNING   OpenBLAS chose '%s' kernels on a CPU with %s: set OPENBLAS_CORETYPE=%s\n", m->blas_corename,
               m->isa, sug);
    for (int i = 0; i < o->threads.n; i++)
        if (o->threads.v[i] > m->cores)
            printf("# WARNING   %d threads on %d cores: oversubscribed, timings include time-sharing\n", o->threads.v[i],
                   m->cores);
}

static void print_table_head(void) {
    printf("\n%-16s %-7s %-28s %-4s %3s %10s %10s %10s %9s %6s\n", "block", "bound", "shape", "pass", "thr", "median_ms",
           "min_ms", "max_ms", "GFLOP/s", "%ceil");
}

static void print_row(const result_row *r) {
    printf("%-16s %-7s %-28s %-4s %3d %10.4f %10.4f %10.4f %9.2f %6.1f\n", r->block, r->bound, r->shape, r->pass,
           r->threads, r->ms.median, r->ms.min, r->ms.max, r->gflops, r->ceiling_pct);
    fflush(stdout);
}

// ---- HDF5 ----

static fb_status write_h5(const char *path, const fb_machine *m, const kopts *o, const fb_sgemm_ceiling *ceil,
                          int nceil, const result_row *rows, int nrows, const char *date, const char *host,
                          double background, double steal, double elapsed) {
    fb_h5 h;
    FB_TRY(fb_h5_create(&h, path));
    hid_t root = h.file;
    char buf[256];
    // Provenance.
    fb_h5_attr_string(&h, root, "schema", SCHEMA);
    fb_h5_attr_int(&h, root, "schema_version", SCHEMA_VERSION);
    fb_h5_attr_string(&h, root, "fusebench_commit", fb_build_commit);
#ifdef __clang__
    fb_h5_attr_string(&h, root, "compiler", "clang " __VERSION__ " (via mpicc)");
#else
    fb_h5_attr_string(&h, root, "compiler", "gcc " __VERSION__ " (via mpicc)");
#endif
    fb_h5_attr_string(&h, root, "cflags", fb_build_cflags);
    fb_h5_attr_string(&h, root, "host", host);
    fb_h5_attr_string(&h, root, "date", date);
    fb_h5_attr_string(&h, root, "command_line", fb_cli_command_line());
    fb_h5_attr_string(&h, root, "blas_config", m->blas_config);
    fb_h5_attr_string(&h, root, "blas_corename", m->blas_corename);
    fb_h5_attr_string(&h, root, "blas_library", m->blas_library);
    fb_h5_attr_string(&h, root, "blas_parallel", m->blas_parallel);
    fb_h5_attr_string(&h, root, "openblas_coretype", m->openblas_coretype);
    const char *envs[] = { "OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "OPENBLAS_NUM_THREADS", "SLURM_JOB_ID" };
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        const char *v = getenv(envs[i]);
        snprintf(buf, sizeof buf, "env_%s", envs[i]);
        fb_h5_attr_string(&h, root, buf, v ? v : "");
    }
    static const char *binds[] = { "false", "true", "master", "close", "spread" };
    int bind = (int)omp_get_proc_bind();
    fb_h5_attr_string(&h, root, "omp_proc_bind", bind >= 0 && bind < 5 ? binds[bind] : "unknown");
    fb_h5_attr_double(&h, root, "background_cores", background);
    fb_h5_attr_double(&h, root, "steal_cores", steal);
    fb_h5_attr_double(&h, root, "elapsed_s", elapsed);

    // Run configuration.
    hid_t g = fb_h5_group(&h, root, "config");
    if (g >= 0) {
        int64_t th[FB_LIST_MAX];
        for (int i = 0; i < o->threads.n; i++) th[i] = o->threads.v[i];
        fb_h5_attr_int_array(&h, g, "threads", th, (size_t)o->threads.n);
        fb_h5_attr_string(&h, g, "blocks", o->blocks);
        fb_h5_attr_int(&h, g, "reps", o->reps);
        fb_h5_attr_int(&h, g, "warmup", o->warmup);
        fb_h5_attr_int(&h, g, "gemm_size", o->gemm_size);
        const struct { const char *n; int v; } dims[] = { { "B", o->s.B }, { "S", o->s.S }, { "T", o->s.T }, { "D", o->s.D },
                                                          { "E", o->s.E }, { "H", o->s.H }, { "F", o->s.F } };
        for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) fb_h5_attr_int(&h, g, dims[i].n, dims[i].v);
        fb_h5_attr_double(&h, g, "dropout", o->s.dropout);
        fb_h5_attr_string(&h, g, "methods", o->methods);
        const struct { const char *n; int v; } fdims[] = { { "fusion_batch", o->s.VB }, { "fusion_seq_batch", o->s.SB },
                                                           { "fusion_seq", o->s.MS }, { "fusion_tokens", o->s.MT },
                                                           { "fusion_dim", o->s.MD }, { "latents", o->s.ML } };
        for (size_t i = 0; i < sizeof fdims / sizeof fdims[0]; i++) fb_h5_attr_int(&h, g, fdims[i].n, fdims[i].v);
        fb_h5_attr_int(&h, g, "norm_first", o->s.norm_first);
        fb_h5_attr_string(&h, g, "activation", "gelu");
        fb_h5_attr_int(&h, g, "training", 1);
        H5Gclose(g);
    }

    // Machine.
    g = fb_h5_group(&h, root, "machine");
    if (g >= 0) {
        fb_h5_attr_string(&h, g, "cpu_model", m->cpu_model);
        fb_h5_attr_int(&h, g, "logical_cpus", m->logical_cpus);
        fb_h5_attr_int(&h, g, "cores", m->cores);
        fb_h5_attr_string(&h, g, "cpus_allowed", m->cpus_allowed);
        fb_h5_attr_string(&h, g, "isa", m->isa);
        fb_h5_attr_double(&h, g, "reported_mhz", m->reported_mhz);
        fb_h5_attr_double(&h, g, "clock_ghz", m->clock_ghz);
        fb_h5_attr_string(&h, g, "clock_method", m->clock_method);
        fb_h5_attr_int(&h, g, "fma_vector_bits", m->fma_vector_bits);
        fb_h5_attr_double(&h, g, "fma_gflops_core", m->fma_gflops_core);
        fb_h5_attr_double(&h, g, "flops_per_cycle_measured", m->flops_per_cycle_measured);
        fb_h5_attr_int(&h, g, "flops_per_cycle", m->flops_per_cycle);
        fb_h5_attr_string(&h, g, "fma_method", m->fma_method);
        fb_h5_attr_double(&h, g, "peak_gflops_core", m->peak_gflops_core);
        fb_h5_attr_double(&h, g, "peak_gflops", m->peak_gflops);
        fb_h5_attr_string(&h, g, "peak_method", m->peak_method);
        H5Gclose(g);
    }

    // SGEMM ceiling, one row per thread count.
    {
        int64_t th[FB_LIST_MAX], n[FB_LIST_MAX], reps[FB_LIST_MAX];
        double med[FB_LIST_MAX], mn[FB_LIST_MAX], mx[FB_LIST_MAX], pk[FB_LIST_MAX], pct[FB_LIST_MAX];
        for (int i = 0; i < nceil; i++) {
            th[i] = ceil[i].threads; n[i] = ceil[i].n; reps[i] = ceil[i].reps;
            med[i] = ceil[i].median_gflops; mn[i] = ceil[i].min_gflops; mx[i] = ceil[i].max_gflops;
            pk[i] = fb_machine_peak(m, ceil[i].threads);
            pct[i] = 100.0 * med[i] / pk[i];
        }
        const fb_h5_column cols[] = {
            { "threads", FB_COL_I64, "1", "OpenMP = OpenBLAS threads" },
            { "n", FB_COL_I64, "1", "SGEMM size: C (n,n) = A (n,n) B (n,n)" },
            { "reps", FB_COL_I64, "1", "timed runs" },
            { "median_gflops", FB_COL_F64, "GFLOP/s", "2 n^3 / median time" },
            { "min_gflops", FB_COL_F64, "GFLOP/s", "2 n^3 / slowest run" },
            { "max_gflops", FB_COL_F64, "GFLOP/s", "2 n^3 / fastest run" },
            { "peak_gflops", FB_COL_F64, "GFLOP/s", "theoretical FP32 peak of min(threads, cores) cores" },
            { "peak_pct", FB_COL_F64, "%", "median_gflops / peak_gflops * 100" },
        };
        const void *data[] = { th, n, reps, med, mn, mx, pk, pct };
        fb_h5_write_table(&h, root, "ceiling", cols, (int)(sizeof cols / sizeof cols[0]), (size_t)nceil, data);
    }

    // Per block, pass and thread count.
    {
        size_t nr = (size_t)nrows;
        const char **blk = calloc(nr + 1, sizeof *blk), **bound = calloc(nr + 1, sizeof *bound),
                   **pass = calloc(nr + 1, sizeof *pass), **shape = calloc(nr + 1, sizeof *shape);
        int64_t *th = calloc(nr + 1, sizeof *th), *reps = calloc(nr + 1, sizeof *reps);
        double *v[9];
        for (int k = 0; k < 9; k++) v[k] = calloc(nr + 1, sizeof(double));
        int ok = blk && bound && pass && shape && th && reps;
        for (int k = 0; k < 9; k++) ok = ok && v[k];
        if (ok) {
            for (size_t i = 0; i < nr; i++) {
                const result_row *r = &rows[i];
                blk[i] = r->block; bound[i] = r->bound; pass[i] = r->pass; shape[i] = r->shape;
                th[i] = r->threads; reps[i] = r->reps;
                v[0][i] = r->ms.median; v[1][i] = r->ms.min; v[2][i] = r->ms.max; v[3][i] = r->ms.mean;
                v[4][i] = r->flops; v[5][i] = r->gflops; v[6][i] = r->ceiling_gflops; v[7][i] = r->ceiling_pct;
                v[8][i] = r->peak_pct;
            }
            const fb_h5_column cols[] = {
                { "block", FB_COL_STR, "", "block name (fusebench kernels --help lists them)" },
                { "bound", FB_COL_STR, "", "gemm: SGEMM does most of the work; eltwise: element- or row-wise loops" },
                { "shape", FB_COL_STR, "", "what runs, at which sizes" },
                { "pass", FB_COL_STR, "", "fwd or bwd" },
                { "threads", FB_COL_I64, "1", "OpenMP = OpenBLAS threads" },
                { "reps", FB_COL_I64, "1", "timed runs" },
                { "median_ms", FB_COL_F64, "ms", "median time of one call" },
                { "min_ms", FB_COL_F64, "ms", "fastest call" },
                { "max_ms", FB_COL_F64, "ms", "slowest call" },
                { "mean_ms", FB_COL_F64, "ms", "mean time of one call" },
                { "flops", FB_COL_F64, "FLOP", "floating-point operations of one call (multiply-add = 2)" },
                { "gflops", FB_COL_F64, "GFLOP/s", "flops / median time" },
                { "ceiling_gflops", FB_COL_F64, "GFLOP/s", "SGEMM ceiling at the same thread count" },
                { "ceiling_pct", FB_COL_F64, "%", "gflops / ceiling_gflops * 100" },
                { "peak_pct", FB_COL_F64, "%", "gflops / theoretical peak at the same thread count * 100" },
            };
            const void *data[] = { blk, bound, shape, pass, th, reps, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8] };
            fb_h5_write_table(&h, root, "blocks", cols, (int)(sizeof cols / sizeof cols[0]), nr, data);
        } else {
            h.failed = 1;
            fb_fail(FB_ERR_ALLOC, "result table of %zu rows", nr);
        }
        free(blk); free(bound); free(pass); free(shape); free(th); free(reps);
        for (int k = 0; k < 9; k++) free(v[k]);
    }
    return fb_h5_close(&h);
}

// ---- Options and main ----

static void print_help(const fb_option *opts, int nopts) {
    printf("usage: fusebench kernels [options]\n\n"
           "Times the forward and the backward pass of every kernel-core block at the given shapes and\n"
           "thread counts and compares each with this machine's own SGEMM, measured in the same run.\n"
           "The header reports the CPU, its measured clock and FP32 FMA rate, the theoretical peak\n"
           "(cores x clock x FLOPs/cycle), the BLAS library and the kernel type OpenBLAS chose, and the\n"
           "SGEMM ceiling per thread count; it warns when SGEMM runs below half the peak. Each block\n"
           "gets a table row per pass and thread count, and a greppable line\n"
           "  FOM kernels block=NAME pass=fwd|bwd threads=T ms=MEDIAN gflops=G ceiling_pct=P\n"
           "Results go to an HDF5 file (schema: results/README.md). Exit status: 0 ok, 1 a kernel\n"
           "failed or produced a non-finite value (message on stderr), 2 usage error.\n\n"
           "options:\n");
    fb_cli_print_options(stdout, opts, nopts);
    printf("\nblocks (N = B*S rows; 'gemm' blocks are SGEMM-bound; 'eltwise' blocks are element- or row-wise\n"
           "loops, bound by memory or by transcendental functions, so their %% of the SGEMM ceiling is low\n"
           "by nature):\n");
    for (int i = 0; i < NBLOCKS; i++) printf("  %-16s %-7s %s\n", blocks[i].name, blocks[i].bound, blocks[i].what);
    printf("\nThe defaults fit the source systems (transformer encoders of width 256 with 8 heads and a\n"
           "4x feed-forward over sequences of 64, batches of 32). Environment: OMP_PROC_BIND/OMP_PLACES\n"
           "are honoured and recorded; OPENBLAS_CORETYPE forces OpenBLAS's kernel type.\n");
}

// Parses a --blocks / --methods list ("all", "none" or names) against a table into a selection
// mask; 0 on success.
static int select_from(const char *flag, const char *list, const bench_block *table, int n, int *sel) {
    memset(sel, 0, (size_t)n * sizeof *sel);
    if (strcmp(list, "none") == 0 || !*list) return 0;
    if (strcmp(list, "all") == 0) {
        for (int i = 0; i < n; i++) sel[i] = 1;
        return 0;
    }
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int found = -1;
        for (int i = 0; i < n; i++)
            if (strcmp(tok, table[i].name) == 0) found = i;
        if (found < 0) {
            fprintf(stderr, PROG ": --%s: unknown name '%s'. Known: all,none", flag, tok);
            for (int i = 0; i < n; i++) fprintf(stderr, ",%s", table[i].name);
            fprintf(stderr, "\n");
            return -1;
        }
        sel[found] = 1;
    }
    return 0;
}

int bench_kernels_main(int argc, char **argv) {
    int cores = fb_physical_cores();
    kopts o = { .s = { .B = 32, .S = 64, .T = 64, .D = 256, .E = 256, .H = 8, .F = 1024, .dropout = 0.1,
                       .VB = 256, .SB = 16, .MS = 64, .MT = 8, .MD = 256, .ML = 32 },
                .reps = 20, .warmup = 3, .gemm_size = 1024, .blocks = NULL, .methods = "none" };
    o.threads.v[o.threads.n++] = 1;
    if (cores > 1) o.threads.v[o.threads.n++] = cores;
    const fb_option opts[] = {
        { "blocks", FB_OPT_STRING, &o.blocks, "LIST",
          "comma-separated blocks to run, 'all' or 'none' (list below)\n[default: all, or none when --methods is given]", 1, 0, 0 },
        { "methods", FB_OPT_STRING, &o.methods, "LIST",
          "fusion methods to run: comma-separated names, 'all' or 'none'\n(`fusebench list` shows them)", 1, 0, 0 },
        { "fusion-batch", FB_OPT_INT, &o.s.VB, "B", "batch of the vector methods: a (B,D), b (B,E)", 1, 1 << 20, 0 },
        { "fusion-seq-batch", FB_OPT_INT, &o.s.SB, "B", "batch of the sequence methods: a (B,S,D), b (B,T,E)", 1, 1 << 20, 0 },
        { "fusion-seq", FB_OPT_INT, &o.s.MS, "S", "sequence positions of the sequence methods", 1, 1 << 20, 0 },
        { "fusion-tokens", FB_OPT_INT, &o.s.MT, "T", "second-stream tokens of the sequence methods (metadata K)", 1, 1 << 20, 0 },
        { "fusion-dim", FB_OPT_INT, &o.s.MD, "D",
          "width D of the fusion methods (E = the method's width of b in its\nsource system, or D)", 1, 1 << 20, 0 },
        { "latents", FB_OPT_INT, &o.s.ML, "L", "perceiver latents", 1, 1 << 20, 0 },
        { "small", FB_OPT_FLAG, &o.small, NULL,
          "small fusion shapes, where framework overhead dominates: B = 32, D = 64,\nS = T = 16 (overrides the fusion-* sizes)", 1, 0, 0 },
        { "threads", FB_OPT_INT_LIST, &o.threads, "LIST",
          "thread counts to run, e.g. 1,2,4; 'all' = every physical core\n(OpenMP and OpenBLAS use the same count)", 1, 4096,
          cores },
        { "reps", FB_OPT_INT, &o.reps, "N", "timed runs per block, pass and thread count (median reported)", 1, 100000, 0 },
        { "warmup", FB_OPT_INT, &o.warmup, "N", "untimed runs before timing (forward + backward each)", 0, 100000, 0 },
        { "batch", FB_OPT_INT, &o.s.B, "B", "batch size", 1, 1 << 20, 0 },
        { "seq", FB_OPT_INT, &o.s.S, "S", "sequence (query) positions", 1, 1 << 20, 0 },
        { "tokens", FB_OPT_INT, &o.s.T, "T",
          "key/value tokens of the second stream (softmax row length,\ncross-attention keys)", 1, 1 << 20, 0 },
        { "dim", FB_OPT_INT, &o.s.D, "D", "model width", 1, 1 << 20, 0 },
        { "kdim", FB_OPT_INT, &o.s.E, "E", "width of the second stream (cross-attention kdim = vdim)", 1, 1 << 20, 0 },
        { "heads", FB_OPT_INT, &o.s.H, "H", "attention heads (must divide D)", 1, 4096, 0 },
        { "ffn", FB_OPT_INT, &o.s.F, "F", "feed-forward hidden width", 1, 1 << 20, 0 },
        { "dropout", FB_OPT_DOUBLE, &o.s.dropout, "P",
          "dropout probability of the dropout block and inside attention,\n"
          "ffn and encoder_layer (all run in training mode)", 0,
          0.999, 0 },
        { "norm-first", FB_OPT_FLAG, &o.s.norm_first, NULL, "encoder_layer is pre-norm (as in 003) instead of post-norm",
          1, 0, 0 },
        { "gemm-size", FB_OPT_INT, &o.gemm_size, "N", "SGEMM ceiling size: N x N x N, measured per thread count",
          16, 16384, 0 },
        { "out", FB_OPT_STRING, &o.out, "FILE", "HDF5 result file [default: results/kernels-YYYYmmdd-HHMMSS.h5]", 1, 0, 0 },
        { "no-h5", FB_OPT_FLAG, &o.no_h5, NULL, "do not write an HDF5 file", 1, 0, 0 },
    };
    const int nopts = (int)(sizeof opts / sizeof opts[0]);
    fb_cli_result pr = fb_cli_parse(PROG, opts, nopts, argc, argv, 1);
    if (pr == FB_CLI_HELP) { print_help(opts, nopts); return FB_EXIT_OK; }
    if (pr == FB_CLI_ERROR) return FB_EXIT_USAGE;
    if (o.small) { o.s.VB = o.s.SB = 32; o.s.MD = 64; o.s.MS = o.s.MT = 16; }
    if (!o.blocks) o.blocks = strcmp(o.methods, "none") ? "none" : "all";
    build_method_blocks();
    // Everything to run, kernel blocks first, then fusion methods.
    int selb[NBLOCKS], selm[FUSION_METHOD_COUNT];
    if (select_from("blocks", o.blocks, blocks, NBLOCKS, selb) != 0) return FB_EXIT_USAGE;
    if (select_from("methods", o.methods, method_blocks, FUSION_METHOD_COUNT, selm) != 0) return FB_EXIT_USAGE;
    const bench_block *todo[NBLOCKS + FUSION_METHOD_COUNT];
    int nsel = 0;
    for (int i = 0; i < NBLOCKS; i++) if (selb[i]) todo[nsel++] = &blocks[i];
    for (int i = 0; i < FUSION_METHOD_COUNT; i++) if (selm[i]) todo[nsel++] = &method_blocks[i];
    if (nsel == 0) {
        fprintf(stderr, PROG ": nothing to run (--blocks none and no --methods)\n");
        return FB_EXIT_USAGE;
    }
    if (o.s.D % o.s.H != 0) {
        fprintf(stderr, PROG ": --heads %d does not divide --dim %d\n", o.s.H, o.s.D);
        return FB_EXIT_USAGE;
    }
    char path[1100] = "";
    if (!o.no_h5) {
        if (o.out) snprintf(path, sizeof path, "%s", o.out);
        else if (fb_results_path(path, sizeof path, "kernels") != 0) return FB_EXIT_FAIL;
        // Fail now, not after the run, when the file cannot be written.
        char dir[1100];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        if (access(slash ? (dir[0] ? dir : "/") : ".", W_OK) != 0) {
            fprintf(stderr, PROG ": cannot write %s: folder '%s' does not exist or is not writable\n", path,
                    slash ? dir : ".");
            return FB_EXIT_FAIL;
        }
    }

    // Machine and ceiling.
    double t_start = fb_now();
    fb_cpu_snapshot snap0, snap1;
    fb_cpu_snapshot_take(&snap0);
    char date[64], host[256] = "unknown";
    fb_iso_time(date, sizeof date);
    gethostname(host, sizeof host - 1);
    fb_machine m;
    fb_machine_probe(&m);
    fb_sgemm_ceiling ceil[FB_LIST_MAX];
    for (int i = 0; i < o.threads.n; i++)
        if (fb_sgemm_measure(o.gemm_size, o.threads.v[i], 2, o.reps, &ceil[i]) != 0) {
            fprintf(stderr, PROG ": out of memory for the %d^3 SGEMM ceiling\n", o.gemm_size);
            return FB_EXIT_FAIL;
        }
    print_header(&m, &o, ceil, o.threads.n, date, host);

    // Blocks.
    result_row *rows = calloc((size_t)nsel * o.threads.n * 2, sizeof *rows);
    double *times = malloc((size_t)o.reps * sizeof *times);
    if (!rows || !times) { fprintf(stderr, PROG ": out of memory\n"); free(rows); free(times); return FB_EXIT_FAIL; }
    int nrows = 0, failed = 0;
    print_table_head();
    for (int i = 0; i < nsel && !failed; i++) {
        bench_case c;
        fb_status st = case_setup(&c, todo[i], &o.s);
        if (st != FB_OK) {
            fprintf(stderr, PROG ": %s: set-up failed: %s: %s\n", todo[i]->name, fb_status_name(st), fb_last_error());
            failed = 1;
        }
        for (int t = 0; t < o.threads.n && !failed; t++) {
            result_row *r = &rows[nrows];
            st = run_block(&c, &o, o.threads.v[t], times, r);
            if (st != FB_OK) {
                fprintf(stderr, PROG ": %s at %d threads failed: %s: %s\n", todo[i]->name, o.threads.v[t],
                        fb_status_name(st), fb_last_error());
                failed = 1;
                break;
            }
            for (int k = 0; k < 2; k++) {
                r[k].ceiling_gflops = ceil[t].median_gflops;
                r[k].ceiling_pct = 100.0 * r[k].gflops / ceil[t].median_gflops;
                r[k].peak_pct = 100.0 * r[k].gflops / fb_machine_peak(&m, o.threads.v[t]);
                print_row(&r[k]);
            }
            nrows += 2;
        }
        case_free(&c);
    }
    fb_cpu_snapshot_take(&snap1);
    double background, steal, elapsed = fb_now() - t_start;
    fb_cpu_background(&snap0, &snap1, &background, &steal);

    // Figures of merit.
    printf("\n");
    printf("FOM kernels peak gflops=%.1f clock_ghz=%.3f flops_per_cycle=%d cores=%d\n", m.peak_gflops, m.clock_ghz,
           m.flops_per_cycle, m.cores);
    for (int i = 0; i < o.threads.n; i++)
        printf("FOM kernels ceiling threads=%d n=%d gflops=%.2f peak_pct=%.1f\n", ceil[i].threads, ceil[i].n,
               ceil[i].median_gflops, 100.0 * ceil[i].median_gflops / fb_machine_peak(&m, ceil[i].threads));
    for (int i = 0; i < nrows; i++)
        printf("FOM kernels block=%s pass=%s threads=%d ms=%.4f gflops=%.3f ceiling_pct=%.1f\n", rows[i].block,
               rows[i].pass, rows[i].threads, rows[i].ms.median, rows[i].gflops, rows[i].ceiling_pct);
    printf("# elapsed %.1f s; other processes used %.2f cores on average during the run (hypervisor steal %.2f)\n",
           elapsed, background, steal);
    if (background > 0.25)
        printf("# WARNING   other processes kept %.2f of the %d cores busy: timings are likely slowed, most at the\n"
               "#           highest thread count\n", background, m.cores);

    int rc = failed ? FB_EXIT_FAIL : FB_EXIT_OK;
    // A failed run leaves no result file: a partial table would pass for a complete one.
    if (!o.no_h5 && !failed) {
        fb_status st = write_h5(path, &m, &o, ceil, o.threads.n, rows, nrows, date, host, background, steal, elapsed);
        if (st != FB_OK) {
            fprintf(stderr, PROG ": writing %s failed: %s\n", path, fb_last_error());
            rc = FB_EXIT_FAIL;
        } else {
            printf("# wrote %s\n", path);
        }
    }
    free(rows);
    free(times);
    return rc;
}
