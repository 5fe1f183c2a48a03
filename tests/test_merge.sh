#!/bin/sh
# `fusebench merge`: a sweep's result files into one summary file (results/README.md).
#   - a sweep folder: 2 methods x 1 and 2 ranks, a 2-rank run on the 1-rank global batch (strong
#     scaling), a failed run (NaN at step 3), a killed one, a manifest row without a file, and two
#     files that are not train results; merged, every run is a row with its state, its values equal
#     the run file's (read independently by h5py), the efficiencies equal those computed in Python,
#     the external links open;
#   - an existing summary is refused without --force (and left as it was), replaced with it;
#   - without a manifest, every *.h5 under DIR (recursively), the summary elsewhere;
#   - bad input: no DIR, a folder that does not exist, nothing to merge, a manifest without a
#     `file` column, --out in a missing folder.
# Run from the repository root after `make bench/fusebench`:  sh tests/test_merge.sh
set -u
. tests/shlib.sh
MPIRUN="timeout 120 mpirun --allow-run-as-root --oversubscribe"
d=$tmp/sweep
mkdir -p "$d/runs"

train() {   # train ID RANKS ARGS...: a short multimodal run into $d/runs/ID.h5; its exit status
  local id=$1 np=$2 launch=""; shift 2
  [ "$np" = 1 ] || launch="$MPIRUN -np $np"
  $launch "$FB" train --scenario multimodal --steps 6 --threads 1 --no-progress --out "$d/runs/$id.h5" "$@" \
    >"$tmp/$id.log" 2>&1
}

merge() {   # merge ARGS...: fusebench merge, stdout in $tmp/merge.out, stderr in $tmp/merge.err
  "$FB" merge "$@" >"$tmp/merge.out" 2>"$tmp/merge.err"
}

expect_refusal() {   # expect_refusal WHAT STATUS WORDS ARGS...: merge fails with STATUS, stderr has WORDS
  local what=$1 want=$2 words=$3; shift 3
  merge "$@"
  local status=$?
  if [ "$status" = "$want" ] && grep -q "$words" "$tmp/merge.err"; then pass "$what: exit $status, '$(head -n 1 "$tmp/merge.err")'"
  else fail "$what: exit $status (want $want), stderr: $(cat "$tmp/merge.err")"; fi
}

# 1. The sweep.
ok=1
for m in gmu add; do
  train "$m-1" 1 --method "$m" || ok=0
  train "$m-2" 2 --method "$m" || ok=0
done
train gmu-2-b8 2 --method gmu --batch 8 || ok=0
if [ "$ok" = 1 ]; then pass "5 training runs (gmu, add x 1, 2 ranks; gmu 2 ranks on batch 8)"
else fail "a training run failed"; tail -n 3 "$tmp"/*.log; fi
if train failed 1 --method gmu --poison-step 3 --flush-every 1; then fail "--poison-step 3 did not fail the run"; fi
train killed 1 --method gmu --steps 20 --flush-every 2 --kill-at-step 5
[ $? -ge 128 ] || fail "--kill-at-step 5 did not kill the run"
echo "not HDF5" >"$d/runs/junk.h5"
$PY -c "import h5py; h5py.File('$d/runs/other.h5', 'w').attrs['schema'] = 'something.else'"
printf 'id\tmethod\tranks\tfile\n' >"$d/manifest.tsv"
for id in gmu-1 gmu-2 add-1 add-2 gmu-2-b8 failed killed ghost; do
  printf '%s\t%s\t%s\truns/%s.h5\n' "$id" "${id%%-*}" "$(echo "$id" | cut -s -d- -f2)" "$id" >>"$d/manifest.tsv"
done
states="gmu-1=done gmu-2=done add-1=done add-2=done gmu-2-b8=done failed=failed killed=cut ghost=missing"
states="$states junk=unreadable other=unreadable"

# 2. Merge it and check every row against the run files.
if merge "$d"; then
  line="merged 10 runs: 5 done, 1 failed, 1 cut, 1 missing, 2 unreadable -> $d/summary.h5"
  if [ "$(tail -n 1 "$tmp/merge.out")" = "$line" ]; then pass "merge prints '$line'"
  else fail "merge's last line: '$(tail -n 1 "$tmp/merge.out")', want '$line'"; fi
  if grep -q "warning: skipping .*junk.h5: not an HDF5 file" "$tmp/merge.err" &&
     grep -q "warning: skipping .*other.h5: not a fusebench.train file" "$tmp/merge.err"; then
    pass "the two foreign files are skipped with a warning"
  else fail "no warning for the foreign files: $(cat "$tmp/merge.err")"; fi
  sed 's/^/      /' "$tmp/merge.out"
  if $PY tests/merge_check.py "$d/summary.h5" "$d" $states >"$tmp/chk" 2>&1; then
    pass "summary: states, values equal to each run file's, efficiencies, links"; cat "$tmp/chk"
  else fail "summary check"; sed 's/^/      /' "$tmp/chk"; fi
else
  fail "merge $d: exit $?"; cat "$tmp/merge.err"
fi

# 3. An existing summary: refused without --force (untouched), replaced with it.
cp "$d/summary.h5" "$tmp/before.h5"
expect_refusal "merge onto an existing summary" 1 "exists already (--force replaces it)" "$d"
if cmp -s "$d/summary.h5" "$tmp/before.h5"; then pass "the existing summary is untouched"
else fail "the refused merge changed the summary"; fi
if merge "$d" --force && $PY tests/merge_check.py "$d/summary.h5" "$d" $states >"$tmp/chk" 2>&1; then
  pass "--force replaces it"
else fail "merge --force: $(cat "$tmp/merge.err" "$tmp/chk")"; fi

# 4. No manifest: every *.h5 under DIR, recursively; the summary in another folder.
mkdir -p "$tmp/flat/sub" "$tmp/elsewhere"
cp "$d/runs/add-1.h5" "$tmp/flat/a.h5"
cp "$d/runs/add-2.h5" "$tmp/flat/sub/b.h5"
if merge --out "$tmp/elsewhere/flat.h5" "$tmp/flat" &&
   $PY tests/merge_check.py "$tmp/elsewhere/flat.h5" "$tmp/flat" a=done sub/b=done >"$tmp/chk" 2>&1; then
  pass "no manifest: files found recursively, ids a and sub/b, links from another folder"; cat "$tmp/chk"
else fail "merge without a manifest: $(cat "$tmp/merge.err" "$tmp/chk")"; fi

# 5. A manifest as `sweep plan` writes it (the file column named `out`), its folder moved since:
#    the file is found as DIR/runs/<name>.
mkdir -p "$tmp/moved/runs"
cp "$d/runs/gmu-1.h5" "$tmp/moved/runs/r0001.h5"
printf 'id\tmethod\tout\nr0001\tgmu\t/no/longer/here/runs/r0001.h5\nr0002\tgmu\t/no/longer/here/runs/r0002.h5\n' \
  >"$tmp/moved/manifest.tsv"
if merge "$tmp/moved" &&
   $PY tests/merge_check.py "$tmp/moved/summary.h5" "$tmp/moved" r0001=done r0002=missing >"$tmp/chk" 2>&1; then
  pass "manifest with an 'out' column, folder moved: the run is found under DIR/runs/"; cat "$tmp/chk"
else fail "merge of a moved sweep: $(cat "$tmp/merge.err" "$tmp/chk")"; fi

# 6. Bad input.
mkdir -p "$tmp/empty" "$tmp/badmanifest"
printf 'id\tmethod\nx\tgmu\n' >"$tmp/badmanifest/manifest.tsv"
expect_refusal "no DIR" 2 "DIR is required"
expect_refusal "a folder that does not exist" 1 "no such folder" "$tmp/nope"
expect_refusal "a folder without results or manifest" 1 "nothing to merge" "$tmp/empty"
expect_refusal "a manifest without a file column" 1 "no 'file' column" "$tmp/badmanifest"
expect_refusal "--out in a missing folder" 1 "does not exist" "$d" --out "$tmp/nope/s.h5"
[ -e "$tmp/empty/summary.h5" ] && fail "a refused merge left a summary file"

if [ "$failed" -gt 0 ]; then echo "test_merge: $failed check(s) failed"; exit 1; fi
echo "test_merge: all checks passed"
