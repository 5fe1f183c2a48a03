// The synthetic generators' settings from the command line (--ts-world, --mm-world), shared by
// `fusebench train` and `fusebench data make`.
#pragma once
#include <stddef.h>
#include "../datasets/synth_multimodal.h"
#include "../datasets/synth_timeseries.h"

typedef struct {
    fb_synth_ts_world ts;
    fb_synth_mm_world mm;
    int has_ts, has_mm;   // 1 when the option was given (else: the defaults, not passed on)
} fb_worlds;

// Parses the given specs (NULL: not given) for `scenario`; an option of another scenario is an
// error. 0, or -1 with "--ts-world ..." / "--mm-world ..." reasons in why.
int fb_worlds_parse(const char *scenario, const char *ts_spec, const char *mm_spec, fb_worlds *w, char *why,
                    size_t size);
