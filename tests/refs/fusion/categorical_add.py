"""003 categorical_add (the project's `--categorical-fusion add`): c = the K column embeddings
concatenated (B, C = K*E); out = H + proj(c) broadcast over the S positions, proj = Linear(C -> D),
Xavier weight, zero bias. bias_random=1 re-draws the bias so that it is exercised with non-zero values."""
import torch

KIND = "sequence"
CASES = [
    dict(name="small", B=3, S=5, T=2, D=8, E=4),
    dict(name="small_bias", B=3, S=5, T=2, D=8, E=4, bias_random=1),
    dict(name="one_position", B=5, S=1, T=3, D=7, E=5, bias_random=1),
    dict(name="one_column", B=3, S=4, T=1, D=6, E=16),
    dict(name="wide", B=4, S=16, T=3, D=32, E=16, bias_random=1),
]


class CategoricalAdd(torch.nn.Module):
    def __init__(self, D, C):
        super().__init__()
        self.proj = torch.nn.Linear(C, D)
        torch.nn.init.xavier_uniform_(self.proj.weight)
        torch.nn.init.zeros_(self.proj.bias)

    def forward(self, a, b):
        return a + self.proj(b.reshape(b.shape[0], -1)).unsqueeze(1)


def build(case):
    net = CategoricalAdd(case["D"], case["T"] * case["E"])
    if case.get("bias_random"):
        with torch.no_grad():
            net.proj.bias.uniform_(-0.5, 0.5)
    return net
