#!/bin/sh
# fusebench study end to end on one real study (dead_parameter: 4 short multimodal runs): the sweep
# is planned and run, study.h5 holds a verdict derived from the runs with its rule, figures and
# runs tables, the plot is written, --analyse reproduces the verdict from the same runs, a deleted
# run makes the study say so (and exit 1) instead of inventing its figures; bad input is refused
# with a message and exit 2 before anything is written. (The verdict logic of every study is
# tested on synthetic traces in tests/test_studies.c.)
# Run from the repository root after `make bench/fusebench`:  sh tests/test_study.sh
set -u
. tests/shlib.sh

dir="$tmp/dead"
if "$FB" study dead_parameter --out "$dir" >"$tmp/study.out" 2>&1; then
  pass "fusebench study dead_parameter runs its sweep and derives a verdict"
  grep '^VERDICT' "$tmp/study.out" | sed 's/^/      /'
else
  fail "fusebench study dead_parameter (exit $?)"; tail -n 15 "$tmp/study.out" | sed 's/^/      /'
fi
if $PY - "$dir" >"$tmp/check.out" 2>&1 <<'PYEOF'
import sys, os, h5py
d = sys.argv[1]
with h5py.File(os.path.join(d, "study.h5"), "r") as f:
    a = f.attrs
    assert a["schema"] == "fusebench.study" and a["schema_version"] == 1 and a["complete"] == 1
    assert a["study"] == "dead_parameter" and a["verdict"] in ("CONFIRMED", "REFUTED", "INCONCLUSIVE")
    assert a["rule"] and a["reason"] and a["claim"]
    fig = {c: f["figures"][c][...] for c in f["figures"].attrs["columns"].split(",")}
    names = [x.decode() for x in fig["name"]]
    arms = [x.decode() for x in fig["arm"]]
    i = names.index("token_grad_max"); j = names.index("token_grad_max", i + 1)
    assert fig["deciding"][i] == 1 and arms[i] == "default" and arms[j] == "with_token"
    runs = {c: f["runs"][c][...] for c in f["runs"].attrs["columns"].split(",")}
    assert len(runs["id"]) == 4 and all(runs["complete"] == 1)
    # The deciding figure is the runs' own trace: recompute it from the run files.
    top = 0.0
    for k, arm in enumerate(runs["arm"]):
        if arm.decode() != "default":
            continue
        with h5py.File(os.path.join(d, runs["file"][k].decode()), "r") as r:
            labels = [x.decode() for x in r["traces/params/tensor"][...]]
            col = next(n for n, t in enumerate(labels) if "modality_token" in t)
            top = max(top, float(r["traces/params/grad_norm"][:, col].max()))
    assert abs(top - fig["value"][i]) <= 1e-12 * max(1.0, top), (top, fig["value"][i])
    print(f"      verdict {a['verdict']}: {a['reason']}")
assert os.path.getsize(os.path.join(d, "study.png")) > 10000
PYEOF
then pass "study.h5: schema, verdict, rule, figures recomputed from the run files, runs table; study.png"; cat "$tmp/check.out"
else fail "study.h5 contents"; sed 's/^/      /' "$tmp/check.out"; fi

v1=$(grep '^VERDICT' "$tmp/study.out")
if "$FB" study dead_parameter --analyse "$dir" --no-plot >"$tmp/again.out" 2>&1 &&
   [ "$(grep '^VERDICT' "$tmp/again.out")" = "$v1" ] && [ -f "$dir/study.h5.prev" ]; then
  pass "--analyse: the same verdict from the same runs (the earlier study.h5 kept as .prev)"
else fail "--analyse"; tail -n 5 "$tmp/again.out" | sed 's/^/      /'; fi

rm "$dir/runs/r0003.h5"
"$FB" study dead_parameter --analyse "$dir" --no-plot >"$tmp/gone.out" 2>&1; rc=$?
if [ $rc -eq 1 ] && grep -q "3 of 4 complete" "$tmp/gone.out" && grep -q "1 run(s) missing" "$tmp/gone.out"; then
  pass "a missing run: exit 1, the study says 3 of 4 runs and uses those"
else fail "missing run (exit $rc)"; tail -n 5 "$tmp/gone.out" | sed 's/^/      /'; fi

refused() {   # refused DESCRIPTION TEXT ARGS...
  local what=$1 text=$2; shift 2
  "$FB" study "$@" >"$tmp/bad.out" 2>&1; rc=$?
  if [ $rc -eq 2 ] && grep -q "$text" "$tmp/bad.out"; then pass "$what: exit 2"; echo "      $(grep "$text" "$tmp/bad.out" | head -n 1)"
  else fail "$what (exit $rc)"; sed 's/^/      /' "$tmp/bad.out" | tail -n 3; fi
}
refused "an unknown study" "unknown study 'weather'" weather
refused "no study named" "which study" --out "$tmp/x"
refused "--analyse of a missing folder" "no such folder" imbalance --analyse "$tmp/none"
refused "--out and --analyse together" "not both" imbalance --out "$tmp/a" --analyse "$dir"
refused "a bad flag" "unknown option\|--frobnicate" imbalance --frobnicate
before=$(ls -lR --time-style=full-iso "$dir" | md5sum)
refused "an existing --out folder" "exists: a study writes a new folder" imbalance --out "$dir"
if [ "$(ls -lR --time-style=full-iso "$dir" | md5sum)" = "$before" ]; then pass "... and it was left as it was"
else fail "the existing folder was touched"; fi
if "$FB" study --list | grep -q "^fusion_league " && [ "$("$FB" study --list | grep -c '^[a-z_]* *\(000\|002\|003\|all\) ')" -eq 10 ]; then
  pass "--list shows the ten studies"
else fail "--list"; fi

if [ "$failed" -eq 0 ]; then echo "test_study: all checks passed"; exit 0; fi
echo "test_study: $failed check(s) failed"; exit 1
