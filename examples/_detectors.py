"""The detectors the tabular benchmark compares, each as (factory, normality scorer).

A factory takes the seed and returns an unfitted detector; the scorer returns
scores where higher means more normal (sklearn's ``score_samples``
convention). PyOD detectors score the other way round, so they are negated.
PyOD is optional (``pip install -e .[bench]``): without it those detectors
fail with an ImportError that the benchmark reports like any other failure.
"""

import importlib
import inspect

from sklearn.ensemble import IsolationForest
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import LocalOutlierFactor

from skdivae import DiVAE


def _score_samples(est, X):
    return est.score_samples(X)


def _negated_decision(est, X):
    return -est.decision_function(X)


def divae(**params):
    """Factory for a DiVAE with ``params`` on top of its defaults."""

    def make(seed):
        return DiVAE(random_state=seed, **params)

    return make, _score_samples


def _pyod(class_path, **params):
    module_name, class_name = class_path.rsplit(".", 1)

    def make(seed):

        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ImportError(f"PyOD is not installed ({exc}); pip install -e .[bench]") from exc
        cls = getattr(module, class_name)
        takes_seed = "random_state" in inspect.signature(cls).parameters
        extra = {"random_state": seed} if takes_seed else {}
        return cls(**params, **extra)

    return make, _negated_decision


def baseline_detectors():
    """The detectors users already run, with their library defaults."""
    return {
        "IsolationForest": (lambda seed: IsolationForest(random_state=seed), _score_samples),
        "LOF": (lambda seed: LocalOutlierFactor(novelty=True), _score_samples),
        "GaussianMixture": (
            lambda seed: GaussianMixture(random_state=seed, reg_covar=1e-4),
            _score_samples,
        ),
        "PyOD KNN": _pyod("pyod.models.knn.KNN"),
        "PyOD ECOD": _pyod("pyod.models.ecod.ECOD"),
        "PyOD VAE": _pyod("pyod.models.vae.VAE", verbose=0, device="cpu"),
    }


def divae_detectors():
    """DiVAE with its defaults, without alignment, and with the flow aligner."""
    return {
        "DiVAE": divae(),
        "DiVAE aligner=None": divae(aligner=None),
        "DiVAE flow": divae(aligner="flow"),
    }


def all_detectors():
    """Every detector of the benchmark, DiVAE variants first."""
    return {**divae_detectors(), **baseline_detectors()}
