"""One function per figure of the report. Each takes the Report and the Context, draws from the
runs' HDF5 values, and either adds its figure(s) (PNG + the plotted numbers as JSON) or says in
one line why it is omitted."""

import statistics
from dataclasses import dataclass, field
from itertools import groupby as _groupby

import numpy as np
from matplotlib import colors as mcolors
from matplotlib import pyplot as plt

from fbdata import PHASES

STRATEGY_ORDER = ["dataparallel", "ddp", "ddp pairs=local", "ddp pairs=global", "ddp pairs=blockdiag"]
FILES_LISTED = 6      # a caption names up to this many files, else points to the JSON


@dataclass
class Context:
    runs: list            # every Run (any state)
    comms: list           # every CommRun
    methods: list         # every method name, sorted: fixes each method's colour
    projections: list = field(default_factory=list)   # fusebench project tables

    @property
    def done(self):
        return [r for r in self.runs if r.state == "done"]

    def method_color(self, method):
        return palette(len(self.methods))[self.methods.index(method)]


# ------------------------------------------------------------------------- helpers
def groupby(items, key):
    """{key: [items]} with keys sorted (items keep their order)."""
    items = sorted(items, key=key)
    return {k: list(g) for k, g in _groupby(items, key=key)}


def strategy_key(strategy):
    """Sort key of a strategy: dataparallel, ddp, then ddp's pair scopes local, global, blockdiag."""
    return (STRATEGY_ORDER.index(strategy) if strategy in STRATEGY_ORDER else len(STRATEGY_ORDER),
            strategy)


def config_key(run):
    """Sort key of a run's configuration apart from scenario, method and seed."""
    return strategy_key(run.strategy) + (run.ranks, run.threads, run.batch)


def mean_std(values):
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def files_phrase(runs, name, start=False):
    """'from a.h5, b.h5' or 'from N files (listed in NAME.json)'; 'From' to start a sentence."""
    rels = sorted({r.rel for r in runs})
    word = "From" if start else "from"
    if len(rels) <= FILES_LISTED:
        return f"{word} " + ", ".join(rels)
    return f"{word} {len(rels)} files (listed in {name}.json)"


def run_ref(run):
    return {"id": run.id, "file": run.rel, "seed": run.seed}


def representative(runs):
    """The run standing for a (scenario, method): finished first, then the most traced steps,
    the most steps, the fewest ranks, the id."""
    return min(runs, key=lambda r: (r.state != "done", -r.n_traced, -r.n_steps, r.ranks, r.id))


def subplots(rows, cols, width, height, **kw):
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, **kw)
    return fig, axes


def slots(center, n, span=0.8):
    """x positions of n side-by-side items around the category at x = center."""
    width = span / max(n, 1)
    return [center - span / 2 + width * (i + 0.5) for i in range(n)]


def palette(n):
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % 20) for i in range(n)]


def legend_outside(ax, **kw):
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False, **kw)


def dedupe_legend(ax, outside=False, order=None, **kw):
    """A legend with each label once (artists drawn per group repeat their labels), in the
    order given (default: first drawn first)."""
    seen = {}
    for h, lab in zip(*ax.get_legend_handles_labels()):
        seen.setdefault(lab, h)
    if order:
        seen = {lab: seen[lab] for lab in order if lab in seen}
    if outside:
        kw.update(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.legend(seen.values(), seen.keys(), fontsize=7, frameon=False, **kw)

def readable_log_axis(ax):
    """Log y axis labelled at 1-2-5 values (a narrow range would otherwise show one label)."""
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    ticks = [m * 10.0 ** e for e in range(-12, 13) for m in (1, 2, 5) if lo <= m * 10.0 ** e <= hi]
    if 2 <= len(ticks) <= 12:
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()


def log_scale_if_wide(ax, values):
    """Log y axis when the positive values span more than a factor 30."""
    v = [x for x in values if x and x > 0]
    if v and max(v) / min(v) > 30:
        ax.set_yscale("log")


# ------------------------------------------------------------------------- throughput
def throughput(rep, ctx):
    title = "Throughput per method and scenario"
    runs = [r for r in ctx.done if "samples_per_s" in r.summary]
    if not runs:
        return rep.omit(title, "no finished run has /summary samples_per_s")
    scenarios = groupby(runs, lambda r: r.scenario)
    fig, axes = subplots(len(scenarios), 1, 10, 3.6)
    groups = []
    for ax, (scen, sruns) in zip(axes[:, 0], scenarios.items()):
        methods = sorted({r.method for r in sruns})
        configs = sorted({config_key(r): r.config_label for r in sruns}.items())
        colors = dict(zip((k for k, _ in configs), palette(len(configs))))
        for mi, method in enumerate(methods):
            present = [(k, label) for k, label in configs
                       if any(r.method == method and config_key(r) == k for r in sruns)]
            for x, (ckey, clabel) in zip(slots(mi, len(present)), present):
                grp = [r for r in sruns if r.method == method and config_key(r) == ckey]
                vals = [r.summary["samples_per_s"] for r in grp]
                mean, std = mean_std(vals)
                ax.scatter([x] * len(vals), vals, s=10, color=colors[ckey], alpha=0.6, zorder=3)
                ax.errorbar(x, mean, yerr=std, fmt="_", ms=12, color=colors[ckey], capsize=3,
                            label=clabel)
                groups.append({"scenario": scen, "method": method, "config": clabel, "mean": mean,
                               "std": std, "runs": [dict(run_ref(r), samples_per_s=v)
                                                    for r, v in zip(grp, vals)]})
        ax.set_xticks(range(len(methods)), methods)
        ax.set_xlim(-0.5, len(methods) - 0.5)
        ax.set_ylabel("samples/s")
        ax.set_title(f"{scen}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        log_scale_if_wide(ax, [g["mean"] for g in groups if g["scenario"] == scen])
        if ax.get_yscale() == "linear":
            ax.set_ylim(0, 1.08 * max(g["mean"] + g["std"] for g in groups if g["scenario"] == scen))
        dedupe_legend(ax, outside=True, title="configuration", order=[c for _, c in configs])
    fig.tight_layout()
    caption = (f"Training throughput: /summary samples_per_s (the global batch over the median "
               f"step time of the steps after the first 10%) of every finished run, {files_phrase(runs, 'throughput')}. One colour "
               f"per configuration (strategy, ranks P, threads per rank T, global batch B); dots "
               f"are single runs (seeds), the bar and whiskers the mean ± standard deviation across "
               f"seeds.")
    rep.figure(fig, "throughput", title, caption, {"unit": "samples/s", "groups": groups})


# ------------------------------------------------------------------------- scaling
def scaling_series(runs, kind):
    """Strong (fixed global batch) or weak (fixed batch per rank) scaling series: runs that
    differ only in the rank count (and seed), at two rank counts or more."""
    fixed = (lambda r: r.batch) if kind == "strong" else (lambda r: r.batch_per_rank)
    series = []
    for key, grp in groupby(runs, lambda r: (r.scenario, r.method, r.strategy, r.threads,
                                              fixed(r))).items():
        by_ranks = groupby(grp, lambda r: r.ranks)
        if len(by_ranks) < 2:
            continue
        ranks = sorted(by_ranks)
        sps = [statistics.fmean(r.summary["samples_per_s"] for r in by_ranks[p]) for p in ranks]
        eff = [s * ranks[0] / (p * sps[0]) for p, s in zip(ranks, sps)]
        scen, method, strategy, threads, size = key
        series.append({"scenario": scen, "method": method, "strategy": strategy,
                       "threads": threads, "batch" if kind == "strong" else "batch_per_rank": size,
                       "ranks": ranks, "samples_per_s": sps, "efficiency": eff,
                       "runs": [[run_ref(r) for r in by_ranks[p]] for p in ranks]})
    return series


def scaling(rep, ctx, kind):
    title = f"{kind.capitalize()} scaling"
    runs = [r for r in ctx.done if "samples_per_s" in r.summary and r.ranks > 0]
    series = scaling_series(runs, kind)
    what = "global batch" if kind == "strong" else "batch per rank"
    if not series:
        return rep.omit(title, f"no finished runs differing only in their rank count at a fixed {what}")
    fig, axes = subplots(1, 2, 6, 4.2)
    ax_t, ax_e = axes[0]
    size_key = "batch" if kind == "strong" else "batch_per_rank"
    styles = ["-", "--", "-.", ":"]
    scen_names = sorted({s["scenario"] for s in series})
    for s, color in zip(series, palette(len(series))):
        label = (f"{s['scenario']} {s['method']} {s['strategy']} T={s['threads']} "
                 f"{'B' if kind == 'strong' else 'B/rank'}={s[size_key]}")
        style = dict(color=color, marker="o", ms=4,
                     ls=styles[scen_names.index(s["scenario"]) % len(styles)])
        ax_t.plot(s["ranks"], s["samples_per_s"], label=label, **style)
        ideal = [s["samples_per_s"][0] * p / s["ranks"][0] for p in s["ranks"]]
        ax_t.plot(s["ranks"], ideal, color=style["color"], lw=0.8, alpha=0.4, ls=":")
        ax_e.plot(s["ranks"], s["efficiency"], label=label, **style)
    all_ranks = sorted({p for s in series for p in s["ranks"]})
    for ax in (ax_t, ax_e):
        ax.set_xscale("log", base=2)
        ax.set_xticks(all_ranks, [str(p) for p in all_ranks])
        ax.set_xlabel("MPI ranks")
        ax.grid(alpha=0.3)
    readable_log_axis(ax_t)
    ax_t.set_ylabel("samples/s (dotted: ideal)")
    ax_e.axhline(1.0, color="gray", lw=0.8)
    ax_e.set_ylim(0, max(1.1, 1.1 * max(max(s["efficiency"]) for s in series)))
    ax_e.set_ylabel("parallel efficiency")
    legend_outside(ax_e)
    fig.tight_layout()
    used = [r for s in series for grp in s["runs"] for r in grp]
    caption = (f"{kind.capitalize()} scaling at a fixed {what}: /summary samples_per_s against "
               f"the number of MPI ranks P (mean over seeds), and the efficiency "
               f"samples_per_s(P) × P0 / (P × samples_per_s(P0)) against the smallest rank count "
               f"P0 of each series (1 = perfect scaling; the same formula holds for strong and weak "
               f"scaling in throughput terms). One colour per series; line style: scenario. From "
               f"{len({r['file'] for r in used})} finished runs (listed in scaling_{kind}.json).")
    rep.figure(fig, f"scaling_{kind}", title, caption, {"kind": kind, "series": series})


# ------------------------------------------------------------------------- step time
def step_breakdown(rep, ctx):
    title = "Step-time breakdown"
    runs = [r for r in ctx.done if all(k in r.summary for k, _ in PHASES)]
    if not runs:
        return rep.omit(title, "no finished run has the /summary median phase times")
    scenarios = groupby(runs, lambda r: r.scenario)
    n_groups = {s: len(groupby(rs, lambda r: (r.method, config_key(r)))) for s, rs in scenarios.items()}
    fig, axes = plt.subplots(len(scenarios), 1, squeeze=False,
                             figsize=(10, 1.2 * len(scenarios) + 0.28 * sum(n_groups.values())),
                             gridspec_kw={"height_ratios": [n + 1.5 for n in n_groups.values()]})
    colors = palette(len(PHASES))
    groups = []
    for ax, (scen, sruns) in zip(axes[:, 0], scenarios.items()):
        grouped = groupby(sruns, lambda r: (r.method, config_key(r)))
        labels = []
        for y, ((method, _), grp) in enumerate(grouped.items()):
            parts = {label: statistics.fmean(r.summary[k] for r in grp) for k, label in PHASES}
            step = statistics.fmean(r.summary.get("median_step_ms", np.nan) for r in grp)
            left = 0.0
            for (k, label), c in zip(PHASES, colors):
                ax.barh(y, parts[label], left=left, color=c, label=label if y == 0 else None)
                left += parts[label]
            ax.plot([step], [y], marker="|", ms=14, mew=2, color="black",
                    label="median step_ms" if y == 0 else None)
            labels.append(f"{method}  {grp[0].config_label}")
            groups.append({"scenario": scen, "method": method, "config": grp[0].config_label,
                           "phases_ms": parts, "step_ms": step,
                           "runs": [dict(run_ref(r), **{label: r.summary[k] for k, label in PHASES})
                                    for r in grp]})
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("ms per step")
        ax.set_title(scen, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        legend_outside(ax)
    fig.tight_layout()
    caption = (f"Where a training step's time goes: the /summary medians (over the steps after "
               f"the first 10%) of data, forward, loss, backward, exposed communication (time "
               f"inside MPI) and optimizer time, each the slowest rank's, stacked; the black tick is "
               f"the median whole step (medians do not add exactly). One bar per method and "
               f"configuration, mean over seeds; {files_phrase(runs, 'step_breakdown')}.")
    rep.figure(fig, "step_breakdown", title, caption,
               {"unit": "ms", "phases": [label for _, label in PHASES], "groups": groups})


# ------------------------------------------------------------------------- strategies
def strategies(rep, ctx):
    """DataParallel against DDP and its three pair scopes, where the loss has a pairwise term."""
    title = "Parallel strategies and pair scopes"
    runs = [r for r in ctx.done if "unifrac" in r.steps and "median_step_ms" in r.summary]
    scen_runs = {s: rs for s, rs in groupby(runs, lambda r: r.scenario).items()
                 if len({r.strategy for r in rs}) > 1}
    if not scen_runs:
        return rep.omit(title, "no finished runs with a UniFrac (pairwise) loss term under more "
                               "than one strategy (dataparallel, ddp pairs=local|global|blockdiag)")
    for scen, sruns in scen_runs.items():
        methods = groupby(sruns, lambda r: r.method)
        fig, axes = subplots(len(methods), 2, 6, 3.6)
        groups = []
        for row, (method, mruns) in zip(axes, methods.items()):
            strats = sorted({r.strategy for r in mruns}, key=strategy_key)
            hues = groupby(mruns, lambda r: (r.ranks, r.threads, r.batch))
            colors = palette(len(hues))
            width = 0.8 / len(hues)        # of each bar in a strategy's slot
            for hi, ((p, t, b), hruns) in enumerate(hues.items()):
                for si, strat in enumerate(strats):
                    grp = [r for r in hruns if r.strategy == strat]
                    if not grp:
                        continue
                    x = slots(si, len(hues))[hi]
                    step = [r.summary["median_step_ms"] for r in grp]
                    uni = [r.final("unifrac") for r in grp]
                    for ax, vals in ((row[0], step), (row[1], uni)):
                        ax.bar(x, statistics.fmean(vals), width=width * 0.9, color=colors[hi],
                               label=f"P={p} T={t} B={b}")
                        ax.scatter([x] * len(vals), vals, s=8, color="black", zorder=3)
                    groups.append({"method": method, "strategy": strat, "ranks": p, "threads": t,
                                   "batch": b, "median_step_ms": statistics.fmean(step),
                                   "final_unifrac": statistics.fmean(uni),
                                   "runs": [dict(run_ref(r), median_step_ms=s, final_unifrac=u)
                                            for r, s, u in zip(grp, step, uni)]})
            for ax, ylabel in ((row[0], "median step (ms)"), (row[1], "final UniFrac loss term")):
                ax.set_xticks(range(len(strats)), strats, fontsize=8)
                ax.set_ylabel(ylabel)
                ax.set_title(f"{scen}, {method}", fontsize=10)
                ax.grid(axis="y", alpha=0.3)
            dedupe_legend(row[1])
        fig.tight_layout()
        caption = (f"{scen}: torch.nn.DataParallel against DDP with each pair scope of the "
                   f"UniFrac pairwise loss (local: each rank's own pairs; global: every pair of "
                   f"the global batch; blockdiag: cross-rank pairs masked). Left: /summary "
                   f"median_step_ms; right: the UniFrac term of /steps at the last step. Bars: "
                   f"mean over seeds, dots: single runs; colour: ranks P, threads T, global "
                   f"batch B. {files_phrase(sruns, 'strategies_' + scen, True)}.")
        rep.figure(fig, f"strategies_{scen}", f"{title}: {scen}", caption,
                   {"scenario": scen, "groups": groups})



# ------------------------------------------------------------------------- loss curves
def loss_curves(rep, ctx):
    title = "Loss curves"
    runs = [r for r in ctx.runs if r.n_steps and "loss" in r.steps]
    if not runs:
        return rep.omit(title, "no run has /steps loss")
    for scen, sruns in groupby(runs, lambda r: r.scenario).items():
        terms = sorted({t for r in sruns for t in r.loss_terms})
        panels = ["loss"] + terms
        fig, axes = subplots(1, len(panels), 4.2, 3.4)
        curves = []
        for r in sorted(sruns, key=lambda r: (r.method, r.id)):
            style = dict(color=ctx.method_color(r.method), lw=0.9, alpha=0.7,
                         ls="-" if r.state == "done" else "--")
            for ax, name in zip(axes[0], panels):
                if name in r.steps:
                    ax.plot(r.steps["step"], r.steps[name], **style)
                    if r.state != "done":
                        ax.plot(r.steps["step"][-1:], r.steps[name][-1:], "x", color=style["color"])
            curves.append(dict(run_ref(r), method=r.method, state=r.state,
                               config=r.config_label, step=r.steps["step"],
                               **{name: r.steps[name] for name in panels if name in r.steps}))
        for ax, name in zip(axes[0], panels):
            ax.set_xlabel("step")
            ax.set_title("total loss" if name == "loss" else f"term: {name}", fontsize=10)
            ax.grid(alpha=0.3)
            values = np.concatenate([c[name] for c in curves if name in c])
            log_scale_if_wide(ax, values[np.isfinite(values)].tolist())
        methods = sorted({r.method for r in sruns})
        handles = [plt.Line2D([], [], color=ctx.method_color(m), label=m) for m in methods]
        if any(r.state != "done" for r in sruns):
            handles.append(plt.Line2D([], [], color="gray", ls="--", marker="x",
                                      label="failed / cut (last step)"))
        axes[0][-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                           fontsize=7, frameon=False)
        fig.suptitle(scen, fontsize=11)
        fig.tight_layout()
        caption = (f"{scen}: the training loss and each of its terms against the step (/steps "
                   f"loss and term variables: as computed on the global batch), one line per "
                   f"run, coloured by method; dashed and ending in × for a run that failed or was "
                   f"cut. {files_phrase(sruns, 'loss_' + scen, True)}.")
        rep.figure(fig, f"loss_{scen}", f"{title}: {scen}", caption,
                   {"scenario": scen, "panels": panels, "runs": curves})


# ------------------------------------------------------------------------- gradient norms
def grad_heatmaps(rep, ctx):
    title = "Per-tensor gradient norms"
    runs = [r for r in ctx.runs if r.params and len(r.params.get("step", [])) and
            "grad_norm" in r.params]
    if not runs:
        return rep.omit(title, "no run has /traces/params (run with --trace-every N)")
    for (scen, method), mruns in groupby(runs, lambda r: (r.scenario, r.method)).items():
        r = representative(mruns)
        steps, tensors, g = r.params["step"], list(r.params["tensor"]), r.params["grad_norm"]
        positive = g[np.isfinite(g) & (g > 0)]
        fig, ax = plt.subplots(figsize=(min(max(7, 4 + 0.3 * len(steps)), 16),
                                        1.5 + 0.15 * len(tensors)))
        cmap = plt.get_cmap("viridis").copy()
        cmap.set_bad("lightgray")
        masked = np.ma.masked_where(~np.isfinite(g) | (g <= 0), g)
        norm = mcolors.LogNorm(positive.min(), positive.max()) if positive.size else None
        im = ax.imshow(masked.T, aspect="auto", cmap=cmap, norm=norm, interpolation="nearest")
        ax.set_yticks(range(len(tensors)), tensors, fontsize=6)
        ax.set_xticks(range(len(steps)), [str(s) for s in steps], fontsize=7, rotation=90)
        ax.set_xlabel("traced step")
        ax.set_title(f"{scen}, {method}: {r.id}", fontsize=9)
        fig.colorbar(im, ax=ax, label="gradient L2 norm (log)", fraction=0.06, aspect=40, pad=0.02)
        fig.tight_layout()
        caption = (f"{scen}, {method}: L2 norm of each parameter tensor's reduced gradient "
                   f"(before clipping) at every traced step, log colour; grey: zero or not "
                   f"finite (a dead parameter shows as a grey row). From /traces/params grad_norm "
                   f"of {r.rel} ({r.state}, P={r.ranks}), the run with the most traced steps among "
                   f"{len(mruns)} run(s) of this method.")
        rep.figure(fig, f"gradnorm_{scen}_{method}", f"{title}: {scen}, {method}", caption,
                   {"run": run_ref(r), "step": steps, "tensor": tensors, "grad_norm": g})


# ------------------------------------------------------------------------- fusion diagnostics
def fusion(rep, ctx):
    title = "Fusion diagnostics"
    runs = [r for r in ctx.runs if r.fusion]
    if not runs:
        return rep.omit(title, "no run has /traces/fusion (run with --trace-every N)")
    for scen, sruns in groupby(runs, lambda r: r.scenario).items():
        reps = [representative(rs) for rs in groupby(sruns, lambda r: r.method).values()]
        points = sorted({p for r in reps for p in r.fusion})
        fig, axes = subplots(len(points), 2, 5.5, 3.2)
        data = {"scenario": scen, "points": {}}
        for (ax_r, ax_g), point in zip(axes, points):
            data["points"][point] = {}
            gated = False
            for r in reps:
                s = r.fusion.get(point)
                if not s or "step" not in s:
                    continue
                c = ctx.method_color(r.method)
                ax_r.plot(s["step"], s["ratio"], color=c, marker=".", label=r.method)
                entry = dict(run_ref(r), method=r.method, step=s["step"], ratio=s["ratio"])
                gm = s.get("gate_mean")
                if gm is not None and np.isfinite(gm).any():
                    gated = True
                    ax_g.plot(s["step"], gm, color=c, marker=".", label=r.method)
                    ax_g.fill_between(s["step"], s["gate_min"], s["gate_max"], color=c, alpha=0.2)
                    entry.update(gate_mean=gm, gate_min=s["gate_min"], gate_max=s["gate_max"])
                data["points"][point][r.method] = entry
            for y in (5, 0.2):
                ax_r.axhline(y, color="gray", lw=0.8, ls="--")
            readable_log_axis(ax_r)
            ax_r.set_ylabel("norm_a / norm_b")
            ax_r.set_title(f"{point}: branch norm ratio", fontsize=10)
            ax_r.legend(fontsize=7, frameon=False)
            ax_g.set_title(f"{point}: gate mean (band: min..max)", fontsize=10)
            if gated:
                ax_g.set_ylim(-0.02, 1.02)
            else:
                ax_g.text(0.5, 0.5, "no method here has a gate", ha="center", va="center",
                          transform=ax_g.transAxes, color="gray")
                ax_g.set_xticks([])
                ax_g.set_yticks([])
            for ax in (ax_r, ax_g):
                ax.set_xlabel("step")
                ax.grid(alpha=0.3)
        fig.tight_layout()
        caption = (f"{scen}: FusionDiagnostics at each fusion point over the traced steps, from "
                   f"/traces/fusion/<point> of one run per method (the one with the most traced "
                   f"steps). Left: ratio = norm_a / (norm_b + 1e-8) of the two inputs' mean row L2 "
                   f"norms, log scale; dashed lines: the magnitude-imbalance thresholds 5 and 0.2. "
                   f"Right: gate_mean with a band from gate_min to gate_max (methods with a gate). "
                   f"{files_phrase(reps, 'fusion_' + scen, True)}.")
        rep.figure(fig, f"fusion_{scen}", f"{title}: {scen}", caption, data)


# ------------------------------------------------------------------------- counters
def counter_run(runs):
    """The run whose counters stand for a scenario: most ranks, then threads, then id."""
    return min(runs, key=lambda r: (-r.ranks, -r.threads, r.id))


def counters(rep, ctx):
    runs = [r for r in ctx.done if r.counters is not None and r.counters.real_ns.size]
    if not runs:
        rep.omit("PAPI time per region", "no finished run has /counters (run without --no-trace)")
        return rep.omit("Hardware counters", "no finished run has /counters")
    statements = groupby(runs, lambda r: (r.counters.statement, r.counters.papi_version))
    rep.text("What the counters could measure (/counters statement)",
             [f"{st or '(no statement)'} — PAPI {ver}; {len(rs)} run(s)"
              for (st, ver), rs in statements.items()])
    for scen, sruns in groupby(runs, lambda r: r.scenario).items():
        papi_time(rep, scen, counter_run(sruns))
        hw = [r for r in sruns if r.counters.available_events()]
        if hw:
            hardware_counters(rep, scen, counter_run(hw))
        else:
            rep.omit(f"Hardware counters: {scen}",
                     "no hardware counter was available in any run of this scenario (the "
                     "/counters statement above says why)")


def _grouped_bars(ax, regions, series):
    """Bars per region, one bar per (label, values) of series."""
    width = 0.8 / max(len(series), 1)
    for offset, color, (label, values) in zip(slots(0, len(series)), palette(len(series)), series):
        ax.bar(np.arange(len(regions)) + offset, values, width=width * 0.95, color=color, label=label)
    ax.set_xticks(range(len(regions)), regions, rotation=30, ha="right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def papi_time(rep, scen, r):
    c = r.counters
    real = c.real_ns / 1e6                     # [rank, region] ms
    virt = c.virt_ns / 1e6                     # [rank, thread, region] ms
    fig, axes = subplots(1, 2, 6.5, 3.8)
    ax_r, ax_v = axes[0]
    _grouped_bars(ax_r, c.regions, [(f"rank {k}", real[k]) for k in range(real.shape[0])])
    _grouped_bars(ax_v, c.regions, [(f"rank {k} thread {t}", virt[k, t])
                                    for k in range(virt.shape[0]) for t in range(virt.shape[1])])
    ax_r.set_ylabel("PAPI real time (ms)")
    ax_v.set_ylabel("PAPI virtual time (ms)")
    ax_r.set_title("wall time per region and rank", fontsize=10)
    ax_v.set_title("CPU time per region, rank and thread", fontsize=10)
    legend_outside(ax_v)
    ax_r.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    caption = (f"{scen}: PAPI real time (/counters/real_ns [rank, region]) and each OpenMP "
               f"thread's virtual (CPU) time (/counters/virt_ns [rank, thread, region]) summed "
               f"over the run, per region; fusion_forward and fusion_backward are overlays nested "
               f"inside forward and backward. From {r.rel} (P={r.ranks}, T={r.threads}, "
               f"{r.method}), the run of this scenario with the most ranks.")
    rep.figure(fig, f"papi_time_{scen}", f"PAPI time per region: {scen}", caption,
               {"run": run_ref(r), "regions": c.regions, "real_ms": real, "virt_ms": virt})


def hardware_counters(rep, scen, r):
    c = r.counters
    events = c.available_events()
    fig, axes = subplots(1, len(events), 5, 3.6)
    data = {"run": run_ref(r), "regions": c.regions, "events": {}}
    for ax, (e, name) in zip(axes[0], events):
        per_rank = c.values[:, :, :, e].sum(axis=1)          # [rank, region], summed over threads
        _grouped_bars(ax, c.regions, [(f"rank {k}", per_rank[k]) for k in range(per_rank.shape[0])])
        log_scale_if_wide(ax, per_rank.ravel().tolist())
        ax.set_title(name, fontsize=10)
        data["events"][name] = per_rank
    axes[0][0].set_ylabel("count (summed over threads)")
    legend_outside(axes[0][-1])
    fig.tight_layout()
    caption = (f"{scen}: the hardware counters counted on every thread of every rank "
               f"(/counters/events available = 1), /counters/values [rank, thread, region, event] "
               f"summed over threads, per region and rank. From {r.rel} (P={r.ranks}, "
               f"T={r.threads}, {r.method}).")
    rep.figure(fig, f"hwcounters_{scen}", f"Hardware counters: {scen}", caption, data)


# ------------------------------------------------------------------------- collectives
COMM_PANELS = [("allreduce", "busbw_gbs", "allreduce bus bandwidth (GB/s)"),
               ("allgather", "busbw_gbs", "allgather bus bandwidth (GB/s)"),
               ("iallreduce_overlap", "overlap_pct", "Iallreduce overlap (%)")]


def collectives(rep, ctx):
    title = "MPI collectives (fusebench comm)"
    if not ctx.comms:
        return rep.omit(title, "no fusebench.comm file in the folder")
    panels = [p for p in COMM_PANELS if any(p[0] in c.tables for c in ctx.comms)]
    fig, axes = subplots(1, len(panels), 4.8, 3.6)
    colors = palette(len(ctx.comms))
    data = {"files": []}
    comms = sorted(ctx.comms, key=lambda c: (c.ranks, c.id))
    for ci, c in enumerate(comms):
        entry = {"id": c.id, "file": c.rel, "ranks": c.ranks}
        for ax, (op, col, _) in zip(axes[0], panels):
            t = c.tables.get(op)
            if t is None:
                continue
            ax.plot(t["bytes"], t[col], marker=".", color=colors[ci], label=f"P={c.ranks} ({c.id})")
            entry[op] = {"bytes": t["bytes"], col: t[col]}
        data["files"].append(entry)
    for ax, (op, col, ylabel) in zip(axes[0], panels):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bytes")
        ax.set_ylabel(ylabel)
        ax.set_title(op, fontsize=10)
        ax.grid(alpha=0.3)
    legend_outside(axes[0][-1])
    fig.tight_layout()
    caption = (f"OSU-style collective benchmarks by message size: bus bandwidth (NCCL-tests "
               f"definition, comparable across rank counts; 0 at one rank) of MPI_Allreduce and "
               f"MPI_Allgather (per-rank contribution), and the share of an MPI_Iallreduce hidden "
               f"behind compute (overlap_pct), from the /allreduce, /allgather and "
               f"/iallreduce_overlap tables of {', '.join(c.rel for c in comms)}.")
    rep.figure(fig, "collectives", title, caption, data)


def projection(rep, ctx):
    title = "Scaling projection (fusebench project)"
    if not ctx.projections:
        return rep.omit(title, "no fusebench.projection file in the folder (write one with "
                               "`fusebench project ... --out DIR/projection.h5`)")
    p = ctx.projections[0]
    t = p["table"]
    keys = sorted({(s, m, st) for s, m, st in zip(t["scenario"], t["method"], t["strategy"])})
    fig, axes = subplots(1, 2, 5.2, 3.8)
    colors = palette(len(keys))
    data = {"file": p["file"], "series": []}
    for ci, key in enumerate(keys):
        rows = [i for i in range(len(t["nodes"]))
                if (t["scenario"][i], t["method"][i], t["strategy"][i]) == key]
        nodes = [int(t["nodes"][i]) for i in rows]
        step = [float(t["step_ms"][i]) for i in rows]
        eff = [float(t["efficiency"][i]) for i in rows]
        label = " ".join(key)
        axes[0][0].plot(nodes, step, marker=".", color=colors[ci], label=label)
        axes[0][1].plot(nodes, eff, marker=".", color=colors[ci], label=label)
        data["series"].append({"key": list(key), "nodes": nodes, "step_ms": step, "efficiency": eff})
    for ax, ylabel in zip(axes[0], ("projected step (ms)", "weak-scaling efficiency")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("nodes")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    legend_outside(axes[0][-1])
    fig.tight_layout()
    a = p["attrs"]
    checked = int(a.get("checked_runs", 0))
    err = a.get("worst_rel_error", float("nan"))
    error = (f"Against the {checked} multi-rank run(s) it was given, the model's worst relative "
             f"error was {100 * float(err):+.1f}%." if checked else
             "No multi-rank run was given, so the model's error is not measured.")
    caption = (f"Step time and efficiency projected for 1 to {max(t['nodes'])} nodes by the α–β model "
               f"of profiling/projection.h (latency {1e6 * float(a.get('inter_latency_s', 0)):.2f} us and "
               f"bandwidth {1e-9 / float(a.get('inter_s_per_byte', 1)):.2f} GB/s between nodes), "
               f"from the /projection table of {p['file']}. {error}")
    rep.figure(fig, "projection", title, caption, data)
