"""Which features drive a score, for a fitted DiVAE on its own or at the end of a Pipeline."""

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._pipelines import final_step


def _divae_step(estimator):
    final, _ = final_step(estimator)
    if not hasattr(final, "feature_residuals"):
        raise TypeError(
            f"feature_residuals needs a fitted DiVAE, or a Pipeline ending in one; got "
            f"{type(final).__name__}."
        )
    return final


def feature_residuals(estimator, X):
    """Per-feature reconstruction residuals of a DiVAE, also through a ``Pipeline``.

    ``DiVAE.feature_residuals`` on the rows as the final step sees them: a
    Pipeline's earlier steps transform ``X`` first (without slicing it by
    hand), so the residuals are in the units of the features entering the
    DiVAE (e.g. standardised ones after a ``StandardScaler``);
    :func:`residual_names` names their columns.

    Parameters
    ----------
    estimator : fitted DiVAE, or fitted Pipeline whose last step is a DiVAE
    X : array-like of shape (n_samples, n_features)

    Returns
    -------
    residuals : ndarray of shape (n_samples, n_features_in_ of the DiVAE)

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skdivae import DiVAE, feature_residuals
    >>> rng = np.random.default_rng(0)
    >>> rows = np.vstack([rng.normal(size=(300, 3)), rng.uniform(-6, 6, size=(15, 3))])
    >>> model = make_pipeline(StandardScaler(), DiVAE(max_iter=100, random_state=0)).fit(rows)
    >>> int(np.argmax(np.abs(feature_residuals(model, [[0.0, 0.0, 9.0]]))))
    2
    """
    _divae_step(estimator)  # a clear error when no DiVAE ends it
    final, X = final_step(estimator, X)
    return final.feature_residuals(X)


def residual_names(estimator):
    """Names of :func:`feature_residuals`' columns: the features entering the DiVAE.

    Parameters
    ----------
    estimator : DiVAE or Pipeline ending in one
        Fitted.

    Returns
    -------
    names : ndarray of str, shape (n_features,)
        Through a Pipeline, the output names of the steps before the DiVAE
        (a ``ColumnTransformer``'s encoded names, such as ``"num__age"`` or
        ``"cat__city_Paris"``); else the names of a DataFrame's columns, or
        ``"x0"``, ``"x1"``, ... for an array's.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skdivae import DiVAE, feature_residuals, residual_names
    >>> X = pd.DataFrame(np.random.default_rng(0).normal(size=(200, 3)),
    ...                  columns=["age", "income", "visits"])
    >>> model = DiVAE(max_iter=100, random_state=0).fit(X)
    >>> odd = X.iloc[:1].assign(income=8.0)  # an income 8 standard deviations out
    >>> res = feature_residuals(model, odd)[0]
    >>> residual_names(model)[np.argmax(np.abs(res))]  # the feature that drives its score
    'income'
    """
    final = _divae_step(estimator)
    check_is_fitted(final, "module_")
    if isinstance(estimator, Pipeline) and len(estimator) > 1:
        try:
            names = estimator[:-1].get_feature_names_out()
        except (AttributeError, ValueError, TypeError):
            names = None
        if names is not None:  # (None through "passthrough" steps)
            return np.asarray(names, dtype=object)
    names = getattr(final, "feature_names_in_", None)
    if names is not None:
        return np.asarray(names, dtype=object)
    return np.asarray([f"x{i}" for i in range(final.n_features_in_)], dtype=object)
