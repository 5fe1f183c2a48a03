"""000 §2.2 multiplication: out = a * b."""
import torch

KIND = "vector"
CASES = [dict(name="small", B=5, S=1, T=1, D=7, E=7), dict(name="wide", B=16, S=1, T=1, D=64, E=64)]


class Mul(torch.nn.Module):
    def forward(self, a, b):
        return a * b


def build(case):
    return Mul()
