"""The calibration maps on synthetic predictives (no training): guarantees and round trips.

Statistical tests are seeded; each states the false-positive rate (FPR) it would have for a
correct implementation under a fresh seed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from varbayes.calibration import (
    ConformalMap,
    IsotonicMap,
    ScaleMap,
    calibration_report,
    fit_calibration,
    map_from_json,
    pit_values,
)
from varbayes.metrics import evaluate
from varbayes.predictive import Prediction


def _gaussian(n: int, std: float = 1.0, s: int = 3) -> Prediction:
    """A mixture of ``s`` identical components N(0, std^2) for ``n`` rows."""
    return Prediction(torch.zeros(s, n, dtype=torch.float64),
                      torch.full((s, n), std, dtype=torch.float64))


def test_conformal_finite_sample_bound() -> None:
    """Marginal coverage over draws of the calibration set: exactly ceil((n+1)l)/(n+1).

    For continuous scores the coverage of one test point, averaged over calibration sets, is
    ``k / (n + 1)`` with ``k = ceil((n + 1) l)``: at least ``l`` and at most ``l + 1/(n+1)``.
    10,000 calibration sets of n = 19 (exact value 18/20 = 0.9 at l = 0.9 and 19/20 at
    l = 0.94), each scored on 1 fresh point: a two-sided z-test at 4 standard errors,
    FPR 6e-5 per level. The predictive is badly mis-scaled (std 0.3 against noise 1).
    """
    rng = np.random.default_rng(0)
    n, trials = 19, 10_000
    scores = np.sort(np.abs(rng.standard_normal((trials, n))) / 0.3, axis=1)
    test = np.abs(rng.standard_normal(trials)) / 0.3
    for level in (0.9, 0.94):
        k = math.ceil((n + 1) * level)
        exact = k / (n + 1)
        assert level <= exact <= level + 1 / (n + 1)
        # The library's map, on each calibration set (vectorised: the k-th smallest score).
        radius = np.array([ConformalMap(tuple(s)).apply(_gaussian(1, 0.3)).radius(level).item()
                           for s in scores[:200]])
        np.testing.assert_allclose(radius, scores[:200, k - 1])
        covered = (test <= scores[:, k - 1]).mean()
        se = math.sqrt(exact * (1 - exact) / trials)
        assert abs(covered - exact) < 4 * se, (level, covered, exact)


def test_conformal_interval_and_too_few_rows() -> None:
    cmap = ConformalMap(tuple(float(v) for v in range(1, 10)))  # n = 9
    pred = cmap.apply(_gaussian(4, 2.0))
    lo, hi = pred.interval(0.9)  # k = ceil(10 * 0.9) = 9 -> score 9, radius 9 * std
    np.testing.assert_allclose(hi.numpy(), 18.0)
    np.testing.assert_allclose(lo.numpy(), -18.0)
    lo, hi = pred.interval(0.95)  # k = 10 > n: no finite interval
    assert bool(torch.isinf(hi).all())
    report = calibration_report(np.zeros(4), pred)
    assert report["coverage_99"] is None and report["coverage_50"] == 1.0
    assert bool((pred.cdf(torch.tensor([0.0, 100.0, -100.0, 1.0], dtype=torch.float64))
                 >= 0).all())
    with pytest.raises(NotImplementedError):
        pred.log_prob(torch.zeros(4, dtype=torch.float64))
    assert evaluate(np.zeros(4), pred)["nll"] is None


def test_scale_recovers_the_factor() -> None:
    """y ~ N(0, 2^2) against a predictive N(0, 0.5^2): factor 4 (4,000 rows; tolerance 5 %,
    about 4.5 standard errors of a log-std estimate, FPR < 1e-5)."""
    y = torch.randn(4000, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    smap = fit_calibration("scale", _gaussian(4000, 0.5), y)
    assert isinstance(smap, ScaleMap)
    assert smap.factor == pytest.approx(4.0, rel=0.05)
    out = smap.apply(_gaussian(10, 0.5))
    assert isinstance(out, Prediction)
    np.testing.assert_allclose(out.std.numpy(), 0.5 * smap.factor)


def test_isotonic_makes_the_pit_uniform() -> None:
    """Over-confident Gaussian (std 0.5 for noise 1): after isotonic recalibration fitted on
    2,000 rows the 90 % interval covers 0.9 +- 0.03 of 4,000 fresh rows (binomial se 0.0047
    plus the map's own error ~0.0067: 3.7 se, FPR ~2e-4)."""
    g = torch.Generator().manual_seed(2)
    y_cal = torch.randn(2000, generator=g, dtype=torch.float64)
    y_test = torch.randn(4000, generator=g, dtype=torch.float64)
    imap = fit_calibration("isotonic", _gaussian(2000, 0.5), y_cal)
    assert isinstance(imap, IsotonicMap)
    pred = imap.apply(_gaussian(4000, 0.5))
    assert evaluate(y_test, _gaussian(4000, 0.5))["coverage_90"] < 0.7
    assert abs(evaluate(y_test, pred)["coverage_90"] - 0.9) < 0.03
    q = torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64)
    np.testing.assert_allclose(pred.cdf(pred.quantile(q)).numpy(),
                               q[:, None].expand(3, 4000).numpy(), atol=1e-6)
    assert bool(torch.isfinite(pred.log_prob(y_test)).all())
    draws = imap.apply(_gaussian(1, 0.5)).sample(4000, generator=g)[:, 0]
    assert abs(float(((draws > -1.645) & (draws < 1.645)).double().mean()) - 0.9) < 0.03
    pit = pit_values(y_test.numpy(), pred)
    assert abs(np.mean(pit) - 0.5) < 0.02


@pytest.mark.parametrize("method", ["scale", "isotonic", "conformal"])
def test_maps_round_trip_json(method: str) -> None:
    y = torch.randn(100, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    fitted = fit_calibration(method, _gaussian(100), y)
    again = map_from_json(fitted.to_json())
    assert again == fitted
    a = fitted.apply(_gaussian(5)).interval(0.8)
    b = again.apply(_gaussian(5)).interval(0.8)
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())


@pytest.mark.parametrize("doc", [
    None, {}, {"method": "magic"}, {"method": "scale", "factor": -1, "n": 3},
    {"method": "scale", "factor": True, "n": 3},
    {"method": "isotonic", "knots_p": [0, 1], "knots_r": [1, 0]},
    {"method": "isotonic", "knots_p": [0, 0.5], "knots_r": [0, 0.5, 1]},
    {"method": "conformal", "scores": [2, 1]}, {"method": "conformal", "scores": []},
    {"method": "conformal", "scores": ["1"]},
])
def test_bad_maps_are_refused(doc: object) -> None:
    with pytest.raises(ValueError):
        map_from_json(doc)


def test_unknown_method() -> None:
    with pytest.raises(ValueError, match="calibration method"):
        fit_calibration("platt", _gaussian(3), np.zeros(3))
