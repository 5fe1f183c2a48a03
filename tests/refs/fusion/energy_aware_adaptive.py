"""002 energy-aware adaptive fusion, written from the document (002 "energy_aware_adaptive") and
SOURCE-SYSTEMS 002, with the C method's choices (kernels/fusion/energy_aware_adaptive.c):

  r = softmax(router([a; b]))        router: Linear(2D, D), GELU, Linear(D, 3)
  k ~ multinomial(r) (training; evaluation too in "documented" / "returned"), argmax(r) in
      evaluation in "deterministic" / "deterministic_returned"
  out = a (k = 0), b (k = 1), dropout(FFN(norm(g a + (1 - g) b + att))) (k = 2),
        g = sigmoid(gate([a; b])), att = mean over tokens of MHA([a, b]), FFN = linear2(GELU(linear1))
  training: energy_loss = lambda_energy * relu(mean_i sum_k r_ik cost_k - 8), cost = (3.2, 4.1, 9.8)
  "returned" variants: energy_loss joins the objective with weight 1 (AddAux below), so
  out.backward(dout) also carries its gradient into the router, lambda_energy, a and b.

Our RNG is not torch's: sampled cases add 50 to one route's router bias (probability 1 - 1e-21, so
both samplers pick it); deterministic evaluation cases assert the argmax is away from ties. The
test's finite differences differentiate sum(dout * out) only, so the returned cases keep
E[cost] < budget (the loss and its gradient are 0). extra() adds the energy loss and its own
gradients (dout = 0) with E[cost] > budget, for tests/test_routing.c.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fusion._blocks import FFN, MHA

KIND = "vector"
COST = (3.2, 4.1, 9.8)
BUDGET = 8.0
R_MARGIN = 0.05
_S = dict(B=5, S=1, T=1, D=8, E=8, H=2, tol=1e-4)
_W = dict(B=16, S=1, T=1, D=32, E=32, H=4, tol=1e-4)
CASES = [
    dict(name="doc_eval_a", variant="documented", route=0, **_S),          # sampled in evaluation
    dict(name="doc_eval_b", variant="documented", route=1, **_S),
    dict(name="doc_eval_both", variant="documented", route=2, aux=1, **_W),
    dict(name="doc_train_both", variant="documented", route=2, training=1, **_S),   # E > budget, not returned
    dict(name="det_eval_small", variant="deterministic", router_scale=6.0, seed=2, **_S),   # argmax: mixed routes
    dict(name="det_eval_wide", variant="deterministic", router_scale=6.0, seed=33, **_W),
    dict(name="det_eval_F", variant="deterministic", F=12, router_scale=6.0, seed=0, **_S),
    dict(name="returned_train_a", variant="returned", route=0, training=1, **_S),  # E < budget
    dict(name="returned_train_b", variant="returned", route=1, training=1, **_W),
    dict(name="det_returned_eval", variant="deterministic_returned", router_scale=6.0, seed=12, **_S),
]


class AddAux(torch.autograd.Function):
    """out unchanged; backward also gives aux the gradient 1 (aux added to the objective)."""

    @staticmethod
    def forward(ctx, out, aux):
        ctx.aux_shape = aux.shape
        return out.clone()

    @staticmethod
    def backward(ctx, g):
        return g, torch.ones(ctx.aux_shape, dtype=g.dtype)


class EnergyAware(nn.Module):
    def __init__(self, D, H, F_, p, variant):
        super().__init__()
        self.variant = variant
        self.router = nn.Sequential(nn.Linear(2 * D, D), nn.GELU(), nn.Linear(D, 3))
        self.gate = nn.Sequential(nn.Linear(2 * D, D))
        self.cross_attn = MHA(D, H, dropout=p)
        self.norm = nn.LayerNorm(D)
        self.ffn = FFN(D, F_, "gelu", 0.0)
        self.ffn_drop = nn.Dropout(p)
        self.lambda_energy = nn.Parameter(torch.tensor(0.01))

    def route_probs(self, a, b):
        return torch.softmax(self.router(torch.cat([a, b], dim=-1)), dim=-1)

    def energy_loss(self, r):
        expected = (r * torch.tensor(COST, dtype=r.dtype)).sum(dim=-1).mean()
        return self.lambda_energy * F.relu(expected - BUDGET)

    def forward(self, a, b):
        logits = self.router(torch.cat([a, b], dim=-1))
        r = torch.softmax(logits, dim=-1)
        if self.training or self.variant in ("documented", "returned"):
            k = torch.multinomial(r, 1).squeeze(1)
        else:
            top = logits.topk(2, dim=-1).values
            assert (top[:, 0] - top[:, 1] > R_MARGIN).all(), "an argmax is too close to a tie"
            k = r.argmax(dim=-1)
        g = torch.sigmoid(self.gate(torch.cat([a, b], dim=-1)))
        t = torch.stack([a, b], dim=1)
        att = self.cross_attn(t, t, t)[0].mean(dim=1)
        both = self.ffn_drop(self.ffn(self.norm(g * a + (1 - g) * b + att)))
        k = k[:, None]
        out = torch.where(k == 0, a, torch.where(k == 1, b, both))
        if self.training and self.variant.endswith("returned"):
            out = AddAux.apply(out, self.energy_loss(r))
        return out


def build(case):
    D = case["D"]
    net = EnergyAware(D, case["H"], case.get("F", 0) or 4 * D, case.get("dropout", 0.0), case["variant"])
    with torch.no_grad():
        if "router_scale" in case:   # spread the router's logits so that argmax varies by sample
            net.router[2].weight.mul_(case["router_scale"])
        if "route" in case:
            net.router[2].bias[case["route"]] += 50.0
    return net


# The energy loss with E[cost] > budget: router.2.bias and lambda_energy replaced by aux/param/*,
# everything else as the case group; aux/loss, aux/grad/<name>, aux/da, aux/db = its gradients.
AUX_BIAS = (0.0, 0.0, 2.0)   # r_2 near 0.8: E[cost] near 8.5 mJ
AUX_LAMBDA = float(np.float32(0.37))


def extra(case, group):
    if not case.get("aux"):
        return {}
    net = build(case).double()
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(torch.from_numpy(np.asarray(group["param/" + name])))
        net.router[2].bias.copy_(torch.tensor(AUX_BIAS, dtype=torch.float64))
        net.lambda_energy.fill_(AUX_LAMBDA)
    a = torch.from_numpy(np.asarray(group["a"])).double().requires_grad_()
    b = torch.from_numpy(np.asarray(group["b"])).double().requires_grad_()
    loss = net.energy_loss(net.route_probs(a, b))
    assert loss.item() > 0.0, "E[cost] must exceed the budget"
    names, params = zip(*net.named_parameters())
    grads = torch.autograd.grad(loss, list(params) + [a, b], allow_unused=True)
    out = {"aux/loss": np.array([loss.item()]), "aux/da": grads[-2].numpy(), "aux/db": grads[-1].numpy(),
           "aux/param/router.2.bias": np.array(AUX_BIAS), "aux/param/lambda_energy": np.array([AUX_LAMBDA])}
    for name, p, gr in zip(names, params, grads):
        out["aux/grad/" + name] = (gr if gr is not None else torch.zeros_like(p)).detach().numpy()
    return out
