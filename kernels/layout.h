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

typedef struct {
    char name[FB_NAME_MAX];
    int ndim;
    int shape[FB_MAX_DIMS];
    size_t numel, offset;             // offset in floats from the slot's base
    float **slot[FB_MAX_SLOTS];       // fields to bind (NULL entries are skipped)
    fb_init_kind init;
    float init_arg;
    int canary;                       // sentinels follow this tensor
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
