// The result file of `fusebench train` (schema fusebench.train, results/README.md): a live HDF5
// file created before the first step, fed step by step through the harness's train_sink, flushed
// every `flush_every` steps and marked complete at a clean end. A run that fails leaves the file
// with complete = 0 and `error`; a run that is killed leaves every flushed step readable.
// Driver code: rank 0 only.
#pragma once
#include "../harness/train.h"
#include "../io/h5trace.h"
#include "mpi_run.h"

#define TRAIN_SCHEMA "fusebench.train"
#define TRAIN_SCHEMA_VERSION 2

typedef struct {
    fb_h5 h;
    int open;
    int flush_every;
    int batch;
    const train_config *c;
    const fb_mpi_run *run;
    fb_h5_series *steps, *params, *modules, *eval;
    fb_h5_series *points[MONITOR_MAX_POINTS], *routes[MONITOR_MAX_POINTS];
    int experts[MONITOR_MAX_POINTS];
    double *row;                 // scratch for one row of /steps
    const char *options;         // every option as "name=value; ...", written into /config
} train_out;

// Creates the live file with the provenance and /config, and fills `sink` to stream into it.
fb_status train_out_open(train_out *o, const char *path, const fb_mpi_run *run, const train_config *c,
                         const char *options, int flush_every, train_sink *sink);
// After the run: counters, SDE counters, verdicts, summary; complete = 1 when ok (else `error`).
fb_status train_out_finish(train_out *o, int ok, const char *error, const train_result *r, const double *medians,
                           double samples_per_s);
