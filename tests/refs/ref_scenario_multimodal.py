"""The multimodal scenario (002) in PyTorch, and a Python twin of its synthetic generator
(harness/scenario_multimodal.c), for tests/test_scenario_multimodal.c.

Model: logits = head(dropout(method(proj_a(a), proj_b(b)))); loss = cross_entropy(logits, label).
The method is the fusion reference module of tests/refs/fusion/<method>.py; parameter names are the
C layout's ("proj_a.weight", "fusion.gate.weight", "head.bias", ...). Dropout is 0 here (torch's
RNG is not ours); the C test covers dropout by finite differences and decomposition.

The twin reproduces the C records bit for bit: Philox4x32-10 on Python integers, the Irwin-Hall
"normal" from one block's four 24-bit words, and every float64 operation in the C order.

Groups written:
  <method>            attrs B, D, feat_a, feat_b, classes, seed, index0, method; x (B, feat_a+feat_b),
                      y (B, 3) from the twin (samples index0 .. index0+B-1); param/<name>;
                      out (logits), loss (1), dlogits (d loss / d logits), grad/<name>
  generator_default   the default sizes (feat_a 256, feat_b 192, classes 4): index (n), x, y
"""
import importlib
import math

import numpy as np
import torch
import torch.nn.functional as F

M32 = 0xFFFFFFFF
SITE_DATA = 0x4D4D0000
DATA_PROTO, DATA_WA, DATA_WB, DATA_MODE, DATA_ZA, DATA_ZB, DATA_FA, DATA_FB = range(8)
DEFAULTS = dict(latent=16, signal=1.0, noise=0.5, feature_noise=0.1, frac_a_only=0.2, frac_b_only=0.2)


def philox(seed, step, site, block):
    """kernels/rng.c philox4x32_10 on the key (seed, step, site) and counter block."""
    c0, c1, c2, c3 = block & M32, (block >> 32) & M32, step & M32, site & M32
    k0, k1 = seed & M32, (seed >> 32) & M32
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        n0 = ((p1 >> 32) ^ c1 ^ k0) & M32
        n2 = ((p0 >> 32) ^ c3 ^ k1) & M32
        c1, c3, c0, c2 = p1 & M32, p0 & M32, n0, n2
        k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
    return c0, c1, c2, c3


class Generator:
    """Twin of the C generator (mm_data_setup, mm_sample)."""

    def __init__(self, seed, classes, feat_a, feat_b, **strengths):
        self.seed, self.C, self.fa, self.fb = seed, classes, feat_a, feat_b
        self.d = dict(DEFAULTS, **strengths)
        Z = self.d["latent"]
        self.gscale = math.sqrt(3.0) / 16777216.0
        wscale = 1.0 / math.sqrt(float(Z))
        self.thr_a = int(self.d["frac_a_only"] * 16777216.0)
        self.thr_ab = int((self.d["frac_a_only"] + self.d["frac_b_only"]) * 16777216.0)
        self.proto = np.array([self.gauss(DATA_PROTO, i) for i in range(classes * Z)]).reshape(classes, Z)
        self.wa = np.array([self.gauss(DATA_WA, i) * wscale for i in range(feat_a * Z)]).reshape(feat_a, Z)
        self.wb = np.array([self.gauss(DATA_WB, i) * wscale for i in range(feat_b * Z)]).reshape(feat_b, Z)

    def gauss(self, k, block):
        w = philox(self.seed, 0, SITE_DATA + k, block)
        return float(sum(x >> 8 for x in w) - 2 * 16777216) * self.gscale

    def modality(self, kz, kf, index, informative, code, w):
        Z, d, n = self.d["latent"], self.d, w.shape[0]
        z = [(d["signal"] * self.proto[code, k] if informative else 0.0) + d["noise"] * self.gauss(kz, index * Z + k)
             for k in range(Z)]
        acc = np.zeros(n)
        for k in range(Z):                      # C order: acc += w[j][k] * z[k], k ascending
            acc = acc + w[:, k] * z[k]
        noise = np.array([self.gauss(kf, index * n + j) for j in range(n)])
        return (acc + d["feature_noise"] * noise).astype(np.float32)

    def sample(self, index):
        w = philox(self.seed, 0, SITE_DATA + DATA_MODE, index)
        u = w[0] >> 8
        ua, ub = ((w[1] >> 8) * self.C) >> 24, ((w[2] >> 8) * self.C) >> 24
        inf_a = 0 if self.thr_a <= u < self.thr_ab else 1
        inf_b = 0 if u < self.thr_a else 1
        label = ua if not inf_b else ub if not inf_a else (ua + ub) % self.C
        a = self.modality(DATA_ZA, DATA_FA, index, inf_a, ua, self.wa)
        b = self.modality(DATA_ZB, DATA_FB, index, inf_b, ub, self.wb)
        return np.concatenate([a, b]), np.array([label, inf_a, inf_b], dtype=np.float32)

    def batch(self, indices):
        xs, ys = zip(*(self.sample(i) for i in indices))
        return np.stack(xs), np.stack(ys)


class Multimodal(torch.nn.Module):
    def __init__(self, feat_a, feat_b, D, classes, fusion, dropout=0.0):
        super().__init__()
        self.feat_a = feat_a
        self.proj_a = torch.nn.Linear(feat_a, D)
        self.proj_b = torch.nn.Linear(feat_b, D)
        self.fusion = fusion
        self.drop = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(D, classes)

    def forward(self, x):
        a, b = x[:, :self.feat_a], x[:, self.feat_a:]
        return self.head(self.drop(self.fusion(self.proj_a(a), self.proj_b(b))))


def write_model_case(h5, method, seed, index0, B=5, feat_a=6, feat_b=5, D=8, classes=3):
    gen = Generator(seed, classes, feat_a, feat_b)
    x, y = gen.batch(range(index0, index0 + B))
    mod = importlib.import_module("fusion." + method)
    torch.manual_seed(seed)
    net = Multimodal(feat_a, feat_b, D, classes, mod.build(dict(B=B, S=1, T=1, D=D, E=D))).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.float().double())
    net.eval()   # dropout 0 and the methods' evaluation paths (the C test runs training = 0)
    xt = torch.from_numpy(x).double()
    labels = torch.from_numpy(y[:, 0]).long()
    out = net(xt)
    out.retain_grad()
    loss = F.cross_entropy(out, labels)
    loss.backward()
    g = h5.create_group(method)
    for k, v in dict(B=B, D=D, feat_a=feat_a, feat_b=feat_b, classes=classes, seed=seed, index0=index0).items():
        g.attrs[k] = float(v)
    g.attrs["method"] = method
    g["x"], g["y"] = x.astype(np.float64), y.astype(np.float64)
    g["out"], g["loss"], g["dlogits"] = out.detach().numpy(), np.array([loss.item()]), out.grad.numpy()
    for name, p in net.named_parameters():
        g[f"param/{name}"] = p.detach().numpy()
        g[f"grad/{name}"] = (p.grad if p.grad is not None else torch.zeros_like(p)).numpy()


def make(h5):
    write_model_case(h5, "gated", seed=11, index0=100)
    write_model_case(h5, "concat_mlp", seed=12, index0=0)
    write_model_case(h5, "film", seed=13, index0=7)
    seed, index = 5, [0, 1, 2, 3, 4, 5, 6, 7, 123456789012]
    gen = Generator(seed, 4, 256, 192)
    x, y = gen.batch(index)
    g = h5.create_group("generator_default")
    for k, v in dict(seed=seed, feat_a=256, feat_b=192, classes=4).items():
        g.attrs[k] = float(v)
    g["index"] = np.array(index, dtype=np.float64)
    g["x"], g["y"] = x.astype(np.float64), y.astype(np.float64)
