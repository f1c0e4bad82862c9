"""DiVAE(prior="auto"), the default: the mixture prior in a latent space of one or two
dimensions, N(0, I) in more; archives written before "auto" keep their prior."""


import numpy as np
import pytest

from skdivae import DiVAE, GaussianMixturePrior, StandardNormalPrior, load, save
from skdivae._build import resolve_prior
from skdivae._nn.priors import GaussianMixture, StandardNormal
from skdivae.priors import LOW_DIM, MIXTURE_COMPONENTS_LOW_DIM, prior_name

from .conftest import manifest_edit, rewrite_archive


def _as_version(path, out, version, edit=None):
    """Copy the archive ``path`` to ``out`` claiming format ``version`` (after ``edit``)."""
    def change(manifest):
        manifest["format_version"] = version
        if edit is not None:
            edit(manifest)

    return rewrite_archive(path, out, manifest_edit(change))


@pytest.mark.parametrize("n_latent", [1, 2, 3, 8])
def test_auto_is_the_mixture_in_low_dimensions_and_normal_elsewhere(n_latent):
    expected = "gmm" if n_latent <= LOW_DIM else "normal"
    assert prior_name("auto", n_latent) == expected
    prior = resolve_prior("auto", n_latent)
    assert isinstance(prior, GaussianMixturePrior if expected == "gmm" else StandardNormalPrior)
    for name in ("normal", "gmm", "vamp"):  # other shorthands are themselves in every size
        assert prior_name(name, n_latent) == name


def test_auto_is_the_default_and_is_kept_as_given():
    est = DiVAE()
    assert est.get_params()["prior"] == "auto"


@pytest.mark.parametrize("n_latent, module", [(2, GaussianMixture), (3, StandardNormal)])
def test_a_fitted_default_has_the_regimes_prior(n_latent, module, small_tabular,
                                                no_convergence_warnings):
    est = DiVAE(n_components=n_latent, hidden_layer_sizes=(8,), max_iter=2,
                random_state=0).fit(small_tabular)
    assert isinstance(est.module_.prior, module)
    assert est.prior == "auto"  # the parameter is not rewritten by fit
    if module is GaussianMixture:
        assert est.module_.prior.loc.shape[0] == MIXTURE_COMPONENTS_LOW_DIM
    explicit = "gmm" if module is GaussianMixture else "normal"
    same = DiVAE(n_components=n_latent, hidden_layer_sizes=(8,), max_iter=2, random_state=0,
                 prior=explicit).fit(small_tabular)
    np.testing.assert_array_equal(est.score_samples(small_tabular),
                                  same.score_samples(small_tabular))


def test_auto_round_trips_through_an_archive(small_tabular, tmp_path, no_convergence_warnings):
    est = DiVAE(n_components=2, hidden_layer_sizes=(8,), max_iter=2,
                random_state=0).fit(small_tabular)
    save(est, tmp_path / "m.skdivae")
    back = load(tmp_path / "m.skdivae")
    assert back.prior == "auto" and isinstance(back.module_.prior, GaussianMixture)
    np.testing.assert_array_equal(back.score_samples(small_tabular),
                                  est.score_samples(small_tabular))


def test_an_archive_from_before_auto_without_a_prior_loads_normal(small_tabular, tmp_path,
                                                                  no_convergence_warnings):
    # Before format version 4 the default was "normal": a file without the parameter
    # (hand-written, or from a writer that left defaults out) meant N(0, I).
    est = DiVAE(n_components=2, prior="normal", hidden_layer_sizes=(8,), max_iter=2,
                random_state=0).fit(small_tabular)
    save(est, tmp_path / "new.skdivae")
    old = load(_as_version(tmp_path / "new.skdivae", tmp_path / "old.skdivae", 3,
                           lambda manifest: manifest["root"]["params"].pop("prior")))
    assert old.prior == "normal" and isinstance(old.module_.prior, StandardNormal)
    np.testing.assert_array_equal(old.score_samples(small_tabular),
                                  est.score_samples(small_tabular))


def test_an_archive_from_before_auto_that_says_auto_is_refused(small_tabular, tmp_path,
                                                               no_convergence_warnings):
    from skdivae import UnsafeArchiveError

    est = DiVAE(n_components=3, hidden_layer_sizes=(8,), max_iter=2,
                random_state=0).fit(small_tabular)
    save(est, tmp_path / "new.skdivae")

    def says_auto(manifest):
        assert manifest["root"]["params"]["prior"] == "auto"

    with pytest.raises(UnsafeArchiveError, match="did not exist in format version 3"):
        load(_as_version(tmp_path / "new.skdivae", tmp_path / "old.skdivae", 3, says_auto))


@pytest.mark.parametrize("version", [3, 4])
def test_an_archive_from_before_version_5_keeps_its_2d_normal_aligner(
        small_tabular, tmp_path, version, no_convergence_warnings):
    """With N(0, I) in 2-D, the default aligner meant per_feature=False, the square root
    and a threshold of 1 before version 5: an older file loads that way, so partial_fit
    goes on training the model as it was trained; scores are the same either way."""
    from skdivae import DirectAligner

    est = DiVAE(n_components=2, prior="normal", hidden_layer_sizes=(8,), max_iter=2,
                random_state=0).fit(small_tabular)
    assert (est.module_.aligner.multiplier, est.module_.aligner.delta) == (small_tabular.shape[1], 10.0)
    save(est, tmp_path / "new.skdivae")
    assert load(tmp_path / "new.skdivae").aligner == "direct"  # version 5: as given
    old = load(_as_version(tmp_path / "new.skdivae", tmp_path / "old.skdivae", version))
    assert isinstance(old.aligner, DirectAligner)
    assert (old.aligner.per_feature, old.aligner.reduction, old.aligner.delta) == (False, "sqrt", 1.0)
    aligner = old.module_.aligner
    assert (aligner.multiplier, aligner.reduction, aligner.delta) == (1.0, "sqrt", 1.0)
    np.testing.assert_array_equal(old.score_samples(small_tabular), est.score_samples(small_tabular))


def test_an_archive_from_before_version_5_may_not_say_auto_for_new_options(
        small_tabular, tmp_path, no_convergence_warnings):
    from skdivae import DirectAligner, UnsafeArchiveError

    est = DiVAE(n_components=3, aligner=DirectAligner(), hidden_layer_sizes=(8,), max_iter=2,
                random_state=0).fit(small_tabular)
    save(est, tmp_path / "new.skdivae")
    with pytest.raises(UnsafeArchiveError, match="per_feature='auto' did not exist in format version 4"):
        load(_as_version(tmp_path / "new.skdivae", tmp_path / "old.skdivae", 4))
