// Tensor layout: one flat allocation per role, pointed into through a table (llm.c's layout).
//
// A model declares each tensor once — name, shape, initialisation — together with the addresses
// of the pointer fields that should point at it: for parameters, the field in the `params` struct
// and the same field in the `grads` struct; for activations, the activation and its gradient.
// fb_layout_alloc() then makes one 64-byte-aligned buffer per slot and binds every field. Zeroing,
// bucketed allreduce, per-tensor norms and HDF5 dumps are then one loop over the table, and no code
// names a tensor twice.
//
// Rules: the structs whose fields were registered must not move before fb_layout_alloc(); a tensor
// starts on a 16-float (64-byte) boundary. While fb_layout_canaries is set (tests set it), 16
// sentinel floats follow every tensor declared, and fb_layout_check_canaries() reports any that an
// out-of-bounds write (a wrong OpenMP index, say) changed.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "common.h"

#define FB_NAME_MAX 64
#define FB_MAX_DIMS 4
#define FB_MAX_SLOTS 2   // parameters + gradients, or activations + their gradients

extern int fb_layout_canaries;   // 0 in production; tests set 1 before declaring tensors

typedef enum {
    FB_INIT_ZERO,       // 0
    FB_INIT_CONST,      // arg
    FB_INIT_UNIFORM,    // U(-arg, arg)
    FB_INIT_NORMAL,     // N(0, arg^2)
} fb_init_kind;

// Module tags on activation tensors, for NormMonitor-style output norms (the mean L2 norm over the
// last dim of every Linear, LayerNorm, attention and fusion module's output, per call). A tensor
// is tagged when it holds that module's output at the end of the forward pass: an output later
// overwritten in place (dropout, an added positional encoding) is not tagged. An attention
// module's output is the MHA's after out_proj (never q, k, v or the probabilities); a fusion
// module's is a fusion point's out.
typedef enum {
    FB_MODULE_NONE = 0,
    FB_MODULE_LINEAR,
    FB_MODULE_LAYERNORM,
    FB_MODULE_ATTENTION,
    FB_MODULE_FUSION,
    FB_MODULE_COUNT
} fb_module_kind;

typedef struct {
    char name[FB_NAME_MAX];
    int ndim;
    int shape[FB_MAX_DIMS];
    size_t numel, offset;             // offset in floats from the slot's base
    float **slot[FB_MAX_SLOTS];       // fields to bind (NULL entries are skipped)
    fb_init_kind init;
    float init_arg;
    int canary;                       // sentinels follow this tensor
    int module;                       // fb_module_kind of the module whose output this holds
    int module_cols;                  // the norm's row width: numel / module_cols rows (when tagged)
    int grad_free;                    // 1: a parameter whose gradient is zero by construction
} fb_tensor;

typedef struct {
    fb_tensor *tensors;
    int count, capacity;
    int nslots;
    size_t total;                     // floats per slot, padding included
    float *base[FB_MAX_SLOTS];
} fb_layout;

void fb_layout_init(fb_layout *L, int nslots);
// Declares a tensor `prefix.name` of shape dims[0..ndim); returns its index, or -1 (fb_last_error).
int fb_layout_add(fb_layout *L, const char *prefix, const char *name, int ndim, const int *dims,
                  fb_init_kind init, float init_arg, float **slot0, float **slot1);
void fb_layout_set_init(fb_layout *L, int index, fb_init_kind init, float init_arg);
// Tags tensor `index` as the output of a `kind` module whose rows are `cols` wide (0: the
// tensor's last dimension). cols must divide the tensor's size; an index out of range or a cols
// that does not divide is ignored, as fb_layout_set_init ignores a bad index. Activations are
// declared for the largest batch: after a smaller one, only the leading rows hold this call's
// outputs (every tagged tensor's leading dimension is a multiple of the batch).
void fb_layout_tag_module(fb_layout *L, int index, fb_module_kind kind, int cols);
const char *fb_module_name(fb_module_kind kind);   // "linear", "layernorm", "attention", "fusion"
// Marks parameter `index` as receiving a zero gradient by construction (e.g. attention's key
// bias: every score of a query row shifts by q·b_k, which softmax ignores), so a dead-parameter
// check can tell it from a parameter that is dead by mistake. Bad index: ignored.
void fb_layout_mark_grad_free(fb_layout *L, int index);
fb_status fb_layout_alloc(fb_layout *L);
// Slot 0 gets each tensor's initialisation (deterministic in `seed` and the tensor's index);
// the other slots are zeroed.
void fb_layout_initialize(fb_layout *L, uint64_t seed);
void fb_layout_zero(fb_layout *L, int slot);
float *fb_layout_ptr(const fb_layout *L, int slot, int index);
int fb_layout_find(const fb_layout *L, const char *full_name);
size_t fb_layout_numel(const fb_layout *L);   // sum of numel, padding excluded
// Returns the number of damaged canaries; names the first one in fb_last_error().
int fb_layout_check_canaries(const fb_layout *L);
void fb_layout_free(fb_layout *L);
