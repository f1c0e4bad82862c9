"""Apply a fitted estimator's per-row methods block by block to dask collections."""

import functools

import numpy as np

from ._residuals import feature_residuals, residual_names

#: Methods that give one value per row, and those that give one row per row.
ROW_VALUES = ("score_samples", "decision_function", "predict")
ROW_ARRAYS = ("transform", "feature_residuals")


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
    method : {"score_samples", "decision_function", "predict", "transform", \
            "feature_residuals"}, default="score_samples"
        ``"feature_residuals"`` works on a DiVAE or a Pipeline ending in one
        (:func:`~skdivae.feature_residuals`).

    Returns
    -------
    result : dask.array.Array, dask.dataframe.Series / DataFrame, or ndarray
        Lazy, with one output block per input block; call ``.compute()``.
        The values equal the in-memory call on the whole of ``X`` up to float64
        rounding (matrix products over a block may differ in the last bit).
        The estimator is read when the result is computed, not when it is
        built: do not refit it or change its parameters (``contamination``,
        ``anomaly_score``) in between, or the result follows the changed model
        (and a ``transform`` result keeps the width it was declared with).

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
    if method == "feature_residuals":  # also through a Pipeline ending in a DiVAE
        func = functools.partial(feature_residuals, estimator)
    elif not hasattr(estimator, method):
        raise AttributeError(f"{type(estimator).__name__} has no method {method!r}.")
    else:
        func = getattr(estimator, method)
    kind = _dask_kind(X)
    if kind is None:
        return func(X)
    if kind == "array":
        return _blockwise_array(estimator, func, method, X)
    return _blockwise_frame(estimator, func, method, X)


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


def _output_names(estimator, method):
    """Column names of a row-array method's output, from the fitted estimator."""
    if method == "feature_residuals":
        return list(residual_names(estimator))
    return list(estimator.get_feature_names_out())


def _output_width(estimator, func, first_rows, method="transform"):
    """Columns of a row-array method's output: from the fitted estimator, else from the
    first rows (``first_rows()`` is only called then)."""
    try:
        return len(_output_names(estimator, method))
    except (AttributeError, ValueError, TypeError):
        return np.shape(func(first_rows()))[1]


def _rowwise(func, method, width):
    """``func`` on a block, with an empty block giving an empty result of the right shape."""
    def block(part):
        if part.shape[0] == 0:
            shape = (0, width) if method in ROW_ARRAYS else (0,)
            return np.empty(shape, dtype=int if method == "predict" else float)
        return np.asarray(func(part))
    return block


def _blockwise_array(estimator, func, method, X):
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D dask array, got {X.ndim} dimension(s).")
    X = X.rechunk({1: -1})
    if method in ROW_ARRAYS:
        width = _output_width(estimator, func, lambda: np.asarray(X.compute_chunk_sizes()[:1]),
                              method)
        return X.map_blocks(
            _rowwise(func, method, width), chunks=(X.chunks[0], (width,)), dtype=float
        )
    return X.map_blocks(
        _rowwise(func, method, None), drop_axis=1, dtype=int if method == "predict" else float
    )


def _blockwise_frame(estimator, func, method, X):
    import pandas as pd

    if method in ROW_ARRAYS:
        width = _output_width(estimator, func, lambda: X.head(1, npartitions=-1), method)
        try:
            columns = _output_names(estimator, method)
        except (AttributeError, ValueError, TypeError):
            columns = list(range(width))
        meta = pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
        rows = _rowwise(func, method, width)

        def part(df):
            return pd.DataFrame(rows(df), index=df.index, columns=columns)

        return X.map_partitions(part, meta=meta)

    dtype = "i8" if method == "predict" else "f8"
    rows = _rowwise(func, method, None)

    def part(df):
        return pd.Series(rows(df), index=df.index, name=method, dtype=dtype)

    return X.map_partitions(part, meta=(method, dtype))
