"""The fit's warnings about its columns: constant ones, and a fixed decoder_std over
columns on different scales (skdivae/_column_checks.py)."""

import warnings

import numpy as np
from sklearn.datasets import load_digits, load_wine

from skdivae import DiVAE

FAST = dict(max_iter=2, random_state=0)


def fit_warnings(est, X):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        est.fit(X)
    return [str(w.message) for w in record if w.category is UserWarning]


def test_a_constant_column_is_named_by_its_name_or_position():
    X = load_wine(as_frame=True).data.assign(const=1.0)
    messages = fit_warnings(DiVAE(**FAST), X)
    assert any("1 of the 14 features DiVAE was given is constant" in m and "column 'const'" in m
               for m in messages)
    messages = fit_warnings(DiVAE(**FAST), X.to_numpy())
    assert any("column 13)" in m for m in messages)


def test_many_constant_columns_are_counted_past_five():
    X = np.c_[np.random.default_rng(0).normal(size=(50, 3)), np.zeros((50, 7))]
    (message,) = [m for m in fit_warnings(DiVAE(**FAST), X) if "constant" in m]
    assert "7 of the 10 features DiVAE was given" in message and "columns 3, 4, 5, 6, 7 and 2 more" in message


def test_no_column_warning_on_ordinary_data_or_with_the_learned_noise():
    X = load_wine().data  # raw units, ranges from 0.5 to 1400
    assert not fit_warnings(DiVAE(**FAST), X)
    scaled = (X - X.mean(0)) / X.std(0)
    assert not fit_warnings(DiVAE(**FAST, decoder_std=0.3), scaled)


def test_a_fixed_decoder_std_over_raw_columns_of_different_scales_warns():
    X = load_wine(as_frame=True).data
    (message,) = fit_warnings(DiVAE(**FAST, decoder_std=0.3), X)
    assert "decoder_std=0.3" in message and "'proline'" in message
    assert "Scale the numeric columns first" in message


def test_pixel_data_with_a_fixed_decoder_std_warns_only_of_its_constant_pixels():
    X = load_digits().data  # 0-16, three pixels always 0
    (message,) = fit_warnings(DiVAE(**FAST, decoder_std=0.5), X)
    assert "3 of the 64 features DiVAE was given are constant" in message


def test_a_bernoulli_decoder_ignores_decoder_std_and_never_warns_of_it():
    X = np.c_[np.random.default_rng(0).random((40, 2)), np.r_[1e-4, np.zeros(39)]]
    est = DiVAE(**FAST, likelihood="bernoulli", decoder_std=0.1)
    assert not [m for m in fit_warnings(est, X) if "decoder_std" in m]


def test_partial_fit_warns_of_columns_constant_in_its_first_block_only():
    rng = np.random.default_rng(0)
    first = np.c_[rng.normal(size=(50, 2)), np.ones(50)]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        est = DiVAE(**FAST).partial_fit(first)
        est.partial_fit(np.c_[rng.normal(size=(50, 2)), np.ones(50)])
    messages = [str(w.message) for w in record if w.category is UserWarning]
    assert len(messages) == 1 and "constant in the first block (column 2)" in messages[0]
    assert "Later partial_fit calls keep" in messages[0]
    assert record[0].filename == __file__
