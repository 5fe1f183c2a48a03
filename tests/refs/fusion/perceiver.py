"""003 perceiver (FUS-3, PerceiverFusion), latent dim = D, output (B, D).
document: X = input_proj(cat([a, b], 1)) (E = D); lat = cross_norm(Q + cross_attn(Q, X, X)) with
  Q = latents (L, D) ~ randn broadcast; `layers` post-norm ReLU encoder layers (FFN F); mean over latents.
shipped (the project): X = cat([seq_proj(a), cat_proj(b.flatten(1)).unsqueeze(1)], 1) (one metadata
  token); latents ~ 0.02 randn; `layers` pre-norm GELU encoder layers; output_proj(mean over latents).
perturb=1 re-draws biases and LayerNorm affines (0 / 1 by default) so every parameter is exercised.
latents_std re-draws the latents with that std: at the shipped 0.02 the latents are nearly equal, the
self-attention inside the layers is nearly uniform and its q/k gradients are cancellation noise
(float32 vs float64 then differ by ~1e-4 relative for a reason that is no error of the method).
Finite differences: the document's layers use ReLU, so each document case has an fd_h (and a seed)
at which no sampled perturbation crosses a kink (checked in float64 with the C test's sampling: the
float64 FD error is then < 1e-5 everywhere). The output is a mean over latents of attention over all
S + K tokens, so the gradients of single inputs and of the cross-attention's q/k parameters are small
next to the loss, and float32 forward rounding / 2h is ~1e-2 of them at the wide case's small h:
fd_tol is raised there (the PyTorch comparison is the tight check, ~1e-6).
The cross-attention's k_proj_bias (and each self-attention's) only shifts every score of a query
equally: its gradient is exactly 0, stored as such (float64 noise would make the relative test
meaningless)."""
import torch

from fusion._blocks import MHA, EncoderLayer

KIND = "sequence"
CASES = [
    dict(name="doc_small", variant="document", B=3, S=5, T=2, D=8, E=8, H=2, L=4, layers=1, F=12,
         tol=1e-4, perturb=1, fd_h=3e-3),
    dict(name="doc_two_layers", seed=5, variant="document", B=2, S=7, T=3, D=16, E=16, H=4, L=3, layers=2, F=24,
         tol=1e-4, perturb=1, fd_h=3e-3, fd_tol=1e-2),
    dict(name="doc_one_token_train_nodrop", variant="document", B=3, S=4, T=1, D=8, E=8, H=2, L=5, layers=1,
         F=16, tol=1e-4, training=1, dropout=0.0, fd_h=3e-3),
    dict(name="doc_wide", seed=4, variant="document", B=4, S=16, T=3, D=32, E=32, H=8, L=4, layers=2, F=48,
         tol=1e-4, perturb=1, fd_h=1e-3, fd_tol=2e-2),
    dict(name="shipped_small", variant="shipped", B=3, S=5, T=2, D=8, E=4, H=2, L=4, layers=1, F=16,
         tol=1e-4, perturb=1, latents_std=1.0, fd_h=1e-2),
    dict(name="shipped_two_layers", variant="shipped", B=2, S=6, T=3, D=12, E=5, H=3, L=3, layers=2, F=20,
         tol=1e-4, perturb=1, latents_std=1.0, fd_h=1e-2),
    dict(name="shipped_wide", variant="shipped", B=4, S=16, T=3, D=32, E=16, H=8, L=4, layers=2, F=64,
         tol=1e-4, perturb=1, latents_std=1.0, fd_h=1e-2),
]


class PerceiverDocument(torch.nn.Module):
    def __init__(self, D, L, layers, H, F_, dropout):
        super().__init__()
        self.latents = torch.nn.Parameter(torch.randn(L, D))
        self.input_proj = torch.nn.Linear(D, D)
        self.cross_attn = MHA(D, H, dropout=dropout)
        self.cross_norm = torch.nn.LayerNorm(D)
        self.self_attn_layers = torch.nn.ModuleList(EncoderLayer(D, H, F_, "relu", dropout) for _ in range(layers))

    def forward(self, a, b):
        x = self.input_proj(torch.cat([a, b], dim=1))
        lat = self.latents.unsqueeze(0).expand(a.shape[0], -1, -1)
        lat = self.cross_norm(lat + self.cross_attn(lat, x, x)[0])
        for layer in self.self_attn_layers:
            lat = layer(lat)
        return lat.mean(dim=1)


class PerceiverShipped(torch.nn.Module):
    def __init__(self, D, C, L, layers, H, F_, dropout):
        super().__init__()
        self.latents = torch.nn.Parameter(0.02 * torch.randn(L, D))
        self.seq_proj = torch.nn.Linear(D, D)
        self.cat_proj = torch.nn.Linear(C, D)
        self.cross_attn = MHA(D, H, dropout=dropout)
        self.cross_norm = torch.nn.LayerNorm(D)
        self.self_attn_layers = torch.nn.ModuleList(
            EncoderLayer(D, H, F_, "gelu", dropout, norm_first=True) for _ in range(layers))
        self.output_proj = torch.nn.Linear(D, D)

    def forward(self, a, b):
        x = torch.cat([self.seq_proj(a), self.cat_proj(b.flatten(1)).unsqueeze(1)], dim=1)
        lat = self.latents.unsqueeze(0).expand(a.shape[0], -1, -1)
        lat = self.cross_norm(lat + self.cross_attn(lat, x, x)[0])
        for layer in self.self_attn_layers:
            lat = layer(lat)
        return self.output_proj(lat.mean(dim=1))


def build(case):
    D, dropout = case["D"], case.get("dropout", 0.0)
    if case.get("variant", "document") == "document":
        net = PerceiverDocument(D, case["L"], case["layers"], case["H"], case["F"], dropout)
    else:
        net = PerceiverShipped(D, case["T"] * case["E"], case["L"], case["layers"], case["H"], case["F"], dropout)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if case.get("perturb") and ("bias" in name or "norm" in name):
                p.add_(0.3 * torch.randn_like(p))
        if case.get("latents_std"):
            net.latents.normal_(0.0, case["latents_std"])
    for name, p in net.named_parameters():
        if name.endswith("k_proj_bias"):
            p.register_hook(torch.zeros_like)
    return net
