"""002 modality dropout: in training a is zeroed with probability p_a and b with p_b, then
fc2(ReLU(fc1([a; b]))), fc1: D + E -> F, fc2: F -> D (F = case F or D). Variant batch (the
document's torch.rand(1)): one draw per modality for the whole batch; per_sample: one draw per sample. Kept inputs are not
rescaled. Our RNG is not torch's, so training cases use p = 0 or 1 only (deterministic).
ReLU kinks: the C test's finite differences move a pre-activation by at most fd_h; fd_h = 3e-3
(in every case) and the parameter seeds of eval_wide, per_sample_drop_b, hidden_F were chosen so that no
sampled perturbation crosses a kink (checked in float64 with the test's sampling of coordinates)."""
import torch

KIND = "vector"
_S = dict(S=1, T=1, D=7, E=5, B=5, fd_h=3e-3)
CASES = [
    dict(name="eval_small", variant="batch", training=0, **_S),
    dict(name="eval_wide", variant="batch", training=0, B=16, S=1, T=1, D=64, E=64, seed=5, fd_h=3e-3),
    dict(name="drop_a", variant="batch", training=1, p_a=1.0, p_b=0.0, **_S),
    dict(name="drop_b", variant="batch", training=1, p_a=0.0, p_b=1.0, **_S),
    dict(name="drop_both", variant="batch", training=1, p_a=1.0, p_b=1.0, **_S),
    dict(name="keep_both", variant="batch", training=1, p_a=0.0, p_b=0.0, B=16, S=1, T=1, D=64, E=40, fd_h=3e-3),
    dict(name="per_sample_eval", variant="per_sample", training=0, **_S),
    dict(name="per_sample_drop_a", variant="per_sample", training=1, p_a=1.0, p_b=0.0, **_S),
    dict(name="per_sample_drop_b", variant="per_sample", training=1, p_a=0.0, p_b=1.0, B=16, S=1, T=1, D=64, E=40, seed=24, fd_h=3e-3),
    dict(name="hidden_F", variant="batch", training=0, B=5, S=1, T=1, D=7, E=5, F=11, seed=1, fd_h=3e-3),
]


class ModalityDropout(torch.nn.Module):
    def __init__(self, D, E, F, p_a, p_b, per_sample):
        super().__init__()
        self.p_a, self.p_b, self.per_sample = p_a, p_b, per_sample
        self.fc1 = torch.nn.Linear(D + E, F)
        self.fc2 = torch.nn.Linear(F, D)

    def _drop(self, x, p):
        if not self.training:
            return x
        # where (not x * 0): a dropped modality's NaN does not reach out, and its gradient is 0
        drop = torch.rand(x.shape[0], 1) < p if self.per_sample else torch.rand(1) < p
        return torch.where(drop, torch.zeros_like(x), x)

    def forward(self, a, b):
        a, b = self._drop(a, self.p_a), self._drop(b, self.p_b)
        return self.fc2(torch.relu(self.fc1(torch.cat([a, b], dim=-1))))


def build(case):
    return ModalityDropout(case["D"], case["E"], case.get("F", 0) or case["D"], case.get("p_a", 0.3),
                           case.get("p_b", 0.3), case.get("variant", "batch") == "per_sample")
