#!/bin/sh
# Short libFuzzer runs of every fuzz/fuzz_<name>.c target (built by `make test` into FB_FUZZ_DIR,
# default build/fuzz): FB_FUZZ_SECONDS each (default 10), from the seed corpus fuzz/corpus/<name>/
# (read only) into a scratch corpus. PASS when the run ends without a crash, a leak or a UBSan
# report; the final line gives the executions. Skipped, saying so, when the binaries were not built
# because clang's libFuzzer runtime is missing (`make deps` installs clang and libclang-rt-dev).
# Longer runs: make fuzz FUZZ_SECONDS=600.
set -u
. tests/shlib.sh
dir=${FB_FUZZ_DIR:-build/fuzz}
seconds=${FB_FUZZ_SECONDS:-10}

for src in fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  target=${name#fuzz_}
  bin="$dir/$name"
  if [ ! -x "$bin" ]; then
    echo "SKIP  $name: $bin not built (clang's libFuzzer runtime missing? make deps installs clang libclang-rt-dev)"
    continue
  fi
  mkdir -p "$tmp/corpus-$target" "$tmp/artifacts-$target"
  dict=""
  [ -f "fuzz/$target.dict" ] && dict="-dict=fuzz/$target.dict"
  # shellcheck disable=SC2086
  TMPDIR="$tmp" "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 $dict \
    -artifact_prefix="$tmp/artifacts-$target/" "$tmp/corpus-$target" "fuzz/corpus/$target" >"$tmp/log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/log")
  if [ "$rc" -eq 0 ]; then pass "$name: ${seconds} s, ${runs:-?} executions, no crash"
  else
    fail "$name (exit $rc): the report and the input (Base64) below; reproduce with: $bin <input file>"
    { grep -E '^(PROPERTY FAILED|==[0-9]+==ERROR)' "$tmp/log"; grep -v '^#' "$tmp/log" | tail -n 12; } |
      sed 's/^/      /'
  fi
done
[ "$failed" -eq 0 ]
