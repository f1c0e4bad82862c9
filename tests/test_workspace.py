"""Scoring's reusable buffers: the same scores, in memory allocated once per call."""

import functools

import numpy as np
import pytest
import torch
from torch import nn

from skdivae import DiVAE
from skdivae._nn.mlp import make_mlp
from skdivae._nn.workspace import Workspace, mlp_into
from skdivae._torch_utils import batched_no_grad


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu", "logistic"])
def test_mlp_into_equals_the_mlp(activation):
    torch.manual_seed(0)
    mlp = make_mlp(3, (8, 5), 4, activation).double()
    ws = Workspace()
    for rows in (40, 7, 40):  # a smaller chunk takes the first rows of the same buffers
        h = torch.randn(rows, 3, dtype=torch.float64)
        before = h.clone()
        with torch.no_grad():
            out, owned = mlp_into(mlp, h, ws)
            assert torch.equal(out, mlp(h))
        assert owned
        assert torch.equal(h, before)  # the input is not written to


def test_mlp_into_runs_other_layers_as_they_are():
    class Doubled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    torch.manual_seed(0)
    hooked = nn.ReLU()
    hooked.register_forward_hook(lambda module, args, out: out + 1.0)
    mlp = nn.Sequential(nn.Linear(3, 6, bias=False), nn.Softplus(), nn.ELU(alpha=0.3),
                        Doubled(6, 4), nn.ReLU(), nn.Linear(4, 4), hooked).double()
    h = torch.randn(10, 3, dtype=torch.float64) * 3
    with torch.no_grad():
        out, owned = mlp_into(mlp, h, Workspace())
        assert torch.equal(out, mlp(h))
    assert not owned  # the hooked layer made the last tensor


def test_a_decoder_without_linear_layers_leaves_its_input_alone():
    h = torch.randn(5, 2, dtype=torch.float64)
    out, owned = mlp_into(nn.Sequential(nn.Identity()), h, Workspace())
    assert out is h and not owned


def test_workspace_reuses_and_replaces_buffers():
    ws, like = Workspace(), torch.zeros(1, dtype=torch.float64)
    first = ws.take("a", 16, 4, like)
    assert first.is_contiguous() and first.shape == (16, 4)
    assert ws.take("a", 8, 4, like).data_ptr() == first.data_ptr()  # the same memory
    assert ws.take("a", 32, 4, like).shape == (32, 4)  # more rows: a new buffer
    assert ws.take("a", 32, 5, like).shape == (32, 5)
    assert ws.take("a", 4, 5, torch.zeros(1)).dtype == torch.float32


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("params", [{}, {"prior": "gmm", "standardize": False},
                                    {"decoder_std": 0.5, "activation": "tanh"}])
def test_elbo_with_a_workspace_is_the_same_chunk_by_chunk(params):
    X = np.random.default_rng(0).normal(size=(150, 5)) * [1, 2, 3, 4, 100]
    est = DiVAE(n_components=3, hidden_layer_sizes=(8,), max_iter=3, random_state=0,
                **params).fit(X)
    module = est.module_
    # Chunks of 64, 64 and 22 rows through one workspace, every result kept until the
    # end: a result that pointed into a reused buffer would be overwritten by then.
    chunked = batched_no_grad(functools.partial(module.elbo, workspace=Workspace()), X, 64)
    plain = batched_no_grad(module.elbo, X, 64)
    assert np.array_equal(chunked, plain)
    with torch.no_grad():
        whole = module.elbo(torch.as_tensor(X)).numpy()
    np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-9)
    assert np.array_equal(est.score_samples(X), est.score_samples(X))


def _fitted_module(**params):
    X = np.random.default_rng(1).normal(size=(120, 4)) * [1, 2, 3, 50]
    est = DiVAE(n_components=2, hidden_layer_sizes=(6,), max_iter=2, random_state=0,
                **params).fit(X)
    return est.module_, torch.as_tensor(X[:40])


def _last_linear_without_bias(module):
    last = module.decoder[-1]
    plain = nn.Linear(last.in_features, last.out_features, bias=False).double()
    plain.weight.data.copy_(last.weight.data)
    module.decoder[-1] = plain


def _last_linear_hooked(module):
    module.decoder[-1].register_forward_hook(lambda layer, args, out: out * 1.5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("params", [{}, {"standardize": False}, {"decoder_std": 0.5}])
@pytest.mark.parametrize("change", [None, _last_linear_without_bias, _last_linear_hooked])
def test_sigma_log_likelihood_is_the_decoder_at_the_sigma_points(params, change):
    """The scoring path (residuals out of the last layer's product) computes the mean
    log-likelihood over the sigma points, whatever the last layer is."""
    module, x = _fitted_module(**params)
    if change is not None:
        change(module)
    with torch.no_grad():
        q = module.posterior(x)
        expected = module.log_likelihood(module.sigma_points(q), x).mean(0)
        fast = module._sigma_log_likelihood(module.sigma_points(q), x, Workspace())
    torch.testing.assert_close(fast, expected, rtol=1e-12, atol=1e-10)
    # Autograd on: the ELBO runs the plain expression, with the same value.
    grad_path = module.elbo(x)
    with torch.no_grad():
        torch.testing.assert_close(module.elbo(x), grad_path.detach(), rtol=1e-12, atol=1e-10)
