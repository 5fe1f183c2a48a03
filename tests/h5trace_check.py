#!/usr/bin/python3
"""Reads a live trace written by tests/test_h5trace.c the way its users will (run by that test).

    h5trace_check.py FILE COMPLETE SERIES...
    SERIES = GROUP:ROWS[:LABEL_DIM:LABEL,LABEL,...]

Checks, for FILE (finished or killed): plain h5py.File(FILE, "r") opens it and root `complete` is
COMPLETE; `h5dump -H` reads it; for every SERIES, h5py sees `step` as a dimension scale of ROWS
rows attached to every variable, and xarray.open_dataset(FILE, engine="h5netcdf", group=GROUP)
names the dimensions (step[, LABEL_DIM]), with the step numbers and the labels as coordinates and
the same values and units as h5py.

Exit status: 0 all good, 1 a check failed, 77 skipped (xarray or h5netcdf missing; the message
says which package to install). h5py, numpy and h5dump are required: without them it fails.
"""
import shutil
import subprocess
import sys

import h5py
import numpy as np

try:
    import h5netcdf  # noqa: F401  (xarray's engine; imported here to name it when missing)
    import xarray as xr
except ImportError as e:
    print(f"SKIP: {e.name} is missing: apt-get install python3-xarray python3-h5netcdf (make deps does)")
    sys.exit(77)


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)


def parse_series(arg):
    parts = arg.split(":")
    check(len(parts) in (2, 4), f"series argument {arg!r} is not GROUP:ROWS[:LABEL_DIM:LABELS]")
    labels = parts[3].split(",") if len(parts) == 4 else []
    return parts[0], int(parts[1]), (parts[2] if labels else None), labels


def check_h5py(f, group, rows, label_dim, labels):
    """The layout seen by h5py; returns {variable: (values, units)} for the xarray comparison."""
    check(group in f, f"no group {group}")
    g = f[group]
    step = g["step"]
    check(h5py.h5ds.is_scale(step.id), f"{group}/step is not a dimension scale")
    check(step.shape == (rows,) and step.maxshape == (None,), f"{group}/step: shape {step.shape}, max {step.maxshape}")
    if label_dim:
        check(h5py.h5ds.is_scale(g[label_dim].id), f"{group}/{label_dim} is not a dimension scale")
        got = [s.decode() if isinstance(s, bytes) else s for s in g[label_dim][()]]
        check(got == labels, f"{group}/{label_dim} holds {got}, expected {labels}")
    found = {}
    for name, d in g.items():
        if name in ("step", label_dim):
            continue
        check(d.shape[0] == rows, f"{group}/{name}: {d.shape[0]} rows, expected {rows}")
        check([s.name for s in d.dims[0].values()] == [step.name], f"{group}/{name}: dim 0 is not attached to step")
        if d.ndim == 2:
            check(label_dim and [s.name for s in d.dims[1].values()] == [g[label_dim].name],
                  f"{group}/{name}: dimension 1 is not attached to {label_dim}")
        units = d.attrs["units"]
        found[name] = (d[()], units.decode() if isinstance(units, bytes) else units)
    check(found, f"{group} has no variables")
    return step[()], found


def check_xarray(path, group, rows, label_dim, labels, steps, h5vars):
    with xr.open_dataset(path, engine="h5netcdf", group=group) as ds:
        dims = dict(ds.sizes)
        want = {"step": rows, **({label_dim: len(labels)} if label_dim else {})}
        check(dims == want, f"xarray {group}: dimensions {dims}, expected {want}")
        check("step" in ds.coords and np.array_equal(ds["step"].values, steps),
              f"xarray {group}: step coordinate {ds['step'].values if 'step' in ds else None}")
        if label_dim:
            got = [str(s) for s in ds[label_dim].values]
            check(label_dim in ds.coords and got == labels, f"xarray {group}: {label_dim} coordinate {got}")
        check(set(ds.data_vars) == set(h5vars),
              f"xarray {group}: variables {sorted(ds.data_vars)}, h5py {sorted(h5vars)}")
        for name, (values, units) in h5vars.items():
            v = ds[name]
            want_dims = ("step",) if values.ndim == 1 else ("step", label_dim)
            check(v.dims == want_dims, f"xarray {group}/{name}: dims {v.dims}, expected {want_dims}")
            check(np.array_equal(v.values, values), f"xarray {group}/{name}: values differ from h5py's")
            check(v.attrs.get("units") == units,
                  f"xarray {group}/{name}: units {v.attrs.get('units')!r}, h5py {units!r}")
        return dims, sorted(ds.data_vars)


def main():
    check(len(sys.argv) >= 4, "usage: h5trace_check.py FILE COMPLETE GROUP:ROWS[:LABEL_DIM:LABELS]...")
    path, complete, series = sys.argv[1], int(sys.argv[2]), [parse_series(a) for a in sys.argv[3:]]

    h5dump = shutil.which("h5dump")
    check(h5dump, "h5dump is missing (Debian package hdf5-tools; make deps installs it)")
    dump = subprocess.run([h5dump, "-H", path], capture_output=True, text=True)
    check(dump.returncode == 0, f"h5dump -H {path} failed: {dump.stderr.strip()[-500:]}")
    for group, *_ in series:
        check(f'GROUP "{group.split("/")[-1]}"' in dump.stdout, f"h5dump -H shows no group {group}")
    print(f"h5trace_check: h5dump -H {path}: {len(dump.stdout.splitlines())} lines")

    with h5py.File(path, "r") as f:
        check(int(f.attrs["complete"]) == complete, f"root complete = {f.attrs['complete']}, expected {complete}")
        seen = {group: check_h5py(f, group, rows, dim, labels) for group, rows, dim, labels in series}
    for group, rows, dim, labels in series:
        steps, h5vars = seen[group]
        dims, names = check_xarray(path, group, rows, dim, labels, steps, h5vars)
        print(f"h5trace_check: {group}: h5py and xarray agree; dims {dims}, variables {names}")
    print(f"h5trace_check: {path} (complete = {complete}): OK")


if __name__ == "__main__":
    main()
