#!/bin/sh
# Installs the Debian packages fusebench needs (run by `make deps`, hence by `make run` and
# `make test`). As root, missing packages are installed with apt-get; otherwise the exact apt-get
# line is printed and the script fails. Usage: scripts/deps.sh [extra-set ...]
#   extra sets: refs (PyTorch, for `make refs` and `make compare-torch`)
set -eu

# libssu-dev: Striped UniFrac's C API (datasets/unifrac.c); unifrac-tools (ssu), python3-skbio and
# python3-biom-format: the references tests/test_unifrac.c compares with; clang + libclang-rt-dev:
# libFuzzer for fuzz/ (tests/test_fuzz.sh, make fuzz); slurm-wlm + munge: the private one-node Slurm
# that tests/test_slurm.sh starts on 127.0.0.1 for `fusebench sweep submit` (no system configuration
# or service is used).

BASE="build-essential pkg-config libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools \
libpapi-dev papi-tools libopenblas-openmp-dev libcmocka-dev python3 python3-h5py python3-xarray python3-h5netcdf \
python3-matplotlib python3-numpy \
libssu-dev unifrac-tools python3-biom-format python3-skbio clang libclang-rt-dev chromium slurm-wlm munge"
REFS="python3-torch"

wanted="$BASE"
for set in "$@"; do
  case "$set" in
    refs) wanted="$wanted $REFS" ;;
    *) echo "deps.sh: unknown package set '$set' (known: refs)" >&2; exit 2 ;;
  esac
done

missing=""
for pkg in $wanted; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  case "$status" in
    "install ok installed") ;;
    *) missing="$missing $pkg" ;;
  esac
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "fusebench needs these Debian packages:$missing" >&2
  echo "install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y$missing" >&2
  exit 1
fi

echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
