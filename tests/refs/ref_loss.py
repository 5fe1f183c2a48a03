"""Losses: F.mse_loss, F.huber_loss, F.cross_entropy (mean reduction) and the 003 system's UniFrac
pairwise loss, written out literally:
    d_ij = sqrt(max(sum_d (e_id - e_jd)^2, 1e-8)),  pred_ij = tanh(d_ij / 10),
    L = mean over counted pairs i < j of (pred_ij - T_ij)^2
with the pair scope as a boolean mask (block k > 0: only pairs inside the same block of k rows).
Each loss is returned with shape (1,) so write_case draws a scalar `dout`, which the C test passes
as grad_scale. UniFrac cases also store `loss_lo`, the partial loss of rows [0, N/2) (pairs whose
first index is in those rows, divided by the full pair count)."""
import torch
import torch.nn.functional as F
from refutil import rand32, write_case


def unifrac_pred(e):
    diff = e[:, None, :] - e[None, :, :]
    sq = (diff * diff).sum(-1)
    return torch.tanh(sq.clamp_min(1e-8).sqrt() / 10)


def unifrac_mask(N, block):
    idx = torch.arange(N)
    mask = idx[:, None] < idx[None, :]
    if block:
        mask &= (idx[:, None] // block) == (idx[None, :] // block)
    return mask


def unifrac_loss(e, target, block):
    N = e.shape[0]
    mask = unifrac_mask(N, block)
    sq = (unifrac_pred(e) - target) ** 2
    P = mask.sum()
    lo = mask.clone()
    lo[N // 2:, :] = False
    return sq[mask].mean().reshape(1), (sq[lo].sum() / P).reshape(1)


def sym_target(gen, N):
    t = torch.rand(N, N, generator=gen, dtype=torch.float64)
    t = (t + t.T) / 2
    t.fill_diagonal_(0)
    return t.float()


def make(h5):
    gen = torch.Generator().manual_seed(11)
    for name, shape in {"mse_small": (7,), "mse_matrix": (33, 20), "mse_chunks": (5000,)}.items():
        n = 1
        for s in shape:
            n *= s
        write_case(h5, name, {"n": n}, {"pred": rand32(gen, *shape, scale=2.0), "target": rand32(gen, *shape)},
                   lambda pred, target: F.mse_loss(pred, target).reshape(1), ["pred"], gen)

    # scale 3: residuals on both sides of delta.
    for name, (n, delta) in {"huber_delta1": (300, 1.0), "huber_delta_half": (200, 0.5)}.items():
        write_case(h5, name, {"n": n, "delta": delta},
                   {"pred": rand32(gen, n, scale=2.0), "target": rand32(gen, n)},
                   lambda pred, target, delta=delta: F.huber_loss(pred, target, delta=delta).reshape(1),
                   ["pred"], gen)

    # name: (B, C, scale, offset); `shifted` overflows float32 exp without the max subtracted.
    for name, (B, C, scale, offset) in {"ce_small": (5, 7, 3.0, 0.0), "ce_wide": (32, 100, 4.0, 0.0),
                                        "ce_shifted": (4, 9, 5.0, 100.0), "ce_one_class": (3, 1, 1.0, 0.0)}.items():
        labels = torch.randint(0, C, (B,), generator=gen, dtype=torch.int32)
        write_case(h5, name, {"B": B, "C": C}, {"logits": rand32(gen, B, C, scale=scale) + offset, "labels": labels},
                   lambda logits, labels: F.cross_entropy(logits, labels.long()).reshape(1), ["logits"], gen)

    # name: (N, D, block, identical row pairs)
    D = 8
    cases = {"unifrac_n6_all": (6, 0, []), "unifrac_n6_block3": (6, 3, []), "unifrac_n6_block2": (6, 2, []),
             "unifrac_n16_all": (16, 0, []), "unifrac_n16_block8": (16, 8, []), "unifrac_n16_block4": (16, 4, []),
             "unifrac_n6_tied": (6, 0, [(1, 4)]),
             # rows 4 and 6 tied inside one block of 4, rows 0 and 9 tied across blocks (masked)
             "unifrac_n16_tied_block4": (16, 4, [(4, 6), (0, 9)])}
    for name, (N, block, ties) in cases.items():
        e = rand32(gen, N, D, scale=2.0)
        for a, b in ties:
            e[b] = e[a]
        write_case(h5, name, {"N": N, "D": D, "block": block}, {"e": e, "target": sym_target(gen, N)},
                   lambda e, target, block=block: unifrac_loss(e, target, block), ["e"], gen,
                   extra_outputs=("loss_lo",))
