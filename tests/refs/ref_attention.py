"""nn.MultiheadAttention(D, H, kdim=Ek, vdim=Ev, batch_first=True) reference, dropout 0.

The module's own forward runs (torch.nn.utils.stateless.functional_call) on parameters built from
the case's inputs: in_proj_weight = cat(wq, wk, wv) when Ek = Ev = D, else q/k/v_proj_weight;
in_proj_bias = cat(bq, bk, bv). Extra output `weights` is the head-averaged attention (B, S, T);
`mask` (uint8, 1 = ignore the key) is the key_padding_mask. Self-attention cases have one input x
used as query, key and value (so dx sums the three gradients).
"""
import torch
from torch.nn.utils.stateless import functional_call
from refutil import rand32, write_case


def module_call(D, H, Ek, Ev, q, k, v, wq, wk, wv, bq, bk, bv, wo, bo, mask):
    m = torch.nn.MultiheadAttention(D, H, dropout=0.0, kdim=Ek, vdim=Ev, batch_first=True).double()
    params = {"in_proj_bias": torch.cat([bq, bk, bv]), "out_proj.weight": wo, "out_proj.bias": bo}
    if Ek == D and Ev == D:
        params["in_proj_weight"] = torch.cat([wq, wk, wv])
    else:
        params.update(q_proj_weight=wq, k_proj_weight=wk, v_proj_weight=wv)
    kpm = mask.bool() if mask is not None else None
    out, weights = functional_call(m, params, (q, k, v),
                                   {"key_padding_mask": kpm, "need_weights": True, "average_attn_weights": True})
    return out, weights


def padding_mask(gen, B, T, p=0.3):
    """uint8 (B, T), 1 = padded; every row keeps at least one key."""
    m = (torch.rand(B, T, generator=gen) < p).to(torch.uint8)
    for b in range(B):
        m[b, b % T] = 0
    return m


def make(h5):
    gen = torch.Generator().manual_seed(5)
    # name: (B, S, T, D, Ek, Ev, H, self-attention, masked)
    cases = {
        "self": (2, 5, 5, 16, 16, 16, 4, True, False),
        "self_mask": (3, 6, 6, 16, 16, 16, 2, True, True),
        "cross": (2, 4, 7, 16, 12, 8, 4, False, True),
        "cross_nomask": (2, 3, 5, 12, 20, 6, 3, False, False),
        "two_tokens": (3, 1, 2, 8, 6, 6, 2, False, False),
        "large": (2, 20, 24, 32, 24, 32, 2, False, True),   # S*T*dh above the loop threshold
    }
    for name, (B, S, T, D, Ek, Ev, H, self_attn, masked) in cases.items():
        w = lambda o, i: rand32(gen, o, i, scale=1.5 * i ** -0.5)
        inputs = {}
        if self_attn:
            inputs["x"] = rand32(gen, B, S, D)
        else:
            inputs.update(query=rand32(gen, B, S, D), key=rand32(gen, B, T, Ek), value=rand32(gen, B, T, Ev))
        inputs.update(wq=w(D, D), wk=w(D, Ek), wv=w(D, Ev), bq=rand32(gen, D, scale=0.3),
                      bk=rand32(gen, D, scale=0.3), bv=rand32(gen, D, scale=0.3), wo=w(D, D),
                      bo=rand32(gen, D, scale=0.3))
        if masked:
            inputs["mask"] = padding_mask(gen, B, T)
        grads = [k for k in inputs if k != "mask"]

        def fn(wq, wk, wv, bq, bk, bv, wo, bo, x=None, query=None, key=None, value=None, mask=None,
               D=D, H=H, Ek=Ek, Ev=Ev):
            if x is not None:
                query = key = value = x
            return module_call(D, H, Ek, Ev, query, key, value, wq, wk, wv, bq, bk, bv, wo, bo, mask)

        write_case(h5, name, {"B": B, "S": S, "T": T, "D": D, "Ek": Ek, "Ev": Ev, "H": H,
                              "self_attn": int(self_attn), "masked": int(masked)},
                   inputs, fn, grads, gen, extra_outputs=("weights",))
