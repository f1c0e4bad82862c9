"""Aligners of :class:`~skdivae.DiVAE`: how the log-prior is pulled towards rho.

Like the priors, aligners are parameter objects whose ``build`` creates a
fresh torch module inside ``fit``. To write an aligner of your own: a
parameter object whose ``build(*, n_latent, n_features, density_dim)``
returns an :class:`AlignerModule` subclass (``predict_log_density`` and
``penalty``; the other hooks have defaults).
"""

from numbers import Integral, Real

from sklearn.base import BaseEstimator

from ._nn.aligners import Direct, FlowCorrected
from ._nn.contracts import AlignerModule
from ._nn.flow import CouplingFlow
from ._validation import Interval, StrOptions
from .priors import LOW_DIM

__all__ = ["DirectAligner", "FlowAligner", "AlignerModule"]

# Defaults of DirectAligner (chosen in docs/alignment.md).
POINT, REDUCTION, SCALING, CALIBRATION, PER_FEATURE = "mean", "auto", "standardize", "offset", "auto"
#: ``reduction="auto"``: the plain mean, and the square root in a latent space of at most
#: ``LOW_DIM`` dimensions with a learnable prior (chosen in docs/results/aligner_2d_mixture.md;
#: with a fixed N(0, I) there the mean, docs/results/calibration_2d.md).
REDUCTION_AUTO, REDUCTION_LOW_DIM = "mean", "sqrt"


def _normal_low_dim(n_latent, fixed_normal_prior):
    """The regime where the ``"auto"`` options pull hardest: a fixed N(0, I) prior in a
    latent space of at most ``LOW_DIM`` dimensions (docs/results/calibration_2d.md)."""
    return bool(fixed_normal_prior and n_latent <= LOW_DIM)


def resolve_per_feature(per_feature, n_latent, fixed_normal_prior=False):
    """Whether ``per_feature`` (``"auto"`` or a bool) scales the penalty by the number of
    features: ``"auto"`` does with a fixed N(0, I) prior in a latent space of at most
    ``LOW_DIM`` dimensions (chosen in docs/results/calibration_2d.md), nowhere else."""
    if isinstance(per_feature, str) and per_feature == "auto":
        return _normal_low_dim(n_latent, fixed_normal_prior)
    return bool(per_feature)


#: ``delta="auto"``: the Huber threshold (in standard errors of rho with the default
#: scaling), and the larger one with a fixed N(0, I) prior in a latent space of at most
#: ``LOW_DIM`` dimensions (chosen in docs/results/calibration_2d.md).
DELTA_AUTO, DELTA_NORMAL_LOW_DIM = 1.0, 10.0


def resolve_delta(delta, n_latent, fixed_normal_prior=False):
    """The Huber threshold that ``delta`` (``"auto"`` or a number) gives in a latent space
    of ``n_latent`` dimensions, with a fixed N(0, I) prior or another."""
    if isinstance(delta, str) and delta == "auto":
        return DELTA_NORMAL_LOW_DIM if _normal_low_dim(n_latent, fixed_normal_prior) else DELTA_AUTO
    return float(delta)


def resolve_reduction(reduction, n_latent, fixed_normal_prior=False):
    """The reduction that ``reduction`` (``"auto"``, ``"mean"`` or ``"sqrt"``) gives in a
    latent space of ``n_latent`` dimensions, with a fixed N(0, I) prior or another."""
    if reduction == "auto":
        learnable_low_dim = n_latent <= LOW_DIM and not fixed_normal_prior
        return REDUCTION_LOW_DIM if learnable_low_dim else REDUCTION_AUTO
    return reduction


class DirectAligner(BaseEstimator):
    """Direct alignment: pull the log-prior of each training code towards ``rho_i``.

    The penalty compares ``s_i``, the log-prior ``log p_Z`` of sample ``i``'s
    code (optionally mapped to the teacher's units by a learnable
    calibration), with the teacher's ``rho_i`` and its standard error
    ``err_i``. Its gradient reaches the encoder, every learnable prior
    parameter and the calibration. The defaults are the formulation chosen
    by ``benchmarks/diagnose_alignment.py`` (``docs/alignment.md``); the
    paper's exact formulation is ``DirectAligner.paper()``, also available
    as ``DiVAE(aligner="direct_paper")``.

    Parameters
    ----------
    point : {"mean", "sample"}, default="mean"
        Where ``log p_Z`` is evaluated: at the posterior mean ``mu(x_i)``,
        the point that scoring uses, or at the reparameterised sample
        ``z_i ~ q(z|x_i)`` of the training step (the paper).
    reduction : {"auto", "mean", "sqrt"}, default="auto"
        ``mean_i(h_i)`` or the paper's ``sqrt(mean_i(h_i))``. The square root
        shrinks the gradient as the misfit grows. ``"auto"``: the mean, and
        the square root in a latent space of one or two dimensions with a
        learnable prior, where a mixture prior with few components cannot
        follow rho everywhere and the mean's stronger pull then costs the
        log-prior its agreement with the true density
        (``docs/results/aligner_2d_mixture.md``). With a fixed N(0, I) prior
        the mean there too: that prior needs the strongest pull
        (``docs/results/calibration_2d.md``). ``DiVAE`` resolves ``"auto"``
        knowing its prior; ``build`` alone (no prior given) reads the prior as
        learnable.
    scaling : {"standardize", "weight"}, default="standardize"
        ``h_i = Huber_delta((s_i - rho_i) / err_i)``, the residual in units of
        its standard error (``rho_i`` read as a noisy observation of
        ``s_i``), or the paper's ``h_i = Huber_delta(s_i - rho_i) / err_i``.
        Errors are floored at 1e-3 in both.
    calibration : {"offset", "affine"} or None, default="offset"
        ``s_i = log p_Z + b`` with a learnable ``b`` (the log-Jacobian between
        the latent space and the teacher's PCA space, which a fixed prior
        cannot absorb), ``s_i = a log p_Z + b`` with a learnable ``a > 0``,
        or ``s_i = log p_Z`` (the paper).
    per_feature : "auto" or bool, default="auto"
        Multiply the penalty by the number of features, so that its weight
        against the reconstruction term (a sum over features) does not
        shrink as features are added; ``alignment_weight`` then means the
        same on 5 columns as on 500. ``"auto"``: only with a fixed N(0, I)
        prior in a latent space of one or two dimensions. There the log-prior
        depends on the code's radius alone, and following rho's several modes
        takes a strong pull (median Pearson with the true density 0.31 ->
        0.63 on eight rotated mixtures, then 0.69 with ``reduction``'s mean
        and 0.97 with ``delta``'s 10, ``docs/results/calibration_2d.md``; in
        one dimension 0.87 against 0.61 without the three,
        ``docs/results/regime_1d.md``); elsewhere the plain penalty. ``DiVAE`` resolves ``"auto"`` knowing its
        prior; ``build`` alone (no prior given) reads it as ``False``. Only
        ``prior="normal"`` (``StandardNormalPrior``) counts as a fixed N(0, I):
        any other prior object, fixed or learnable, gets the settings of a
        learnable prior, and so does a subclass whose ``build`` does not take
        ``fixed_normal_prior``.
    delta : "auto" or float, default="auto"
        Huber threshold (with ``scaling="standardize"``, in standard errors of
        rho): residuals beyond it are penalised linearly, so a larger one
        pulls harder on large misfits. ``"auto"``: 1, and 10 with a fixed
        N(0, I) prior in a latent space of one or two dimensions, where the
        codes of low-density rows must move far out and the linear part's
        constant pull left them short (median Pearson with the true density
        0.69 -> 0.97 on eight rotated mixtures,
        ``docs/results/calibration_2d.md``). ``DiVAE`` resolves ``"auto"``
        knowing its prior; ``build`` alone (no prior given) reads it as 1.
    move_codes : bool, default=True
        Whether the penalty moves the codes (its gradient reaches the encoder)
        or only shapes the prior around them (the codes are read as constants;
        the prior's parameters and the calibration learn). ``False`` leaves the
        encoder to the ELBO alone; with a fixed N(0, I) prior only the
        calibration then learns, so it is meant for a learnable prior with
        parameters of its own (a ``VampPrior``, computed by the encoder, is
        refused). In
        eight latent dimensions with the mixture prior it detected worse than
        moving the codes with anomalies in the training data (with clean
        training data a little better), and its log-prior followed rho less
        well (``docs/results/prior_shaping.md``), so the default moves them.

    Examples
    --------
    >>> from skdivae.aligners import DirectAligner
    >>> DirectAligner(delta=0.5).build(n_latent=2, n_features=4, density_dim=2).delta
    0.5
    >>> DirectAligner.paper().get_params()["reduction"]
    'sqrt'
    """

    _parameter_constraints = {
        "point": [StrOptions({"mean", "sample"})],
        "reduction": [StrOptions({"auto", "mean", "sqrt"})],
        "scaling": [StrOptions({"standardize", "weight"})],
        "calibration": [StrOptions({"offset", "affine"}), None],
        "per_feature": [StrOptions({"auto"}), "boolean"],
        "delta": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "move_codes": ["boolean"],
    }

    def __init__(
        self,
        point=POINT,
        reduction=REDUCTION,
        scaling=SCALING,
        calibration=CALIBRATION,
        per_feature=PER_FEATURE,
        delta="auto",
        move_codes=True,
    ):
        self.point = point
        self.reduction = reduction
        self.scaling = scaling
        self.calibration = calibration
        self.per_feature = per_feature
        self.delta = delta
        self.move_codes = move_codes

    def __setstate__(self, state):
        state.setdefault("move_codes", True)  # pickled before the option existed
        super().__setstate__(state)

    @classmethod
    def paper(cls, delta=1.0):
        """The paper's formulation: ``sqrt(mean_i Huber(log p_Z(z_i) - rho_i) / err_i)``
        at the sampled ``z_i``, without calibration."""
        return cls(
            point="sample", reduction="sqrt", scaling="weight", calibration=None,
            per_feature=False, delta=delta,
        )

    def build(self, *, n_latent, n_features, density_dim, fixed_normal_prior=False):
        """Create the torch module (``density_dim``: the dimension of the space rho is
        estimated in; ``fixed_normal_prior``: the prior is N(0, I), which ``"auto"``
        options read)."""
        self._validate_params()
        return Direct(
            resolve_delta(self.delta, n_latent, fixed_normal_prior),
            point=self.point,
            reduction=resolve_reduction(self.reduction, n_latent, fixed_normal_prior),
            scaling=self.scaling,
            calibration=self.calibration,
            multiplier=float(n_features)
            if resolve_per_feature(self.per_feature, n_latent, fixed_normal_prior) else 1.0,
            moves_codes=bool(self.move_codes),
        )


class FlowAligner(BaseEstimator):
    """Flow-corrected alignment (RealNVP affine couplings).

    A flow ``f`` maps each sample's standardised PCA coordinates ``u`` (PCA
    of the standardised training data, ``n_components`` of the DiVAE) to
    the latent space. It is fitted with its own Adam optimiser by maximum
    likelihood of ``u`` under the current prior as base density, one step
    per mini-batch; the prior gets no gradient from it. The VAE step then
    aligns ``log p_Z(z_i) + log|det J_f(u_i)|`` (plus the constant Jacobian
    of the PCA standardisation) with ``rho_i``, the Jacobian term being a
    fixed per-sample offset: the alignment term never trains the flow.

    Parameters
    ----------
    n_layers : int, default=5
        Number of affine coupling layers (the paper: 5 on synthetic data,
        8 on MNIST).
    hidden_units : int, default=16
        Width of the two hidden layers of each coupling network (the paper:
        16 on synthetic data, 128 on MNIST).
    learning_rate : float, default=1e-3
        Learning rate of the flow's own Adam optimiser.
    update_every : int, default=4
        The flow takes one step on the union of this many consecutive VAE
        mini-batches (so it sees every sample once per epoch, like the VAE),
        and those VAE steps reuse its log-determinants. 1 steps the flow with
        every mini-batch, as the paper does; see ``docs/results/flow_aligner.md`` for
        the cost and the effect of the choice.
    delta : float, default=1.0
        Huber threshold (nats).

    Examples
    --------
    >>> from skdivae.aligners import FlowAligner
    >>> module = FlowAligner(n_layers=3).build(n_latent=2, n_features=4, density_dim=2)
    >>> len(module.flow.layers)
    3
    """

    _parameter_constraints = {
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "hidden_units": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "update_every": [Interval(Integral, 1, None, closed="left")],
        "delta": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, n_layers=5, hidden_units=16, learning_rate=1e-3, update_every=4, delta=1.0):
        self.n_layers = n_layers
        self.hidden_units = hidden_units
        self.learning_rate = learning_rate
        self.update_every = update_every
        self.delta = delta

    def build(self, *, n_latent, n_features, density_dim):
        """Create the torch module; its PCA buffers are set from the data in ``fit``."""
        self._validate_params()
        flow = CouplingFlow(n_latent, self.n_layers, self.hidden_units)
        return FlowCorrected(
            flow,
            n_latent,
            n_features,
            delta=float(self.delta),
            learning_rate=float(self.learning_rate),
            update_every=self.update_every,
        )


#: Shorthand strings accepted by ``DiVAE(aligner=...)``.
ALIGNERS = {"direct": DirectAligner, "direct_paper": DirectAligner.paper, "flow": FlowAligner}
