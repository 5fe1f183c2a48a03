"""Optimizer references: torch.optim.AdamW, torch.optim.SGD, clip_grad_norm_, warm-up + cosine LR.

Every optimizer case runs the same small parameter set (tensors of 7, 33 and 64 values, flattened
in that order into one buffer of n = 104, as fb_layout would lay them out without padding) through
`steps` steps with given float32 gradients. The run is made twice from the same float32 values:
in float64 (the reference: `p_<t>`, `m_<t>`, `v_<t>` / `buf_<t>` after step t = 1..steps) and in
float32 (torch's own rounding: `p32_<t>`), so a test can say how far torch float32 itself is from
the exact result. Attributes hold the hyper-parameters.
"""
import math

import torch
from refutil import rand32

SIZES = (7, 33, 64)
STEPS = 5


def flat(tensors):
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def param_set(gen):
    """Float32 parameters and STEPS float32 gradients per tensor (per-tensor scales differ)."""
    params = [rand32(gen, n, scale=s) for n, s in zip(SIZES, (1.0, 0.5, 0.1))]
    grads = [[rand32(gen, n, scale=s) for n, s in zip(SIZES, (2.0, 0.3, 0.01))] for _ in range(STEPS)]
    return params, grads


def run(make_opt, params32, grads32, dtype, state_keys):
    """Runs the optimizer in `dtype`; returns per step the flat params and the flat state buffers."""
    ps = [p.to(dtype).clone().requires_grad_(True) for p in params32]
    opt = make_opt(ps)
    out = []
    for step_grads in grads32:
        for p, g in zip(ps, step_grads):
            p.grad = g.to(dtype).clone()
        opt.step()
        rec = {"p": flat(ps)}
        for key in state_keys:
            rec[key] = flat([opt.state[p][key] for p in ps])
        out.append(rec)
    return out


def write_optim_case(h5, name, attrs, make_opt, state_names, gen):
    """state_names: {torch state key: dataset prefix}."""
    g = h5.require_group(name)
    for k, v in {**attrs, "n": sum(SIZES), "steps": STEPS}.items():
        g.attrs[k] = float(v)
    params, grads = param_set(gen)
    g.create_dataset("p0", data=flat(params).double().numpy())
    g.create_dataset("grads", data=torch.stack([flat(gs) for gs in grads]).double().numpy())
    ref = run(make_opt, params, grads, torch.float64, list(state_names))
    f32 = run(make_opt, params, grads, torch.float32, [])
    for t in range(STEPS):
        g.create_dataset(f"p_{t + 1}", data=ref[t]["p"].numpy())
        g.create_dataset(f"p32_{t + 1}", data=f32[t]["p"].double().numpy())
        for key, prefix in state_names.items():
            g.create_dataset(f"{prefix}_{t + 1}", data=ref[t][key].numpy())


def write_clip_case(h5, name, max_norm, grad_scale, gen):
    g = h5.require_group(name)
    g.attrs["max_norm"] = float(max_norm)
    g.attrs["n"] = float(sum(SIZES))
    grads32 = [rand32(gen, n, scale=grad_scale) for n in SIZES]
    g.create_dataset("grads", data=flat(grads32).double().numpy())
    for dtype, suffix in ((torch.float64, ""), (torch.float32, "32")):
        ps = [torch.zeros(n, dtype=dtype, requires_grad=True) for n in SIZES]
        for p, gr in zip(ps, grads32):
            p.grad = gr.to(dtype).clone()
        total = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type=2)
        g.create_dataset("total_norm" + suffix, data=total.double().reshape(1).numpy())
        g.create_dataset("clipped" + suffix, data=flat([p.grad for p in ps]).double().numpy())


def cosine_with_warmup_lambda(warmup, total, lr, lr_min):
    """transformers.get_cosine_schedule_with_warmup(num_cycles=0.5)'s lambda (copied from
    transformers 4.x, which is not installed here), generalised to a floor lr_min as documented in
    kernels/optim.h: after the warm-up lr(step) = lr_min + (lr - lr_min) * f(step); with lr_min = 0 it
    is the original."""
    def f(step):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        progress = float(step - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(0.5) * 2.0 * progress)))

    if lr_min == 0:
        return f
    # The warm-up still starts from 0; the floor applies to the cosine part only.
    return lambda step: f(step) if step < warmup else (lr_min + (lr - lr_min) * f(step)) / lr


def write_schedule_case(h5, name, lr, lr_min, warmup, total):
    g = h5.require_group(name)
    for k, v in {"lr": lr, "lr_min": lr_min, "warmup": warmup, "total": total}.items():
        g.attrs[k] = float(v)
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup_lambda(warmup, total, lr, lr_min))
    lrs = []
    for _ in range(total + 1):   # lr of steps 0 .. total: read, then optimizer.step(); scheduler.step()
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    g.create_dataset("lr_at", data=torch.tensor(lrs, dtype=torch.float64).numpy())


def make(h5):
    gen = torch.Generator().manual_seed(17)
    adamw_state = {"exp_avg": "m", "exp_avg_sq": "v"}
    for name, (lr, b1, b2, eps, wd) in {
        "adamw_default": (1e-4, 0.9, 0.999, 1e-8, 0.01),   # 003's setting
        "adamw_large": (1e-2, 0.8, 0.99, 1e-6, 0.1),       # big steps: the update itself is visible
    }.items():
        write_optim_case(h5, name, {"lr": lr, "beta1": b1, "beta2": b2, "eps": eps, "weight_decay": wd},
                         lambda ps, lr=lr, b1=b1, b2=b2, eps=eps, wd=wd:
                             torch.optim.AdamW(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd),
                         adamw_state, gen)
    for name, (lr, mu, nesterov, wd) in {
        "sgd_momentum": (0.05, 0.9, False, 0.0),
        "sgd_nesterov_wd": (0.05, 0.9, True, 0.01),
        "sgd_momentum_wd": (0.1, 0.5, False, 0.1),
        "sgd_plain_wd": (0.1, 0.0, False, 0.1),
    }.items():
        write_optim_case(h5, name, {"lr": lr, "momentum": mu, "nesterov": int(nesterov), "weight_decay": wd},
                         lambda ps, lr=lr, mu=mu, nesterov=nesterov, wd=wd:
                             torch.optim.SGD(ps, lr=lr, momentum=mu, nesterov=nesterov, weight_decay=wd),
                         {"momentum_buffer": "buf"} if mu else {}, gen)
    write_clip_case(h5, "clip_active", 1.0, 1.0, gen)     # total 5.4: scaled down
    write_clip_case(h5, "clip_inactive", 10.0, 1.0, gen)  # total 6.0 < 10: unchanged
    write_schedule_case(h5, "schedule", 1e-4, 0.0, 10, 50)
    write_schedule_case(h5, "schedule_min", 1e-3, 1e-5, 7, 40)
    write_schedule_case(h5, "schedule_nowarmup", 1e-3, 0.0, 0, 20)
