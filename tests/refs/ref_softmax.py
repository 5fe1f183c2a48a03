"""torch.softmax over the last dim. `masked` has -inf entries (every row keeps at least one
finite entry: a fully masked row is NaN in torch and zeros in ours, tested without torch);
`shifted` has inputs near 100, where exp without the max subtracted overflows float32."""
import torch
from refutil import rand32, write_case


def make(h5):
    gen = torch.Generator().manual_seed(4)
    # name: (N, C, scale, offset, masked fraction)
    cases = {"small": (7, 33, 3.0, 0.0, 0.0), "wide": (64, 256, 3.0, 0.0, 0.0),
             "masked": (9, 40, 3.0, 0.0, 0.3), "shifted": (5, 17, 5.0, 100.0, 0.0),
             "single": (4, 1, 1.0, 0.0, 0.0)}
    for name, (N, C, scale, offset, frac) in cases.items():
        inp = rand32(gen, N, C, scale=scale) + offset
        if frac > 0:
            mask = torch.rand(N, C, generator=gen, dtype=torch.float64) < frac
            mask[:, 0] = False  # no row fully masked
            inp = inp.masked_fill(mask, float("-inf"))
        write_case(h5, name, {"N": N, "C": C}, {"inp": inp}, lambda inp: torch.softmax(inp, -1),
                   ["inp"], gen)
