"""Turn DiVAE's parameters into a fresh, untrained torch module."""

import torch

from ._nn.mlp import make_mlp
from ._nn.vae import Encoder, VAEModule
from .aligners import ALIGNERS
from .priors import PRIORS


def resolve_prior(prior):
    """A prior object from a shorthand string, or the object itself."""
    return PRIORS[prior]() if isinstance(prior, str) else prior


def resolve_aligner(aligner):
    """An aligner object from a shorthand string; ``None`` for the plain VAE."""
    if aligner is None or aligner == "none":
        return None
    return ALIGNERS[aligner]() if isinstance(aligner, str) else aligner


def build_module(
    *,
    n_features,
    n_latent,
    hidden_layer_sizes,
    activation,
    prior,
    aligner,
    likelihood,
    center,
    scale,
    density_dim,
    X_train,
    generator,
    decoder_std=None,
):
    """Build the VAE (float32, CPU). Call under a torch seed for reproducible weights."""
    encoder = Encoder(make_mlp(n_features, hidden_layer_sizes, 2 * n_latent, activation), n_latent)
    decoder = make_mlp(n_latent, hidden_layer_sizes[::-1], n_features, activation)
    prior_module = prior.build(n_latent=n_latent, n_features=n_features)
    aligner_module = (
        None
        if aligner is None
        else aligner.build(n_latent=n_latent, n_features=n_features, n_components=density_dim)
    )
    module = VAEModule(
        encoder,
        decoder,
        prior_module,
        aligner_module,
        likelihood,
        torch.tensor(center, dtype=torch.float32),
        torch.tensor(scale, dtype=torch.float32),
        decoder_std=decoder_std,
    )
    X_std = module.standardize(X_train.cpu().float())
    if hasattr(prior_module, "init_from_data"):
        prior_module.init_from_data(X_std, generator)
    if hasattr(aligner_module, "set_projection"):
        aligner_module.set_projection(X_std)
    return module
