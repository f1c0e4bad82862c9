"""The score study's candidate scores, its adoption rule and its weight-choice regret."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import _score_candidates  # noqa: E402
import select_score  # noqa: E402


def test_tail_rank_orders_rows_beyond_the_training_range_without_ties():
    train = np.arange(10.0)
    values = np.array([-5.0, -1.0, 0.0, 4.5, 9.0, 10.0, 20.0])
    ranks = _score_candidates.tail_rank(train, values)
    assert np.all(np.diff(ranks) > 0)
    assert ranks[1] <= 0 and ranks[-1] > 1
    assert ranks[3] == pytest.approx(0.5)


def test_latent_knn_excludes_the_row_itself_on_training_codes():
    codes = np.array([[0.0], [1.0], [3.0]])
    own = _score_candidates.latent_knn(codes, codes, seed=0, k=1, exclude_self=True)
    np.testing.assert_allclose(own, [-1.0, -1.0, -2.0])


def _row(mean, none, wtl=(0, 0, 0)):
    return {"mean": mean, "none": none, "wtl": wtl}


def test_adoption_needs_the_elbo_level_and_an_alignment_gain_in_both_protocols():
    sel = {
        "contaminated": {"elbo": _row(0.80, 0.81), "a": _row(0.81, 0.79), "b": _row(0.82, 0.79),
                         "teacher rho (stores rows)": _row(0.90, 0.90)},
        "clean": {"elbo": _row(0.90, 0.90), "a": _row(0.90, 0.89), "b": _row(0.89, 0.88),
                  "teacher rho (stores rows)": _row(0.95, 0.95)},
    }
    adopted, passing = select_score.adopt(sel)
    assert adopted == "a"  # b is below the ELBO in the clean protocol; rows are never adopted
    assert set(passing) == {"a"}


def test_weight_choice_regret_against_the_best_weight_in_hindsight():
    aucs = {"aligner=None": 0.70, "weight=0.3": 0.72, "default": 0.75, "weight=3": 0.80, "weight=10": 0.78}
    stats = {}
    for i, (config, auc) in enumerate(aucs.items()):
        stats[(config, "d", 0)] = {
            "auc": {"elbo": auc}, "test_mean_elbo": -float(i),  # the ELBO falls with the weight
            "test_spearman_prior_rho": float(i), "test_spearman_elbo_rho": 0.0,
            "test_spearman_combined_rho": 0.0,
        }
    res = select_score.weight_choice(stats, "elbo", ["d"], [0], {"d": 100})
    assert res["held-out mean ELBO (DiVAE.score)"][0] == pytest.approx(0.10)  # picks 0
    assert res["held-out Spearman(log-prior, rho)"][0] == pytest.approx(0.02)  # picks 10
    assert res["fixed weight 1 (default)"][0] == pytest.approx(0.05)
    # within 0.05 nats per feature (5 nats) of the best ELBO: every weight; the most agreeing
    assert res["Spearman(log-prior, rho) within 0.05 nats/feature of the best ELBO"][1] == [10.0]
