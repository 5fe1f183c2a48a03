// "name=value,name=value" settings strings (the generators' --ts-world / --mm-world).
#pragma once
#include <stddef.h>

// Sets values[i] for each "names[i]=v" in spec (v finite and >= 0); other entries are kept.
// 0, or -1 with a reason naming the bad item and the known names in why.
int fb_parse_settings(const char *spec, const char *const *names, double *values, int n, char *why, size_t size);
