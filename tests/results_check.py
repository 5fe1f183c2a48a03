#!/usr/bin/env python3
"""Checks a `fusebench train` result file (schema fusebench.train, results/README.md).

usage: results_check.py FILE MODE [ARGS]
  complete RANKS THREADS   a clean run: complete = 1, steps, traces with named dimensions (xarray),
                           counters from every rank and thread, availability stated, SDE counters
  verdict NAME SUBSTRING   the verdict NAME fired, its subject containing SUBSTRING
  clean                    no verdict fired
  killed ROWS              complete = 0, exactly ROWS steps (0..ROWS-1), every trace series intact
  failed WORDS             complete = 0 and the `error` attribute contains WORDS
Prints one line of what it saw; exits 1 with the reason when a check fails.
"""
import sys

import h5py
import numpy as np


def fail(msg):
    print("      " + msg)
    sys.exit(1)


def s(x):
    return x.decode() if isinstance(x, bytes) else str(x)


def verdicts(f):
    v = f["verdicts"]
    return [dict(name=s(v["verdict"][i]), subject=s(v["subject"][i]), fired=int(v["fired"][i]),
                 detail=s(v["detail"][i])) for i in range(len(v["verdict"]))]


def check_series(f, name):
    """Every variable of a series has as many rows as its step dataset, which increases."""
    g = f[name]
    steps = g["step"][()]
    if np.any(np.diff(steps) <= 0):
        fail(f"{name}/step does not increase: {steps}")
    for k, d in g.items():
        if isinstance(d, h5py.Dataset) and d.ndim >= 1 and k != "step" and d.dims[0] and \
                d.dims[0][0].name.endswith("/step") and d.shape[0] != len(steps):
            fail(f"{name}/{k} has {d.shape[0]} rows, step has {len(steps)}")
    return len(steps)


def main(argv):
    path, mode = argv[1], argv[2]
    with h5py.File(path, "r") as f:
        a = f.attrs
        if s(a["schema"]) != "fusebench.train":
            fail(f"schema {a['schema']!r}")
        complete = int(a["complete"])
        if mode == "complete":
            ranks, threads = int(argv[3]), int(argv[4])
            if complete != 1:
                fail(f"complete = {complete}, error = {a.get('error')!r}")
            n = check_series(f, "steps")
            for name in ["traces/params", "traces/modules", "traces/eval"]:
                check_series(f, name)
            for p in f["traces/fusion"]:
                check_series(f, "traces/fusion/" + p)
            c = f["counters"]
            if s(c.attrs["statement"]) == "":
                fail("no statement on hardware counters")
            ev = c["events"]
            for i in range(len(ev["event"])):
                if not ev["available"][i] and s(ev["reason"][i]) == "":
                    fail(f"event {s(ev['event'][i])} unavailable without a reason")
            virt = c["virt_ns"][()]              # (rank, thread, region)
            if virt.shape[:2] != (ranks, threads):
                fail(f"virt_ns shape {virt.shape}, want ({ranks}, {threads}, regions)")
            regions = [s(x) for x in c["regions/region"][()]]
            fwd = regions.index("forward")
            if np.any(virt[:, :, fwd] <= 0):
                fail(f"a rank or thread has no forward CPU time: {virt[:, :, fwd]}")
            real = c["real_ns"][()]
            if np.any(real[:, fwd] <= 0):
                fail(f"a rank has no forward wall time: {real[:, fwd]}")
            sde = {s(k): int(v) for k, v in zip(f["sde/counter"][()], f["sde/value"][()])}
            if sde["flops_forward"] <= 0 or sde["allreduce_calls"] <= 0:
                fail(f"SDE counters empty: {sde}")
            import xarray as xr
            ds = xr.open_dataset(path, engine="h5netcdf", group="traces/params")
            if set(ds["grad_norm"].dims) != {"step", "tensor"}:
                fail(f"traces/params dims {ds['grad_norm'].dims}")
            print(f"      {n} steps; counters of {ranks} ranks x {threads} threads; {len(regions)} regions; "
                  f"statement: {s(c.attrs['statement'])[:60]}...; sde flops_forward {sde['flops_forward']}; "
                  f"xarray dims {dict(ds.sizes)}")
        elif mode == "verdict":
            name, sub = argv[3], argv[4]
            hits = [v for v in verdicts(f) if v["name"] == name and v["fired"] and sub in v["subject"]]
            if not hits:
                fail(f"verdict {name} with subject ~ {sub!r} did not fire: "
                     f"{[(v['name'], v['subject'], v['fired']) for v in verdicts(f)]}")
            print(f"      {name} fired: {hits[0]['detail'][:150]}")
        elif mode == "clean":
            fired = [(v["name"], v["subject"]) for v in verdicts(f) if v["fired"]]
            if fired:
                fail(f"verdicts fired on the control: {fired}")
            print(f"      {len(verdicts(f))} verdicts checked, none fired")
        elif mode == "killed":
            rows = int(argv[3])
            if complete != 0:
                fail("a killed run says complete = 1")
            steps = f["steps/step"][()]
            if list(steps) != list(range(rows)):
                fail(f"steps {list(steps)}, want 0..{rows - 1}")
            for name in ["steps", "traces/params", "traces/modules"]:
                check_series(f, name)
            loss = f["steps/loss"][()]
            if not np.all(np.isfinite(loss)):
                fail(f"flushed losses not finite: {loss}")
            print(f"      killed file opens: complete = 0, {rows} flushed steps intact, "
                  f"{len(f['traces/params/step'])} traced steps")
        elif mode == "failed":
            words = argv[3]
            err = s(a.get("error", ""))
            if complete != 0 or words not in err:
                fail(f"complete = {complete}, error = {err!r} (want it to mention {words!r})")
            print(f"      complete = 0, error: {err[:120]}")
        else:
            fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
