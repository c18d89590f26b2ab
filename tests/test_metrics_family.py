"""Scores of the family predictives: CRPS exact / closed form / Monte Carlo, PIT, ECE."""

from __future__ import annotations

import numpy as np
import torch
from scipy import integrate, stats

from varbayes.metrics_classification import (
    accuracy,
    brier_score,
    evaluate_classification,
    expected_calibration_error,
)
from varbayes.metrics_family import crps_family, evaluate_family
from varbayes.predictive import ClassPrediction, FamilyPrediction


def _crps_numeric(cdf, y: float, lo: float, hi: float) -> float:
    left = integrate.quad(lambda z: cdf(z) ** 2, lo, y, limit=200)[0]
    right = integrate.quad(lambda z: (1 - cdf(z)) ** 2, y, hi, limit=200)[0]
    return left + right


def test_poisson_crps_is_exact() -> None:
    rate = torch.tensor([[2.0, 9.0], [3.0, 15.0]], dtype=torch.float64)
    pred = FamilyPrediction("poisson", {"rate": rate})
    y = np.array([1.0, 20.0])
    ks = np.arange(0, 400)
    ref = np.mean([((stats.poisson.cdf(ks, rate[:, j].numpy()[:, None]).mean(0)
                     - (y[j] <= ks)) ** 2).sum() for j in range(2)])
    got, err = crps_family(y, pred)
    assert err == 0.0 and abs(got - ref) < 1e-10


def test_exponential_crps_closed_form_matches_integration() -> None:
    rate = torch.tensor([[0.5], [2.0], [1.0]], dtype=torch.float64)
    pred = FamilyPrediction("exponential", {"rate": rate})
    cdf = lambda z: float(np.mean(1 - np.exp(-rate.numpy()[:, 0] * z)))  # noqa: E731
    got, _ = crps_family(np.array([1.3]), pred)
    assert abs(got - _crps_numeric(cdf, 1.3, 0.0, 200.0)) < 1e-7


def test_student_t_crps_estimate_within_its_stated_error() -> None:
    params = {"loc": torch.tensor([[0.0], [1.0]], dtype=torch.float64),
              "scale": torch.tensor([[1.0], [0.5]], dtype=torch.float64),
              "df": torch.tensor([[3.0], [8.0]], dtype=torch.float64)}
    pred = FamilyPrediction("student_t", params)
    cdf = lambda z: float(np.mean(stats.t.cdf(z, [3.0, 8.0], [0.0, 1.0], [1.0, 0.5])))  # noqa
    ref = _crps_numeric(cdf, 0.4, -2000.0, 2000.0)
    got, err = crps_family(np.array([0.4]), pred)
    assert 0 < err < 0.1 * ref  # one row; the error of a mean over n rows falls as 1 / sqrt(n)
    assert abs(got - ref) < 4 * err  # FPR 1/16 by Chebyshev, ~6e-5 if normal; fixed seed


def test_evaluate_family_keys_and_randomised_pit_of_a_true_model() -> None:
    rng = np.random.default_rng(0)
    rate = rng.uniform(1, 10, 3000)
    y = rng.poisson(rate).astype(float)
    pred = FamilyPrediction("poisson", {"rate": torch.tensor(rate)[None]})
    scores = evaluate_family(y, pred)
    assert set(scores) == {"rmse", "nll", "crps", "crps_stderr", "coverage_90",
                           "interval_width_90", "calibration_error"}
    assert scores["calibration_error"] < 0.02  # the randomised PIT of the truth is uniform
    assert scores["coverage_90"] >= 0.9


def test_classification_scores_by_hand() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]], dtype=torch.float64)
    y = np.array([0, 1, 1, 0])
    assert accuracy(y, probs) == 0.5
    brier = np.mean([0.01 + 0.01, 0.04 + 0.04, 0.36 + 0.36, 0.55**2 + 0.55**2])
    assert abs(brier_score(y, probs) - brier) < 1e-12
    # 15 bins: confidences 0.9, 0.8, 0.6, 0.55 fall in bins 13, 12, 9, 8, one row each
    ece = (abs(1 - 0.9) + abs(1 - 0.8) + abs(0 - 0.6) + abs(0 - 0.55)) / 4
    assert abs(expected_calibration_error(y, probs) - ece) < 1e-12
    scores = evaluate_classification(y, ClassPrediction(probs.log()[None]))
    assert abs(scores["nll"] + np.mean(np.log([0.9, 0.8, 0.4, 0.45]))) < 1e-12
    assert scores["mutual_information"] == 0.0
