// What was built: written by the Makefile into build/gen/build_info.c (regenerated when the commit,
// the tree's dirtiness or the compile flags change) and recorded in every result file.
#pragma once

extern const char fb_build_commit[];   // short hash, "-dirty" when the tree had changes
extern const char fb_build_cflags[];   // the code-generation flags (OPT ARCH SAN -fopenmp ...)
