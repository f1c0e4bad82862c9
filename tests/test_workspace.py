"""Scoring's reusable buffers: the same scores, in memory allocated once per call."""

import numpy as np
import pytest
import torch
from torch import nn

from skdivae import DiVAE
from skdivae._nn.mlp import make_mlp
from skdivae._nn.workspace import Workspace, mlp_into


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu", "logistic"])
def test_mlp_into_equals_the_mlp(activation):
    torch.manual_seed(0)
    mlp = make_mlp(3, (8, 5), 4, activation).double()
    ws = Workspace()
    for rows in (40, 7, 40):  # a smaller chunk takes the first rows of the same buffers
        h = torch.randn(rows, 3, dtype=torch.float64)
        with torch.no_grad():
            assert torch.equal(mlp_into(mlp, h, ws), mlp(h))
        assert torch.equal(h, h.clone())  # the input is not written to


def test_mlp_into_runs_other_layers_as_they_are():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(3, 6, bias=False), nn.Softplus(), nn.ReLU(),
                        nn.Linear(6, 2)).double()
    h = torch.randn(10, 3, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(mlp_into(mlp, h, Workspace()), mlp(h))


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
    x = torch.tensor(X, dtype=torch.float64)
    ws = Workspace()
    with torch.no_grad():
        for start in range(0, 150, 64):  # 64, 64, 22 rows through the same buffers
            chunk = x[start:start + 64]
            assert torch.equal(est.module_.elbo(chunk, workspace=ws), est.module_.elbo(chunk))
    assert np.array_equal(est.score_samples(X), est.score_samples(X))
