"""Probe points: rows off the training data at which the aligner also pulls the
log-prior towards the teacher's log-density (``DiVAE(alignment_probes=...)``).

The paper aligns log p_Z(mu(x)) with rho(x) at the training rows only. Nothing then
tells the encoder where to put rows unlike any it trained on, and it tends to put them
where the prior is dense: trained on clean rows, the aligned log-prior can rank
out-of-distribution rows as the *most* normal (docs/results/score_inversion.md). The
teacher is defined everywhere, and low far from the data, so the penalty can be applied
off the data too. Probes are drawn once per fit from the standardised training rows:

- half are training rows plus isotropic Gaussian noise, with a scale per probe drawn
  log-uniformly between ``NOISE_SCALES`` times the columns' standard deviation (near
  the data, then well away from it);
- half take each column from a different random training row (the product of the
  marginals: every value is a normal one, the combination is not).

Each mini-batch of real rows brings ``alignment_probes`` times as many probes, drawn at
random; they pass through the encoder and the prior only (never the decoder or the ELBO),
and their residuals join the real rows' in the aligner's penalty. Every mini-batch has
at least one probe. ``partial_fit`` draws its probes from its first block (after ``fit``
or ``load``, from the first block it continues on); the streamed fit from the teacher's
sample of rows.
"""

import math
import warnings

import numpy as np
import torch

from ._nn.aligners import precision_weight
from ._torch_utils import as_tensor
from ._training_data import query_targets

#: The noise scales of the noisy probes, in columns' standard deviations (log-uniform).
NOISE_SCALES = (0.25, 2.0)


def probe_rows(X_std, n_probes, rng):
    """``n_probes`` probe rows from the standardised training rows ``X_std``: the first
    half noisy copies of random rows, the rest rows whose columns come from different
    random rows. ``rng`` is a numpy Generator."""
    n, d = X_std.shape
    n_noisy = n_probes // 2
    spread = X_std.std(axis=0)
    spread = np.where(spread > 0, spread, 1.0)
    low, high = np.log(NOISE_SCALES[0]), np.log(NOISE_SCALES[1])
    scales = np.exp(rng.uniform(low, high, size=(n_noisy, 1)))
    noisy = X_std[rng.integers(n, size=n_noisy)] + scales * spread * rng.normal(size=(n_noisy, d))
    mixed = X_std[rng.integers(n, size=(n_probes - n_noisy, d)), np.arange(d)]
    return np.vstack([noisy, mixed])


def count(value):
    """A number of probes, ``value`` (a share times a number of rows) rounded up, at least
    1; rounding error is not rounded up (``1.1 * 100`` gives 110, not 111)."""
    return max(1, math.ceil(value - 1e-9))


def uses_probes(est, module):
    """Whether ``est``'s fit aligns at probe points: ``alignment_probes > 0``, a positive
    ``alignment_weight`` and an aligner that reads nothing but the log-prior (the direct
    aligner). The flow aligner reads the input through its own flow and keeps the paper's
    formulation: asked for probes, it warns that it takes none."""
    aligner = module.aligner
    if est.alignment_probes <= 0 or aligner is None or est.alignment_weight == 0:
        return False
    if getattr(aligner, "needs_input", False):
        warnings.warn(
            f"alignment_probes={est.alignment_probes!r} is ignored: the aligner "
            f"{type(aligner).__name__} reads the input itself (the flow aligner keeps the "
            "paper's formulation); probes work with the direct aligner.", UserWarning)
        return False
    return True


def make_probes(est, module, density, X_std, seed, device):
    """``(rows, target, precision weight, ratio)`` as tensors on ``device`` (the ratio a
    float), for training rows ``X_std`` (numpy, standardised), or ``None`` when the fit
    uses no probes. The probes' count is ``ceil(alignment_probes * n_rows)``, at least 1;
    their teacher values are queries (as for new rows), with the teacher's errors."""
    if not uses_probes(est, module):
        return None
    X_std = np.asarray(X_std, dtype=np.float64)
    rng = np.random.default_rng([int(seed), 2])  # its own stream: the fit's stays as it was
    n_probes = count(est.alignment_probes * X_std.shape[0])
    rows = probe_rows(X_std, n_probes, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        target, err = query_targets(density, rows)
    # A teacher of bounded support (a tophat kernel) gives -inf far from the data: those
    # probes have no target to pull towards, and are left out.
    usable = np.isfinite(target) & np.isfinite(err) & (err > 0)
    if not usable.any():
        return None
    rows, target, err = rows[usable], target[usable], err[usable]
    weight = precision_weight(torch.tensor(err)).numpy()
    return (as_tensor(rows, device=device), as_tensor(target, device=device),
            as_tensor(weight, device=device), float(est.alignment_probes))


def probe_batches(probes, n_batches, batch_size, generator):
    """Indices of the probes for ``n_batches`` mini-batches of ``batch_size`` real rows:
    ``(n_batches, ceil(ratio * batch_size))`` draws with replacement from ``generator``
    (``None`` without probes)."""
    if probes is None:
        return None
    per_batch = count(probes[3] * batch_size)
    return torch.randint(probes[0].shape[0], (n_batches, per_batch), generator=generator)


def batch_probes(probes, draws, k, n_rows, batch_size):
    """The probes of mini-batch ``k`` (``n_rows`` real rows, the last one may be short):
    ``(rows, target, weight)`` or ``None``."""
    if probes is None:
        return None
    take = draws[k][: count(draws.shape[1] * n_rows / batch_size)]
    take = take.to(probes[0].device)
    return tuple(t.index_select(0, take) for t in probes[:3])
