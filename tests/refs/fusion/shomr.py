"""002 SHoMR (soft-hard modality routing), written from the document (002 "shomr") and
SOURCE-SYSTEMS 002, with the C method's choices (kernels/fusion/shomr.c):

  w = softmax(conf_net([a; b]))                   conf_net: Linear(2D, D), GELU, Dropout, Linear(D, 2)
  hard = max w > threshold                        per sample
  soft: y = norm1(w_a a + w_b b + att), out = y + FFN(y),  att = mean over tokens of MHA([a, b])
  hard: r = softmax(router([a; b]) / T), k = multinomial(r) (training) or argmax(r) (evaluation)
        k = 0: Proj(a), 1: Proj(b), 2: y = norm2(g a + (1 - g) b + att), out = y + FFN(y)
        g = sigmoid(gate([a; b])), Proj = dropout(GELU(proj_single(.))), one Proj for both
  FFN(y) = dropout(linear2(dropout(GELU(linear1(y))))), one MHA and one FFN for both paths.

Every path is computed for the whole batch and selected per sample (rows are independent, dropout
is 0 in the cases), so the gradient of an unselected path is exactly zero, as in the source's
index-and-scatter form. Our RNG is not torch's: training cases add 50 to one route's router bias, so
that route has probability 1 - 1e-21 and both samplers pick it. Evaluation cases use argmax; the
forward asserts that every max w is away from the threshold and every argmax away from a tie, so
the C test's finite differences never flip a decision.
"""
import torch
import torch.nn.functional as F
from torch import nn

from fusion._blocks import FFN, MHA

KIND = "vector"
_S = dict(B=5, S=1, T=1, D=8, E=8, H=2, tol=1e-4)
_W = dict(B=16, S=1, T=1, D=32, E=32, H=4, tol=1e-4)
CASES = [
    dict(name="soft_small", threshold=1.0, **_S),                        # always soft
    dict(name="hard_eval_small", threshold=0.0, router_scale=6.0, seed=12, **_S),   # always hard, argmax
    dict(name="mixed_eval_wide", threshold=0.6, conf_scale=4.0, router_scale=6.0, seed=119, **_W),  # 8 soft, 8 hard
    dict(name="default_wide", threshold=0.6, seed=19, **_W),               # the defaults: 15 soft, 1 hard
    dict(name="route_a_train", threshold=0.0, training=1, route=0, **_S),
    dict(name="route_b_train", threshold=0.0, training=1, route=1, **_S),
    dict(name="route_both_train", threshold=0.0, training=1, route=2, **_W),
    dict(name="hard_eval_temp_F", threshold=0.0, temperature=2.5, F=12, router_scale=6.0, seed=12, **_S),
]
W_MARGIN, R_MARGIN = 0.02, 0.05   # distance of max w from the threshold, top-2 router logit gap


class Shomr(nn.Module):
    def __init__(self, D, H, F_, p, threshold, temperature):
        super().__init__()
        self.threshold, self.temperature = threshold, temperature
        self.conf_net = nn.Sequential(nn.Linear(2 * D, D), nn.GELU(), nn.Dropout(p), nn.Linear(D, 2))
        self.router = nn.Sequential(nn.Linear(2 * D, D), nn.GELU(), nn.Dropout(p), nn.Linear(D, 3))
        self.cross_attn = MHA(D, H, dropout=p)
        self.gate = nn.Sequential(nn.Linear(2 * D, D))
        self.norm1, self.norm2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.ffn = FFN(D, F_, "gelu", p)
        self.ffn_drop = nn.Dropout(p)
        self.proj_single = nn.Sequential(nn.Linear(D, D))
        self.proj_drop = nn.Dropout(p)

    def _out(self, y):
        return y + self.ffn_drop(self.ffn(y))

    def _proj(self, x):
        return self.proj_drop(F.gelu(self.proj_single(x)))

    def forward(self, a, b):
        x = torch.cat([a, b], dim=-1)
        w = torch.softmax(self.conf_net(x), dim=-1)
        wmax = w.max(dim=-1).values
        hard = wmax > self.threshold
        logits = self.router(x) / self.temperature
        r = torch.softmax(logits, dim=-1)
        k = torch.multinomial(r, 1).squeeze(1) if self.training else r.argmax(dim=-1)
        if not self.training:
            assert ((wmax - self.threshold).abs() > W_MARGIN).all(), "a max w is too close to the threshold"
            top = logits[hard].topk(2, dim=-1).values
            assert (top[:, 0] - top[:, 1] > R_MARGIN).all(), "an argmax is too close to a tie"
        t = torch.stack([a, b], dim=1)
        att = self.cross_attn(t, t, t)[0].mean(dim=1)
        soft = self._out(self.norm1(w[:, :1] * a + w[:, 1:] * b + att))
        g = torch.sigmoid(self.gate(x))
        both = self._out(self.norm2(g * a + (1 - g) * b + att))
        k = k[:, None]
        routed = torch.where(k == 0, self._proj(a), torch.where(k == 1, self._proj(b), both))
        return torch.where(hard[:, None], routed, soft)


def build(case):
    D = case["D"]
    net = Shomr(D, case["H"], case.get("F", 0) or 4 * D, case.get("dropout", 0.0), case["threshold"],
                case.get("temperature", 1.0))
    with torch.no_grad():
        if "conf_scale" in case:   # spread w so that some samples pass the threshold
            net.conf_net[3].weight.mul_(case["conf_scale"])
        if "router_scale" in case:   # spread the router's logits so that argmax varies by sample
            net.router[3].weight.mul_(case["router_scale"])
        if "route" in case:        # this route with probability 1 - 1e-21
            net.router[3].bias[case["route"]] += 50.0
    return net
