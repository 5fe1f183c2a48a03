// fusebench's own counters, exported as PAPI software-defined events (SDE): any PAPI consumer in
// the process reads them as `sde:::fusebench::NAME` (PAPI_add_named_event, PAPI_read), and the
// harness reads the same values directly with fb_sde_read to write them to HDF5.
//
// How PAPI sees them. The counters are plain `long long` variables registered once with libsde
// (papi_sde_init("fusebench"), papi_sde_register_counter) by fb_sde_init. PAPI's sde component
// finds libsde in the executable when PAPI initialises; without it, papi_component_avail's
// "libsde API not found. No SDEs exist in this executable" — so every binary that uses this file
// links -lsde (the Makefile's LDLIBS). A separate tool (papi_native_avail, papi_command_line) runs
// in its own process and therefore never sees our events: SDEs are read from inside the program.
// Registered counters are "delta" counters: a PAPI event set reports the change since its
// PAPI_start, like a hardware counter.
//
// Thread safety and cost. fb_sde_add may be called from anywhere, including inside OpenMP parallel
// regions: it is one relaxed atomic add (exact totals, a few ns uncontended; many threads adding to
// one counter at once contend for its cache line, so add once per kernel call rather than per
// element). fb_sde_read may run concurrently with adds (relaxed loads: each value is exact, the set
// is not one instant). fb_sde_init and fb_sde_reset are called from serial code.
// Counting works whether or not fb_sde_init ran: init only makes the values visible to PAPI.
#pragma once
#include <stdint.h>
#include "../kernels/common.h"

#define FB_SDE_LIBRARY "fusebench"
#define FB_SDE_PAPI_PREFIX "sde:::" FB_SDE_LIBRARY "::"   // + counter name = PAPI event name
#define FB_SDE_MAX_EXPERTS 8

// The counters (names, units and descriptions: the table in sde.c, checked against this count).
typedef enum {
    FB_SDE_FLOPS_FORWARD,          // FLOPs of forward passes, from each kernel's FLOP count
    FB_SDE_FLOPS_BACKWARD,
    FB_SDE_FLOPS_LOSS,
    FB_SDE_FLOPS_OPTIMIZER,
    FB_SDE_ALLREDUCE_BYTES,        // bytes of the reduced vector per call (as `fusebench comm`)
    FB_SDE_ALLREDUCE_CALLS,
    FB_SDE_ALLGATHER_BYTES,        // bytes each rank contributes
    FB_SDE_ALLGATHER_CALLS,
    FB_SDE_BCAST_BYTES,
    FB_SDE_BCAST_CALLS,
    FB_SDE_REDUCE_BYTES,
    FB_SDE_REDUCE_CALLS,
    FB_SDE_SCATTER_GATHER_BYTES,   // MPI_Scatter(v) / MPI_Gather(v): bytes this rank sends
    FB_SDE_SCATTER_GATHER_CALLS,
    FB_SDE_EXPOSED_COMM_NS,        // communication time not hidden behind compute
    FB_SDE_GATE_SATURATED,         // gate values within the saturation margin of 0 or 1
    FB_SDE_NONFINITE,              // NaN or Inf values found (activations, gradients, loss)
    FB_SDE_ROUTE_EXPERT_0,         // samples (or tokens) routed to expert k: ROUTE_EXPERT_0 + k
    FB_SDE_ROUTE_EXPERT_1,
    FB_SDE_ROUTE_EXPERT_2,
    FB_SDE_ROUTE_EXPERT_3,
    FB_SDE_ROUTE_EXPERT_4,
    FB_SDE_ROUTE_EXPERT_5,
    FB_SDE_ROUTE_EXPERT_6,
    FB_SDE_ROUTE_EXPERT_7,
    FB_SDE_COUNT
} fb_sde_counter;
_Static_assert(FB_SDE_ROUTE_EXPERT_7 - FB_SDE_ROUTE_EXPERT_0 + 1 == FB_SDE_MAX_EXPERTS,
               "one route counter per expert");

// The values themselves (PAPI reads them in place). Change them only through the functions below.
extern long long fb_sde_values_[FB_SDE_COUNT];

// Adds n to counter c.
static inline void fb_sde_add(fb_sde_counter c, long long n) {
    __atomic_fetch_add(&fb_sde_values_[c], n, __ATOMIC_RELAXED);
}
// Adds n to the route count of expert k; experts from FB_SDE_MAX_EXPERTS on are not counted.
static inline void fb_sde_add_route(int k, long long n) {
    if (k >= 0 && k < FB_SDE_MAX_EXPERTS) fb_sde_add((fb_sde_counter)(FB_SDE_ROUTE_EXPERT_0 + k), n);
}

// Registers every counter with PAPI SDE, once per process (later calls return the first outcome).
// FB_ERR_INTERNAL when libsde refuses (SDEs disabled).
fb_status fb_sde_init(void);
// Copies the current values: out[FB_SDE_COUNT].
void fb_sde_read(int64_t *out);
// Sets every counter to zero. A PAPI event set running over SDE events then reports negative
// deltas: reset between runs, not while someone reads them through PAPI.
void fb_sde_reset(void);

const char *fb_sde_name(fb_sde_counter c);          // "allreduce_bytes"; "?" out of range
const char *fb_sde_units(fb_sde_counter c);         // "FLOP", "B", "1", "ns"
const char *fb_sde_description(fb_sde_counter c);
