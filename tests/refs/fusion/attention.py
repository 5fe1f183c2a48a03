"""000 §2.5 attention-based fusion with the §4.2 residual: x = MHA(a, b, b) (kdim = vdim = E);
default out = LN(a + dropout(x)); variant no_residual: out = x (the §2.5 snippet)."""
import torch

from fusion._blocks import MHA

KIND = "sequence"
CASES = [
    dict(name="small", B=3, S=5, T=4, D=8, E=6, H=2, tol=1e-4, perturb=1),
    dict(name="small_equal", B=3, S=5, T=4, D=8, E=8, H=2, tol=1e-4, perturb=1),
    dict(name="one_head", B=2, S=3, T=1, D=6, E=5, H=1, tol=1e-4, perturb=1),
    dict(name="wide", B=4, S=16, T=8, D=32, E=16, H=4, tol=1e-4),
    # training with dropout 0: the dropout paths are identities (torch's RNG differs from ours)
    dict(name="train_nodrop", B=3, S=5, T=4, D=8, E=6, H=2, tol=1e-4, training=1, dropout=0.0),
    dict(name="small_no_residual", variant="no_residual", B=3, S=5, T=4, D=8, E=6, H=2, tol=1e-4, perturb=1),
    dict(name="wide_no_residual", variant="no_residual", B=4, S=16, T=8, D=32, E=16, H=4, tol=1e-4),
]


class Attention(torch.nn.Module):
    def __init__(self, D, E, H, dropout, residual):
        super().__init__()
        self.cross_attention = MHA(D, H, Ek=E, Ev=E, dropout=dropout)
        self.residual = residual
        if residual:
            self.norm = torch.nn.LayerNorm(D, eps=1e-5)
            self.dropout = torch.nn.Dropout(dropout)

    def forward(self, a, b):
        x = self.cross_attention(a, b, b)[0]
        return self.norm(a + self.dropout(x)) if self.residual else x


def perturb(net):
    """Random biases and LayerNorm affines (the default init has them 0 / 1), so every parameter
    is exercised."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "bias" in name or "norm" in name:
                p.add_(0.3 * torch.randn_like(p))


def exact_zero_grads(net):
    """The key-projection bias adds q·b_k to every score of a query, which the softmax ignores: its
    gradient is exactly 0. Torch's float64 result is rounding noise (~1e-17), against which the C
    test's error relative to the tensor's largest value is meaningless, so the fixture stores the
    exact 0 (the test then compares absolute errors)."""
    for name, p in net.named_parameters():
        if name.endswith("k_proj_bias"):
            p.register_hook(torch.zeros_like)


def build(case):
    net = Attention(case["D"], case["E"], case["H"], case.get("dropout", 0.0),
                    case.get("variant", "default") == "default")
    if case.get("perturb"):
        perturb(net)
    exact_zero_grads(net)
    return net
