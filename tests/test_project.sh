#!/bin/sh
# fusebench project: from a `fusebench comm` file and training runs, a projection table for 1..N
# nodes (efficiency 100% on one rank, never above it, one row per node count), its HDF5 file, the
# model checked against the multi-rank run given; bad input refused. Timings are not asserted
# (printed figures only).
# Run from the repository root after `make bench/fusebench`:  sh tests/test_project.sh
set -u
. tests/shlib.sh
export OMP_NUM_THREADS=1
MPIRUN="timeout 300 mpirun --allow-run-as-root --oversubscribe"
if $MPIRUN -np 2 "$FB" comm --out "$tmp/comm.h5" >/dev/null 2>&1 &&
   $MPIRUN -np 1 "$FB" train --scenario multimodal --steps 20 --threads 1 --no-progress --out "$tmp/one.h5" >/dev/null 2>&1 &&
   $MPIRUN -np 2 "$FB" train --scenario multimodal --steps 20 --threads 1 --no-progress --out "$tmp/two.h5" >/dev/null 2>&1
then pass "comm and training runs for the projection"
else fail "could not make the inputs"; fi
if "$FB" project --comm "$tmp/comm.h5" --latency-us 2 --bandwidth-gbs 12.5 --max-nodes 64 --out "$tmp/p.h5" \
     "$tmp/one.h5" "$tmp/two.h5" >"$tmp/p.out" 2>&1; then
  pass "project ran"; grep "^# check\|^FOM" "$tmp/p.out" | sed 's/^/      /'
  if $PY -c "
import h5py, numpy as np
f = h5py.File('$tmp/p.h5', 'r'); t = f['projection']
n = t['nodes'][()]; e = t['efficiency'][()]
assert list(n) == [1, 2, 4, 8, 16, 32, 64], n
assert e[0] == 1.0 and np.all(e <= 1.0) and np.all(np.diff(e) <= 0), e
assert f.attrs['checked_runs'] == 1
print('      %d rows, efficiency %.3f at 64 nodes, model error %+.1f%% on the 2-rank run' % (len(n), e[-1], 100 * f.attrs['worst_rel_error']))
" >"$tmp/chk" 2>&1; then pass "projection table: 1..64 nodes, efficiency 1 on one rank, non-increasing"; cat "$tmp/chk"
  else fail "projection table"; cat "$tmp/chk"; fi
else fail "project failed"; tail -n 5 "$tmp/p.out"; fi
# The report plots the projection with the model's error, from the file alone.
mkdir -p "$tmp/rep" && cp "$tmp/p.h5" "$tmp/rep/projection.h5"
if $PY plots/report.py "$tmp/rep" >"$tmp/rep.out" 2>&1 && $PY -c "
import json, h5py, numpy as np
d = json.load(open('$tmp/rep/report/projection.json'))
t = h5py.File('$tmp/rep/projection.h5', 'r')['projection']
assert np.allclose(d['series'][0]['efficiency'], t['efficiency'][()])
html = open('$tmp/rep/report/index.html').read()
assert 'projection.png' in html and 'worst relative error' in html
print('      projection.png: efficiency equals the file; the caption states the model error')
" >"$tmp/chk" 2>&1; then pass "the report plots the projection"; cat "$tmp/chk"
else fail "projection in the report"; tail -n 5 "$tmp/chk" "$tmp/rep.out"; fi
if "$FB" project --comm "$tmp/comm.h5" >/dev/null 2>&1; then fail "no train files accepted"; else pass "no train files: refused"; fi
if "$FB" project --latency-us 2 --bandwidth-gbs 10 "$tmp/comm.h5" >"$tmp/bad" 2>&1; then fail "a comm file as a train run accepted"
else pass "a comm file given as a training run: $(cut -c1-90 "$tmp/bad" | head -n 1)"; fi
if [ "$failed" -gt 0 ]; then echo "test_project: $failed check(s) failed"; exit 1; fi
echo "test_project: all checks passed"
