import gzip

import numpy as np
import pytest

from skdivae.datasets import RotatedGaussianMixture, load_adbench, load_mnist, read_idx


def _write_idx(path, array, magic, compress=True):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize("compress", [True, False])
def test_load_mnist_reads_idx_files(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28))
    labels = np.arange(5)
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, 2051, compress)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, 2049, compress)
    X, y = load_mnist(tmp_path, subset="test")
    assert X.shape == (5, 784) and X.dtype == np.float64
    np.testing.assert_allclose(X[0], images[0].ravel() / 255)
    np.testing.assert_array_equal(y, labels)


def test_load_mnist_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="subset"):
        load_mnist(tmp_path, subset="valid")


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x00\x00\x00\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes((2049).to_bytes(4, "big") + (10).to_bytes(4, "big") + b"\x01\x02")
    with pytest.raises(ValueError, match="truncated"):
        read_idx(short)


def test_load_adbench(tmp_path):
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.r_[np.zeros(18), np.ones(2)]
    np.savez(tmp_path / "toy.npz", X=X, y=y)
    X2, y2 = load_adbench(tmp_path / "toy.npz")
    np.testing.assert_array_equal(X2, X)
    assert y2.dtype == np.int64 and y2.sum() == 2
    with pytest.raises(FileNotFoundError, match="not found"):
        load_adbench(tmp_path / "missing.npz")
    np.savez(tmp_path / "noy.npz", X=X)
    with pytest.raises(ValueError, match="lacks"):
        load_adbench(tmp_path / "noy.npz")
    # a pickle, a text file or an empty file named .npz: no advice to unpickle it
    import pickle

    (tmp_path / "pickled.npz").write_bytes(pickle.dumps({"X": X, "y": y}))
    (tmp_path / "text.npz").write_text("1,2,3\n")
    (tmp_path / "empty.npz").write_bytes(b"")
    # a .npy with a valid .npz appended: numpy reads the .npy (battery 8)
    import io

    head, tail = io.BytesIO(), io.BytesIO()
    np.save(head, X)
    np.savez(tail, X=X, y=y)
    (tmp_path / "polyglot.npz").write_bytes(head.getvalue() + tail.getvalue())
    for name in ("pickled.npz", "text.npz", "empty.npz", "polyglot.npz"):
        with pytest.raises(ValueError, match="is not an .npz archive"):
            load_adbench(tmp_path / name)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", X=X_nan, y=y)
    with pytest.raises(ValueError, match="only finite values"):
        load_adbench(tmp_path / "nan.npz")


def test_rotated_mixture_true_density():
    data = RotatedGaussianMixture(n_components=3, n_features=6, random_state=0)
    assert np.linalg.det(data.rotation_) == pytest.approx(1.0)
    np.testing.assert_allclose(data.rotation_.T @ data.rotation_, np.eye(6), atol=1e-12)
    assert np.all((data.means_ >= -5) & (data.means_ <= 5))
    assert np.all((data.scales_ >= 0.4) & (data.scales_ <= 0.6))
    X, labels = data.sample(4000, random_state=1)
    # the 2-D density integrates to one over the mixture plane
    lo, hi = data.means_.min() - 3, data.means_.max() + 3
    g = np.linspace(lo, hi, 300)
    grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    X_grid = np.hstack([grid, np.zeros((len(grid), 4))]) @ data.rotation_.T
    mass = np.exp(data.log_density_2d(X_grid)).sum() * (g[1] - g[0]) ** 2
    assert mass == pytest.approx(1.0, abs=1e-3)
    # the full density adds the padding noise term
    extra = data.log_density(X) - data.log_density_2d(X)
    assert np.all(np.isfinite(extra)) and labels.max() == 2


def test_load_mnist_refuses_a_labels_file_given_as_images(tmp_path):
    labels = np.arange(5)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", labels, 2049)  # labels in place of images
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels, 2049)
    with pytest.raises(ValueError, match="holds labels .* images .* were expected"):
        load_mnist(tmp_path, subset="test")


@pytest.mark.parametrize("y, message", [
    (np.r_[np.zeros(19), np.nan], "whole numbers"),
    (np.r_[np.zeros(19), 0.5], "whole numbers"),
    (np.r_[np.zeros(19), 2.0], "0 \\(normal\\) or 1"),
    (np.array(["a"] * 20), "whole numbers"),
])
def test_load_adbench_refuses_labels_that_are_not_0_or_1(tmp_path, y, message):
    np.savez(tmp_path / "bad.npz", X=np.zeros((20, 3)), y=y)
    with pytest.raises(ValueError, match=message):
        load_adbench(tmp_path / "bad.npz")


def test_rotated_mixture_names_bad_arguments():
    data = RotatedGaussianMixture(n_components=3, n_features=5, random_state=0)
    with pytest.raises(ValueError, match="Expected 2D array"):
        data.log_density(np.zeros(5))
    with pytest.raises(ValueError, match="X has 4 features, but this mixture lives in 5"):
        data.log_density_2d(np.zeros((2, 4)))
    for bad in (-1, 2.0, True):
        with pytest.raises(ValueError, match="n_samples must be an int of at least 0"):
            data.sample(bad)
    assert data.sample(0)[0].shape == (0, 5)


def test_read_idx_names_a_bad_gzip_file_and_reads_an_upper_case_suffix(tmp_path):
    labels = np.arange(6, dtype=np.uint8)
    _write_idx(tmp_path / "labels.GZ", labels, 0x00000801)
    np.testing.assert_array_equal(read_idx(tmp_path / "labels.GZ"), labels)
    _write_idx(tmp_path / "plain.gz", labels, 0x00000801, compress=False)
    with pytest.raises(ValueError, match="not a readable gzip-compressed idx file"):
        read_idx(tmp_path / "plain.gz")
    whole = (tmp_path / "labels.GZ").read_bytes()
    (tmp_path / "cut.gz").write_bytes(whole[:-10])
    with pytest.raises(ValueError, match="not a readable gzip-compressed idx file"):
        read_idx(tmp_path / "cut.gz")


def test_load_adbench_refuses_no_columns_and_a_repeated_member(tmp_path):
    import io
    import zipfile

    np.savez(tmp_path / "empty.npz", X=np.zeros((5, 0)), y=np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match="at least one column"):
        load_adbench(tmp_path / "empty.npz")

    def member(array):
        buf = io.BytesIO()
        np.save(buf, array)
        return buf.getvalue()

    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(tmp_path / "twice.npz", "w") as archive:
            archive.writestr("X.npy", member(np.ones((3, 2))))
            archive.writestr("X.npy", member(np.zeros((3, 2))))
            archive.writestr("y.npy", member(np.zeros(3, dtype=int)))
    with pytest.raises(ValueError, match="array X more than once"):
        load_adbench(tmp_path / "twice.npz")
    with zipfile.ZipFile(tmp_path / "both.npz", "w") as archive:  # numpy would read "X"
        archive.writestr("X.npy", member(np.ones((3, 2))))
        archive.writestr("X", member(np.ones((3, 2)) * 1j))
        archive.writestr("y.npy", member(np.zeros(3, dtype=int)))
    with pytest.raises(ValueError, match="array X more than once"):
        load_adbench(tmp_path / "both.npz")
