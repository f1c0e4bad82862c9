"""``DiVAE.set_params``: scikit-learn's, with a clear error for a nested parameter set on
a name or ``None`` (a mixin of :class:`~skdivae.DiVAE`)."""


#: The parameters that take an object with parameters of its own, and how to pass one
#: (the example set_params gives when a nested parameter is set on a name or None).
_NESTED_OBJECTS = {
    "density": "density=KNNLogDensity(30, n_components=8, max_samples=100_000) (what None "
               "builds at fit for n_components=8 and at least 8 features; None uses "
               "min(n_components, n_features) PCA dimensions)",
    "prior": "prior=GaussianMixturePrior() (skdivae.priors: StandardNormalPrior, "
             "GaussianMixturePrior, VampPrior)",
    "aligner": "aligner=FlowAligner() or aligner=DirectAligner() (skdivae.aligners)",
}


class NestedParamsMixin:
    """``set_params`` for an estimator whose ``density``, ``prior`` and ``aligner`` take
    either an object (with parameters of its own) or a name / ``None``."""

    def set_params(self, **params):
        """Set the parameters of this estimator, as scikit-learn's ``set_params``.

        A nested parameter (``density__n_neighbors``, ``prior__n_components``,
        ``aligner__n_layers``) needs an object to set it on: with the default
        ``density=None`` or a named ``prior`` or ``aligner`` (a string), the
        error says which object to pass, e.g. ``density=KNNLogDensity(30,
        n_components=8, max_samples=100_000)`` or ``prior=GaussianMixturePrior()``.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : DiVAE
            This estimator.
        """
        for key in params:
            name, nested, sub = key.partition("__")
            if not nested or name not in _NESTED_OBJECTS:
                continue
            current = params[name] if name in params else getattr(self, name, None)
            if current is None or isinstance(current, str):
                raise ValueError(
                    f"cannot set {key!r}: {name}={current!r} is "
                    + ("a name, not an object" if isinstance(current, str) else "not an object")
                    + f"; pass the object to tune its parameters, e.g. {_NESTED_OBJECTS[name]}."
                )
        return super().set_params(**params)
