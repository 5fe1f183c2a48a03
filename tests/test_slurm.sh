#!/bin/sh
# `fusebench sweep` on a real Slurm, started here by hand: a one-node cluster on 127.0.0.1 (this
# host, 2 CPUs) with its own munge key, ports, state and spool folders in a scratch folder, so no
# system configuration is read or changed. The test
#   - starts munged, slurmctld and slurmd with that configuration (SLURM_CONF) and waits for the
#     node to be idle;
#   - plans a tiny sweep (multimodal, 2 methods x ranks 1, 2: two job arrays) and runs
#     `fusebench sweep submit`: two arrays and a merge job depending on both (jobs.tsv);
#   - polls `fusebench sweep status` until every run is done (timeout), then checks every result
#     file's `complete` with h5py, that the 2-rank runs were one MPI job of 2 ranks, and that the
#     merge job ran after them (fusebench merge and plots/report.py);
#   - deletes one result, `sweep submit --missing` submits an array of that row alone, which
#     completes;
#   - stops the daemons it started, by their PIDs.
# Skipped, saying why, when slurm-wlm or munge are not installed (`make deps` installs them) or the
# daemons cannot start here. PASS/FAIL per check; exits non-zero when any check failed.
# Run from the repository root after `make bench/fusebench`:  sh tests/test_slurm.sh
set -u
. tests/shlib.sh
export OMP_NUM_THREADS=1
TIMEOUT=90   # seconds for the sweep's jobs

skip() {
  echo "SKIP  test_slurm: $1"
  [ $# -gt 1 ] && [ -f "$2" ] && tail -n 5 "$2" | sed 's/^/      /'
  exit 0
}
for cmd in munged slurmctld slurmd sbatch squeue sinfo scancel; do
  command -v $cmd >/dev/null 2>&1 || skip "$cmd not found (make deps installs slurm-wlm and munge)"
done

# ---- A private one-node cluster ----
pids="" ctl=""
alive() { ps -o stat= -p "$1" 2>/dev/null | grep -qv '^Z'; }   # running, not a zombie
cleanup() {
  # Cancel this cluster's jobs (SLURM_CONF names it) and let them end while slurmd is there to hear
  # of it (a job step whose slurmd is gone waits for it forever).
  if [ -n "$ctl" ] && alive "$ctl"; then
    timeout 10 scancel --user="$(id -un)" >/dev/null 2>&1
    n=0
    while [ -n "$(timeout 5 squeue -h 2>/dev/null)" ] && [ $n -lt 100 ]; do sleep 0.2; n=$((n + 1)); done
  fi
  for p in $pids; do kill "$p" 2>/dev/null; done
  for p in $pids; do   # each gets 5 s to end, then SIGKILL; then reaped
    n=0
    while alive "$p" && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

c="$tmp/cluster"
mkdir -p "$c/state" "$c/spool" "$c/tmpfs"
chmod 755 "$tmp" "$c"   # munged wants its socket's folders searchable by all
host=$(hostname -s)
user=$(id -un)
cpus=$(env -u OMP_NUM_THREADS nproc)   # (GNU nproc obeys OMP_NUM_THREADS)
[ "$cpus" -ge 2 ] || skip "the test cluster's node needs 2 CPUs; this machine has $cpus"
cpus=2
ports=$($PY -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
set -- $ports
ctl_port=$1 node_port=$2
dd if=/dev/urandom of="$c/munge.key" bs=1024 count=1 2>/dev/null && chmod 400 "$c/munge.key"
cat >"$c/slurm.conf" <<EOF
ClusterName=fbtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=$user
SlurmdUser=$user
SlurmctldPort=$ctl_port
SlurmdPort=$node_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$c/munge.sock
StateSaveLocation=$c/state
SlurmdSpoolDir=$c/spool
TmpFS=$c/tmpfs
SlurmctldPidFile=$c/slurmctld.pid
SlurmdPidFile=$c/slurmd.pid
MailProg=/bin/true
FirstJobId=$(( ($$ % 5000) * 100 + 1000 ))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$c/slurm.conf"

munged -F --socket="$c/munge.sock" --key-file="$c/munge.key" --pid-file="$c/munged.pid" \
  --seed-file="$c/munge.seed" --log-file="$c/munged.log" >"$c/munged.out" 2>&1 &
pids="$!"
n=0; while [ ! -S "$c/munge.sock" ] && alive "$pids" && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
[ -S "$c/munge.sock" ] || skip "munged does not start here" "$c/munged.out"
slurmctld -D -f "$c/slurm.conf" >"$c/slurmctld.log" 2>&1 &
ctl=$!
pids="$pids $ctl"
slurmd -D -f "$c/slurm.conf" >"$c/slurmd.log" 2>&1 &
pids="$pids $!"
n=0
while [ "$(sinfo -h -o %t 2>/dev/null)" != idle ] && [ $n -lt 150 ]; do sleep 0.2; n=$((n + 1)); done
state=$(sinfo -h -o %t 2>/dev/null)
[ "$state" = idle ] || { tail -n 5 "$c/slurmctld.log" | sed 's/^/      /'; skip "the node is '${state:-unreachable}', not idle, after 30 s: slurmd cannot run here" "$c/slurmd.log"; }
pass "munged, slurmctld and slurmd started (pids $pids; ports $ctl_port, $node_port; node $host, $cpus CPUs)"
mpi=$(srun --mpi=list 2>&1 | grep -qw pmix && echo "srun --mpi=pmix" || echo "mpirun")
echo "      launcher the job scripts choose here: $mpi"

# ---- The sweep ----
cat >"$tmp/tiny.spec" <<EOF
scenario: multimodal
method: gmu, concat_mlp
ranks_per_node: 1, $cpus
steps: 4
batch: 4
EOF
dir="$tmp/sweep"
"$FB" sweep plan "$tmp/tiny.spec" --out "$dir" >"$tmp/plan.out" 2>&1 || { fail "plan"; cat "$tmp/plan.out"; exit 1; }
t0=$(date +%s)
if "$FB" sweep submit "$dir" >"$tmp/submit.out" 2>&1 && [ "$(grep -c '	array	' "$dir/jobs.tsv")" -eq 2 ] &&
   [ "$(grep -c '	merge	' "$dir/jobs.tsv")" -eq 1 ]; then
  pass "sweep submit: 2 job arrays and the merge job (afterok)"; sed 's/^/      /' "$tmp/submit.out"
else fail "sweep submit"; sed 's/^/      /' "$tmp/submit.out"; exit 1; fi

# wait_done DIR N: polls `sweep status DIR` until its N runs are done or TIMEOUT passes (from t0);
# 0 when they are.
wait_done() {
  while [ $(($(date +%s) - t0)) -lt $TIMEOUT ]; do
    "$FB" sweep status "$1" >"$tmp/status.out" 2>&1
    grep -q "^sweep status: $2 runs\{0,1\}: $2 done$" "$tmp/status.out" && return 0
    sleep 1
  done
  return 1
}
if wait_done "$dir" 4; then pass "sweep status: 4 runs done after $(($(date +%s) - t0)) s"
else fail "sweep status after $TIMEOUT s"; sed 's/^/      /' "$tmp/status.out"; tail -n 5 "$dir"/logs/*.log | sed 's/^/      /'; fi
if $PY - "$dir"/runs/r000[1-4].h5 >"$tmp/h5.out" 2>&1 <<'EOF'
import sys, h5py
for path in sys.argv[1:]:
    with h5py.File(path, "r") as f:
        assert int(f.attrs["complete"]) == 1, f"{path}: complete = {f.attrs['complete']}"
        job = f.attrs.get("env_SLURM_ARRAY_JOB_ID", b"")
        print(path.rsplit("/", 1)[1], "complete = 1, ranks", int(f.attrs["ranks"]), "Slurm array job",
              job.decode() if isinstance(job, bytes) else job)
EOF
then pass "every result file has complete = 1 (h5py)"; sed 's/^/      /' "$tmp/h5.out"
else fail "result files"; sed 's/^/      /' "$tmp/h5.out"; fi
if grep -q "FOM train .* ranks=$cpus " "$dir/logs/r0002.log"; then
  pass "a $cpus-rank run is one MPI job of $cpus ranks: $(head -n 1 "$dir/logs/r0002.log" | cut -d' ' -f1-4)"
else fail "r0002 did not run as one $cpus-rank job"; sed 's/^/      /' "$dir/logs/r0002.log" | tail -n 5; fi

# The merge job runs when both arrays ended well (merge and the report belong to other parts of
# fusebench: checked when they are there).
while [ ! -f "$dir/summary.h5" ] && [ $(($(date +%s) - t0)) -lt $TIMEOUT ]; do sleep 1; done
sleep 1
if [ -f "$dir/summary.h5" ] && grep -q "merged 4 runs" "$dir"/logs/merge-*.out; then
  pass "the merge job ran after the arrays: $(grep 'merged 4 runs' "$dir"/logs/merge-*.out)"
elif grep -q "not built yet" "$dir"/logs/merge-*.out 2>/dev/null; then
  echo "NOTE  fusebench merge is not built yet: the merge job ran but merged nothing"
else fail "merge job"; tail -n 5 "$dir"/logs/merge-*.out 2>/dev/null | sed 's/^/      /'; fi

# ---- Resubmission of a missing run ----
rm "$dir/runs/r0003.h5"
t0=$(date +%s)
if "$FB" sweep submit "$dir" --missing >"$tmp/missing.out" 2>&1 && grep -q "1 run of shape n1-t1-c1 (rows 3)" "$tmp/missing.out" &&
   wait_done "$dir" 4; then
  pass "r0003 deleted: submit --missing sends an array of row 3 alone, which completes ($(($(date +%s) - t0)) s)"
else fail "submit --missing"; sed 's/^/      /' "$tmp/missing.out" "$tmp/status.out"; fi
grep -q "^merge  job" "$tmp/status.out" && echo "      $(grep '^merge  job' "$tmp/status.out")"
while [ -n "$(squeue -h 2>/dev/null)" ] && [ $(($(date +%s) - t0)) -lt $TIMEOUT ]; do sleep 1; done   # the new merge job

# ---- The other launcher: mpirun inside the allocation ----
printf 'scenario: multimodal\nranks_per_node: 2\nsteps: 4\nbatch: 4\nlauncher: mpirun\n' >"$tmp/mpirun.spec"
t0=$(date +%s)
if "$FB" sweep plan "$tmp/mpirun.spec" --out "$tmp/mpirun" >/dev/null 2>&1 && "$FB" sweep submit "$tmp/mpirun" >/dev/null 2>&1 &&
   wait_done "$tmp/mpirun" 1 && head -n 1 "$tmp/mpirun/logs/r0001.log" | grep -q '^mpirun --bind-to core --map-by ppr:2:node:PE=1' &&
   grep -q "FOM train .* ranks=2 " "$tmp/mpirun/logs/r0001.log"; then
  pass "launcher: mpirun runs the job's 2 ranks as one MPI job: $(head -n 1 "$tmp/mpirun/logs/r0001.log" | cut -d' ' -f1-6)"
else fail "launcher: mpirun"; sed 's/^/      /' "$tmp/status.out"; tail -n 5 "$tmp/mpirun/logs/"*.log | sed 's/^/      /'; fi

if [ "$failed" -eq 0 ]; then echo "test_slurm: all checks passed"; exit 0; fi
echo "test_slurm: $failed check(s) failed"; exit 1
