"""Shared test settings: a --device option (as zuko's suite has), isolated torch seeding, fast
DiVAE settings, the small data set most model tests fit, and helpers that rewrite a saved
archive (tampered or older-version files)."""

import json
import zipfile

import pytest

#: DiVAE settings for tests that need a fitted model quickly, not a good one (a 2-D latent
#: space, one hidden layer of 16, 4 epochs). Test modules import it: ``from .conftest import FAST``.
FAST = dict(n_components=2, max_iter=4, hidden_layer_sizes=(16,), random_state=0)


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


@pytest.fixture
def no_convergence_warnings():
    """Silence DiVAE's ConvergenceWarning (short test fits stop at max_iter on purpose)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(scope="module")
def small_tabular():
    """200 Gaussian rows plus 10 uniform outliers in 4 columns (rows 200-209 are outliers)."""
    import numpy as np

    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(size=(200, 4)), rng.uniform(-6, 6, size=(10, 4))])


@pytest.fixture(scope="module")
def X(small_tabular):
    """The rows a test module fits unless it defines its own ``X``: ``small_tabular``."""
    return small_tabular


def pytest_collection_modifyitems(config, items):
    """The dask doctests need the optional dask extra: skip them, with a reason, without it."""
    import importlib.util

    if importlib.util.find_spec("dask") is not None:
        return
    skip = pytest.mark.skip(reason="dask is not installed: pip install 'skdivae[dask]'")
    for item in items:
        if "_blockwise" in item.nodeid:
            item.add_marker(skip)


def rewrite_archive(src, dst, edit):
    """Copy the archive ``src`` to ``dst`` with ``edit(members) -> members`` applied."""
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members = edit(members)
    with zipfile.ZipFile(dst, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    return dst


def manifest_edit(change):
    """An ``edit`` for :func:`rewrite_archive` that applies ``change(manifest)`` to the
    archive's parsed ``skdivae.json``."""
    def edit(members):
        manifest = json.loads(members["skdivae.json"])
        change(manifest)
        members["skdivae.json"] = json.dumps(manifest).encode()
        return members
    return edit
