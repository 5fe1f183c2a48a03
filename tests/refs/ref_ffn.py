"""Feed-forward block reference: linear2(act(linear1(x))), act relu or gelu (exact erf), dropout 0."""
import torch
import torch.nn.functional as F
from refutil import rand32, write_case


def make(h5):
    gen = torch.Generator().manual_seed(6)
    # name: (N, D, F, activation)
    cases = {"relu": (7, 16, 40, "relu"), "gelu": (9, 24, 64, "gelu"), "wide_gelu": (33, 64, 256, "gelu")}
    for name, (N, D, Fh, act) in cases.items():
        inputs = {"x": rand32(gen, N, D), "w1": rand32(gen, Fh, D, scale=D ** -0.5),
                  "b1": rand32(gen, Fh, scale=D ** -0.5), "w2": rand32(gen, D, Fh, scale=Fh ** -0.5),
                  "b2": rand32(gen, D, scale=Fh ** -0.5)}
        f = F.relu if act == "relu" else F.gelu

        def fn(x, w1, b1, w2, b2, f=f):
            return F.linear(f(F.linear(x, w1, b1)), w2, b2)

        write_case(h5, name, {"N": N, "D": D, "F": Fh, "gelu": int(act == "gelu")}, inputs, fn,
                   list(inputs), gen)
