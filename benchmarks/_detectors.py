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

from skdivae import DiVAE, KNNLogDensity


def _score_samples(est, X):
    return est.score_samples(X)


def _negated_decision(est, X):
    return -est.decision_function(X)


class SeedEnsemble:
    """Mean ``score_samples`` of ``n_members`` DiVAEs that differ only in their seed
    (a study candidate, not part of the package: it costs ``n_members`` fits)."""

    def __init__(self, n_members, seed, params):
        self.members = [DiVAE(random_state=1000 * seed + m, **params) for m in range(n_members)]

    def fit(self, X):
        for member in self.members:
            member.fit(X)
        return self

    def score_samples(self, X):
        return sum(m.score_samples(X) for m in self.members) / len(self.members)


def divae(**params):
    """Factory for a DiVAE with ``params`` on top of its defaults; ``ensemble=n`` builds a
    seed ensemble of ``n`` such models."""
    n_members = params.pop("ensemble", None)

    def make(seed):
        if n_members:
            return SeedEnsemble(n_members, seed, params)
        return DiVAE(random_state=seed, **params)

    return make, _score_samples


def _pyod(class_path, **params):
    module_name, class_name = class_path.rsplit(".", 1)

    def make(seed):

        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ImportError(f"{class_path} could not be imported ({exc}): PyOD or a package "
                              "it needs is missing; pip install -e .[bench]") from exc
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
        # DiVAE's density teacher on its own, as DiVAE() builds it (PCA dimension
        # min(8, n_features); the clamp warning is silenced by the protocol).
        "teacher alone (KNNLogDensity)": (
            lambda seed: KNNLogDensity(30, method="knn", n_components=8, random_state=seed),
            _score_samples,
        ),
        "PyOD KNN": _pyod("pyod.models.knn.KNN"),
        "PyOD ECOD": _pyod("pyod.models.ecod.ECOD"),
        "PyOD VAE": _pyod("pyod.models.vae.VAE", verbose=0, device="cpu"),
    }


#: The alignment weights of the benchmark's grid besides the default (0 is aligner=None).
WEIGHT_GRID = (0.3, 3.0, 10.0)


def divae_detectors():
    """DiVAE with its defaults, without alignment (weight 0), along the alignment-weight
    grid, with the paper's direct aligner and with the flow aligner."""
    return {
        "DiVAE": divae(),
        "DiVAE aligner=None": divae(aligner=None),
        **{f"DiVAE alignment_weight={w:g}": divae(alignment_weight=w) for w in WEIGHT_GRID},
        "DiVAE direct_paper": divae(aligner="direct_paper"),
        "DiVAE flow": divae(aligner="flow"),
    }


def all_detectors():
    """Every detector of the benchmark, DiVAE variants first."""
    return {**divae_detectors(), **baseline_detectors()}
