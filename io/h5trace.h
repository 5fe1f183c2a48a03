// Live HDF5 traces: a result file written in place while a run goes on, brought to a consistent
// state on disk by every flush, and left readable (with every flushed step) when the process is
// killed.
//
// Why it is not an fb_h5_create file: that one is written to <path>.tmp and renamed at the end, so
// a killed run leaves nothing. A live file is created under its real name and brought to a
// consistent state on disk by every fb_h5_live_flush:
//   - appends go to memory only; between two flushes this module makes no HDF5 call for series
//     data, so the file on disk stays exactly as the last flush left it, whatever kills the process
//     (SIGKILL, OOM killer, Slurm's time limit). The data are in the kernel's page cache after each
//     flush: a process kill loses nothing flushed, a power cut may (there is no fsync).
//   - the superblock is the earliest format (default library version bounds), which carries no
//     "open for writing" flag: a killed file opens with plain h5py.File(path, "r") and h5dump, no
//     h5clear needed. SWMR is not used.
// A kill *during* a flush (or during any other HDF5 call on the file) may leave it unreadable.
// While the run goes on, the writer holds HDF5's file lock (HDF5 >= 1.10.7), so a reader must opt
// out to peek: HDF5_USE_FILE_LOCKING=FALSE h5dump/python ...; it then sees the last flush, and a
// read that overlaps a flush may fail (retry). The lock dies with the process: a killed file opens
// normally.
// Other writes to a live file (fb_h5_attr_*, fb_h5_group, fb_h5_write_table) are allowed before and
// after flushes, but HDF5 decides when they reach the disk: call fb_h5_live_flush after them for
// the same guarantee. fb_h5_series_create flushes by itself, so a new series is on disk at once.
//
// Life cycle: fb_h5_live_create -> (fb_h5_series_create, fb_h5_series_append, fb_h5_live_flush)* ->
// fb_h5_live_finish. Never call fb_h5_close or fb_h5_discard on a live file (they would leak the
// series; neither removes the file, as there is no .tmp). The live fb_h5 keeps h->failed: after a
// failed write, fb_h5_live_finish leaves complete = 0 and says why in `error`.
//
// A series is one H5MD-shaped group of variables that share a `step` dimension:
//   <group>/step           int64 (nsteps,): extendible, a dimension scale named "step", units "1"
//   <group>/<label_dim>    variable-length UTF-8 strings (nlabels,), a dimension scale (nlabels > 0)
//   <group>/<var>          float64 (nsteps,), or (nsteps, nlabels) when var.per_label; extendible
//                          along steps, chunked (chunk_steps, [nlabels]), shuffle + deflate level 1,
//                          attributes `units` (and `description`); its dimension 0 is attached to
//                          step, dimension 1 to <label_dim>.
// A dimension scale whose dataset name is the dimension's name is what netCDF-4 writes for a
// coordinate variable, so xarray.open_dataset(path, engine="h5netcdf", group="<group path>") shows
// the dimensions (step[, <label_dim>]) with step numbers and labels as coordinates.
#pragma once
#include "h5out.h"

#define FB_H5_LIVE_MAX_SERIES 256   // series per live file
// Chunk length along steps when the caller passes 0. A flush recompresses the partly filled last
// chunk of every variable, so flushes are cheapest when chunk_steps is the number of rows a series
// gets between flushes (or divides it): 100 series x 10 rows x 200 labels flush about 3x faster
// with chunk_steps 10 than with 64 (tests/test_h5trace prints both).
#define FB_H5_SERIES_CHUNK_STEPS 64

// Creates <path> directly. Refuses (FB_ERR_IO) when <path> exists already: a previous result is
// never overwritten. Root attributes: schema, schema_version, complete = 0 (int64; 1 once
// fb_h5_live_finish succeeds). The file is flushed before returning.
fb_status fb_h5_live_create(fb_h5 *h, const char *path, const char *schema, int schema_version);
// Writes every series' buffered rows, then H5Fflush(H5F_SCOPE_GLOBAL). A series whose write fails
// keeps its rows buffered (the next flush retries them); the file is marked failed.
fb_status fb_h5_live_flush(fb_h5 *h);
// Flushes, then ok = 1: sets complete = 1 (only when nothing ever failed; otherwise `error` says
// why and the call returns FB_ERR_IO). ok = 0 (the run failed): writes `error` = message (NULL:
// a generic one) and leaves complete = 0. Either way it frees the series and closes the file, which
// stays. The status is that of the file's writes, not the run's: FB_OK when everything was written.
fb_status fb_h5_live_finish(fb_h5 *h, int ok, const char *message);

typedef struct {
    const char *name;          // dataset name: no '/', not "step" nor the label dimension's name
    const char *units;         // "1" dimensionless, "ms", ... (NULL: "")
    const char *description;   // NULL: no attribute
    int per_label;             // 1: (nsteps, nlabels); 0: (nsteps,)
} fb_h5_var;

typedef struct fb_h5_series fb_h5_series;   // owned by the live file: fb_h5_live_finish frees it

// Creates series `name` under `parent` (a group of h, e.g. h->file or from fb_h5_group; `name`
// may contain '/', intermediate groups are created). label_dim and labels (nlabels strings) are
// needed only when nlabels > 0. chunk_steps 0: FB_H5_SERIES_CHUNK_STEPS. Bad arguments return
// FB_ERR_CONFIG and leave the file untouched (not failed); HDF5 failures return FB_ERR_IO and
// mark it failed.
fb_status fb_h5_series_create(fb_h5 *h, hid_t parent, const char *name, const char *label_dim,
                              const char *const *labels, int nlabels, const fb_h5_var *vars, int nvars,
                              size_t chunk_steps, fb_h5_series **out);
// Buffers one row in memory (no HDF5 call): values[v] points at nlabels doubles for a per-label
// variable, one double otherwise (NaN and Inf are stored as they are). Steps must increase strictly
// from one row to the next (they are the step coordinate).
fb_status fb_h5_series_append(fb_h5_series *s, int64_t step, const double *const *values);
// Rows appended so far, flushed or not.
size_t fb_h5_series_rows(const fb_h5_series *s);
