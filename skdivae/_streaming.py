"""``fit`` on data that are not in memory: a ``numpy.memmap``, a dask array or a dask
dataframe (local or on a cluster).

One pass computes the columns' moments; the teacher is fitted on a uniform random sample
of at most ``DENSITY_MAX_SAMPLES`` rows; each epoch then reads the blocks in a random
order, ``BUFFER_BLOCKS`` at a time, shuffles the rows of those blocks together and trains
one pass over them, the teacher's log-density of each row (and its error) queried on
the fly and kept in a temporary file for the later epochs (16 bytes a row on disk). Memory is bounded by the block and buffer
sizes, not by the number of rows. In-memory input never comes here.
"""

import mmap
import os
import tempfile
import time

import numpy as np
import torch

from ._incremental import BlockTrainer, _seed
from ._training import epoch_budget
from ._validation import check_bernoulli_range, refuse_dates
from ._training_data import (
    DENSITY_MAX_SAMPLES,
    block_arrays,
    check_magnitude,
    density_targets,
    fit_density,
    scale_from_moments,
    standardizes,
    trim_threshold,
)

#: Rows read at a time from a memory-mapped file (a dask collection keeps its own chunks).
BLOCK_ROWS = 65_536
#: Blocks whose rows are shuffled together in a training pass.
BUFFER_BLOCKS = 4


def is_out_of_core(X, early_stopping=False):
    """True for a ``numpy.memmap`` or a dask collection: what ``fit`` streams. A memmap
    that joblib made to hand an array to a worker process (``n_jobs`` in a
    ``FeatureUnion``, ``Parallel``, ...) is the user's in-memory array and is fitted as
    one, so that ``n_jobs`` changes the speed only. With ``early_stopping``, which holds
    rows out in memory, a memmap is read and fitted as an array too (a dask collection
    is refused by :func:`fit_streaming`). So is a ``numpy.memmap`` that maps no file
    (``mm.copy()`` or ``mm.astype(...)`` keep the type but live in memory)."""
    if isinstance(X, np.memmap):
        in_memory = getattr(X, "_mmap", None) is None  # (a file without a name maps too)
        return not (early_stopping or in_memory or _made_by_joblib(X))
    return hasattr(X, "__dask_graph__")


def _made_by_joblib(X):
    """Whether the memmap ``X`` lives in one of joblib's automatic memmapping folders."""
    filename = getattr(X, "filename", None)
    if not filename:
        return False
    folder = os.path.basename(os.path.dirname(os.fspath(filename)))
    return folder.startswith("joblib_memmapping_folder_")


class RowBlocks:
    """The rows of an out-of-core table, read a block at a time as float64 arrays, each
    checked (2-D, numeric, finite) as it is read."""

    def __init__(self, X):
        self.feature_names = None
        self._file = None
        if isinstance(X, np.memmap):
            if X.ndim != 2:
                raise ValueError(f"Expected a 2-D memmap of shape (n_samples, n_features), "
                                 f"got shape {X.shape}.")
            self._array, self._dask = X, False
            self._file = _plain_file_layout(X)
            n = X.shape[0]
            self.bounds = [(None, s, min(s + BLOCK_ROWS, n)) for s in range(0, n, BLOCK_ROWS)]
        else:
            kind = _dask_kind(X)
            if kind == "dataframe":
                names = list(X.columns)
                # as scikit-learn reads them in memory: by the names' exact types
                kinds = sorted({type(c).__qualname__ for c in names})
                if kinds == ["str"]:
                    self.feature_names = np.asarray(names, dtype=object)
                elif len(kinds) > 1 and "str" in kinds:
                    raise TypeError(
                        "Feature names are only supported if all input features have string "
                        f"names, but your input has {kinds} as feature name / column name "
                        "types. Convert them all to str (X.columns = X.columns.astype(str)).")
                refuse_dates(X)  # by the columns' dtypes, as in memory
                X = X.to_dask_array(lengths=True)
            if kind is None or X.ndim != 2:
                raise TypeError(
                    "fit streams a numpy.memmap, a 2-D dask array or a dask dataframe; got "
                    f"{type(X).__name__}{'' if kind is None else f' with {X.ndim} dimensions'}."
                    " Pass anything else as an in-memory array."
                )
            if any(np.isnan(c) for c in X.chunks[0]):
                X = X.compute_chunk_sizes()
            if len(X.chunks[1]) > 1:
                X = X.rechunk({1: -1})
            self._array, self._dask = X, True
            starts = np.cumsum((0,) + X.chunks[0])
            self.bounds = [(i, int(a), int(b)) for i, (a, b) in enumerate(zip(starts, starts[1:]))
                           if b > a]
        self.n_rows, self.n_features = int(self._array.shape[0]), int(self._array.shape[1])
        _check_kind(self._array.dtype)
        if self.n_features == 0:
            raise ValueError(f"X has 0 features (shape {tuple(self._array.shape)}); DiVAE "
                             "needs at least one.")

    def __len__(self):
        return len(self.bounds)

    def block(self, i):
        """The rows of block ``i``, and the first of them's index."""
        index, start, stop = self.bounds[i]
        if self._dask:
            data = self._array.blocks[index].compute()
        elif self._file is not None:
            data = self._file.read(start, stop)
        else:  # a view of a mapping: read through it, then let its pages go
            data = np.array(self._array[start:stop])
            mapping = getattr(self._array, "_mmap", None)
            # (not for a copy-on-write mapping: dropping its pages would drop the changes)
            if (mapping is not None and hasattr(mapping, "madvise")
                    and getattr(self._array, "mode", "c") != "c"):
                mapping.madvise(mmap.MADV_DONTNEED)
        return self._checked(data, start), start

    def _checked(self, data, start):
        try:
            data = np.array(data, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            if _holds_missing(data):
                where = "" if start is None else f" (in the block from row {start})"
                raise ValueError(f"Input X contains NaN (a missing value such as pandas' NA)"
                                 f"{where}.") from None
            raise ValueError(f"X must be numeric to train DiVAE: {exc}") from None
        if data.ndim != 2 or data.shape[1] != self.n_features:
            raise ValueError(f"a block of X has shape {data.shape}; expected (rows, "
                             f"{self.n_features}).")
        if not np.isfinite(data).all():
            where = "" if start is None else f" (in the block from row {start})"
            raise ValueError(f"Input X contains NaN or infinity{where}.")
        return data


def _holds_missing(data):
    """Whether a block that would not convert to floats fails for its missing values alone
    (pandas' ``NA`` of a nullable column, ``None``): the rest converts."""
    cells = np.asarray(data, dtype=object)
    try:
        import pandas as pd
        missing = np.asarray(pd.isna(cells), dtype=bool)
    except ImportError:  # pragma: no cover - a dask dataframe needs pandas
        missing = np.vectorize(lambda v: v is None, otypes=[bool])(cells)
    if not missing.any():
        return False
    try:
        np.array(np.where(missing, 0.0, cells), dtype=np.float64)
    except (TypeError, ValueError):  # something else is not a number either
        return False
    return True


def _check_kind(dtype):
    """Refuse what scikit-learn's ``validate_data`` refuses in memory (complex numbers,
    dates and durations, raw records): a cast to float64 would drop an imaginary part or
    turn a date into a number without a word. Object and string blocks are cast, as in
    memory, which fails for anything but numbers."""
    if dtype.kind not in "biufOUS":
        raise ValueError(f"X has dtype {dtype}; DiVAE needs real numbers (bool, int or "
                         "float), as in memory.")


def _dask_kind(X):
    """``"array"`` or ``"dataframe"`` for those dask collections, else None (a delayed
    object, a bag, a series...)."""
    try:
        import dask.array as da
        import dask.dataframe as dd
    except ImportError:  # pragma: no cover - a dask collection implies dask
        return None
    if isinstance(X, da.Array):
        return "array"
    if isinstance(X, dd.DataFrame):
        return "dataframe"
    return None


class _FileRows:
    """Reads rows of a C-ordered memory-mapped file with ordinary reads, so the pages read
    do not stay mapped in the process (its resident memory stays bounded)."""

    def __init__(self, path, offset, dtype, n_features):
        self.path, self.offset, self.dtype, self.n_features = path, offset, dtype, n_features

    def read(self, start, stop):
        row_bytes = self.dtype.itemsize * self.n_features
        with open(self.path, "rb") as f:
            f.seek(self.offset + start * row_bytes)
            data = np.fromfile(f, dtype=self.dtype, count=(stop - start) * self.n_features)
        return data.reshape(stop - start, self.n_features)


def _plain_file_layout(X):
    """A reader for a memmap that is a whole C-ordered array of its file (as
    ``np.load(..., mmap_mode="r")`` gives), else None (read through the mapping)."""
    # A copy-on-write memmap (mode "c") may hold changes the file does not: read it
    # through the mapping.
    if (isinstance(X.base, mmap.mmap) and X.flags.c_contiguous and X.filename
            and getattr(X, "mode", "c") != "c" and os.path.isfile(X.filename)):
        return _FileRows(X.filename, X.offset, X.dtype, X.shape[1])
    return None


def column_moments(source, sample_rows, bernoulli=False):
    """``(mean, std, sample)``: each column's mean and standard deviation, in one pass over
    the blocks (Chan's pairwise update of the blocks' moments; within a block the sums run
    down the rows, so their rounding grows with the block's rows, which the test for a
    constant column allows for), and the rows at the sorted indices ``sample_rows``,
    gathered in the same pass (a block at a time: random reads through a memory mapping
    would map most of a file's pages)."""
    n, mean, m2 = 0, np.zeros(source.n_features), np.zeros(source.n_features)
    sample = np.empty((len(sample_rows), source.n_features))
    for i in range(len(source)):
        block, start = source.block(i)
        lo, hi = np.searchsorted(sample_rows, [start, start + block.shape[0]])
        sample[lo:hi] = block[sample_rows[lo:hi] - start]
        check_magnitude(block)
        if bernoulli:
            check_bernoulli_range(block)
        nb = block.shape[0]
        mean_b = block.mean(axis=0)
        m2_b = ((block - mean_b) ** 2).sum(axis=0)
        delta = mean_b - mean
        total = n + nb
        mean = mean + delta * nb / total
        m2 = m2 + m2_b + delta**2 * n * nb / total
        n = total
    return mean, np.sqrt(m2 / max(n, 1)), sample


class _TargetCache:
    """The teacher's log-density and its error for every row, written the first time a
    block is read, into a temporary file by ordinary writes (the process's memory does
    not grow with the rows)."""

    def __init__(self, n_rows, known=None):
        self._dir = tempfile.TemporaryDirectory(prefix="skdivae-")
        self._path = os.path.join(self._dir.name, "targets.bin")
        self._file = open(self._path, "w+b")
        self._known = known

    def write(self, start, target, err):
        """Store the values of rows ``start, start + 1, ...``; rows given in ``known``
        (sorted row numbers and their values) keep those instead."""
        if self._known is not None:
            rows, known_target, known_err = self._known
            lo, hi = np.searchsorted(rows, [start, start + len(target)])
            if hi > lo:
                target, err = np.array(target, dtype=float), np.array(err, dtype=float)
                target[rows[lo:hi] - start] = known_target[lo:hi]
                err[rows[lo:hi] - start] = known_err[lo:hi]
        self._file.seek(16 * start)
        np.column_stack([target, err]).astype(np.float64).tofile(self._file)

    def read(self, start, stop):
        self._file.seek(16 * start)
        values = np.fromfile(self._file, dtype=np.float64, count=2 * (stop - start))
        return values.reshape(stop - start, 2).T

    def close(self):
        self._file.close()
        self._dir.cleanup()


def fit_streaming(est, X):
    """Train ``est``'s network on the out-of-core ``X``; returns the fitted values (as
    ``_fitting.train_network`` does) and the teacher's sample of rows, in memory, on
    which the threshold is set."""
    if est.early_stopping:
        raise ValueError(
            "early_stopping=True holds out rows in memory; it is not available when fit "
            "streams a dask collection. Set early_stopping=False, or pass the rows as an "
            "array (a numpy.memmap is then read into memory)."
        )
    source = RowBlocks(X)
    if source.n_rows < 3:
        raise ValueError(f"Found array with {source.n_rows} sample(s) while a minimum of 3 "
                         "is required by DiVAE.")
    est.n_features_in_ = source.n_features
    if source.feature_names is not None:
        est.feature_names_in_ = source.feature_names
    else:
        vars(est).pop("feature_names_in_", None)
    seed = _seed(est)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(source.n_rows, min(source.n_rows, DENSITY_MAX_SAMPLES),
                              replace=False))
    mean, std, X_sample = column_moments(source, rows, est.likelihood == "bernoulli")
    if standardizes(est):
        center, scale = scale_from_moments(mean, std, source.n_rows)
    else:
        center, scale = np.zeros(source.n_features), np.ones(source.n_features)
    est._check_training_input(X_sample)
    X_sample_std = (X_sample - center) / scale
    density = fit_density(est.density, X_sample_std, est.n_components, seed)
    # The teacher's own rows get their leave-one-out values, as in fit from memory (a
    # query would count each row as its own neighbour); the other rows are new to it.
    target, err = density_targets(density, X_sample_std)
    trainer = BlockTrainer(
        est, center=center, scale=scale, density=density,
        threshold=trim_threshold(target, est.trim_fraction), X_init_std=X_sample_std,
        seed=seed, n_rows=source.n_rows, probe_from=X_sample_std,
    )
    max_iter = epoch_budget(est.max_iter, source.n_rows, trainer.batch_size)
    cache = _TargetCache(source.n_rows, known=(rows, target, err))
    history = []
    try:
        for epoch in range(max_iter):
            history.append(_epoch(est, trainer, source, cache, epoch))
            if est.verbose:
                h = history[-1]
                print(f"epoch {epoch + 1}/{max_iter}  loss {h['loss']:.4f}  recon "
                      f"{h['recon']:.4f}  kl {h['kl']:.4f}  align {h['align']:.4f}  "
                      f"({h['time']:.1f}s)", flush=True)
    finally:
        cache.close()
    fitted = {"module_": trainer.fitted_module(), "history_": history,
              "batch_size_": trainer.batch_size, "device_": trainer.device, "density": density}
    return fitted, X_sample


def _epoch(est, trainer, source, cache, epoch):
    """One epoch: the blocks in a random order, ``BUFFER_BLOCKS`` shuffled together."""
    tic = time.perf_counter()
    order = torch.randperm(len(source), generator=trainer.generator).tolist()
    sums, n = {}, 0
    for first in range(0, len(order), BUFFER_BLOCKS):
        parts, targets, errors, rows = [], [], [], []
        for i in order[first:first + BUFFER_BLOCKS]:
            block, start = source.block(i)
            block_std = trainer.standardize(block)
            if epoch == 0:
                cache.write(start, *density_targets(trainer.density, block_std,
                                                    fitted_on_X=False))
            target, err = cache.read(start, start + block.shape[0])
            parts.append(block_std)
            targets.append(target)
            errors.append(err)
            rows.append(start + np.arange(block.shape[0]))
        X_std = np.concatenate(parts)
        arrays = block_arrays(X_std, np.concatenate(targets), np.concatenate(errors),
                              trainer.threshold, trainer.device, np.concatenate(rows))
        record = trainer.train(est, arrays, epoch)
        for key, value in record.items():
            sums[key] = sums.get(key, 0.0) + value * X_std.shape[0]
        n += X_std.shape[0]
    record = {key: value / n for key, value in sums.items()}
    record.update(epoch=epoch + 1, time=time.perf_counter() - tic)
    return record
