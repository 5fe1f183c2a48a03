"""003 FiLM head: per hidden layer x = dropout(ReLU(gamma(b) * fc(x) + beta(b))), gamma/beta:
Linear(E -> F) initialised to the identity (weight 0, gamma bias 1, beta bias 0); then out: Linear(F -> D).
F = case F or D; layers = case layers or 1. Cases with film_random=1 re-draw gamma/beta with
nn.Linear's default so that the modulation (and the gradient into b) is not trivial.
ReLU kinks: the C test's finite differences move a pre-activation by about fd_h; fd_h is 3e-3
(1e-3 where 3e-3 would cross a kink), so no sampled perturbation crosses one (checked in float64
with the test's sampling of coordinates) while float32 rounding stays small next to 2 fd_h."""
import torch

KIND = "vector"
CASES = [
    dict(name="identity_small", B=5, S=1, T=1, fd_h=1e-3, D=7, E=5),
    dict(name="small", B=5, S=1, T=1, fd_h=3e-3, D=7, E=5, film_random=1),
    dict(name="two_layers_F", B=5, S=1, T=1, fd_h=3e-3, D=7, E=6, F=9, layers=2, film_random=1),
    dict(name="three_layers_train_nodrop", B=5, S=1, T=1, fd_h=3e-3, D=8, E=5, layers=3,
         training=1, dropout=0.0),
    dict(name="wide", B=16, S=1, T=1, fd_h=1e-3, D=64, E=32, film_random=1),
    dict(name="wide_two_layers", B=16, S=1, T=1, fd_h=3e-3, D=64, E=48, F=96, layers=2, film_random=1),
]


class FiLMLayer(torch.nn.Module):
    def __init__(self, IC, F, E, dropout):
        super().__init__()
        self.fc = torch.nn.Linear(IC, F)
        self.gamma = torch.nn.Linear(E, F)
        self.beta = torch.nn.Linear(E, F)
        for p, v in ((self.gamma.weight, 0.0), (self.gamma.bias, 1.0), (self.beta.weight, 0.0), (self.beta.bias, 0.0)):
            torch.nn.init.constant_(p, v)
        self.drop = torch.nn.Dropout(dropout)

    def forward(self, x, c):
        return self.drop(torch.relu(self.gamma(c) * self.fc(x) + self.beta(c)))


class FiLMHead(torch.nn.Module):
    def __init__(self, D, E, F, layers, dropout):
        super().__init__()
        self.hidden = torch.nn.ModuleList(FiLMLayer(D if l == 0 else F, F, E, dropout) for l in range(layers))
        self.out = torch.nn.Linear(F, D)

    def forward(self, a, b):
        x = a
        for layer in self.hidden:
            x = layer(x, b)
        return self.out(x)


def build(case):
    D = case["D"]
    net = FiLMHead(D, case["E"], case.get("F", 0) or D, case.get("layers", 0) or 1, case.get("dropout", 0.0))
    if case.get("film_random"):
        for layer in net.hidden:
            layer.gamma.reset_parameters()
            layer.beta.reset_parameters()
    return net
