#!/usr/bin/env python3
"""Compares `fusebench train` result files and checkpoints for tests/test_train.sh.

  close  RUN_A RUN_B CKPT_A CKPT_B RTOL   losses per step and final parameters within RTOL (relative)
  equal  RUN_A RUN_B CKPT_A CKPT_B        bitwise: every loss term, every parameter
  tail   FULL RESUMED CKPT_FULL CKPT_RES  the resumed run's steps equal the same steps of the full run
                                          bitwise, and so do the final checkpoints
  localmean RUN_P RUN_1 P RTOL            ddp --pairs local on P ranks: loss at step s equals the mean of
                                          the 1-rank losses at steps sP .. sP+P-1 (a 1-rank run of batch
                                          B/P at lr 0 sees exactly rank r's rows at step sP + r)
  blockdiag RUN_LOCAL RUN_BD CKPT_L CKPT_BD P   blockdiag = local with its pairwise terms x P; same parameters
Prints one line per check; exits 1 on the first failure.
"""
import sys

import h5py
import numpy as np


def steps(path):
    with h5py.File(path, "r") as f:
        g = f["steps"]   # a series: one dataset per variable along `step`
        return {c: g[c][()] for c in g.keys()}


def params(path):
    with h5py.File(path, "r") as f:
        return f["params"][()], int(f.attrs["step"])


def fail(msg):
    print("FAIL  " + msg)
    sys.exit(1)


def rel(a, b):
    scale = max(float(np.max(np.abs(b))), 1e-30)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) / scale


def main(argv):
    mode = argv[1]
    if mode == "close":
        a, b = steps(argv[2]), steps(argv[3])
        rtol = float(argv[6])
        if len(a["loss"]) != len(b["loss"]):
            fail(f"step counts differ: {len(a['loss'])} vs {len(b['loss'])}")
        per_step = np.abs(a["loss"] - b["loss"]) / np.maximum(np.abs(b["loss"]), 1e-30)
        pa, _ = params(argv[4])
        pb, _ = params(argv[5])
        e = rel(pa, pb)
        print(f"      losses over {len(per_step)} steps: worst relative difference {per_step.max():.2e}; "
              f"final parameters {e:.2e} (tolerance {rtol:g})")
        if per_step.max() > rtol:
            fail(f"step {int(per_step.argmax())}: loss {a['loss'][per_step.argmax()]!r} vs {b['loss'][per_step.argmax()]!r}")
        if e > rtol:
            fail(f"final parameters differ by {e:.2e} (relative, max norm)")
    elif mode == "losses":   # losses A B RTOL: per-step losses only (no checkpoints)
        a, b = steps(argv[2]), steps(argv[3])
        rtol = float(argv[4])
        if len(a["loss"]) != len(b["loss"]):
            fail(f"step counts differ: {len(a['loss'])} vs {len(b['loss'])}")
        per_step = np.abs(a["loss"] - b["loss"]) / np.maximum(np.abs(b["loss"]), 1e-30)
        print(f"      losses over {len(per_step)} steps: worst relative difference {per_step.max():.2e} "
              f"(tolerance {rtol:g})")
        if per_step.max() > rtol:
            fail(f"step {int(per_step.argmax())}: loss {a['loss'][per_step.argmax()]!r} vs {b['loss'][per_step.argmax()]!r}")
    elif mode == "equal":
        a, b = steps(argv[2]), steps(argv[3])
        for c in a:
            if c.endswith("_ms") or c == "samples_per_s":
                continue
            if not np.array_equal(a[c], b[c]):
                fail(f"column {c} differs between {argv[2]} and {argv[3]}")
        pa, _ = params(argv[4])
        pb, _ = params(argv[5])
        if not np.array_equal(pa.view(np.uint32), pb.view(np.uint32)):
            fail("final parameters are not bitwise equal")
        print(f"      {len(a['loss'])} steps: every loss term and all {pa.size} parameters bitwise equal")
    elif mode == "tail":
        a, b = steps(argv[2]), steps(argv[3])
        first = int(b["step"][0])
        idx = np.searchsorted(a["step"], first)
        for c in ("loss", "lr", "grad_norm"):
            if not np.array_equal(a[c][idx:], b[c]):
                fail(f"resumed run's {c} differs from the uninterrupted run's from step {first}")
        pa, sa = params(argv[4])
        pb, sb = params(argv[5])
        if sa != sb or not np.array_equal(pa.view(np.uint32), pb.view(np.uint32)):
            fail(f"final checkpoints differ (steps {sa} and {sb})")
        print(f"      resumed at step {first}: steps {first}..{int(b['step'][-1])} and the final parameters bitwise "
              f"equal to the uninterrupted run")
    elif mode == "localmean":
        p_run, one = steps(argv[2]), steps(argv[3])
        P, rtol = int(argv[4]), float(argv[5])
        n = len(p_run["loss"])
        if len(one["loss"]) < n * P:
            fail(f"the 1-rank run has {len(one['loss'])} steps, needs {n * P}")
        want = one["loss"][: n * P].reshape(n, P).mean(axis=1)
        err = np.abs(p_run["loss"] - want) / np.maximum(np.abs(want), 1e-30)
        print(f"      {n} steps on {P} ranks: loss = mean of the {P} local losses within {err.max():.2e}")
        if err.max() > rtol:
            fail(f"step {int(err.argmax())}: {p_run['loss'][err.argmax()]!r} vs mean of local {want[err.argmax()]!r}")
    elif mode == "blockdiag":
        loc, bd = steps(argv[2]), steps(argv[3])
        P = int(argv[6])
        worst = 0.0
        for c in loc:
            if c in ("step", "lr", "grad_norm", "loss") or c.endswith("_ms") or c == "samples_per_s":
                continue
            scale = P if c == "unifrac" else 1
            err = np.abs(bd[c] - scale * loc[c]) / np.maximum(np.abs(scale * loc[c]), 1e-30)
            worst = max(worst, float(err.max()))
            if err.max() > 1e-6:
                fail(f"term {c}: blockdiag {bd[c][err.argmax()]!r} vs {scale} x local {loc[c][err.argmax()]!r}")
        pl, _ = params(argv[4])
        pb, _ = params(argv[5])
        e = rel(pb, pl)
        print(f"      blockdiag terms = local terms (unifrac x {P}) within {worst:.2e}; parameters {e:.2e}")
        if e > 1e-6:
            fail(f"blockdiag parameters differ from local by {e:.2e}")
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
