"""Output buffers that scoring reuses from one chunk to the next.

The default score runs the decoder at 2L sigma points per row, so each chunk of rows
makes a few intermediates of several MiB (1 024 rows x 16 points x 64 units in
float64 is 8 MiB). Allocated afresh for every chunk, such blocks go back and forth
between the C allocator and the kernel: each new one is faulted in page by page
(about 440 000 page faults for 300 000 rows), and the process's resident memory
grows with the number of rows scored when the allocator's heap is fragmented.
Written into buffers that live for one ``score_samples`` call, they are allocated
once, and the memory that scoring adds is bounded by the chunk size.
"""

import torch
from torch import nn
from torch.nn import functional as F

#: In-place versions of the activations that ``mlp.make_mlp`` builds: ``(layer, h)``.
_IN_PLACE = {
    nn.ReLU: lambda layer, h: torch.relu_(h),
    nn.Tanh: lambda layer, h: torch.tanh_(h),
    nn.Sigmoid: lambda layer, h: torch.sigmoid_(h),
    nn.ELU: lambda layer, h: F.elu_(h, alpha=layer.alpha),
}


class Workspace:
    """Buffers keyed by name, grown on demand, handed out as their first ``rows`` rows.

    One workspace serves one call that scores chunk after chunk (it is not shared
    between threads). A request with more rows, another width, dtype or device
    replaces the buffer.
    """

    def __init__(self):
        self._buffers = {}

    def take(self, key, rows, width, like):
        """A contiguous ``(rows, width)`` tensor of ``like``'s dtype and device, whose
        contents are undefined."""
        buf = self._buffers.get(key)
        if (buf is None or buf.shape[0] < rows or buf.shape[1] != width
                or buf.dtype != like.dtype or buf.device != like.device):
            buf = torch.empty((rows, width), dtype=like.dtype, device=like.device)
            self._buffers[key] = buf
        return buf[:rows]


def _plain(layer):
    """Whether ``layer`` computes what its class says: no hooks that ``mlp_into``, which
    calls the arithmetic itself, would skip."""
    return not (layer._forward_hooks or layer._forward_pre_hooks)


def is_plain_linear(layer):
    """Whether ``layer`` is an ``nn.Linear`` itself (not a subclass) without hooks."""
    return type(layer) is nn.Linear and _plain(layer)


def mlp_into(mlp, h, workspace, key="mlp"):
    """``mlp(h)`` for rows ``h`` (n, d), each linear layer of an ``nn.Sequential`` writing
    into a buffer of ``workspace`` and each activation applied in place on it; a layer of
    another kind (or a subclass, or one with hooks) runs as it is. Returns the output and
    whether it is a buffer of ``workspace`` (else ``mlp``'s own new tensor, or ``h``
    itself). Without autograd only (in-place activations); ``h`` is not written to."""
    owned = False
    for i, layer in enumerate(mlp):
        if is_plain_linear(layer):
            out = workspace.take((key, i), h.shape[0], layer.out_features, h)
            if layer.bias is None:
                h = torch.mm(h, layer.weight.T, out=out)
            else:
                h = torch.addmm(layer.bias, h, layer.weight.T, out=out)
            owned = True
        elif owned and type(layer) in _IN_PLACE and _plain(layer):
            h = _IN_PLACE[type(layer)](layer, h)
        else:
            h, owned = layer(h), False
    return h, owned
