"""The microbiome scenario model (harness/scenario_microbiome.c) in PyTorch, float64, at tiny sizes:
ASV embedding (padding id 0 = zero vector) + log-abundance FiLM, pre-norm sample transformer (GELU,
FFN 4D, final LayerNorm eps 1e-6), AttentionPooling -> sample embedding e; categorical embeddings
(unknown id 0 = zero vector) -> the fusion method (tests/refs/fusion/<method>.py) on the target path ->
target encoder (1 layer) -> AttentionPooling -> head; loss = Huber(delta 1, mean) + UniFrac pairwise
(d = sqrt(max(|e_i - e_j|^2, 1e-8)), tanh(d / 10), mean over i < j of the squared error against T).

T is unweighted UniFrac on the scenario's two-level tree (root -> clade node -> ASV leaf, lengths 1,
G = min(8, V) clades, ASV v in clade (v - 1) * G // V), computed here independently of the C code.
The records x = [ids (S), log1p(count) (S), category ids (K)], y = [target, ids (S)] are drawn here
(shaped as the C generator's: padding after the tokens, some unknown columns, never all unknown in a
sample) and stored; the C test loads them, so the comparison checks the model, not the generator.
Parameters (named as the C layout) are rounded to float32 before the float64 run; biases, LayerNorm
affines and the FiLM gamma weight (0 at init) are perturbed so every parameter is exercised.
Stored per case: attrs (sizes, method, variant, tol), x, y, param/<name>, out (B, 1 + D), huber,
unifrac, dloss_out (d(huber + unifrac)/d out), grad/<name>."""
import importlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from fusion._blocks import EncoderLayer

BASE = dict(B=4, S=6, V=10, D=16, H=2, layers=1, K=2, card=3, E=4)
CASES = [
    dict(name="categorical_add", method="categorical_add", variant="default", bias_random=1),
    dict(name="categorical_concat", method="categorical_concat", variant="default"),
    dict(name="seq_cross_attention", method="seq_cross_attention", variant="default"),
    dict(name="conditional_scaling", method="conditional_scaling", variant="default", tables_random=1),
    dict(name="perceiver_shipped", method="perceiver", variant="shipped", latents_std=1.0),
    dict(name="gmu", method="gmu", variant="document"),
    # film_head's ReLUs: seed 3 puts no ReLU input within reach of the C test's finite-difference
    # steps (h = 2e-2 on 6 coordinates per parameter; seed 4 would cross a kink)
    dict(name="film_head", method="film_head", variant="default", film_random=1, seed=3),
]
ONEHOT = {"conditional_scaling"}
POOLING = {"perceiver"}
VECTOR = {"gmu", "film_head"}


class AttentionPooling(nn.Module):
    def __init__(self, D):
        super().__init__()
        self.query = nn.Linear(D, 1, bias=False)
        self.norm = nn.LayerNorm(D)

    def forward(self, h, pad):   # pad (B, S) True = padding
        s = self.query(h).squeeze(-1) / math.sqrt(h.shape[-1])
        a = torch.softmax(s.masked_fill(pad, float("-inf")), dim=-1)
        a = a * (~pad)
        a = a / (a.sum(-1, keepdim=True) + 1e-8)
        return self.norm((a.unsqueeze(-1) * h).sum(1))


class Encoder(nn.Module):
    def __init__(self, D, H, n):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(D, H, 4 * D, "gelu", 0.0, norm_first=True) for _ in range(n))
        self.norm = nn.LayerNorm(D, eps=1e-6)

    def forward(self, x, pad):
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=pad)
        return self.norm(x)


class Film(nn.Module):
    def __init__(self, D):
        super().__init__()
        self.gamma, self.beta = nn.Linear(1, D), nn.Linear(1, D)


def lookup(ids, table):
    """Embedding with id 0 = zero vector: table row v-1 is id v."""
    return F.embedding(ids, torch.cat([torch.zeros(1, table.shape[1], dtype=table.dtype), table]))


class Microbiome(nn.Module):
    def __init__(self, c):
        super().__init__()
        B, S, V, D, H, K, card, E = (c[k] for k in ("B", "S", "V", "D", "H", "K", "card", "E"))
        self.c, self.method = c, c["method"]
        self.asv_embedding = nn.Module()
        self.asv_embedding.weight = nn.Parameter(torch.randn(V, D))
        self.asv_film = Film(D)
        self.sample_encoder = Encoder(D, H, c["layers"])
        self.sample_pooling = AttentionPooling(D)
        if self.method not in ONEHOT:
            self.cat_embedding = nn.ModuleList(nn.Module() for _ in range(K))
            for m in self.cat_embedding:
                m.weight = nn.Parameter(torch.randn(card, E))
        mod = importlib.import_module("fusion." + self.method)
        if self.method in ONEHOT:
            fcase = dict(c, T=K, E=card + 1)
        elif self.method in VECTOR:
            fcase = dict(c, T=1, E=K * E)
        elif self.method in POOLING:
            fcase = dict(c, T=K, E=E, L=64, layers=2, F=4 * D)
        else:
            fcase = dict(c, T=K, E=E)
        self.fusion = mod.build(fcase)
        if self.method not in POOLING:
            self.target_encoder = Encoder(D, H, 1)
            self.target_pooling = AttentionPooling(D)
        self.head = nn.Linear(D, 1)

    def forward(self, x):
        c = self.c
        S, K = c["S"], c["K"]
        ids, logab, cats = x[:, :S].long(), x[:, S:2 * S], x[:, 2 * S:].long()
        pad = ids == 0
        l = logab.unsqueeze(-1)
        h0 = self.asv_film.gamma(l) * lookup(ids, self.asv_embedding.weight) + self.asv_film.beta(l)
        X = self.sample_encoder(h0, pad)
        e = self.sample_pooling(X, pad)
        if self.method in ONEHOT:
            b = F.one_hot(cats, c["card"] + 1).to(x.dtype)
        else:
            b = torch.stack([lookup(cats[:, k], self.cat_embedding[k].weight) for k in range(K)], dim=1)
        f = self.fusion
        if self.method in VECTOR:
            q = self.target_pooling(self.target_encoder(X, pad), pad)
            p = f(q, b.reshape(b.shape[0], -1))
        elif self.method in POOLING:
            p = f(X, b)
        else:
            if self.method == "seq_cross_attention":   # the unknown columns are masked keys
                z = f.norm(X + f.cross_attn(X, b, b, key_padding_mask=cats == 0)[0])
            else:
                z = f(X, b)
            p = self.target_pooling(self.target_encoder(z, pad), pad)
        return torch.cat([self.head(p), e], dim=1)


def unifrac_two_level(a, b, V):
    """Unweighted UniFrac of two ASV id sets on root -> clade -> leaf, every branch length 1."""
    G = min(8, V)
    clade = lambda v: (v - 1) * G // V
    na = {("leaf", v) for v in a} | {("clade", clade(v)) for v in a}
    nb = {("leaf", v) for v in b} | {("clade", clade(v)) for v in b}
    union = na | nb
    return len(na ^ nb) / len(union) if union else 0.0


def losses(out, y, c):
    B, S = out.shape[0], c["S"]
    huber = F.huber_loss(out[:, 0], y[:, 0], delta=1.0)
    e = out[:, 1:]
    sets = [{int(v) for v in y[i, 1:1 + S] if v > 0} for i in range(B)]
    terms = []
    for i in range(B):
        for j in range(i + 1, B):
            d = torch.sqrt(torch.clamp(((e[i] - e[j]) ** 2).sum(), min=1e-8))
            T = unifrac_two_level(sets[i], sets[j], c["V"])
            terms.append((torch.tanh(d / 10) - T) ** 2)
    unifrac = torch.stack(terms).mean() if terms else out.sum() * 0
    return huber, unifrac


def records(c, gen):
    B, S, V, K, card = (c[k] for k in ("B", "S", "V", "K", "card"))
    lengths = [S, 3, 1, 4, 5, 2][:B]
    x = torch.zeros(B, 2 * S + K, dtype=torch.float64)
    y = torch.zeros(B, 1 + S, dtype=torch.float64)
    for i in range(B):
        n = lengths[i % len(lengths)]
        ids = torch.randperm(V, generator=gen)[:n] + 1
        counts = torch.randint(1, 500, (n,), generator=gen).double()
        x[i, :n] = ids.double()
        x[i, S:S + n] = torch.log1p(counts).float().double()
        cats = torch.randint(1, card + 1, (K,), generator=gen)
        if i % 2 == 1:
            cats[(i // 2) % K] = 0   # an unknown column, never all of them
        x[i, 2 * S:] = cats.double()
        y[i, 0] = float(torch.randn(1, generator=gen).float() * 1.5)
        y[i, 1:1 + n] = ids.double()
    return x, y


def make(h5):
    gen = torch.Generator().manual_seed(11)
    for case in CASES:
        c = dict(BASE, **case)
        torch.manual_seed(c.get("seed", 5))
        net = Microbiome(c).double()
        with torch.no_grad():
            for name, p in net.named_parameters():
                if "bias" in name or "norm" in name or name == "asv_film.gamma.weight":
                    p.add_(0.3 * torch.randn_like(p))
                if name.endswith("latents") and c.get("latents_std"):
                    p.normal_(0.0, c["latents_std"])
            for p in net.parameters():
                p.copy_(p.float().double())
        net.eval()
        x, y = records(c, gen)
        out = net(x)
        out.retain_grad()
        huber, unifrac = losses(out, y, c)
        (huber + unifrac).backward()
        g = h5.create_group(c["name"])
        for k in ("B", "S", "V", "D", "H", "layers", "K", "card", "E"):
            g.attrs[k] = float(c[k])
        g.attrs["method"], g.attrs["variant"] = c["method"], c["variant"]
        g.attrs["tol"] = 1e-4
        g["x"], g["y"] = x.numpy(), y.numpy()
        g["out"], g["dloss_out"] = out.detach().numpy(), out.grad.numpy()
        g["huber"], g["unifrac"] = huber.detach().numpy(), unifrac.detach().numpy()
        for name, p in net.named_parameters():
            g[f"param/{name}"] = p.detach().numpy()
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            if name.endswith("k_proj_bias"):   # shifts every score of a query equally: exactly 0
                grad = torch.zeros_like(p)
            g[f"grad/{name}"] = grad.numpy()
