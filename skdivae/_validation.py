"""The one place that imports scikit-learn's private parameter-validation helpers.

scikit-learn calls ``_parameter_constraints`` a private mechanism; keeping
every import of it here means a change upstream touches one file.
"""

import numpy as np
from sklearn.utils._param_validation import (  # noqa: F401  (re-exported)
    HasMethods,
    RealNotInt,
    StrOptions,
)
from sklearn.utils._param_validation import Interval as _SklearnInterval
from sklearn.utils.validation import validate_data


class Interval(_SklearnInterval):
    """scikit-learn's ``Interval``, except that a boolean is never a number in it.

    ``True`` is an ``int`` to Python, so ``Interval(Integral, 1, None)`` would let
    ``max_iter=True`` pass as 1 epoch and ``Interval(Real, 0, None)`` would let
    ``alignment_weight=True`` pass as 1.0; a boolean given for a number is a mistake
    to report, not a value to use.
    """

    def is_satisfied_by(self, val):
        return not isinstance(val, bool) and super().is_satisfied_by(val)


__all__ = [
    "HasMethods",
    "Interval",
    "RealNotInt",
    "StrOptions",
]


#: How far outside [0, 1] a value for the Bernoulli decoder may lie: rounding, as in
#: MinMaxScaler's 1.0000000000000002, is not an out-of-range value.
UNIT_INTERVAL_TOL = 1e-9


def outside_unit_interval(X):
    """Whether ``X`` has a value outside [0, 1] by more than rounding."""
    return bool(X.size) and (X.min() < -UNIT_INTERVAL_TOL or X.max() > 1 + UNIT_INTERVAL_TOL)


def check_bernoulli_range(X):
    """The error for training data a Bernoulli decoder cannot model (values off [0, 1])."""
    if outside_unit_interval(X):
        raise ValueError(
            "likelihood='bernoulli' needs every value of X in [0, 1]; "
            "use likelihood='gaussian' or rescale X (e.g. MinMaxScaler)."
        )


def validate_real(est, X, **kwargs):
    """scikit-learn's ``validate_data(est, X, dtype=[float64, float32], **kwargs)``, after
    :func:`refuse_dates`: the one way skdivae's estimators read an ``X`` held in memory."""
    refuse_dates(X)
    try:
        return validate_data(est, X, dtype=[np.float64, np.float32], **kwargs)
    except TypeError as exc:
        if "Sparse data" not in str(exc):
            raise
        raise TypeError(
            f"{exc} skdivae's estimators take dense input only; in a pipeline, make the "
            "encoder dense: OneHotEncoder(sparse_output=False), and sparse_threshold=0 on a "
            "ColumnTransformer.") from None


def refuse_dates(X):
    """A ValueError for dates or durations (numpy ``datetime64`` / ``timedelta64``, also as
    pandas columns): scikit-learn's ``validate_data`` would turn them into numbers (days or
    nanoseconds since 1970) without a word, and the streamed path refuses them."""
    dtypes = getattr(X, "dtypes", None)  # a DataFrame: one per column
    if dtypes is None or not hasattr(dtypes, "__iter__"):
        dtypes = [getattr(X, "dtype", None)]
    if isinstance(X, (list, tuple)) or getattr(X, "dtype", None) == object:
        try:  # rows of Python or numpy scalars, or an object array
            values = np.asarray(X)
        except (ValueError, TypeError):  # ragged: validate_data will say so
            values = np.empty(0)
        dtypes = [values.dtype]
        if values.dtype == object and any(
                isinstance(v, (np.datetime64, np.timedelta64)) for v in values.ravel()):
            dtypes = [np.dtype("M8")]
    for dtype in dtypes:
        if getattr(dtype, "kind", None) in ("m", "M"):
            raise ValueError(
                f"X holds dates or durations (dtype {dtype}); skdivae needs real numbers "
                "(bool, int or float). Convert them to the numbers you mean first, such as days "
                "since a start date."
            )
