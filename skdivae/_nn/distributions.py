"""Distribution constructors without argument validation.

torch validates distribution arguments and samples by default, which costs
more than the arithmetic for the small tensors of a VAE step; every value
passed here is produced by the model itself, so the checks are skipped.
"""

from torch.distributions import Bernoulli, Categorical, Independent, MixtureSameFamily, Normal


def diag_normal(loc, scale):
    """Diagonal Gaussian over the last dimension."""
    return Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)


def diag_normal_mixture(logits, loc, scale):
    """Mixture of diagonal Gaussians: ``logits`` (K,), ``loc`` and ``scale`` (K, L)."""
    return MixtureSameFamily(
        Categorical(logits=logits, validate_args=False),
        diag_normal(loc, scale),
        validate_args=False,
    )


def bernoulli(logits):
    """Independent Bernoulli over the last dimension (accepts grey levels in [0, 1])."""
    return Independent(Bernoulli(logits=logits, validate_args=False), 1, validate_args=False)
