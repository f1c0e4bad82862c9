"""DiVAE: a density-informed variational autoencoder as a scikit-learn outlier detector."""

from numbers import Integral, Real

from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    OutlierMixin,
    TransformerMixin,
)

from ._build import MAX_LATENT
from ._fit_mixin import FitMixin
from ._generative import GenerativeMixin
from ._nested_params import NestedParamsMixin
from ._outputs import OutputsMixin
from ._partial_fit import PartialFitMixin
from ._scoring import DEFAULT_SCORE, SCORES
from ._validation import HasMethods, Interval, RealNotInt, StrOptions


class DiVAE(
    FitMixin,
    NestedParamsMixin,
    GenerativeMixin,
    OutputsMixin,
    PartialFitMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    OutlierMixin,
    BaseEstimator,
):
    """Density-informed variational autoencoder for anomaly and OOD detection.

    A VAE whose log-prior ``log p_Z(z)`` is pulled, during training, towards
    ``rho``: a log-density estimate of each training sample in a
    low-dimensional PCA projection (Alessi, Ansuini & Rodriguez, 2025). The
    objective is ``recon + beta * KL + alignment_weight * R`` with ``R`` a
    robust penalty between the log-prior at each training point's posterior
    mean (plus a learned offset, the log-Jacobian between the latent space
    and rho's space) and ``rho_i``, in units of rho's standard error. The
    fitted model scores new points by their ELBO (the default), by the
    aligned log-prior at their posterior mean, or by the less normal of the
    two on a robust scale (``anomaly_score``).

    Parameters
    ----------
    n_components : int, default=8
        Dimension of the latent space (and, by default, of rho's PCA space,
        capped at the number of features); evidence for the default in
        ``docs/results/defaults.md``. Use 2 to plot the latent space. Unlike
        PCA's, it may exceed the number of features (a VAE's latent space is
        not a projection): ``transform`` then returns ``n_components`` columns
        while rho's PCA space stays capped. At most 2048: the ELBO's 2L sigma
        points make each scored row cost at least ``4 * n_components**2``
        numbers (130 MB at 2048; a mixture prior whose KL takes draws,
        ``kl="corrected_bound"`` or ``"monte_carlo"``, multiplies it by about
        half its components), and a network whose scored row would need more
        than 2**25 numbers is refused at fit and at load.
    hidden_layer_sizes : tuple of int or int, default=(64, 64)
        Widths of the encoder's hidden layers; the decoder mirrors them. An
        int is one hidden layer of that width, as in ``MLPClassifier``.
    activation : {"relu", "tanh", "elu", "logistic"}, default="relu"
        Hidden-layer activation.
    prior : {"auto", "normal", "gmm", "vamp"} or prior object, default="auto"
        Latent prior; a :mod:`skdivae.priors` object sets its size, e.g.
        ``GaussianMixturePrior(n_components=5)`` (passed as an object,
        tunable as ``prior__n_components``). ``"normal"`` is N(0, I); ``"gmm"`` is
        ``GaussianMixturePrior()``: 10 components, 40 when ``n_components``
        is 1 or 2 (``docs/results/mixture_components_2d.md``). ``"auto"`` is
        ``"normal"`` when ``n_components`` is 3 or more (the tabular regime,
        ``docs/results/defaults.md``) and ``"gmm"`` when it is 1 or 2 (chosen
        in 2, checked in 1: ``docs/results/regime_1d.md``): there
        N(0, I) has a single peak, so the aligned log-prior follows a density
        with several modes only under a strong pull, which the default aligner
        gives it there (median Pearson 0.95 against 0.99 with the mixture on
        eight rotated mixtures, ``docs/results/prior_2d.md``,
        ``docs/results/calibration_2d.md``). For detection keep the default
        8 dimensions: every 2-D variant measured ranked anomalies at best
        level with it on the development sets (0.806 to 0.824 mean ROC AUC
        against 0.825, ``docs/results/calibration_2d.md``,
        ``docs/results/score_study.md``).
    aligner : {"direct", "direct_paper", "flow"}, aligner object or None, \
            default="direct"
        How the log-prior is aligned with rho: :class:`~skdivae.DirectAligner`
        (``"direct"``: the formulation chosen in ``docs/alignment.md``;
        ``"direct_paper"``: the paper's exact formulation,
        ``DirectAligner.paper()``) or the flow-corrected
        :class:`~skdivae.FlowAligner` (passed as an object, tunable as
        ``aligner__n_layers``...).
        ``None`` (or ``"none"``) trains the plain VAE baseline.
    alignment_weight : float, default=1.0
        Weight ``lambda`` of the alignment penalty after warm-up; 0 trains
        the plain VAE. How it moves detection and the log-prior's agreement
        with the true density: ``docs/alignment.md``, ``docs/results/adbench.md``.
    alignment_probes : float in [0, 10], default=0.0
        Probe points off the training data per training row, at which the
        aligner also pulls the log-prior towards the teacher's log-density
        (the teacher is defined everywhere, and low far from the data). Half
        are training rows plus Gaussian noise of 0.25 to 2 column standard
        deviations, half take each column from a different training row; they
        are drawn once per fit, and each mini-batch aligns this many times its
        rows of them, through the encoder and the prior only (never the
        decoder or the ELBO). Without them nothing tells the encoder where to
        put rows unlike the training data, and trained on clean rows the
        aligned log-prior can rank such rows as the most normal. With the
        direct aligner only (the flow aligner keeps the paper's formulation);
        0 aligns at the training rows only, as the paper does. Not the
        default: with clean training data it raised the aligned log-prior's
        mean ROC AUC on the development sets by about 0.02 (a little above
        the teacher's) but lowered the ELBO's a little in both uses
        (``docs/results/alignment_probes.md``); use it when you score with
        ``anomaly_score="log_prior"``.
    density : estimator or None, default=None
        The density teacher, fitted on the (standardised) training data.
        ``None`` means ``KNNLogDensity(30, method="knn",
        n_components=min(n_components, n_features), max_samples=100_000)``
        (the teacher study, ``docs/results/teacher.md``): past 100 000 rows its
        neighbour index holds a random 100 000 of them and the other rows are
        queried against it, so a million-row fit takes minutes
        (``docs/results/performance.md``). Any
        estimator with ``fit`` and ``score_samples`` works (KernelDensity,
        GaussianMixture, a Pipeline); its leave-one-out ``log_density_`` and
        ``log_density_err_`` (a Pipeline's: those of its last step) are used
        when present, else ``score_samples`` with unit errors. Pass it as an object to tune it, e.g.
        ``density=KNNLogDensity(30, n_components=8, max_samples=100_000)``
        (the default for ``n_components=8`` and at least 8 features) and then
        ``density__n_neighbors``.
    beta : float, default=1.0
        Weight of the KL term after warm-up.
    beta_warmup, alignment_warmup : "auto", float in [0, 1] or int >= 0, \
            default="auto"
        How long ``beta`` and ``alignment_weight`` ramp linearly from 0
        (``beta`` from ``beta_start * beta``): a share of ``max_iter`` (float),
        a number of epochs (int), or ``"auto"``: half of ``max_iter`` but at
        most 50 epochs (the same as 0.5 up to 100 epochs;
        longer fits do not get longer warm-ups). Early stopping acts after
        both warm-ups.
    beta_start : float in [0, 1], default=0.0
        Where the KL weight's warm-up starts, as a share of ``beta`` (the
        paper's synthetic experiment ramps from 0.1).
    likelihood : {"gaussian", "bernoulli"}, default="gaussian"
        Decoder distribution. Gaussian learns one noise scale per feature
        (or uses ``decoder_std``); Bernoulli needs data in [0, 1].
    decoder_std : float or None, default=None
        Fixed standard deviation of the Gaussian decoder, in the units of the
        input, one value for every column, so the columns must share a scale:
        scale numeric columns first, leave 0/1 and pixel columns as they are
        (user guide, section 4; ``fit`` warns when the columns' ranges differ
        more than 1000-fold). The paper's synthetic experiment fixes 0.02.
        ``None`` learns one per feature. Ignored with ``likelihood="bernoulli"``.
    standardize : bool, default=True
        Centre and scale each feature internally (by its training mean and
        standard deviation), so raw tabular data work. Scores and samples
        stay in the units of the input. Ignored with ``likelihood="bernoulli"``,
        whose targets are the values in [0, 1] themselves.
    anomaly_score : {"elbo", "min(elbo,log_prior)", "elbo_at_mean", "log_prior", \
            "elbo+log_prior"}, default="elbo"
        What :meth:`score_samples` returns. The default is the ELBO (its
        reconstruction term at ``2 * n_components`` sigma points of the
        posterior). ``"min(elbo,log_prior)"`` puts the ELBO and the aligned
        log-prior at the posterior mean each on a robust scale (centred on the
        median and divided by the interquartile range of its training scores,
        or by their mean absolute deviation where most of them tie) and takes
        the smaller: a row is flagged when it cannot be
        reconstructed *or* when it falls where the aligned density is low; it
        reads the aligned prior while staying level with the ELBO's mean, and
        it was the default until
        the score study, rerun after a training fix, no longer adopted it
        (``docs/results/score_study.md``; its separation of out-of-distribution data:
        ``docs/results/score_inversion.md``). The others: the same ELBO
        with its reconstruction term at the posterior mean only (one decoder
        pass per row instead of ``2 * n_components``, several times faster,
        for scoring very many rows, ``docs/results/elbo_points.md``); the aligned
        log-prior alone (``log p_Z(mu(x))`` plus the direct aligner's learned
        offset: a log-density in rho's units, though on small data with few
        features the offset, learned at ``learning_rate_init``, may end the
        fit below rho's level; the paper's score; with the flow aligner
        ``log p_Z(mu(x))`` alone, without the flow's per-row term, so not in
        rho's units); or the sum of the two robust z-scores. Every score is
        calibrated at fit, so ``set_params`` may switch it on a fitted model
        (``offsets_``).
    keep_density : bool, default=False
        Keep the fitted teacher as ``density_`` after fit. A kNN teacher holds
        its (projected) training rows, which makes the model larger by about
        ``n_samples * n_components * 8`` bytes and keeps data in it; nothing
        in scoring needs it. Turn it on to score the teacher on new data
        (:func:`~skdivae.model_selection.density_agreement_score` needs it).
    trim_fraction : float in [0, 0.5), default=0.05
        Share of training points with the lowest teacher log-density whose
        reconstruction and KL terms are left out of the objective (training
        data may hold anomalies); the alignment still uses every point.
        Exactly ``floor((n_samples - 1) * trim_fraction) + 1`` rows are left
        out (the rows at or below that quantile of the teacher's values; ties,
        as on discrete data, are broken by row order, so they never widen the
        cut). A streamed fit and ``partial_fit`` after its first block leave
        out the rows below the cut set on the teacher's sample (the first
        block) and, of the rows tied with it, the same share: about the same
        fraction, or fewer where later rows' teacher values sit above the
        sample's (on discrete data a new row's copies are its neighbours). Evidence for the default: ``docs/results/defaults.md``; 0
        trains on all.
    contamination : float in (0, 0.5] or "auto", default=0.1
        Share of training points flagged as outliers; sets the threshold
        (``offset_``). ``"auto"`` flags rows below Tukey's lower fence of the
        training scores, ``Q1 - 1.5 * (Q3 - Q1)`` (about 0.35 % of a Gaussian
        sample; more where the training scores have a heavy low tail), as
        IsolationForest and LOF offer ``"auto"``. It may be changed with
        ``set_params`` after fit: thresholds come from a summary of the
        training scores (``score_quantiles_``), not from a refit.
    batch_size : int or "auto", default="auto"
        Mini-batch size; "auto" is ``min(128, n_samples)``, and a fit in memory
        that then uses no latent dimension (the posterior mean varies by a
        variance of at most 0.01 along every one) is trained once more with
        mini-batches of 8 rows: on a few hundred rows in clusters the larger
        batch gave too few steps to leave that state, while no default fit on
        the development sets refits (``docs/results/collapse_refit.md``;
        ``batch_size_`` says which was kept). On small data, smaller batches
        (``min(128, max(16, n_samples // 32))``) ranked anomalies better with
        clean training data and worse with anomalies in it
        (``docs/results/batch_size.md``; the OOD use in the user guide).
    learning_rate_init : float, default=1e-3
        Adam learning rate.
    max_iter : int or "auto", default="auto"
        Maximum number of epochs. ``"auto"`` is 100 epochs, capped so that
        training takes at most 200 000 mini-batch steps (at least 10 epochs):
        the same as 100 up to 256 000 training rows at batch 128, and 25
        epochs for a million rows (``docs/results/performance.md``). A fit that uses
        up an int ``max_iter`` with its loss still falling warns
        (``ConvergenceWarning``), and so does one with fewer than 5 epochs after
        the warm-ups (too few to tell; the warm-ups default to half of
        ``max_iter``, so any ``max_iter`` from 2 to 9 warns; ``max_iter=1``, a
        one-epoch smoke test, never does); with ``"auto"``, or
        an int at least as large as what ``"auto"`` gives on the data, it does
        not, since on the development sets training three times longer did not
        make such fits better detectors (``docs/results/convergence.md``).
        A fit streamed from disk (a memmap or a dask collection) does not
        monitor its loss and never warns.
    tol : float, default=1e-4
        Improvement of the monitored loss that resets the patience counter.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop on its loss.
    validation_fraction : float, default=0.1
        Share held out when ``early_stopping`` is on.
    n_iter_no_change : int, default=10
        Epochs without improvement (after the warm-ups) before stopping.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where training runs; the fitted model always lives on the CPU in
        float64, so it pickles and scores anywhere.
    n_threads : "auto", int or None, default="auto"
        torch intra-op threads for ``fit`` and for scoring, set for the call
        and restored after, in the calling thread. ``"auto"``
        trains with one thread, since mini-batches of a small network gain
        little from more and slow down many times over when another process
        keeps a core busy (``docs/results/performance.md``), and scores rows in
        chunks of at most 1 024 (fewer for a very wide network or latent
        space, so that a chunk stays in bounded memory) side by side on every
        available CPU, one torch thread
        each: as fast as torch's threads on a quiet machine, and a busy core
        only slows the chunks it takes. The chunks do not depend on the number
        of CPUs, so scores are bit-identical however busy the machine. An int
        uses that many threads for both (chunk after chunk), at most the
        number of CPUs; ``None`` leaves torch's setting alone.
    random_state : int, RandomState instance or None, default=None
        Seeds weights, batches, the reparameterisation noise and the density
        teacher (a ``density`` whose own ``random_state``, nested ones included,
        is None gets a seed drawn from it; one the user set is kept), through
        local generators, so fits in several threads give the
        same result as serial ones. torch's global random state is left as it
        was (torch's layers draw from it while being built; those draws are
        replaced, under a lock, and the state restored). An int or a RandomState leaves numpy's global state
        untouched; ``None`` draws one seed from it (as scikit-learn does).
    verbose : int, default=0
        When positive, say when the density teacher is fitted, what the loss
        terms mean, one line per epoch (loss terms in nats per row, warm-up
        epochs marked, elapsed time and an upper bound on the time left),
        why and when training stopped, and when the training rows are scored
        for the threshold. Quiet by default.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained VAE (CPU, float64, eval mode).
    density_ : estimator or None
        The fitted density teacher with ``keep_density=True``; ``None``
        otherwise (scoring never needs it).
    density_dim_ : int
        Dimension of the teacher's space (what the aligner projects to).
    history_ : list of dict
        Per epoch: ``epoch`` (from 1), ``loss``, ``recon``, ``kl``, ``align``,
        ``aux`` (the flow aligner's own loss, 0 for other aligners), ``beta``,
        ``alignment_weight``, ``time`` and ``valid_loss`` with early stopping.
        Loss terms are in the units of the standardised data (the raw-unit
        reconstruction term differs by the constant ``sum(log scale)``).
    loss_curve_ : list of float
        Training loss per epoch.
    n_iter_ : int
        Epochs run.
    offset_ : float
        Threshold on :meth:`score_samples` set by ``contamination``, for the
        ``anomaly_score`` and ``contamination`` of the fit;
        :meth:`decision_function` follows the current ones.
    offsets_ : ndarray of shape (5,)
        The same threshold for every ``anomaly_score`` (in the order
        ``"log_prior"``, ``"elbo"``, ``"elbo_at_mean"``, ``"elbo+log_prior"``,
        ``"min(elbo,log_prior)"``); :meth:`decision_function` reads the
        current score's, so ``set_params(anomaly_score=...)`` after fit
        thresholds correctly without a refit.
    score_quantiles_ : ndarray of shape (5, 1001)
        Quantiles 0, 0.001, ..., 1 of each ``anomaly_score`` over the training
        rows (same order as ``offsets_``): what re-thresholding after
        ``set_params(contamination=...)`` and :meth:`predict_proba` read,
        instead of the training rows.
    score_center_, score_scale_ : ndarray of shape (2,)
        Median and interquartile range (the mean absolute deviation from the
        median where most of them tie) of the training rows' ELBO and
        log-prior at the posterior mean: the robust scales of the combined
        scores.
    batch_size_ : int
        The mini-batch size training used (8 where ``batch_size="auto"``
        refitted a collapsed fit).
    device_ : torch.device
        Device training ran on.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen in ``fit``, when they are all strings.

    Examples
    --------
    >>> import numpy as np
    >>> from skdivae import DiVAE
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(300, 4)), rng.uniform(-6, 6, size=(15, 4))])
    >>> det = DiVAE(max_iter=100, random_state=0).fit(X)
    >>> det.transform(X[:2]).shape
    (2, 8)
    >>> labels = det.predict(X)
    >>> sorted(set(labels.tolist()))
    [-1, 1]
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, MAX_LATENT, closed="both")],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"relu", "tanh", "elu", "logistic"})],
        "prior": [StrOptions({"auto", "normal", "gmm", "vamp"}), HasMethods(["build"])],
        "aligner": [None, StrOptions({"direct", "direct_paper", "flow", "none"}), HasMethods(["build"])],
        "alignment_weight": [Interval(Real, 0, None, closed="left")],
        "density": [None, HasMethods(["fit", "score_samples"])],
        "beta": [Interval(Real, 0, None, closed="left")],
        "beta_warmup": [StrOptions({"auto"}), Interval(RealNotInt, 0, 1, closed="both"),
                        Interval(Integral, 0, None, closed="left")],
        "alignment_warmup": [StrOptions({"auto"}), Interval(RealNotInt, 0, 1, closed="both"),
                             Interval(Integral, 0, None, closed="left")],
        "beta_start": [Interval(Real, 0, 1, closed="both")],
        "likelihood": [StrOptions({"gaussian", "bernoulli"})],
        "decoder_std": [None, Interval(Real, 0, None, closed="neither")],
        "standardize": ["boolean"],
        "anomaly_score": [StrOptions(set(SCORES))],
        "keep_density": ["boolean"],
        "alignment_probes": [Interval(Real, 0, 10, closed="both")],
        "trim_fraction": [Interval(Real, 0, 0.5, closed="left")],
        "contamination": [Interval(Real, 0, 0.5, closed="right"), StrOptions({"auto"})],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "device": [StrOptions({"cpu", "cuda", "auto"})],
        "n_threads": [None, StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=8,
        *,
        hidden_layer_sizes=(64, 64),
        activation="relu",
        prior="auto",
        aligner="direct",
        alignment_weight=1.0,
        alignment_probes=0.0,
        density=None,
        beta=1.0,
        beta_warmup="auto",
        alignment_warmup="auto",
        beta_start=0.0,
        likelihood="gaussian",
        decoder_std=None,
        standardize=True,
        anomaly_score=DEFAULT_SCORE,
        keep_density=False,
        trim_fraction=0.05,
        contamination=0.1,
        batch_size="auto",
        learning_rate_init=1e-3,
        max_iter="auto",
        tol=1e-4,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        device="cpu",
        n_threads="auto",
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.prior = prior
        self.aligner = aligner
        self.alignment_weight = alignment_weight
        self.alignment_probes = alignment_probes
        self.density = density
        self.beta = beta
        self.beta_warmup = beta_warmup
        self.alignment_warmup = alignment_warmup
        self.beta_start = beta_start
        self.likelihood = likelihood
        self.decoder_std = decoder_std
        self.standardize = standardize
        self.anomaly_score = anomaly_score
        self.keep_density = keep_density
        self.trim_fraction = trim_fraction
        self.contamination = contamination
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    def __setstate__(self, state):
        state.setdefault("alignment_probes", 0.0)  # pickled before the option existed
        super().__setstate__(state)

    def transform(self, X):
        """Posterior means ``mu(x)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
        """
        # Here, not in a mixin: scikit-learn wraps (set_output) only a transform that the
        # estimator's class defines itself.
        return self._apply("posterior_mean", self._validated(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
