// fusebench's counters as PAPI software-defined events: see sde.h.
#include "sde.h"
#include <pthread.h>
#include <sde_lib.h>
#include <stdio.h>

long long fb_sde_values_[FB_SDE_COUNT];

typedef struct {
    const char *name, *units, *description;
} sde_info;

// One line per counter, indexed by its enum value; the assert below and the check in fb_sde_init
// catch a counter added to the enum without its line here.
static const sde_info table[] = {
    [FB_SDE_FLOPS_FORWARD] = { "flops_forward", "FLOP", "floating-point operations of forward passes (kernel FLOP counts)" },
    [FB_SDE_FLOPS_BACKWARD] = { "flops_backward", "FLOP", "floating-point operations of backward passes (kernel FLOP counts)" },
    [FB_SDE_FLOPS_LOSS] = { "flops_loss", "FLOP", "floating-point operations of loss forward and backward" },
    [FB_SDE_FLOPS_OPTIMIZER] = { "flops_optimizer", "FLOP", "floating-point operations of optimizer steps and gradient clipping" },
    [FB_SDE_ALLREDUCE_BYTES] = { "allreduce_bytes", "B", "bytes of the reduced vectors of allreduce calls (Iallreduce included)" },
    [FB_SDE_ALLREDUCE_CALLS] = { "allreduce_calls", "1", "allreduce calls (Iallreduce included)" },
    [FB_SDE_ALLGATHER_BYTES] = { "allgather_bytes", "B", "bytes this rank contributed to allgather calls" },
    [FB_SDE_ALLGATHER_CALLS] = { "allgather_calls", "1", "allgather calls" },
    [FB_SDE_BCAST_BYTES] = { "bcast_bytes", "B", "bytes broadcast (MPI_Bcast buffer sizes)" },
    [FB_SDE_BCAST_CALLS] = { "bcast_calls", "1", "broadcast calls" },
    [FB_SDE_REDUCE_BYTES] = { "reduce_bytes", "B", "bytes of the reduced vectors of reduce calls" },
    [FB_SDE_REDUCE_CALLS] = { "reduce_calls", "1", "reduce calls" },
    [FB_SDE_SCATTER_GATHER_BYTES] = { "scatter_gather_bytes", "B", "bytes this rank sent in scatter and gather calls" },
    [FB_SDE_SCATTER_GATHER_CALLS] = { "scatter_gather_calls", "1", "scatter and gather calls" },
    [FB_SDE_EXPOSED_COMM_NS] = { "exposed_comm_ns", "ns", "communication time not hidden behind computation" },
    [FB_SDE_GATE_SATURATED] = { "gate_saturated", "1", "gate values within the saturation margin of 0 or 1" },
    [FB_SDE_NONFINITE] = { "nonfinite", "1", "NaN or Inf values found in activations, gradients or losses" },
    [FB_SDE_ROUTE_EXPERT_0] = { "route_expert_0", "1", "samples or tokens routed to expert 0" },
    [FB_SDE_ROUTE_EXPERT_1] = { "route_expert_1", "1", "samples or tokens routed to expert 1" },
    [FB_SDE_ROUTE_EXPERT_2] = { "route_expert_2", "1", "samples or tokens routed to expert 2" },
    [FB_SDE_ROUTE_EXPERT_3] = { "route_expert_3", "1", "samples or tokens routed to expert 3" },
    [FB_SDE_ROUTE_EXPERT_4] = { "route_expert_4", "1", "samples or tokens routed to expert 4" },
    [FB_SDE_ROUTE_EXPERT_5] = { "route_expert_5", "1", "samples or tokens routed to expert 5" },
    [FB_SDE_ROUTE_EXPERT_6] = { "route_expert_6", "1", "samples or tokens routed to expert 6" },
    [FB_SDE_ROUTE_EXPERT_7] = { "route_expert_7", "1", "samples or tokens routed to expert 7" },
};
_Static_assert(sizeof table / sizeof table[0] == FB_SDE_COUNT, "SDE table out of step with fb_sde_counter");

static pthread_once_t once = PTHREAD_ONCE_INIT;
static fb_status init_status = FB_ERR_INTERNAL;
static char init_error[256];

static void init_once(void) {
    for (int c = 0; c < FB_SDE_COUNT; c++)
        if (!table[c].name) {   // a gap left by designated initialisers
            snprintf(init_error, sizeof init_error, "SDE counter %d has no line in the table", c);
            return;
        }
    papi_handle_t h = papi_sde_init(FB_SDE_LIBRARY);
    if (!h) {
        snprintf(init_error, sizeof init_error, "papi_sde_init(\"%s\") failed: SDEs are disabled", FB_SDE_LIBRARY);
        return;
    }
    // The handle lives as long as the process: papi_sde_shutdown would free what PAPI may still
    // read, and the values are static anyway.
    for (int c = 0; c < FB_SDE_COUNT; c++) {
        int rc = papi_sde_register_counter(h, table[c].name, PAPI_SDE_RO | PAPI_SDE_DELTA, PAPI_SDE_long_long,
                                           &fb_sde_values_[c]);
        if (rc == SDE_OK) rc = papi_sde_describe_counter(h, table[c].name, table[c].description);
        if (rc != SDE_OK) {
            snprintf(init_error, sizeof init_error, "registering SDE counter %s: libsde error %d", table[c].name, rc);
            return;
        }
    }
    init_status = FB_OK;
}

fb_status fb_sde_init(void) {
    pthread_once(&once, init_once);
    if (init_status != FB_OK) return fb_fail(init_status, "%s", init_error);
    return FB_OK;
}

void fb_sde_read(int64_t *out) {
    for (int c = 0; c < FB_SDE_COUNT; c++) out[c] = __atomic_load_n(&fb_sde_values_[c], __ATOMIC_RELAXED);
}

void fb_sde_reset(void) {
    for (int c = 0; c < FB_SDE_COUNT; c++) __atomic_store_n(&fb_sde_values_[c], 0, __ATOMIC_RELAXED);
}

const char *fb_sde_name(fb_sde_counter c) { return (int)c >= 0 && c < FB_SDE_COUNT ? table[c].name : "?"; }
const char *fb_sde_units(fb_sde_counter c) { return (int)c >= 0 && c < FB_SDE_COUNT ? table[c].units : "?"; }
const char *fb_sde_description(fb_sde_counter c) {
    return (int)c >= 0 && c < FB_SDE_COUNT ? table[c].description : "?";
}
