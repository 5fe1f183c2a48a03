"""002 concat_mlp: out = fc2(dropout(GELU(fc1([a; b])))), fc1: D + E -> F (2D by default), fc2: F -> D."""
import torch

KIND = "vector"
CASES = [
    dict(name="small", B=5, S=1, T=1, D=7, E=5),
    dict(name="small_equal", B=5, S=1, T=1, D=7, E=7),
    dict(name="hidden_F", B=5, S=1, T=1, D=7, E=5, F=12),
    # training mode with dropout 0: the dropout path is the identity (torch's RNG differs from ours)
    dict(name="train_nodrop", B=5, S=1, T=1, D=7, E=9, training=1, dropout=0.0),
    dict(name="wide", B=16, S=1, T=1, D=64, E=64),
    dict(name="wide_E", B=16, S=1, T=1, D=64, E=40),
]


class ConcatMLP(torch.nn.Module):
    def __init__(self, D, E, F, dropout):
        super().__init__()
        self.fc1 = torch.nn.Linear(D + E, F)
        self.fc2 = torch.nn.Linear(F, D)
        self.drop = torch.nn.Dropout(dropout)

    def forward(self, a, b):
        return self.fc2(self.drop(torch.nn.functional.gelu(self.fc1(torch.cat([a, b], dim=-1)))))


def build(case):
    D = case["D"]
    return ConcatMLP(D, case["E"], case.get("F", 0) or 2 * D, case.get("dropout", 0.0))
