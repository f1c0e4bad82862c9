"""Small helpers that keep torch out of the estimator code."""

from contextlib import contextmanager

import numpy as np
import torch
from sklearn.utils import gen_batches


def resolve_device(device):
    """Map ``"cpu" | "cuda" | "auto"`` to a :class:`torch.device`, with a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but torch sees no CUDA device; use 'cpu'.")
    return torch.device(device)


@contextmanager
def torch_seed(seed, device=None):
    """Seed torch inside the block only; the global RNG states (CPU, and the CUDA
    device in use) are restored after."""
    device = None if device is None else torch.device(device)
    cuda = [] if device is None or device.type != "cuda" else [device.index or 0]
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def as_tensor(X, dtype=torch.float32, device="cpu"):
    """Copy a numpy array into a tensor (copying also handles read-only memmaps)."""
    return torch.tensor(np.asarray(X), dtype=dtype, device=device)


def batched_no_grad(fn, X, batch_size=4096):
    """Apply ``fn`` to float64 tensors of ``X`` in chunks; concatenate float64 numpy output."""
    outputs = []
    with torch.no_grad():
        for batch in gen_batches(X.shape[0], batch_size):
            outputs.append(fn(as_tensor(X[batch], dtype=torch.float64)).numpy())
    return np.concatenate(outputs, axis=0)
