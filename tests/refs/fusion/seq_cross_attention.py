"""003 FUS-2 cross-attention fusion: out = LN(a + MHA(a, b, b)), a (B, S, D) ASV tokens, b (B, K, E)
metadata tokens (kdim = vdim = E). Variant single_token (the project as shipped): meta =
cat_projection(b flattened) (B, 1, D), out = LN(a + MHA(a, meta, meta)) (one key: weights are 1)."""
import torch

from fusion._blocks import MHA
from fusion.attention import exact_zero_grads, perturb

KIND = "sequence"
CASES = [
    dict(name="small", B=3, S=5, T=4, D=8, E=6, H=2, tol=1e-4, perturb=1),
    dict(name="wide", B=4, S=16, T=8, D=32, E=16, H=4, tol=1e-4),
    dict(name="heads8", B=2, S=7, T=3, D=16, E=16, H=8, tol=1e-4, perturb=1),
    dict(name="train_nodrop", B=3, S=5, T=4, D=8, E=6, H=2, tol=1e-4, training=1, dropout=0.0),
    dict(name="small_single_token", variant="single_token", B=3, S=5, T=4, D=8, E=6, H=2, tol=1e-4, perturb=1),
    dict(name="wide_single_token", variant="single_token", B=4, S=16, T=8, D=32, E=16, H=4, tol=1e-4),
]


class SeqCrossAttention(torch.nn.Module):
    def __init__(self, D, E, K, H, dropout, single):
        super().__init__()
        self.single = single
        if single:
            self.cat_projection = torch.nn.Linear(K * E, D)
            torch.nn.init.xavier_uniform_(self.cat_projection.weight)
            torch.nn.init.zeros_(self.cat_projection.bias)
        self.cross_attn = MHA(D, H, Ek=D if single else E, Ev=D if single else E, dropout=dropout)
        self.norm = torch.nn.LayerNorm(D, eps=1e-5)

    def forward(self, a, b):
        kv = self.cat_projection(b.reshape(b.shape[0], -1)).unsqueeze(1) if self.single else b
        return self.norm(a + self.cross_attn(a, kv, kv)[0])


def build(case):
    net = SeqCrossAttention(case["D"], case["E"], case["T"], case["H"], case.get("dropout", 0.0),
                            case.get("variant", "default") == "single_token")
    if case.get("perturb"):
        perturb(net)
    exact_zero_grads(net)
    return net
