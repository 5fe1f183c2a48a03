"""000 §2.1 addition: out = a + b."""
import torch

KIND = "vector"
CASES = [dict(name="small", B=5, S=1, T=1, D=7, E=7), dict(name="wide", B=16, S=1, T=1, D=64, E=64)]


class Add(torch.nn.Module):
    def forward(self, a, b):
        return a + b


def build(case):
    return Add()
