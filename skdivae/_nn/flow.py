"""A small RealNVP flow: stacked affine coupling layers."""

import torch
from torch import nn
from torch.autograd.function import once_differentiable


def _coupling_forward(x, n_cond, w1, b1, w2, b2):
    """One coupling layer on ``x`` with its conditioner's weights; returns ``y``, ``s``
    and what the backward pass needs."""
    a, b = x[:, :n_cond], x[:, n_cond:]
    cond = a if n_cond else x.new_ones((x.shape[0], 1))
    h = torch.addmm(b1, cond, w1.T).tanh_()
    out = torch.addmm(b2, h, w2.T)
    n_free = x.shape[1] - n_cond
    s, t = out[:, :n_free].tanh(), out[:, n_free:]
    exp_s = s.exp()
    y = torch.cat([torch.addcmul(t, b, exp_s), a], dim=1)
    return y, s, (cond, b, h, s, exp_s)


def _coupling_backward(grad_y, grad_log_det, n_cond, w1, w2, saved, input_grad=True):
    """Gradients of one coupling layer: with respect to its input (``None`` unless
    ``input_grad``) and to ``w1, b1, w2, b2``, from those of its output ``y`` and of its
    log-determinant."""
    cond, b, h, s, exp_s = saved
    n_free = b.shape[1]
    grad_moved, grad_a = grad_y[:, :n_free], grad_y[:, n_free:]
    grad_s = torch.addcmul(grad_log_det.unsqueeze(1), grad_moved, b * exp_s)
    grad_out = torch.cat([grad_s * (1.0 - s * s), grad_moved], dim=1)
    grad_pre = (grad_out @ w2).mul_(1.0 - h * h)
    grads = (grad_pre.T @ cond, grad_pre.sum(0), grad_out.T @ h, grad_out.sum(0))
    if not input_grad:
        return None, grads
    grad_b = grad_moved * exp_s
    if not n_cond:
        return grad_b, grads
    return torch.cat([grad_a + grad_pre @ w1, grad_b], dim=1), grads


class _FlowFunction(torch.autograd.Function):
    """The coupling flow on rows ``u`` (n, D) as one autograd node: ``(z, log|det|)``.

    Layer by layer, autograd records every operation of every layer and runs a graph
    node for each in the backward pass; on tensors of a few thousand numbers that
    per-operation overhead, not the arithmetic, is what a flow step costs. The
    hand-written backward runs the same arithmetic without a graph, and skips the
    gradient with respect to ``u`` when it is not needed (training). ``tests/
    test_flow_aligner.py`` checks it against autograd and finite differences.
    """

    @staticmethod
    def forward(ctx, u, n_conds, *weights):
        x, log_det, saved = u, None, []
        for i, n_cond in enumerate(n_conds):
            x, s, keep = _coupling_forward(x, n_cond, *weights[4 * i : 4 * i + 4])
            layer_log_det = s.sum(1)
            log_det = layer_log_det if log_det is None else log_det + layer_log_det
            saved.append(keep)
        ctx.n_conds = n_conds
        ctx.save_for_backward(*weights, *(t for keep in saved for t in keep))
        return x, log_det

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_z, grad_log_det):
        tensors = ctx.saved_tensors  # undefined output gradients arrive as zeros
        n_weights = 4 * len(ctx.n_conds)
        weights, kept = tensors[:n_weights], tensors[n_weights:]
        grad_x = grad_z
        grads = [None] * len(weights)
        for i in reversed(range(len(ctx.n_conds))):
            w1, _, w2, _ = weights[4 * i : 4 * i + 4]
            grad_x, layer_grads = _coupling_backward(
                grad_x, grad_log_det, ctx.n_conds[i], w1, w2, kept[5 * i : 5 * i + 5],
                input_grad=i > 0 or ctx.needs_input_grad[0],
            )
            grads[4 * i : 4 * i + 4] = layer_grads
        return (grad_x, None, *grads)


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
        """``(z, log|det dz/du|)`` for rows ``u`` of shape (n, D), by :class:`_FlowFunction`
        (one autograd node); other shapes go layer by layer."""
        if u.dim() != 2 or not self.layers:
            return self.layer_by_layer(u)
        weights = [w for layer in self.layers for w in (
            layer.net[0].weight, layer.net[0].bias, layer.net[2].weight, layer.net[2].bias)]
        n_conds = tuple(layer.n_cond for layer in self.layers)
        return _FlowFunction.apply(u, n_conds, *weights)

    def layer_by_layer(self, u):
        """The same as ``forward``, each layer's operations recorded by autograd."""
        log_det = torch.zeros(u.shape[:-1], dtype=u.dtype, device=u.device)
        for layer in self.layers:
            u, ld = layer(u)
            log_det = log_det + ld
        return u, log_det

    def inverse(self, z):
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z
