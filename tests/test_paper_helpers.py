"""The verdict rule and the per-fit cache shared by the paper-reproduction scripts."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import _paper  # noqa: E402


@pytest.fixture(autouse=True)
def _three_seeds():
    _paper.N_SEEDS["n"] = 3
    yield
    _paper.N_SEEDS["n"] = 3


def test_pair_verdict_compares_the_change_with_twice_the_pooled_sd():
    # noise = 2 * sqrt((0.1^2 + 0.1^2) / 2) = 0.2
    assert _paper.pair_verdict((0.25, 0.1), (0.0, 0.1), +1) == "holds"
    assert _paper.pair_verdict((0.15, 0.1), (0.0, 0.1), +1) == "within seed noise"
    assert _paper.pair_verdict((-0.25, 0.1), (0.0, 0.1), +1) == "does not hold"
    assert _paper.pair_verdict((-0.25, 0.1), (0.0, 0.1), -1) == "holds"  # lower is the claim


def test_claims_over_pairs_and_metrics():
    H, N, F = "holds", "within seed noise", "does not hold"
    assert _paper.claim_verdict([H, H, N, F]) == H
    assert _paper.claim_verdict([H, N, N, N]) == N
    assert _paper.claim_verdict([F, F, H, N]) == F
    assert _paper.combine_metrics([H, H, H]) == H
    assert _paper.combine_metrics([H, N, H]) == N
    assert _paper.combine_metrics([H, F, H]) == F


def test_one_seed_gives_no_verdict():
    _paper.N_SEEDS["n"] = 1
    assert _paper.pair_verdict((1.0, 0.0), (0.0, 0.0), +1) == _paper.NO_VERDICT
    assert _paper.claim_verdict([_paper.NO_VERDICT, "holds"]) == _paper.NO_VERDICT


def test_fit_cache_round_trip_and_key_check(tmp_path):
    cache = _paper.FitCache(tmp_path)
    key = {"seed": 1, "prior": "gmm"}
    assert cache.get(key) is None
    cache.put(key, {"ks": 0.5})
    assert cache.get(key) == {"ks": 0.5}
    assert cache.get({"seed": 2, "prior": "gmm"}) is None
    assert _paper.FitCache(None).get(key) is None


def test_reference_lookup_matches_configuration_and_sizes(tmp_path):
    (tmp_path / "runs.csv").write_text(
        "experiment,prior,aligner,n_train,epochs,seed,ks\n"
        "mnist,normal,none,5000,30,1,0.2\nmnist,normal,none,5000,30,2,0.4\n"
        "mnist,normal,none,60000,50,1,0.9\nsynthetic,normal,none,5000,30,1,0.1\n"
    )
    rows = _paper.load_reference(tmp_path, "mnist")
    mean, sd, n = _paper.reference_cell(rows, {"prior": "normal", "aligner": "none"}, "ks", 5000, 30)
    assert (round(mean, 6), round(sd, 6), n) == (0.3, round(0.1 * 2 ** 0.5, 6), 2)  # ddof=1
    assert _paper.reference_cell(rows, {"prior": "gmm", "aligner": "none"}, "ks", 5000, 30) is None
    assert _paper.load_reference(tmp_path / "absent", "mnist") == []
