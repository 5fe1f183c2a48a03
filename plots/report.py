#!/usr/bin/python3
"""fusebench report: PNG figures and a static HTML page from a folder of HDF5 results.

usage: /usr/bin/python3 plots/report.py DIR [--out DIR/report]

Reads DIR/summary.h5 (`fusebench merge`) as the index of runs when present, else every
fusebench.train file under DIR, plus every fusebench.comm file; the numbers always come from the
per-run files. Writes OUT/index.html, one PNG per figure with the plotted numbers beside it as
JSON (same name), and the tables as CSV. Figures whose data is absent are listed as omitted.
See plots/README.md.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import figures  # noqa: E402
import tables  # noqa: E402
from fbdata import load_results  # noqa: E402
from page import Report  # noqa: E402


def build(results, out):
    ctx = figures.Context(runs=results.runs, comms=results.comms,
                          methods=sorted({r.method for r in results.runs}),
                          projections=results.projections)
    states = {}
    for r in results.runs:
        states[r.state] = states.get(r.state, 0) + 1
    header = [f"Results folder: {results.folder}",
              f"Runs found through {results.index}: {len(results.runs)} (" +
              ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + f"); "
              f"{len(results.comms)} fusebench comm file(s)."] + results.notes
    rep = Report(out, "fusebench report", header)

    rep.section("Runs")
    tables.runs_table(rep, ctx)
    rep.section("Throughput and scaling",
                "Samples per second of the finished runs, and how they scale with MPI ranks.")
    figures.throughput(rep, ctx)
    figures.scaling(rep, ctx, "strong")
    figures.scaling(rep, ctx, "weak")
    rep.section("Step time", "Where each step's time goes, and the parallel strategies compared.")
    figures.step_breakdown(rep, ctx)
    figures.strategies(rep, ctx)
    rep.section("Training curves")
    figures.loss_curves(rep, ctx)
    rep.section("Gradients and fusion points",
                "NormMonitor and FusionDiagnostics traces (every --trace-every steps) of one run "
                "per scenario and method.")
    figures.grad_heatmaps(rep, ctx)
    figures.fusion(rep, ctx)
    rep.section("Counters", "PAPI counters and clocks per region, and fusebench's SDE counters.")
    figures.counters(rep, ctx)
    tables.sde_table(rep, ctx)
    rep.section("Collectives and the scaling projection")
    figures.collectives(rep, ctx)
    figures.projection(rep, ctx)
    rep.section("Verdicts")
    tables.verdicts_table(rep, ctx)
    return rep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="folder of fusebench result files (train, comm, summary.h5)")
    ap.add_argument("--out", help="output folder [default: DIR/report]")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.dir):
        ap.error(f"{args.dir}: not a folder")
    out = args.out or os.path.join(args.dir, "report")
    results = load_results(args.dir, skip_dir=out)
    if not results.runs and not results.comms and not results.projections:
        print(f"report: no fusebench train, comm or projection file under {args.dir}", file=sys.stderr)
        return 1
    rep = build(results, out)
    written = rep.write()
    omitted = [en for sec in rep.sections for en in sec.entries if en.kind == "omitted"]
    for path in written:
        print(f"wrote {path}")
    for en in omitted:
        print(f"omitted {en.title}: {en.caption}")
    for note in results.notes:
        print(f"note: {note}")
    print(f"report: {rep.figures} figures, {len(omitted)} omitted, {len(results.runs)} runs -> "
          f"{os.path.join(out, 'index.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
