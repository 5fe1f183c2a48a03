"""003 conditional_scaling (the project's `--conditional-output-scaling`): per categorical column k an
Embedding(card, D) `scale.<k>` (init 1) and `bias.<k>` (init 0), applied in turn:
    y = a;  for k: y = y * scale_k[cat_k] + bias_k[cat_k]   (broadcast over the S positions)
b (B, K, E = card) holds one-hot category indicators, so the lookup is the product b_k @ table
(checked against nn.Embedding's lookup below), differentiable in b for a soft input.

onehot=1: the random b the fixture writer draws is replaced in place (before any use, under no_grad)
by the one-hot of its argmax per column, so the fixture stores and differentiates the one-hot b.
tables_random=1: scale = 1 + 0.5 N(0, 1), bias = 0.5 N(0, 1) (the init 1 / 0 makes b irrelevant)."""
import torch

KIND = "sequence"
CASES = [
    dict(name="onehot_init", B=3, S=5, T=2, D=8, E=4, onehot=1),
    dict(name="onehot_small", B=3, S=5, T=2, D=8, E=4, onehot=1, tables_random=1),
    dict(name="onehot_one_position", B=5, S=1, T=3, D=7, E=5, onehot=1, tables_random=1),
    dict(name="onehot_one_column", B=4, S=3, T=1, D=6, E=3, onehot=1, tables_random=1),
    dict(name="soft_small", B=3, S=5, T=2, D=8, E=4, tables_random=1),
    dict(name="onehot_wide", B=4, S=16, T=3, D=32, E=16, onehot=1, tables_random=1),
    dict(name="soft_wide", B=4, S=16, T=3, D=32, E=16, tables_random=1),
]


class ConditionalScaling(torch.nn.Module):
    def __init__(self, K, E, D, onehot):
        super().__init__()
        self.scale = torch.nn.ModuleList(torch.nn.Embedding(E, D) for _ in range(K))
        self.bias = torch.nn.ModuleList(torch.nn.Embedding(E, D) for _ in range(K))
        for s, t in zip(self.scale, self.bias):
            torch.nn.init.ones_(s.weight)
            torch.nn.init.zeros_(t.weight)
        self.onehot = onehot

    def forward(self, a, b):
        if self.onehot:
            with torch.no_grad():
                b.copy_(torch.nn.functional.one_hot(b.argmax(-1), b.shape[-1]).to(b.dtype))
        y = a
        for k, (s, t) in enumerate(zip(self.scale, self.bias)):
            sig, tau = b[:, k] @ s.weight, b[:, k] @ t.weight
            if self.onehot:   # the product is the embedding lookup
                idx = b[:, k].argmax(-1)
                assert torch.equal(sig.detach(), s(idx).detach()) and torch.equal(tau.detach(), t(idx).detach())
            y = y * sig.unsqueeze(1) + tau.unsqueeze(1)
        return y


def build(case):
    net = ConditionalScaling(case["T"], case["E"], case["D"], bool(case.get("onehot")))
    if case.get("tables_random"):
        with torch.no_grad():
            for s, t in zip(net.scale, net.bias):
                s.weight.copy_(1 + 0.5 * torch.randn_like(s.weight))
                t.weight.copy_(0.5 * torch.randn_like(t.weight))
    return net
