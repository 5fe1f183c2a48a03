#!/bin/sh
# Smoke test of `fusebench comm` at 2 ranks: a short run exits 0, prints a FOM line per op and size,
# and writes an HDF5 file with the expected tables and row counts; a bad flag makes every rank
# exit 2, promptly (no rank left waiting in a collective). PASS/FAIL per check, non-zero on failure.
#
# Run from the repository root after `make bench/fusebench`:  sh tests/test_comm.sh
set -u
. tests/shlib.sh
MPIRUN="mpirun --allow-run-as-root --oversubscribe -np 2"
SIZES="4 4096 1048576"

# 1. A short run.
timeout 300 $MPIRUN "$FB" comm --sizes 4,4096,1048576 --iters 5 --warmup 1 --out "$tmp/comm.h5" \
  >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 0 ]; then pass "run exits 0"
else fail "run exits 0 (got $rc)"; sed 's/^/      /' "$tmp/err" "$tmp/out" | tail -n 30; fi

# 2. FOM lines: one per op and size, with the expected keys.
for op in allreduce allgather iallreduce; do
  for b in $SIZES; do
    case $op in
      iallreduce) pat="^FOM comm op=iallreduce bytes=$b overall_us=[0-9.]* compute_us=[0-9.]* comm_us=[0-9.]* overlap_pct=[0-9.]*";;
      *) pat="^FOM comm op=$op bytes=$b ranks=2 lat_us=[0-9.]* bw_gbs=[0-9.]*";;
    esac
    n=$(grep -c "$pat" "$tmp/out")
    if [ "$n" -eq 1 ]; then pass "FOM line op=$op bytes=$b"
    else fail "FOM line op=$op bytes=$b (found $n)"; fi
  done
done
if grep -q '^# mpi ' "$tmp/out" && grep -q '^# ranks     2 ' "$tmp/out"; then pass "header names the MPI library and 2 ranks"
else fail "header names the MPI library and 2 ranks"; fi

# 3. The HDF5 file: schema, provenance, one table per op with a row per size.
if [ -f "$tmp/comm.h5" ] && $PY - "$tmp/comm.h5" <<'EOF'
import sys, h5py
sizes = [4, 4096, 1048576]
with h5py.File(sys.argv[1], "r") as f:
    a = f.attrs
    assert a["schema"] == "fusebench.comm" and a["schema_version"] == 1, (a["schema"], a["schema_version"])
    for k in ("fusebench_commit", "host", "hosts", "ranks", "command_line", "date", "mpi_library"):
        assert k in a, "missing root attribute " + k
    assert a["ranks"] == 2, a["ranks"]
    expect = {"allreduce": ["bytes", "avg_us", "min_us", "max_us", "algbw_gbs", "busbw_gbs"],
              "allgather": ["bytes", "total_bytes", "avg_us", "algbw_gbs", "busbw_gbs"],
              "iallreduce_overlap": ["bytes", "overall_us", "compute_us", "comm_us", "overlap_pct"],
              "ranks": ["rank", "host", "cpus", "threads"]}
    for t, cols in expect.items():
        g = f[t]
        n = 2 if t == "ranks" else len(sizes)
        assert g.attrs["nrows"] == n, (t, g.attrs["nrows"])
        have = g.attrs["columns"].split(",")
        for c in cols:
            assert c in have, (t, c)
            assert len(g[c]) == n, (t, c, len(g[c]))
            assert "units" in g[c].attrs, (t, c)
        if t != "ranks":
            assert list(g["bytes"][...]) == sizes, (t, list(g["bytes"][...]))
    assert list(f["allgather"]["total_bytes"][...]) == [2 * s for s in sizes]
    ov = f["iallreduce_overlap"]["overlap_pct"][...]
    assert ((ov >= 0) & (ov <= 100)).all(), ov
    assert (f["allreduce"]["avg_us"][...] > 0).all()
EOF
then pass "HDF5 file: schema, provenance, tables allreduce/allgather/iallreduce_overlap/ranks, 3 rows each"
else fail "HDF5 file: schema, provenance, tables allreduce/allgather/iallreduce_overlap/ranks, 3 rows each"; fi

# 4. A bad flag: every rank exits 2 within the timeout; the reason is printed once (by rank 0).
# Each rank runs under sh, which records the rank's own exit status (mpirun alone would report one).
timeout 60 $MPIRUN sh -c "\"$FB\" comm --no-such-flag; echo \$? > \"$tmp/rc.\$OMPI_COMM_WORLD_RANK\"" \
  >"$tmp/bad.out" 2>"$tmp/bad.err"
rc=$?
r0=$(cat "$tmp/rc.0" 2>/dev/null || echo none); r1=$(cat "$tmp/rc.1" 2>/dev/null || echo none)
if [ "$rc" -ne 124 ] && [ "$r0" = 2 ] && [ "$r1" = 2 ]; then pass "bad flag: both ranks exit 2, no hang"
else fail "bad flag: both ranks exit 2, no hang (mpirun $rc, rank 0: $r0, rank 1: $r1)"; fi
n=$(grep -c "unknown option '--no-such-flag'" "$tmp/bad.err")
if [ "$n" -eq 1 ]; then pass "bad flag: reason printed once"
else fail "bad flag: reason printed once (printed $n times)"; fi
timeout 60 $MPIRUN "$FB" comm --sizes 3 >/dev/null 2>&1
rc=$?
if [ "$rc" -eq 2 ]; then pass "bad --sizes value: exit 2"
else fail "bad --sizes value: exit 2 (got $rc)"; fi

if [ "$failed" -eq 0 ]; then echo "test_comm: all checks passed"; exit 0; fi
echo "test_comm: $failed check(s) FAILED"
exit 1
