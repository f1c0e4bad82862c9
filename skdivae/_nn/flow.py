"""A small RealNVP flow: stacked affine coupling layers."""

import torch
from torch import nn


class AffineCoupling(nn.Module):
    """Split ``x = [a, b]`` after ``n_cond`` dims; return ``[b * exp(s(a)) + t(a), a]``.

    Putting the moved half first makes the next layer condition on it, so
    consecutive layers alternate halves with plain slicing (views, no
    gathers). The conditioner is a one-hidden-layer tanh network and ``s`` is
    bounded to (-1, 1) per layer by a tanh; the last layer starts at
    zero, so the layer starts as a swap of halves. With ``n_cond = 0``
    (one-dimensional data) the layer is a learned affine map.
    """

    def __init__(self, n_dims, n_cond, hidden_units):
        super().__init__()
        self.n_cond = n_cond
        self.net = nn.Sequential(
            nn.Linear(max(n_cond, 1), hidden_units),
            nn.Tanh(),
            nn.Linear(hidden_units, 2 * (n_dims - n_cond)),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.net[-1].zero_init = True  # kept at zero when weights are drawn again

    def _scale_shift(self, a):
        if self.n_cond == 0:
            a = torch.ones(a.shape[:-1] + (1,), dtype=a.dtype, device=a.device)
        raw_s, t = self.net(a).chunk(2, dim=-1)
        return torch.tanh(raw_s), t

    def forward(self, x):
        a, b = x[..., : self.n_cond], x[..., self.n_cond :]
        s, t = self._scale_shift(a)
        return torch.cat([b * torch.exp(s) + t, a], dim=-1), s.sum(-1)

    def inverse(self, y):
        n_free = y.shape[-1] - self.n_cond
        b_moved, a = y[..., :n_free], y[..., n_free:]
        s, t = self._scale_shift(a)
        return torch.cat([a, (b_moved - t) * torch.exp(-s)], dim=-1)


class CouplingFlow(nn.Module):
    """``n_layers`` affine couplings; ``forward(u) -> (z, log|det dz/du|)``, ``inverse(z) -> u``."""

    def __init__(self, n_dims, n_layers, hidden_units):
        super().__init__()
        layers, n_cond = [], n_dims // 2
        for _ in range(n_layers):
            layers.append(AffineCoupling(n_dims, n_cond, hidden_units))
            n_cond = n_dims - n_cond if n_dims > 1 else 0
        self.layers = nn.ModuleList(layers)

    def forward(self, u):
        log_det = torch.zeros(u.shape[:-1], dtype=u.dtype, device=u.device)
        for layer in self.layers:
            u, ld = layer(u)
            log_det = log_det + ld
        return u, log_det

    def inverse(self, z):
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z
