"""002 transformer_concat: [a, b] (B, 2, D) -> L post-norm encoder layers (H heads, FFN 4D, GELU) ->
mean of the 2 tokens. default: modality_token (1, 2, D) declared but overwritten (zero gradient);
variant with_token: tokens = [a, b] + modality_token."""
import torch

from fusion._blocks import EncoderLayer
from fusion.attention import exact_zero_grads, perturb

KIND = "vector"
CASES = [
    dict(name="small", B=3, S=1, T=1, D=8, E=8, H=2, layers=2, tol=1e-4, perturb=1),
    dict(name="one_layer", B=5, S=1, T=1, D=6, E=6, H=3, layers=1, tol=1e-4, perturb=1),
    dict(name="deep", B=3, S=1, T=1, D=8, E=8, H=2, layers=4, tol=1e-4),
    dict(name="train_nodrop", B=3, S=1, T=1, D=8, E=8, H=2, layers=2, tol=1e-4, training=1, dropout=0.0),
    dict(name="wide", B=4, S=1, T=1, D=32, E=32, H=4, layers=2, tol=1e-4),
    dict(name="small_with_token", variant="with_token", B=3, S=1, T=1, D=8, E=8, H=2, layers=2, tol=1e-4, perturb=1),
    dict(name="wide_with_token", variant="with_token", B=4, S=1, T=1, D=32, E=32, H=4, layers=2, tol=1e-4),
]


class Transformer(torch.nn.Module):
    def __init__(self, D, H, F_, L, dropout):
        super().__init__()
        self.layers = torch.nn.ModuleList(EncoderLayer(D, H, F_, "gelu", dropout) for _ in range(L))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class TransformerConcat(torch.nn.Module):
    def __init__(self, D, H, F_, L, dropout, with_token):
        super().__init__()
        self.transformer = Transformer(D, H, F_, L, dropout)
        self.modality_token = torch.nn.Parameter(torch.randn(1, 2, D))
        self.with_token = with_token

    def forward(self, a, b):
        tokens = torch.stack([a, b], dim=1)
        if self.with_token:
            tokens = tokens + self.modality_token
        return self.transformer(tokens).mean(dim=1)


def build(case):
    D = case["D"]
    net = TransformerConcat(D, case["H"], case.get("F", 0) or 4 * D, case.get("layers", 4), case.get("dropout", 0.0),
                            case.get("variant", "default") == "with_token")
    if case.get("perturb"):
        perturb(net)
    exact_zero_grads(net)
    return net
