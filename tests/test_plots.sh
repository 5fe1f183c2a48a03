#!/bin/sh
# The report (plots/report.py) on a small set of real result files:
#   - 2 methods x 1 and 2 ranks (multimodal: gmu, and transformer_concat whose unused modality
#     token fires a dead-parameter verdict), one microbiome run (ddp, --pairs global), one failed run;
#   - every image index.html shows exists and decodes as a PNG, every link is a relative file, no
#     script or external resource; figures without data are listed as omitted, not linked;
#   - the plotted numbers (the JSON beside each figure, report.py's own output) equal the values
#     read here independently with h5py: samples/s, scaling means and efficiencies, median phase
#     times, loss curves and final losses, gradient norms, fusion ratios, PAPI times, run states,
#     fired verdicts, SDE counters;
#   - summary.h5 (fusebench merge) as the index: a listed run without a file is reported missing;
#   - Chromium (headless) renders the page: a screenshot, every image loaded, no console message;
#   - studies (tests/study_fixture.py: fake study folders of the ten known studies and an unknown
#     one): plots/study_plot.py writes each study's PNG (+ JSON), names a missing series instead of
#     drawing it, exits 1 on a folder without study.h5; report.py on a folder of study folders
#     writes the Studies section (summary table, each verdict, the figures table, an image per
#     study) with the plotted numbers equal to the files', and Chromium renders that page too.
# Run from the repository root after `make bench/fusebench`:  sh tests/test_plots.sh
set -u
. tests/shlib.sh
MPIRUN="timeout 120 mpirun --allow-run-as-root --oversubscribe"
res=$tmp/res
mkdir -p "$res"

train() {   # train NAME [mpirun -np N] ARGS...: a training into $res/NAME.h5
  local name=$1; shift
  "$@" --no-progress --out "$res/$name.h5" >"$tmp/$name.out" 2>&1
}

# 1. Result files.
made=0
for m in gmu transformer_concat; do
  for np in 1 2; do
    if train "mm-$m-np$np" $MPIRUN -np $np "$FB" train --scenario multimodal --method $m --steps 8 \
         --trace-every 2; then made=$((made + 1)); else tail -n 3 "$tmp/mm-$m-np$np.out"; fi
  done
done
if train mb-global-np2 $MPIRUN -np 2 "$FB" train --scenario microbiome --parallel ddp --pairs global \
     --steps 6 --trace-every 2; then made=$((made + 1)); else tail -n 3 "$tmp/mb-global-np2.out"; fi
if [ "$made" -eq 5 ]; then pass "5 training runs written"
else fail "only $made of 5 training runs written"; fi
if train poisoned "$FB" train --scenario multimodal --steps 6 --flush-every 1 --poison-step 2; then
  fail "a NaN at step 2 did not fail the run"
else pass "a failed run (NaN at step 2) for the runs table"; fi

# The checker: reads the HDF5 files itself and compares with what report.py plotted.
cat >"$tmp/check.py" <<'EOF'
import csv, json, math, os, re, statistics, sys
import h5py, numpy as np
from matplotlib import image as mpimg

mode, res, out = sys.argv[1:4]
failures = 0
PHASE_ATTR = {"data": "median_data_ms", "forward": "median_forward_ms", "loss": "median_loss_ms",
              "backward": "median_backward_ms", "exposed communication": "median_comm_exposed_ms",
              "optimizer": "median_optimizer_ms"}
IMG = r'<img src="([^"]+)"'


def check(ok, what, why=""):
    """One PASS/FAIL line; `why` is shown on failure."""
    global failures
    failures += not ok
    print(("PASS  " if ok else "FAIL  ") + what + ("" if ok or not why else f"; {why}"))


def h5(name):
    return h5py.File(os.path.join(res, name), "r")


def train_files():
    """{file name: complete} of every train file in res, read here, not by report.py."""
    found = {}
    for name in sorted(os.listdir(res)):
        if name.endswith(".h5"):
            with h5(name) as f:
                if f.attrs.get("schema") == "fusebench.train":
                    found[name] = int(f.attrs["complete"])
    return found


def load(name):
    with open(os.path.join(out, name + ".json")) as f:
        return json.load(f)


def rows(name):
    with open(os.path.join(out, name + ".csv")) as f:
        return list(csv.DictReader(f))


def same(a, b):
    """a (JSON: null for NaN) equals the array b element for element."""
    a = np.array([np.nan if x is None else x for x in np.ravel(np.array(a, dtype=object))], float)
    b = np.ravel(np.asarray(b, float))
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def valid_png(path):
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        return (os.path.getsize(path) > 0 and head == b"\x89PNG\r\n\x1a\n"
                and mpimg.imread(path).size > 0)
    except (OSError, ValueError, SyntaxError):
        return False


def check_files(html):
    """The page's images decode, its links are relative files, each figure has its JSON."""
    imgs = re.findall(IMG, html)
    bad = [s for s in imgs if not valid_png(os.path.join(out, s))]
    check(imgs and not bad, f"{len(imgs)} images in index.html exist, are non-empty and decode as PNG",
          f"bad: {bad}")
    links = re.findall(r'href="([^"#][^"]*)"', html)
    bad = [h for h in links if "/" in h or not os.path.isfile(os.path.join(out, h))]
    check(not bad, f"{len(links)} links: relative, each file exists", f"bad: {bad}")
    bad = [s for s in imgs if not os.path.isfile(os.path.join(out, s[:-4] + ".json"))]
    check(not bad, "every figure has its plotted data beside it (.json)", f"without: {bad}")
    check("<script" not in html.lower() and "://" not in html, "no script and no external resource")
    return imgs


def check_page():
    html = open(os.path.join(out, "index.html")).read()
    imgs = check_files(html)
    want = {"throughput", "scaling_weak", "step_breakdown", "loss_multimodal", "loss_microbiome",
            "gradnorm_multimodal_gmu", "gradnorm_multimodal_transformer_concat",
            "gradnorm_microbiome_categorical_concat", "fusion_multimodal", "fusion_microbiome",
            "papi_time_multimodal", "papi_time_microbiome"}
    have = {s[:-4] for s in imgs}
    check(want <= have, "the expected figures are there", f"missing {sorted(want - have)}")
    for title in ("Strong scaling", "Parallel strategies and pair scopes",
                  "MPI collectives (fusebench comm)", "Hardware counters: multimodal"):
        check(f'<p class="omitted"><b>{title}</b>: omitted' in html,
              f"'{title}' (no data): a one-line omission note, no image")
    check("statement" in html and "no hardware counters" in html, "the /counters statement is shown")


def check_numbers():
    files = train_files()
    done = sorted(n for n, c in files.items() if c == 1)
    sps = {}
    for n in done:
        with h5(n) as f:
            sps[n] = float(f["summary"].attrs["samples_per_s"])

    tp = load("throughput")
    got = {r["file"]: r["samples_per_s"] for g in tp["groups"] for r in g["runs"]}
    check(got == sps, f"throughput: samples/s of the {len(sps)} finished runs equal /summary")
    check(all(math.isclose(g["mean"], statistics.fmean(r["samples_per_s"] for r in g["runs"]))
              for g in tp["groups"]), "throughput: each group's mean is the mean of its runs")

    ok, names = True, []
    for s in load("scaling_weak")["series"]:
        mean = [statistics.fmean(sps[r["file"]] for r in grp) for grp in s["runs"]]
        eff = [v * s["ranks"][0] / (p * mean[0]) for p, v in zip(s["ranks"], mean)]
        ok &= np.allclose(s["samples_per_s"] + s["efficiency"], mean + eff, rtol=1e-12, atol=0)
        names.append((s["method"], s["ranks"]))
    check(ok and sorted(names) == [("gmu", [1, 2]), ("transformer_concat", [1, 2])],
          f"weak scaling: series {names}; samples/s and efficiency recomputed from the files")

    ok, n = True, 0
    for g in load("step_breakdown")["groups"]:
        for r in g["runs"]:
            with h5(r["file"]) as f:
                a = f["summary"].attrs
                ok &= all(r[label] == float(a[attr]) for label, attr in PHASE_ATTR.items())
            n += 1
    check(ok and n == len(done), f"step breakdown: the phase medians of {n} runs equal /summary")

    ok, n = True, 0
    for scen in ("multimodal", "microbiome"):
        for r in load(f"loss_{scen}")["runs"]:
            with h5(r["file"]) as f:
                st = f["steps"]
                ok &= same(r["loss"], st["loss"][()]) and same(r["step"], st["step"][()])
                ok &= r["loss"][-1] == float(st["loss"][-1])
                ok &= all(same(r[t], st[t][()]) for t in ("ce", "aux", "huber", "unifrac") if t in st)
            n += 1
    check(ok and n == len(files), f"loss curves: {n} runs' loss, terms and final loss equal /steps")

    ok = True
    for name in ("gmu", "transformer_concat"):
        d = load(f"gradnorm_multimodal_{name}")
        with h5(d["run"]["file"]) as f:
            p = f["traces/params"]
            ok &= same(d["grad_norm"], p["grad_norm"][()]) and same(d["step"], p["step"][()])
            ok &= d["tensor"] == list(p["tensor"].asstr()[()])
    check(ok, "gradient heatmaps: tensor x step matrices equal /traces/params grad_norm")

    traced, plotted, ok = set(), set(), True
    for n in files:
        with h5(n) as f:
            c = f["config"].attrs
            traced |= {(c["scenario"], c["method"], p) for p in f.get("traces/fusion", {})}
    for scen in ("multimodal", "microbiome"):
        for point, by_method in load(f"fusion_{scen}")["points"].items():
            for method, e in by_method.items():
                with h5(e["file"]) as f:
                    g = f[f"traces/fusion/{point}"]
                    ok &= same(e["ratio"], g["ratio"][()]) and same(e["step"], g["step"][()])
                    gated = bool(np.isfinite(g["gate_mean"][()]).any())
                    ok &= gated == ("gate_mean" in e)
                    ok &= not gated or all(same(e[k], g[k][()])
                                           for k in ("gate_mean", "gate_min", "gate_max"))
                plotted.add((scen, method, point))
    check(ok and plotted == traced, f"fusion diagnostics: all {len(traced)} traced (scenario, method, "
          f"point) plotted; ratio and gate equal /traces/fusion", f"plotted {plotted}, traced {traced}")

    ok = True
    for scen in ("multimodal", "microbiome"):
        d = load(f"papi_time_{scen}")
        with h5(d["run"]["file"]) as f:
            ok &= np.allclose(d["real_ms"], f["counters/real_ns"][()] / 1e6, rtol=1e-12)
            ok &= np.allclose(d["virt_ms"], f["counters/virt_ns"][()] / 1e6, rtol=1e-12)
            ok &= f["ranks"].attrs["nrows"] == 2       # the 2-rank run stands for the scenario
    check(ok, "PAPI time: real and virtual times equal /counters real_ns, virt_ns (2-rank run)")

    runs = {r["file"]: r for r in rows("runs")}
    states = {n: ("done" if c else "failed") for n, c in files.items()}
    check({n: r["state"] for n, r in runs.items()} == states,
          f"runs table: the state of each of {len(files)} runs")
    error = runs.get("poisoned.h5", {}).get("error", "")
    check("nan" in error, f"runs table: the failed run's error: {error!r}")

    fired = set()
    for n in done:
        with h5(n) as f:
            v = {k: f["verdicts"][k][()] for k in ("verdict", "subject", "detail", "fired")}
            fired |= {(n[:-3], k.decode(), s.decode(), d.decode())
                      for k, s, d, x in zip(v["verdict"], v["subject"], v["detail"], v["fired"]) if x}
    listed = {(r["run"], r["verdict"], r["subject"], r["detail"]) for r in rows("verdicts")
              if r["verdict"] not in ("none fired", "(no /verdicts)")}
    check(fired and listed == fired, f"verdicts table: the {len(listed)} fired verdicts and their "
          f"detail lines are the files' ({sorted({k for _, k, _, _ in fired})})")

    ok = True
    for r in rows("sde"):
        with h5(r["run"] + ".h5") as f:
            t = dict(zip(f["sde/counter"].asstr()[()], f["sde/value"][()]))
        ok &= int(r["flops_forward (FLOP)"]) == t["flops_forward"]
        ok &= int(r["exposed_comm_ns (ns)"]) == t["exposed_comm_ns"]
    check(ok, "SDE table: flops_forward and exposed_comm_ns equal /sde")


def make_summary():
    """A summary.h5 laid out as fusebench merge writes it (results/README.md: /runs with id,
    file, state, error, ...; -1 where a missing run has no value; /links/<id>): two runs of the
    folder and one planned run without a file."""
    with h5py.File(os.path.join(res, "summary.h5"), "w") as f:
        f.attrs["schema"], f.attrs["schema_version"] = "fusebench.summary", 1
        g = f.create_group("runs")
        for col, vals in (("id", ["gmu-1", "gmu-2", "planned-4"]),
                          ("file", ["mm-gmu-np1.h5", "mm-gmu-np2.h5", "mm-gmu-np4.h5"]),
                          ("state", ["done", "done", "missing"]),
                          ("error", ["", "", "mm-gmu-np4.h5"]),
                          ("scenario", ["multimodal", "multimodal", ""]),
                          ("method", ["gmu", "gmu", ""])):
            g.create_dataset(col, data=np.array(vals, dtype=object), dtype=h5py.string_dtype())
        g["ranks"] = np.array([1, 2, -1])
        g["steps_planned"] = np.array([8, 8, -1])
        g.attrs["columns"] = "id,file,state,error,scenario,method,ranks,steps_planned"
        g.attrs["nrows"] = 3
        f["links/gmu-1"] = h5py.ExternalLink("mm-gmu-np1.h5", "/")
        f["links/gmu-2"] = h5py.ExternalLink("mm-gmu-np2.h5", "/")


def check_index():
    runs = {r["id"]: r for r in rows("runs")}
    planned = runs.get("planned-4", {})
    check(planned.get("state") == "missing" and planned.get("ranks") == ""
          and planned.get("steps done/planned") == "-/",
          "summary index: the planned run without a file is 'missing', no placeholder shown",
          f"row {planned}")
    check(runs.get("gmu-1", {}).get("state") == "done" and runs["gmu-1"]["file"] == "mm-gmu-np1.h5",
          "summary index: a listed run keeps the summary's id and is read from its file")
    check(len(runs) == len(train_files()) + 1,
          f"summary index: the train files it does not list are added ({len(runs)} rows)")


def study_folders():
    """{name: (folder, root attributes)} of the study folders in res, read here with h5py."""
    found = {}
    for d in sorted(os.listdir(res)):
        path = os.path.join(res, d, "study.h5")
        if os.path.isfile(path):
            with h5py.File(path, "r") as f:
                found[f.attrs["study"]] = (os.path.join(res, d), dict(f.attrs))
    return found


def text(x):
    return x.decode() if isinstance(x, bytes) else str(x)


def check_study_plots(*names):
    for name in names:
        png = os.path.join(res, name, "study.png")
        with open(os.path.join(res, name, "study.json")) as f:
            data = json.load(f)
        check(valid_png(png) and data["study"] == name and data["panels"],
              f"study_plot.py {name}: study.png decodes, study.json has its {len(data['panels'])} panel(s)")


def check_studies():
    html = open(os.path.join(out, "index.html")).read()
    imgs = check_files(html)
    found = study_folders()
    check(re.search(r"<h2>\d+\. Studies</h2>", html) is not None, "index.html has a Studies section")
    check("Throughput" not in html, "only studies in the folder: no run sections")
    summary = {r["study"]: r for r in rows("studies")}
    ok = sorted(summary) == sorted(found)
    for name, (folder, a) in found.items():
        v = a["verdict"]
        ok_v = re.search(rf'Study {name} \(document [^)]*\) <span class="tag tag-{v}">{v}</span>', html)
        check(ok_v is not None, f"study {name}: heading with the verdict {v} (coloured tag)")
        check(f"study_{name}.png" in imgs and valid_png(os.path.join(out, f"study_{name}.png")),
              f"study {name}: its plot is an image of the page")
        figs = f_rows = rows(f"study_{name}_figures")
        with h5py.File(os.path.join(folder, "study.h5"), "r") as f:
            t = f["figures"][()]
        deciding = [(text(n), text(a_) or "(study)") for n, a_, d in zip(t["name"], t["arm"], t["deciding"]) if d]
        check(len(figs) == len(t) and [(r["figure"], r["arm"]) for r in f_rows if r["deciding"]] == deciding,
              f"study {name}: figures table has the {len(t)} rows, the {len(deciding)} deciding ones marked")
        row = summary.get(name, {})
        ok &= [row.get(k) for k in ("document", "verdict", "reason")] == [a["document"], v, a["reason"]]
    check(ok, f"summary table: the {len(found)} studies' document, verdict and reason are study.h5's")

    data = load("study_imbalance")
    folder = found["imbalance"][0]
    n, good = 0, True
    for panel in data["panels"]:
        for r in panel["runs"]:
            point = panel["series"].split("/")[2]
            with h5py.File(os.path.join(folder, r["file"]), "r") as f:
                g = f[f"traces/fusion/{point}"]
                good &= same(r["value"], g["ratio"][()]) and same(r["step"], g["step"][()])
            n += 1
    check(good and n > 0, f"imbalance: the {n} plotted ratio curves equal /traces/fusion/<point>/ratio")

    with h5py.File(os.path.join(found["fusion_league"][0], "study.h5"), "r") as f:
        t = f["figures"][()]
    cells = {}
    for nm, arm, v in zip(t["name"], t["arm"], t["value"]):
        if "@" in text(arm):
            cells.setdefault(tuple(text(arm).split("@")[::-1]), {})[text(nm)] = float(v)
    good = True
    for panel in load("study_fusion_league")["panels"]:
        pts = {(panel["scenario"], p["method"]): p for p in panel["points"]}
        good &= all(p["holdout_loss"] == cells[k]["holdout_loss"] and
                    p["samples_per_s"] == cells[k]["samples_per_s"] for k, p in pts.items())
        front = sorted((m for (s, m), c in cells.items() if s == panel["scenario"] and not any(
            c2["samples_per_s"] >= c["samples_per_s"] and c2["holdout_loss"] <= c["holdout_loss"] and
            c2 != c for (s2, _), c2 in cells.items() if s2 == s)))
        good &= sorted(panel["front"]) == front
    check(good, "fusion_league: plotted losses and throughputs are /figures', the Pareto fronts recomputed")


def check_chromium(log, shot):
    imgs = set(re.findall(IMG, open(os.path.join(out, "index.html")).read()))
    text = open(log, errors="replace").read()
    check(valid_png(shot), f"Chromium screenshot {os.path.basename(shot)} is a PNG")
    console = [line for line in text.splitlines() if ":CONSOLE" in line]
    check(not console, "no console message (error, warning, log) from the page", "\n".join(console[:5]))
    loaded = re.findall(r"FileURLLoader::Start: file://(\S+)", text)
    if loaded:
        names = {os.path.basename(p) for p in loaded if os.path.dirname(p) == os.path.abspath(out)}
        check(imgs <= names, f"Chromium loaded all {len(imgs)} images", f"not {sorted(imgs - names)}")
        check(all(os.path.isfile(p) for p in loaded), "every file Chromium asked for exists")
    else:
        srcs = set(re.findall(IMG, open(log + ".dom").read()))
        check(srcs == imgs and all(os.path.isfile(os.path.join(out, s)) for s in srcs),
              f"(Chromium logs no file loads) the rendered DOM has the {len(srcs)} images, all present")


if mode == "chromium":
    check_chromium(*sys.argv[4:6])
else:
    {"page": check_page, "numbers": check_numbers, "summary": make_summary, "index": check_index,
     "studies": check_studies,
     "study_plots": lambda: check_study_plots(*sys.argv[4:])}[mode]()
sys.exit(1 if failures else 0)
EOF

checker() {   # checker MODE RES OUT [ARGS]: run the checker, count its FAIL lines
  $PY "$tmp/check.py" "$@" >"$tmp/chk" 2>&1
  rc=$?
  cat "$tmp/chk"
  n=$(grep -c '^FAIL' "$tmp/chk")
  if [ "$rc" -ne 0 ] && [ "$n" -eq 0 ]; then fail "checker $1 crashed"; fi
  failed=$((failed + n))
}

# 2. The report from the per-run files.
out=$res/report
if timeout 120 $PY plots/report.py "$res" >"$tmp/report.out" 2>&1; then
  pass "report.py ran: $(tail -n 1 "$tmp/report.out")"
  checker page "$res" "$out"
  checker numbers "$res" "$out"
else
  fail "report.py failed"; tail -n 20 "$tmp/report.out"
fi

# 3. The same folder indexed by a summary.h5: fusebench merge's, from a sweep manifest naming two
#    runs and a planned one without a file; where this binary has no merge yet, one laid out as
#    results/README.md describes.
printf 'id\tfile\ngmu-1\tmm-gmu-np1.h5\ngmu-2\tmm-gmu-np2.h5\nplanned-4\tmm-gmu-np4.h5\n' >"$res/manifest.tsv"
if "$FB" merge "$res" >"$tmp/merge.out" 2>&1 && [ -f "$res/summary.h5" ]; then
  pass "fusebench merge wrote summary.h5: $(tail -n 1 "$tmp/merge.out")"
else
  echo "NOTE  fusebench merge did not run ($(tail -n 1 "$tmp/merge.out")): a summary.h5 written here instead"
  rm -f "$res/summary.h5"
  checker summary "$res" "$out"
fi
if timeout 120 $PY plots/report.py "$res" --out "$tmp/report2" >"$tmp/report2.out" 2>&1; then
  checker index "$res" "$tmp/report2"
else
  fail "report.py with summary.h5 failed"; tail -n 20 "$tmp/report2.out"
fi

# 4. Chromium, headless: the page renders, every image loads, no console message.
render() {   # render RES OUT: Chromium on OUT/index.html
  if ! command -v chromium >/dev/null 2>&1; then
    echo "SKIP  Chromium is not installed (make deps installs Debian's chromium): page not rendered"
  elif [ -f "$2/index.html" ]; then
    chrome="timeout 60 chromium --headless --disable-gpu --no-sandbox --user-data-dir=$tmp/chrome \
      --no-first-run --disable-background-networking --disable-component-update --disable-sync"
    $chrome --screenshot="$tmp/shot.png" --window-size=1400,3000 --enable-logging=stderr --v=1 \
      "file://$2/index.html" >/dev/null 2>"$tmp/chrome.log"
    $chrome --dump-dom "file://$2/index.html" >"$tmp/chrome.log.dom" 2>/dev/null
    checker chromium "$1" "$2" "$tmp/chrome.log" "$tmp/shot.png"
  fi
}
render "$res" "$out"

# 5. Studies: fake study folders (tests/study_fixture.py), every known study and an unknown name.
st=$tmp/studies
known="imbalance starvation multiplication gate_bias stochastic_eval dead_parameter modality_dropout
  pairwise_scope single_token_attention fusion_league"
if $PY tests/study_fixture.py "$st" $known my_new_study >/dev/null 2>"$tmp/fixture.err" &&
   $PY tests/study_fixture.py "$tmp/st-drop" imbalance --drop calendar_fusion >/dev/null 2>>"$tmp/fixture.err"
then pass "study fixtures written"; else fail "study_fixture.py failed"; cat "$tmp/fixture.err"; fi
for name in imbalance fusion_league my_new_study; do
  if timeout 60 $PY plots/study_plot.py "$st/$name" >"$tmp/sp.out" 2>&1 &&
     grep -q "^wrote $st/$name/study.png$" "$tmp/sp.out"; then pass "study_plot.py $name: $(grep -c '^wrote' "$tmp/sp.out") files"
  else fail "study_plot.py $name"; cat "$tmp/sp.out"; fi
done
checker study_plots "$st" "$st" imbalance fusion_league my_new_study
if grep -q "not one of the 10 known studies" "$tmp/sp.out"; then pass "an unknown study: said so, deciding figures plotted"
else fail "an unknown study is not announced"; fi
if timeout 60 $PY plots/study_plot.py "$tmp/st-drop/imbalance" >"$tmp/sp.out" 2>&1 &&
   grep -q "not plotted: calendar_fusion.*no run has traces/fusion/calendar_fusion/ratio" "$tmp/sp.out"
then pass "a missing series: the panel left out and named: $(grep 'not plotted' "$tmp/sp.out")"
else fail "a missing series is not named"; cat "$tmp/sp.out"; fi
if $PY plots/study_plot.py "$res" >"$tmp/sp.out" 2>&1; then fail "study_plot.py on a folder without study.h5 exited 0"
elif grep -q "no study.h5" "$tmp/sp.out"; then pass "study_plot.py without study.h5: exit 1, $(cat "$tmp/sp.out")"
else fail "study_plot.py without study.h5: no clear message"; cat "$tmp/sp.out"; fi
if $PY plots/study_plot.py "$st/imbalance/runs/r0001.h5" >"$tmp/sp.out" 2>&1; then
  fail "study_plot.py on a train file exited 0"
else pass "study_plot.py on a train file: exit 1, $(cat "$tmp/sp.out")"; fi
if timeout 120 $PY plots/report.py "$st" >"$tmp/report3.out" 2>&1; then
  pass "report.py on study folders: $(tail -n 1 "$tmp/report3.out")"
  checker studies "$st" "$st/report"
  render "$st" "$st/report"
else
  fail "report.py on study folders failed"; tail -n 20 "$tmp/report3.out"
fi

if [ "$failed" -gt 0 ]; then echo "test_plots: $failed check(s) failed"; exit 1; fi
echo "test_plots: all checks passed"
