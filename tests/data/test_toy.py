"""The toy data set of the founding post (``varbayes.data.toy``), bit for bit."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import varbayes.data as D
from _reference import post_load_dataset
from varbayes.data import TOY_B0, TOY_W0, TOY_X_RANGE, load_toy


def test_all_names_importable() -> None:
    for name in D.__all__:
        assert hasattr(D, name), name


def test_toy_bit_for_bit_with_the_post() -> None:
    state = np.random.get_state()  # noqa: NPY002
    try:
        y_post, x_post = post_load_dataset()
    finally:
        np.random.set_state(state)  # noqa: NPY002
    toy = load_toy()
    assert np.array_equal(toy.x_train, x_post)
    assert np.array_equal(toy.y_train, y_post)
    assert toy.x_train.shape == (150, 1) and toy.y_train.shape == (150, 1)
    assert toy.x_train.dtype == np.float64 and toy.y_train.dtype == np.float64


def test_toy_leaves_global_numpy_rng_untouched() -> None:
    np.random.seed(123)  # noqa: NPY002 - the point is to observe the legacy global state
    before = np.random.get_state()  # noqa: NPY002
    load_toy()
    load_toy(n=20, n_test=7, seed=1, test_seed=2)
    after = np.random.get_state()  # noqa: NPY002
    assert before[0] == after[0]
    assert np.array_equal(before[1], after[1])
    assert before[2:] == after[2:]


def test_toy_constants() -> None:
    assert (TOY_W0, TOY_B0, TOY_X_RANGE) == (0.125, 5.0, (-20, 60))


def test_toy_train_is_self_standardised_and_sorted() -> None:
    toy = load_toy()
    assert abs(toy.y_train.mean()) < 1e-12
    assert toy.y_train.std() == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(toy.x_train[:, 0]) >= 0)
    assert np.all(np.diff(toy.x_test[:, 0]) >= 0)
    assert toy.x_train.min() >= -20 and toy.x_train.max() <= 60


def test_toy_test_draw_uses_training_statistics() -> None:
    toy = load_toy()
    assert toy.x_test.shape == (150, 1) and toy.y_test.shape == (150, 1)
    # Independent draw, standardised with the *training* mean/std: its mean is not 0.
    assert toy.y_test.mean() != 0.0
    assert abs(toy.y_test.mean()) > 1e-6
    assert not np.array_equal(toy.x_test, toy.x_train)
    # Recompute the test draw by hand from RandomState(44).
    rs = np.random.RandomState(44)
    x = 80 * rs.rand(150) - 20
    g = (x + 20) / 80
    y_raw = TOY_W0 * x * (1 + np.sin(x)) + TOY_B0 + rs.randn(150) * 3 * (0.25 + g**2)
    idx = np.argsort(x)
    np.testing.assert_allclose(toy.x_test[:, 0], x[idx], rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        toy.y_test[:, 0], (y_raw[idx] - toy.y_mean) / toy.y_std, rtol=0, atol=1e-12
    )


def test_toy_raw_statistics() -> None:
    toy = load_toy()
    state = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(43)  # noqa: NPY002
        x = 80 * np.random.rand(150) - 20  # noqa: NPY002
        g = (x + 20) / 80
        eps = np.random.randn(150) * 3 * (0.25 + g**2)  # noqa: NPY002
    finally:
        np.random.set_state(state)  # noqa: NPY002
    y = TOY_W0 * x * (1 + np.sin(x)) + TOY_B0 + eps
    assert toy.y_mean == pytest.approx(y.mean(), abs=1e-12)
    assert toy.y_std == pytest.approx(y.std(), abs=1e-12)


def test_toy_true_functions() -> None:
    toy = load_toy()
    x = np.array([-20.0, 0.0, 20.0, 60.0])
    raw_mean = TOY_W0 * x * (1 + np.sin(x)) + TOY_B0
    np.testing.assert_allclose(toy.mean_function(x) * toy.y_std + toy.y_mean, raw_mean)
    np.testing.assert_allclose(toy.noise_std(x) * toy.y_std, [0.75, 0.9375, 1.5, 3.75])
    assert toy.mean_function(x[:, None]).shape == (4, 1)


def test_toy_oracle_nll() -> None:
    """The default test draw's oracle NLL is in [0.2, 0.5]; by hand for one point; a bias hurts.

    The default draw is fixed (``test_seed=44``). Over 2000 fresh test draws the oracle NLL is
    0.339 +- 0.073, outside [0.2, 0.5] with rate 0.043 (empirical; normal approximation 0.041),
    while shifting y by 1 costs 6.9 +- 0.6 nats, never <= 0.3: with a fresh draw the
    false-positive rate would be 0.043.
    """
    toy = load_toy()
    nll = toy.oracle_nll(toy.x_test, toy.y_test)
    assert 0.2 <= nll <= 0.5
    # By hand for one point: y at the true mean gives 0.5 * log(2 pi sd^2).
    x0 = np.array([10.0])
    sd = toy.noise_std(x0)[0]
    expected = 0.5 * math.log(2 * math.pi * sd**2)
    assert toy.oracle_nll(x0, toy.mean_function(x0)) == pytest.approx(expected)
    # A wrong mean must be worse than the truth.
    assert toy.oracle_nll(toy.x_test, toy.y_test + 1.0) > nll + 0.3


def test_toy_oracle_nll_length_mismatch() -> None:
    toy = load_toy()
    with pytest.raises(ValueError, match="x and y have lengths 3 and 2"):
        toy.oracle_nll(np.zeros(3), np.zeros(2))


def test_toy_other_sizes_and_seeds() -> None:
    toy = load_toy(n=10, n_test=4, seed=1, test_seed=2)
    assert toy.x_train.shape == (10, 1) and toy.y_test.shape == (4, 1)
    assert not np.array_equal(load_toy(seed=1).x_train, load_toy().x_train)
    # The first n points of the stream do not depend on n_test.
    assert np.array_equal(load_toy(n_test=3).x_train, load_toy().x_train)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"n": 1}, ValueError, r"n must be in the range \[2, inf\), got 1"),
        ({"n_test": 0}, ValueError, r"n_test must be in the range \[1, inf\)"),
        ({"n": 10.0}, TypeError, "n must be an int"),
        ({"seed": -1}, ValueError, r"seed must be in the range \[0, 4294967295\]"),
        ({"test_seed": 2**32}, ValueError, "test_seed must be in the range"),
    ],
)
def test_toy_bad_arguments(kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        load_toy(**kwargs)


def test_toy_is_frozen() -> None:
    toy = load_toy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        toy.y_mean = 0.0  # type: ignore[misc]
