#include "worlds.h"
#include <stdio.h>
#include <string.h>

int fb_worlds_parse(const char *scenario, const char *ts_spec, const char *mm_spec, fb_worlds *w, char *why,
                    size_t size) {
    w->ts = fb_synth_ts_defaults();
    w->mm = fb_synth_mm_defaults();
    w->has_ts = ts_spec != NULL;
    w->has_mm = mm_spec != NULL;
    const struct { const char *spec, *option, *owner; } opt[2] = {
        { ts_spec, "--ts-world", "timeseries" }, { mm_spec, "--mm-world", "multimodal" } };
    for (int i = 0; i < 2; i++) {
        if (!opt[i].spec) continue;
        if (!scenario || strcmp(scenario, opt[i].owner) != 0) {
            snprintf(why, size, "%s belongs to the %s scenario", opt[i].option, opt[i].owner);
            return -1;
        }
        char reason[256];
        const int rc = i == 0 ? fb_synth_ts_parse(opt[i].spec, &w->ts, reason, sizeof reason)
                              : fb_synth_mm_parse(opt[i].spec, &w->mm, reason, sizeof reason);
        if (rc != 0) {
            snprintf(why, size, "%s %s", opt[i].option, reason);
            return -1;
        }
    }
    return 0;
}
