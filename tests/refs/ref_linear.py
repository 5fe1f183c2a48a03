"""nn.Linear reference: out = inp @ weight.T + bias."""
import torch
import torch.nn.functional as F
from refutil import rand32, write_case


def make(h5):
    gen = torch.Generator().manual_seed(1)
    for name, (N, IC, OC, bias) in {"small": (5, 7, 3, True), "wide": (33, 64, 48, True),
                                    "nobias": (8, 16, 12, False)}.items():
        inputs = {"inp": rand32(gen, N, IC), "weight": rand32(gen, OC, IC, scale=IC ** -0.5)}
        grads = ["inp", "weight"]
        if bias:
            inputs["bias"] = rand32(gen, OC, scale=IC ** -0.5)
            grads.append("bias")
        write_case(h5, name, {"N": N, "IC": IC, "OC": OC, "has_bias": int(bias)}, inputs,
                   lambda inp, weight, bias=None: F.linear(inp, weight, bias), grads, gen)
