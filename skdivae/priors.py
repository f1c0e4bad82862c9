"""Latent priors of :class:`~skdivae.DiVAE`, as cloneable parameter objects.

A prior object holds only its settings; ``DiVAE.fit`` calls its ``build``
method to create a fresh torch module, so the object itself is never
changed and works in ``clone``, ``get_params`` and ``GridSearchCV``
(``prior__n_components``).

To write a prior of your own: a parameter object like these, whose
``build(*, n_latent, n_features)`` returns a :class:`PriorModule` subclass
(``forward(encoder)`` returns the torch distribution; the other hooks have
defaults). ``docs/user_guide.md`` shows one in full.
"""

from numbers import Integral

from sklearn.base import BaseEstimator

from ._validation import Interval, StrOptions

from ._nn.contracts import PriorModule
from ._nn.kl import KL_ESTIMATORS
from ._nn.priors import GaussianMixture, StandardNormal, Vamp

__all__ = ["StandardNormalPrior", "GaussianMixturePrior", "VampPrior", "PriorModule"]

#: ``GaussianMixturePrior(n_components="auto")``: this many components, and
#: ``MIXTURE_COMPONENTS_LOW_DIM`` in a latent space of at most ``LOW_DIM`` dimensions,
#: where a mixture of diagonal Gaussians needs more of them to draw rotated, stretched
#: clusters (chosen in ``docs/results/mixture_components_2d.md``).
MIXTURE_COMPONENTS, MIXTURE_COMPONENTS_LOW_DIM, LOW_DIM = 10, 40, 2


def mixture_components(n_components, n_latent):
    """The number of components that ``n_components`` (an int or ``"auto"``) gives a
    mixture prior in a latent space of ``n_latent`` dimensions."""
    if isinstance(n_components, str) and n_components == "auto":
        return MIXTURE_COMPONENTS_LOW_DIM if n_latent <= LOW_DIM else MIXTURE_COMPONENTS
    return int(n_components)


class StandardNormalPrior(BaseEstimator):
    """Fixed standard normal prior ``N(0, I)``.

    Examples
    --------
    >>> import math
    >>> from skdivae.priors import StandardNormalPrior
    >>> module = StandardNormalPrior().build(n_latent=2, n_features=5)
    >>> round(module().log_prob(module.loc).item(), 4) == round(-math.log(2 * math.pi), 4)
    True
    """

    def build(self, *, n_latent, n_features):
        """Create the torch module for a latent space of ``n_latent`` dimensions."""
        return StandardNormal(n_latent)


class GaussianMixturePrior(BaseEstimator):
    """Learnable diagonal Gaussian mixture prior.

    Starts with uniform weights, means drawn from ``0.1 N(0, 1)`` and unit
    scales; scales are kept above 0.05.

    Parameters
    ----------
    n_components : int or "auto", default="auto"
        Number of mixture components. ``"auto"`` gives 10, and 40 in a
        latent space of one or two dimensions: there, 10 diagonal Gaussians
        cannot draw rotated, stretched clusters, and the log-prior (aligned
        or not) follows the data's density less well than with more
        components (``docs/results/mixture_components_2d.md``, eight rotated
        mixtures with ``DirectAligner(reduction="mean")``: median Pearson with the true
        log-density 0.927 with 10 components, 0.987 with 40; the teacher's
        own is 0.971). The study ran in two dimensions; a 1-D latent space gets
        40 too (checked after: median Pearson 0.996 on the 1-D analogue of
        those mixtures, ``docs/results/regime_1d.md``), and sizes from 3 to 7
        were not studied and get 10.
    kl : {"bound", "corrected_bound", "monte_carlo"}, default="bound"
        How ``KL(q(z|x) || p_Z)`` is estimated (it has no closed form for a
        mixture). ``"bound"``: the closed-form variational upper bound
        ``B = -log sum_k pi_k exp(-KL(q || N_k))`` (Hershey & Olsen, 2007):
        deterministic and cheap, exact for one component, tight when each
        posterior sits within one component (as trained posteriors mostly
        do), loose when a posterior straddles several; the ELBO stays a
        lower bound on ``log p(x)``. ``"corrected_bound"``: ``B`` minus a
        5-draw Monte Carlo estimate of its gap: unbiased; on the tested
        trained models less variable than the 50-draw estimate, but far more
        variable for posteriors that straddle many components; about twice
        the cost of ``"bound"``. ``"monte_carlo"``: the average of
        ``log q(z) - log p(z)`` over 50 draws (the authors' estimator, the
        slowest). Accuracy in ``tests/test_kl_bound.py``, timings in
        ``docs/results/performance.md``.

    Examples
    --------
    >>> from skdivae.priors import GaussianMixturePrior
    >>> GaussianMixturePrior(n_components=4).build(n_latent=2, n_features=5).loc.shape
    torch.Size([4, 2])
    >>> GaussianMixturePrior().build(n_latent=8, n_features=5).loc.shape
    torch.Size([10, 8])
    """

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "kl": [StrOptions(set(KL_ESTIMATORS))],
    }

    def __init__(self, n_components="auto", kl="bound"):
        self.n_components = n_components
        self.kl = kl

    def build(self, *, n_latent, n_features):
        """Create the torch module for a latent space of ``n_latent`` dimensions."""
        self._validate_params()
        n_mix = mixture_components(self.n_components, n_latent)
        return GaussianMixture(n_latent, n_mix, kl_estimator=self.kl)


class VampPrior(BaseEstimator):
    """VampPrior: mixture of the encoder's posteriors at learnable pseudo-inputs.

    Pseudo-inputs live in the (standardised) feature space, start at random
    training rows and are not clipped.

    Parameters
    ----------
    n_components : int, default=50
        Number of pseudo-inputs.
    kl : {"bound", "corrected_bound", "monte_carlo"}, default="bound"
        How ``KL(q(z|x) || p_Z)`` is estimated; see :class:`GaussianMixturePrior`.

    Examples
    --------
    >>> from skdivae.priors import VampPrior
    >>> VampPrior(n_components=8).build(n_latent=2, n_features=5).pseudo_inputs.shape
    torch.Size([8, 5])
    """

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "kl": [StrOptions(set(KL_ESTIMATORS))],
    }

    def __init__(self, n_components=50, kl="bound"):
        self.n_components = n_components
        self.kl = kl

    def build(self, *, n_latent, n_features):
        """Create the torch module for a latent space of ``n_latent`` dimensions."""
        self._validate_params()
        return Vamp(n_latent, n_features, self.n_components, kl_estimator=self.kl)


#: Shorthand strings accepted by ``DiVAE(prior=...)`` (and ``"auto"``, see :func:`prior_name`).
PRIORS = {"normal": StandardNormalPrior, "gmm": GaussianMixturePrior, "vamp": VampPrior}


def prior_name(prior, n_latent):
    """The shorthand that ``prior`` stands for in a latent space of ``n_latent``
    dimensions: ``"auto"`` is ``"gmm"`` when ``n_latent <= LOW_DIM`` (N(0, I) has one
    peak, so in one or two dimensions it gives several clusters high log-prior only
    under a strong pull, and less closely; chosen in ``docs/results/prior_2d.md`` with
    two dimensions, checked in one by ``docs/results/regime_1d.md``) and ``"normal"`` otherwise (chosen in the
    tabular regime, ``docs/results/defaults.md``); other shorthands are themselves."""
    if prior == "auto":
        return "gmm" if n_latent <= LOW_DIM else "normal"
    return prior
