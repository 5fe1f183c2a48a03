#include "settings.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fb_parse_settings(const char *spec, const char *const *names, double *values, int n, char *why, size_t size) {
    const char *p = spec;
    while (*p) {
        const char *eq = strchr(p, '='), *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        int k = -1;
        for (int i = 0; eq && eq < end && i < n; i++)
            if ((size_t)(eq - p) == strlen(names[i]) && strncmp(p, names[i], (size_t)(eq - p)) == 0) k = i;
        char *stop = NULL;
        const double v = k >= 0 ? strtod(eq + 1, &stop) : 0.0;
        if (k < 0 || stop != end || !isfinite(v) || v < 0) {
            int used = snprintf(why, size, "'%.*s': want name=value with a value >= 0, name one of", (int)(end - p), p);
            for (int i = 0; i < n && used > 0 && (size_t)used < size; i++)
                used += snprintf(why + used, size - (size_t)used, "%s %s", i ? "," : "", names[i]);
            return -1;
        }
        values[k] = v;
        p = *end ? end + 1 : end;
    }
    return 0;
}
