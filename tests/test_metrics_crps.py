"""CRPS of mixtures with many components (issue 12): exact, by the spread integral or all pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from varbayes.metrics import crps_gaussian, crps_mixture


def _pairwise(y: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> float:
    """The closed form with all S^2 pairs, in NumPy (the reference)."""
    def a(mu: np.ndarray, var: np.ndarray) -> np.ndarray:
        sd = np.sqrt(var)
        return 2 * sd * stats.norm.pdf(mu / sd) + mu * (2 * stats.norm.cdf(mu / sd) - 1)

    var = scale**2
    first = a(y - loc, var).mean(0)
    pair = np.array([a(loc[:, None, i] - loc[None, :, i], var[:, None, i] + var[None, :, i]).mean()
                     for i in range(loc.shape[1])])
    return float((first - 0.5 * pair).mean())


def _case(name: str, s: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    centre = rng.normal(size=n)
    loc = {"hetero": 0.3 * rng.normal(size=(s, n)), "bbb": rng.normal(size=(s, n)),
           "varying": rng.normal(size=(s, n)), "tiny": 50 * rng.normal(size=(s, n)),
           "far": 1e3 * np.sign(rng.normal(size=(s, n)))}[name] + centre
    scale = {"hetero": np.full((s, n), 0.8), "bbb": np.full((s, n), 0.1),
             "varying": rng.uniform(0.05, 1.0, size=(s, n)), "tiny": np.full((s, n), 1e-3),
             "far": np.full((s, n), 0.5)}[name]
    y = centre + rng.normal(size=n)
    return y, loc, scale


@pytest.mark.parametrize("name", ["hetero", "bbb", "varying", "tiny", "far"])
def test_many_components_are_exact(name: str) -> None:
    rng = np.random.default_rng(0)
    y, loc, scale = _case(name, 600, 6, rng)
    ref = _pairwise(y, loc, scale)
    assert crps_mixture(y, loc, scale) == pytest.approx(ref, rel=1e-12)


def test_the_old_subset_estimate_is_still_available_and_worse() -> None:
    rng = np.random.default_rng(1)
    y, loc, scale = _case("bbb", 1000, 8, rng)
    ref = _pairwise(y, loc, scale)
    exact = crps_mixture(y, loc, scale)
    subset = crps_mixture(y, loc, scale, max_pair_components=64)
    assert abs(exact - ref) < 1e-12 * ref < abs(subset - ref)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.integers(1, 40), st.floats(1e-3, 1e2), st.floats(1e-3, 1e2), st.integers(0, 2**16))
def test_property_equals_the_pairwise_form(s: int, spread: float, noise: float,
                                           seed: int) -> None:
    rng = np.random.default_rng(seed)
    loc = spread * rng.normal(size=(s, 3))
    scale = noise * rng.uniform(0.2, 1.0, size=(s, 3))
    y = spread * rng.normal(size=3)
    assert crps_mixture(y, loc, scale) == pytest.approx(_pairwise(y, loc, scale), rel=1e-10)


def test_agrees_with_integrating_the_squared_cdf_gap() -> None:
    rng = np.random.default_rng(2)
    loc, scale, y = rng.normal(size=(300, 1)), rng.uniform(0.1, 1.0, size=(300, 1)), 0.3

    def cdf(t: float) -> float:
        return float(stats.norm.cdf(t, loc[:, 0], scale[:, 0]).mean())

    left = integrate.quad(lambda t: cdf(t) ** 2, -math.inf, y, epsabs=1e-13, limit=200)[0]
    right = integrate.quad(lambda t: (1 - cdf(t)) ** 2, y, math.inf, epsabs=1e-13, limit=200)[0]
    assert crps_mixture([y], loc, scale) == pytest.approx(left + right, rel=1e-8)
    one = torch.tensor([[0.2]], dtype=torch.float64), torch.tensor([[1.5]], dtype=torch.float64)
    assert crps_mixture([y], *one) == pytest.approx(crps_gaussian([y], [0.2], [1.5]), rel=1e-14)
