"""000 §2.4/§5 gated interpolation: the gate of gated_add.py; out = (1 - g) * e_a + g * e_b.
Variant no_norm: e = input."""
from fusion.gated_add import build_gated

KIND = "vector"
CASES = [
    dict(name="small", B=5, S=1, T=1, D=7, E=7, perturb=1),
    dict(name="wide", B=16, S=1, T=1, D=64, E=64),
    dict(name="open_gate", B=5, S=1, T=1, D=7, E=7, gate_bias=0.0),
    dict(name="imbalance", B=5, S=1, T=1, D=7, E=7, scale_a=10.0, scale_b=0.25, perturb=1),
    dict(name="small_no_norm", variant="no_norm", B=5, S=1, T=1, D=7, E=7, perturb=1),
    dict(name="wide_no_norm", variant="no_norm", B=16, S=1, T=1, D=64, E=64),
    dict(name="imbalance_no_norm", variant="no_norm", B=5, S=1, T=1, D=7, E=7, scale_a=10.0, scale_b=0.25),
]


def build(case):
    return build_gated(case, interp=True)
