"""The report's tables: every run and its state, every run's verdicts, the SDE counters."""

from fbdata import py

STATE_ORDER = {"failed": 0, "unreadable": 1, "cut": 2, "missing": 3, "done": 4}


def runs_table(rep, ctx):
    columns = ["id", "file", "state", "scenario", "method", "strategy", "ranks", "threads",
               "batch", "seed", "steps done/planned", "samples/s", "final loss",
               "verdicts fired", "error"]
    rows = []
    for r in sorted(ctx.runs, key=lambda r: (STATE_ORDER.get(r.state, 9), r.scenario, r.method, r.id)):
        planned = r.cfg("steps", "")
        if r.path:
            sizes = [r.ranks, r.threads, r.batch, r.seed, f"{r.n_steps}/{planned}"]
        else:   # a missing run: what the summary row says, blank where it says nothing
            sizes = [r.cfg(k, "") for k in ("ranks", "threads", "batch", "seed")] + [f"-/{planned}"]
        rows.append([r.id, r.rel, r.state, r.scenario, r.method, r.strategy] + sizes +
                    [r.summary.get("samples_per_s"), r.final("loss"),
                     r.summary.get("verdicts_fired"), r.error])
    counts = {}
    for r in ctx.runs:
        counts[r.state] = counts.get(r.state, 0) + 1
    caption = ("Every run, unfinished ones first. State: done (root complete = 1), failed "
               "(complete = 0 and the root error attribute, shown in the last column), cut "
               "(complete = 0 without error: killed, or still running), missing (listed in "
               "summary.h5 without a file), unreadable (h5py could not open it). Counts: " +
               ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ".")
    rep.table("runs", "Runs", caption, columns, rows)


def verdicts_table(rep, ctx):
    columns = ["run", "state", "scenario", "method", "verdict", "subject", "value", "threshold",
               "detail"]
    fired_rows, quiet_rows, absent_rows = [], [], []
    for r in sorted(ctx.runs, key=lambda r: (r.scenario, r.method, r.id)):
        head = [r.id, r.state, r.scenario, r.method]
        v = r.verdicts
        if v is None:
            absent_rows.append(head + ["(no /verdicts)", "", None, None,
                                       "written only at the end of a finished run"])
            continue
        fired = [i for i, x in enumerate(v["fired"]) if x]
        fired_rows += [head + [py(v["verdict"][i]), py(v["subject"][i]), float(v["value"][i]),
                               float(v["threshold"][i]), py(v["detail"][i])] for i in fired]
        if not fired:
            unevaluable = sum(1 for x in v["evaluable"] if not x)
            quiet_rows.append(head + ["none fired", "", None, None,
                                      f"{len(v['fired'])} checks, {unevaluable} not evaluable"])
    rows = fired_rows + quiet_rows + absent_rows
    caption = (f"The stability verdicts that fired in each run (/verdicts rows with fired = 1: "
               f"verdict, subject, the measured value, the threshold and the detail line), "
               f"{len(fired_rows)} in all and listed first; then one row per run where none fired "
               f"(with its count of checks) and per run without /verdicts.")
    rep.table("verdicts", "Verdicts", caption, columns, rows)


def sde_table(rep, ctx):
    runs = [r for r in ctx.runs if r.sde is not None and len(r.sde.get("counter", []))]
    if not runs:
        return rep.omit("SDE counters", "no run has /sde (written at the end of a finished run)")
    units, nonzero = {}, set()
    for r in runs:
        for name, value, unit in zip(r.sde["counter"], r.sde["value"], r.sde["units"]):
            units.setdefault(str(name), str(unit))
            if value:
                nonzero.add(str(name))
    order = [n for n in units if n in nonzero]      # the files' own order
    rows = []
    for r in sorted(runs, key=lambda r: (r.scenario, r.method, r.id)):
        values = {str(n): int(v) for n, v in zip(r.sde["counter"], r.sde["value"])}
        rows.append([r.id, r.scenario, r.method, r.strategy, r.ranks] +
                    [values.get(n) for n in order])
    caption = ("fusebench's PAPI software-defined counters (/sde value, summed over ranks; "
               "sde:::fusebench::<counter>) of every finished run; counters that are zero in "
               "every run are left out.")
    rep.table("sde", "SDE counters", caption,
              ["run", "scenario", "method", "strategy", "ranks"] +
              [f"{n} ({units[n]})" for n in order], rows)
