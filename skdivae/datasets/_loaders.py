"""Offline loaders for the benchmark data: MNIST / Fashion-MNIST idx files and ADBench .npz files.

Nothing here downloads: each loader reads a local path and, when something
is missing, says which file it looked for.
"""

import gzip
import zipfile
import zlib
from pathlib import Path

import numpy as np

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_MAGIC = {2051: 3, 2049: 1}  # images: 3 dimensions, labels: 1
_MNIST_SHAPE = (28, 28)


def _find(directory, stem):
    for name in (stem + ".gz", stem):
        path = directory / name
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{stem}.gz (or {stem}) not found in {directory}. Put the original idx files of "
        "MNIST / Fashion-MNIST there (no download is attempted)."
    )


#: The most that deflate (gzip) can inflate a byte to, rounded up.
_MAX_INFLATION = 1100


def _read_at_most(handle, limit, chunk=1 << 24):
    """Up to ``limit`` bytes of ``handle``, read ``chunk`` bytes at a time."""
    parts, size = [], 0
    while size < limit:
        part = handle.read(min(chunk, limit - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def read_idx(path, ndim=None):
    """Read one idx file (optionally gzip-compressed) into a uint8 array; ``ndim`` (3 for
    images, 1 for labels) refuses a file of the other kind. A gzip-compressed file whose
    header declares more than about 1 100 times its size (deflate cannot inflate more) is
    refused before anything is read."""
    return _read_idx(path, ndim, _MAX_INFLATION)


def _read_idx(path, ndim, max_inflation):
    """:func:`read_idx`, refusing a compressed file that declares more than
    ``max_inflation`` times its size."""
    path = Path(path)
    if ndim not in (None, 1, 3):
        raise ValueError(f"ndim must be None, 1 (labels) or 3 (images), got {ndim!r}.")
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        return _read_idx_from(path, opener, ndim, max_inflation)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # a name in .gz, bytes that are not
        raise ValueError(f"{path} is not a readable gzip-compressed idx file ({exc}).") from None


def _read_idx_from(path, opener, ndim, max_inflation):
    """The body of :func:`_read_idx`, the file opened by ``opener``."""
    with opener(path, "rb") as handle:
        head = handle.read(4)
        magic = int.from_bytes(head, "big") if len(head) == 4 else None
        if magic not in _IDX_MAGIC:
            raise ValueError(f"{path} is not an idx file of uint8 images or labels (magic {magic}).")
        if ndim is not None and _IDX_MAGIC[magic] != ndim:
            kind = {3: "images", 1: "labels"}
            raise ValueError(
                f"{path} holds {kind[_IDX_MAGIC[magic]]} (rank {_IDX_MAGIC[magic]}), but "
                f"{kind[ndim]} (rank {ndim}) were expected; check the file names."
            )
        ndim = _IDX_MAGIC[magic]
        dims = handle.read(4 * ndim)
        if len(dims) < 4 * ndim:
            raise ValueError(f"{path} is truncated: its header is cut short.")
        shape = tuple(int.from_bytes(dims[4 * i : 4 + 4 * i], "big") for i in range(ndim))
        if 0 in shape:
            raise ValueError(f"{path} holds no {'images' if ndim == 3 else 'labels'} (shape {shape}).")
        # A header that declares more than the file could hold (deflate inflates at most
        # ~1032-fold) is refused before anything is read; otherwise what it declares and
        # one byte more is read, a chunk at a time, so memory follows the bytes the file
        # really holds and never passes the declared size.
        expected = int(np.prod(shape, dtype=object))
        inflation = max_inflation if opener is gzip.open else 1
        if path.is_file() and expected > path.stat().st_size * inflation:
            raise ValueError(f"{path} is truncated or corrupt: header says {shape}, more "
                             "values than the file can hold.")
        payload = _read_at_most(handle, expected + 1)
    if len(payload) != expected:
        found = "more" if len(payload) > expected else len(payload)
        raise ValueError(f"{path} is truncated or corrupt: header says {shape}, found {found} values.")
    payload = np.frombuffer(payload, dtype=np.uint8)
    return payload.reshape(shape)


def load_mnist(data_dir, subset="train"):
    """MNIST-format images as ``(X, y)``: X of shape (n, 784), floats in [0, 1] (not binarised).

    Parameters
    ----------
    data_dir : str or Path
        Folder holding the original idx files (``train-images-idx3-ubyte.gz``
        etc.), e.g. a ``mnist/`` or ``fashion_mnist/`` folder.
    subset : {"train", "test"}, default="train"

    Returns
    -------
    X : ndarray of shape (n_samples, 784), float64
    y : ndarray of shape (n_samples,), int
    """
    if not isinstance(subset, str) or subset not in _IDX_FILES:
        raise ValueError(f"subset must be 'train' or 'test', got {subset!r}.")
    directory = Path(data_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"data directory {directory} does not exist.")
    images_stem, labels_stem = _IDX_FILES[subset]
    # The images become float64, 8 bytes per stored byte: the file may declare an eighth
    # of what deflate allows, so that what is returned stays within that bound too.
    images = _read_idx(_find(directory, images_stem), 3, _MAX_INFLATION // 8)
    if images.shape[1:] != _MNIST_SHAPE:
        raise ValueError(f"{images_stem} in {directory} holds images of shape "
                         f"{images.shape[1:]}, not MNIST's {_MNIST_SHAPE}.")
    labels = read_idx(_find(directory, labels_stem), ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels in {directory}.")
    return images.reshape(len(images), -1) / 255.0, labels.astype(np.int64)


def _declared_arrays(path, names=("X", "y")):
    """``{name: (shape, dtype)}`` of the members ``name.npy`` of the zip file ``path``, read
    from their headers alone (other members are not looked at); a ValueError when a header
    is not that of an array, or declares more bytes than its member holds, or than deflate
    could inflate its compressed bytes to."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: info for info in archive.infolist()}
        for name in names:  # numpy reads key X from a member "X" or "X.npy", "X" first
            if sum(info.filename in (name, f"{name}.npy") for info in archive.infolist()) > 1:
                raise ValueError(f"{path} holds array {name} more than once ({name}.npy, or "
                                 f"{name} and {name}.npy); which one is meant is unclear.")
        for info in (members[f"{n}.npy"] for n in names if f"{n}.npy" in members):
            if info.file_size > _MAX_INFLATION * max(info.compress_size, 1):
                raise ValueError(f"{path}: {info.filename} declares {info.file_size} bytes, "
                                 "more than its compressed bytes can hold.")
            with archive.open(info) as handle:
                version = np.lib.format.read_magic(handle)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(handle)
                if dtype.hasobject:
                    raise ValueError(f"{path}: {info.filename} holds Python objects; reading them "
                                     "would need pickle, which is never used.")
                if int(np.prod(shape, dtype=object)) * dtype.itemsize > info.file_size:
                    raise ValueError(f"{path}: {info.filename} declares shape {shape} of "
                                     f"{dtype}, more than its {info.file_size} bytes hold.")
            arrays[info.filename[: -len(".npy")]] = (shape, dtype)
    return arrays


def load_adbench(path):
    """One ADBench data set as ``(X, y)``, y = 1 for anomalies.

    The labels follow ADBench and PyOD (1 = anomaly), not scikit-learn's
    outlier convention (-1 = outlier): score searches with
    ``skdivae.model_selection.anomaly_roc_auc``, which reads both, rather than
    ``scoring="roc_auc"`` (which would rank these labels inverted).

    Parameters
    ----------
    path : str or Path
        An ``.npz`` file with arrays ``X`` and ``y`` (other members are ignored).

    Notes
    -----
    The array headers are read first: a header that declares more bytes than
    its member holds, or than deflate could inflate the member's compressed
    bytes to (about 1 000-fold), is refused before any array is read. A
    genuine file can still grow about 1 000-fold when inflated, and ``X``
    another 8-fold when stored as bool or uint8 and returned as float64: load
    files from sources you trust, or check their declared sizes first.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ADBench file {path} not found (no download is attempted).")
    with open(path, "rb") as head:
        # numpy reads a file as .npz only when it starts as a zip does; a zip appended to
        # something else (a .npy, a pickle) passes is_zipfile but is read as that.
        starts_as_zip = head.read(4) == b"PK\x03\x04"
    if not (starts_as_zip and zipfile.is_zipfile(path)):  # (numpy would read a pickle or
        # text and suggest unpickling)
        raise ValueError(f"{path} is not an .npz archive of arrays X and y.")
    try:
        declared = _declared_arrays(path)
        missing = {"X", "y"} - set(declared)
        if missing:
            raise ValueError(f"{path} lacks the array(s) {sorted(missing)}; found "
                             f"{sorted(declared)}.")
        if declared["X"][1].kind not in "biuf":  # as fit refuses it: no date as a number
            raise ValueError(f"{path}: X must hold real numbers, got dtype {declared['X'][1]}.")
        with np.load(path, allow_pickle=False) as data:
            X_raw, y_raw = data["X"], np.asarray(data["y"])
    except (ValueError, OSError, EOFError, RuntimeError, NotImplementedError, KeyError,
            zipfile.BadZipFile, zlib.error) as exc:  # a broken member, header or stream
        if isinstance(exc, ValueError) and str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path} is not a readable .npz archive of arrays X and y ({exc}).") \
            from exc
    X = np.asarray(X_raw, dtype=np.float64)
    if y_raw.dtype.kind not in "biuf" or (
        y_raw.dtype.kind == "f" and not (np.isfinite(y_raw).all() and (y_raw == np.round(y_raw)).all())
    ):
        raise ValueError(f"{path}: y must hold whole numbers (0 or 1), got dtype {y_raw.dtype} "
                         "with non-integer or non-finite values.")
    if not np.isin(y_raw, (0, 1)).all():
        raise ValueError(f"{path}: y must be 0 (normal) or 1 (anomaly); found "
                         f"{sorted(np.unique(y_raw).tolist())[:5]}.")
    y = y_raw.astype(np.int64)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"{path}: X must be 2-D and y 1-D of the same length, got {X.shape}, {y.shape}.")
    if X.shape[0] == 0 or X.shape[1] == 0 or not np.isfinite(X).all():
        raise ValueError(f"{path}: X must have at least one row, at least one column and only "
                         f"finite values (shape {X.shape}).")
    return X, y
