"""Training control: the convergence rule (warn only when the loss is still falling at
max_iter), the automatic epoch budget (max_iter="auto"), and the order of an epoch's
mini-batches."""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skdivae import DiVAE
from skdivae._training import loss_still_falling


def test_loss_still_falling_separates_trend_from_noise():
    rng = np.random.default_rng(0)
    flat = 5.0 + 0.02 * rng.normal(size=10)
    falling = 5.0 - 0.05 * np.arange(10) + 0.02 * rng.normal(size=10)
    tiny_trend = 5.0 - 1e-5 * np.arange(10)
    assert not loss_still_falling(flat)
    assert loss_still_falling(falling)
    assert not loss_still_falling(tiny_trend)  # below 0.1% of the loss per epoch
    assert not loss_still_falling(falling[::-1])  # rising is not "still falling"
    assert not loss_still_falling([3.0, 2.0])  # too short to tell


def _warnings(**params):
    X = np.random.default_rng(0).normal(size=(300, 4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DiVAE(n_components=2, hidden_layer_sizes=(16,), random_state=0, **params).fit(X)
    return [w for w in caught if issubclass(w.category, ConvergenceWarning)]


def test_converged_long_fit_does_not_warn():
    assert _warnings(max_iter=300) == []


def test_short_fit_warns_at_the_callers_line():
    # 6 epochs, 3 of them after the default warm-ups: too few to tell, and it says so
    caught = _warnings(max_iter=6)
    assert len(caught) == 1
    assert "too few to tell" in str(caught[0].message)
    assert "still falling" not in str(caught[0].message)
    assert caught[0].filename == __file__


def test_a_fit_whose_loss_still_falls_says_so():
    caught = _warnings(max_iter=12)
    assert len(caught) == 1 and "still falling" in str(caught[0].message)


@pytest.mark.parametrize("max_iter", [1])
def test_a_single_epoch_does_not_warn(max_iter):
    assert _warnings(max_iter=max_iter) == []


def _betas(**params):
    X = np.random.default_rng(0).normal(size=(60, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = DiVAE(n_components=2, hidden_layer_sizes=(4,), random_state=0, **params).fit(X)
    return [h["beta"] for h in est.history_], [h["alignment_weight"] for h in est.history_]


@pytest.mark.parametrize(
    "params, beta_full_at",
    [
        ({"max_iter": 20}, 10),  # auto: half of max_iter...
        ({"max_iter": 140}, 50),  # ...but at most 50 epochs
        ({"max_iter": 20, "beta_warmup": 0.25}, 5),  # a share
        ({"max_iter": 20, "beta_warmup": 4}, 4),  # a number of epochs
    ],
)
def test_warm_up_length(params, beta_full_at):
    betas, _ = _betas(**params)
    assert betas[beta_full_at] == pytest.approx(1.0)
    assert betas[beta_full_at - 1] < 1.0


def test_default_warm_up_is_unchanged_at_the_default_max_iter():
    from skdivae._training import warmup_epochs

    assert warmup_epochs("auto", 100) == warmup_epochs(0.5, 100) == 50
    assert warmup_epochs("auto", 400) == 50 and warmup_epochs(0.5, 400) == 200
    assert warmup_epochs(1.0, 100) == 100 and warmup_epochs(1, 100) == 1


@pytest.mark.parametrize("n_samples, batch_size, expected", [
    (7_000, 128, 100), (256_000, 128, 100), (1_000_000, 128, 25), (10**8, 128, 10), (500, 1, 100),
])
def test_auto_epoch_budget_caps_the_number_of_steps(n_samples, batch_size, expected):
    from skdivae._training import epoch_budget

    assert epoch_budget("auto", n_samples, batch_size) == expected
    assert epoch_budget(37, n_samples, batch_size) == 37


def test_auto_max_iter_is_100_epochs_on_small_data(small_tabular, no_convergence_warnings):
    auto = DiVAE(n_components=2, hidden_layer_sizes=(8,), random_state=0, tol=0.0,
                 n_iter_no_change=1000).fit(small_tabular)
    fixed = DiVAE(n_components=2, hidden_layer_sizes=(8,), random_state=0, tol=0.0,
                  n_iter_no_change=1000, max_iter=100).fit(small_tabular)
    assert auto.n_iter_ == fixed.n_iter_ == 100
    np.testing.assert_array_equal(auto.score_samples(small_tabular), fixed.score_samples(small_tabular))


def test_auto_max_iter_shortens_training_on_many_batches(small_tabular, monkeypatch,
                                                         no_convergence_warnings):
    import skdivae._training as training

    monkeypatch.setattr(training, "AUTO_MAX_STEPS", 40)  # 210 rows / 16 per batch = 14 steps
    est = DiVAE(n_components=2, hidden_layer_sizes=(8,), batch_size=16, random_state=0, tol=0.0,
                n_iter_no_change=1000).fit(small_tabular)
    assert est.n_iter_ == 10  # 40 // 14 = 2, raised to the 10-epoch floor


class _RecordingModule(torch.nn.Module):
    """Stands in for VAEModule in ``_run_epoch``: records the batches it is given; its
    flow chunks' log-determinants are the chunks' first feature."""

    def __init__(self, update_every=None):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.aligner = None if update_every is None else SimpleNamespace(update_every=update_every)
        self.batches, self.chunks = [], []

    def auxiliary_loss(self, x):
        self.chunks.append(x.clone())
        return (self.w * 0.0).sum(), x[:, 0].clone()

    def loss(self, x, target, weight, beta, alignment_weight, log_det, elbo_weight, generator):
        self.batches.append([None if t is None else t.clone()
                             for t in (x, target, weight, elbo_weight, log_det)])
        total = (self.w * x).sum() + 0.0 * self.w
        zero = torch.zeros(())
        return {"loss": total, "recon": zero, "kl": zero, "align": zero}


@pytest.mark.parametrize("update_every", [None, 3])
def test_epoch_batches_follow_the_order_across_gather_blocks(monkeypatch, update_every):
    from skdivae import _training

    # Blocks of 96 rows (2 features): two flow chunks of 48 rows each, or six batches;
    # 230 rows give several blocks and a partial last block, chunk and batch.
    monkeypatch.setattr(_training, "BLOCK_ELEMENTS", 200)
    X = torch.arange(230 * 2, dtype=torch.float32).reshape(230, 2)
    target, weight = torch.arange(230.0), -torch.arange(230.0)
    elbo_weight = (torch.arange(230) % 3 > 0).float()
    order = torch.randperm(230, generator=torch.Generator().manual_seed(0))
    module = _RecordingModule(update_every)
    optimizers = (torch.optim.SGD(module.parameters(), lr=0.0),
                  None if update_every is None else torch.optim.SGD([module.w], lr=0.0))
    _training._run_epoch(module, optimizers, X, target, weight, elbo_weight, order, 16,
                         1.0, 1.0, None)
    chunk = 16 if update_every is None else 48
    expected = [order[c : c + chunk][i : i + 16] for c in range(0, 230, chunk)
                for i in range(0, order[c : c + chunk].numel(), 16)]
    if update_every is not None:  # batches restart at each flow chunk of 48 rows
        assert len(module.chunks) == 5
        for rows, start in zip(module.chunks, range(0, 230, 48), strict=True):
            assert torch.equal(rows, X[order[start : start + 48]])
    assert len(module.batches) == len(expected)
    for (x, t, w, ew, log_det), idx in zip(module.batches, expected):
        assert torch.equal(x, X[idx]) and torch.equal(t, target[idx])
        assert torch.equal(w, weight[idx]) and torch.equal(ew, elbo_weight[idx])
        if update_every is None:
            assert log_det is None
        else:  # the slice of its chunk's log-determinants that belongs to these rows
            assert torch.equal(log_det, X[idx, 0])


@pytest.mark.parametrize("warmup, warm_epochs", [(4, 4), (0.25, 5)])
def test_early_stopping_reference_is_the_first_epoch_at_full_weights(warmup, warm_epochs):
    # With a tolerance no epoch can meet, the first monitored epoch sets the reference and
    # the next one stops training (n_iter_no_change=1). The reference must be the first
    # epoch at full beta and full alignment weight, not the last warm-up epoch (cheaper).
    X = np.random.default_rng(0).normal(size=(60, 3))
    est = DiVAE(n_components=2, hidden_layer_sizes=(4,), random_state=0, max_iter=20,
                beta_warmup=warmup, alignment_warmup=warmup, tol=1e9,
                n_iter_no_change=1).fit(X)
    reference = est.history_[-2]
    assert reference["beta"] == pytest.approx(1.0)
    assert reference["alignment_weight"] == pytest.approx(est.alignment_weight)
    assert est.history_[-3]["beta"] < 1.0
    assert est.n_iter_ == warm_epochs + 2


def test_verbose_explains_warm_up_units_stop_and_threshold(capsys):
    X = np.random.default_rng(0).normal(size=(80, 3))
    DiVAE(n_components=2, hidden_layer_sizes=(4,), random_state=0, max_iter=20, verbose=1,
          tol=1e9, n_iter_no_change=1).fit(X)
    out = capsys.readouterr().out
    assert "nats" in out and "negative log-likelihood" in out
    assert "epoch 1/20  (warm-up)" in out and "epoch 12/20  loss" in out
    assert "stopped at epoch 12: the training loss did not improve" in out
    assert "scoring the 80 training rows to set the threshold" in out


def test_the_automatic_budget_does_not_warn_but_a_shorter_chosen_one_does(monkeypatch):
    # max_iter="auto" with the loss still falling is silent, and so is an int at least as
    # large as the automatic budget (the same fit); a shorter max_iter set by the user
    # warns (docs/results/convergence.md).
    import skdivae._training as training

    monkeypatch.setattr(training, "AUTO_EPOCHS", 10)
    assert _warnings(max_iter="auto") == []
    assert _warnings(max_iter=10) == [] and _warnings(max_iter=12) == []
    monkeypatch.setattr(training, "AUTO_EPOCHS", 20)
    assert len(_warnings(max_iter=10)) == 1

