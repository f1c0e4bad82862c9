"""Apply a fitted estimator's per-row methods block by block to dask collections."""

import numpy as np

#: Methods that give one value per row, and those that give one row per row.
ROW_VALUES = ("score_samples", "decision_function", "predict")
ROW_ARRAYS = ("transform",)


def score_blockwise(estimator, X, method="score_samples"):
    """Call ``estimator.<method>`` on each block of a dask array or dataframe, lazily.

    dask-ml's ``ParallelPostFit`` wraps ``predict`` and ``transform`` but not
    ``score_samples`` or ``decision_function``; this helper covers all four
    for any fitted estimator whose outputs depend on each row alone (true of
    DiVAE and KNNLogDensity: their scores are deterministic and per row).

    Parameters
    ----------
    estimator : fitted estimator
    X : dask.array.Array of shape (n_samples, n_features), dask.dataframe.DataFrame \
            or array-like
        Chunks may split rows in any way; columns are gathered into one chunk.
        Anything else is passed to the method directly (in memory).
    method : {"score_samples", "decision_function", "predict", "transform"}, \
            default="score_samples"

    Returns
    -------
    result : dask.array.Array, dask.dataframe.Series / DataFrame, or ndarray
        Lazy, with one output block per input block; call ``.compute()``.
        The values equal the in-memory call on the whole of ``X`` up to float64
        rounding (matrix products over a block may differ in the last bit).

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from skdivae import KNNLogDensity, score_blockwise
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> kd = KNNLogDensity(10).fit(X)
    >>> lazy = score_blockwise(kd, da.from_array(X, chunks=50))
    >>> bool(np.allclose(lazy.compute(), kd.score_samples(X)))
    True
    """
    if method not in ROW_VALUES + ROW_ARRAYS:
        raise ValueError(
            f"method must be one of {ROW_VALUES + ROW_ARRAYS}, got {method!r}."
        )
    if not hasattr(estimator, method):
        raise AttributeError(f"{type(estimator).__name__} has no method {method!r}.")
    func = getattr(estimator, method)
    kind = _dask_kind(X)
    if kind is None:
        return func(X)
    if kind == "array":
        return _blockwise_array(func, method, X)
    return _blockwise_frame(func, method, X)


def _dask_kind(X):
    module = type(X).__module__
    if not module.startswith("dask"):
        return None
    import dask.array as da

    if isinstance(X, da.Array):
        return "array"
    import dask.dataframe as dd

    if isinstance(X, dd.DataFrame):
        return "frame"
    raise TypeError(f"score_blockwise takes a dask array or DataFrame, got {type(X).__name__}.")


def _blockwise_array(func, method, X):
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D dask array, got {X.ndim} dimension(s).")
    X = X.rechunk({1: -1})
    if method in ROW_ARRAYS:
        n_out = func(np.asarray(X[:1].compute())).shape[1]
        return X.map_blocks(func, chunks=(X.chunks[0], (n_out,)), dtype=float)
    return X.map_blocks(
        func, drop_axis=1, dtype=int if method == "predict" else float
    )


def _blockwise_frame(func, method, X):
    import pandas as pd

    if method in ROW_ARRAYS:
        head = X.head(1)
        out = func(head)
        names = getattr(out, "columns", None)
        columns = list(names) if names is not None else list(range(np.shape(out)[1]))
        meta = pd.DataFrame({c: pd.Series(dtype=float) for c in columns})

        def part(df):
            res = func(df)
            return pd.DataFrame(np.asarray(res), index=df.index, columns=columns)

        return X.map_partitions(part, meta=meta)

    dtype = "i8" if method == "predict" else "f8"

    def part(df):
        return pd.Series(np.asarray(func(df)), index=df.index, name=method)

    return X.map_partitions(part, meta=(method, dtype))
