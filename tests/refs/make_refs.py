#!/usr/bin/python3
"""Writes the PyTorch reference fixtures under tests/fixtures/ (run by `make refs`).

Each tests/refs/ref_<block>.py defines make(h5) and writes its cases into tests/fixtures/<block>.h5,
or defines outputs() -> [(fixture_name, make), ...] for several files (ref_fusion.py writes
tests/fixtures/fusion/<method>.h5). The fixtures are committed, so `make test` never needs torch.
Usage: make_refs.py [block | fusion/<method> ...]   (no argument: everything)
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
    outputs = {}
    for p in sorted(glob.glob(os.path.join(HERE, "ref_*.py"))):
        base = os.path.basename(p)[4:-3]
        module = importlib.import_module("ref_" + base)
        if hasattr(module, "outputs"):
            for fixture, maker in module.outputs():
                outputs[fixture] = (base, maker)
        else:
            outputs[base] = (base, module.make)
    wanted = argv or list(outputs)
    unknown = [w for w in wanted if w not in outputs]
    if unknown:
        sys.exit(f"make_refs: no fixture '{unknown[0]}' (known: {', '.join(outputs)})")
    for name in wanted:
        source, maker = outputs[name]
        path = os.path.join(OUT, name + ".h5")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with h5py.File(tmp, "w") as h5:
            h5.attrs["generator"] = f"tests/refs/ref_{source}.py, torch {torch.__version__}"
            maker(h5)
        os.replace(tmp, path)  # never leave a half-written fixture behind
        print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main(sys.argv[1:])
