#!/bin/sh
# The microbiome data path end to end:
#   - `fusebench data make` writes a synthetic world as the source system's files; python3-biom-format
#     loads the table, scikit-bio's unweighted UniFrac of the table and the tree equals the written
#     matrix (libssu) within 1e-6;
#   - `fusebench data unifrac` on 3 ranks (stripes, merged on rank 0) equals the one-process matrix;
#   - `fusebench train --table --tree --metadata --unifrac`: ddp --pairs global on 2 ranks (each rank
#     reading only its own samples) and dataparallel give the 1-rank losses within 1e-5;
#   - bad input stops with a message naming the file and the place.
# Run from the repository root after `make bench/fusebench`:  sh tests/test_data.sh
set -u
. tests/shlib.sh
export OMP_NUM_THREADS=1
MPIRUN="timeout 300 mpirun --allow-run-as-root --oversubscribe"
W="$tmp/world"

if "$FB" data make --scenario microbiome --out "$W" --samples 64 --asvs 300 --richness 40 --seed 3 >"$tmp/make.out" 2>&1; then
  pass "data make: $(grep -c '^# wrote' "$tmp/make.out") files written"
else fail "data make failed"; cat "$tmp/make.out"; fi

cat >"$tmp/check.py" <<'PY'
import sys, h5py, numpy as np, biom
from skbio import TreeNode
from skbio.diversity import beta_diversity
w = sys.argv[1]
t = biom.load_table(w + "/table.biom")
counts = t.matrix_data.toarray().T.astype(int)          # (samples, observations)
with h5py.File(w + "/unifrac.h5", "r") as f:
    ids = [x.decode() if isinstance(x, bytes) else x for x in f["order"][()]]
    m = f["matrix"][()]
assert ids == list(t.ids("sample")), "matrix order != table order"
tree = TreeNode.read(w + "/tree.nwk")
ref = beta_diversity("unweighted_unifrac", counts, ids=list(t.ids("sample")), otu_ids=list(t.ids("observation")),
                     tree=tree).data
d = np.abs(ref - m).max()
print(f"      biom-format loads {counts.shape[0]} samples x {counts.shape[1]} ASVs, {int(counts.sum())} reads; "
      f"skbio unweighted UniFrac vs the written matrix: max |diff| {d:.2e}")
sys.exit(0 if d <= 1e-6 else 1)
PY
if $PY "$tmp/check.py" "$W" >"$tmp/check.out" 2>&1; then pass "the files load in biom-format; UniFrac = scikit-bio's"; cat "$tmp/check.out"
else fail "biom-format / scikit-bio check"; sed 's/^/      /' "$tmp/check.out" | tail -n 8; fi

if $MPIRUN -np 3 "$FB" data unifrac --table "$W/table.biom" --tree "$W/tree.nwk" --out "$tmp/u3.h5" --check \
     >"$tmp/u3.out" 2>&1 && grep -q "max_abs_diff_vs_one_process=0$" "$tmp/u3.out"; then
  pass "data unifrac on 3 ranks (striped, merged) = one process, bit for bit"
else fail "distributed UniFrac"; tail -n 5 "$tmp/u3.out"; fi

D="--scenario microbiome --table $W/table.biom --tree $W/tree.nwk --metadata $W/metadata.tsv --unifrac $W/unifrac.h5 --rarefy 0"
run() {   # run NAME NP ARGS...
  local name=$1 np=$2; shift 2
  $MPIRUN -np "$np" "$FB" train $D --batch 8 --steps 12 --threads 1 --no-progress --trace-every 0 \
    --out "$tmp/$name.h5" "$@" >"$tmp/$name.out" 2>&1 || { echo "      $name failed:"; tail -n 5 "$tmp/$name.out"; return 1; }
}
if run one 1 --parallel ddp --pairs global && run two 2 --parallel ddp --pairs global && run dp 2 --parallel dataparallel; then
  for other in two dp; do
    if $PY tests/train_compare.py losses "$tmp/$other.h5" "$tmp/one.h5" 1e-5 >"$tmp/cmp" 2>&1; then
      pass "train on the files: $other = 1 rank"; cat "$tmp/cmp"
    else fail "train on the files: $other differs from 1 rank"; cat "$tmp/cmp"; fi
  done
else fail "training on the files failed"; fi

# Records of the in-memory generators: the same seed gives the same bits; the layout is in the file.
for sc in timeseries multimodal; do
  if "$FB" data make --scenario $sc --out "$tmp/r1" --samples 20 --seed 5 >/dev/null 2>&1 &&
     "$FB" data make --scenario $sc --out "$tmp/r2" --samples 20 --seed 5 >/dev/null 2>&1 &&
     $PY -c "
import h5py, numpy as np, sys
a = h5py.File('$tmp/r1/$sc-records.h5', 'r'); b = h5py.File('$tmp/r2/$sc-records.h5', 'r')
assert a['x'].shape[0] == 20 and np.array_equal(a['x'][()], b['x'][()]) and np.array_equal(a['y'][()], b['y'][()])
assert np.all(np.isfinite(a['x'][()])) and a.attrs['record_layout']
print('      %s: x %s, y %s, bitwise equal for one seed' % ('$sc', a['x'].shape, a['y'].shape))
" >"$tmp/rec.out" 2>&1; then pass "data make --scenario $sc: records, deterministic"; cat "$tmp/rec.out"
  else fail "data make --scenario $sc"; tail -n 5 "$tmp/rec.out"; fi
done

# The timeseries world's strengths: no celestial component changes the series, not the calendar.
if "$FB" data make --scenario timeseries --out "$tmp/w0" --samples 20 --seed 5 --ts-world celestial=0 >/dev/null 2>&1 &&
   $PY -c "
import h5py, numpy as np
a = h5py.File('$tmp/r1/timeseries-records.h5', 'r'); b = h5py.File('$tmp/w0/timeseries-records.h5', 'r')
S, F = int(a.attrs['seq_len']), int(a.attrs['features'])
series = slice(0, S * F); cal = slice(S * F, S * F + 10 * S)
assert not np.array_equal(a['x'][:, series], b['x'][:, series]), 'series unchanged'
assert np.array_equal(a['x'][:, cal], b['x'][:, cal]), 'calendar changed'
print('      celestial=0: series differ, calendar fields equal')
" >"$tmp/w.out" 2>&1; then pass "data make --ts-world: strengths act on the series only"; cat "$tmp/w.out"
else fail "--ts-world"; tail -n 5 "$tmp/w.out"; fi
if "$FB" train --scenario timeseries --ts-world celestial=x --steps 1 --no-h5 >"$tmp/w.out" 2>&1; then
  fail "--ts-world celestial=x accepted"
else pass "--ts-world with a bad value: $(head -n 1 "$tmp/w.out" | cut -c1-80)..."; fi

# Bad input: one message naming the file (and the place), non-zero exit.
bad() {   # bad DESCRIPTION EXPECTED-SUBSTRING ARGS...
  local what=$1 want=$2; shift 2
  if "$FB" train --steps 2 --no-progress --no-h5 "$@" >"$tmp/bad.out" 2>&1; then fail "$what: accepted"
  elif grep -q -- "$want" "$tmp/bad.out"; then pass "$what"; grep -m1 "fusebench" "$tmp/bad.out" | sed 's/^/      /'
  else fail "$what: message lacks '$want'"; tail -n 3 "$tmp/bad.out"; fi
}
bad "--table on the timeseries scenario" "microbiome scenario" --scenario timeseries --table "$W/table.biom"
bad "--table without --tree" "go together" --scenario microbiome --table "$W/table.biom" --metadata "$W/metadata.tsv"
head -n 20 "$W/metadata.tsv" >"$tmp/short.tsv"
bad "a table sample missing from the metadata" "short.tsv" $D --metadata "$tmp/short.tsv"
{ cat "$W/metadata.tsv"; sed -n 2p "$W/metadata.tsv"; } >"$tmp/dup.tsv"
bad "a duplicate sample id in the metadata" "line 66" $D --metadata "$tmp/dup.tsv"
printf '(a:1,(b:1,c:1);\n' >"$tmp/bad.nwk"
bad "Newick with unbalanced parentheses" "bad.nwk" $D --tree "$tmp/bad.nwk"
bad "rarefaction depth above every sample" "above every sample" $D --rarefy 1000000000
printf 'not hdf5\n' >"$tmp/fake.biom"
bad "a table that is not HDF5" "fake.biom" $D --table "$tmp/fake.biom"

if [ "$failed" -gt 0 ]; then echo "test_data: $failed check(s) failed"; exit 1; fi
echo "test_data: all checks passed"
