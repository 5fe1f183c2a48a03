"""PyTorch building blocks whose parameter names match the C kernel core's layout names.

torch.nn.MultiheadAttention stores a fused in_proj_weight when kdim = vdim = D; our kernels keep
q/k/v projections separate. MHA below computes with torch's own F.multi_head_attention_forward
(use_separate_proj_weight=True), so it is torch's maths under our names; EncoderLayer mirrors
torch.nn.TransformerEncoderLayer line by line (checked against it in check_blocks()).
"""
import torch
import torch.nn.functional as F
from torch import nn


class MHA(nn.Module):
    """nn.MultiheadAttention(D, H, dropout, kdim=Ek, vdim=Ev, batch_first=True), split in-projection."""

    def __init__(self, D, H, Ek=None, Ev=None, dropout=0.0):
        super().__init__()
        Ek, Ev = Ek or D, Ev or D
        self.D, self.H, self.dropout = D, H, dropout
        self.q_proj_weight = nn.Parameter(torch.empty(D, D))
        self.k_proj_weight = nn.Parameter(torch.empty(D, Ek))
        self.v_proj_weight = nn.Parameter(torch.empty(D, Ev))
        self.q_proj_bias = nn.Parameter(torch.zeros(D))
        self.k_proj_bias = nn.Parameter(torch.zeros(D))
        self.v_proj_bias = nn.Parameter(torch.zeros(D))
        self.out_proj = nn.Linear(D, D)
        for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
            nn.init.xavier_uniform_(w)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=False):
        q, k, v = (x.transpose(0, 1) for x in (query, key, value))  # batch_first -> (L, B, E)
        out, weights = F.multi_head_attention_forward(
            q, k, v, self.D, self.H, None,
            torch.cat([self.q_proj_bias, self.k_proj_bias, self.v_proj_bias]),
            None, None, False, self.dropout, self.out_proj.weight, self.out_proj.bias,
            training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights,
            use_separate_proj_weight=True, q_proj_weight=self.q_proj_weight,
            k_proj_weight=self.k_proj_weight, v_proj_weight=self.v_proj_weight,
            average_attn_weights=True)
        return out.transpose(0, 1), weights


class FFN(nn.Module):
    """linear2(dropout(act(linear1(x)))) with torch's names."""

    def __init__(self, D, F_, activation="relu", dropout=0.0):
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(D, F_), nn.Linear(F_, D)
        self.dropout = nn.Dropout(dropout)
        self.act = F.gelu if activation == "gelu" else F.relu

    def forward(self, x):
        return self.linear2(self.dropout(self.act(self.linear1(x))))


class EncoderLayer(nn.Module):
    """nn.TransformerEncoderLayer(D, H, F, dropout, activation, batch_first=True, norm_first)."""

    def __init__(self, D, H, F_, activation="relu", dropout=0.0, norm_first=False, eps=1e-5):
        super().__init__()
        self.self_attn = MHA(D, H, dropout=dropout)
        self.linear1, self.linear2 = nn.Linear(D, F_), nn.Linear(F_, D)
        self.norm1, self.norm2 = nn.LayerNorm(D, eps=eps), nn.LayerNorm(D, eps=eps)
        self.dropout, self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)
        self.act = F.gelu if activation == "gelu" else F.relu
        self.norm_first = norm_first

    def _sa(self, x, mask):
        return self.dropout1(self.self_attn(x, x, x, key_padding_mask=mask)[0])

    def _ff(self, x):
        return self.dropout2(self.linear2(self.dropout(self.act(self.linear1(x)))))

    def forward(self, x, src_key_padding_mask=None):
        if self.norm_first:
            x = x + self._sa(self.norm1(x), src_key_padding_mask)
            return x + self._ff(self.norm2(x))
        x = self.norm1(x + self._sa(x, src_key_padding_mask))
        return self.norm2(x + self._ff(x))


def check_blocks():
    """Our-named blocks equal torch's own modules (run: python3 -c 'import fusion._blocks as b; b.check_blocks()')."""
    torch.manual_seed(0)
    D, H, F_ = 16, 4, 32
    for norm_first in (False, True):
        ref = nn.TransformerEncoderLayer(D, H, F_, 0.0, "gelu", batch_first=True, norm_first=norm_first).double().eval()
        ours = EncoderLayer(D, H, F_, "gelu", 0.0, norm_first).double().eval()
        with torch.no_grad():
            w = ref.self_attn.in_proj_weight
            bias = ref.self_attn.in_proj_bias
            ours.self_attn.q_proj_weight.copy_(w[:D]); ours.self_attn.k_proj_weight.copy_(w[D:2 * D]); ours.self_attn.v_proj_weight.copy_(w[2 * D:])
            ours.self_attn.q_proj_bias.copy_(bias[:D]); ours.self_attn.k_proj_bias.copy_(bias[D:2 * D]); ours.self_attn.v_proj_bias.copy_(bias[2 * D:])
            ours.self_attn.out_proj.load_state_dict(ref.self_attn.out_proj.state_dict())
            for n in ("linear1", "linear2", "norm1", "norm2"):
                getattr(ours, n).load_state_dict(getattr(ref, n).state_dict())
        x = torch.randn(3, 5, D, dtype=torch.float64)
        mask = torch.zeros(3, 5, dtype=torch.bool); mask[1, 3:] = True
        diff = (ref(x, src_key_padding_mask=mask) - ours(x, src_key_padding_mask=mask)).abs().max().item()
        assert diff < 1e-12, diff
    print("blocks match torch.nn.TransformerEncoderLayer")
