#!/bin/sh
# Runs every test binary in DIR (default build/tests), sums cmocka's verdicts and ends with
# "N passed, M failed". A binary that dies before printing its summary counts as one failure.
set -u
dir="${1:-build/tests}"
passed=0; failed=0; worst=""
log=$(mktemp)
for t in "$dir"/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  echo "== $name"
  "$t" >"$log" 2>&1
  rc=$?
  cat "$log"
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
  if [ -z "$p$f" ]; then
    echo "!! $name exited with status $rc before reporting (crash?)"
    failed=$((failed + 1))
    continue
  fi
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  if [ "$rc" -ne 0 ] && [ -z "$f" ]; then failed=$((failed + 1)); fi
  worst="$worst$(grep '^worst-error' "$log")
"
done
rm -f "$log"
echo
echo "worst error against PyTorch, per block (max |got-want| / max |want|):"
printf '%s' "$worst" | sed '/^$/d' | sort
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
