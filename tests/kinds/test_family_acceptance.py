"""Acceptance of the family kind on generators with a known truth (issue 10).

Each test is seeded, so on a given platform it passes or fails deterministically; its
false-positive rate (FPR) is the chance that a *correct* implementation fails it for a random
seed, declared per test from the sampling noise of the score (the per-row standard error ``se``
of a mean over ``n`` test rows), with the margins measured at seed 0:

* NLL within 0.1 nats of the generator's own NLL (counts, times, classes). Measured excess
  0.005-0.03 nats with ``se`` 0.002-0.006 on 2000 test rows: the margin is > 12 ``se``, so the
  FPR from test noise is <= 1/12^2 < 0.7 % by Chebyshev (about 1e-30 if normal). The test
  also asserts the margin is at least 5 ``se`` (Chebyshev FPR <= 4 %).
* Count 90 % intervals cover 0.87-0.95 of 4000 test rows: the generator's own integer
  intervals cover about 0.93 (integer bounds cover at least their level); binomial ``se``
  0.004, so 0.95 is > 4 ``se`` away: FPR < 1e-4 (normal), < 6 % (Chebyshev).
* Classifier ECE <= 0.05 on 2000 rows (15 bins): measured 0.023; the ECE of the true
  probabilities on 2000 rows is about 0.02 +- 0.005, so FPR < 1e-6 (normal).
* Mutual information far from the data > at the data: a margin of several orders of magnitude.

The slow forms repeat them over 5 more seeds (``-m slow``); every seed must pass.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from _family_generators import draw, poisson_rate
from varbayes.kinds import fit, predict_family
from varbayes.metrics_classification import evaluate_classification
from varbayes.predictive import ClassPrediction

LIKELIHOOD = {"poisson": "poisson", "exponential": "exponential", "classes": "categorical"}


def _fit_and_predict(family: str, seed: int, n_test: int = 2000):
    x, y, _ = draw(family, 2000, seed)
    xt, yt, ll = draw(family, n_test, seed + 1000)
    kw = {"n_classes": 3} if family == "classes" else {}
    fitted, _ = fit("family", x, y, likelihood=LIKELIHOOD[family], early_stopping=True,
                    generator=torch.Generator().manual_seed(seed), **kw)
    pred = predict_family(fitted, xt, 200, generator=torch.Generator().manual_seed(1))
    return pred, xt, yt, ll


def _nll_check(family: str, seed: int) -> None:
    pred, _, yt, ll = _fit_and_predict(family, seed)
    per_row = -pred.log_prob(torch.tensor(yt)).numpy() + ll
    excess, se = per_row.mean(), per_row.std() / np.sqrt(len(yt))
    assert excess < 0.1, f"{family}: test NLL {excess:.4f} nats above the generator's"
    assert 0.1 - excess > 5 * se, f"{family}: margin {0.1 - excess:.4f} below 5 se ({se:.4f})"


def _coverage_check(seed: int) -> None:
    pred, xt, yt, _ = _fit_and_predict("poisson", seed, n_test=4000)
    lower, upper = pred.interval(0.9)
    assert torch.equal(lower, lower.round()) and torch.equal(upper, upper.round())
    y = torch.tensor(yt)
    covered = float(((y >= lower) & (y <= upper)).double().mean())
    rate = poisson_rate(xt)
    oracle = float(((yt >= stats.poisson.ppf(0.05, rate))
                    & (yt <= stats.poisson.ppf(0.95, rate))).mean())
    assert 0.87 <= covered <= 0.95, f"coverage {covered:.4f} (the generator's own {oracle:.4f})"


def _classifier_check(seed: int) -> None:
    pred, _, yt, ll = _fit_and_predict("classes", seed)
    assert isinstance(pred, ClassPrediction)
    scores = evaluate_classification(yt, pred)
    assert scores["ece"] <= 0.05, scores
    assert scores["nll"] - (-ll.mean()) < 0.1, scores


@pytest.mark.parametrize("family", ["poisson", "exponential", "classes"])
def test_test_nll_within_a_tenth_of_a_nat_of_the_generator(family: str) -> None:
    _nll_check(family, 0)


def test_count_intervals_cover_their_level() -> None:
    _coverage_check(0)


def test_classifier_is_calibrated() -> None:
    _classifier_check(0)


def test_mutual_information_is_higher_away_from_the_data() -> None:
    x, y, _ = draw("classes", 600, 3)
    fitted, _ = fit("family", x, y, likelihood="categorical", n_classes=3, epochs=300,
                    generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(5)
    angle = rng.uniform(0, 2 * np.pi, 300)
    far = 7.0 * np.stack([np.cos(angle), np.sin(angle)], 1)  # training inputs lie in [-2, 2]^2
    g = torch.Generator().manual_seed(2)
    near_mi = predict_family(fitted, x[:300], 200, generator=g)
    far_mi = predict_family(fitted, far, 200, generator=g)
    assert isinstance(near_mi, ClassPrediction) and isinstance(far_mi, ClassPrediction)
    near, away = float(near_mi.mutual_information.mean()), float(far_mi.mutual_information.mean())
    assert away > 2 * near, (near, away)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_acceptance_over_more_seeds(seed: int) -> None:
    for family in ("poisson", "exponential", "classes"):
        _nll_check(family, seed)
    _coverage_check(seed)
    _classifier_check(seed)
