"""The flow-corrected aligner, tested the way normalizing-flow libraries test flows."""

import pickle

import numpy as np
import pytest
import torch

from skdivae import DiVAE, FlowAligner
from skdivae._build import build_module
from skdivae._nn.flow import CouplingFlow, _FlowFunction
from skdivae.priors import GaussianMixturePrior, StandardNormalPrior, VampPrior


def _randomised_flow(n_dims, n_layers=5, hidden=16, seed=0):
    torch.manual_seed(seed)
    flow = CouplingFlow(n_dims, n_layers, hidden).double()
    with torch.no_grad():  # leave the identity start so the test has something to invert
        for p in flow.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return flow


@pytest.mark.parametrize("n_dims", [1, 2, 3, 5])
def test_inverse_of_forward_is_identity(n_dims):
    flow = _randomised_flow(n_dims)
    u = torch.randn(64, n_dims, dtype=torch.float64)
    z, _ = flow(u)
    assert torch.allclose(flow.inverse(z), u, atol=1e-5)
    assert not torch.allclose(z, u)


@pytest.mark.parametrize("n_dims", [1, 2, 3])
def test_log_det_matches_autograd_jacobian(n_dims):
    flow = _randomised_flow(n_dims)
    for u in torch.randn(5, n_dims, dtype=torch.float64):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v)[0], u)
        expected = torch.linalg.slogdet(jac).logabsdet
        assert torch.allclose(flow(u)[1], expected, atol=1e-8)


def _flow_module(prior_spec):
    torch.manual_seed(0)
    X = torch.randn(200, 4)
    return build_module(
        n_features=4, n_latent=2, hidden_layer_sizes=(8,), activation="relu",
        prior=prior_spec, aligner=FlowAligner(n_layers=3, hidden_units=8), likelihood="gaussian",
        center=np.zeros(4), scale=np.ones(4), density_dim=2, X_train=X,
        generator=torch.Generator().manual_seed(0),
    ).double(), X.double()


@pytest.mark.parametrize("prior", [StandardNormalPrior(), GaussianMixturePrior(3), VampPrior(4)])
def test_gradient_routing(prior):
    module, X = _flow_module(prior)
    flow_params = list(module.aligner.parameters())
    with torch.no_grad():  # leave the identity start, where inner layers get zero gradient
        for p in flow_params:
            p.add_(0.1 * torch.randn_like(p))
    other_params = [p for n, p in module.named_parameters() if not n.startswith("aligner.")]
    # The flow loss trains every flow parameter and nothing else (the prior is a constant).
    aux, log_det = module.auxiliary_loss(X[:32])
    aux.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in flow_params)
    assert all(p.grad is None for p in other_params)
    assert not log_det.requires_grad
    module.zero_grad(set_to_none=True)
    # The alignment term reaches the encoder and learnable prior, never the flow.
    target = torch.full((32,), 2.0, dtype=torch.float64)
    terms = module.loss(X[:32], target, torch.ones(32, dtype=torch.float64))
    terms["align"].backward()
    assert all(p.grad is None for p in flow_params)
    assert module.encoder.mlp[0].weight.grad.abs().sum() > 0
    for name, p in module.prior.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_aligned_log_density_is_density_of_pca_coordinates():
    # With the identity flow and N(0, I) prior, the prediction is log N(u) minus the
    # log of the PCA standard deviations: the density of the unstandardised PCA coordinates.
    module, X = _flow_module(StandardNormalPrior())
    aligner = module.aligner
    u = aligner.coordinates(X)
    assert torch.allclose(u.std(0), torch.ones(2, dtype=torch.float64), atol=1e-6)
    z = torch.randn(200, 2, dtype=torch.float64)
    pred = aligner.predict_log_density(module.prior_distribution().log_prob(z), X)
    sd = aligner.u_scale
    expected = module.prior_distribution().log_prob(z) - torch.log(sd).sum()
    assert torch.allclose(pred, expected)


def test_pickle_round_trip_and_fit(tmp_path):
    X = np.random.default_rng(0).normal(size=(300, 4))
    est = DiVAE(
        n_components=2, aligner=FlowAligner(n_layers=3), max_iter=4, hidden_layer_sizes=(8,),
        random_state=0,
    )
    est.fit(X)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.score_samples(X), est.score_samples(X))
    assert all(h["aux"] > 0 or h["aux"] < 0 for h in est.history_)
    flow = restored.module_.aligner.flow
    z, _ = flow(torch.zeros(1, 2, dtype=torch.float64))
    assert torch.allclose(flow.inverse(z), torch.zeros(1, 2, dtype=torch.float64), atol=1e-10)


def test_aligner_parameters_reach_grid_search():
    est = DiVAE(aligner=FlowAligner())
    est.set_params(aligner__n_layers=2, aligner__hidden_units=4)
    assert est.get_params()["aligner__n_layers"] == 2
    with pytest.raises(ValueError, match="n_layers"):
        DiVAE(aligner=FlowAligner(n_layers=0), max_iter=1).fit(np.zeros((10, 2)) + np.arange(10)[:, None])


@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("n_dims", [1, 2, 3, 8])
def test_one_node_flow_matches_autograd_layer_by_layer(n_dims, input_grad):
    flow = _randomised_flow(n_dims)
    u = torch.randn(40, n_dims, dtype=torch.float64, requires_grad=input_grad)
    weight_z = torch.randn(40, n_dims, dtype=torch.float64)
    wrt = [u, *flow.parameters()] if input_grad else list(flow.parameters())
    outputs, grads = [], []
    for run in (flow, flow.layer_by_layer):
        z, log_det = run(u)
        outputs.append((z, log_det))
        loss = (weight_z * z).sum() + (log_det**2).sum()
        grads.append(torch.autograd.grad(loss, wrt))
    for a, b in zip(outputs[0], outputs[1]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads[0], grads[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_dims", [1, 3])
def test_one_node_flow_passes_gradcheck(n_dims):
    flow = _randomised_flow(n_dims, n_layers=3, hidden=4)
    u = torch.randn(6, n_dims, dtype=torch.float64, requires_grad=True)
    params = list(flow.parameters())

    def run(u, *weights):
        return _FlowFunction.apply(u, tuple(layer.n_cond for layer in flow.layers), *weights)

    assert torch.autograd.gradcheck(run, (u, *params))


@pytest.mark.parametrize("n_rows, n_dims", [(1, 3), (5, 1), (1, 1), (4, 3)])
def test_flow_output_is_its_own_tensor(n_rows, n_dims):
    """The flow's ``z`` is never a view of its internals (for one row or one dimension a
    transposed tensor is already contiguous): it can be changed in place."""
    torch.manual_seed(0)
    flow = CouplingFlow(n_dims, 2, 4)
    u = torch.randn(n_rows, n_dims, requires_grad=True)
    z, log_det = flow(u)
    assert not z._is_view() and z.shape == (n_rows, n_dims)
    z.mul_(2.0).sum().backward()  # an in-place change of a view output would raise
    assert u.grad.shape == u.shape
