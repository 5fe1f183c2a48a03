"""Reading fusebench result files (schemas in results/README.md) into plain Python objects.

Only this module opens HDF5 files. A report is built from the per-run `fusebench.train` files;
`summary.h5` (`fusebench merge`, schema `fusebench.summary`) serves only as an index: it names the
runs, and says which planned runs have no file (state `missing`).
"""

import math
import os
from dataclasses import dataclass, field

# Live files are locked while a run writes them; readers may still look (results/README.md).
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

import h5py  # noqa: E402  (after the environment variable above)
import numpy as np  # noqa: E402

TRAIN_SCHEMA = "fusebench.train"
COMM_SCHEMA = "fusebench.comm"
SUMMARY_SCHEMA = "fusebench.summary"
PROJECTION_SCHEMA = "fusebench.projection"
STUDY_SCHEMA = "fusebench.study"
SUMMARY_NAME = "summary.h5"
STUDY_NAME = "study.h5"

# /steps variables that are neither the loss nor a loss term.
STEP_NON_TERMS = {"step", "loss", "lr", "grad_norm", "samples_per_s"}
# Phases of the step-time breakdown: (/summary attribute, label), in the order of a step.
PHASES = [("median_data_ms", "data"), ("median_forward_ms", "forward"),
          ("median_loss_ms", "loss"), ("median_backward_ms", "backward"),
          ("median_comm_exposed_ms", "exposed communication"),
          ("median_optimizer_ms", "optimizer")]
PAIRWISE_TERMS = {"unifrac"}   # loss terms over pairs of samples (ddp's --pairs scope applies)


def py(value):
    """An HDF5 attribute or element as a plain Python value (str, int, float, list)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [py(v) for v in value.tolist()] if value.dtype.kind in "OS" else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def optional(x):
    """x, or None where it is a float NaN or infinity (the schemas write NaN for 'none')."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def attrs(obj):
    """Every attribute of an HDF5 object as {name: plain value}."""
    return {k: py(v) for k, v in obj.attrs.items()}


def table(group):
    """A fusebench table group as {column: numpy array}, strings decoded, in column order."""
    names = group.attrs.get("columns")
    names = py(names).split(",") if names is not None else sorted(group)
    out = {}
    for name in names:
        if name not in group:
            continue
        ds = group[name]
        out[name] = ds.asstr()[...] if ds.dtype.kind in "OS" else ds[...]
    return out


def series(group):
    """An H5MD-shaped series group as {name: array} (label dimensions decoded to str)."""
    out = {}
    for name, ds in group.items():
        if isinstance(ds, h5py.Dataset):
            out[name] = ds.asstr()[...] if ds.dtype.kind in "OS" else ds[...]
    return out


@dataclass
class Counters:
    """/counters of a train file."""
    statement: str
    papi_version: str
    regions: list
    events: dict            # table: event, available, reason
    values: np.ndarray      # [rank, thread, region, event]
    virt_ns: np.ndarray     # [rank, thread, region]
    real_ns: np.ndarray     # [rank, region]

    def available_events(self):
        """Indices and names of the events counted on every thread of every rank."""
        return [(i, str(e)) for i, (e, a) in
                enumerate(zip(self.events.get("event", []), self.events.get("available", [])))
                if a == 1]


@dataclass
class Run:
    """One training run: a train file, or a row of the summary index whose file is absent."""
    id: str
    path: str | None          # absolute path of the file; None when missing
    rel: str                  # the path as shown in the report (relative to the results folder)
    state: str                # done | failed | cut | missing | unreadable
    error: str = ""
    config: dict = field(default_factory=dict)
    root: dict = field(default_factory=dict)
    steps: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    verdicts: dict | None = None
    counters: Counters | None = None
    sde: dict | None = None
    params: dict | None = None   # /traces/params: step, tensor, weight_norm, grad_norm, update_ratio
    fusion: dict = field(default_factory=dict)   # point -> series of /traces/fusion/<point>
    eval: dict = field(default_factory=dict)     # /traces/eval: step, max_abs_diff
    arm: str = ""             # the study arm it belongs to (the study's /runs table); "" outside one

    # Configuration, with the summary row's values where the file is missing.
    def cfg(self, key, default=None):
        return self.config.get(key, self.root.get(key, default))

    @property
    def scenario(self): return str(self.cfg("scenario", ""))
    @property
    def method(self): return str(self.cfg("method", ""))
    @property
    def parallel(self): return str(self.cfg("parallel", ""))
    @property
    def pairs(self): return str(self.cfg("pairs", ""))
    @property
    def ranks(self): return int(self.cfg("ranks", 0) or 0)
    @property
    def threads(self): return int(self.cfg("threads", 0) or 0)
    @property
    def batch(self): return int(self.cfg("batch", 0) or 0)
    @property
    def seed(self): return int(self.cfg("seed", 0) or 0)

    @property
    def batch_per_rank(self):
        bpr = int(self.cfg("batch_per_rank", 0) or 0)
        return bpr or (self.batch // self.ranks if self.ranks else 0)

    @property
    def loss_terms(self):
        """The loss terms of /steps (mse; ce, aux; huber, unifrac), sorted."""
        return sorted(k for k in self.steps if k not in STEP_NON_TERMS and not k.endswith("_ms"))

    @property
    def pairwise(self):
        return bool(PAIRWISE_TERMS & set(self.loss_terms)) or self.scenario == "microbiome"

    @property
    def strategy(self):
        """dataparallel, ddp, or ddp with its pair scope where the loss has a pairwise term."""
        if self.parallel == "ddp" and self.pairwise and self.pairs:
            return f"ddp pairs={self.pairs}"
        return self.parallel

    @property
    def config_label(self):
        """The run's configuration apart from scenario, method and seed."""
        return f"{self.strategy} P={self.ranks} T={self.threads} B={self.batch}"

    @property
    def n_steps(self):
        return len(self.steps.get("step", []))

    @property
    def n_traced(self):
        return len(self.params["step"]) if self.params else 0

    def final(self, name):
        """The last value of a /steps variable, or None."""
        v = self.steps.get(name)
        return float(v[-1]) if v is not None and len(v) else None


def _state(root):
    if int(root.get("complete", 0)) == 1:
        return "done", ""
    if root.get("error"):
        return "failed", str(root["error"])
    return "cut", "complete = 0 and no error: killed, or still running"


def load_train(path, run_id, rel):
    """A Run from a fusebench.train file (any state: done, failed, cut)."""
    try:
        with h5py.File(path, "r") as f:
            root = attrs(f)
            state, error = _state(root)
            run = Run(id=run_id, path=path, rel=rel, state=state, error=error, root=root)
            run.config = attrs(f["config"]) if "config" in f else {}
            run.steps = series(f["steps"]) if "steps" in f else {}
            run.summary = attrs(f["summary"]) if "summary" in f else {}
            run.verdicts = table(f["verdicts"]) if "verdicts" in f else None
            run.sde = table(f["sde"]) if "sde" in f else None
            if "counters" in f:
                run.counters = _counters(f["counters"])
            if "traces/params" in f:
                run.params = series(f["traces/params"])
            if "traces/fusion" in f:
                run.fusion = {p: series(g) for p, g in sorted(f["traces/fusion"].items())}
            if "traces/eval" in f:
                run.eval = series(f["traces/eval"])
            return run
    except (OSError, KeyError, ValueError) as e:
        return Run(id=run_id, path=path, rel=rel, state="unreadable", error=f"{type(e).__name__}: {e}")


def _counters(g):
    return Counters(statement=str(py(g.attrs.get("statement", ""))),
                    papi_version=str(py(g.attrs.get("papi_version", ""))),
                    regions=[str(r) for r in table(g["regions"])["region"]] if "regions" in g else [],
                    events=table(g["events"]) if "events" in g else {},
                    values=g["values"][...] if "values" in g else np.zeros((0, 0, 0, 0)),
                    virt_ns=g["virt_ns"][...] if "virt_ns" in g else np.zeros((0, 0, 0)),
                    real_ns=g["real_ns"][...] if "real_ns" in g else np.zeros((0, 0)))


@dataclass
class CommRun:
    """A fusebench.comm file: collective latency/bandwidth tables by message size."""
    id: str
    rel: str
    ranks: int
    tables: dict     # allreduce, allgather, iallreduce_overlap -> table


def load_comm(path, run_id, rel):
    with h5py.File(path, "r") as f:
        tables = {name: table(f[name]) for name in ("allreduce", "allgather", "iallreduce_overlap")
                  if name in f}
        return CommRun(id=run_id, rel=rel, ranks=int(py(f.attrs.get("ranks", 0))), tables=tables)


def schema_of(path):
    """The root `schema` attribute of an HDF5 file (None without one), and the error when the
    file cannot be opened ("" when it can)."""
    try:
        with h5py.File(path, "r") as f:
            return py(f.attrs.get("schema")), ""
    except OSError as e:
        return None, str(e)


def _h5_files(folder, skip):
    """Every *.h5 under folder (sorted, skipping the folders in the set `skip`), as absolute
    paths."""
    if folder in skip:
        return []
    out = []
    for base, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if os.path.abspath(os.path.join(base, d)) not in skip)
        out += [os.path.abspath(os.path.join(base, n)) for n in sorted(files) if n.endswith(".h5")]
    return out


def _run_id(rel):
    return rel[:-3] if rel.endswith(".h5") else rel


def _summary_index(path, folder):
    """Rows of summary.h5's /runs as [(id, resolved file or None, row)]."""
    rows = []
    with h5py.File(path, "r") as f:
        if py(f.attrs.get("schema")) != SUMMARY_SCHEMA or "runs" not in f:
            return None
        t = table(f["runs"])
        n = len(next(iter(t.values()))) if t else 0
        for i in range(n):
            row = {k: py(v[i]) for k, v in t.items()}
            rid = str(row.get("id", i))
            candidates = []
            name = str(row.get("file", "") or "")
            if name:
                candidates += [name, os.path.join(folder, name),
                               os.path.join(os.path.dirname(path), name)]
            link = f.get(f"links/{rid}", getlink=True) if "links" in f else None
            if isinstance(link, h5py.ExternalLink):
                candidates += [os.path.join(os.path.dirname(path), link.filename)]
            found = next((os.path.abspath(c) for c in candidates if os.path.isfile(c)), None)
            rows.append((rid, found, row))
    return rows


def _row_config(row):
    """A summary row as a run configuration: its placeholders for absent values (-1, NaN, "")
    dropped, `steps_planned` as `steps`."""
    def present(v):
        return not (v == -1 or v == "" or v is None or (isinstance(v, float) and math.isnan(v)))
    config = {k: v for k, v in row.items() if present(v)}
    if "steps_planned" in config:
        config.setdefault("steps", config["steps_planned"])
    return config


@dataclass
class Results:
    folder: str
    runs: list
    comms: list
    index: str         # how the runs were found (for the report's header)
    notes: list        # what the loader skipped or added
    projections: list = field(default_factory=list)   # fusebench project files: dicts


def load_projection(path, rel):
    """A `fusebench project` file: its table and the model's measured error."""
    with h5py.File(path, "r") as f:
        return {"file": rel, "table": table(f["projection"]), "attrs": attrs(f)}


def load_results(folder, skip_dir, also_skip=()):
    """Every run in folder: summary.h5's rows when present (plus train files it does not list),
    else every fusebench.train file under it; and every fusebench.comm file. Nothing under
    skip_dir (the report) or the folders also_skip (study folders, read by load_study) is read."""
    folder = os.path.abspath(folder)
    notes, runs, comms, projections = [], [], [], []
    files = _h5_files(folder, {os.path.abspath(d) for d in (skip_dir, *also_skip)})
    rel = {p: os.path.relpath(p, folder) for p in files}
    schemas = {}
    for p in files:
        schemas[p], error = schema_of(p)
        if error:
            notes.append(f"{rel[p]}: not readable as HDF5, skipped ({error})")
    summary_path = os.path.join(folder, SUMMARY_NAME)
    index = None
    if os.path.isfile(summary_path):
        index = _summary_index(summary_path, folder)
        if index is None:
            notes.append(f"{SUMMARY_NAME} is not a {SUMMARY_SCHEMA} file with /runs: ignored")
    listed = set()
    if index is not None:
        for rid, path, row in index:
            schema = schema_of(path)[0] if path is not None else None
            if schema == TRAIN_SCHEMA:
                listed.add(path)
                runs.append(load_train(path, rid, os.path.relpath(path, folder)))
            elif schema:    # another fusebench file (comm, kernels): not a run
                notes.append(f"{SUMMARY_NAME} row {rid}: {os.path.relpath(path, folder)} is a "
                             f"{schema} file, not a run: not in the runs table")
            else:
                state = str(row.get("state") or "missing")
                state = "missing" if path is None and state == "done" else state
                runs.append(Run(id=rid, path=None, rel=str(row.get("file", "")), state=state,
                                error=str(row.get("error", "") or "no result file"),
                                config=_row_config(row)))
        how = f"{SUMMARY_NAME} ({len(index)} rows)"
    else:
        how = f"every {TRAIN_SCHEMA} file under the folder"
    for p in files:
        if schemas[p] == TRAIN_SCHEMA and p not in listed:
            if index is not None:
                notes.append(f"{rel[p]}: a train file {SUMMARY_NAME} does not list; added")
            runs.append(load_train(p, _run_id(rel[p]), rel[p]))
        elif schemas[p] == COMM_SCHEMA:
            comms.append(load_comm(p, _run_id(rel[p]), rel[p]))
        elif schemas[p] == PROJECTION_SCHEMA:
            projections.append(load_projection(p, rel[p]))
    return Results(folder=folder, runs=runs, comms=comms, index=how, notes=notes, projections=projections)


# ------------------------------------------------------------------------- studies
class StudyError(Exception):
    """A folder without a readable fusebench.study file (study.h5)."""


def records(obj):
    """A table as a list of {column: plain value} rows: a compound dataset (the study schema's
    tables) or a fusebench table group (one dataset per column)."""
    if isinstance(obj, h5py.Group):
        t = table(obj)
        n = len(next(iter(t.values()))) if t else 0
        return [{k: py(v[i]) for k, v in t.items()} for i in range(n)]
    data = obj[...]
    if data.dtype.names is None:
        raise ValueError(f"{obj.name} is neither a compound dataset nor a table group")
    return [{k: py(row[k]) for k in data.dtype.names} for row in np.atleast_1d(data)]


@dataclass
class Study:
    """A study folder (`fusebench study`): the verdict, its figures, and the sweep's runs."""
    folder: str               # absolute path
    attrs: dict               # root attributes of study.h5
    figures: list             # /figures rows: name, arm, value, spread, n, units, deciding, ...
    run_rows: list            # /runs rows: id, arm, scenario, method, seed, ranks, file, ...
    runs: list                # Run per /runs row (state missing where the file is absent)
    notes: list

    def attr(self, key, default=""):
        return str(self.attrs.get(key, default))

    @property
    def name(self): return self.attr("study", os.path.basename(self.folder))
    @property
    def verdict(self): return self.attr("verdict", "INCONCLUSIVE").upper()
    @property
    def arms(self):
        """The arms in the order the /runs table first names them (the sweep's order)."""
        return list(dict.fromkeys(str(r.get("arm", "")) for r in self.run_rows))

    def figure_rows(self, name=None, deciding=None):
        """The /figures rows named `name` (any when None), only deciding ones if asked."""
        return [f for f in self.figures if (name is None or f.get("name") == name) and
                (deciding is None or bool(f.get("deciding")) == deciding)]


def study_file(folder):
    return os.path.join(folder, STUDY_NAME)


def load_study(folder):
    """The Study in folder; StudyError when folder/study.h5 is absent or not a fusebench.study
    file. Runs whose file is absent are kept, as state `missing`."""
    folder = os.path.abspath(folder)
    path = study_file(folder)
    if not os.path.isfile(path):
        raise StudyError(f"{folder}: no {STUDY_NAME} (not a study folder)")
    try:
        with h5py.File(path, "r") as f:
            root = attrs(f)
            if root.get("schema") != STUDY_SCHEMA:
                raise StudyError(f"{path}: schema is {root.get('schema')!r}, not {STUDY_SCHEMA!r}")
            figs = records(f["figures"]) if "figures" in f else []
            rows = records(f["runs"]) if "runs" in f else []
    except (OSError, KeyError, ValueError) as e:
        raise StudyError(f"{path}: not readable as a {STUDY_SCHEMA} file ({e})") from e
    notes = [] if rows else [f"{STUDY_NAME} has no /runs rows: no run file is read"]
    if not figs:
        notes.append(f"{STUDY_NAME} has no /figures rows")
    if int(root.get("complete", 0) or 0) != 1:
        notes.append(f"{STUDY_NAME} is not complete (complete != 1): the study may still be running")
    runs = []
    for i, row in enumerate(rows):
        rid, rel = str(row.get("id", f"row{i}")), str(row.get("file", ""))
        p = os.path.join(folder, rel) if rel else ""
        if p and os.path.isfile(p):
            run = load_train(p, rid, rel)
        else:
            run = Run(id=rid, path=None, rel=rel, state="missing", error="no result file",
                      config={k: v for k, v in row.items() if k not in ("id", "file", "complete")})
            notes.append(f"run {rid}: {rel or '(no file named)'} is absent")
        run.arm = str(row.get("arm", ""))
        runs.append(run)
    return Study(folder=folder, attrs=root, figures=figs, run_rows=rows, runs=runs, notes=notes)


def find_studies(folder, skip_dir=None):
    """The study folders of a results folder: folder itself when it holds study.h5, else its
    sub-folders (one level down) that do; sorted, absolute. skip_dir (the report) is left out."""
    folder = os.path.abspath(folder)
    if os.path.isfile(study_file(folder)):
        return [folder]
    skip = os.path.abspath(skip_dir) if skip_dir else None
    subs = (os.path.join(folder, d) for d in sorted(os.listdir(folder)))
    return [d for d in subs if os.path.isdir(d) and d != skip and os.path.isfile(study_file(d))]
