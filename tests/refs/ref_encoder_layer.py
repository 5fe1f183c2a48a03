"""nn.TransformerEncoderLayer(D, H, F, dropout=0, activation, batch_first=True, norm_first) reference.

The module's own forward runs in training mode (so not torch's inference fast path) through
functional_call on parameters built from the case's inputs (in_proj split as wq/wk/wv, bq/bk/bv).
`mask` (uint8, 1 = padding) is src_key_padding_mask.
"""
import torch
from torch.nn.utils.stateless import functional_call
from refutil import rand32, write_case
from ref_attention import padding_mask

EPS = 1e-5


def make(h5):
    gen = torch.Generator().manual_seed(7)
    # name: (B, S, D, H, F, activation, norm_first, masked)
    cases = {
        "post_relu": (2, 5, 16, 4, 32, "relu", False, False),
        "post_gelu": (2, 5, 16, 2, 48, "gelu", False, False),
        "pre_gelu": (2, 6, 16, 4, 32, "gelu", True, False),
        "post_relu_mask": (3, 6, 16, 4, 32, "relu", False, True),
        "pre_gelu_mask": (3, 7, 24, 3, 40, "gelu", True, True),
    }
    for name, (B, S, D, H, Fh, act, norm_first, masked) in cases.items():
        w = lambda o, i: rand32(gen, o, i, scale=1.5 * i ** -0.5)
        inputs = {"x": rand32(gen, B, S, D), "wq": w(D, D), "wk": w(D, D), "wv": w(D, D),
                  "bq": rand32(gen, D, scale=0.3), "bk": rand32(gen, D, scale=0.3),
                  "bv": rand32(gen, D, scale=0.3), "wo": w(D, D), "bo": rand32(gen, D, scale=0.3),
                  "w1": w(Fh, D), "b1": rand32(gen, Fh, scale=0.3), "w2": w(D, Fh),
                  "b2": rand32(gen, D, scale=0.3), "g1": 1 + rand32(gen, D, scale=0.3),
                  "be1": rand32(gen, D, scale=0.3), "g2": 1 + rand32(gen, D, scale=0.3),
                  "be2": rand32(gen, D, scale=0.3)}
        if masked:
            inputs["mask"] = padding_mask(gen, B, S)
        grads = [k for k in inputs if k != "mask"]

        def fn(x, wq, wk, wv, bq, bk, bv, wo, bo, w1, b1, w2, b2, g1, be1, g2, be2, mask=None,
               D=D, H=H, Fh=Fh, act=act, norm_first=norm_first):
            m = torch.nn.TransformerEncoderLayer(D, H, Fh, dropout=0.0, activation=act, batch_first=True,
                                                 norm_first=norm_first, layer_norm_eps=EPS).double().train()
            params = {"self_attn.in_proj_weight": torch.cat([wq, wk, wv]),
                      "self_attn.in_proj_bias": torch.cat([bq, bk, bv]),
                      "self_attn.out_proj.weight": wo, "self_attn.out_proj.bias": bo,
                      "linear1.weight": w1, "linear1.bias": b1, "linear2.weight": w2, "linear2.bias": b2,
                      "norm1.weight": g1, "norm1.bias": be1, "norm2.weight": g2, "norm2.bias": be2}
            kpm = mask.bool() if mask is not None else None
            return functional_call(m, params, (x,), {"src_key_padding_mask": kpm})

        write_case(h5, name, {"B": B, "S": S, "D": D, "H": H, "F": Fh, "gelu": int(act == "gelu"),
                              "norm_first": int(norm_first), "masked": int(masked), "eps": EPS},
                   inputs, fn, grads, gen)
