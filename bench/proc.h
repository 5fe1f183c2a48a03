// Child processes and the files beside the binary, for the driver commands that run other programs
// (fusebench sweep runs mpirun, sbatch and the report; fusebench study runs sweeps and its plot).
#pragma once
#include <stddef.h>

// Absolute path of this binary (/proc/self/exe). 0, or -1 after printing why (prefixed by prog).
int fb_self_exe(const char *prog, char *buf, size_t size);
// plots/<script> beside the binary's folder (bench/fusebench → plots/<script>), resolved when it exists.
void fb_plot_script(const char *exe, const char *script, char *buf, size_t size);
// The Debian system Python (python3-h5py, -numpy, -matplotlib) before whatever python3 PATH finds
// first (a virtual environment may lack them).
const char *fb_python(void);

// Where a child's input and output go; zero-initialised: our own stdout and stderr.
typedef struct {
    const char *const *env;   // extra environment entries "NAME=value", NULL-terminated (or NULL)
    const char *log;          // stdout and stderr to this file, truncated (or NULL)
    char *capture;            // stdout into this buffer, NUL-terminated, cut at capture_size - 1
    size_t capture_size;
    int quiet;                // stderr to /dev/null
} fb_child_io;

// Runs argv (PATH searched) and waits for it. Returns its exit status, 128 + the signal that ended
// it, or -1 when it could not be started.
int fb_run_child(char *const argv[], const fb_child_io *io);
// Prints the last `lines` (at most 8) lines of a file, indented.
void fb_print_tail(const char *path, int lines);
