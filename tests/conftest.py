"""Shared test settings: a --device option (as zuko's suite has) and isolated torch seeding."""

import pytest


def pytest_addoption(parser):
    parser.addoption("--device", type=str, default="cpu", help="torch device for DiVAE tests")


@pytest.fixture
def device(request):
    return request.config.getoption("--device")


@pytest.fixture(autouse=True)
def _doctest_torch_seed(doctest_namespace):
    """Doctests run with a fixed torch seed that does not leak into the session."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield
