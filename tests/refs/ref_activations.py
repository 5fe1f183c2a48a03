"""Element-wise activations, one group per activation (PyTorch defaults: GELU approximate='none').

Inputs span [-6, 6] so the tails (sigmoid/tanh saturation, GELU's erf) are covered, and every
50th input is exactly 0 to pin the ReLU convention at the kink (torch: relu'(0) = 0).
"""
import torch
import torch.nn.functional as F
from refutil import rand32, write_case

ACTS = {"identity": lambda inp: inp.clone(), "relu": F.relu, "gelu": F.gelu,
        "sigmoid": torch.sigmoid, "tanh": torch.tanh}


def make(h5):
    gen = torch.Generator().manual_seed(3)
    n = 1037
    for name, fn in ACTS.items():
        inp = rand32(gen, n, scale=6.0)
        inp[::50] = 0.0
        write_case(h5, name, {"n": n}, {"inp": inp}, lambda inp, fn=fn: fn(inp), ["inp"], gen)
