"""002 gated fusion: g = sigmoid(Linear(2D -> D)([a; b])); out = g * a + (1 - g) * b."""
import torch

KIND = "vector"
CASES = [dict(name="small", B=5, S=1, T=1, D=7, E=7), dict(name="wide", B=16, S=1, T=1, D=64, E=64)]


class Gated(torch.nn.Module):
    def __init__(self, D):
        super().__init__()
        self.gate = torch.nn.Linear(2 * D, D)

    def forward(self, a, b):
        g = torch.sigmoid(self.gate(torch.cat([a, b], dim=-1)))
        return g * a + (1 - g) * b


def build(case):
    return Gated(case["D"])
