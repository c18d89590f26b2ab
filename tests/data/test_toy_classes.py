"""The 2-D classification toy problem of the demo (``varbayes.data.toy_classes``)."""

from __future__ import annotations

import numpy as np

from varbayes.data.toy_classes import load_toy_classes, toy_class_probability


def test_draws_are_seeded_and_shaped() -> None:
    a, b = load_toy_classes(seed=3), load_toy_classes(seed=3)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert a.x_train.shape == (500, 2) and a.y_test.shape == (2000,)
    assert not np.array_equal(a.x_train, load_toy_classes(seed=4).x_train)


def test_labels_follow_the_stated_probabilities() -> None:
    """Labels are Bernoulli(p(x)): mean(y - p) within 4 standard errors of 0 on 20,000 rows.

    Seeded (deterministic); for a fresh seed a correct generator fails with rate 6e-5 (normal).
    """
    data = load_toy_classes(n_train=20_000, n_test=10, seed=1)
    p = toy_class_probability(data.x_train)
    se = np.sqrt(np.mean(p * (1 - p)) / len(p))
    assert abs(np.mean(data.y_train - p)) < 4 * se
    assert 0.3 < p.mean() < 0.7  # both classes well represented


def test_oracle_nll_is_the_generators_cross_entropy() -> None:
    """The oracle NLL is near the mean binary entropy of p(x) (within 4 se; rate 6e-5)."""
    data = load_toy_classes(n_train=10, n_test=20_000, seed=2)
    p = toy_class_probability(data.x_test)
    entropy = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    per_row = -np.log(np.where(data.y_test == 1, p, 1 - p))
    assert abs(data.oracle_nll() - entropy.mean()) < 4 * per_row.std() / np.sqrt(len(p))
