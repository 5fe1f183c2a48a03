"""003 categorical_concat (the project's `--categorical-fusion concat`): c = the K column embeddings
concatenated (B, C = K*E), broadcast over the S positions; out = proj([H; c]) per position,
proj = Linear(D + C -> D), Xavier weight, zero bias. b (B, K, E) holds the K embedded columns.
bias_random=1 re-draws the bias so that the bias path is exercised with non-zero values."""
import torch

KIND = "sequence"
CASES = [
    dict(name="small", B=3, S=5, T=2, D=8, E=4),
    dict(name="small_bias", B=3, S=5, T=2, D=8, E=4, bias_random=1),
    dict(name="one_position", B=5, S=1, T=3, D=7, E=5, bias_random=1),
    dict(name="one_column", B=3, S=4, T=1, D=6, E=16),
    dict(name="wide", B=4, S=16, T=3, D=32, E=16, bias_random=1),
]


class CategoricalConcat(torch.nn.Module):
    def __init__(self, D, C):
        super().__init__()
        self.proj = torch.nn.Linear(D + C, D)
        torch.nn.init.xavier_uniform_(self.proj.weight)
        torch.nn.init.zeros_(self.proj.bias)

    def forward(self, a, b):
        B, S, _ = a.shape
        c = b.reshape(B, -1)
        return self.proj(torch.cat([a, c.unsqueeze(1).expand(B, S, c.shape[1])], dim=-1))


def build(case):
    net = CategoricalConcat(case["D"], case["T"] * case["E"])
    if case.get("bias_random"):
        with torch.no_grad():
            net.proj.bias.uniform_(-0.5, 0.5)
    return net
