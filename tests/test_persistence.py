"""skdivae.save / skdivae.load: exact round trips, and hostile files refused without running code."""

import io
import json
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import VarianceThreshold
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from skdivae import (
    DiVAE,
    FlowAligner,
    GaussianMixturePrior,
    KNNLogDensity,
    UnsafeArchiveError,
    VampPrior,
    load,
    save,
)

from .conftest import FAST, manifest_edit, rewrite_archive

pytestmark = pytest.mark.usefixtures("no_convergence_warnings")


MODELS = {
    "divae": lambda: DiVAE(**FAST),
    "divae-kept-teacher": lambda: DiVAE(**FAST, keep_density=True),
    "gmm-flow-combined": lambda: DiVAE(
        **{**FAST, "random_state": np.random.RandomState(3)},
        prior=GaussianMixturePrior(3),
        aligner=FlowAligner(n_layers=2, hidden_units=8),
        anomaly_score="elbo+log_prior",
    ),
    "vamp-fixed-decoder": lambda: DiVAE(**FAST, prior=VampPrior(4), decoder_std=0.1),
    "paper-aligner-log-prior": lambda: DiVAE(**FAST, aligner="direct_paper", anomaly_score="log_prior"),
    "density-gmm": lambda: DiVAE(**FAST, density=GaussianMixture(2, random_state=0)),
    "density-pipeline": lambda: DiVAE(
        **FAST, density=make_pipeline(PCA(2, random_state=0), GaussianMixture(2, random_state=0))
    ),
    "pipeline": lambda: make_pipeline(StandardScaler(), DiVAE(**FAST)),
    "pipeline-variance-threshold": lambda: make_pipeline(VarianceThreshold(0.5), DiVAE(**FAST)),
    "knn": lambda: KNNLogDensity(10),
    "pak": lambda: KNNLogDensity(10, method="pak", intrinsic_dim="twonn"),
    "knn-subsample": lambda: KNNLogDensity(10, max_samples=50, random_state=0),
}


@pytest.mark.parametrize("name", MODELS)
def test_round_trip_gives_bit_identical_outputs(name, X, tmp_path):
    est = MODELS[name]().fit(X)
    path = tmp_path / "model.skdivae"
    save(est, path)
    loaded = load(path)
    assert type(loaded) is type(est)
    np.testing.assert_array_equal(loaded.score_samples(X), est.score_samples(X))
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))
    if hasattr(est, "predict"):
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
        np.testing.assert_array_equal(loaded.decision_function(X), est.decision_function(X))
    assert _comparable(loaded.get_params()) == _comparable(est.get_params())


def test_round_trip_gives_bit_identical_scores_for_every_anomaly_score(X, tmp_path):
    from skdivae._scoring import SCORES

    est = DiVAE(**FAST).fit(X)
    save(est, tmp_path / "model.skdivae")
    loaded = load(tmp_path / "model.skdivae")
    for name in SCORES:
        est.set_params(anomaly_score=name)
        loaded.set_params(anomaly_score=name)
        np.testing.assert_array_equal(loaded.score_samples(X), est.score_samples(X))
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


def _comparable(params):
    """Parameters as a string, with random states by their state rather than their address."""
    def plain(v):
        if isinstance(v, np.random.RandomState):
            state = v.get_state()
            return ("RandomState", state[1].tolist(), state[2:])
        return repr(v)
    return {k: plain(v) for k, v in params.items()}


def test_loaded_divae_keeps_generative_api_and_names(X, tmp_path):
    import pandas as pd

    df = pd.DataFrame(X, columns=list("abcd"))
    est = DiVAE(**FAST).fit(df)
    save(est, tmp_path / "m.skdivae")
    loaded = load(tmp_path / "m.skdivae")
    np.testing.assert_array_equal(loaded.feature_names_in_, est.feature_names_in_)
    np.testing.assert_array_equal(loaded.sample(5, random_state=1), est.sample(5, random_state=1))
    Z = est.transform(df)
    np.testing.assert_array_equal(loaded.inverse_transform(Z), est.inverse_transform(Z))
    assert loaded.history_ == est.history_


def test_loading_leaves_global_torch_rng_alone(X, tmp_path):
    save(DiVAE(**FAST).fit(X), tmp_path / "m.skdivae")
    before = torch.get_rng_state()
    load(tmp_path / "m.skdivae")
    assert torch.equal(before, torch.get_rng_state())


def test_unsupported_density_is_refused_at_save_and_nothing_written(X, tmp_path):
    est = DiVAE(**FAST, density=KernelDensity()).fit(X)
    path = tmp_path / "m.skdivae"
    with pytest.raises(TypeError, match="KernelDensity cannot be saved safely"):
        save(est, path)
    assert not path.exists()


def test_a_failed_save_leaves_the_previous_archive_loadable(X, tmp_path, monkeypatch):
    est = KNNLogDensity(5).fit(X)
    path = tmp_path / "m.skdivae"
    save(est, path)
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save(est, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert np.array_equal(load(path).score_samples(X), est.score_samples(X))
    assert [p.name for p in tmp_path.iterdir()] == ["m.skdivae"]  # no temporary left


def test_concurrent_saves_leave_one_valid_archive(X, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    models = [KNNLogDensity(k).fit(X) for k in (3, 5, 7, 9)]
    path = tmp_path / "m.skdivae"
    for _ in range(5):
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda m: save(m, path), models))
        loaded = load(path)
        assert loaded.n_neighbors in (3, 5, 7, 9)
        assert np.array_equal(loaded.score_samples(X),
                              models[(loaded.n_neighbors - 3) // 2].score_samples(X))
    assert [p.name for p in tmp_path.iterdir()] == ["m.skdivae"]


def test_saving_over_a_private_archive_keeps_it_private(X, tmp_path):
    import os
    import stat

    path = tmp_path / "m.skdivae"
    save(KNNLogDensity(5).fit(X), path)
    os.chmod(path, 0o600)
    save(KNNLogDensity(5).fit(X), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_saved_archive_has_the_usual_file_permissions(X, tmp_path):
    import os
    import stat

    path = tmp_path / "m.skdivae"
    save(KNNLogDensity(5).fit(X), path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


# ---------------------------------------------------------------- hostile files
class _Payload:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture(scope="module")
def archive(X, tmp_path_factory):
    path = tmp_path_factory.mktemp("archive") / "good.skdivae"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        save(DiVAE(**FAST, keep_density=True).fit(X), path)  # arrays: the kept teacher
    return path


def test_a_pickle_payload_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.skdivae"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(UnsafeArchiveError, match="not a zip file"):
        load(path)
    assert not marker.exists()


def test_pickled_arrays_are_refused_and_do_not_run(archive, tmp_path):
    marker = tmp_path / "ran"

    def edit(members):
        buf = io.BytesIO()
        np.savez(buf, a0=np.array([_Payload(marker)], dtype=object))
        members["arrays.npz"] = buf.getvalue()
        return members

    with pytest.raises(UnsafeArchiveError, match="pickled or unreadable"):
        load(rewrite_archive(archive, tmp_path / "t.skdivae", edit))
    assert not marker.exists()


def test_pickled_torch_weights_are_refused_and_do_not_run(archive, tmp_path):
    marker = tmp_path / "ran"

    def edit(members):
        members["weights/0.safetensors"] = pickle.dumps(_Payload(marker))
        return members

    with pytest.raises(UnsafeArchiveError, match="unreadable weights"):
        load(rewrite_archive(archive, tmp_path / "t.skdivae", edit))
    assert not marker.exists()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.update(format_version=99), "format version 99"),
        (lambda m: m.update(format="other"), "format field"),
        (lambda m: m["root"].update({"class": "builtins.eval"}), "'builtins.eval' is not a type"),
        (lambda m: m["root"].update({"class": "os.system"}), "'os.system' is not a type"),
        (lambda m: m["root"]["params"].update(activation={"__type__": "callable", "name": "os.system"}),
         "unknown entry type 'callable'"),
        (lambda m: m["root"]["params"].update(no_such_parameter=1), "parameters do not fit"),
        (lambda m: m["root"]["state"].update(offset_={"__type__": "array", "key": "a999"}),
         "array 'a999' is missing"),
        (lambda m: m.update(n_weights=2), "weights/1.safetensors is missing"),
        (lambda m: m["root"]["state"].update(bad={"__type__": "scalar", "dtype": "|O", "value": 1}),
         "not allowed"),
        (lambda m: m.update(format_version=4.0), "format version 4.0"),
        (lambda m: m["root"]["state"].pop("n_features_in_"), "lacks n_features_in_"),
    ],
    ids=["version", "format", "eval", "os.system", "callable", "params", "missing-array",
         "missing-weights", "object-scalar", "float-version", "no-n_features_in_"],
)
def test_tampered_manifest_is_refused(archive, tmp_path, change, message):
    with pytest.raises(UnsafeArchiveError, match=message):
        load(rewrite_archive(archive, tmp_path / "t.skdivae", manifest_edit(change)))


def test_invalid_json_and_missing_members_are_refused(archive, tmp_path):
    def broken(members):
        members["skdivae.json"] = b"{not json"
        return members

    with pytest.raises(UnsafeArchiveError, match="not valid JSON"):
        load(rewrite_archive(archive, tmp_path / "a.skdivae", broken))

    def no_arrays(members):
        del members["arrays.npz"]
        return members

    with pytest.raises(UnsafeArchiveError, match="not a skdivae archive"):
        load(rewrite_archive(archive, tmp_path / "b.skdivae", no_arrays))


def test_weights_that_do_not_fit_the_network_are_refused(archive, tmp_path):
    from safetensors.torch import save as save_tensors

    def edit(members):
        members["weights/0.safetensors"] = save_tensors({"encoder.mlp.0.weight": torch.zeros(3, 3)})
        return members

    with pytest.raises(UnsafeArchiveError, match="do not fit the network"):
        load(rewrite_archive(archive, tmp_path / "t.skdivae", edit))


def _weights_edit(change):
    from safetensors.torch import load as load_tensors
    from safetensors.torch import save as save_tensors

    def edit(members):
        tensors = dict(load_tensors(members["weights/0.safetensors"]))
        change(tensors)
        members["weights/0.safetensors"] = save_tensors(tensors)
        return members
    return edit


def _arrays_edit(change):
    """An edit of arrays.npz: ``change(arrays, manifest)`` alters the dict of its arrays."""
    def edit(members):
        with np.load(io.BytesIO(members["arrays.npz"])) as npz:
            arrays = {k: npz[k] for k in npz.files}
        change(arrays, json.loads(members["skdivae.json"]))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        members["arrays.npz"] = buf.getvalue()
        return members
    return edit


@pytest.mark.parametrize("change, message", [
    (lambda t: t["encoder.mlp.0.weight"].fill_(float("nan")), "non-finite values in the weights"),
    (lambda t: t["decoder.0.bias"].fill_(float("inf")), "non-finite values in the weights"),
    (lambda t: t["scale"].zero_(), "scale must be positive"),
])
def test_non_finite_weights_and_a_zero_scale_are_refused(archive, tmp_path, change, message):
    with pytest.raises(UnsafeArchiveError, match=message):
        load(rewrite_archive(archive, tmp_path / "w.skdivae", _weights_edit(change)))


@pytest.mark.parametrize("name", ["offset_"])
def test_a_non_finite_threshold_is_refused(archive, tmp_path, name):
    edit = manifest_edit(lambda m: m["root"]["state"].update({name: float("nan")}))
    with pytest.raises(UnsafeArchiveError, match=f"{name} is not finite"):
        load(rewrite_archive(archive, tmp_path / "o.skdivae", edit))


def test_missing_array_in_npz_is_refused(archive, tmp_path):
    edit = _arrays_edit(lambda arrays, manifest: arrays.pop(next(iter(arrays))))
    with pytest.raises(UnsafeArchiveError, match="missing from arrays.npz"):
        load(rewrite_archive(archive, tmp_path / "t.skdivae", edit))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m["root"].update(params=[1, 2]), "must be mappings"),
        (lambda m: m["root"]["state"].update(device_={"__type__": "device", "name": "foo"}),
         "malformed 'device' entry"),
        (lambda m: m["root"]["state"].update(x_={"__type__": "scalar", "dtype": "|i1", "value": 1000}),
         "malformed 'scalar' entry"),
        (lambda m: m["root"]["state"].update(n_features_in_=10**13), "do not fit the network"),
        (lambda m: m["root"]["params"].update(hidden_layer_sizes=[10**9]), "do not fit the network"),
        (lambda m: m["root"].pop("weights"), "belong to a fitted DiVAE"),
        (lambda m: m["root"]["state"].update(deep=_nested(200)), "nested deeper"),
    ],
    ids=["params-list", "device", "overflow", "huge-features", "huge-layers", "no-weights", "deep"],
)
def test_malformed_entries_are_refused_as_unsafe_archives(archive, tmp_path, change, message):
    with pytest.raises(UnsafeArchiveError, match=message):
        load(rewrite_archive(archive, tmp_path / "t.skdivae", manifest_edit(change)))


def _nested(depth):
    node = 1
    for _ in range(depth):
        node = {"__type__": "tuple", "items": [node]}
    return node


def test_corrupt_zip_members_and_pipeline_memory_are_refused(archive, tmp_path, X):
    def npy_not_npz(members):
        buf = io.BytesIO()
        np.save(buf, np.zeros(3))
        members["arrays.npz"] = buf.getvalue()
        return members

    with pytest.raises(UnsafeArchiveError, match="not an .npz archive"):
        load(rewrite_archive(archive, tmp_path / "a.skdivae", npy_not_npz))

    def junk_npz(members):
        members["arrays.npz"] = b"PK\x03\x04 not really a zip"
        return members

    with pytest.raises(UnsafeArchiveError):
        load(rewrite_archive(archive, tmp_path / "b.skdivae", junk_npz))

    pipe = make_pipeline(StandardScaler(), DiVAE(**FAST)).fit(X)
    save(pipe, tmp_path / "p.skdivae")
    edit = manifest_edit(lambda m: m["root"]["params"].update(memory=str(tmp_path)))
    with pytest.raises(UnsafeArchiveError, match="memory= is not loaded"):
        load(rewrite_archive(tmp_path / "p.skdivae", tmp_path / "q.skdivae", edit))


def _move_memory_into_state(key, folder):
    def change(manifest):
        manifest["root"]["params"].pop("memory", None)
        manifest["root"]["state"][key] = folder
    return change


@pytest.mark.parametrize("key", ["memory", "__dict__", "_memory", "steps"])
def test_parameters_and_private_names_cannot_come_in_through_the_state(X, tmp_path, key):
    """The attack: a Pipeline whose memory (a joblib cache folder the archive names, with a
    pickle planted in it) arrives through the fitted state; a refit would unpickle it."""
    folder = tmp_path / "cache"
    folder.mkdir()
    marker = tmp_path / "code-ran"
    (folder / "planted.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    pipe = make_pipeline(StandardScaler(), DiVAE(**FAST)).fit(X)
    save(pipe, tmp_path / "p.skdivae")
    tampered = rewrite_archive(tmp_path / "p.skdivae", tmp_path / "q.skdivae",
                        manifest_edit(_move_memory_into_state(key, str(folder))))
    with pytest.raises(UnsafeArchiveError, match="fitted attribute"):
        load(tampered)
    assert not marker.exists()


def test_unknown_private_state_is_refused(archive, tmp_path):
    edit = manifest_edit(lambda m: m["root"]["state"].update(_anything=1))
    with pytest.raises(UnsafeArchiveError, match="not a fitted attribute of DiVAE"):
        load(rewrite_archive(archive, tmp_path / "s.skdivae", edit))


def test_duplicate_members_and_duplicate_json_keys_are_refused(archive, tmp_path):
    with zipfile.ZipFile(archive) as zf:
        members = [(n, zf.read(n)) for n in zf.namelist()]
    dup = tmp_path / "dup.skdivae"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        with zipfile.ZipFile(dup, "w") as zf:
            for n, data in members + [members[0]]:
                zf.writestr(n, data)
    with pytest.raises(UnsafeArchiveError, match="duplicate members"):
        load(dup)

    def twice(members):
        text = members["skdivae.json"].decode()
        members["skdivae.json"] = text.replace('{"format"', '{"format": "x", "format"', 1).encode()
        return members

    with pytest.raises(UnsafeArchiveError, match="duplicate key 'format'"):
        load(rewrite_archive(archive, tmp_path / "k.skdivae", twice))


@pytest.mark.parametrize("root", [None, 3, {"__type__": "tuple", "items": []}])
def test_a_root_that_is_not_an_estimator_is_refused(archive, tmp_path, root):
    edit = manifest_edit(lambda m: m.update(root=root))
    with pytest.raises(UnsafeArchiveError, match="root is not an estimator"):
        load(rewrite_archive(archive, tmp_path / "r.skdivae", edit))


@pytest.mark.parametrize("name", ["O,i4", "M8[s]", "c16"])
def test_object_holding_datetime_and_complex_dtypes_are_refused(archive, tmp_path, name):
    edit = manifest_edit(lambda m: m["root"]["state"].update(
        extra_={"__type__": "dtype", "name": name}))
    with pytest.raises(UnsafeArchiveError, match="not allowed"):
        load(rewrite_archive(archive, tmp_path / "d.skdivae", edit))


@pytest.mark.parametrize("values", [np.zeros(3, dtype="M8[s]"), np.zeros(3, dtype=complex)])
def test_datetime_and_complex_arrays_are_refused(archive, tmp_path, values):
    edit = _arrays_edit(lambda arrays, manifest: arrays.update({next(iter(arrays)): values}))
    with pytest.raises(UnsafeArchiveError, match="are not allowed"):
        load(rewrite_archive(archive, tmp_path / "c.skdivae", edit))


@pytest.mark.parametrize("name", ["offset_", "n_features_in_", "score_center_"])
def test_a_fitted_state_with_attributes_missing_is_refused(archive, tmp_path, name):
    def change(m):
        m["root"]["state"].pop(name)
        if name == "score_center_":  # needed by the combined scores
            m["root"]["params"]["anomaly_score"] = "min(elbo,log_prior)"

    edit = manifest_edit(change)
    with pytest.raises(UnsafeArchiveError, match="lacks|weights belong"):
        load(rewrite_archive(archive, tmp_path / "m.skdivae", edit))


@pytest.mark.parametrize("change", [dict(alignment_weight=-1.0), dict(n_threads=0),
                                    dict(anomaly_score="anything")])
def test_loaded_parameters_are_validated_by_the_estimators_constraints(archive, tmp_path, change):
    edit = manifest_edit(lambda m: m["root"]["params"].update(change))
    with pytest.raises(UnsafeArchiveError, match="invalid parameters"):
        load(rewrite_archive(archive, tmp_path / "p.skdivae", edit))


def test_thread_counts_are_bounded_by_the_machine(archive, tmp_path, X):
    import os

    from skdivae._torch_utils import torch_threads

    with torch_threads(10_000):
        assert torch.get_num_threads() <= (os.cpu_count() or 1)
    edit = manifest_edit(lambda m: m["root"]["params"].update(n_threads=128))
    est = load(rewrite_archive(archive, tmp_path / "t.skdivae", edit))
    assert np.isfinite(est.score_samples(X)).all()


def test_a_zip_bomb_is_refused_before_it_is_inflated(archive, tmp_path):
    def bomb(members):
        members["arrays.npz"] = bytes(80 * 2**20)  # 80 MiB of zeros: about 80 kB deflated
        return members

    src = rewrite_archive(archive, tmp_path / "b.skdivae", lambda m: m)
    with zipfile.ZipFile(src) as zf:
        members = bomb({n: zf.read(n) for n in zf.namelist()})
    path = tmp_path / "bomb.skdivae"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    assert path.stat().st_size < 2**20
    with pytest.raises(UnsafeArchiveError, match="would inflate"):
        load(path)


@pytest.mark.parametrize("param, spec", [
    ("prior", {"__type__": "estimator", "class": "skdivae.GaussianMixturePrior",
               "params": {"n_components": 10**9, "kl": "bound"}, "state": {}}),
    ("prior", {"__type__": "estimator", "class": "skdivae.VampPrior",
               "params": {"n_components": 10**7, "kl": "bound"}, "state": {}}),
    ("aligner", {"__type__": "estimator", "class": "skdivae.FlowAligner",
                 "params": {"n_layers": 10**4, "hidden_units": 10**4, "learning_rate": 0.001,
                            "update_every": 4, "delta": 1.0}, "state": {}}),
])
def test_a_huge_prior_or_aligner_setting_is_refused_before_it_is_built(archive, tmp_path, param, spec):
    # Refused by the size check, which runs before any module is built (before it, these
    # settings allocated gigabytes).
    edit = manifest_edit(lambda m: m["root"]["params"].update({param: spec}))
    with pytest.raises(UnsafeArchiveError, match="needs at least|describe .* layers"):
        load(rewrite_archive(archive, tmp_path / "h.skdivae", edit))


def test_a_network_layout_that_differs_from_the_weights_is_refused_before_allocation(
    archive, tmp_path, monkeypatch
):
    # A GMM prior with fewer components than stored passes the size check (it needs less than
    # the archive holds); the layout, laid out on torch's meta device, must match the stored
    # names and shapes exactly before any memory is allocated for the network.
    import torch

    spec = {"__type__": "estimator", "class": "skdivae.GaussianMixturePrior",
            "params": {"n_components": 2, "kl": "bound"}, "state": {}}
    edit = manifest_edit(lambda m: m["root"]["params"].update({"prior": spec}))
    path = rewrite_archive(archive, tmp_path / "l.skdivae", edit)

    def no_allocation(*args, **kwargs):
        raise AssertionError("memory allocated for a network that does not fit its weights")

    monkeypatch.setattr(torch.nn.Module, "to_empty", no_allocation)
    with pytest.raises(UnsafeArchiveError, match="do not fit the network"):
        load(path)


@pytest.mark.parametrize("name", ["gmm-flow-combined", "vamp-fixed-decoder"])
def test_loading_computes_nothing_from_data(name, X, tmp_path, monkeypatch):
    # A flow aligner fits a PCA of the training data (an n_features x n_features
    # eigendecomposition) and a VampPrior draws pseudo-inputs from it; a loaded model has
    # those values in its weights, so load must not recompute them (a tall, thin archive
    # would otherwise make it decompose a huge matrix).
    from skdivae._nn.aligners import FlowCorrected
    from skdivae._nn.priors import Vamp

    est = MODELS[name]().fit(X)
    save(est, tmp_path / "m.skdivae")

    def refuse(*args, **kwargs):
        raise AssertionError("load recomputed a value from data")

    monkeypatch.setattr(FlowCorrected, "init_from_data", refuse)
    monkeypatch.setattr(Vamp, "init_from_data", refuse)
    loaded = load(tmp_path / "m.skdivae")
    np.testing.assert_array_equal(loaded.score_samples(X), est.score_samples(X))


def test_a_bomb_inside_the_arrays_member_is_refused(archive, tmp_path):
    def bomb(members):
        inner = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(members["arrays.npz"])) as old, \
                zipfile.ZipFile(inner, "w", compression=zipfile.ZIP_DEFLATED) as new:
            for n in old.namelist():
                new.writestr(n, old.read(n))
            new.writestr("bomb.npy", bytes(80 * 2**20))
        members["arrays.npz"] = inner.getvalue()
        return members

    with pytest.raises(UnsafeArchiveError, match="arrays in arrays.npz would inflate"):
        load(rewrite_archive(archive, tmp_path / "n.skdivae", bomb))


def test_an_oversized_manifest_is_refused(archive, tmp_path):
    def pad(members):
        manifest = json.loads(members["skdivae.json"])
        manifest["pad"] = [[]] * (3 * 2**20)
        members["skdivae.json"] = json.dumps(manifest).encode()
        return members

    with pytest.raises(UnsafeArchiveError, match="larger than"):
        load(rewrite_archive(archive, tmp_path / "big.skdivae", pad))


def test_duplicate_key_check_is_linear(archive, tmp_path):
    import time

    def many_keys(members):
        text = members["skdivae.json"].decode()
        keys = ",".join(f'"k{i}": 0' for i in range(200_000))
        members["skdivae.json"] = (text[:-1] + ', "x": {' + keys + ', "k199999": 0}}').encode()
        return members

    path = rewrite_archive(archive, tmp_path / "keys.skdivae", many_keys)
    tic = time.perf_counter()
    with pytest.raises(UnsafeArchiveError, match="duplicate key 'k199999'"):
        load(path)
    assert time.perf_counter() - tic < 10  # quadratic: hours


def test_weights_reused_by_several_networks_and_too_many_estimators_are_refused(archive, tmp_path):
    import copy

    def copies(n, of):
        def change(manifest):
            node = copy.deepcopy(manifest["root"] if of == "root" else manifest["root"]["state"][of])
            manifest["root"]["state"]["history_"] = [node] * n
        return change

    # (a copied DiVAE reuses the stored arrays too: either refusal comes first)
    with pytest.raises(UnsafeArchiveError, match="belong to another network|used twice"):
        load(rewrite_archive(archive, tmp_path / "c.skdivae", manifest_edit(copies(2, "root"))))
    # the kept teacher: an estimator without a network, copied 300 times, reuses arrays
    with pytest.raises(UnsafeArchiveError, match="used twice"):
        load(rewrite_archive(archive, tmp_path / "d.skdivae", manifest_edit(copies(300, "density_"))))
    # 300 estimators that hold no arrays
    prior = {"__type__": "estimator", "class": "skdivae.StandardNormalPrior", "params": {},
             "state": {}}
    edit = manifest_edit(lambda m: m["root"]["state"].update(history_=[prior] * 300))
    with pytest.raises(UnsafeArchiveError, match="more than 256 estimators"):
        load(rewrite_archive(archive, tmp_path / "e.skdivae", edit))


def test_complex_weights_are_refused(archive, tmp_path):
    def change(t):
        v = t["encoder.mlp.0.weight"]
        v = v.float()
        t["encoder.mlp.0.weight"] = torch.complex(v, torch.zeros_like(v))  # complex64

    with pytest.raises(UnsafeArchiveError, match="must be float64"):
        load(rewrite_archive(archive, tmp_path / "w.skdivae", _weights_edit(change)))


@pytest.mark.parametrize("name, value", [
    ("score_center_", np.zeros(1)), ("score_scale_", np.ones(1)), ("offsets_", np.zeros(1)),
    ("offsets_", np.zeros((5, 1))), ("offsets_", np.array(["a"] * 5)),
])
def test_fitted_arrays_of_the_wrong_shape_or_type_are_refused(archive, tmp_path, name, value):
    def change(arrays, manifest):
        arrays[manifest["root"]["state"][name]["key"]] = value

    edit = _arrays_edit(change)
    with pytest.raises(UnsafeArchiveError, match=f"{name} must be a float array"):
        load(rewrite_archive(archive, tmp_path / "s.skdivae", edit))


@pytest.mark.parametrize("name, value", [("offset_", "0.5"), ("n_features_in_", "4")])
def test_fitted_scalars_of_the_wrong_type_are_refused(archive, tmp_path, name, value):
    edit = manifest_edit(lambda m: m["root"]["state"].update({name: value}))
    with pytest.raises(UnsafeArchiveError):
        load(rewrite_archive(archive, tmp_path / "t.skdivae", edit))


def test_only_regular_files_are_read(tmp_path):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeArchiveError, match="not a regular file"):
        load(fifo)  # would block for ever
    with pytest.raises(UnsafeArchiveError, match="not a regular file"):
        load("/dev/zero")  # would be read without end


@pytest.mark.parametrize("svd_solver", ["randomized", "arpack", "full"])
def test_a_pca_round_trip_is_bit_identical_whatever_its_memory_layout(svd_solver, tmp_path):
    # The randomized solver leaves components_ as a column-first strided view and arpack as
    # a view with its rows reversed; stored as plain C arrays they gave outputs 1 ulp apart.
    X = np.random.default_rng(0).normal(size=(300, 20))
    est = make_pipeline(PCA(5, svd_solver=svd_solver, random_state=0), KNNLogDensity(10)).fit(X)
    save(est, tmp_path / "p.skdivae")
    loaded = load(tmp_path / "p.skdivae")
    np.testing.assert_array_equal(loaded.score_samples(X), est.score_samples(X))
    pca, loaded_pca = est[0], loaded[0]
    np.testing.assert_array_equal(loaded_pca.transform(X), pca.transform(X))
    np.testing.assert_array_equal(loaded_pca.inverse_transform(pca.transform(X)),
                                  pca.inverse_transform(pca.transform(X)))


@pytest.mark.parametrize("flip", [[5], [0, 0], ["0"], "0", [True]])
def test_a_malformed_array_layout_is_refused(tmp_path, flip):
    X = np.random.default_rng(0).normal(size=(100, 6))
    save(PCA(2, svd_solver="arpack", random_state=0).fit(X), tmp_path / "p.skdivae")

    def change(manifest):
        layouts = [node for node in manifest["root"]["state"].values()
                   if isinstance(node, dict) and "flip" in node]
        assert layouts, "the arpack PCA stores a flipped components_"
        layouts[0]["flip"] = flip

    with pytest.raises(UnsafeArchiveError, match="layout"):
        load(rewrite_archive(tmp_path / "p.skdivae", tmp_path / "bad.skdivae", manifest_edit(change)))


def test_a_loaded_n_jobs_is_bounded_by_the_cpu_count(tmp_path):
    import os

    X = np.random.default_rng(0).normal(size=(100, 4))
    save(KNNLogDensity(10, n_jobs=1).fit(X), tmp_path / "k.skdivae")

    def change(manifest):
        manifest["root"]["params"]["n_jobs"] = 10**6
        manifest["root"]["state"]["nn_"]["params"]["n_jobs"] = 10**6

    loaded = load(rewrite_archive(tmp_path / "k.skdivae", tmp_path / "j.skdivae", manifest_edit(change)))
    assert loaded.n_jobs == loaded.nn_.n_jobs == (os.cpu_count() or 1)
    np.testing.assert_array_equal(loaded.score_samples(X), KNNLogDensity(10).fit(X).score_samples(X))


# ---- a third attacker review: small files that cost much, and inconsistent fitted arrays
def _state_key(manifest, name):
    return manifest["root"]["state"][name]["key"]


def test_many_tiny_layers_are_refused_before_they_are_laid_out(archive, tmp_path):
    # 5 000 one-unit layers from a file of a few kB: each layer must be among the stored
    # tensors before anything is laid out (before, 20 000 layers took 13 s of CPU).
    params = manifest_edit(lambda m: m["root"]["params"].update(hidden_layer_sizes=[1] * 5000))

    def few_tensors(t):  # enough numbers in all, the first layer and centre as required
        n_features = t["center"].shape[0]
        t.clear()
        t.update({"center": torch.zeros(n_features), "pad": torch.zeros(40_000),
                  "encoder.mlp.0.weight": torch.zeros(1, n_features)})

    def edit(members):
        return _weights_edit(few_tensors)(params(members))

    with pytest.raises(UnsafeArchiveError, match="describe 10002 layers"):
        load(rewrite_archive(archive, tmp_path / "deep.skdivae", edit))


def test_arrays_are_used_once_and_all_used(archive, tmp_path):
    def reuse(manifest):
        manifest["root"]["state"]["spare_"] = {"__type__": "array",
                                               "key": _state_key(manifest, "score_center_")}

    with pytest.raises(UnsafeArchiveError, match="used twice"):
        load(rewrite_archive(archive, tmp_path / "r.skdivae", manifest_edit(reuse)))

    def extra(arrays, manifest):
        arrays["unused"] = np.zeros(3)

    with pytest.raises(UnsafeArchiveError, match="arrays nothing uses"):
        load(rewrite_archive(archive, tmp_path / "u.skdivae", _arrays_edit(extra)))


def test_counts_of_entries_arrays_and_tensors_are_capped(archive, tmp_path, monkeypatch):
    import skdivae._archive_checks as checks
    import skdivae._archive_reader as persistence

    monkeypatch.setattr(persistence, "MAX_NODES", 50)
    with pytest.raises(UnsafeArchiveError, match="more than 50 entries"):
        load(archive)
    monkeypatch.undo()
    monkeypatch.setattr(checks, "MAX_ARRAYS", 2)
    with pytest.raises(UnsafeArchiveError, match="more than 2 arrays"):
        load(archive)
    monkeypatch.undo()
    monkeypatch.setattr(checks, "MAX_TENSORS", 5)
    with pytest.raises(UnsafeArchiveError, match="at most 5"):
        load(archive)


def test_a_member_compressed_otherwise_than_save_does_is_refused(archive, tmp_path):
    path = tmp_path / "lzma.skdivae"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            method = zipfile.ZIP_LZMA if info.filename == "skdivae.json" else zipfile.ZIP_DEFLATED
            dst.writestr(info.filename, src.read(info.filename), compress_type=method)
    with pytest.raises(UnsafeArchiveError, match="compressed with a method"):
        load(path)


def test_a_nearest_neighbors_index_is_rebuilt_from_float_rows_only(tmp_path):
    X = np.random.default_rng(0).normal(size=(60, 3))
    save(KNNLogDensity(5).fit(X), tmp_path / "k.skdivae")

    for narrow in (lambda a: a > 0, lambda a: a.astype(np.float16), lambda a: a.astype(np.int64)):
        def to_narrow(arrays, manifest):
            key = manifest["root"]["state"]["nn_"]["state"]["_fit_X"]["key"]
            arrays[key] = narrow(arrays[key])  # an index rebuilt from it would be larger

        with pytest.raises(UnsafeArchiveError, match="_fit_X must be a 2-D float32 or float64"):
            load(rewrite_archive(tmp_path / "k.skdivae", tmp_path / "b.skdivae",
                                 _arrays_edit(to_narrow)))


@pytest.mark.parametrize("algorithm", ["brute", "kd_tree"])
def test_a_float32_neighbour_index_round_trips_bit_identical(algorithm, tmp_path):
    from sklearn.neighbors import NearestNeighbors

    X = np.random.default_rng(0).normal(size=(200, 20)).astype(np.float32)
    nn = NearestNeighbors(n_neighbors=3, algorithm=algorithm).fit(X)
    save(nn, tmp_path / "n.skdivae")
    loaded = load(tmp_path / "n.skdivae")
    assert loaded._fit_X.dtype == np.float32
    for a, b in zip(loaded.kneighbors(X), nn.kneighbors(X)):
        np.testing.assert_array_equal(a, b)


def test_zero_width_arrays_are_refused(tmp_path):
    # '<U0' holds any number of elements in 0 bytes: past every size cap.
    save(KNNLogDensity(5).fit(np.random.default_rng(0).normal(size=(30, 2))), tmp_path / "k.skdivae")

    def add_names(members):  # numpy writes '<U0' as '<U1', so the member is made by hand
        header = repr({"descr": "<U0", "fortran_order": False, "shape": (10**12,)}).encode()
        header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
        npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
        buf = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(members["arrays.npz"])) as old, \
                zipfile.ZipFile(buf, "w") as new:
            for name in old.namelist():
                new.writestr(name, old.read(name))
            new.writestr("huge.npy", npy)
        members["arrays.npz"] = buf.getvalue()
        return members

    def names_state(manifest):
        manifest["root"]["state"]["feature_names_in_"] = {"__type__": "array", "key": "huge"}

    def edit(members):
        return manifest_edit(names_state)(add_names(members))

    with pytest.raises(UnsafeArchiveError, match="dtype <U0 are not allowed"):
        load(rewrite_archive(tmp_path / "k.skdivae", tmp_path / "b.skdivae", edit))


@pytest.mark.parametrize("names", [["a", "b"], ["a", "b", "c"], [["a"], ["b"]]])
def test_feature_names_that_disagree_with_the_features_are_refused(names, tmp_path):
    import pandas as pd

    X = pd.DataFrame(np.random.default_rng(0).normal(size=(30, 2)), columns=["a", "b"])
    save(KNNLogDensity(5).fit(X), tmp_path / "k.skdivae")
    value = np.array(names)
    entry = {"__type__": "str_array", "shape": list(value.shape), "items": value.ravel().tolist()}
    edit = manifest_edit(lambda m: m["root"]["state"].update(feature_names_in_=entry))
    if names == ["a", "b"]:  # the untampered names load
        assert list(load(rewrite_archive(tmp_path / "k.skdivae", tmp_path / "b.skdivae", edit))
                    .feature_names_in_) == ["a", "b"]
        return
    with pytest.raises(UnsafeArchiveError, match="feature_names_in_ must be a 1-D array"):
        load(rewrite_archive(tmp_path / "k.skdivae", tmp_path / "b.skdivae", edit))


def test_a_divae_whose_output_width_is_not_its_latent_size_is_refused(tmp_path):
    # transform's feature names are built from it: 10**12 of them would never end.
    save(DiVAE(**FAST).fit(np.random.default_rng(0).normal(size=(40, 3))), tmp_path / "d.skdivae")
    edit = manifest_edit(lambda m: m["root"]["state"].update(_n_features_out=10**12))
    with pytest.raises(UnsafeArchiveError, match="_n_features_out must be the latent size"):
        load(rewrite_archive(tmp_path / "d.skdivae", tmp_path / "b.skdivae", edit))


@pytest.mark.parametrize("change, message", [
    (dict(n_features_in_=5), "disagree on the number of features"),
    (dict(n_components_=7), "disagree on the number of features"),
    (dict(n_neighbors_=1, method_="pak"), "needs n_neighbors_ >= 2"),
])
def test_teacher_state_that_fit_would_not_produce_is_refused(change, message, tmp_path):
    path = _fitted(KNNLogDensity(5, n_components=2, method="pak"), tmp_path)
    edit = manifest_edit(lambda m: m["root"]["state"].update(**change))
    with pytest.raises(UnsafeArchiveError, match=message):
        load(rewrite_archive(path, tmp_path / "bad.skdivae", edit))


def _fitted(est, tmp_path):
    X = np.random.default_rng(0).normal(size=(80, 4))
    save(est.fit(X), tmp_path / "m.skdivae")
    return tmp_path / "m.skdivae"


@pytest.mark.parametrize("est, name, message", [
    (StandardScaler(), "scale_", "scale_ must be a float array of shape"),
    (VarianceThreshold(), "variances_", "variances_ must be a float array of shape"),
    (PCA(2), "explained_variance_", "explained_variance_ must be a float array"),
    (GaussianMixture(3, random_state=0), "weights_", "weights_ must be a float array"),
    (KNNLogDensity(5, method="pak"), "_fit_dist", "_fit_dist must be a float array"),
])
def test_fitted_arrays_that_disagree_with_the_sizes_are_refused(est, name, message, tmp_path):
    # A length-1 array would broadcast over every feature and score finite, wrong values.
    path = _fitted(est, tmp_path)

    def shrink(arrays, manifest):
        key = manifest["root"]["state"][name]["key"]
        arrays[key] = arrays[key][:1]

    with pytest.raises(UnsafeArchiveError, match=message):
        load(rewrite_archive(path, tmp_path / "bad.skdivae", _arrays_edit(shrink)))


def test_a_teacher_with_a_negative_intrinsic_dimension_is_refused(tmp_path):
    path = _fitted(KNNLogDensity(5, n_components=2), tmp_path)
    edit = manifest_edit(lambda m: m["root"]["state"].update(intrinsic_dim_=-1.0))
    with pytest.raises(UnsafeArchiveError, match="intrinsic_dim_ must be a positive number"):
        load(rewrite_archive(path, tmp_path / "bad.skdivae", edit))


def _without(path, dst, names):
    """An archive as an older skdivae wrote it: without the fitted ``names``."""
    def edit(members):
        manifest = json.loads(members["skdivae.json"])
        keys = [manifest["root"]["state"].pop(name)["key"] for name in names]
        members["skdivae.json"] = json.dumps(manifest).encode()
        with np.load(io.BytesIO(members["arrays.npz"])) as npz:
            arrays = {k: npz[k] for k in npz.files if k not in keys}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        members["arrays.npz"] = buf.getvalue()
        return members
    return rewrite_archive(path, dst, edit)


def test_an_older_archive_refuses_thresholds_it_cannot_set(X, tmp_path):
    # Before score_quantiles_ (and before offsets_), an archive kept thresholds for the
    # fitted contamination (and score) only: other settings must be refused, not ignored.
    est = DiVAE(**FAST).fit(X)
    save(est, tmp_path / "m.skdivae")
    old = load(_without(tmp_path / "m.skdivae", tmp_path / "old.skdivae", ["score_quantiles_"]))
    np.testing.assert_array_equal(old.predict(X), est.predict(X))
    old.set_params(anomaly_score="log_prior")  # offsets_ holds every score's threshold
    np.testing.assert_array_equal(old.predict(X),
                                  est.set_params(anomaly_score="log_prior").predict(X))
    with pytest.raises(ValueError, match="older skdivae.*contamination=0.1"):
        old.set_params(contamination=0.3).predict(X)
    with pytest.raises(ValueError, match="older skdivae.*score_quantiles_"):
        old.set_params(contamination=0.1).predict_proba(X)
    save(old, tmp_path / "again.skdivae")  # the restriction survives another round trip
    with pytest.raises(ValueError, match="older skdivae"):
        load(tmp_path / "again.skdivae").set_params(contamination=0.3).predict(X)
    older = load(_without(tmp_path / "m.skdivae", tmp_path / "older.skdivae",
                          ["score_quantiles_", "offsets_"]))
    with pytest.raises(ValueError, match="anomaly_score='elbo'"):
        older.set_params(anomaly_score="log_prior").predict(X)


def test_save_refuses_parameters_that_load_would_refuse(X, tmp_path):
    est = DiVAE(**FAST).fit(X).set_params(contamination=0.9)
    with pytest.raises(ValueError, match="'contamination' parameter"):
        save(est, tmp_path / "bad.skdivae")
    assert not (tmp_path / "bad.skdivae").exists()


def test_an_archive_without_its_arrays_says_so(archive, tmp_path):
    def edit(members):
        del members["arrays.npz"]
        return members

    with pytest.raises(UnsafeArchiveError, match=r"arrays.npz missing"):
        load(rewrite_archive(archive, tmp_path / "t.skdivae", edit))


def test_save_writes_through_a_link_and_refuses_what_is_not_a_regular_file(tmp_path):
    import os

    kd = KNNLogDensity(5).fit(np.random.default_rng(0).normal(size=(30, 2)))
    (tmp_path / "target.skdivae").write_bytes(b"old")
    os.symlink(tmp_path / "target.skdivae", tmp_path / "link.skdivae")
    save(kd, tmp_path / "link.skdivae")
    assert (tmp_path / "link.skdivae").is_symlink()  # the link stays, its file is replaced
    np.testing.assert_array_equal(load(tmp_path / "target.skdivae").log_density_, kd.log_density_)
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ValueError, match="names a folder"):
        save(kd, str(tmp_path / "target.skdivae") + os.sep)  # open() would refuse it too
    for bad in (tmp_path / "pipe", tmp_path):
        with pytest.raises(ValueError, match="not a regular file"):
            save(kd, bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.skdivae", "pipe", "target.skdivae"]


def test_save_follows_a_link_of_ones_own_and_refuses_one_planted_in_a_shared_folder(tmp_path):
    import os

    kd = KNNLogDensity(5).fit(np.random.default_rng(0).normal(size=(30, 2)))
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: world-writable, sticky
    victim = tmp_path / "victim"
    victim.write_bytes(b"mine")
    own = shared / "own.skdivae"
    os.symlink(victim, own)
    save(kd, own)  # a link of one's own is followed
    assert victim.read_bytes()[:4] == b"PK\x03\x04"
    if not (hasattr(os, "lchown") and os.geteuid() == 0):
        pytest.skip("planting another user's link needs root")
    victim.write_bytes(b"mine")
    planted = shared / "planted.skdivae"
    os.symlink(victim, planted)
    os.lchown(planted, 65534, 65534)  # another user's link
    (tmp_path / "sub").mkdir()
    os.symlink(shared, tmp_path / "sub" / "dl")
    for path in (planted, tmp_path / "sub" / "dl" / ".." / "shared" / "planted.skdivae"):
        with pytest.raises(PermissionError, match="owned by another user"):
            save(kd, path)
    assert victim.read_bytes() == b"mine"


def test_save_refuses_a_long_chain_of_links(tmp_path):
    import errno
    import os

    kd = KNNLogDensity(5).fit(np.random.default_rng(0).normal(size=(30, 2)))
    os.symlink(tmp_path / "target", tmp_path / "link0")
    for i in range(1, 45):
        os.symlink(tmp_path / f"link{i - 1}", tmp_path / f"link{i}")
    with pytest.raises(OSError) as caught:
        save(kd, tmp_path / "link44")
    assert caught.value.errno == errno.ELOOP
    assert not (tmp_path / "target").exists()


def test_save_refuses_a_file_it_may_not_write(tmp_path):
    import os
    import stat

    kd = KNNLogDensity(5).fit(np.random.default_rng(0).normal(size=(30, 2)))
    readonly = tmp_path / "readonly.skdivae"
    readonly.write_bytes(b"keep")
    readonly.chmod(stat.S_IRUSR)
    if os.access(readonly, os.W_OK):
        pytest.skip("this user may write a read-only file (root), as open() may")
    with pytest.raises(PermissionError, match="may not be written"):
        save(kd, readonly)
    assert readonly.read_bytes() == b"keep"


def test_save_and_load_take_bytes_paths(tmp_path):
    import os

    kd = KNNLogDensity(5).fit(np.random.default_rng(0).normal(size=(30, 2)))
    path = os.fsencode(tmp_path / "kd.skdivae")
    save(kd, path)
    np.testing.assert_array_equal(load(path).log_density_, kd.log_density_)


def _step(manifest, i):
    """The i-th step's entry of a saved Pipeline's manifest."""
    return manifest["root"]["params"]["steps"][i]["items"][1]


@pytest.mark.parametrize("edit, message", [
    (lambda m, a: a.__setitem__(_step(m, 1)["state"]["scale_"]["key"], -a[_step(m, 1)["state"]["scale_"]["key"]]),
     "scale_ must be positive"),
    (lambda m, a: a[_step(m, 1)["state"]["min_"]["key"]].__setitem__(0, np.inf), "min_ is not finite"),
    (lambda m, a: a[_step(m, 0)["state"]["variances_"]["key"]].__setitem__(0, np.nan),
     "variances_ is not finite"),
    (lambda m, a: _step(m, 1)["params"]["feature_range"].__setitem__("items", [1, 0]),
     "feature_range must be two finite numbers"),
    (lambda m, a: _step(m, 0)["params"].__setitem__(
        "threshold", float(np.median(a[_step(m, 0)["state"]["variances_"]["key"]]))),
     "hands on .* features, but step 'minmaxscaler' was fitted on 4"),
    (lambda m, a: m["root"]["params"]["steps"][1]["items"].__setitem__(0, "variancethreshold"),
     "step names repeat"),
], ids=["negative scale", "infinite min", "NaN variance", "empty feature_range",
        "threshold dropping features", "repeated step names"])
def test_a_tampered_pipeline_step_is_refused_not_scored(edit, message, tmp_path):
    # each of these loaded before and scored every row alike, or failed blaming the data
    X = np.random.default_rng(0).normal(size=(80, 4))
    pipe = make_pipeline(VarianceThreshold(0.1), MinMaxScaler(), KNNLogDensity(5)).fit(X)
    save(pipe, tmp_path / "p.skdivae")

    def change(members):
        manifest = json.loads(members["skdivae.json"])
        with np.load(io.BytesIO(members["arrays.npz"])) as npz:
            arrays = {k: npz[k].copy() for k in npz.files}
        edit(manifest, arrays)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        members["arrays.npz"], members["skdivae.json"] = buf.getvalue(), json.dumps(manifest).encode()
        return members

    with pytest.raises(UnsafeArchiveError, match=message):
        load(rewrite_archive(tmp_path / "p.skdivae", tmp_path / "bad.skdivae", change))


def test_a_whitening_pca_with_a_zero_variance_is_refused(tmp_path):
    path = _fitted(PCA(2, whiten=True), tmp_path)

    def zero(arrays, manifest):
        arrays[manifest["root"]["state"]["explained_variance_"]["key"]][0] = 0.0

    with pytest.raises(UnsafeArchiveError, match="explained_variance_ must be positive"):
        load(rewrite_archive(path, tmp_path / "bad.skdivae", _arrays_edit(zero)))
