"""Training block by block: the state that ``partial_fit`` and the streaming ``fit`` carry
from one block of rows to the next, and ``partial_fit`` itself.

What the first block fixes: the standardisation (its mean and standard deviation), the
density teacher (fitted on it, or given), the trimming threshold on the teacher's
log-density, the network's starting values, the mini-batch size and the warm-up
schedule. Every block is then one pass of mini-batches in a random order, pass ``k``
using the warm-up factors of epoch ``k`` of ``fit``.
"""

import copy
import functools
import hashlib
import re

import numpy as np
import torch
from sklearn.utils import check_random_state

from ._build import build_network, network_matches
from ._torch_utils import as_tensor, resolve_device
from ._training import epoch_budget, make_optimizers, train_pass, warmup_epochs, warmup_factor
from ._probes import make_probes
from ._training_data import (
    standardizes,
    check_magnitude,
    block_arrays,
    density_dim,
    density_targets,
    fit_density,
    standardization,
    training_arrays,
    trim_threshold,
)
from ._validation import validate_real


class BlockTrainer:
    """The float32 network on standardised data, its optimisers and random generators,
    the teacher and the standardisation: what training carries between blocks.

    Parameters
    ----------
    est : DiVAE
        Read only: its parameters.
    center, scale : ndarray of shape (n_features,)
        The standardisation, fixed for good.
    density : fitted density estimator
        The teacher, in standardised units.
    threshold : TrimCut
        Where the first rows were trimmed (:func:`~skdivae._training_data.trim_threshold`):
        later rows below it leave the ELBO, and of those at it, the same share
        (``-inf``: none).
    X_init_std : ndarray
        Standardised rows the network starts from (VampPrior pseudo-inputs, the flow's
        projection); ignored when ``module`` is given.
    seed : int
        Seeds the generators (initial weights and batch order; reparameterisation noise).
    n_rows : int
        Rows per pass that set ``max_iter="auto"``'s epoch count, hence the warm-ups.
    module : VAEModule, optional
        A trained network to continue (``partial_fit`` after ``fit`` or ``load``).
    """

    def __init__(self, est, *, center, scale, density, threshold, X_init_std, seed, n_rows,
                 module=None, probe_from=None):
        n_features = len(center)
        self.device = resolve_device(est.device)
        self.center, self.scale = np.asarray(center, float), np.asarray(scale, float)
        self.density, self.threshold = density, threshold
        self.generator = torch.Generator().manual_seed(seed)
        self.noise_generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.batch_size = min(128 if est.batch_size == "auto" else int(est.batch_size), n_rows)
        max_iter = epoch_budget(est.max_iter, n_rows, self.batch_size)
        self.beta_warm = warmup_epochs(est.beta_warmup, max_iter)
        self.align_warm = warmup_epochs(est.alignment_warmup, max_iter)
        if module is None:
            module = build_network(
                est, n_features=n_features, density_dim=density_dim(density, est.n_components),
                X_train=as_tensor(X_init_std, device=self.device), generator=self.generator,
                center=center, scale=scale, data_standardized=True,
            )
        else:
            module = copy.deepcopy(module).float()
        module.set_standardization(np.zeros(n_features), np.ones(n_features))
        self.module = module.to(self.device)
        self.probes = None if probe_from is None else make_probes(
            est, self.module, density, probe_from, seed, self.device)
        self.learning_rate = est.learning_rate_init
        self.optimizers = make_optimizers(self.module, self.learning_rate)
        self.passes = 0

    def __getstate__(self):
        # The optimisers hold the parameters as views of one flat buffer, a link that
        # pickling (and deepcopy through it) would cut: keep their states instead, and
        # rebuild them over the restored network.
        state = self.__dict__.copy()
        state["optimizers"] = [None if o is None else o.state_dict() for o in self.optimizers]
        return state

    def __setstate__(self, state):
        saved = state.pop("optimizers")
        self.__dict__.update(state)
        self.optimizers = make_optimizers(self.module, self.learning_rate)
        for optimizer, optimizer_state in zip(self.optimizers, saved):
            if optimizer is not None:
                optimizer.load_state_dict(optimizer_state)

    def standardize(self, X):
        return (X - self.center) / self.scale

    def train(self, est, arrays, epoch):
        """One pass over the tensors ``arrays`` at the warm-up factors of ``epoch``."""
        beta = est.beta * warmup_factor(epoch, self.beta_warm, est.beta_start)
        weight = 0.0 if self.module.aligner is None else est.alignment_weight
        weight = weight * warmup_factor(epoch, self.align_warm)
        record = train_pass(
            self.module, self.optimizers, arrays, batch_size=self.batch_size, beta=beta,
            alignment_weight=weight, generator=self.generator,
            noise_generator=self.noise_generator, probes=getattr(self, "probes", None),
        )
        record.update(beta=beta, alignment_weight=weight)
        return record

    def arrays(self, X_std, rows=None):
        """The training tensors of a block that the teacher was not fitted on; ``rows``:
        the block's indices among all rows (they choose which rows tied at the trimming
        threshold leave the ELBO)."""
        target, err = density_targets(self.density, X_std, fitted_on_X=False)
        return block_arrays(X_std, target, err, self.threshold, self.device, rows)

    def fitted_module(self):
        """A float64 CPU copy in eval mode with the real standardisation, for scoring."""
        module = copy.deepcopy(self.module).cpu().double().eval()
        module.set_standardization(self.center, self.scale)
        return module


def _seed(est, salt=0):
    rng = check_random_state(est.random_state)
    seed = int(rng.randint(np.iinfo(np.int32).max))
    return seed if not salt else int(np.random.SeedSequence([seed, salt]).generate_state(1)[0])


def start_from_block(est, X):
    """A trainer for the validated first block ``X``, and its training tensors (the
    teacher fitted on ``X`` gives its leave-one-out targets, as ``fit`` does)."""
    seed = _seed(est)
    center, scale = standardization(X, standardizes(est))
    X_std = (X - center) / scale
    density = fit_density(est.density, X_std, est.n_components, seed)
    target, err = density_targets(density, X_std)
    trainer = BlockTrainer(
        est, center=center, scale=scale, density=density,
        threshold=trim_threshold(target, est.trim_fraction), X_init_std=X_std, seed=seed,
        n_rows=X.shape[0], probe_from=X_std,
    )
    arrays = training_arrays(X_std, target, err, est.trim_fraction, trainer.device)
    return trainer, arrays


def continue_fitted(est, X):
    """A trainer that continues the fitted network of ``est`` (after ``fit`` or ``load``)
    with fresh optimisers, and the training tensors of ``X``. The teacher is the kept
    ``density_`` if any, else one fitted on ``X``."""
    center = est.module_.center.numpy().astype(float)
    scale = est.module_.scale.numpy().astype(float)
    X_std = (X - center) / scale
    seed = _seed(est, salt=est.n_iter_ + 1)
    density, fitted_here = est.density_, est.density_ is None
    if fitted_here:
        density = fit_density(est.density, X_std, est.n_components, seed)
    target, err = density_targets(density, X_std, fitted_on_X=fitted_here)
    trainer = BlockTrainer(
        est, center=center, scale=scale, density=density,
        threshold=trim_threshold(target, est.trim_fraction), X_init_std=None, seed=seed,
        n_rows=X.shape[0], module=est.module_, probe_from=X_std,
    )
    trainer.passes = est.n_iter_
    trainer.continued = True  # the fit's own rows are not in the threshold sample
    arrays = training_arrays(X_std, target, err, est.trim_fraction, trainer.device)
    return trainer, arrays


#: Settings added to ``FIXED_BY_FIRST_CALL`` after models were pickled without them, and
#: the value those models trained with.
NEW_SETTING_DEFAULTS = {"alignment_probes": 0.0}

#: Parameters that the first ``partial_fit`` call fixes (the network, its training and its
#: data handling); changing one between calls is refused rather than silently ignored.
FIXED_BY_FIRST_CALL = (
    "n_components", "hidden_layer_sizes", "activation", "prior", "aligner", "likelihood",
    "decoder_std", "standardize", "density", "trim_fraction", "alignment_probes", "batch_size",
    "learning_rate_init", "max_iter", "beta_warmup", "alignment_warmup", "device",
    "random_state",
)
#: Rows of the uniform sample of every row seen that ``partial_fit`` sets the threshold on.
THRESHOLD_SAMPLE_ROWS = 10_000
#: After fit or load, the rows ``partial_fit`` must have seen before the threshold comes
#: from them rather than staying the fit's (quantiles of a handful of rows mean nothing).
THRESHOLD_MIN_ROWS_AFTER_FIT = 1_000


def keeps_fitted_threshold(trainer):
    """Whether ``partial_fit``, continuing a model fitted by fit or load, keeps the fit's
    threshold and score scales (fewer than ``THRESHOLD_MIN_ROWS_AFTER_FIT`` rows seen)."""
    return getattr(trainer, "continued", False) \
        and trainer.rows_seen < THRESHOLD_MIN_ROWS_AFTER_FIT


def fixed_settings(est):
    """The values of ``FIXED_BY_FIRST_CALL``, comparable across calls (and after a pickle
    or a copy of the model: see :func:`fingerprint`)."""
    params = est.get_params(deep=False)
    return {name: fingerprint(params[name]) for name in FIXED_BY_FIRST_CALL}


def changed_settings(est, settings):
    """The names of ``FIXED_BY_FIRST_CALL`` whose value differs from ``settings`` (those
    of the first call). A model pickled by an older skdivae kept each value's ``repr``
    string, and is compared that way; a setting added since (``alignment_probes``) was its
    default then."""
    params, current = est.get_params(deep=False), fixed_settings(est)
    settings = {**{name: fingerprint(NEW_SETTING_DEFAULTS[name]) for name in NEW_SETTING_DEFAULTS
                   if name not in settings}, **settings}
    return [name for name in FIXED_BY_FIRST_CALL
            if (_ADDRESS.sub("", settings[name]) != _ADDRESS.sub("", repr(params[name]))
                if isinstance(settings[name], str) else settings[name] != current[name])]


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _cell_contents(cell):
    """What a closure's cell holds (a marker for a cell not yet filled)."""
    try:
        return cell.cell_contents
    except ValueError:
        return "<empty cell>"


def fingerprint(value, depth=0, seen=None):
    """A comparable description of a parameter's value, by structure rather than by
    ``repr``: a scikit-learn estimator is its class and the fingerprints of its
    parameters (its ``repr`` elides the middle of long pipelines, where a change would go
    unseen), containers are taken element by element, arrays and tensors by a digest of
    their content, a function by its code, defaults and the values its closure holds (a
    ``functools.partial`` by its function and arguments), and a numpy random generator by
    its type alone (its state advances as it is drawn from, and its ``repr`` holds a
    memory address that a pickle or a copy changes). Another object whose ``repr`` holds
    an address is its attributes; anything else is its type and its ``repr``. An object
    met again in the same walk (functions that call each other, a cycle) is the order in
    which it was first met, so the walk visits each object once."""
    seen = {} if seen is None else seen
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if depth > 32:  # (nesting no parameter needs)
        return (kind, _ADDRESS.sub("", repr(value)))
    deeper = depth + 1
    if isinstance(value, (np.random.RandomState, np.random.Generator)):
        return (kind,)
    if isinstance(value, (list, dict, functools.partial)) or hasattr(value, "__code__") \
            or hasattr(value, "__dict__"):  # what can hold itself or be met by two paths
        if id(value) in seen:
            return (kind, "seen", seen[id(value)][0])
        seen[id(value)] = (len(seen), value)  # (the object kept alive: its id is not reused)

    def walk(v):
        return fingerprint(v, deeper, seen)

    if hasattr(value, "get_params") and hasattr(value, "set_params"):
        try:
            params = value.get_params(deep=False)
        except Exception:  # not a scikit-learn estimator after all
            params = None
        if isinstance(params, dict):
            return (kind, tuple((k, walk(v)) for k, v in sorted(params.items())))
    if isinstance(value, (list, tuple)):
        return (kind, tuple(walk(v) for v in value))
    if isinstance(value, dict):
        return (kind, tuple((repr(k), walk(v))
                            for k, v in sorted(value.items(), key=lambda kv: repr(kv[0]))))
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return (kind, value.shape, walk(value.tolist()))
        digest = hashlib.blake2b(np.ascontiguousarray(value).tobytes(), digest_size=16)
        return (kind, value.dtype.str, value.shape, digest.hexdigest())
    if isinstance(value, functools.partial):
        return (kind, walk(value.func), walk(value.args), walk(value.keywords))
    code = getattr(value, "__code__", None)
    if code is not None:
        cells = getattr(value, "__closure__", None) or ()
        return (kind, getattr(value, "__qualname__", ""), code.co_code, walk(code.co_consts),
                walk(getattr(value, "__defaults__", None)),
                walk(getattr(value, "__kwdefaults__", None)),
                walk([_cell_contents(c) for c in cells]))
    text = repr(value)
    if _ADDRESS.search(text) and hasattr(value, "__dict__"):
        return (kind, walk(vars(value)))
    return (kind, text)


def check_block(est, X):
    """Validate a ``partial_fit`` block before anything fitted is touched: a block that
    fails here leaves the model as it was. Returns the validated block."""
    first = not hasattr(est, "module_")
    trainer = getattr(est, "_block_trainer_", None)
    fits_a_teacher = first or (trainer is None and est.density_ is None)
    X = validate_real(est, X, reset=first,
                      ensure_min_samples=3 if fits_a_teacher else 1)
    est._check_training_input(X)
    check_magnitude(X)  # as fit refuses it, before any training
    if trainer is not None:
        changed = changed_settings(est, trainer.settings)
    elif not first:  # after fit or load: the network must be the one the parameters describe
        changed = [] if network_matches(est) else ["the network's parameters"]
    else:
        changed = []
    if changed:
        raise ValueError(
            f"{', '.join(changed)} changed since the model was first trained; partial_fit "
            "continues that model and cannot change them. Set them back, or call fit to "
            "start over."
        )
    return X


def remember_rows(trainer, X):
    """Keep a uniform sample of at most ``THRESHOLD_SAMPLE_ROWS`` of every row seen
    (reservoir sampling; the first rows in their order while it fills)."""
    room = THRESHOLD_SAMPLE_ROWS - trainer.sample.shape[0]
    trainer.sample = np.concatenate([trainer.sample, X[:max(room, 0)]])
    rest = X[max(room, 0):]
    if rest.shape[0]:
        seen = trainer.rows_seen + max(room, 0) + np.arange(rest.shape[0])
        slot = trainer.sample_rng.integers(0, seen + 1)
        keep = slot < THRESHOLD_SAMPLE_ROWS
        trainer.sample[slot[keep]] = rest[keep]
    trainer.rows_seen += X.shape[0]


def partial_fit_step(est, X):
    """One ``partial_fit`` call on the block ``X`` validated by :func:`check_block`: train
    one pass over it and set the fitted attributes (all but the threshold); returns the
    rows the threshold is set on (a uniform sample of every row seen)."""
    first = not hasattr(est, "module_")
    trainer = getattr(est, "_block_trainer_", None)
    if first:
        trainer, arrays = start_from_block(est, X)
    elif trainer is None:
        trainer, arrays = continue_fitted(est, X)
    else:
        seen = getattr(trainer, "rows_seen", 0)
        arrays = trainer.arrays(trainer.standardize(X), seen + np.arange(X.shape[0]))
    if not hasattr(trainer, "settings"):
        trainer.settings = fixed_settings(est)
        trainer.sample = np.empty((0, X.shape[1]))
        trainer.rows_seen = 0
        trainer.sample_rng = np.random.default_rng(trainer.passes)
    record = trainer.train(est, arrays, trainer.passes)
    trainer.passes += 1
    record["epoch"] = trainer.passes
    remember_rows(trainer, X)
    est._block_trainer_ = trainer
    est.module_ = trainer.fitted_module()
    est.history_ = [*getattr(est, "history_", []), record]
    est.loss_curve_ = [h["loss"] for h in est.history_]
    est.n_iter_ = trainer.passes
    est.batch_size_ = trainer.batch_size
    est.device_ = trainer.device
    est.density_ = trainer.density if est.keep_density else None
    est.density_dim_ = density_dim(trainer.density, est.n_components)
    est._n_features_out = int(est.n_components)
    return trainer.sample
