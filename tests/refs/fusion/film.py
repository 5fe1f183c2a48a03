"""002 FiLM: gamma = Linear(E -> D)(b), beta = Linear(E -> D)(b); out = gamma * a + beta.
Variant identity_init (003's FiLM initialisation): gamma weight 0, bias 1; beta weight 0, bias 0."""
import torch

KIND = "vector"
CASES = [
    dict(name="small", variant="default", B=5, S=1, T=1, D=7, E=5),
    dict(name="small_equal", variant="default", B=5, S=1, T=1, D=7, E=7),
    dict(name="wide", variant="default", B=16, S=1, T=1, D=64, E=64),
    dict(name="wide_E", variant="default", B=16, S=1, T=1, D=64, E=24),
    # at the identity initialisation out = a exactly; the gradients of W_gamma still exercise b
    dict(name="identity_small", variant="identity_init", B=5, S=1, T=1, D=7, E=5),
    dict(name="identity_wide", variant="identity_init", B=16, S=1, T=1, D=64, E=32),
]


class FiLM(torch.nn.Module):
    def __init__(self, D, E, identity):
        super().__init__()
        self.gamma = torch.nn.Linear(E, D)
        self.beta = torch.nn.Linear(E, D)
        if identity:
            for p, v in ((self.gamma.weight, 0.0), (self.gamma.bias, 1.0), (self.beta.weight, 0.0), (self.beta.bias, 0.0)):
                torch.nn.init.constant_(p, v)

    def forward(self, a, b):
        return self.gamma(b) * a + self.beta(b)


def build(case):
    return FiLM(case["D"], case["E"], case.get("variant", "default") == "identity_init")
