#!/bin/sh
# Runs every test binary in DIR (default build/tests) and every tests/test_*.sh, sums the verdicts
# and ends with "N passed, M failed". A binary that dies before printing its summary counts as one
# failure. FUSEBENCH names the fusebench binary the shell tests run (default bench/fusebench).
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
# Shell tests (multi-rank runs of the fusebench command): one verdict each. Skipped under
# sanitizers (FB_SKIP_MPI_TESTS=1), which run single-rank.
if [ "${FB_SKIP_MPI_TESTS:-0}" != 1 ]; then
  for t in tests/test_*.sh; do
    [ -f "$t" ] || continue
    echo "== $t"
    if sh "$t" >"$log" 2>&1; then passed=$((passed + 1)); cat "$log"
    else failed=$((failed + 1)); cat "$log"; echo "!! $t failed"; fi
  done
fi
rm -f "$log"
echo
echo "worst error against PyTorch, per block (max |got-want| / max |want|):"
printf '%s' "$worst" | sed '/^$/d' | sort
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
