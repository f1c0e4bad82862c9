"""FlatAdam: torch's Adam on parameters that share one flat buffer."""

import numpy as np
import pytest
import torch

from skdivae import DiVAE
from skdivae._flat_adam import FlatAdam


def _net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))


def _steps(net, optimizer, n_steps=20):
    g = torch.Generator().manual_seed(0)
    for _ in range(n_steps):
        x = torch.randn(16, 5, generator=g)
        optimizer.zero_grad(set_to_none=True)
        (net(x) ** 2).mean().backward()
        optimizer.step()


@pytest.mark.parametrize("fused", [True, False])
def test_flat_adam_follows_torch_adam(fused):
    with torch.random.fork_rng():
        ours, theirs = _net(0), _net(0)
    optimizer = FlatAdam(ours.parameters(), lr=1e-2, fused=fused)
    assert optimizer.direct == fused  # fused: torch's kernel called directly
    _steps(ours, optimizer)
    _steps(theirs, torch.optim.Adam(theirs.parameters(), lr=1e-2, fused=fused))
    with torch.random.fork_rng():
        start = _net(0)
    for a, b, s in zip(ours.parameters(), theirs.parameters(), start.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        assert not torch.equal(a, s)  # it did train


def test_the_direct_kernel_call_is_torch_fused_adam_on_one_tensor():
    """Called directly, the kernel gives what torch's fused Adam gives on the flat
    buffer, to the bit, step after step."""
    with torch.random.fork_rng():
        ours = _net(0)
    optimizer = FlatAdam(ours.parameters(), lr=1e-2, fused=True)
    twin = torch.nn.Parameter(optimizer.flat.detach().clone())
    theirs = torch.optim.Adam([twin], lr=1e-2, fused=True)
    g = torch.Generator().manual_seed(1)
    for _ in range(10):
        grads = [torch.randn(p.shape, generator=g) for p in ours.parameters()]
        for p, grad in zip(ours.parameters(), grads):
            p.grad = grad
        twin.grad = torch.cat([grad.reshape(-1) for grad in grads])
        optimizer.step()
        theirs.step()
        assert torch.equal(optimizer.flat.detach(), twin.detach())


def test_parameters_share_one_buffer_until_released():
    with torch.random.fork_rng():
        net = _net(0)
    before = [p.detach().clone() for p in net.parameters()]
    optimizer = FlatAdam(net.parameters(), lr=1e-2)
    pointers = {p.untyped_storage().data_ptr() for p in net.parameters()}
    assert pointers == {optimizer.flat.untyped_storage().data_ptr()}
    for p, value in zip(net.parameters(), before):
        assert torch.equal(p, value)  # flattening keeps the values
    optimizer.release()
    pointers = {p.untyped_storage().data_ptr() for p in net.parameters()}
    assert len(pointers) == len(before)


@pytest.mark.parametrize("fused", [True, False])
def test_a_parameter_without_gradient_stays_put(fused):
    with torch.random.fork_rng():
        net = _net(0)
    unused = torch.nn.Parameter(torch.ones(4))
    optimizer = FlatAdam([*net.parameters(), unused], lr=1e-1, fused=fused)
    _steps(net, optimizer, n_steps=5)
    assert torch.equal(unused.detach(), torch.ones(4))
    assert unused.grad is None


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_fitted_divae_owns_separate_parameter_storage():
    X = np.random.default_rng(0).normal(size=(200, 4))
    est = DiVAE(n_components=2, hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    est.fit(X)
    storages = {p.untyped_storage().data_ptr() for p in est.module_.parameters()}
    assert len(storages) == len(list(est.module_.parameters()))


def test_mixed_or_missing_parameters_are_refused():
    with pytest.raises(ValueError, match="one dtype and device"):
        FlatAdam([torch.nn.Parameter(torch.zeros(2)),
                  torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))], lr=1e-3)
    with pytest.raises(ValueError, match="at least one parameter"):
        FlatAdam([], lr=1e-3)


def test_without_a_working_fused_kernel_torch_adam_does_the_update(monkeypatch):
    """torch before 2.4 has the fused kernel for CUDA only: the trial call fails, and
    FlatAdam falls back to torch's Adam instead of failing at the first step."""
    def unavailable(*args, **kwargs):
        raise RuntimeError("Could not run 'aten::_fused_adam_' with arguments from the CPU")

    monkeypatch.setattr(torch, "_fused_adam_", unavailable)
    with torch.random.fork_rng():
        ours, theirs = _net(0), _net(0)
    optimizer = FlatAdam(ours.parameters(), lr=1e-2, fused=True)
    assert not optimizer.direct
    _steps(ours, optimizer)
    _steps(theirs, torch.optim.Adam(theirs.parameters(), lr=1e-2))
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
