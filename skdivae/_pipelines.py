"""The step of a scikit-learn Pipeline that does the work, and the rows as it sees them."""

from sklearn.pipeline import Pipeline


def final_step(estimator, X=None, nested=False):
    """``(last step, X as that step sees it)`` of a Pipeline (``X`` run through the earlier
    steps), or ``(estimator, X)`` for anything else. ``nested``: a Pipeline that is itself
    the last step is followed down to its own last step (the density teacher), else it is
    returned as the last step (where a caller sets the step's parameters by name)."""
    while isinstance(estimator, Pipeline) and len(estimator.steps):
        if X is not None and len(estimator) > 1:
            X = estimator[:-1].transform(X)
        estimator = estimator[-1]
        if not nested:
            break
    return estimator, X
