"""The plot of each fusebench study: one function per study name (STUDIES), each adding the
panels its data allows to a Plot; draw() renders them under a title carrying the study's name,
verdict and claim. A panel whose series or attribute is absent from every run is left out and
listed as "not plotted" (in the figure, the caption and the plotted data), never drawn empty.
The studies, their arms and what to plot: plots/README.md ("Studies").
"""

import math
import statistics
import textwrap

import numpy as np
from matplotlib import ticker

from fbdata import optional
from figures import (dedupe_legend, groupby, log_scale_if_wide, palette, readable_log_axis,
                     run_ref, slots, subplots)

VERDICT_COLORS = {"CONFIRMED": "#2e7d32", "REFUTED": "#c62828", "INCONCLUSIVE": "#757575"}
RATIO_LINES = (5, 0.2)          # the magnitude-imbalance thresholds, as in the report's fusion figure
EARLY_WINDOW = 0.2              # gate_bias: the share of the schedule its claim is about
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
OTHER = "#9e9e9e"               # an arm the /runs table does not name
PANEL_W, PANEL_H, MAX_COLS = 5.6, 3.8, 2


class Plot:
    """The panels of one study's figure, drawn only once every panel is known (so the grid has
    no empty cells), with the data each plots and what could not be plotted."""

    def __init__(self, study):
        self.study = study
        self.panels = []        # (title, description, data, draw(ax, data))
        self.missing = []       # panels left out, and why
        self.notes = []         # other remarks (partial data)
        self.used = {}          # run id -> Run whose numbers are plotted
        self.colors = dict(zip(study.arms, palette(len(study.arms))))

    def panel(self, title, description, data, draw):
        self.panels.append((title, description, data, draw))

    def miss(self, title, why):
        self.missing.append(f"{title}: {why}")

    def color(self, arm):
        """An arm's colour; a figure row's arm may be ARM@RANKS or ARM@SCENARIO."""
        return self.colors.get(arm, self.colors.get(str(arm).split("@")[0], OTHER))

    def use(self, run):
        self.used[run.id] = run

    def runs(self):
        """The runs with a file (any state), in the /runs table's order."""
        return [r for r in self.study.runs if r.path]


# ------------------------------------------------------------------------- reading the runs
def series_at(run, path):
    """(step, values) of a run's series at path ("steps/loss", "traces/fusion/<point>/ratio",
    "traces/eval/max_abs_diff"), or None when absent or never finite (the traces write NaN
    where a method has no gate or attention)."""
    group, var = path.rsplit("/", 1)
    g = {"steps": run.steps, "traces/eval": run.eval}.get(group)
    if g is None and group.startswith("traces/fusion/"):
        g = run.fusion.get(group[len("traces/fusion/"):])
    if not g or var not in g or "step" not in g:
        return None
    v = np.asarray(g[var], float)
    return (np.asarray(g["step"]), v) if np.isfinite(v).any() else None


def finite_mean(values):
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def run_mean(run, num, den=None):
    """The mean over traced steps of the series num (or of num / den, step by step); None
    where a series is absent."""
    a = series_at(run, num)
    b = series_at(run, den) if den else None
    if a is None or (den and b is None):
        return None
    return finite_mean(a[1] / b[1] if den else a[1])


def summary_value(run, key):
    v = run.summary.get(key)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def token_grad_norm(run):
    """(step, grad norm) of the modality token's tensor (label containing "modality_token", else
    any "token"), with its label; None without /traces/params or such a tensor."""
    prm = run.params
    if not prm or "grad_norm" not in prm or "tensor" not in prm:
        return None
    labels = [str(t) for t in prm["tensor"]]
    col = next((i for i, t in enumerate(labels) if "modality_token" in t),
               next((i for i, t in enumerate(labels) if "token" in t), None))
    if col is None:
        return None
    return np.asarray(prm["step"]), np.asarray(prm["grad_norm"], float)[:, col], labels[col]


def ref(run):
    return dict(run_ref(run), arm=run.arm, method=run.method, ranks=run.ranks)


# ------------------------------------------------------------------------- panel makers
def symlog(ax, values):
    """Symmetric log y axis, linear below the smallest positive value (exact zeros show)."""
    v = np.abs(np.asarray(values, float))
    v = v[np.isfinite(v) & (v > 0)]
    ax.set_yscale("symlog", linthresh=float(v.min()) if v.size else 1.0)


def plain_log_x(ax):
    """Log x axis labelled 200, 500, 1000 rather than 2x10^2 (throughputs, milliseconds)."""
    ax.set_xscale("log")
    fmt = ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(fmt)
    lo, hi = ax.get_xlim()
    # Minor labels only where the axis spans little more than a decade: over several decades
    # every 2..9 would be labelled and they overlap.
    ax.xaxis.set_minor_formatter(fmt if hi / lo < 30 else ticker.NullFormatter())
    ax.tick_params(axis="x", which="minor", labelsize=7)


def scale_y(ax, scale, values):
    """scale: linear, log, symlog, or auto (log where the positive values span > 30x)."""
    if scale == "auto":
        v = np.ravel(np.asarray(values, float))
        log_scale_if_wide(ax, v[np.isfinite(v)].tolist())
    elif scale == "log":
        ax.set_yscale("log")
        readable_log_axis(ax)
    elif scale == "symlog":
        symlog(ax, values)


def lines(p, title, what, extract, ylabel, scale="linear", hlines=(), shade=None, dashed=None):
    """A panel of one thin line per run (per seed) against the step, coloured by arm.
    extract(run) -> (step, values) or None; dashed: another extract drawn dashed in the same
    colour (a budget line); shade: (x0, x1) of a window to shade."""
    entries = []
    for r in p.runs():
        got = extract(r)
        if got is None:
            continue
        p.use(r)
        entry = dict(ref(r), step=got[0], value=got[1])
        if len(got) > 2:
            entry["label"] = got[2]
        extra = dashed[1](r) if dashed else None
        if extra is not None:
            entry[dashed[0]] = {"step": extra[0], "value": extra[1]}
        entries.append(entry)
    if not entries:
        return p.miss(title, f"no run has {what}")
    if dashed and not any(dashed[0] in e for e in entries):
        p.notes.append(f"{title}: no run has {dashed[0]}, so no dashed line")

    def draw(ax, data):
        for e in data["runs"]:
            c = p.color(e["arm"])
            ax.plot(e["step"], e["value"], color=c, lw=0.9, alpha=0.75, label=e["arm"])
            if dashed and dashed[0] in e:
                ax.plot(e[dashed[0]]["step"], e[dashed[0]]["value"], color=c, lw=0.9, ls="--")
        if dashed and any(dashed[0] in e for e in data["runs"]):
            ax.plot([], [], color="gray", lw=0.9, ls="--", label=f"{dashed[0]} (dashed, arm's colour)")
        for y in hlines:
            ax.axhline(y, color="gray", lw=0.8, ls="--")
        if data.get("shade"):
            ax.axvspan(*data["shade"], color="gold", alpha=0.2, label="early window")
        scale_y(ax, scale, np.concatenate([np.ravel(e["value"]) for e in data["runs"]]))
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        dedupe_legend(ax)

    data = {"series": what, "runs": entries}
    if shade:
        data["shade"] = list(shade)
    p.panel(title, f"{title}: {what} against the step, one thin line per run (seed), colour per arm"
            + (f", {scale} y" if scale in ("log", "symlog") else "")
            + (f", dashed lines at {' and '.join(map(str, hlines))}" if hlines else "")
            + (f", the early window {shade[0]:g}..{shade[1]:g} shaded" if shade else "") + ".",
            data, draw)


def method_arm_bars(p, title, what, value, ylabel):
    """Bars per method, one per arm (mean over the runs, dots: single runs), log y.
    value(run) -> float or None."""
    groups = []
    for (method, arm), grp in groupby(p.runs(), lambda r: (r.method, r.arm)).items():
        vals = [(r, value(r)) for r in grp]
        vals = [(r, v) for r, v in vals if v is not None and math.isfinite(v)]
        if vals:
            for r, _ in vals:
                p.use(r)
            groups.append({"method": method, "arm": arm,
                           "mean": statistics.fmean(v for _, v in vals),
                           "runs": [dict(ref(r), value=v) for r, v in vals]})
    if not groups:
        return p.miss(title, f"no run has {what}")

    def draw(ax, data):
        methods = list(dict.fromkeys(g["method"] for g in data["groups"]))
        arms = [a for a in p.study.arms if any(g["arm"] == a for g in data["groups"])]
        width = 0.8 / max(len(arms), 1)
        for g in data["groups"]:
            x = slots(methods.index(g["method"]), len(arms))[arms.index(g["arm"])]
            ax.bar(x, g["mean"], width=0.9 * width, color=p.color(g["arm"]), label=g["arm"])
            ax.scatter([x] * len(g["runs"]), [r["value"] for r in g["runs"]], s=8, color="black",
                       zorder=3)
        ax.set_xticks(range(len(methods)), methods, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        dedupe_legend(ax, order=arms)

    p.panel(title, f"{title}: {what} per method, a bar per arm (mean over traced steps and "
            f"runs; dots: single runs), log y.", {"value": what, "groups": groups}, draw)


def scatter(p, title, what, points, xlabel, ylabel, color_by, marker_by, logx=True, logy=True):
    """A scatter of points (dicts with x, y: numbers or arrays) coloured by one key of each
    point and marked by another."""
    if not points:
        return p.miss(title, f"no run has {what}")
    colors = {k: (p.color(k) if color_by == "arm" else c) for k, c in
              zip(sorted({pt[color_by] for pt in points}, key=str),
                  palette(len({pt[color_by] for pt in points})))}
    marks = {k: MARKERS[i % len(MARKERS)]
             for i, k in enumerate(sorted({pt[marker_by] for pt in points}, key=str))}

    def draw(ax, data):
        for pt in data["points"]:
            ax.scatter(pt["x"], pt["y"], s=14, alpha=0.7, color=colors[pt[color_by]],
                       marker=marks[pt[marker_by]], label=f"{pt[color_by]}, {marker_by} {pt[marker_by]}")
        if logx:
            plain_log_x(ax)
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        dedupe_legend(ax)

    p.panel(title, f"{title}: {what}; colour: {color_by}, marker: {marker_by}"
            + (", log-log" if logx and logy else "") + ".", {"points": points}, draw)


def figure_bars(p, name, title=None, rows=None):
    """Bars of the /figures rows named `name`, one per arm (the whole study: "(study)"), with
    the spread (std over seeds) as error bars, the threshold dashed; deciding rows hatched."""
    title = title or f"figure {name}"
    rows = p.study.figure_rows(name) if rows is None else rows
    rows = [f for f in rows if isinstance(f.get("value"), (int, float))]
    if not rows:
        return p.miss(title, f"no /figures row named {name}")
    bars = [{"arm": str(f.get("arm", "")) or "(study)", "value": f["value"],
             "spread": f.get("spread"), "n": f.get("n"), "threshold": f.get("threshold"),
             "deciding": int(f.get("deciding", 0) or 0), "units": str(f.get("units", ""))}
            for f in rows]

    def draw(ax, data):
        for x, b in enumerate(data["bars"]):
            ax.bar(x, b["value"], yerr=optional(b["spread"]), capsize=3, width=0.7,
                   color=p.color(b["arm"]),
                   edgecolor="black" if b["deciding"] else "none",
                   hatch="//" if b["deciding"] else None)
            t = optional(b["threshold"])
            if t is not None:
                ax.plot([x - 0.45, x + 0.45], [t, t], color="black", ls="--", lw=1,
                        label="threshold")
        many = len(data["bars"]) > 3        # long arm@ranks labels: slanted
        ax.set_xticks(range(len(data["bars"])), [b["arm"] for b in data["bars"]], fontsize=7,
                      rotation=20 if many else 0, ha="right" if many else "center")
        ax.set_ylabel(f"{name} ({data['bars'][0]['units']})" if data["bars"][0]["units"] else name)
        ax.axhline(0, color="black", lw=0.5)
        dedupe_legend(ax)

    p.panel(title, f"{title}: the /figures value per arm, error bars: spread (std over seeds), "
            f"dashed: threshold, hatched: deciding.", {"figure": name, "bars": bars}, draw)


# ------------------------------------------------------------------------- the studies
def imbalance(p):
    for point in ("fusion", "calendar_fusion"):
        path = f"traces/fusion/{point}/ratio"
        lines(p, f"{point}: norm_a / norm_b", path, lambda r, path=path: series_at(r, path),
              "fusion ratio", scale="log", hlines=RATIO_LINES)


def grad_share(run):
    """The weak branch's gradient share: grad_norm_b / grad_norm_a over the traced steps."""
    return run_mean(run, "traces/fusion/fusion/grad_norm_b", "traces/fusion/fusion/grad_norm_a")


def starvation(p):
    points = []
    for r in p.runs():
        g = series_at(r, "traces/fusion/fusion/gate_mean")
        b = series_at(r, "traces/fusion/fusion/grad_norm_b")
        if g is not None and b is not None:
            p.use(r)
            points.append(dict(ref(r), x=g[1], y=b[1]))
    scatter(p, "grad_norm_b vs gate_mean", "traces/fusion/fusion/grad_norm_b against gate_mean "
            "at every traced step of every run", points, "gate_mean", "grad_norm_b",
            color_by="method", marker_by="arm")
    method_arm_bars(p, "grad_norm_b / grad_norm_a", "traces/fusion/fusion grad_norm_b / "
                    "grad_norm_a", grad_share, "grad_norm_b / grad_norm_a")


def multiplication(p):
    method_arm_bars(p, "weak branch's gradient share", "traces/fusion/fusion grad_norm_b / "
                    "grad_norm_a", grad_share, "grad_norm_b / grad_norm_a")
    method_arm_bars(p, "fusion ratio", "traces/fusion/fusion/ratio",
                    lambda r: run_mean(r, "traces/fusion/fusion/ratio"), "norm_a / norm_b")


def gate_bias(p):
    runs = p.runs()
    planned = [int(r.cfg("steps", 0) or 0) for r in runs]
    last = [int(r.steps["step"][-1]) + 1 for r in runs if len(r.steps.get("step", []))]
    steps = max(planned + last, default=0)
    shade = (0, EARLY_WINDOW * steps) if steps else None
    for var in ("grad_norm", "loss"):
        lines(p, f"steps/{var}", f"steps/{var}", lambda r, var=var: series_at(r, f"steps/{var}"),
              var, scale="auto", shade=shade)


def stochastic_eval(p):
    groups = []
    by_arm = groupby([r for r in p.runs() if series_at(r, "traces/eval/max_abs_diff")],
                     lambda r: r.arm)
    for arm, grp in sorted(by_arm.items(), key=lambda kv: p.study.arms.index(kv[0])):
        vals = [(r, float(np.nanmax(series_at(r, "traces/eval/max_abs_diff")[1]))) for r in grp]
        for r, _ in vals:
            p.use(r)
        groups.append({"arm": arm, "max": max(v for _, v in vals),
                       "runs": [dict(ref(r), max=v) for r, v in vals]})
    if groups:
        def draw(ax, data):
            for x, g in enumerate(data["groups"]):
                ax.bar(x, g["max"], width=0.7, color=p.color(g["arm"]))
                ax.scatter([x] * len(g["runs"]), [r["max"] for r in g["runs"]], s=8,
                           color="black", zorder=3)
            ax.set_xticks(range(len(data["groups"])), [g["arm"] for g in data["groups"]],
                          fontsize=7, rotation=15)
            symlog(ax, [g["max"] for g in data["groups"]])
            ax.set_ylabel("max |out1 - out2|")
        p.panel("evaluation determinism", "evaluation determinism: the largest traces/eval/"
                "max_abs_diff (two evaluation passes on the same batch) over the checks and "
                "runs of each arm (dots: single runs), symlog y; 0 = deterministic.",
                {"groups": groups}, draw)
    else:
        p.miss("evaluation determinism", "no run has traces/eval/max_abs_diff")
    cost = "traces/fusion/fusion/expected_cost"
    lines(p, "expected cost", cost, lambda r: series_at(r, cost), "expected_cost",
          dashed=("cost_budget", lambda r: series_at(r, "traces/fusion/fusion/cost_budget")))


def dead_parameter(p):
    lines(p, "modality token gradient", "traces/params/grad_norm of the tensor labelled "
          "*modality_token* (else *token*)", token_grad_norm, "gradient L2 norm", scale="symlog")


def modality_dropout(p):
    lines(p, "steps/loss", "steps/loss", lambda r: series_at(r, "steps/loss"), "loss",
          scale="auto")
    for name in ("loss_step_std", "holdout_accuracy"):
        figure_bars(p, name)


def pairwise_scope(p):
    points = []
    for r in p.runs():
        x, y = summary_value(r, "median_step_ms"), summary_value(r, "holdout_unifrac")
        if x is not None and y is not None:
            p.use(r)
            # The scopes are the sweep's parallel x pairs axes, not arms: label each run by its own.
            scope = r.arm if r.arm not in ("", "-") else r.strategy.replace("ddp pairs=", "ddp_")
            points.append(dict(ref(r), scope=scope, x=x, y=y))
    scatter(p, "holdout UniFrac vs step time", "/summary holdout_unifrac against "
            "median_step_ms, one point per run", points, "median step (ms)", "holdout_unifrac",
            color_by="scope", marker_by="ranks", logy=False)
    figure_bars(p, "pairs_per_step", "pairs per step (arm@ranks)")


def single_token_attention(p):
    for var in ("attention_entropy", "attention_spread"):
        path = f"traces/fusion/fusion/{var}"
        lines(p, var, path, lambda r, path=path: series_at(r, path), var)


def pareto_front(xs, ys):
    """Indices of the points no other beats (higher-or-equal x and lower-or-equal y, one of
    them strictly), by increasing x."""
    pts = list(zip(xs, ys))
    front = [i for i, (x, y) in enumerate(pts)
             if not any(x2 >= x and y2 <= y and (x2 > x or y2 < y) for x2, y2 in pts)]
    return sorted(front, key=lambda i: (xs[i], ys[i]))


def fusion_league(p):
    cells = {}       # (scenario, method) -> {figure name: row}
    for f in p.study.figures:
        arm = str(f.get("arm", ""))
        if "@" in arm and f.get("name") in ("holdout_loss", "samples_per_s", "verdicts_fired"):
            method, scen = arm.split("@", 1)
            cells.setdefault((scen, method), {})[f["name"]] = f
    methods = sorted({m for _, m in cells})
    colors = dict(zip(methods, palette(len(methods))))
    for scen in sorted({s for s, _ in cells}):
        pts = []
        for (s, m), c in sorted(cells.items()):
            loss, sps = c.get("holdout_loss"), c.get("samples_per_s")
            if s == scen and loss and sps and all(optional(v["value"]) is not None
                                                  for v in (loss, sps)):
                fired = c.get("verdicts_fired", {}).get("value")
                pts.append({"method": m, "samples_per_s": sps["value"], "holdout_loss": loss["value"],
                            "spread": loss.get("spread"), "n": loss.get("n"),
                            "verdicts_fired": fired})
        if not pts:
            p.miss(scen, "no method@scenario with finite holdout_loss and samples_per_s in /figures")
            continue
        front = pareto_front([q["samples_per_s"] for q in pts], [q["holdout_loss"] for q in pts])
        for i, q in enumerate(pts):
            q["pareto"] = i in front

        def draw(ax, data):
            for q in data["points"]:
                fired = bool(q["verdicts_fired"]) and q["verdicts_fired"] > 0
                ax.errorbar(q["samples_per_s"], q["holdout_loss"], yerr=optional(q["spread"]),
                            fmt="o", ms=8 if q["pareto"] else 5, color=colors[q["method"]],
                            mec="red" if fired else ("black" if q["pareto"] else colors[q["method"]]),
                            mew=1.5 if fired or q["pareto"] else 0.5, capsize=2, zorder=3)
                ax.annotate(q["method"], (q["samples_per_s"], q["holdout_loss"]), fontsize=6,
                            xytext=(3, 3), textcoords="offset points")
            fr = sorted((q for q in data["points"] if q["pareto"]), key=lambda q: q["samples_per_s"])
            ax.step([q["samples_per_s"] for q in fr], [q["holdout_loss"] for q in fr],
                    where="pre", color="black", lw=1, label="Pareto front")
            plain_log_x(ax)
            ax.set_xlabel("samples/s (log)")
            ax.set_ylabel("holdout loss")
            dedupe_legend(ax)

        p.panel(scen, f"{scen}: holdout_loss (mean over seeds, error bar: spread) against "
                f"samples_per_s per method (/figures rows of arm METHOD@{scen}), the Pareto front "
                f"(no method both faster and lower in loss) as a step line through its larger, "
                f"black-edged points; red edge: stability verdicts fired.",
                {"scenario": scen, "points": pts, "front": [pts[i]["method"] for i in front]}, draw)
    if not cells:
        p.miss("league", "no /figures rows holdout_loss, samples_per_s with arm METHOD@SCENARIO")


def deciding_figures(p):
    """Any study: a bar panel per deciding figure (all figures when none is marked deciding)."""
    rows = p.study.figure_rows(deciding=True)
    if not rows:
        rows = p.study.figures
        if rows:
            p.notes.append("no /figures row is marked deciding: every figure shown")
    if not rows:
        return p.miss("deciding figures", "study.h5 has no /figures rows")
    for name, grp in groupby(rows, lambda f: str(f.get("name", ""))).items():
        figure_bars(p, name, rows=grp)


STUDIES = {
    "imbalance": imbalance,
    "starvation": starvation,
    "multiplication": multiplication,
    "gate_bias": gate_bias,
    "stochastic_eval": stochastic_eval,
    "dead_parameter": dead_parameter,
    "modality_dropout": modality_dropout,
    "pairwise_scope": pairwise_scope,
    "single_token_attention": single_token_attention,
    "fusion_league": fusion_league,
}


# ------------------------------------------------------------------------- the figure
def draw(study, where=None):
    """The study's figure: (matplotlib figure, caption, plotted data, lines not plotted).
    where: the study folder as the caption names it (default: its path)."""
    p = Plot(study)
    fn = STUDIES.get(study.name)
    if fn is None:
        p.notes.append(f"'{study.name}' is not one of the {len(STUDIES)} known studies: "
                       f"its deciding figures are shown")
        deciding_figures(p)
    else:
        fn(p)
        if not p.panels and study.figures:
            p.notes.append(f"no panel of the {study.name} plot could be drawn: the deciding "
                           f"figures instead")
            deciding_figures(p)
    unplotted = [f"not plotted: {m}" for m in p.missing] + p.notes
    fig = render(p, unplotted)
    files = sorted({r.rel for r in p.used.values()})
    caption = (" ".join(d for _, d, _, _ in p.panels) +
               (f" From {len(files)} run file(s) of {where or study.folder}" if files else
                " From study.h5 only") + " (listed in the plotted data)." +
               ("" if not unplotted else " " + "; ".join(unplotted) + "."))
    data = {"study": study.name, "document": study.attr("document"), "verdict": study.verdict,
            "claim": study.attr("claim"), "panels": [dict(d, title=t, description=desc)
                                                     for t, desc, d, _ in p.panels],
            "not_plotted": p.missing, "notes": p.notes,
            "runs": [ref(r) for r in sorted(p.used.values(), key=lambda r: r.id)]}
    return fig, caption, data, unplotted


def render(p, unplotted):
    n = len(p.panels)
    cols = min(MAX_COLS, max(n, 1))
    rows = max(math.ceil(n / cols), 1)
    fig, axes = subplots(rows, cols, PANEL_W, PANEL_H)
    for ax, (title, _, data, draw_panel) in zip(axes.flat, p.panels):
        draw_panel(ax, data)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[n:]:
        ax.remove()
    if not n:
        fig.text(0.5, 0.5, "nothing to plot", ha="center", va="center", color="gray")
    # The header and the notes take fixed heights in inches, so the panels keep theirs.
    width, height = fig.get_size_inches()
    chars = int(width * 13)
    s = p.study
    claim = textwrap.wrap(f"Claim: {s.attr('claim')}", chars) or [""]
    notes = [w for line in unplotted for w in textwrap.wrap(line, chars)]
    head, foot = 0.45 + 0.19 * len(claim), 0.1 + 0.17 * len(notes)
    fig.set_size_inches(width, height + head + foot)
    height += head + foot
    fig.text(0.5, 1 - 0.08 / height, f"{s.name} (document {s.attr('document')}): {s.verdict}",
             ha="center", va="top", fontsize=12, weight="bold",
             color=VERDICT_COLORS.get(s.verdict, "black"))
    fig.text(0.5, 1 - 0.4 / height, "\n".join(claim), ha="center", va="top", fontsize=9)
    if notes:
        fig.text(0.01, 0.05 / height, "\n".join(notes), ha="left", va="bottom", fontsize=8,
                 color="#8a5a00")
    fig.tight_layout(rect=(0, foot / height, 1, 1 - head / height))
    return fig
