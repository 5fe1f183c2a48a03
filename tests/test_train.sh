#!/bin/sh
# The training harness under mpirun -np 1, 2 and 4 (oversubscribed on this 2-core machine):
#   - dataparallel and ddp --pairs global on P ranks give the 1-rank result on the same global batch
#     (losses per step and final parameters within 1e-5 relative over 20 steps), for each scenario
#     with its default method, dropout on;
#   - ddp --pairs local: the loss is the mean of the P local losses computed separately;
#     blockdiag = local with the UniFrac term scaled by P and the same parameters;
#   - the same seed, ranks and threads give bitwise-identical runs; checkpoint + resume equals the
#     uninterrupted run bitwise; bucketed and blocking allreduce agree;
#   - bad input (B not divisible by P, odd B with the UniFrac loss, a method that does not fit, more
#     ranks than samples, NaN in the embeddings) exits non-zero on every rank with one clear message
#     from rank 0 and no hang.
# PASS/FAIL per check; exits non-zero when any check failed.
# Run from the repository root after `make bench/fusebench`:  sh tests/test_train.sh
set -u
. tests/shlib.sh
CMP="$PY tests/train_compare.py"
export OMP_NUM_THREADS=1
MPIRUN="timeout 300 mpirun --allow-run-as-root --oversubscribe"
STEPS=20

# train NAME NP ARGS...: runs one training into $tmp/NAME.h5 (+ checkpoint $tmp/NAME.ckpt.h5).
train() {
  local name=$1 ranks=$2; shift 2
  if $MPIRUN -np "$ranks" "$FB" train --no-progress --steps $STEPS --out "$tmp/$name.h5" \
       --checkpoint "$tmp/$name.ckpt.h5" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"; then
    return 0
  fi
  echo "      $FB train $* on $ranks ranks failed:"; sed 's/^/      /' "$tmp/$name.err" | tail -n 8
  return 1
}

check() {   # check DESCRIPTION CMP-ARGS...
  local what=$1; shift
  if $CMP "$@" >"$tmp/cmp" 2>&1; then pass "$what"; cat "$tmp/cmp"
  else fail "$what"; sed 's/^/      /' "$tmp/cmp"; fi
}

# 1. Decomposition: P ranks reproduce 1 rank on the same global batch (dropout 0.1: masks follow the
#    global row). Batch 8 = 8 / 4 / 2 rows per rank.
for sc in timeseries multimodal microbiome; do
  train "$sc-1" 1 --scenario $sc --batch 8 || { fail "$sc: 1-rank run"; continue; }
  for np in 2 4; do
    for par in dataparallel "ddp --pairs global"; do
      tag=$(echo "$par" | tr -d ' -' )
      if train "$sc-$tag-$np" $np --scenario $sc --batch 8 --parallel $par; then
        check "$sc: $par on $np ranks = 1 rank (losses, parameters within 1e-5)" \
          close "$tmp/$sc-$tag-$np.h5" "$tmp/$sc-1.h5" "$tmp/$sc-$tag-$np.ckpt.h5" "$tmp/$sc-1.ckpt.h5" 1e-5
      else fail "$sc: $par on $np ranks runs"; fi
    done
  done
done

# 2. ddp --pairs local: the mean of the local losses, each computed alone (lr 0 keeps the parameters,
#    dropout 0 makes a row's result independent of its step; a 1-rank run of batch B/P at step
#    sP + r sees exactly rank r's rows of step s).
for np in 2 4; do
  n=$((8 / np))
  if train "local-$np" $np --scenario microbiome --batch 8 --lr 0 --dropout 0 --steps 5 &&
     train "local-alone-$np" 1 --scenario microbiome --batch $n --lr 0 --dropout 0 --steps $((5 * np)); then
    check "microbiome: ddp --pairs local on $np ranks = mean of the $np local losses" \
      localmean "$tmp/local-$np.h5" "$tmp/local-alone-$np.h5" $np 1e-6
  else fail "microbiome: ddp --pairs local runs on $np ranks"; fi
  if train "ddplocal-$np" $np --scenario microbiome --batch 8 &&
     train "blockdiag-$np" $np --scenario microbiome --batch 8 --pairs blockdiag; then
    check "microbiome: blockdiag on $np ranks = local, UniFrac term x $np" \
      blockdiag "$tmp/ddplocal-$np.h5" "$tmp/blockdiag-$np.h5" "$tmp/ddplocal-$np.ckpt.h5" "$tmp/blockdiag-$np.ckpt.h5" $np
  else fail "microbiome: blockdiag runs on $np ranks"; fi
done

# 3. Determinism, resume, buckets.
if train det-a 2 --scenario microbiome --batch 8 && train det-b 2 --scenario microbiome --batch 8; then
  check "same seed, ranks and threads: bitwise-identical runs" \
    equal "$tmp/det-a.h5" "$tmp/det-b.h5" "$tmp/det-a.ckpt.h5" "$tmp/det-b.ckpt.h5"
else fail "determinism runs"; fi
if $MPIRUN -np 2 "$FB" train --no-progress --scenario timeseries --batch 8 --steps $STEPS --out "$tmp/full.h5" \
     --checkpoint "$tmp/full-{step}.h5" --checkpoint-every 10 >"$tmp/full.out" 2>&1 &&
   $MPIRUN -np 2 "$FB" train --no-progress --scenario timeseries --batch 8 --steps $STEPS --out "$tmp/res.h5" \
     --resume "$tmp/full-10.h5" --checkpoint "$tmp/res-{step}.h5" >"$tmp/res.out" 2>&1; then
  check "checkpoint at step 10 + resume = the uninterrupted run, bitwise" \
    tail "$tmp/full.h5" "$tmp/res.h5" "$tmp/full-20.h5" "$tmp/res-20.h5"
else fail "checkpoint/resume runs"; sed 's/^/      /' "$tmp/full.out" "$tmp/res.out" | tail -n 10; fi
if train bucket-small 2 --scenario timeseries --batch 8 --bucket-mb 0.01 --first-bucket-mb 0.005 &&
   train bucket-none 2 --scenario timeseries --batch 8 --bucket-mb 0; then
  nb=$(grep -o '[0-9]* gradient buckets' "$tmp/bucket-small.out" | cut -d' ' -f1)
  check "ddp: ${nb:-?} small buckets (Iallreduce during backward) = one blocking allreduce" \
    close "$tmp/bucket-small.h5" "$tmp/bucket-none.h5" "$tmp/bucket-small.ckpt.h5" "$tmp/bucket-none.ckpt.h5" 1e-6
else fail "bucket runs"; fi

# 4. The held-out evaluation (--holdout): the same final model gives the same held-out figures on 1
#    and 2 ranks (ddp global: same training); every term and, for the classifier, the accuracy.
#    The gate bias (--gate-bias): the first traced gate mean follows sigmoid(bias).
if train ho-1 1 --scenario microbiome --batch 8 --holdout 32 && \
   train ho-2 2 --scenario microbiome --batch 8 --pairs global --holdout 32 && \
   train ho-mm 1 --scenario multimodal --batch 8 --holdout 40; then
  if $PY - "$tmp/ho-1.h5" "$tmp/ho-2.h5" "$tmp/ho-mm.h5" >"$tmp/ho.out" 2>&1 <<'PYEOF'
import sys, h5py, math
a, b, mm = (h5py.File(p, "r")["summary"].attrs for p in sys.argv[1:4])
for k in ("holdout_loss", "holdout_huber", "holdout_unifrac"):
    rel = abs(a[k] - b[k]) / abs(a[k])
    assert rel < 1e-5, (k, a[k], b[k])
assert abs(a["holdout_loss"] - a["holdout_huber"] - a["holdout_unifrac"]) < 1e-6
assert a["holdout_samples"] == 32 and math.isnan(a["holdout_accuracy"])
assert 0 <= mm["holdout_accuracy"] <= 1 and mm["holdout_samples"] == 40
print(f"      held-out loss {a['holdout_loss']:.6f} (1 rank) vs {b['holdout_loss']:.6f} (2 ranks); "
      f"multimodal accuracy {mm['holdout_accuracy']:.3f}")
PYEOF
  then pass "--holdout: same figures on 1 and 2 ranks, terms sum to the loss, accuracy for the classifier"; cat "$tmp/ho.out"
  else fail "--holdout figures"; sed 's/^/      /' "$tmp/ho.out"; fi
else fail "--holdout runs"; fi
if train gb-0 1 --scenario timeseries --batch 8 --gate-bias 0 --trace-every 1 --steps 2 && \
   train gb-n 1 --scenario timeseries --batch 8 --gate-bias -4 --trace-every 1 --steps 2; then
  if $PY - "$tmp/gb-0.h5" "$tmp/gb-n.h5" >"$tmp/gb.out" 2>&1 <<'PYEOF'
import sys, h5py, math
g0, gn = (h5py.File(p, "r")["traces/fusion/fusion/gate_mean"][0] for p in sys.argv[1:3])
assert abs(g0 - 0.5) < 0.1 and abs(gn - 1 / (1 + math.exp(4))) < 0.02, (g0, gn)
print(f"      first traced gate mean: {g0:.3f} (bias 0), {gn:.4f} (bias -4; sigmoid(-4) = 0.0180)")
PYEOF
  then pass "--gate-bias sets the gate's start"; cat "$tmp/gb.out"
  else fail "--gate-bias"; sed 's/^/      /' "$tmp/gb.out"; fi
else fail "--gate-bias runs"; fi

if train eb 1 --scenario multimodal --method energy_aware_adaptive --variant returned --energy-budget 4 \
     --batch 16 --trace-every 5 && \
   $PY -c "import h5py,sys; g=h5py.File(sys.argv[1])['traces/fusion/fusion']; c=g['expected_cost'][()]; \
assert (g['cost_budget'][()] == 4).all() and c[0] > 4; print(f'      E[cost] {c[0]:.3f} -> {c[-1]:.3f} mJ, budget 4')" \
     "$tmp/eb.h5" >"$tmp/eb.out" 2>&1; then
  pass "--energy-budget: the penalty's budget, traced with E[cost]"; cat "$tmp/eb.out"
else fail "--energy-budget"; cat "$tmp/eb.out" 2>/dev/null | sed 's/^/      /'; fi

# 5. Bad input: non-zero exit on every rank (mpirun's status), one message from rank 0, no hang.
bad() {   # bad DESCRIPTION EXPECTED-TEXT NP ARGS...
  local what=$1 text=$2 ranks=$3; shift 3
  $MPIRUN -np "$ranks" "$FB" train --no-progress --no-h5 --steps 5 "$@" >"$tmp/bad.out" 2>"$tmp/bad.err"
  rc=$?
  n=$(grep -c "$text" "$tmp/bad.err")
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$n" -eq 1 ]; then
    pass "$what: exit $rc, one message"; echo "      $(grep "$text" "$tmp/bad.err")"
  else
    fail "$what (exit $rc, '$text' printed $n times)"; sed 's/^/      /' "$tmp/bad.err" | tail -n 5
  fi
}
bad "B not divisible by P" "does not divide over 4 ranks" 4 --scenario multimodal --batch 6
bad "odd B with the UniFrac loss" "needs an even global batch" 1 --scenario microbiome --batch 7
bad "a method that does not fit" "methods that do:" 2 --scenario timeseries --method perceiver
bad "more ranks than samples" "every rank needs at least one sample" 4 --scenario multimodal --batch 2
bad "NaN in the embeddings (last rank, step 3)" "rank 1: .*non-finite\|rank 1: .*NaN" 2 --scenario microbiome --batch 8 --poison-step 3
bad "NaN in the output (ddp global)" "rank 0: .*NaN\|rank 0: .*non-finite" 2 --scenario microbiome --batch 8 --pairs global --poison-step 2
bad "NaN in the loss (multimodal, dataparallel)" "rank 0: step 1: the" 2 --scenario multimodal --batch 8 --parallel dataparallel --poison-step 1
bad "unknown scenario" "is unknown" 2 --scenario weather
bad "--gate-bias on a method without that gate" "has no gate with a configurable bias" 1 --scenario multimodal --method gmu --gate-bias 0
bad "--energy-budget on a method without one" "has no energy budget" 1 --scenario multimodal --method gmu --energy-budget 4
bad "an odd --holdout with the UniFrac loss" "even number of held-out samples" 2 --scenario microbiome --batch 8 --holdout 5
bad "resume from a missing checkpoint" "cannot open checkpoint" 2 --scenario multimodal --resume "$tmp/none.h5"

if [ "$failed" -eq 0 ]; then echo "test_train: all checks passed"; exit 0; fi
echo "test_train: $failed check(s) failed"; exit 1
