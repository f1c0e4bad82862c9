"""GaussianMixturePrior(n_components="auto"): more components in a latent space of at most
two dimensions, 10 elsewhere; archives written before "auto" keep their 10."""

import json
import zipfile

import numpy as np
import pytest

from skdivae import DiVAE, GaussianMixturePrior, load, save
from skdivae.priors import LOW_DIM, MIXTURE_COMPONENTS, MIXTURE_COMPONENTS_LOW_DIM


@pytest.mark.parametrize("n_latent", [1, 2, 3, 8])
def test_auto_gives_more_components_in_low_dimensions(n_latent):
    module = GaussianMixturePrior().build(n_latent=n_latent, n_features=5)
    expected = MIXTURE_COMPONENTS_LOW_DIM if n_latent <= LOW_DIM else MIXTURE_COMPONENTS
    assert module.loc.shape == (expected, n_latent)
    assert MIXTURE_COMPONENTS_LOW_DIM > MIXTURE_COMPONENTS == 10


def test_an_explicit_number_is_kept_in_every_latent_size():
    for n_latent in (1, 2, 8):
        assert GaussianMixturePrior(4).build(n_latent=n_latent, n_features=5).loc.shape[0] == 4


def test_the_shorthand_follows_auto(small_tabular, no_convergence_warnings):
    est = DiVAE(n_components=2, prior="gmm", hidden_layer_sizes=(8,), max_iter=2,
                random_state=0).fit(small_tabular)
    assert est.module_.prior.loc.shape[0] == MIXTURE_COMPONENTS_LOW_DIM


@pytest.mark.parametrize("value", ["many", 0, 2.5, True])
def test_bad_n_components_is_refused_at_fit(value, small_tabular):
    est = DiVAE(n_components=2, max_iter=1, prior=GaussianMixturePrior(n_components=value))
    with pytest.raises(ValueError, match="n_components"):
        est.fit(small_tabular)
    assert not hasattr(est, "module_")


@pytest.mark.parametrize("prior", ["gmm", "object"])
def test_archives_from_before_auto_load_with_10_components(prior, small_tabular, tmp_path,
                                                           no_convergence_warnings):
    # Format version 2 stored ``prior="gmm"`` (10 components in every latent size) as the
    # string, and a prior object with its n_components written out.
    est = DiVAE(n_components=2, hidden_layer_sizes=(16,), max_iter=3, random_state=0,
                prior=GaussianMixturePrior(10)).fit(small_tabular)
    save(est, tmp_path / "new.skdivae")
    with zipfile.ZipFile(tmp_path / "new.skdivae") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(members["skdivae.json"])
    manifest["format_version"] = 2
    if prior == "gmm":
        manifest["root"]["params"]["prior"] = "gmm"
    members["skdivae.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(tmp_path / "old.skdivae", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    old = load(tmp_path / "old.skdivae")
    assert old.prior.n_components == 10
    assert old.module_.prior.loc.shape[0] == 10
    np.testing.assert_array_equal(old.score_samples(small_tabular), est.score_samples(small_tabular))


def test_save_refuses_a_network_its_parameters_do_not_describe(small_tabular, tmp_path,
                                                               no_convergence_warnings):
    # As a model pickled when prior="gmm" meant 10 components in 2-D would be: the archive
    # would describe 40 components over weights of 10, and load would refuse it.
    est = DiVAE(n_components=2, prior=GaussianMixturePrior(10), hidden_layer_sizes=(8,),
                max_iter=2, random_state=0).fit(small_tabular)
    est.set_params(prior="gmm")
    with pytest.raises(ValueError, match="does not have the layout"):
        save(est, tmp_path / "m.skdivae")
    assert not (tmp_path / "m.skdivae").exists()
    save(est.set_params(prior=GaussianMixturePrior(10)), tmp_path / "m.skdivae")
    assert load(tmp_path / "m.skdivae").module_.prior.loc.shape[0] == 10
