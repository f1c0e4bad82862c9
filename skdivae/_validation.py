"""The one place that imports scikit-learn's private parameter-validation helpers.

scikit-learn calls ``_parameter_constraints`` a private mechanism; keeping
every import of it here means a change upstream touches one file.
"""

from sklearn.utils._param_validation import (  # noqa: F401  (re-exported)
    HasMethods,
    Interval,
    RealNotInt,
    StrOptions,
)

__all__ = [
    "HasMethods",
    "Interval",
    "RealNotInt",
    "StrOptions",
    "validate",
]


def validate(estimator, integers=()):
    """``estimator._validate_params()``, and the ``integers`` parameters may not be
    booleans (scikit-learn's ``Interval(Integral, ...)`` lets ``True`` pass as 1)."""
    estimator._validate_params()
    for name in integers:
        value = getattr(estimator, name)
        if isinstance(value, bool):
            raise ValueError(
                f"The {name!r} parameter of {type(estimator).__name__} must be an int, not a "
                f"boolean; got {value!r}."
            )
