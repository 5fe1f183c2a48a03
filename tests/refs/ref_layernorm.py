"""nn.LayerNorm reference: out = (x - mean) * rstd * weight + bias, population variance.

Extra outputs `mean` and `rstd` (= 1 / sqrt(var + eps)) are the statistics the C forward saves.
"""
import torch
import torch.nn.functional as F
from refutil import rand32, write_case

EPS = 1e-5


def stats(inp):
    mean = inp.mean(-1)
    rstd = (inp.var(-1, unbiased=False) + EPS).rsqrt()
    return mean, rstd


def affine(inp, weight, bias):
    return (F.layer_norm(inp, inp.shape[-1:], weight, bias, EPS),) + stats(inp)


def plain(inp):
    return (F.layer_norm(inp, inp.shape[-1:], None, None, EPS),) + stats(inp)


def make(h5):
    gen = torch.Generator().manual_seed(2)
    # name: (N, D, affine, input offset, input scale)
    cases = {"small": (7, 33, True, 0.0, 1.0), "wide": (64, 256, True, 0.0, 1.0),
             "offset": (16, 100, True, 3.0, 1.0), "noaffine": (5, 48, False, 0.0, 2.0),
             "tiny": (3, 1, True, 0.0, 1.0)}
    for name, (N, D, aff, offset, scale) in cases.items():
        inputs = {"inp": rand32(gen, N, D, scale=scale) + offset}
        grads = ["inp"]
        if aff:
            inputs["weight"] = 1 + rand32(gen, D, scale=0.5)
            inputs["bias"] = rand32(gen, D, scale=0.5)
            grads += ["weight", "bias"]
        write_case(h5, name, {"N": N, "D": D, "affine": int(aff), "eps": EPS}, inputs,
                   affine if aff else plain, grads, gen, extra_outputs=("mean", "rstd"))
