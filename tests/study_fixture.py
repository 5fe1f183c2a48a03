#!/usr/bin/python3
"""Fake study folders for the plot tests: study.h5 (schema fusebench.study v1, as
/work/notes/study_schema.md and plots/README.md describe it) and small fusebench.train v2 run files
with the series the study plots read, for any study name.

usage: study_fixture.py OUT NAME [NAME...] [--seeds N] [--drop NAME ...]

Writes OUT/NAME/{study.h5, manifest.tsv, runs/rNNNN.h5} per NAME. A name outside KNOWN gets two
arms and generic figures. --drop leaves out every group, dataset or attribute of that name (a
series not yet written by the C code, e.g. calendar_fusion or attention_spread). Values are
deterministic (seeded), so two calls write the same numbers.
"""

import argparse
import os
import zlib

import h5py
import numpy as np

STEPS, TRACE_EVERY, EVAL_EVERY = 20, 4, 5
# name -> (document, scenario(s), methods, arms, ranks); fusion_league's arms are METHOD@SCENARIO.
KNOWN = {
    "imbalance": ("000", ["timeseries"], ["gated_add"], ["layernorm", "raw"], [2]),
    "starvation": ("000", ["timeseries"], ["gated_interp", "gated_add"], ["open", "closed"], [2]),
    "multiplication": ("000", ["timeseries"], ["mul", "add", "gated_add"], ["balanced", "imbalanced"], [2]),
    "gate_bias": ("000", ["timeseries"], ["gated_add"], ["bias_-2", "bias_0"], [2]),
    "stochastic_eval": ("002", ["multimodal"], ["energy_aware_adaptive"],
                        ["documented", "deterministic", "returned", "deterministic_returned"], [2]),
    "dead_parameter": ("002", ["multimodal"], ["transformer_concat"], ["default", "with_token"], [2]),
    "modality_dropout": ("002", ["multimodal"], ["modality_dropout"], ["batch", "per_sample"], [2]),
    "pairwise_scope": ("003", ["microbiome"], ["categorical_concat"],
                       ["dataparallel", "ddp_local", "ddp_global", "ddp_blockdiag"], [2, 4]),
    "single_token_attention": ("003", ["microbiome"], ["seq_cross_attention"],
                               ["per_column", "single_token"], [2]),
    "fusion_league": ("all", ["multimodal", "timeseries"], ["gmu", "concat_mlp", "gated_add"], None, [2]),
}
TERMS = {"timeseries": "mse", "multimodal": "ce", "microbiome": "unifrac"}
STR = h5py.string_dtype()


class Writer:
    """h5py writes that skip whatever --drop names."""

    def __init__(self, drop):
        self.drop = set(drop)

    def group(self, parent, name):
        return None if name.split("/")[-1] in self.drop else parent.require_group(name)

    def data(self, group, name, values, dtype=None):
        if group is not None and name not in self.drop:
            group.create_dataset(name, data=values, dtype=dtype)

    def attrs(self, obj, values):
        for k, v in values.items():
            if k not in self.drop:
                obj.attrs[k] = v


def rng_for(*key):
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def write_run(path, w, study, scen, method, arm, seed, ranks, ai):
    rng = rng_for(study, scen, method, arm, seed, ranks)
    step = np.arange(STEPS, dtype=np.int64)
    traced = np.arange(0, STEPS, TRACE_EVERY, dtype=np.int64)
    with h5py.File(path, "w") as f:
        w.attrs(f, {"schema": "fusebench.train", "schema_version": 2, "complete": 1})
        cfg = f.require_group("config")
        parallel, _, pairs = (arm.partition("_") if arm.startswith("ddp_") else ("dataparallel", "", ""))
        w.attrs(cfg, {"scenario": scen, "method": method, "seed": seed, "ranks": ranks,
                      "parallel": parallel, "pairs": pairs, "steps": STEPS, "batch": 8 * ranks})
        steps = w.group(f, "steps")
        loss = 2.0 * np.exp(-step / (8 + 4 * ai)) + 0.05 * rng.random(STEPS)
        w.data(steps, "step", step)
        w.data(steps, "loss", loss)
        w.data(steps, "grad_norm", (1 + ai) * np.exp(-step / 10) + 0.1 * rng.random(STEPS))
        w.data(steps, TERMS[scen], 0.9 * loss)
        points = ["fusion", "calendar_fusion"] if scen == "timeseries" else ["fusion"]
        for pi, point in enumerate(points):
            g = w.group(f, f"traces/fusion/{point}")
            if g is None:
                continue
            n = len(traced)
            norm_a = (1 + 10 * ai) * (1 + 0.1 * rng.random(n)) * (1 + pi)
            norm_b = 1 + 0.1 * rng.random(n)
            gate = 1 / (1 + np.exp(-(ai * -3 + 0.1 * np.arange(n))))
            w.data(g, "step", traced)
            for name, v in (("norm_a", norm_a), ("norm_b", norm_b), ("ratio", norm_a / (norm_b + 1e-8)),
                            ("gate_mean", gate), ("gate_min", 0.8 * gate), ("gate_max", 1.2 * gate),
                            ("grad_norm_a", 0.5 + rng.random(n)),
                            ("grad_norm_b", gate * (0.01 + rng.random(n))),
                            ("attention_entropy", 2.0 - ai + 0.1 * rng.random(n)),
                            ("attention_spread", 0.5 + 0.2 * ai + 0.05 * rng.random(n)),
                            ("aux_loss", 0.01 * rng.random(n)),
                            ("expected_cost", 1.0 + 0.2 * ai + 0.1 * rng.random(n)),
                            ("cost_budget", np.full(n, 1.1))):
                w.data(g, name, v)
        prm = w.group(f, "traces/params")
        if prm is not None:
            tensors = ["encoder.weight", "fusion.modality_token", "head.weight"]
            gn = rng.random((len(traced), len(tensors)))
            gn[:, 1] *= ai          # arm 0: the token's gradient is zero (a dead parameter)
            w.data(prm, "step", traced)
            w.data(prm, "tensor", np.array(tensors, dtype=object), STR)
            w.data(prm, "grad_norm", gn)
        ev = w.group(f, "traces/eval")
        if ev is not None:
            checks = np.arange(0, STEPS, EVAL_EVERY, dtype=np.int64)
            w.data(ev, "step", checks)
            w.data(ev, "max_abs_diff", np.zeros(len(checks)) if "deterministic" in arm
                   else 1e-3 * rng.random(len(checks)))
        summ = f.require_group("summary")
        w.attrs(summ, {"samples_per_s": 1000.0 / (1 + ai) * (1 + 0.05 * rng.random()),
                       "median_step_ms": 5.0 * ranks * (1 + ai) * (1 + 0.05 * rng.random()),
                       "holdout_loss": float(loss[-1] + 0.1 * ai), f"holdout_{TERMS[scen]}": float(loss[-1]),
                       "holdout_samples": 64, "verdicts_fired": int(ai % 2)})
        if scen == "multimodal":
            w.attrs(summ, {"holdout_accuracy": 0.6 + 0.1 * ai})


def compound(group, name, rows, fields):
    """A compound table, one row per dict; string fields variable-length UTF-8."""
    dt = np.dtype([(k, STR if t is str else t) for k, t in fields])
    data = np.array([tuple(r[k] for k, _ in fields) for r in rows], dtype=dt)
    group.create_dataset(name, data=data)


def figure(name, arm, value, spread=float("nan"), n=2, units="", deciding=0,
           threshold=float("nan"), description=""):
    return dict(name=name, arm=arm, value=float(value), spread=float(spread), n=n, units=units,
                deciding=deciding, threshold=float(threshold), description=description or name)


def write_study(out, name, seeds, w):
    doc, scens, methods, arms, ranks_list = KNOWN.get(
        name, ("all", ["multimodal"], ["gmu"], ["arm_a", "arm_b"], [2]))
    folder = os.path.join(out, name)
    os.makedirs(os.path.join(folder, "runs"), exist_ok=True)
    runs, figs = [], []
    for scen in scens:
        for method in methods:
            for ai, arm in enumerate(arms or [f"{method}@{scen}"]):
                for ranks in ranks_list:
                    for seed in range(1, seeds + 1):
                        rid = f"r{len(runs) + 1:04d}"
                        rel = f"runs/{rid}.h5"
                        ai_eff = ai if arms else methods.index(method)
                        write_run(os.path.join(folder, rel), w, name, scen, method, arm, seed,
                                  ranks, ai_eff)
                        runs.append(dict(id=rid, arm=arm, scenario=scen, method=method, seed=seed,
                                         ranks=ranks, parallel="dataparallel", pairs="", file=rel,
                                         complete=1))
    if name == "fusion_league":
        for scen in scens:
            for mi, method in enumerate(methods):
                cell = f"{method}@{scen}"
                figs += [figure("holdout_loss", cell, 0.5 + 0.1 * mi * (1 if scen == "multimodal" else -1),
                                spread=0.02, n=seeds),
                         figure("samples_per_s", cell, 1000.0 / (1 + mi), spread=10.0, n=seeds,
                                units="samples/s"),
                         figure("verdicts_fired", cell, float(mi % 2), n=seeds)]
        figs.append(figure("pareto_methods", "", 2, n=len(runs), deciding=1))
    else:
        for ai, arm in enumerate(arms or []):
            for ranks in ranks_list if name == "pairwise_scope" else [None]:
                label = f"{arm}@{ranks}" if ranks else arm
                figs.append(figure("pairs_per_step" if name == "pairwise_scope" else "score", label,
                                   10.0 * (ai + 1), spread=0.5, n=seeds, units="1", deciding=1,
                                   threshold=15.0))
        figs.append(figure("score_ratio", "", 2.0, n=len(runs), deciding=1, threshold=1.5,
                           description="arm 2 over arm 1"))
        figs.append(figure("context", "", 3.0, description="not deciding"))
        if name == "modality_dropout":
            figs += [figure("loss_step_std", a, 0.1 * (i + 1), spread=0.01, n=seeds, deciding=1)
                     for i, a in enumerate(arms)]
            figs += [figure("holdout_accuracy", a, 0.6 + 0.1 * i, spread=0.02, n=seeds)
                     for i, a in enumerate(arms)]
    with h5py.File(os.path.join(folder, "study.h5"), "w") as f:
        f.attrs.update({"schema": "fusebench.study", "schema_version": 1, "complete": 1,
                        "study": name, "document": doc, "verdict": "CONFIRMED" if len(name) % 3 == 0
                        else "REFUTED" if len(name) % 3 == 1 else "INCONCLUSIVE",
                        "claim": f"The {name} claim of document {doc}, a sentence long enough to "
                                 f"be wrapped in the figure's title when the figure is narrow.",
                        "rule": "CONFIRMED if score_ratio > 1.5 in every seed, REFUTED if < 1.0",
                        "reason": "score_ratio = 2.0 > 1.5", "fusebench_commit": "fixture",
                        "date": "2025-01-01T00:00:00", "host": "fixture",
                        "command_line": f"fusebench study {name}"})
        compound(f, "figures", figs, [("name", str), ("arm", str), ("value", "f8"), ("spread", "f8"),
                                      ("n", "i8"), ("units", str), ("deciding", "i8"),
                                      ("threshold", "f8"), ("description", str)])
        # /runs with fixed-length byte strings: the schema allows either kind.
        dt = np.dtype([("id", "S8"), ("arm", "S32"), ("scenario", "S16"), ("method", "S32"),
                       ("seed", "i8"), ("ranks", "i8"), ("parallel", "S16"), ("pairs", "S16"),
                       ("file", "S32"), ("complete", "i8")])
        f.create_dataset("runs", data=np.array([tuple(r[k] for k in dt.names) for r in runs], dtype=dt))
    with open(os.path.join(folder, "manifest.tsv"), "w") as m:
        m.write("id\tscenario\tmethod\tranks\tseed\tarm\tout\n")
        m.writelines(f"{r['id']}\t{r['scenario']}\t{r['method']}\t{r['ranks']}\t{r['seed']}\t"
                     f"{r['arm']}\t{r['file']}\n" for r in runs)
    return folder


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("names", nargs="+")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--drop", action="append", default=[])
    args = ap.parse_args()
    for name in args.names:
        print(write_study(args.out, name, args.seeds, Writer(args.drop)))


if __name__ == "__main__":
    main()
