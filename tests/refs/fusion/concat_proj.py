"""000 §2.6 concatenation + projection: out = Linear(D + E -> D)([a; b]).
Variant calendar (§4.1, the source's calendar fusion): out = dropout(GELU(LayerNorm(Linear([a; b]))))."""
import torch
import torch.nn.functional as F

KIND = "vector"
# Dropout masks come from different generators in C and torch, so the calendar cases run in
# evaluation (training=0, dropout 0.1: the identity) or train with dropout=0.
CASES = [
    dict(name="small", B=5, S=1, T=1, D=7, E=3),
    dict(name="wide", B=16, S=1, T=1, D=64, E=16),
    dict(name="equal", B=5, S=1, T=1, D=7, E=7),
    dict(name="calendar_small", variant="calendar", B=5, S=1, T=1, D=8, E=2, dropout=0.1, training=0, perturb=1),
    dict(name="calendar_wide", variant="calendar", B=16, S=1, T=1, D=64, E=16, dropout=0.1, training=0),
    dict(name="calendar_train_p0", variant="calendar", B=5, S=1, T=1, D=7, E=3, dropout=0.0, training=1, perturb=1),
]


class ConcatProj(torch.nn.Module):
    def __init__(self, D, E, calendar=False, dropout=0.1):
        super().__init__()
        self.calendar, self.p = calendar, dropout
        self.proj = torch.nn.Linear(D + E, D)
        if calendar:
            self.norm = torch.nn.LayerNorm(D, eps=1e-5)

    def forward(self, a, b):
        z = self.proj(torch.cat([a, b], dim=-1))
        if not self.calendar:
            return z
        return F.dropout(F.gelu(self.norm(z)), self.p, self.training)


def build(case):
    net = ConcatProj(case["D"], case["E"], calendar=case.get("variant") == "calendar",
                     dropout=case.get("dropout", 0.1))
    if case.get("perturb"):
        with torch.no_grad():
            net.norm.weight.add_(0.3 * torch.randn_like(net.norm.weight))
            net.norm.bias.add_(0.3 * torch.randn_like(net.norm.bias))
    return net
