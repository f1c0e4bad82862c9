"""Silent wrong answers and archive costs found by a hostile-input battery: each test is
one finding, and what a scikit-learn user expects instead."""

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import NearestNeighbors

from skdivae import DiVAE, KNNLogDensity, UnsafeArchiveError, load, save
from skdivae.aligners import DirectAligner
from skdivae.model_selection import anomaly_roc_auc

from .conftest import FAST, manifest_edit, rewrite_archive


def test_likelihood_changed_after_fit_is_refused_not_scored_with_the_other_network():
    Xb = (np.random.default_rng(0).random((80, 5)) < 0.3).astype(float)
    est = DiVAE(**FAST, likelihood="bernoulli").fit(Xb)
    est.set_params(likelihood="gaussian")
    with pytest.raises(ValueError, match="fitted with likelihood='bernoulli'"):
        est.score_samples(-2 * np.ones((1, 5)))
    est.set_params(likelihood="bernoulli")  # set back: scores again
    assert np.isfinite(est.score_samples(Xb)).all()


@pytest.mark.parametrize("values", [
    lambda X: X + 1j,
    lambda X: X.astype("i8").astype("M8[s]"),
])
def test_a_memmap_of_complex_or_dates_is_refused_as_in_memory(values, X, tmp_path):
    data = values(X[:60, :3])
    mm = np.memmap(tmp_path / "x.dat", data.dtype, "w+", shape=data.shape)
    mm[:] = data
    mm.flush()
    with pytest.raises(ValueError, match="needs real numbers"):
        DiVAE(**FAST).fit(np.memmap(tmp_path / "x.dat", data.dtype, "r", shape=data.shape))


@pytest.mark.parametrize("params", [
    dict(max_iter=True), dict(batch_size=True), dict(n_iter_no_change=True),
    dict(alignment_weight=True), dict(aligner=DirectAligner(delta=True)),
])
def test_a_boolean_for_a_number_is_refused(params, X):
    with pytest.raises(ValueError, match="Got True instead"):
        DiVAE(**{**FAST, **params}).fit(X)
    with pytest.raises(ValueError, match="Got True instead"):
        KNNLogDensity(True).fit(X)


def test_knn_density_scores_with_the_method_it_was_fitted_with(X):
    est = KNNLogDensity(10, method="pak").fit(X)
    before = est.score_samples(X[:5])
    est.set_params(method="knn")
    np.testing.assert_array_equal(est.score_samples(X[:5]), before)
    assert est.method_ == "pak"


def test_a_knn_refit_after_a_pak_fit_keeps_nothing_of_it_and_round_trips(X, tmp_path):
    est = KNNLogDensity(5, method="pak").fit(X)
    est.set_params(method="knn").fit(X[:50])
    assert not hasattr(est, "_fit_dist")
    save(est, tmp_path / "k.skdivae")
    np.testing.assert_array_equal(load(tmp_path / "k.skdivae").score_samples(X),
                                  est.score_samples(X))


def test_a_failed_knn_refit_leaves_it_unfitted(X):
    est = KNNLogDensity(5).fit(X)
    with pytest.raises(ValueError, match="magnitude"):
        est.fit(np.random.default_rng(0).normal(size=(50, X.shape[1] + 2)) * 1e200)
    assert not hasattr(est, "n_features_in_") and not hasattr(est, "nn_")
    with pytest.raises(NotFittedError):
        est.score_samples(X)


def test_twonn_dimension_outside_the_space_is_clamped_with_a_warning():
    rng = np.random.default_rng(0)
    lattice = np.stack(np.meshgrid(np.arange(15), np.arange(15)), -1).reshape(-1, 2)
    with pytest.warns(UserWarning, match="TWO-NN intrinsic dimension"):
        est = KNNLogDensity(10, intrinsic_dim="twonn").fit(lattice + rng.normal(scale=1e-6, size=lattice.shape))
    assert 1.0 <= est.intrinsic_dim_ <= 2.0
    for seed in range(10):  # ordinary samples that fill their space: no warning
        data = np.random.default_rng(seed).normal(size=(300, 3))
        for n_components in (None, 1):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                est = KNNLogDensity(10, intrinsic_dim="twonn", n_components=n_components).fit(data)
            assert 0.5 <= est.intrinsic_dim_ <= 2 * est.n_components_


def test_a_neighbour_index_whose_tree_would_outgrow_its_data_is_not_saved_or_loaded(tmp_path):
    X = np.zeros((1_000_000, 1))  # leaf size 1: a tree of about 90 MiB over 8 MB of data
    nn = NearestNeighbors(leaf_size=1, algorithm="kd_tree").fit(X[:10])
    nn._fit_X = X  # what a tampered file would declare (the tree is rebuilt on load)
    with pytest.raises(UnsafeArchiveError, match="leaf_size=1"):
        save(nn, tmp_path / "nn.skdivae")
    ok = NearestNeighbors().fit(np.zeros((50, 1)))
    save(ok, tmp_path / "ok.skdivae")

    def shrink_leaves(manifest):
        manifest["root"]["params"]["leaf_size"] = 1

    big = NearestNeighbors().fit(X)
    save(big, tmp_path / "big.skdivae")
    rewrite_archive(tmp_path / "big.skdivae", tmp_path / "bad.skdivae", manifest_edit(shrink_leaves))
    with pytest.raises(UnsafeArchiveError, match="leaf_size=1"):
        load(tmp_path / "bad.skdivae")
    assert load(tmp_path / "ok.skdivae").n_samples_fit_ == 50


def test_small_leaf_sizes_on_ordinary_data_still_save_and_load(tmp_path):
    X = np.random.default_rng(0).normal(size=(20_000, 2))
    for est in (KNNLogDensity(5, n_components=1, leaf_size=3).fit(X),
                NearestNeighbors(leaf_size=1).fit(X[:, :1])):
        save(est, tmp_path / "m.skdivae")
        loaded = load(tmp_path / "m.skdivae")
        if isinstance(est, KNNLogDensity):
            np.testing.assert_array_equal(loaded.score_samples(X[:50]), est.score_samples(X[:50]))


def test_half_precision_weights_are_refused(X, tmp_path):
    save(DiVAE(**FAST).fit(X), tmp_path / "m.skdivae")

    def to_half(members):
        name = next(n for n in members if n.endswith(".safetensors"))
        tensors = load_tensors(members[name])
        members[name] = save_tensors({k: v.to(torch.float16) for k, v in tensors.items()})
        return members

    rewrite_archive(tmp_path / "m.skdivae", tmp_path / "half.skdivae", to_half)
    with pytest.raises(UnsafeArchiveError, match="float64"):
        load(tmp_path / "half.skdivae")


def test_a_repeated_key_inside_a_saved_mapping_is_refused(X, tmp_path):
    est = DiVAE(**FAST).fit(X)
    save(est, tmp_path / "m.skdivae")

    def repeat_a_key(manifest):
        history = manifest["root"]["state"]["history_"]
        first = history[0]
        first["items"].append(first["items"][0])

    rewrite_archive(tmp_path / "m.skdivae", tmp_path / "dup.skdivae", manifest_edit(repeat_a_key))
    with pytest.raises(UnsafeArchiveError, match="repeated"):
        load(tmp_path / "dup.skdivae")


def test_anomaly_roc_auc_names_a_length_mismatch_and_reads_a_column(X):
    est = DiVAE(**FAST).fit(X)
    with pytest.raises(ValueError, match="one label per row"):
        anomaly_roc_auc(est, X, np.zeros(len(X) // 2))
    y = np.r_[np.zeros(len(X) - 10), np.ones(10)]
    assert anomaly_roc_auc(est, X, y[:, None]) == anomaly_roc_auc(est, X, y)


def test_a_memmap_of_numeric_strings_fits_as_in_memory(X, tmp_path):
    data = X[:60, :3].round(3).astype("U12")
    mm = np.memmap(tmp_path / "s.dat", data.dtype, "w+", shape=data.shape)
    mm[:] = data
    mm.flush()
    est = DiVAE(**FAST).fit(np.memmap(tmp_path / "s.dat", data.dtype, "r", shape=data.shape))
    assert est.n_features_in_ == 3


P = dict(n_components=2, max_iter=5, random_state=0, n_threads=1)


def test_partial_fit_after_fit_keeps_the_fit_threshold_until_enough_rows(X):
    est = DiVAE(**P, keep_density=True).fit(X)  # a kept teacher: blocks of any size
    offset, scale = est.offset_, est.score_scale_.copy()
    est.partial_fit(X[:1])  # one row: no threshold of its own
    assert est.offset_ == offset and np.array_equal(est.score_scale_, scale)
    big = np.random.default_rng(1).normal(size=(1000, X.shape[1])) * X.std(0) + X.mean(0)
    est.partial_fit(big)  # from 1 000 rows on: the rows seen since the fit
    assert est.offset_ != offset and np.all(est.score_scale_ > 1e-6)


@pytest.mark.parametrize("params", [
    dict(activation="tanh"), dict(decoder_std=0.1),
    dict(aligner=DirectAligner(delta=50.0, reduction="sqrt")),
])
def test_partial_fit_after_fit_refuses_a_changed_network_setting(params, X):
    est = DiVAE(**P).fit(X)
    est.set_params(**params)
    with pytest.raises(ValueError, match="changed since the model was first trained"):
        est.partial_fit(X[:20])


@pytest.mark.parametrize("copy_model", [
    lambda m: pickle.loads(pickle.dumps(m)), copy.deepcopy,
], ids=["pickle", "deepcopy"])
def test_partial_fit_continues_a_copied_model_seeded_by_a_random_state(copy_model, X):
    seeded = dict(P, random_state=np.random.RandomState(0),
                  density=KNNLogDensity(5, random_state=np.random.RandomState(1)))
    est = DiVAE(**seeded).partial_fit(X[:60])
    copy_model(est).partial_fit(X[60:])  # the generators' reprs hold memory addresses


def test_partial_fit_sees_a_change_in_the_middle_of_a_long_teacher_pipeline(X):
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [(f"s{i}", StandardScaler()) for i in range(14)] + [("pca", PCA(3))] \
        + [(f"t{i}", StandardScaler()) for i in range(14)] + [("kd", KNNLogDensity(7))]
    est = DiVAE(**dict(P, n_components=3), density=Pipeline(steps)).partial_fit(X[:60])
    est.set_params(density__pca__n_components=2)  # its repr elides this step
    with pytest.raises(ValueError, match="density changed since the model was first trained"):
        est.partial_fit(X[60:])


def test_partial_fit_after_fit_refuses_huge_values_and_keeps_the_model(X):
    est = DiVAE(**P).fit(X)
    before = est.score_samples(X)
    with pytest.raises(ValueError, match="cannot standardise values beyond"):
        est.partial_fit(X[:5] * 1e20)
    np.testing.assert_array_equal(est.score_samples(X), before)


def test_a_failed_partial_fit_after_fit_leaves_the_fitted_model(X, monkeypatch):
    from skdivae import _incremental

    est = DiVAE(**P).fit(X)
    before, n_iter = est.score_samples(X), est.n_iter_

    def diverge(*args, **kwargs):
        raise FloatingPointError("diverged")

    monkeypatch.setattr(_incremental.BlockTrainer, "train", diverge)
    with pytest.raises(FloatingPointError):
        est.partial_fit(X[:20])
    assert est.n_iter_ == n_iter and not hasattr(est, "_block_trainer_")
    np.testing.assert_array_equal(est.score_samples(X), before)


def test_predict_proba_agrees_with_predict_when_the_fence_is_below_every_training_score():
    U = np.random.default_rng(0).uniform(-1, 1, (200, 3))
    est = DiVAE(**P, contamination="auto").fit(U)
    R = np.random.default_rng(1).uniform(-3, 3, (3000, 3))
    for contamination in ("auto", 0.01, 0.2):
        est.set_params(contamination=contamination)
        np.testing.assert_array_equal(est.predict_proba(R)[:, 1] > 0.5, est.predict(R) == -1)


def test_a_class_for_a_prior_or_aligner_and_a_build_off_contract_are_named(X):
    from skdivae import GaussianMixturePrior
    from skdivae.priors import StandardNormalPrior

    with pytest.raises(TypeError, match="is a class; pass an instance"):
        DiVAE(**P, prior=GaussianMixturePrior).fit(X)
    with pytest.raises(TypeError, match="is a class; pass an instance"):
        DiVAE(**P, aligner=DirectAligner).fit(X)

    class NoModule(StandardNormalPrior):
        def build(self, *, n_latent, n_features):
            return None

    with pytest.raises(TypeError, match="must return a skdivae.priors.PriorModule"):
        DiVAE(**P, prior=NoModule()).fit(X)


def test_dataset_loaders_name_what_is_wrong_with_a_file(tmp_path):
    from skdivae.datasets import load_adbench, load_mnist
    from skdivae.datasets._loaders import read_idx

    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(ValueError, match="not an .npz archive"):
        load_adbench(tmp_path / "x.npy")
    np.savez(tmp_path / "c.npz", X=np.zeros((3, 2)) + 1j, y=np.zeros(3))
    with pytest.raises(ValueError, match="real numbers"):
        load_adbench(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="ndim must be"):
        read_idx(tmp_path / "x.npy", ndim=2)
    (tmp_path / "t").write_bytes(b"\x00\x00\x08\x03\x00")
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "t")
    (tmp_path / "e").write_bytes(b"\x00\x00\x08\x01" + (0).to_bytes(4, "big"))
    with pytest.raises(ValueError, match="holds no labels"):
        read_idx(tmp_path / "e")
    with pytest.raises(ValueError, match="subset must be"):
        load_mnist(tmp_path, ["train"])


def test_idx_reader_stops_at_the_declared_size(tmp_path):
    import gzip

    from skdivae.datasets._loaders import read_idx

    header = b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in (1, 28, 28))
    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(bomb, "wb") as f:  # ~10 KB on disk, 8 MiB inflated past the header
        f.write(header + bytes(784))
        for _ in range(8):
            f.write(bytes(1 << 20))
    reads = []
    real_read = gzip.GzipFile.read

    def counting_read(self, size=-1):
        out = real_read(self, size)
        reads.append(len(out))
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gzip.GzipFile, "read", counting_read)
        with pytest.raises(ValueError, match="header says \\(1, 28, 28\\), found more"):
            read_idx(bomb)
    assert sum(reads) <= 4 + 12 + 785  # the header, the declared bytes and one more
    good = tmp_path / "good-idx3-ubyte.gz"
    with gzip.open(good, "wb") as f:
        f.write(header + bytes(range(256)) * 3 + bytes(16))
    assert read_idx(good, ndim=3).shape == (1, 28, 28)


def test_partial_fit_after_fit_continues_custom_priors_and_equal_decoder_stds(X):
    from torch import nn
    from torch.distributions import Independent, Normal

    from skdivae.priors import PriorModule

    class ListModule(PriorModule):  # its repr shows dtypes, which differ from a skeleton's
        def __init__(self, n_latent):
            super().__init__()
            self.params = nn.ParameterList([nn.Parameter(torch.zeros(n_latent)),
                                            nn.Parameter(torch.zeros(n_latent))])

        def forward(self, encoder=None):
            return Independent(Normal(self.params[0], self.params[1].exp()), 1)

    class ListPrior:
        def build(self, *, n_latent, n_features):
            return ListModule(n_latent)

        def get_params(self, deep=True):
            return {}

    DiVAE(**P, prior=ListPrior(), keep_density=True).fit(X).partial_fit(X[:20])
    est = DiVAE(**P, decoder_std=np.float64(0.1)).fit(X)
    est.set_params(decoder_std=0.1).partial_fit(X[:20])  # the same value, another type


def test_a_partial_fit_that_leaves_non_finite_scores_puts_the_fit_back(X):
    est = DiVAE(**P, keep_density=True).fit(X)
    before = est.score_samples(X)
    est.set_params(learning_rate_init=1e39)
    with pytest.raises(FloatingPointError, match="non-finite"):
        est.partial_fit(X[:20])
    np.testing.assert_array_equal(est.score_samples(X), before)


def test_pak_on_copies_and_rounded_data_stays_near_the_knn_estimate():
    base = np.random.default_rng(0).normal(size=(2000, 2))
    copies = np.vstack([base, base[[0, 0, 0]]])  # a row that appears four times
    pak, knn = (KNNLogDensity(method=m).fit(copies) for m in ("pak", "knn"))
    assert abs(pak.log_density_[0] - knn.log_density_[0]) < 1.0  # was +36 nats
    assert pak.kstar_[0] == pak.n_neighbors_  # the neighbourhood that estimate used
    rounded = np.round(base, 1)  # distances equal up to rounding are ties
    pak, knn = (KNNLogDensity(method=m).fit(rounded) for m in ("pak", "knn"))
    assert (pak.log_density_ - knn.log_density_).min() > -15  # was -74


def test_twonn_on_an_exact_lattice_warns_and_uses_the_space_dimension():
    lattice = np.stack(np.meshgrid(np.arange(40), np.arange(40)), -1).reshape(-1, 2).astype(float)
    with pytest.warns(UserWarning, match="undefined"):
        est = KNNLogDensity(intrinsic_dim="twonn").fit(lattice)
    assert est.intrinsic_dim_ == 2.0


def test_whitened_pca_keeps_new_rows_at_a_finite_distance_on_wide_data():
    rng = np.random.default_rng(0)
    X, Q = rng.normal(size=(10, 20)), rng.normal(size=(3, 20))
    with pytest.warns(UserWarning, match="n_samples - 1"):
        est = KNNLogDensity(3, n_components=15, whiten=True).fit(X)
    assert est.n_components_ == 9
    assert est.score_samples(Q).min() > est.score_samples(X).min() - 10  # was -360 vs -17


def test_whitened_pca_drops_components_without_spread():
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(500, 4)), rng.normal(size=(50, 4))
    X, Q = np.column_stack([A, A[:, 0]]), np.column_stack([B, B[:, 0]])  # a repeated column
    with pytest.warns(UserWarning, match="no spread"):
        est = KNNLogDensity(n_components=5, whiten=True).fit(X)
    assert est.n_components_ == 4
    assert abs(np.median(est.score_samples(Q)) - np.median(est.score_samples(X))) < 2  # was 52


def test_knn_density_feature_names_out_checks_its_input():
    import pandas as pd

    est = KNNLogDensity(5).fit(pd.DataFrame(np.zeros((50, 3)) + np.arange(50)[:, None],
                                            columns=list("abc")))
    with pytest.raises(ValueError, match="input_features"):
        est.get_feature_names_out(["q", "r", "s"])
    assert list(est.get_feature_names_out(["a", "b", "c"])) == ["log_density", "log_density_err"]


def test_partial_fit_continues_a_model_whose_settings_are_repr_strings(X):
    # as a model pickled by skdivae before the settings were compared by structure
    from skdivae._incremental import FIXED_BY_FIRST_CALL

    est = DiVAE(**P).partial_fit(X[:60])
    params = est.get_params(deep=False)
    est._block_trainer_.settings = {k: repr(params[k]) for k in FIXED_BY_FIRST_CALL}
    est.partial_fit(X[60:])
    est.set_params(activation="tanh")
    with pytest.raises(ValueError, match="activation changed since"):
        est.partial_fit(X[60:])


def test_partial_fit_continues_a_pickled_legacy_model_seeded_by_a_random_state(X):
    from skdivae._incremental import FIXED_BY_FIRST_CALL

    est = DiVAE(**dict(P, random_state=np.random.RandomState(0))).partial_fit(X[:60])
    params = est.get_params(deep=False)
    est._block_trainer_.settings = {k: repr(params[k]) for k in FIXED_BY_FIRST_CALL}
    pickle.loads(pickle.dumps(est)).partial_fit(X[60:])  # the repr's address changed


def test_partial_fit_sees_a_different_function_in_a_teacher_step(X):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    teacher = make_pipeline(FunctionTransformer(lambda x: x), KNNLogDensity(7))
    est = DiVAE(**P, density=teacher).partial_fit(X[:60])
    est.set_params(density__functiontransformer__func=lambda x: 2 * x)
    with pytest.raises(ValueError, match="density changed since"):
        est.partial_fit(X[60:])


def test_idx_header_declaring_more_than_the_file_can_hold_is_refused_unread(tmp_path):
    import gzip

    from skdivae.datasets._loaders import read_idx

    header = b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in (2**31, 28, 28))
    with gzip.open(tmp_path / "x-idx3-ubyte.gz", "wb") as f:
        f.write(header + bytes(1 << 16))
    with pytest.raises(ValueError, match="more values than the file can hold"):
        read_idx(tmp_path / "x-idx3-ubyte.gz")
    (tmp_path / "raw").write_bytes(header + bytes(100))
    with pytest.raises(ValueError, match="more values than the file can hold"):
        read_idx(tmp_path / "raw")


def test_adbench_loader_reads_headers_first_and_names_the_file_it_refuses(tmp_path):
    import io
    import zipfile

    from skdivae.datasets import load_adbench

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**7, 10**7)})
    lying = tmp_path / "lying.npz"
    with zipfile.ZipFile(lying, "w") as archive:
        archive.writestr("X.npy", header.getvalue() + bytes(64))
        archive.writestr("y.npy", header.getvalue())
    with pytest.raises(ValueError, match="lying.npz: X.npy declares shape"):
        load_adbench(lying)
    good = tmp_path / "good.npz"
    np.savez_compressed(good, X=np.arange(40.0).reshape(20, 2), y=np.r_[np.zeros(18), 1, 1])
    raw = bytearray(good.read_bytes())
    for name, data in (("flipped", raw[:60] + bytes([raw[60] ^ 0xFF]) + raw[61:]),
                       ("cut", raw[: len(raw) - 30])):
        bad = tmp_path / f"{name}.npz"
        bad.write_bytes(bytes(data))
        with pytest.raises(ValueError, match=f"{name}.npz"):  # names the file, whatever broke
            load_adbench(bad)
    X, y = load_adbench(good)
    assert X.shape == (20, 2) and y.sum() == 2
    extra = tmp_path / "extra.npz"  # other members are not read, whatever they hold
    np.savez(extra, X=X, y=y, names=np.array(["a", None], dtype=object))
    with zipfile.ZipFile(extra, "a") as archive:
        archive.writestr("README.txt", "notes")
    assert load_adbench(extra)[0].shape == (20, 2)


def test_mnist_loader_refuses_other_image_sizes_and_bounds_the_float_copy(tmp_path):
    import gzip

    from skdivae.datasets import load_mnist

    def idx(path, magic, shape, n_bytes):
        with gzip.open(path, "wb") as f:
            f.write(magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in shape))
            f.write(bytes(n_bytes))

    idx(tmp_path / "train-labels-idx1-ubyte.gz", 2049, (4,), 4)
    idx(tmp_path / "train-images-idx3-ubyte.gz", 2051, (4, 10, 10), 400)
    with pytest.raises(ValueError, match="not MNIST's \\(28, 28\\)"):
        load_mnist(tmp_path)
    # zeros compress about 1000-fold: as float64 that would be 8000 times the file
    n = 2000
    idx(tmp_path / "train-labels-idx1-ubyte.gz", 2049, (n,), n)
    idx(tmp_path / "train-images-idx3-ubyte.gz", 2051, (n, 28, 28), n * 784)
    with pytest.raises(ValueError, match="more values than the file can hold"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("kind", ["datetime64[D]", "timedelta64[s]"])
def test_dates_and_durations_are_refused_in_memory_as_when_streamed(kind):
    X = np.random.default_rng(0).normal(size=(30, 3))
    dates = (np.arange(90) * 7).astype(kind).reshape(30, 3)
    fitted = DiVAE(**FAST).fit(X)
    rows = [[np.datetime64("2020-01-01") + i, 1.0, 2.0] for i in range(30)]
    for call in (lambda: DiVAE(**FAST).fit(rows),lambda: DiVAE(**FAST).fit(dates), lambda: DiVAE(**FAST).partial_fit(dates),
                 lambda: fitted.score_samples(dates), lambda: KNNLogDensity(5).fit(dates),
                 lambda: KNNLogDensity(5).fit(X).transform(dates)):
        with pytest.raises(ValueError, match="dates or durations"):
            call()


def test_partial_fit_sees_a_changed_closure_or_partial_in_the_teacher():
    import functools

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    def times(k):
        return lambda Z: Z * k

    X = np.random.default_rng(0).normal(size=(200, 3))
    for old, new in ((times(1.0), times(1e6)),
                     (functools.partial(np.multiply, 1.0), functools.partial(np.multiply, 1e6))):
        est = DiVAE(**FAST, density=make_pipeline(FunctionTransformer(old), KNNLogDensity(10)))
        est.partial_fit(X[:100])
        est.set_params(density=make_pipeline(FunctionTransformer(new), KNNLogDensity(10)))
        with pytest.raises(ValueError, match="density changed"):
            est.partial_fit(X[100:])
        est.set_params(density=make_pipeline(FunctionTransformer(old), KNNLogDensity(10)))
        est.partial_fit(X[100:])  # the same teacher continues


def test_move_codes_false_is_refused_with_a_prior_the_encoder_computes():
    from skdivae.priors import VampPrior

    X = np.random.default_rng(0).normal(size=(60, 3))
    est = DiVAE(**FAST, prior=VampPrior(4), aligner=DirectAligner(move_codes=False))
    with pytest.raises(ValueError, match="move_codes=False.*pseudo-inputs"):
        est.fit(X)
    assert not hasattr(est, "module_")


# Battery 8.


def test_copies_of_one_row_get_one_label_whatever_rows_are_scored_beside_them():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 3))
    X = np.repeat(base, [60, 50, 40, 30, 15, 5], axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = DiVAE(max_iter=5, random_state=0).fit(X).set_params(contamination=0.06)
    assert len(set(est.predict(X[180:195]).tolist())) == 1
    row = base[4:5]
    labels = {int(est.predict(np.vstack([rng.normal(size=(k, 3)), row]))[-1]) for k in range(25)}
    assert len(labels) == 1
    proba = est.predict_proba(X[180:195])[:, 1]
    assert np.all((proba > 0.5) == (est.predict(X[180:195]) == -1))


def test_a_teacher_that_transforms_its_input_in_place_does_not_change_the_training_data(X):
    from sklearn.mixture import GaussianMixture
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    scores = []
    for copy_input in (True, False):
        teacher = make_pipeline(MinMaxScaler(copy=copy_input), GaussianMixture(2, random_state=0))
        est = DiVAE(**FAST, density=teacher).fit(X)
        scores.append(est.score_samples(X[:20]))
    np.testing.assert_array_equal(scores[0], scores[1])


def test_a_teacher_whose_fit_returns_none_is_still_used(X):
    class Forgetful(KNNLogDensity):
        def fit(self, X, y=None):
            super().fit(X, y)  # and forgets to return self

    est = DiVAE(**FAST, density=Forgetful(5, n_components=2)).fit(X)
    assert np.isfinite(est.score_samples(X[:5])).all()


def test_a_knn_teacher_wrapped_in_a_pipeline_trains_the_model_it_trains_alone(X):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from skdivae._training_data import query_targets, training_targets

    bare = KNNLogDensity(10, n_components=2)
    wrapped = make_pipeline(FunctionTransformer(), make_pipeline(
        FunctionTransformer(), KNNLogDensity(10, n_components=2)))
    for read in (lambda d: training_targets(d, X), lambda d: query_targets(d, X[:7] + 0.1)):
        for a, b in zip(read(bare.fit(X)), read(wrapped.fit(X))):
            np.testing.assert_allclose(a, b)  # leave-one-out values and their errors
    scores = [DiVAE(**FAST, density=d).fit(X).score_samples(X[:20]) for d in (bare, wrapped)]
    np.testing.assert_allclose(scores[0], scores[1])


def test_combined_scores_stay_on_a_finite_scale_when_most_training_rows_tie():
    from skdivae._scoring import robust_scale

    assert robust_scale(np.r_[np.zeros(85), np.arange(1.0, 16.0)])[1] > 0.5
    assert robust_scale(np.r_[1e-13 * np.arange(60), np.arange(1.0, 41.0)])[1] > 0.5
    rng = np.random.default_rng(0)
    for jitter in (0.0, 1e-12):  # exact copies, and copies equal up to rounding
        copies = np.tile(rng.normal(size=(1, 3)), (170, 1)) + jitter * rng.normal(size=(170, 3))
        X = np.vstack([copies, rng.normal(size=(30, 3))])
        est = DiVAE(**FAST).fit(X)
        assert (est.score_scale_ > 1e-6).all()  # not the 1e-12 floor
        for score in ("elbo+log_prior", "min(elbo,log_prior)"):
            values = est.set_params(anomaly_score=score).score_samples(X)
            assert np.isfinite(values).all() and np.abs(values).max() < 1e6


def test_residual_names_of_an_unfitted_model_says_it_is_not_fitted():
    from skdivae import residual_names

    with pytest.raises(NotFittedError):
        residual_names(DiVAE())


def test_a_sample_too_large_for_memory_names_its_size(X, monkeypatch):
    est = DiVAE(**FAST).fit(X)

    def cannot_allocate(*args, **kwargs):  # what torch raises, without asking for the memory
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't "
                           "allocate memory")

    monkeypatch.setattr(est.module_, "sample_prior", cannot_allocate)
    with pytest.raises(MemoryError, match=r"needs more than .* GiB .* draw fewer at a time"):
        est.sample(10**12)

    def other_failure(*args, **kwargs):
        raise RuntimeError("something else")

    monkeypatch.setattr(est.module_, "sample_prior", other_failure)
    with pytest.raises(RuntimeError, match="something else"):  # not taken for memory
        est.sample(10)


def test_partial_fit_warns_when_the_latent_space_collapses():
    from skdivae import PosteriorCollapseWarning

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(-3, 0.3, size=(150, 4)), rng.normal(3, 0.3, size=(150, 4))])
    est = DiVAE(random_state=0, batch_size=100, max_iter=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(4):
            for block in np.array_split(rng.permutation(X), 3):
                est.partial_fit(block)
    collapsed = [w for w in caught if issubclass(w.category, PosteriorCollapseWarning)]
    from skdivae._collapse import active_dimensions
    assert (active_dimensions(est, X) == 0) == bool(collapsed)
    assert collapsed, "this setting collapses (battery 8); the warning must say so"
    assert collapsed[0].filename == __file__  # points at the user's call


def test_an_in_memory_memmap_is_fitted_as_an_array(X, tmp_path):
    mm = np.memmap(tmp_path / "x.dat", np.float64, "w+", shape=X.shape)
    mm[:] = X
    copied = mm.copy()  # type memmap, but in memory
    assert isinstance(copied, np.memmap)
    a = DiVAE(**FAST).fit(np.array(X)).score_samples(X[:10])
    b = DiVAE(**FAST).fit(copied).score_samples(X[:10])
    np.testing.assert_array_equal(a, b)


def test_a_zero_prior_scale_in_an_archive_is_refused(X, tmp_path):
    save(DiVAE(**FAST, prior="normal").fit(X), tmp_path / "m.skdivae")

    def zero_prior_scale(members):
        name = next(n for n in members if n.endswith(".safetensors"))
        tensors = load_tensors(members[name])
        key = next(k for k in tensors if k.endswith("prior.scale"))
        tensors[key] = torch.zeros_like(tensors[key])
        members[name] = save_tensors(tensors)
        return members

    rewrite_archive(tmp_path / "m.skdivae", tmp_path / "bad.skdivae", zero_prior_scale)
    with pytest.raises(UnsafeArchiveError, match="prior.loc and prior.scale must be 0 and 1"):
        load(tmp_path / "bad.skdivae")


def test_a_latent_size_beyond_the_largest_is_refused_at_fit_and_load(X, tmp_path):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="n_components"):
        DiVAE(n_components=2049).fit(X)
    save(DiVAE(**FAST).fit(X), tmp_path / "m.skdivae")

    def huge_latent(manifest):
        manifest["root"]["params"]["n_components"] = 4000

    rewrite_archive(tmp_path / "m.skdivae", tmp_path / "bad.skdivae", manifest_edit(huge_latent))
    with pytest.raises(UnsafeArchiveError, match="n_components"):
        load(tmp_path / "bad.skdivae")


def test_constant_data_fit_without_numpy_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        DiVAE(**FAST).fit(np.ones((50, 3)))


def test_a_mixture_prior_too_wide_to_score_a_row_is_refused_before_training(X):
    from skdivae.priors import GaussianMixturePrior

    with pytest.raises(ValueError, match="to score one row"):
        DiVAE(n_components=1000, prior=GaussianMixturePrior(40, kl="monte_carlo"),
              max_iter=1).fit(X[:20])


def test_a_memmap_of_an_unnamed_file_is_streamed(X):
    import tempfile

    from skdivae._streaming import is_out_of_core

    with tempfile.TemporaryFile() as f:
        mm = np.memmap(f, np.float64, "w+", shape=X.shape)
        assert is_out_of_core(mm) and not is_out_of_core(mm.copy())


def test_copies_of_one_row_get_one_outlier_probability():
    D = np.repeat(np.random.default_rng(1).normal(size=(4, 3)), 50, axis=0)
    est = DiVAE(hidden_layer_sizes=(8,), n_components=2, max_iter=3, random_state=0).fit(D)
    together = est.predict_proba(D)[:, 1]
    alone = np.array([est.predict_proba(D[i:i + 1])[0, 1] for i in (0, 50, 100, 150)])
    for block, value in zip(range(4), alone):
        np.testing.assert_allclose(together[50 * block:50 * (block + 1)], value, atol=1e-6)


def test_a_vampprior_with_many_pseudo_inputs_is_not_refused(X):
    from skdivae.priors import VampPrior

    est = DiVAE(n_components=256, prior=VampPrior(500), hidden_layer_sizes=(8,), max_iter=1,
                random_state=0).fit(X[:40])
    assert np.isfinite(est.score_samples(X[:3])).all()


def test_partial_fit_after_fit_does_not_warn_on_a_few_rows_of_one_cluster():
    from skdivae import PosteriorCollapseWarning

    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0, 0], [8, 8, 0, 0], [0, 8, 8, 0]], float)
    labels = rng.integers(3, size=240)
    X = centres[labels] + 0.5 * rng.normal(size=(240, 4))
    est = DiVAE(hidden_layer_sizes=(8,), n_components=2, max_iter=5, batch_size=8,
                random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PosteriorCollapseWarning)
        est.partial_fit(X[labels == 0][:3])
        est.partial_fit(X[labels == 1][:20])


def test_fit_works_under_the_callers_torch_modes_and_leaves_them_as_they_were(X):
    import torch

    reference = DiVAE(**FAST).fit(X).score_samples(X)
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            np.testing.assert_array_equal(DiVAE(**FAST).fit(X).score_samples(X), reference)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        est = DiVAE(**FAST).fit(X)
        est.partial_fit(X[:40])
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(before)
    np.testing.assert_array_equal(DiVAE(**FAST).fit(X).score_samples(X), reference)


def test_scikit_learns_pandas_output_setting_does_not_reach_the_teacher_inside(X):
    import sklearn

    pytest.importorskip("pandas")
    reference = DiVAE(**FAST).fit(X[:150]).partial_fit(X[150:]).score_samples(X)
    with sklearn.config_context(transform_output="pandas"):
        est = DiVAE(**FAST).fit(X[:150]).partial_fit(X[150:])
        kd = KNNLogDensity(5, n_components=2, max_samples=100, random_state=0).fit(X)
        assert np.isfinite(kd.log_density_).all()
    np.testing.assert_array_equal(est.score_samples(X), reference)


def test_a_prior_whose_build_fits_a_divae_does_not_deadlock(X):
    from skdivae.priors import GaussianMixturePrior

    class Nested(GaussianMixturePrior):
        def build(self, **kwargs):
            DiVAE(**FAST).fit(X[:60])  # re-enters the build lock in the same thread
            return super().build(**kwargs)

    assert np.isfinite(DiVAE(**{**FAST, "prior": Nested(3)}).fit(X).score_samples(X)).all()


def test_a_fit_draws_one_seed_from_a_generator_of_the_callers():
    rng = np.random.default_rng(0)
    clusters = np.vstack([rng.normal(-3, 0.3, size=(150, 4)), rng.normal(3, 0.3, size=(150, 4))])
    settings = dict(max_iter=20, hidden_layer_sizes=(16,))
    state, expected = np.random.RandomState(0), np.random.RandomState(0)
    refit = DiVAE(random_state=state, **settings).fit(clusters)
    expected.randint(np.iinfo(np.int32).max)  # the one draw
    assert state.randint(1000) == expected.randint(1000)
    if refit.batch_size_ == 8:  # the collapse refit reused the seed
        direct = DiVAE(random_state=np.random.RandomState(0), batch_size=8, **settings)
        np.testing.assert_array_equal(direct.fit(clusters).score_samples(clusters),
                                      refit.score_samples(clusters))
