#!/bin/sh
# The result file of `fusebench train` and its instruments (issue: profiling into HDF5):
#   - a run under mpirun -np 2 with 2 threads per rank writes a file that h5py, h5dump and xarray
#     read: complete = 1, counters of both ranks and both threads, every unavailable PAPI event with
#     its reason, SDE counters, traces with named dimensions;
#   - the stability verdicts fire on the documented cases (transformer_concat's unused modality
#     token: dead parameter; energy_aware_adaptive's sampling in evaluation: non-determinism; 000's
#     celestial path without LayerNorm: magnitude imbalance) and stay silent on the control
#     (timeseries, gated_add with LayerNorm);
#   - a run killed with SIGKILL leaves a file with every flushed step; a failed run keeps its steps
#     with complete = 0 and the reason.
# Run from the repository root after `make bench/fusebench`:  sh tests/test_results.sh
set -u
. tests/shlib.sh
CHK="$PY tests/results_check.py"
MPIRUN="timeout 300 mpirun --allow-run-as-root --oversubscribe"

check() {   # check DESCRIPTION FILE MODE ARGS...
  local what=$1; shift
  if $CHK "$@" >"$tmp/chk" 2>&1; then pass "$what"; cat "$tmp/chk"
  else fail "$what"; sed 's/^/      /' "$tmp/chk"; fi
}

run() {   # run NAME [mpirun -np N] ARGS...: a training into $tmp/NAME.h5; 0 when it succeeded
  local name=$1; shift
  "$@" --no-progress --out "$tmp/$name.h5" >"$tmp/$name.out" 2>"$tmp/$name.err"
}

# 1. Two ranks, two threads each.
if run mpi $MPIRUN -np 2 "$FB" train --scenario timeseries --threads 2 --steps 12 --trace-every 3 \
     --eval-check-every 6; then
  check "mpirun -np 2 --threads 2: complete file, counters of 2 ranks x 2 threads" "$tmp/mpi.h5" complete 2 2
  if h5dump -H "$tmp/mpi.h5" >/dev/null 2>&1; then pass "h5dump reads it"; else fail "h5dump cannot read it"; fi
else
  fail "mpirun -np 2 --threads 2 run failed"; tail -n 5 "$tmp/mpi.err"
fi

# 2. Verdicts: documented cases fire, the control stays silent.
verdict() {   # verdict WHAT NAME SUBJECT ARGS...
  local what=$1 name=$2 subject=$3; shift 3
  if run "$name" "$FB" train --steps 60 --trace-every 5 --eval-check-every 20 "$@"; then
    check "$what" "$tmp/$name.h5" verdict "$name" "$subject"
  else fail "$what: the run failed"; tail -n 5 "$tmp/$name.err"; fi
}
verdict "transformer_concat's modality token is a dead parameter" dead_parameters modality_token \
  --scenario multimodal --method transformer_concat
verdict "energy_aware_adaptive samples routes in evaluation: non-deterministic" nondeterministic_eval "" \
  --scenario multimodal --method energy_aware_adaptive
verdict "celestial path without LayerNorm (000 before its fix): magnitude imbalance" magnitude_imbalance fusion \
  --scenario timeseries --method add --celestial-raw
if run control "$FB" train --scenario timeseries --method gated_add --steps 60 --trace-every 5 --eval-check-every 20; then
  check "control (timeseries, gated_add with LayerNorm): no verdict fires" "$tmp/control.h5" clean
else fail "control run failed"; fi

# 3. SIGKILL after step 12 with a flush every 5 steps: steps 0..9 are on disk.
run killed "$FB" train --scenario multimodal --steps 40 --trace-every 2 --flush-every 5 --kill-at-step 12
status=$?
if [ "$status" -ge 128 ]; then pass "--kill-at-step 12: the process died by a signal (status $status)"
else fail "--kill-at-step 12: status $status, not a signal"; fi
check "killed run: h5py opens the file, the 10 flushed steps intact" "$tmp/killed.h5" killed 10

# 4. A failed run (NaN at step 3) keeps its steps, complete = 0, and says why.
if run poisoned "$FB" train --scenario multimodal --steps 10 --flush-every 1 --poison-step 3; then
  fail "a NaN at step 3 did not fail the run"
else
  check "failed run: complete = 0 and the reason in the file" "$tmp/poisoned.h5" failed "nan"
fi

if [ "$failed" -gt 0 ]; then echo "test_results: $failed check(s) failed"; exit 1; fi
echo "test_results: all checks passed"
