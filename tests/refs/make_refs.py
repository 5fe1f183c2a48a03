#!/usr/bin/python3
"""Writes the PyTorch reference fixtures under tests/fixtures/ (run by `make refs`).

Each tests/refs/ref_<block>.py defines make(h5) and writes its cases into tests/fixtures/<block>.h5.
The fixtures are committed, so `make test` never needs torch. Usage: make_refs.py [block ...]
"""
import glob
import importlib
import os
import sys

import h5py
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "fixtures")


def main(argv):
    sys.path.insert(0, HERE)
    torch.set_num_threads(1)
    modules = sorted(os.path.basename(p)[4:-3] for p in glob.glob(os.path.join(HERE, "ref_*.py")))
    wanted = argv or modules
    unknown = [w for w in wanted if w not in modules]
    if unknown:
        sys.exit(f"make_refs: no tests/refs/ref_{unknown[0]}.py (known: {', '.join(modules)})")
    os.makedirs(OUT, exist_ok=True)
    for name in wanted:
        module = importlib.import_module("ref_" + name)
        path = os.path.join(OUT, name + ".h5")
        tmp = path + ".tmp"
        with h5py.File(tmp, "w") as h5:
            h5.attrs["generator"] = f"tests/refs/ref_{name}.py, torch {torch.__version__}"
            module.make(h5)
        os.replace(tmp, path)  # never leave a half-written fixture behind
        print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main(sys.argv[1:])
