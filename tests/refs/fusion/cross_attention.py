"""002 cross_attention: X = [a, b]; q = LN1(mean(a, b)); z = MHA(q, X, X); out = z + dropout(FFN(LN2(z))),
FFN D -> 4D -> D with GELU (the project's nn.Sequential(Linear, GELU, Linear, Dropout))."""
import torch

from fusion._blocks import FFN, MHA
from fusion.attention import exact_zero_grads, perturb

KIND = "vector"
CASES = [
    dict(name="small", B=5, S=1, T=1, D=8, E=8, H=2, tol=1e-4, perturb=1),
    dict(name="one_head", B=3, S=1, T=1, D=6, E=6, H=1, tol=1e-4, perturb=1),
    dict(name="hidden_F", B=5, S=1, T=1, D=8, E=8, H=4, F=12, tol=1e-4, perturb=1),
    dict(name="train_nodrop", B=5, S=1, T=1, D=8, E=8, H=2, tol=1e-4, training=1, dropout=0.0),
    dict(name="wide", B=16, S=1, T=1, D=32, E=32, H=4, tol=1e-4),
]


class CrossAttention(torch.nn.Module):
    def __init__(self, D, H, F_, dropout):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(D, eps=1e-5)
        self.norm2 = torch.nn.LayerNorm(D, eps=1e-5)
        self.cross_attn = MHA(D, H, dropout=dropout)
        self.ffn = FFN(D, F_, "gelu", 0.0)
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, a, b):
        x = torch.stack([a, b], dim=1)
        q = self.norm1(x.mean(dim=1, keepdim=True))
        z = self.cross_attn(q, x, x)[0]
        z = z + self.dropout(self.ffn(self.norm2(z)))
        return z.squeeze(1)


def build(case):
    D = case["D"]
    net = CrossAttention(D, case["H"], case.get("F", 0) or 4 * D, case.get("dropout", 0.0))
    if case.get("perturb"):
        perturb(net)
    exact_zero_grads(net)
    return net
