# Shared set-up of the MPI shell tests (sourced by tests/test_*.sh): the binary, the system Python
# (h5py), Open MPI as root, PASS/FAIL counting and a scratch folder removed at exit.
FB=${FUSEBENCH:-bench/fusebench}
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

failed=0
pass() { echo "PASS  $1"; }
fail() { echo "FAIL  $1"; failed=$((failed + 1)); }

if [ ! -x "$FB" ]; then echo "FAIL  $FB not built (make bench/fusebench)"; exit 1; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
