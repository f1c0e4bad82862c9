"""Warnings about the training columns that a fit cannot act on but a user should know:
columns that never vary, and a fixed ``decoder_std`` over columns on different scales.
Both are silent otherwise (a new walk-through's findings): the fit succeeds and the
scores are finite, but a change in a constant column barely moves a row's score, and one
fixed noise over raw columns of very different spreads makes the widest columns decide
every score."""

import warnings

import numpy as np

from ._training_data import column_moments, constant_columns

#: ``decoder_std`` is one number for every column: the columns' ranges (largest minus
#: smallest training value) must then be of one order. Pixel data (0-16 or 0-255, a few
#: border pixels with a small range) and tables whose numeric columns were scaled (ranges
#: of a few units beside one-hot 0/1) stay far below this ratio; raw units (a price in
#: thousands beside a ratio in tenths) pass it.
RANGE_RATIO = 1000.0
#: Columns named in a warning at most; the rest are counted.
SHOWN = 5


def column_label(est, j):
    """Column ``j``'s name as the user passed it (a DataFrame's) or its position."""
    names = getattr(est, "feature_names_in_", None)
    return repr(str(names[j])) if names is not None else str(j)


def listed(est, columns):
    """``"'a', 'b' and 3 more"``: the first ``SHOWN`` of ``columns`` by label."""
    labels = [column_label(est, int(j)) for j in columns[:SHOWN]]
    more = len(columns) - len(labels)
    return ", ".join(labels) + (f" and {more} more" if more else "")


def warn_about_columns(est, X, stacklevel, data="the training data"):
    """A UserWarning for each of: columns constant in ``X``; a fixed ``decoder_std`` over
    columns whose ranges differ more than ``RANGE_RATIO``-fold. ``data`` names ``X`` in the
    message (``partial_fit``: its first block, whose standardisation every later call
    keeps)."""
    X = np.asarray(X, dtype=np.float64)
    if X.shape[0] < 2:
        return
    center, std = column_moments(X)
    constant = np.flatnonzero(constant_columns(center, std, X.shape[0]))
    if len(constant):
        which = "column" if len(constant) == 1 else "columns"
        later = ("" if data == "the training data" else
                 " Later partial_fit calls keep this block's standardisation: a column that "
                 "varies only later is read in its raw units.")
        warnings.warn(
            f"{len(constant)} of the {X.shape[1]} features DiVAE was given "
            f"{'is' if len(constant) == 1 else 'are'} constant in {data} ({which} "
            f"{listed(est, constant)}). DiVAE learns nothing about how they vary: a new row "
            "that differs there may score only a little lower and go unflagged. Check such "
            "columns yourself (a new value there is a change of schema) or drop them."
            + later,
            UserWarning, stacklevel=stacklevel,
        )
    if est.decoder_std is None or est.likelihood != "gaussian":
        return
    spread = np.ptp(X, axis=0)
    varying = spread[spread > 0]
    if len(varying) < 2 or varying.max() <= RANGE_RATIO * varying.min():
        return
    widest = int(np.argmax(spread))
    narrowest = int(np.argmin(np.where(spread > 0, spread, np.inf)))
    warnings.warn(
        f"decoder_std={est.decoder_std!r} is one noise scale, in X's units, for every "
        f"column, but the columns' ranges differ {varying.max() / varying.min():.0f}-fold "
        f"(column {column_label(est, widest)}: {spread[widest]:.3g}, column "
        f"{column_label(est, narrowest)}: {spread[narrowest]:.3g}): the widest columns "
        "then decide every score. Scale the numeric columns first (e.g. a StandardScaler "
        "in a ColumnTransformer, leaving 0/1 columns as they are; user guide, section 4), "
        "or leave decoder_std=None.",
        UserWarning, stacklevel=stacklevel,
    )
