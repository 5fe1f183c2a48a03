// Fusion methods: the ways a model combines two streams a and b.
//
//   vector methods    a (B, D), b (B, E)          -> out (B, D)
//   sequence methods  a (B, S, D), b (B, T, E)    -> out (B, S, D), or (B, D) when the method pools
//
// Every method is one file in this folder defining a `const fusion_method fusion_<name>` and one
// line in methods.def. A method declares its parameters in the caller's parameter layout (so its
// gradients join the model's flat gradient buffer) and its activations in the activation layout,
// then runs forward/backward from those buffers. The harness only ever sees this interface.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "../common.h"
#include "../layout.h"
#include "../rng.h"

typedef enum { FUSION_VECTOR, FUSION_SEQUENCE } fusion_kind;

#define FUSION_MAX_VARIANTS 6

typedef struct {
    const char *prefix;      // tensor-name prefix in the layouts ("fusion" by default; "" in tests)
    int B, S, T, D, E;       // a (B, S, D), b (B, T, E); vector methods have S = T = 1
    int H;                   // attention heads (default 8 where it divides D, else 1)
    int F;                   // hidden width of the method's MLP/FFN (0: the method's default)
    int L;                   // perceiver latents
    int layers;              // transformer layers inside the method (0: the method's default)
    float dropout;           // dropout inside the method (0.1 in the source systems)
    float gate_bias;         // initial bias of a gate's last layer (gated_add/gated_interp: -2.0)
    float cost_budget;       // energy_aware_adaptive: the energy budget (mJ) its penalty applies above (8)
    float p_a, p_b;          // modality_dropout probabilities
    float threshold;         // shomr confidence threshold
    float temperature;       // routing temperature
    int variant;             // index into fusion_method.variants; 0 is the document's form
    int training;            // 1: dropout active, routes sampled; 0: evaluation
    fb_rng_key rng;          // seed / step / site for dropout and route sampling; rng.row0 is the
                             // global row of sample 0 of the call (a rank's first row; 0 for a
                             // whole batch): every draw follows the sample's global row (no row map)
    const uint8_t *a_mask;   // (B, S), 1 = padding position of a; NULL = none
    const uint8_t *b_mask;   // (B, T), 1 = missing token of b (a missing categorical column)
} fusion_config;

// What a forward pass exposes for diagnostics (pointers into the method's activations; valid
// until the next forward). Unused fields are NULL / 0.
typedef struct {
    const float *gate; size_t gate_count;            // gate values g in (0, 1)
    const float *attention; int att_rows, att_cols;  // head-averaged weights (att_rows, att_cols)
    int att_positions;       // query rows per sample: att_rows / c.B (set by fusion_forward)
    const int *routes; int route_count, experts;     // chosen expert per sample
    float aux_loss;          // auxiliary loss computed by the method (energy loss)
    int aux_loss_returned;   // 1 when the harness must add aux_loss to the objective
    int has_cost;            // routed methods with a cost model (energy_aware_adaptive):
    float cost_expected;     //   E[cost] under the router's probabilities, last training forward
    float cost_budget;       //   the budget the auxiliary loss penalises E[cost] above
} fusion_diag;

typedef struct fusion fusion;

typedef struct {
    const char *name;
    const char *source;                              // "000", "002" or "003"
    fusion_kind kind;
    const char *variants[FUSION_MAX_VARIANTS];       // NULL-terminated; [0] = default form
    const char *formula;                             // shown by `fusebench describe`
    // Width of b in the source system, for default benchmark shapes (0: the same as D). 003's
    // categorical inputs are Embedding(card, 16) per column: 16 per token, 16 x 8 columns pooled.
    int typical_E;
    // 1 when b holds one-hot (or soft) category indicators, (B, T = columns, E = categories),
    // rather than features: a model must then feed it indicators, not embeddings.
    int b_onehot;
    // 1 when the method has a gate whose last bias starts at c->gate_bias (fusebench train
    // --gate-bias refuses the others, where the value would change nothing).
    int has_gate_bias;
    int has_cost_budget;     // 1 when c->cost_budget is used (fusebench train --energy-budget)
    // Fills defaults into f->c, validates it, declares parameters (into P, with gradients) and
    // activations (into A, with their gradients), allocates f->self. Layouts are allocated after.
    fb_status (*create)(fusion *f, fb_layout *P, fb_layout *A);
    // out: (B, D) or (B, out_positions, D)
    fb_status (*forward)(fusion *f, float *out, const float *a, const float *b);
    // Accumulates da, db (either may be NULL) and the parameter gradients.
    fb_status (*backward)(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b);
    double (*flops)(const fusion *f, int backward);
    void (*destroy)(fusion *f);
} fusion_method;

// A fusion's c.B may be lowered between calls (a smaller last batch, a rank's share) to any value
// up to the B it was created with; c.training, c.rng.step and c.rng.row0 may change every call.
// Nothing else in c may change after fusion_create.
//
// Randomness and row decomposition: a method's draws (dropout masks, modality masks, sampled
// routes) are indexed by the sample's global row c.rng.row0 + b (fb_rng_row_first in
// kernels/rng.h), and an inner kernel on derived rows gets the matching row0 (its leading
// dimension's units: a kernel over the B*S token rows gets row0 * S), so samples [k, B) run alone
// with c.rng.row0 = k draw what the whole batch draws for them. A draw made once for the whole
// batch (modality_dropout's batch mask) does not depend on row0.
//
// The last call's arguments (last_*) are set by fusion_forward / fusion_backward before the method
// runs, so diagnostics can be computed after a pass without knowing the method or the scenario.
// Their shapes, as the harness uses them (c.B the call's rows):
//   last_a, last_da    (c.B, c.S, c.D)          rows c.B·c.S of width c.D
//   last_b, last_db    (c.B, c.T, c.E)          rows c.B·c.T of width c.E
//   last_out           (c.B, out_positions, c.D)
//   last_dout          like last_out
// fusion_forward sets a, b, out and clears da, db, dout (gradients of an earlier pass); fusion_backward
// sets a, b, dout, da, db (da, db NULL where the caller passed none) and leaves out as it was.
struct fusion {
    const fusion_method *method;
    fusion_config c;
    int out_positions;       // rows of output per sample: S, or 1 for pooling methods
    void *self;              // the method's private struct (pointer fields bound by the layouts)
    fusion_diag diag;
    const float *last_a, *last_b, *last_out, *last_dout;
    float *last_da, *last_db;
};

// Optional process-wide hooks around every fusion_forward / fusion_backward call (PAPI per-call
// counting, timers): enter runs just before the method, leave just after it whatever its status
// (not when the wrapper's own argument checks refuse the call). backward is 0 or 1. Either
// function may be NULL. Kernels know nothing of what the hooks do; the harness installs them.
typedef struct {
    void (*enter)(void *ctx, const fusion *f, int backward);
    void (*leave)(void *ctx, const fusion *f, int backward);
    void *ctx;
} fusion_hooks;
// Installs a copy of *h (NULL: no hooks). Not thread-safe against running fusion calls: set hooks
// while no fusion call is in flight (before and after the training loop).
void fusion_set_hooks(const fusion_hooks *h);

// The method table (methods.def).
#define FUSION_METHOD(name) FUSION_ID_##name,
typedef enum {
#include "methods.def"
    FUSION_METHOD_COUNT
} fusion_id;
#undef FUSION_METHOD
extern const fusion_method *const fusion_methods[FUSION_METHOD_COUNT];

const fusion_method *fusion_find(const char *name);
int fusion_variant_index(const fusion_method *m, const char *variant);   // -1 if unknown
// A config with the source systems' defaults for sizes (B, S, T, D, E) given by the caller.
fusion_config fusion_default_config(int B, int S, int T, int D, int E);
// Looks the method up, fills defaults, validates, declares. On error nothing is left allocated.
fb_status fusion_create(fusion *f, const fusion_method *m, const fusion_config *c, fb_layout *P, fb_layout *A);
fb_status fusion_forward(fusion *f, float *out, const float *a, const float *b);
fb_status fusion_backward(fusion *f, float *da, float *db, const float *dout, const float *a, const float *b);
void fusion_destroy(fusion *f);
size_t fusion_out_size(const fusion *f);    // floats in out
// "prefix.sub" (or "sub" when the prefix is empty) for declaring a method's tensors.
const char *fusion_name(const fusion *f, const char *sub, char buf[FB_NAME_MAX]);
// The rng key of dropout / sampling site k < FUSION_RNG_SITES of this method (distinct sites never
// share a mask): fusion point `c.rng.site` owns sites [site * FUSION_RNG_SITES, +FUSION_RNG_SITES).
#define FUSION_RNG_SITES 256u
fb_rng_key fusion_rng(const fusion *f, uint32_t k);
// Allocates f->self (zeroed) of `size` bytes; FB_ERR_ALLOC on failure.
fb_status fusion_alloc_self(fusion *f, size_t size);
