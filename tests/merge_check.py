#!/usr/bin/env python3
"""Checks a `fusebench merge` summary file (schema fusebench.summary, results/README.md) against
the per-run files it merged, read here independently with h5py.

usage: merge_check.py SUMMARY DIR ID=STATE...
  Every run listed, and no other, is a row of /runs with that state; the root counts agree; for
  every run with a file: settings, samples_per_s, median step time, final loss and every final loss
  term equal the run file's own values, fired verdicts are counted; a failed run keeps its error;
  the manifest's other columns are copied as param_<name>; the weak and strong scaling efficiencies equal the ones computed here from the run files (the
  fewest-rank run of a group is 1); /links/<id> opens each run file (and only those), also when the
  summary is opened from another working directory.
Prints what it saw; exits 1 with the reason when a check fails.
"""
import math
import os
import sys

import h5py
import numpy as np


def fail(msg):
    print("      " + msg)
    sys.exit(1)


def s(x):
    return x.decode() if isinstance(x, bytes) else str(x)


def table(group):
    """A table group as {column: list} (strings decoded), in column order."""
    return {c: [s(v) for v in group[c][()]] if group[c].dtype.kind == "O" else list(group[c][()])
            for c in s(group.attrs["columns"]).split(",")}


def same(a, b):
    """Equal floats, NaN equal to NaN."""
    return (math.isnan(a) and math.isnan(b)) or a == b


def run_file(path):
    """What the merge should have taken from one run file, read without the merge's code."""
    with h5py.File(path, "r") as f:
        cfg, steps = f["config"].attrs, f["steps"]
        summary = f["summary"].attrs if "summary" in f else {}
        loss = steps["loss"][()]
        terms = {k: (d[-1] if len(d) else math.nan) for k, d in steps.items()
                 if s(d.attrs.get("description", "")) == "loss term"}
        fired = int(np.sum(f["verdicts/fired"][()])) if "verdicts" in f else -1
        return dict(complete=int(f.attrs["complete"]), error=s(f.attrs.get("error", "")),
                    scenario=s(cfg["scenario"]), method=s(cfg["method"]), variant=int(cfg["variant"]),
                    parallel=s(cfg["parallel"]), pairs=s(cfg["pairs"]), threads=int(f.attrs["threads"]),
                    ranks=int(f.attrs["ranks"]), batch=int(cfg["batch"]), batch_per_rank=int(cfg["batch_per_rank"]),
                    steps_run=len(steps["step"]), samples_per_s=float(summary.get("samples_per_s", math.nan)),
                    median_step_ms=float(summary.get("median_step_ms", math.nan)),
                    final_loss=float(loss[-1]) if len(loss) else math.nan, terms=terms, fired=fired)


def efficiencies(runs, weak):
    """{id: (efficiency, reference id)} by the documented rule, for the done runs of `runs`."""
    key = lambda r: (r["scenario"], r["method"], r["variant"], r["parallel"], r["pairs"], r["threads"],
                     r["batch_per_rank"] if weak else r["batch"])
    rate = lambda r: r["samples_per_s"] / r["ranks"] if weak else 1 / (r["median_step_ms"] * r["ranks"])
    done = [(i, r) for i, r in runs.items() if r["complete"] == 1]
    out = {}
    for i, r in done:
        group = [(j, o) for j, o in done if key(o) == key(r)]
        if len({o["ranks"] for _, o in group}) < 2:
            continue
        ref_id, ref = min(group, key=lambda g: g[1]["ranks"])   # the first with the fewest ranks
        out[i] = (rate(r) / rate(ref), ref_id)
    return out


def main(argv):
    summary_path, folder = argv[1], argv[2]
    want = dict(a.split("=", 1) for a in argv[3:])
    summary_path = os.path.abspath(summary_path)
    os.chdir("/")   # external links must resolve against the summary's folder, not the working directory
    with h5py.File(summary_path, "r") as f:
        if s(f.attrs["schema"]) != "fusebench.summary" or int(f.attrs["schema_version"]) != 1:
            fail(f"schema {f.attrs['schema']!r} version {f.attrs['schema_version']}")
        t = table(f["runs"])
        ids = t["id"]
        rows = {i: k for k, i in enumerate(ids)}
        if sorted(ids) != sorted(want) or len(ids) != len(set(ids)):
            fail(f"runs {ids}, expected {sorted(want)}")
        if int(f.attrs["runs"]) != len(ids):
            fail(f"root runs = {f.attrs['runs']}, table has {len(ids)}")
        for state in ["done", "failed", "cut", "missing", "unreadable"]:
            n = sum(1 for v in want.values() if v == state)
            if int(f.attrs[f"runs_{state}"]) != n:
                fail(f"runs_{state} = {f.attrs[f'runs_{state}']}, expected {n}")
        for i, state in want.items():
            if t["state"][rows[i]] != state:
                fail(f"{i}: state {t['state'][rows[i]]!r}, expected {state!r} (error: {t['error'][rows[i]]})")

        # Every value against the run file, read independently.
        runs = {i: run_file(os.path.join(folder, t["file"][rows[i]]))
                for i, st in want.items() if st in ("done", "failed", "cut")}
        for i, r in runs.items():
            k = rows[i]
            for c in ["scenario", "method", "parallel", "pairs", "variant", "ranks", "threads", "batch",
                      "batch_per_rank", "steps_run"]:
                if t[c][k] != r[c]:
                    fail(f"{i}: {c} = {t[c][k]!r}, the file says {r[c]!r}")
            for c in ["samples_per_s", "median_step_ms", "final_loss"]:
                if not same(float(t[c][k]), r[c]):
                    fail(f"{i}: {c} = {t[c][k]!r}, the file says {r[c]!r}")
            for term, v in r["terms"].items():
                if not same(float(t[f"final_{term}"][k]), float(v)):
                    fail(f"{i}: final_{term} = {t[f'final_{term}'][k]!r}, the file says {v!r}")
            if t["verdicts_fired"][k] != r["fired"]:
                fail(f"{i}: verdicts_fired = {t['verdicts_fired'][k]}, the file has {r['fired']} fired")
            if want[i] == "failed" and (t["error"][k] != r["error"] or not r["error"]):
                fail(f"{i}: error {t['error'][k]!r}, the file says {r['error']!r}")
        for i, st in want.items():
            if st in ("missing", "unreadable") and not t["error"][rows[i]]:
                fail(f"{i}: {st} without a reason in the error column")

        # The manifest's other columns, copied as param_<name> ("" for runs it does not list).
        manifest = os.path.join(folder, "manifest.tsv")
        if os.path.exists(manifest):
            lines = [ln.rstrip("\n").split("\t") for ln in open(manifest) if ln.strip() and not ln.startswith("#")]
            header = lines[0]
            listed = {r[header.index("id")]: r for r in lines[1:]}
            file_col = "file" if "file" in header else "out"   # sweep plan's name for it
            params = [c for c in header if c not in ("id", file_col)]
            for i in ids:
                for c in params:
                    v = listed[i][header.index(c)] if i in listed else ""
                    if t[f"param_{c}"][rows[i]] != v:
                        fail(f"{i}: param_{c} = {t[f'param_{c}'][rows[i]]!r}, the manifest says {v!r}")

        # Scaling efficiencies against the rule computed here.
        figures = []
        for kind in ["weak", "strong"]:
            expect = efficiencies(runs, kind == "weak")
            for i in ids:
                got, ref = float(t[f"{kind}_efficiency"][rows[i]]), t[f"{kind}_reference"][rows[i]]
                e, eref = expect.get(i, (math.nan, ""))
                if not (same(got, e) or abs(got - e) <= 1e-12 * abs(e)) or ref != eref:
                    fail(f"{i}: {kind}_efficiency {got!r} against {ref!r}, expected {e!r} against {eref!r}")
                if ref == i and got != 1.0:
                    fail(f"{i}: the reference of its own group has {kind} efficiency {got!r}, not 1")
                if not math.isnan(got):
                    figures.append(f"{kind} {i}={got:.4f}")

        # External links: each run file's root, and nothing for runs without a readable file.
        linked = 0
        for i, st in want.items():
            has = i in f["links"]
            if st in ("done", "failed", "cut"):
                if not has:
                    fail(f"/links/{i} is absent")
                g = f["links"][i]
                if s(g.attrs["schema"]) != "fusebench.train" or len(g["steps/step"]) != runs[i]["steps_run"]:
                    fail(f"/links/{i} does not open {t['file'][rows[i]]}")
                linked += 1
            elif has:
                fail(f"/links/{i} exists for a {st} run")
    counts = ", ".join(f"{sum(1 for v in want.values() if v == st)} {st}" for st in
                       ["done", "failed", "cut", "missing", "unreadable"])
    print(f"      {len(ids)} runs ({counts}); values equal the run files'; {linked} links open; " +
          ("; ".join(figures) or "no efficiency defined (as computed here)"))


if __name__ == "__main__":
    main(sys.argv)
