"""000 §2.3/§3 gated addition (the source's celestial gate fusion):
e_a = LN_a(a), e_b = LN_b(b); g = sigmoid(W2 GELU(W1 [e_a; e_b] + c1) + c2); out = e_a + g * e_b.
Variant no_norm: e = input. GatedSum is shared with gated_interp.py (interp=True)."""
import torch

KIND = "vector"
# perturb: random LayerNorm affines and gate biases, so the fixture exercises every parameter
# (the default init has LN weight 1, bias 0 and zero c1). The gate gradients are small with the
# −2.0 gate bias (σ' ≈ 0.1), but relative to each tensor's largest gradient the default FD step and
# tolerance hold; open_gate (gate_bias 0) checks the ≈0.5 start of the source code.
CASES = [
    dict(name="small", B=5, S=1, T=1, D=7, E=7, perturb=1),
    dict(name="wide", B=16, S=1, T=1, D=64, E=64),
    dict(name="open_gate", B=5, S=1, T=1, D=7, E=7, gate_bias=0.0),
    dict(name="imbalance", B=5, S=1, T=1, D=7, E=7, scale_a=10.0, scale_b=0.25, perturb=1),
    dict(name="small_no_norm", variant="no_norm", B=5, S=1, T=1, D=7, E=7, perturb=1),
    dict(name="wide_no_norm", variant="no_norm", B=16, S=1, T=1, D=64, E=64),
    dict(name="imbalance_no_norm", variant="no_norm", B=5, S=1, T=1, D=7, E=7, scale_a=10.0, scale_b=0.25),
]


class GatedSum(torch.nn.Module):
    def __init__(self, D, norm=True, interp=False, gate_bias=-2.0):
        super().__init__()
        self.norm, self.interp = norm, interp
        if norm:
            self.norm_a = torch.nn.LayerNorm(D, eps=1e-5)
            self.norm_b = torch.nn.LayerNorm(D, eps=1e-5)
        self.gate = torch.nn.Sequential(torch.nn.Linear(2 * D, D), torch.nn.GELU(), torch.nn.Linear(D, D),
                                        torch.nn.Sigmoid())
        for layer in (self.gate[0], self.gate[2]):
            torch.nn.init.xavier_uniform_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
        torch.nn.init.constant_(self.gate[-2].bias, gate_bias)

    def forward(self, a, b):
        ea, eb = (self.norm_a(a), self.norm_b(b)) if self.norm else (a, b)
        g = self.gate(torch.cat([ea, eb], dim=-1))
        return (1 - g) * ea + g * eb if self.interp else ea + g * eb


def build_gated(case, interp):
    net = GatedSum(case["D"], norm=case.get("variant", "default") != "no_norm", interp=interp,
                   gate_bias=case.get("gate_bias", -2.0))
    if case.get("perturb"):
        with torch.no_grad():
            for name, p in net.named_parameters():
                if not name.endswith("weight") or name.startswith("norm"):
                    p.add_(0.3 * torch.randn_like(p))
    return net


def build(case):
    return build_gated(case, interp=False)
