"""The timeseries scenario (harness/scenario_timeseries.c) re-written twice, for
tests/fixtures/scenario_timeseries.h5:

  - generate(): a Python twin of the C synthetic generator (Philox4x32-10 ported bit for bit, the
    calendar from datetime, the signal in double with the same libm calls), so the C test checks
    its records against an independent implementation;
  - TimeSeries: the model in PyTorch with the C layout's parameter names, built from
    fusion/_blocks.py (MHA, EncoderLayer) and the fusion methods' reference modules
    (fusion/concat_proj.py for the calendar fusion, fusion/<method>.py for the method).

Each case group: attrs (sizes, seed, `method`, `variant`), x (B, in_stride), y (B, P) from the twin,
param/<name> (rounded to float32), out (B, P), loss (MSE, float64 forward from the float32 values)
and grad/<name>. Dropout is 0 (the C test runs training mode with p = 0: the identity).
"""
import datetime
import importlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from fusion._blocks import MHA, EncoderLayer
from fusion.concat_proj import ConcatProj

BODIES, CEL_FEAT, CAL_IDS, CAL_SCALARS = 13, 3, 3, 7
SPAN_DAYS = 14610
GEN_START, GEN_NOISE = 0x47000000, 0x47000100
TWO_PI = 6.283185307179586
PERIOD = [365.256, 29.5306, 87.969, 224.701, 686.980, 4332.59, 10759.22, 30688.5, 60182.0, 90560.0,
          -6798.38, -6798.38, 18518.0]
THETA = [0.78, 0.12, 0.43, 0.61, 0.05, 0.37, 0.90, 0.22, 0.66, 0.49, 0.31, 0.81, 0.57]
WEEKLY = [0.4, 0.3, 0.2, 0.1, 0.3, -0.5, -0.8]
STRENGTH = dict(trend=1.0, weekly=1.0, yearly=1.0, calendar=1.0, celestial=1.0, interaction=1.0, noise=0.3)

CASES = [
    dict(name="gated_add", method="gated_add", B=3, seq_len=8, pred_len=3, features=2, D=16, H=2, layers=1, seed=7),
    dict(name="attention", method="attention", B=3, seq_len=8, pred_len=3, features=1, D=16, H=2, layers=1, seed=11),
]

# ---------------------------------------------------------------- generator twin

MASK = 0xFFFFFFFF


def philox(seed, step, site, block):
    c0, c1, c2, c3 = block & MASK, (block >> 32) & MASK, step & MASK, site & MASK
    k0, k1 = seed & MASK, (seed >> 32) & MASK
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        n0 = ((p1 >> 32) ^ c1 ^ k0) & MASK
        n2 = ((p0 >> 32) ^ c3 ^ k1) & MASK
        c1, c3, c0, c2 = p1 & MASK, p0 & MASK, n0, n2
        k0, k1 = (k0 + 0x9E3779B9) & MASK, (k1 + 0xBB67AE85) & MASK
    return c0, c1, c2, c3


def uniform(seed, step, site, index):
    return (philox(seed, step, site, index >> 2)[index & 3] >> 8) / 16777216.0


def date_of(t):
    d = datetime.date(2000, 1, 1) + datetime.timedelta(days=t)
    nxt = d + datetime.timedelta(days=1)
    return dict(dow=d.weekday(), month=d.month - 1, quarter=(d.month - 1) // 3, dom=d.day,
                doy=d.timetuple().tm_yday - 1, weekend=int(d.weekday() >= 5), month_start=int(d.day == 1),
                month_end=int(nxt.month != d.month),
                holiday=int((d.month, d.day) in {(1, 1), (5, 1), (7, 4), (11, 11), (12, 25), (12, 26)}))


def phase(k, t):
    return TWO_PI * (t / PERIOD[k] + THETA[k])


def noise(seed, channel, t):
    u1, u2 = uniform(seed, 0, GEN_NOISE + channel, 2 * t), uniform(seed, 0, GEN_NOISE + channel, 2 * t + 1)
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(TWO_PI * u2)


def value(g, seed, channel, t):
    c = date_of(t)
    trend = 0.6 * math.sin(TWO_PI * t / 1461.0 + 0.3)
    yearly = 0.5 * math.sin(TWO_PI * c["doy"] / 365.25) + 0.25 * math.cos(2.0 * TWO_PI * c["doy"] / 365.25)
    n = noise(seed, channel, t)
    if channel > 0:
        return g["trend"] * trend + g["yearly"] * yearly + g["noise"] * n
    moon, venus, mars, jup, sat = (phase(k, t) for k in (1, 3, 4, 5, 6))
    weekly = WEEKLY[c["dow"]]
    calendar = 0.8 * c["month_end"] + 0.3 * c["month_start"] - 1.0 * c["holiday"]
    celestial = 0.6 * math.cos(moon) + 0.4 * math.sin(mars) + 0.4 * math.cos(jup - sat) + 0.3 * math.sin(venus)
    interaction = (1.2 * c["weekend"] - 0.4) * math.cos(moon) + 0.8 * int(bool(c["month_end"] or c["holiday"])) * math.sin(venus)
    return (g["trend"] * trend + g["weekly"] * weekly + g["yearly"] * yearly + g["calendar"] * calendar +
            g["celestial"] * celestial + g["interaction"] * interaction + g["noise"] * n)


def f32(v):
    return float(torch.tensor(v, dtype=torch.float32))


def generate(case, index):
    """Sample `index`: (x record, y), as float32-rounded Python floats."""
    S, P, Fe, seed = case["seq_len"], case["pred_len"], case["features"], case["seed"]
    t0 = math.floor(uniform(seed, 0, GEN_START, index) * SPAN_DAYS)
    series, ids, scal = [], [], []
    for i in range(S):
        t = t0 + i
        series += [value(STRENGTH, seed, f, t) for f in range(Fe)]
        c = date_of(t)
        ids += [c["dow"], c["month"], c["quarter"]]
        scal += [(c["dom"] - 1) / 30.0, c["doy"] / 365.0, (c["doy"] // 7) / 52.0, c["weekend"], c["month_start"],
                 c["month_end"], c["holiday"]]
    origin = t0 + S
    sun = phase(0, origin)
    cel = []
    for k in range(BODIES):
        ph = phase(k, origin)
        cel += [math.sin(ph), math.cos(ph), math.cos(ph - sun)]
    x = [f32(v) for v in series + ids + scal + cel]
    y = [f32(value(STRENGTH, seed, 0, origin + j)) for j in range(P)]
    return x, y


# ---------------------------------------------------------------- model twin


class Calendar(nn.Module):
    def __init__(self, D):
        super().__init__()
        Dm, Dq, Dc = D // 8, D // 16, D // 4
        self.dow, self.month, self.quarter = nn.Embedding(7, Dm), nn.Embedding(12, Dm), nn.Embedding(4, Dq)
        self.scalar = nn.ModuleList([nn.Linear(1, Dq) for _ in range(CAL_SCALARS)])
        self.proj = nn.Linear(2 * Dm + Dq + CAL_SCALARS * Dq, Dc)
        self.norm = nn.LayerNorm(Dc, eps=1e-5)

    def forward(self, ids, scal):
        feats = [self.dow(ids[..., 0]), self.month(ids[..., 1]), self.quarter(ids[..., 2])]
        feats += [lin(scal[..., k:k + 1]) for k, lin in enumerate(self.scalar)]
        return F.gelu(self.norm(self.proj(torch.cat(feats, dim=-1))))


class Celestial(nn.Module):
    def __init__(self, D, H, attend):
        super().__init__()
        self.proj = nn.Linear(CEL_FEAT, D)
        self.nodes = nn.Parameter(0.02 * torch.randn(BODIES, D))
        if attend:
            self.attn = MHA(D, H)
            self.norm = nn.LayerNorm(D, eps=1e-5)


class Encoder(nn.Module):
    def __init__(self, D, H, F_, layers):
        super().__init__()
        self.layers = nn.ModuleList([EncoderLayer(D, H, F_, "gelu", 0.0) for _ in range(layers)])


def positional_encoding(S, D):
    pe = torch.zeros(S, D, dtype=torch.float64)
    for p in range(S):
        for i in range(0, D, 2):
            div = math.exp(i * -(math.log(10000.0) / D))
            pe[p, i] = f32(math.sin(p * div))
            if i + 1 < D:
                pe[p, i + 1] = f32(math.cos(p * div))
    return pe


class TimeSeries(nn.Module):
    def __init__(self, case):
        super().__init__()
        S, P, Fe, D, H = case["seq_len"], case["pred_len"], case["features"], case["D"], case["H"]
        self.S, self.Fe, self.D = S, Fe, D
        mod = importlib.import_module("fusion." + case["method"])
        self.sequence = getattr(mod, "KIND", "vector") == "sequence"
        self.series_embedding = nn.Linear(Fe, D)
        self.calendar = Calendar(D)
        self.calendar_fusion = ConcatProj(D, D // 4, calendar=True, dropout=0.0)
        self.encoder = Encoder(D, H, 4 * D, case["layers"])
        self.celestial = Celestial(D, H, attend=not self.sequence)
        mcase = dict(D=D, E=D, H=H, S=S, T=BODIES, B=case["B"], variant="default")
        self.fusion = mod.build(mcase)
        self.head = nn.Linear(S * D, P)
        self.register_buffer("pe", positional_encoding(S, D))

    def forward(self, x):
        B, S, Fe, D = x.shape[0], self.S, self.Fe, self.D
        o_ids = S * Fe
        o_scal = o_ids + S * CAL_IDS
        o_cel = o_scal + S * CAL_SCALARS
        series = x[:, :o_ids].reshape(B, S, Fe)
        ids = x[:, o_ids:o_scal].reshape(B, S, CAL_IDS).long()
        scal = x[:, o_scal:o_cel].reshape(B, S, CAL_SCALARS)
        tok = x[:, o_cel:].reshape(B, BODIES, CEL_FEAT)
        e = self.series_embedding(series) + self.pe
        cal = self.calendar(ids, scal)
        h = self.calendar_fusion(e.reshape(B * S, D), cal.reshape(B * S, -1)).reshape(B, S, D)
        for layer in self.encoder.layers:
            h = layer(h)
        C = self.celestial.proj(tok) + self.celestial.nodes
        if self.sequence:
            z = self.fusion(h, C)
        else:
            fused = self.celestial.norm(self.celestial.attn(h, C, C)[0])
            z = self.fusion(h.reshape(B * S, D), fused.reshape(B * S, D))
        return self.head(z.reshape(B, S * D))


def write_case(h5, case):
    torch.manual_seed(case["seed"])
    net = TimeSeries(case).double()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "bias" in name or "norm" in name:   # every parameter exercised (defaults are 0 / 1)
                p.add_(0.3 * torch.randn_like(p))
            p.copy_(p.float().double())
    for name, p in net.named_parameters():
        if name.endswith("k_proj_bias"):   # exactly 0 (softmax ignores it); store the exact value
            p.register_hook(torch.zeros_like)
    net.eval()
    recs = [generate(case, i) for i in range(case["B"])]
    x = torch.tensor([r[0] for r in recs], dtype=torch.float64)
    y = torch.tensor([r[1] for r in recs], dtype=torch.float64)
    out = net(x)
    loss = F.mse_loss(out, y)
    loss.backward()
    g = h5.create_group(case["name"])
    for k, v in case.items():
        if k == "name":
            continue
        g.attrs[k] = v if isinstance(v, str) else float(v)
    g.attrs["variant"] = "default"
    g["x"], g["y"], g["out"] = x.numpy(), y.numpy(), out.detach().numpy()
    g["loss"] = torch.tensor([loss.item()], dtype=torch.float64).numpy()
    for name, p in net.named_parameters():
        g[f"param/{name}"] = p.detach().numpy()
        g[f"grad/{name}"] = (p.grad if p.grad is not None else torch.zeros_like(p)).numpy()


def make(h5):
    for case in CASES:
        write_case(h5, case)
