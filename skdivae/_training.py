"""The training loop of DiVAE. Imports torch, never scikit-learn estimators."""

import copy
import math
import time
from numbers import Integral

import numpy as np
import torch

from ._flat_adam import FlatAdam
from ._probes import batch_probes, probe_batches

TERMS = ("loss", "recon", "kl", "align", "aux")


#: With ``"auto"``, warm-ups last half of ``max_iter`` but at most this many epochs, so
#: that more epochs do not mean a longer warm-up (nor a later start of early stopping).
AUTO_WARMUP_SHARE, AUTO_WARMUP_MAX_EPOCHS = 0.5, 50


#: ``max_iter="auto"``: this many epochs, but at most ``AUTO_MAX_STEPS`` mini-batch steps in
#: all (and at least ``AUTO_MIN_EPOCHS`` epochs), so large tables train in minutes. Below
#: ``AUTO_MAX_STEPS / AUTO_EPOCHS`` batches per epoch (256 000 rows at batch 128) it is 100.
AUTO_EPOCHS, AUTO_MAX_STEPS, AUTO_MIN_EPOCHS = 100, 200_000, 10


def epoch_budget(max_iter, n_samples, batch_size):
    """Epochs to train: ``max_iter`` itself, or for ``"auto"`` 100 epochs capped at 200 000
    mini-batch steps (at least 10 epochs)."""
    if max_iter != "auto":
        return int(max_iter)
    steps_per_epoch = math.ceil(n_samples / batch_size)
    return int(max(AUTO_MIN_EPOCHS, min(AUTO_EPOCHS, AUTO_MAX_STEPS // steps_per_epoch)))


def warmup_epochs(warmup, max_iter):
    """Epochs of a warm-up: ``"auto"``, a share of ``max_iter`` (float) or a count (int)."""
    if isinstance(warmup, str):
        return min(AUTO_WARMUP_SHARE * max_iter, AUTO_WARMUP_MAX_EPOCHS)
    if isinstance(warmup, Integral):
        return float(min(warmup, max_iter))
    return float(warmup) * max_iter


def warmup_factor(epoch, n_warm, start=0.0):
    """Linear ramp from ``start`` to 1 over the first ``n_warm`` epochs."""
    return 1.0 if n_warm <= 0 else start + (1.0 - start) * min(1.0, epoch / n_warm)


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite."""


def divergence_message(module, epoch=None):
    """What a NaN or infinite training loss means and what to try; a fixed decoder noise
    (``decoder_std``) comes first, since a tiny one overflows the reconstruction term
    whatever the learning rate."""
    where = "" if epoch is None else f" at epoch {epoch}"
    fixed = getattr(module, "fixed_noise", False) and getattr(module, "likelihood", None) == "gaussian"
    first = "a larger decoder_std (the fixed decoder noise divides every residual), " if fixed else ""
    return (f"the training loss became NaN or infinite{where}. Try {first}a smaller "
            "learning_rate_init, scaling the input (e.g. StandardScaler), a smaller "
            "alignment_weight, or likelihood='gaussian' for data outside [0, 1].")


def _fused_adam_ok(module):
    """Fused Adam (one kernel per step) where torch supports it for these parameters."""
    p = next(module.parameters())
    return p.dtype in (torch.float32, torch.float64) and p.device.type in ("cpu", "cuda")


def make_optimizers(module, learning_rate_init):
    """Adam for the VAE; a separate Adam for an aligner with a loss of its own (the flow).

    The split is the paper's gradient routing: the flow is trained only by
    its likelihood, the VAE and prior only by the DiVAE objective.
    """
    aligner = module.aligner
    own = [] if aligner is None else list(aligner.own_parameters())
    own_ids = {id(p) for p in own}
    fused = _fused_adam_ok(module)
    rest = [p for p in module.parameters() if id(p) not in own_ids]
    main = FlatAdam(rest, lr=learning_rate_init, fused=fused)
    aux = None
    if own:
        try:
            aux = FlatAdam(own, lr=aligner.learning_rate or learning_rate_init, fused=fused)
        except Exception:
            main.release()
            raise
    return main, aux


#: Numbers gathered at once (2 MiB in float32), in epoch order, before they are cut into
#: mini-batches: one gather per block of rows instead of one per tensor and step. The
#: block holds whole flow chunks, at least one.
BLOCK_ELEMENTS = 2**19


def _gather(tensors, idx):
    """``t[idx]`` for each tensor (``None`` stays ``None``), by ``index_select``."""
    return [None if t is None else t.index_select(0, idx) for t in tensors]


def _rows(tensors, start, stop):
    """``t[start:stop]`` for each tensor (``None`` stays ``None``): views, no copies."""
    return [None if t is None else t[start:stop] for t in tensors]


def _run_epoch(
    module, optimizers, X, target, weight, elbo_weight, order, batch_size, beta,
    alignment_weight, noise, probes=None, probe_draws=None
):
    """One pass over the data, in the mini-batches of ``order``. With an auxiliary (flow)
    optimiser, the flow takes one step on the union of ``update_every`` consecutive
    mini-batches, whose VAE steps then reuse its detached log-determinants. ``probes``
    and ``probe_draws`` (``_probes.py``): the probe points and which of them each
    mini-batch aligns."""
    optimizer, aux_optimizer = optimizers
    update_every = module.aligner.update_every if aux_optimizer else 1
    chunk_rows = batch_size * update_every
    n_features = X.shape[1] if X.dim() > 1 else 1
    block_rows = chunk_rows * max(1, BLOCK_ELEMENTS // (n_features * chunk_rows))
    sums = dict.fromkeys(TERMS, 0.0)
    n = k = 0
    for block_start in range(0, order.numel(), block_rows):
        block = _gather((X, target, weight, elbo_weight),
                        order[block_start : block_start + block_rows])
        for chunk_start in range(0, block[0].shape[0], chunk_rows):
            chunk = _rows(block, chunk_start, chunk_start + chunk_rows)
            aux, log_det = torch.zeros(()), None
            if aux_optimizer is not None:
                aux, log_det = module.auxiliary_loss(chunk[0])
                aux_optimizer.zero_grad(set_to_none=True)
                aux.backward()
                aux_optimizer.step()
                aux = aux.detach()  # its graph (the flow's saved tensors) can go
            for start in range(0, chunk[0].shape[0], batch_size):
                xb, tb, wb, ew, ld = _rows((*chunk, log_det), start, start + batch_size)
                extra = {} if probes is None else {
                    "probes": batch_probes(probes, probe_draws, k, xb.shape[0], batch_size)}
                terms = module.loss(
                    xb, tb, wb, beta=beta, alignment_weight=alignment_weight, log_det=ld,
                    elbo_weight=ew, generator=noise, **extra,
                )
                k += 1
                terms["aux"] = aux
                # One transfer of every term per step (not one per term).
                values = torch.stack(
                    [terms[key].detach().to(terms["loss"]) for key in TERMS]).tolist()
                if not (math.isfinite(values[0]) and math.isfinite(values[-1])):
                    return None
                optimizer.zero_grad(set_to_none=True)
                terms["loss"].backward()
                optimizer.step()
                for key, value in zip(TERMS, values):
                    sums[key] += value * xb.shape[0]
                n += xb.shape[0]
    return {key: value / n for key, value in sums.items()}


def train_pass(module, optimizers, arrays, *, batch_size, beta, alignment_weight, generator,
               noise_generator, probes=None):
    """One pass over ``arrays`` = ``(X, target, weight, elbo_weight)`` in mini-batches of a
    random order drawn from ``generator``, as one epoch of :func:`fit_loop` does; returns
    the mean terms. For training block by block (``partial_fit``, the streaming fit).
    ``probes``: the probe points (``_probes.make_probes``), or ``None``.

    Raises
    ------
    TrainingDiverged
        If the loss becomes NaN or infinite.
    """
    X = arrays[0]
    module.train()
    order = torch.randperm(X.shape[0], generator=generator).to(X.device)
    draws = probe_batches(probes, math.ceil(X.shape[0] / batch_size), batch_size, generator)
    try:
        record = _run_epoch(module, optimizers, *arrays, order, batch_size, beta,
                            alignment_weight, noise_generator, probes, draws)
    finally:
        module.eval()
    if record is None:
        raise TrainingDiverged(divergence_message(module))
    return record


@torch.no_grad()
def _evaluate(module, X, target, weight, elbo_weight, beta, alignment_weight, batch_size, noise):
    total, n = 0.0, 0
    for start in range(0, X.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        ew = None if elbo_weight is None else elbo_weight[sl]
        terms = module.loss(
            X[sl], target[sl], weight[sl], beta=beta, alignment_weight=alignment_weight, elbo_weight=ew,
            generator=noise,
        )
        total += float(terms["loss"]) * X[sl].shape[0]
        n += X[sl].shape[0]
    return total / n


def fit_loop(module, train, valid=None, **settings):
    """Train ``module`` with Adam (:class:`~skdivae._flat_adam.FlatAdam`); return
    ``(history, status)``.

    ``settings`` are keyword-only: ``batch_size``, ``max_iter``, ``learning_rate_init``,
    ``beta``, ``alignment_weight``, ``beta_warmup``, ``alignment_warmup``, ``tol``,
    ``n_iter_no_change``, ``generator`` and, optional, ``verbose``, ``beta_start``,
    ``noise_generator``, ``probes`` (``_probes.make_probes``: points off the data that
    every mini-batch also aligns; drawn from ``generator`` each epoch).

    ``train`` and ``valid`` are ``(X, target, weight, elbo_weight)`` tuples of
    tensors on the training device (``elbo_weight`` may be ``None``). ``beta``
    and ``alignment_weight`` ramp up linearly over their warm-up shares of
    ``max_iter`` (``beta`` from ``beta_start * beta``, the weight from 0).
    ``generator`` orders the batches and ``noise_generator`` (on the training
    device) draws the reparameterisation noise, so torch's global RNG is not used. After both warm-ups, training stops
    once the monitored loss (validation loss if ``valid`` is given, else the
    training loss) has not improved by ``tol`` for ``n_iter_no_change``
    epochs, as in :class:`~sklearn.neural_network.MLPClassifier`; with a
    validation set the best weights are restored. ``status`` is ``"converged"``
    after such a stop, and also when training ran to ``max_iter`` with a loss that
    no longer falls (:func:`loss_still_falling` on the last epochs);
    ``"still_falling"`` when the loss was still going down at ``max_iter``; and
    ``"too_short"`` when fewer than 5 epochs followed the warm-ups, too few to tell.

    Raises
    ------
    TrainingDiverged
        If the loss becomes NaN or infinite.
    """
    optimizers = []
    try:
        optimizers = make_optimizers(module, settings["learning_rate_init"])
        return _train_epochs(module, optimizers, train, valid, **settings)
    finally:
        for optimizer in optimizers:
            if optimizer is not None:
                optimizer.release()


def _train_epochs(
    module,
    optimizers,
    train,
    valid=None,
    *,
    batch_size,
    max_iter,
    learning_rate_init,
    beta,
    alignment_weight,
    beta_warmup,
    alignment_warmup,
    tol,
    n_iter_no_change,
    generator,
    verbose=0,
    beta_start=0.0,
    noise_generator=None,
    probes=None,
):
    """The epochs of :func:`fit_loop`, with its optimisers."""
    X, target, weight, elbo_weight = train
    history, best, stall, best_state = [], math.inf, 0, None
    beta_warm, align_warm = warmup_epochs(beta_warmup, max_iter), warmup_epochs(alignment_warmup, max_iter)
    warm_end = max(beta_warm, align_warm)
    start_time = time.perf_counter()
    converged = False
    if verbose:
        print(
            "per-row terms in nats: loss = recon + beta * kl + alignment_weight * align; recon is the "
            "negative log-likelihood of a row (below 0 where a Gaussian decoder's density "
            f"exceeds 1). beta and alignment_weight ramp up over {math.ceil(warm_end)} warm-up epochs, so "
            "the loss rises while they do; patience starts after them.",
            flush=True,
        )
    stop_reason = f"reached max_iter={max_iter} epochs"
    for epoch in range(max_iter):
        tic = time.perf_counter()
        epoch_beta = beta * warmup_factor(epoch, beta_warm, beta_start)
        epoch_alignment_weight = alignment_weight * warmup_factor(epoch, align_warm)
        module.train()
        order = torch.randperm(X.shape[0], generator=generator).to(X.device)
        draws = probe_batches(probes, math.ceil(X.shape[0] / batch_size), batch_size, generator)
        record = _run_epoch(
            module, optimizers, X, target, weight, elbo_weight, order, batch_size, epoch_beta,
            epoch_alignment_weight, noise_generator, probes, draws,
        )
        if record is None:
            raise TrainingDiverged(divergence_message(module, epoch + 1))
        record.update(epoch=epoch + 1, beta=epoch_beta, alignment_weight=epoch_alignment_weight)
        module.eval()
        monitored = record["loss"]
        if valid is not None:
            record["valid_loss"] = _evaluate(
                module, *valid, epoch_beta, epoch_alignment_weight, batch_size, noise_generator
            )
            monitored = record["valid_loss"]
        record["time"] = time.perf_counter() - tic
        history.append(record)
        if verbose:
            elapsed = time.perf_counter() - start_time
            extra = f"  valid {record['valid_loss']:.4f}" if valid is not None else ""
            phase = "  (warm-up)" if epoch < warm_end else ""
            print(
                f"epoch {epoch + 1}/{max_iter}{phase}  loss {record['loss']:.4f}  recon "
                f"{record['recon']:.4f}  kl {record['kl']:.4f}  align {record['align']:.4f}"
                f"{extra}  beta {epoch_beta:.2f}  alignment_weight {epoch_alignment_weight:.2f}  "
                f"elapsed {elapsed:.1f}s  left ~{elapsed / (epoch + 1) * (max_iter - epoch - 1):.0f}s "
                "(at most)",
                flush=True,
            )
        if epoch < warm_end:  # still warming up: beta or the weight below full
            continue
        if monitored < best - tol:
            best, stall = monitored, 0
            if valid is not None:
                best_state = copy.deepcopy(module.state_dict())
        else:
            stall += 1
        if stall >= n_iter_no_change:
            converged = True
            monitored_name = "validation loss" if valid is not None else "training loss"
            stop_reason = (
                f"stopped at epoch {epoch + 1}: the {monitored_name} did not improve by "
                f"tol={tol:g} for n_iter_no_change={n_iter_no_change} epochs"
            )
            break
    if verbose:
        restored = "; the best epoch's weights restored" if best_state is not None else ""
        print(f"training {stop_reason}{restored}, in {time.perf_counter() - start_time:.1f}s",
              flush=True)
    if best_state is not None:
        module.load_state_dict(best_state)
    if converged:
        return history, "converged"
    key = "valid_loss" if valid is not None else "loss"
    after_warm = [h[key] for h in history if h["epoch"] - 1 >= warm_end]
    # Fewer than 5 epochs after the warm-ups cannot show that the loss settled.
    if len(after_warm) < 5:
        return history, "too_short"
    if loss_still_falling(after_warm[-max(n_iter_no_change, 5):]):
        return history, "still_falling"
    return history, "converged"


def convergence_message(status, max_iter):
    """The ``ConvergenceWarning`` text for a :func:`fit_loop` ``status`` other than
    ``"converged"``."""
    if status == "too_short":
        return (
            f"DiVAE stopped at max_iter={max_iter} epochs with fewer than 5 of them after "
            "the warm-ups (beta_warmup and alignment_warmup, by default half of max_iter), "
            "too few to tell whether its loss had settled; consider a larger max_iter or "
            "max_iter='auto'."
        )
    return (
        f"DiVAE stopped at max_iter={max_iter} epochs while its loss was still falling; "
        "consider a larger max_iter, and check on labelled rows that it ranks better (the "
        "loss can keep falling, mostly by the decoder's noise shrinking, after the ranking "
        "has settled: the user guide's section 6)."
    )


def loss_still_falling(values, rel_drop=1e-3):
    """Whether a loss curve is still going down: its least-squares trend over ``values``
    falls by more than ``rel_drop`` of the loss's size per epoch *and* by more than twice
    the trend's standard error (so epoch-to-epoch noise alone does not count)."""
    y = np.asarray(values, dtype=float)
    if y.size < 3:
        return False
    t = np.arange(y.size, dtype=float) - (y.size - 1) / 2.0
    slope = float(t @ (y - y.mean()) / (t @ t))
    resid = y - y.mean() - slope * t
    stderr = float(np.sqrt(resid @ resid / (y.size - 2) / (t @ t)))
    return -slope > rel_drop * max(abs(y.mean()), 1.0) and -slope > 2.0 * stderr
