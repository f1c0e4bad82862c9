"""Alignment of the log-prior with the density teacher rho."""

import torch
from torch import nn

#: Smallest standard error used in the precision weights ``1 / max(err, 1e-3)``.
MIN_ERR = 1e-3


def alignment_penalty(pred, target, err, delta=1.0):
    """``sqrt(mean_i w_i Huber_delta(pred_i - target_i))`` with ``w_i = 1 / max(err_i, 1e-3)``.

    The small constant inside the square root keeps the gradient finite at
    perfect agreement.
    """
    weight = 1.0 / err.clamp_min(MIN_ERR)
    huber = nn.functional.huber_loss(pred, target, reduction="none", delta=delta)
    return torch.sqrt((weight * huber).mean() + 1e-12)


class Direct(nn.Module):
    """Direct aligner: the aligned log-density is ``log p_Z(z)`` itself."""

    def __init__(self, delta=1.0):
        super().__init__()
        self.delta = delta

    def predict_log_density(self, z, prior_dist, extra=None):
        return prior_dist.log_prob(z)

    def penalty(self, pred, target, err):
        return alignment_penalty(pred, target, err, self.delta)
