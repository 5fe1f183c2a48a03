#!/usr/bin/python3
"""fusebench report: PNG figures and a static HTML page from a folder of HDF5 results.

usage: /usr/bin/python3 plots/report.py DIR [--out DIR/report]

Reads DIR/summary.h5 (`fusebench merge`) as the index of runs when present, else every
fusebench.train file under DIR, plus every fusebench.comm file; the numbers always come from the
per-run files. Study folders (`fusebench study`: DIR itself or its sub-folders holding study.h5)
make a Studies section, and their runs appear there only. Writes OUT/index.html, one PNG per
figure with the plotted numbers beside it as JSON (same name), and the tables as CSV. Figures
whose data is absent are listed as omitted. See plots/README.md.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import figures  # noqa: E402
import studies  # noqa: E402
import tables  # noqa: E402
from fbdata import StudyError, find_studies, load_results, load_study, optional  # noqa: E402
from page import Report, safe_name  # noqa: E402


def has_runs(results):
    return bool(results.runs or results.comms or results.projections)


def build(results, out, found=()):
    """The page: the Studies section when there are study folders (`found`: Study objects),
    then the sections of the runs outside them (all of them when there is none)."""
    states = {}
    for r in results.runs:
        states[r.state] = states.get(r.state, 0) + 1
    header = [f"Results folder: {results.folder}"]
    if found:
        header.append(f"{len(found)} study folder(s): " +
                      ", ".join(f"{s.name} ({s.verdict})" for s in found) + "; their runs are "
                      "shown in the Studies section only.")
    if has_runs(results):
        header.append(f"Runs found through {results.index}: {len(results.runs)} (" +
                      ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + f"); "
                      f"{len(results.comms)} fusebench comm file(s).")
    else:
        header.append("No run, comm or projection file outside the study folders: this report "
                      "has the Studies section only.")
    rep = Report(out, "fusebench report", header + results.notes)
    if found:
        studies_section(rep, results.folder, found)
    if has_runs(results):
        runs_sections(rep, results)
    return rep


def studies_section(rep, folder, found):
    rep.section("Studies", "Each study (`fusebench study NAME`) is a sweep with a decision rule: "
                "its verdict on the claim, the figures the rule read, and its plot.")
    rep.table("studies", "Studies and their verdicts",
              "One row per study folder: the document whose claim it tests, the verdict "
              "(CONFIRMED, REFUTED or INCONCLUSIVE) and the figures that decided it.",
              ["study", "document", "verdict", "reason"],
              [[s.name, s.attr("document"), s.verdict, s.attr("reason")] for s in found])
    taken = set()
    for s in found:
        # One stem per study; a second folder of the same study gets its folder name too.
        stem = safe_name(f"study_{s.name}")
        if stem in taken:
            stem = safe_name(f"study_{s.name}_{os.path.basename(s.folder)}")
        taken.add(stem)
        rel = os.path.relpath(s.folder, folder)
        rep.heading(f"Study {s.name} (document {s.attr('document')})", s.verdict,
                    [f"Claim: {s.attr('claim')}", f"Rule: {s.attr('rule')}",
                     f"Reason: {s.attr('reason')}",
                     f"Folder {rel}: {len(s.runs)} run(s) in {len(s.arms)} arm(s) "
                     f"({', '.join(s.arms)}); {s.attr('command_line')} at {s.attr('fusebench_commit')}, "
                     f"{s.attr('date')} on {s.attr('host')}."] +
                    [f"Note: {n}" for n in s.notes])
        columns = ["figure", "arm", "value", "spread", "n", "units", "threshold", "deciding",
                   "description"]
        rows = [[f.get("name"), f.get("arm") or "(study)", f.get("value"), optional(f.get("spread")),
                 f.get("n"), f.get("units"), optional(f.get("threshold")),
                 "DECIDING" if f.get("deciding") else "", f.get("description")] for f in s.figures]
        rep.table(f"{stem}_figures", f"{s.name}: figures", f"The /figures table of {rel}/study.h5: "
                  "value, spread (standard deviation over seeds; blank with one seed), n (seeds "
                  "or runs aggregated); the rows marked DECIDING are those the rule read.",
                  columns, rows)
        fig, caption, data, _ = studies.draw(s, where=rel)
        rep.figure(fig, stem, f"{s.name}: {s.verdict}", caption, data)
        for line in data["not_plotted"]:
            rep.omit(f"{s.name}: panel", line)


def runs_sections(rep, results):
    ctx = figures.Context(runs=results.runs, comms=results.comms,
                          methods=sorted({r.method for r in results.runs}),
                          projections=results.projections)
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="folder of fusebench result files (train, comm, summary.h5)")
    ap.add_argument("--out", help="output folder [default: DIR/report]")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.dir):
        ap.error(f"{args.dir}: not a folder")
    out = args.out or os.path.join(args.dir, "report")
    found, notes = [], []
    for d in find_studies(args.dir, skip_dir=out):
        try:
            found.append(load_study(d))
        except StudyError as e:     # its runs are then read as any others
            notes.append(f"{e}: not shown as a study")
    # In `fusebench study --list` order (study.h5's `order`), folders without one after, by name.
    found.sort(key=lambda st: (int(st.attrs.get("order", 1 << 30)), st.name))
    results = load_results(args.dir, skip_dir=out, also_skip=[s.folder for s in found])
    results.notes[:0] = notes
    if not has_runs(results) and not found:
        print(f"report: no fusebench train, comm, projection or study file under {args.dir}",
              file=sys.stderr)
        return 1
    rep = build(results, out, found)
    written = rep.write()
    omitted = [en for sec in rep.sections for en in sec.entries if en.kind == "omitted"]
    for path in written:
        print(f"wrote {path}")
    for en in omitted:
        print(f"omitted {en.title}: {en.caption}")
    for note in results.notes:
        print(f"note: {note}")
    for st in found:
        for note in st.notes:
            print(f"note: study {st.name}: {note}")
    print(f"report: {len(found)} studies, {rep.figures} figures, {len(omitted)} omitted, "
          f"{len(results.runs)} runs outside studies -> "
          f"{os.path.join(out, 'index.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
