"""003 FUS-1 Gated Multimodal Unit on pooled representations (a = h_seq (B, D), b = h_cat (B, C)).
variant document: z * tanh(seq_transform(a)) + (1 - z) * tanh(cat_transform(b)), z = sigmoid(gate([a; b]))
variant residual (the project as shipped): a + z * tanh(cat_transform(b))."""
import torch

KIND = "vector"
CASES = [
    dict(name="small", variant="document", B=5, S=1, T=1, D=7, E=5),
    dict(name="small_equal", variant="document", B=5, S=1, T=1, D=7, E=7),
    dict(name="wide", variant="document", B=16, S=1, T=1, D=64, E=32),
    dict(name="residual_small", variant="residual", B=5, S=1, T=1, D=7, E=5),
    dict(name="residual_wide", variant="residual", B=16, S=1, T=1, D=64, E=48),
    # larger inputs push tanh and the gate towards saturation
    dict(name="saturating", variant="document", B=5, S=1, T=1, D=9, E=6, scale_a=3.0, scale_b=3.0),
]


class GMU(torch.nn.Module):
    def __init__(self, D, C, residual):
        super().__init__()
        self.residual = residual
        if not residual:
            self.seq_transform = torch.nn.Linear(D, D)
        self.cat_transform = torch.nn.Linear(C, D)
        self.gate = torch.nn.Linear(D + C, D)

    def forward(self, h_seq, h_cat):
        h_cat_t = torch.tanh(self.cat_transform(h_cat))
        z = torch.sigmoid(self.gate(torch.cat([h_seq, h_cat], dim=-1)))
        if self.residual:
            return h_seq + z * h_cat_t
        h_seq_t = torch.tanh(self.seq_transform(h_seq))
        return z * h_seq_t + (1 - z) * h_cat_t


def build(case):
    return GMU(case["D"], case["E"], case.get("variant") == "residual")
