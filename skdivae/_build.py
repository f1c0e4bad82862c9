"""Turn DiVAE's parameters into a fresh, untrained torch module."""

import inspect
import math
from numbers import Integral

import numpy as np
import torch
from torch import nn

from ._nn.contracts import GLOBAL_RNG_LOCK, AlignerModule, PriorModule
from ._nn.mlp import make_mlp
from ._nn.aligners import Direct, FlowCorrected
from ._nn.priors import GaussianMixture, StandardNormal, Vamp
from ._nn.vae import Encoder, VAEModule
from .aligners import ALIGNERS, DirectAligner
from ._torch_utils import MAX_ROW_NUMBERS, elbo_row_numbers
from .priors import PRIORS, prior_name

#: The largest latent size (``n_components``): the ELBO's 2L sigma points make one scored
#: row cost at least 4 L^2 numbers (``_torch_utils.chunk_rows`` can go down to one row, not
#: below), about 130 MB at 2048 (more with a mixture prior whose KL takes draws:
#: ``MAX_ROW_NUMBERS``).
MAX_LATENT = 2048


def layer_sizes(value):
    """``hidden_layer_sizes`` as a tuple of positive ints, or a ``ValueError`` naming it."""
    items = [value] if np.ndim(value) == 0 else list(value) if np.ndim(value) == 1 else None
    if items is None or not all(
        isinstance(h, Integral) and not isinstance(h, bool) and h >= 1 for h in items
    ):
        raise ValueError(
            "hidden_layer_sizes must be a positive int or a flat sequence of positive ints, "
            f"got {value!r}."
        )
    return tuple(int(h) for h in items)


def resolve_prior(prior, n_latent):
    """A prior object from a shorthand string (``"auto"`` resolved for a latent space of
    ``n_latent`` dimensions), or the object itself."""
    _instance("prior", prior)
    return PRIORS[prior_name(prior, n_latent)]() if isinstance(prior, str) else prior


def resolve_aligner(aligner):
    """An aligner object from a shorthand string; ``None`` for the plain VAE."""
    if aligner is None or aligner == "none":
        return None
    _instance("aligner", aligner)
    return ALIGNERS[aligner]() if isinstance(aligner, str) else aligner


def _instance(name, value):
    """A class passed where an object goes (``prior=GaussianMixturePrior``) has the methods
    the constraints ask for, but its ``build`` would fail on ``self``: say so."""
    if isinstance(value, type):
        raise TypeError(f"{name}={value.__name__} is a class; pass an instance, "
                        f"{name}={value.__name__}().")


def _built(kind, owner, module, contract):
    """The module a prior's or aligner's ``build`` returned, if it honours the contract."""
    if not isinstance(module, contract):
        raise TypeError(
            f"{type(owner).__name__}.build returned {type(module).__name__}; a {kind}'s build "
            f"must return a skdivae.{kind}s.{contract.__name__} (the contract in "
            f"skdivae.{kind}s)."
        )
    return module


@torch.no_grad()
def reset_linear_layers(module, generator):
    """Draw the initial weights of ``module``'s linear layers from ``generator``, as torch
    initialises them (weights and biases uniform in +-1/sqrt(fan_in)), or zero where a
    layer is marked ``zero_init``."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = 0.0 if getattr(m, "zero_init", False) else 1.0 / math.sqrt(m.in_features)
            m.weight.uniform_(-bound, bound, generator=generator)
            m.bias.uniform_(-bound, bound, generator=generator)


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
    data_standardized=False,
):
    """Build the VAE (float32, CPU) with every random initial value drawn from
    ``generator``, so concurrent builds in several threads give the same weights
    as serial ones. torch's layers draw from the global RNG while being built;
    that happens under a lock with the global state saved and restored."""
    with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
        # torch's layers draw their first weights from the global RNG while being
        # built; those draws are replaced below and the global state restored.
        encoder = Encoder(
            make_mlp(n_features, hidden_layer_sizes, 2 * n_latent, activation), n_latent
        )
        decoder = make_mlp(n_latent, hidden_layer_sizes[::-1], n_features, activation)
        prior_module = _built("prior", prior, prior.build(n_latent=n_latent, n_features=n_features),
                              PriorModule)
        if aligner is None:
            aligner_module = None
        elif isinstance(aligner, DirectAligner) and "fixed_normal_prior" in \
                inspect.signature(aligner.build).parameters:  # its "auto" options read the prior
            aligner_module = aligner.build(
                n_latent=n_latent, n_features=n_features, density_dim=density_dim,
                fixed_normal_prior=isinstance(prior_module, StandardNormal),
            )
        else:  # the aligner contract: build(*, n_latent, n_features, density_dim)
            aligner_module = aligner.build(
                n_latent=n_latent, n_features=n_features, density_dim=density_dim
            )
    if aligner_module is not None:
        _built("aligner", aligner, aligner_module, AlignerModule)
        if not getattr(aligner_module, "moves_codes", True) and prior_module.joint_inputs() is not None:
            raise ValueError(
                f"{aligner!r} keeps the penalty off the encoder (move_codes=False), but the "
                f"prior {prior!r} is computed by the encoder (its components are the codes of "
                "its pseudo-inputs), so the penalty would train the encoder through it. Use "
                "move_codes=True with this prior, or a prior with parameters of its own "
                "(prior='gmm')."
            )
    reset_linear_layers(encoder, generator)
    reset_linear_layers(decoder, generator)
    for part in (prior_module, aligner_module):
        if part is not None:
            reset_linear_layers(part, generator)
            part.init_random(generator)
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
    if X_train is None:  # a skeleton for stored weights: nothing to start from data
        return module
    X_std = X_train.cpu().float()
    if not data_standardized:
        X_std = module.standardize(X_std)
    prior_module.init_from_data(X_std, generator)
    if aligner_module is not None:
        aligner_module.init_from_data(X_std, generator)
    return module


def build_network(est, *, n_features, density_dim, X_train, generator, center=None,
                  scale=None, data_standardized=False):
    """The untrained network of a DiVAE with ``est``'s parameters: the one builder that
    ``fit`` and ``load`` share.

    ``density_dim`` is the dimension of the teacher's space (what the flow aligner's
    projection keeps); ``center`` / ``scale`` default to the identity; ``X_train`` is
    ``None`` for a skeleton that stored weights will fill (see :func:`build_module`).
    """
    module = build_module(
        n_features=n_features,
        n_latent=int(est.n_components),
        hidden_layer_sizes=layer_sizes(est.hidden_layer_sizes),
        activation=est.activation,
        prior=resolve_prior(est.prior, int(est.n_components)),
        aligner=resolve_aligner(est.aligner),
        likelihood=est.likelihood,
        center=np.zeros(n_features) if center is None else center,
        scale=np.ones(n_features) if scale is None else scale,
        density_dim=density_dim,
        X_train=X_train,
        generator=generator,
        decoder_std=est.decoder_std,
        data_standardized=data_standardized,
    )
    if elbo_row_numbers(module) > MAX_ROW_NUMBERS:
        raise ValueError(
            f"this network needs about {elbo_row_numbers(module):.3g} numbers to score one "
            f"row with the ELBO (2 * n_components sigma points through its widest "
            f"intermediate; a mixture prior's, where its KL takes draws, is its components "
            f"times n_components), more "
            f"than DiVAE's largest, {MAX_ROW_NUMBERS:.3g}: lower n_components, the prior's "
            "components or hidden_layer_sizes."
        )
    return module


def network_skeleton(est, *, n_features, density_dim):
    """The network that ``est``'s parameters describe, laid out on torch's ``meta`` device
    (nothing is allocated): what stored or trained weights must fit."""
    with torch.device("meta"):
        return build_network(est, n_features=n_features, density_dim=density_dim,
                             X_train=None, generator=torch.Generator())


def tensor_shapes(state):
    """``{name: shape}`` of a state dict."""
    return {name: tuple(t.shape) for name, t in state.items()}


def network_matches(est):
    """Whether a fitted ``est.module_`` is the network that ``est``'s parameters build: the
    same tensor shapes and the same settings that are not tensors (not after
    ``set_params`` on a network-defining parameter, nor for a model pickled by a skdivae
    whose defaults built another network)."""
    skeleton = network_skeleton(est, n_features=est.n_features_in_,
                                density_dim=est.density_dim_)
    return (tensor_shapes(skeleton.state_dict()) == tensor_shapes(est.module_.state_dict())
            and est.module_.likelihood == est.likelihood
            and _settings(skeleton) == _settings(est.module_)
            and _same_fixed_noise(est.module_, est.decoder_std))


def _settings(module):
    """What tells two networks of the same tensor shapes apart, for the parts skdivae
    builds: the layers (activations) of the encoder and decoder, and the settings of the
    built-in priors and aligners (their ``extra_repr``: the KL estimator, the aligner's
    threshold, reduction...). A custom prior or aligner is compared by its shapes only:
    its repr may hold dtypes or addresses that differ between two equal networks."""
    parts = [repr(module.encoder), repr(module.decoder)]
    for part, kinds in ((module.prior, (StandardNormal, GaussianMixture, Vamp)),
                        (module.aligner, (Direct, FlowCorrected))):
        parts.append(f"{type(part).__name__}({part.extra_repr()})"
                     if type(part) in kinds else type(part).__name__)
    return parts


def _same_fixed_noise(module, decoder_std):
    """Whether ``module``'s decoder noise is the learned one (``decoder_std=None``) or
    fixed at ``decoder_std``, read from its noise buffer (a network pickled by an older
    skdivae keeps the same buffer)."""
    if module.likelihood != "gaussian":  # no noise scale at all
        return True
    fixed = getattr(module, "fixed_noise", False)
    if not fixed or decoder_std is None:  # both learned, or one fixed and one learned
        return not fixed and decoder_std is None
    std = torch.exp(module.log_noise.double()) * module.scale.double()
    return bool(torch.allclose(std, torch.full_like(std, float(decoder_std)), rtol=1e-5))
