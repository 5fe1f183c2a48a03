#!/usr/bin/python3
"""fusebench study plot: the figure of one study folder (`fusebench study`).

usage: /usr/bin/python3 plots/study_plot.py STUDY_DIR [--out FILE.png]

Reads STUDY_DIR/study.h5 (schema fusebench.study: the verdict, its figures, the sweep's runs) and
the run files its /runs table lists, and writes the study's plot (default STUDY_DIR/study.png)
with the plotted numbers beside it as JSON (same name). The title carries the study's name,
verdict and claim; a panel whose data is absent is left out and named under the panels and here.
Exit status 1 when STUDY_DIR has no readable fusebench.study file. See plots/README.md.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import studies  # noqa: E402
from fbdata import StudyError, load_study  # noqa: E402
from page import save_figure  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="a study folder (holding study.h5)")
    ap.add_argument("--out", help="the PNG to write [default: DIR/study.png]; the JSON goes beside it")
    args = ap.parse_args(argv)
    if os.path.basename(args.dir) == "study.h5" and os.path.isfile(args.dir):
        args.dir = os.path.dirname(args.dir) or "."     # the file named instead of its folder
    try:
        study = load_study(args.dir)
    except StudyError as e:
        print(f"study_plot: {e}", file=sys.stderr)
        return 1
    out = args.out or os.path.join(args.dir, "study.png")
    if not out.endswith(".png"):
        ap.error(f"--out {out}: not a .png file name")
    if os.path.dirname(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
    fig, caption, data, unplotted = studies.draw(study)
    data["caption"] = caption
    print(f"{study.name}: {study.verdict} ({len(study.runs)} runs)")
    for line in study.notes + unplotted:
        print(f"note: {line}")
    for path in save_figure(fig, out, data):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
