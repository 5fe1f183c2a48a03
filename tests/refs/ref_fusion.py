"""Fixtures for every fusion method, one file each (tests/fixtures/fusion/<method>.h5):
tests/refs/fusion/<method>.py each define

    CASES = [dict(name=..., variant=..., B=.., S=.., T=.., D=.., E=.., <options>), ...]
    def build(case) -> torch.nn.Module with forward(a, b) -> out

The module's named_parameters() must carry the same names as the C method's layout, so the C test
loads and compares every parameter by name. Each case group holds attrs (sizes, options, `method`,
`variant`), a, b, param/<name>, out, dout, da, db, grad/<name>. Parameters are rounded to float32
before the float64 forward so C starts from the very same values.
"""
import glob
import importlib
import os

import torch
from refutil import rand32

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE_KEYS = ("B", "S", "T", "D", "E")


def write_module_case(h5, module_name, case, gen):
    mod = importlib.import_module("fusion." + module_name)
    torch.manual_seed(case.get("seed", 0))
    net = mod.build(case).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.float().double())
    B, S, T, D, E = (case[k] for k in SIZE_KEYS)
    vector = getattr(mod, "KIND", "vector") == "vector"
    a = rand32(gen, *((B, D) if vector else (B, S, D)), scale=case.get("scale_a", 1.0)).double().requires_grad_()
    b = rand32(gen, *((B, E) if vector else (B, T, E)), scale=case.get("scale_b", 1.0)).double().requires_grad_()
    net.train(bool(case.get("training", 0)))
    masks = {k: case[k] for k in ("a_mask", "b_mask") if k in case}   # 0/1 lists, 1 = padding/missing
    if masks:
        out = net(a, b, **{k: torch.tensor(v, dtype=torch.bool) for k, v in masks.items()})
    else:
        out = net(a, b)
    dout = rand32(gen, *out.shape).double()
    out.backward(dout)
    g = h5.create_group(case["name"])
    g.attrs["method"] = module_name
    g.attrs["variant"] = case.get("variant", "default")
    for k, v in case.items():
        if k not in ("name", "variant", "a_mask", "b_mask") and isinstance(v, (int, float)):
            g.attrs[k] = float(v)
    g["a"], g["b"], g["out"], g["dout"] = a.detach().numpy(), b.detach().numpy(), out.detach().numpy(), dout.numpy()
    g["da"], g["db"] = a.grad.numpy(), b.grad.numpy()
    for k, v in masks.items():
        g[k] = torch.tensor(v, dtype=torch.float64).numpy()
    for name, p in net.named_parameters():
        g[f"param/{name}"] = p.detach().numpy()
        g[f"grad/{name}"] = (p.grad if p.grad is not None else torch.zeros_like(p)).numpy()
    if hasattr(mod, "extra"):  # method-specific datasets (e.g. the energy loss and its gradients)
        for k, v in mod.extra(case, g).items():
            g[k] = v


def _maker(name):
    def make(h5):
        gen = torch.Generator().manual_seed(3)
        for case in importlib.import_module("fusion." + name).CASES:
            write_module_case(h5, name, case, gen)
    return make


def outputs():
    names = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(HERE, "fusion", "*.py")))
    return [("fusion/" + n, _maker(n)) for n in names if not n.startswith("_")]
