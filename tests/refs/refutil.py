"""Shared helpers for the PyTorch reference fixtures (see make_refs.py).

Every case is one HDF5 group holding:
  - integer/float attributes for the sizes and options of the case;
  - each input X (float32 values, stored as float64 so C reads them exactly);
  - `out` (and any extra outputs), computed by PyTorch in float64 from those float32 inputs;
  - `dout`, a random float32 upstream gradient, and `dX` for every input that takes a gradient,
    again computed in float64.
"""
import numpy as np
import torch


def rand32(gen, *shape, scale=1.0):
    """Uniform float32 values in [-scale, scale] from a seeded generator."""
    return ((torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1) * scale).float()


def write_case(h5, name, attrs, inputs, fn, grad_names, gen, extra_outputs=()):
    """Runs fn(**inputs in float64) -> out (or (out, extras...)), backprops a random dout, writes all."""
    g = h5.require_group(name)
    for k, v in attrs.items():
        g.attrs[k] = float(v)
    leaves = {}
    for k, v in inputs.items():
        if torch.is_tensor(v) and v.is_floating_point():
            leaves[k] = v.double().detach().requires_grad_(k in grad_names)
            g.create_dataset(k, data=v.double().numpy())
        else:
            leaves[k] = v
            if torch.is_tensor(v):
                g.create_dataset(k, data=v.numpy())
    result = fn(**leaves)
    outs = result if isinstance(result, tuple) else (result,)
    out = outs[0]
    g.create_dataset("out", data=out.detach().numpy())
    for extra_name, extra in zip(extra_outputs, outs[1:]):
        g.create_dataset(extra_name, data=extra.detach().double().numpy())
    dout = rand32(gen, *out.shape).double()
    g.create_dataset("dout", data=dout.numpy())
    if grad_names:
        out.backward(dout)
        for k in grad_names:
            grad = leaves[k].grad
            g.create_dataset("d" + k, data=(grad if grad is not None else torch.zeros_like(leaves[k])).numpy())
    return g
