"""Mixture quantiles (issue 12): the safeguarded Halley solver against the old bisection,
against ``scipy.optimize.brentq``, on adversarial mixtures, and batch invariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import brentq
from scipy.special import ndtr
from torch import Tensor

from _bisection import bisection_quantile
from varbayes.predictive import Prediction
from varbayes.predictive import quantile as quantile_module
from varbayes.predictive.quantile import mixture_quantile

LEVELS = torch.tensor([1e-4, 0.0123, 0.05, 0.31, 0.5, 0.77, 0.95, 0.9871, 1 - 1e-4],
                      dtype=torch.float64)


def _tol(dtype: torch.dtype) -> float:
    return 4 * torch.finfo(dtype).eps


def _mixtures(seed: int = 0) -> dict[str, tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    s, n = 400, 40

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    half = torch.cat([torch.full((s // 2, n), -1.0), torch.full((s // 2, n), 1.0)]).double()
    return {
        "hetero": (0.3 * randn(s, n) + randn(n), (0.5 + 0.1 * randn(n)).abs().expand(s, n)),
        # one scale per row, draws spread 0.1 or 0.3 of it: the moment series' rows
        "hetero, small epistemic": (0.05 * randn(s, n) + randn(n),
                                    (0.5 + 0.1 * randn(n)).abs().expand(s, n)),
        "hetero, epistemic a third": (0.16 * randn(s, n) + 1e3 * randn(n),
                                      (0.5 + 0.1 * randn(n)).abs().expand(s, n).contiguous()),
        "varying scales": (randn(s, n), 0.05 + torch.rand(s, n, generator=g).double()),
        "bimodal": (3 * half + randn(s, n), torch.ones(s, n, dtype=torch.float64)),
        "far apart": (1e3 * half + randn(s, n), torch.full((s, n), 1e-3, dtype=torch.float64)),
        "tiny scales": (randn(s, n), torch.full((s, n), 1e-12, dtype=torch.float64)),
        "one broad, rest tiny": (randn(s, n), torch.cat([torch.full((1, n), 30.0),
                                                         torch.full((s - 1, n), 1e-9)]).double()),
        "huge offset": (1e9 + torch.arange(s, dtype=torch.float64)[:, None].expand(s, n)
                        + randn(s, n), torch.full((s, n), 0.5, dtype=torch.float64)),
        "S = 1": (randn(1, n), torch.rand(1, n, generator=g).double() + 0.1),
        "S = 2": (randn(2, n) * 10, torch.rand(2, n, generator=g).double() + 0.01),
    }


def _agree(loc: Tensor, scale: Tensor, got: Tensor, ref: Tensor, tol: float) -> None:
    """``got`` equals ``ref`` to the resolution both aim at, or both solve F = q on a stretch
    where the CDF is flat to rounding (the quantile is not unique there)."""
    spread = (scale.square().mean(0) + loc.var(0, correction=0)).sqrt()
    u = (ref - loc.mean(0)).abs() / spread
    close = (got - ref).abs() <= 2 * tol * spread * (1 + u) + 1e-15 * ref.abs()
    pred = Prediction(loc, scale)
    flat = torch.stack([(pred.cdf(v) - LEVELS[:, None]).abs() for v in (got, ref)]).amax(0)
    assert bool((close | (flat <= 1e-12)).all()), float(((got - ref).abs() / spread).max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(_mixtures()))
def test_agrees_with_the_bisection_reference(name: str, dtype: torch.dtype) -> None:
    loc, scale = _mixtures()[name]
    got = Prediction(loc, scale, working_dtype=dtype).quantile(LEVELS)
    ref = bisection_quantile(loc, scale, LEVELS, dtype)
    assert got.shape == ref.shape == (len(LEVELS), loc.shape[1])
    assert (got[1:] >= got[:-1]).all()
    _agree(loc, scale, got, ref, _tol(dtype))


def test_agrees_with_brentq() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        s = int(rng.integers(1, 60))
        loc = rng.normal(size=s) * rng.choice([1e-3, 1.0, 1e3])
        scale = rng.uniform(0.01, 2.0, size=s) * rng.choice([1e-3, 1.0])
        q = float(rng.uniform(1e-3, 1 - 1e-3))
        lo, hi = (loc - 40 * scale).min(), (loc + 40 * scale).max()
        want = brentq(lambda y: ndtr((y - loc) / scale).mean() - q, lo, hi,  # noqa: B023
                      xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
        got = mixture_quantile(torch.from_numpy(loc)[:, None], torch.from_numpy(scale)[:, None],
                               torch.tensor([q], dtype=torch.float64), tol=_tol(torch.float64))
        spread = math.sqrt((scale**2).mean() + loc.var())
        assert abs(float(got) - want) <= 1e-12 * spread + 1e-14 * abs(want)


def test_symmetric_gap_resolves_to_its_left_end_like_the_bisection() -> None:
    # F = 0.5 exactly between two far-apart components: the smallest y with F(y) >= q.
    loc = torch.tensor([[-1e3], [1e3]], dtype=torch.float64)
    scale = torch.ones(2, 1, dtype=torch.float64)
    got = Prediction(loc, scale).quantile(0.5)
    ref = bisection_quantile(loc, scale, torch.tensor([0.5], dtype=torch.float64))[0]
    assert float(got) < -990 and abs(float(got - ref)) < 1e-9


def test_rows_do_not_depend_on_the_batch_chunks_or_threads() -> None:
    loc, scale = _mixtures(1)["varying scales"]
    q = torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64)
    tol = _tol(torch.float32)
    full = mixture_quantile(loc, scale, q, tol=tol)
    for kwargs in ({"threads": 1}, {"threads": 2}, {"chunk_cells": 1}, {"chunk_cells": 5000}):
        assert torch.equal(mixture_quantile(loc, scale, q, tol=tol, **kwargs), full)
    for i in (0, 7, loc.shape[1] - 1):
        one = mixture_quantile(loc[:, i : i + 1], scale[:, i : i + 1], q, tol=tol)
        assert torch.equal(one[:, 0], full[:, i])
    # a level alone gets the value it gets among others (where they are apart, as here)
    assert torch.equal(mixture_quantile(loc, scale, q[1:2], tol=tol)[0], full[1])


def test_levels_inside_one_spike_stay_ordered() -> None:
    # A component far narrower than the float32 resolution holds the levels 0.25 .. 0.75.
    loc = torch.zeros(2, 1, dtype=torch.float64)
    scale = torch.tensor([[1e-9], [1.0]], dtype=torch.float64)
    q = torch.tensor([0.625, 0.75, 0.3, 0.5], dtype=torch.float64)
    got = mixture_quantile(loc, scale, q, tol=_tol(torch.float32))[:, 0]
    assert (got[q.argsort()].diff() >= 0).all()


def test_per_element_levels_and_non_finite_rows() -> None:
    loc, scale = _mixtures(2)["hetero"]
    levels = torch.rand(2, loc.shape[1], dtype=torch.float64) * 0.9 + 0.05
    got = mixture_quantile(loc, scale, levels, tol=_tol(torch.float64))
    pred = Prediction(loc, scale)
    torch.testing.assert_close(pred.cdf(got), levels, rtol=0, atol=1e-13)
    bad = loc.clone()
    bad[3, 5] = math.nan
    out = mixture_quantile(bad, scale, levels[:1], tol=_tol(torch.float64))
    assert torch.isnan(out[0, 5]) and torch.isfinite(out[0, :5]).all()


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(1e-9, 1e3, allow_nan=False, allow_infinity=False)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[Tensor, Tensor, Tensor]:
    s, n = draw(st.integers(1, 12)), draw(st.integers(1, 4))
    loc = torch.from_numpy(draw(arrays(np.float64, (s, n), elements=finite)))
    scale = torch.from_numpy(draw(arrays(np.float64, (s, n), elements=positive)))
    levels = draw(st.lists(st.floats(1e-6, 1 - 1e-6), min_size=1, max_size=4, unique=True))
    return loc, scale, torch.tensor(sorted(levels), dtype=torch.float64)


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(_cases(), st.sampled_from([torch.float32, torch.float64]))
def test_property_matches_the_reference_and_is_batch_invariant(
    case: tuple[Tensor, Tensor, Tensor], dtype: torch.dtype
) -> None:
    loc, scale, q = case
    tol = _tol(dtype)
    got = mixture_quantile(loc, scale, q, tol=tol)
    _agree_levels(loc, scale, got, bisection_quantile(loc, scale, q, dtype), q, tol)
    assert (got[1:] >= got[:-1]).all()
    last = loc.shape[1] - 1
    one = mixture_quantile(loc[:, last:], scale[:, last:], q, tol=tol)
    assert torch.equal(one[:, 0], got[:, last])


def test_moment_series_serves_rows_of_one_scale_and_keeps_them_invariant(monkeypatch) -> None:
    calls: list[int] = []
    real = quantile_module.series_cdf_terms

    def counted(t: Tensor, coefficients: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        calls.append(t.shape[0])
        return real(t, coefficients)

    monkeypatch.setattr(quantile_module, "series_cdf_terms", counted)
    mixtures = _mixtures(4)
    small, _ = mixtures["hetero, small epistemic"]
    wide, scale = mixtures["hetero"]  # draws spread 0.6 of the scale: too wide for the series
    loc = torch.cat([small[:, :20], wide[:, 20:]], 1)  # mixed rows in one chunk
    q = torch.tensor([1e-4, 0.05, 0.5, 0.95], dtype=torch.float64)
    tol = _tol(torch.float32)
    got = mixture_quantile(loc, scale, q, tol=tol)
    assert calls and max(calls) <= 4 * 20  # only the small-epistemic rows went to the series
    _agree_levels(loc, scale, got, bisection_quantile(loc, scale, q, torch.float32), q, tol)
    for i in (0, 19, 20, 39):
        one = mixture_quantile(loc[:, i : i + 1], scale[:, i : i + 1], q, tol=tol)
        assert torch.equal(one[:, 0], got[:, i])
    calls.clear()  # at float64's resolution the series serves only where its bound allows
    tol64 = _tol(torch.float64)
    got64 = mixture_quantile(loc, scale, q, tol=tol64)
    _agree_levels(loc, scale, got64, bisection_quantile(loc, scale, q, torch.float64), q, tol64)


def _agree_levels(loc: Tensor, scale: Tensor, got: Tensor, ref: Tensor, q: Tensor,
                  tol: float) -> None:
    """``_agree`` at the levels ``q``: to the resolution, or both on the CDF's rounding noise."""
    spread = (scale.square().mean(0) + loc.var(0, correction=0)).sqrt()
    u = (ref - loc.mean(0)).abs() / spread
    close = (got - ref).abs() <= 2 * tol * spread * (1 + u) + 1e-15 * ref.abs()
    cdf = Prediction(loc, scale).cdf
    flat = torch.stack([(cdf(v) - q[:, None]).abs() for v in (got, ref)]).amax(0) <= 1e-12
    assert bool((close | flat).all())


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 300), st.floats(1e-3, 0.6), st.floats(1e-6, 1e6),
       st.floats(-1e6, 1e6), st.lists(st.floats(1e-6, 1 - 1e-6), min_size=1, max_size=4,
                                      unique=True))
def test_property_one_scale_rows_match_the_reference(
    s: int, epistemic: float, sigma: float, centre: float, levels: list[float]
) -> None:
    """Rows of one common scale (the series' domain, and past its edge) against the bisection."""
    g = torch.Generator().manual_seed(s)
    loc = centre + sigma * epistemic * torch.randn(s, 3, generator=g, dtype=torch.float64)
    scale = torch.full((s, 3), sigma, dtype=torch.float64)
    q = torch.tensor(sorted(levels), dtype=torch.float64)
    tol = _tol(torch.float32)
    got = mixture_quantile(loc, scale, q, tol=tol)
    _agree_levels(loc, scale, got, bisection_quantile(loc, scale, q, torch.float32), q, tol)


def test_inputs_are_left_as_they_were() -> None:
    # one row in float64: the solver's transposed copies are views of the inputs there
    for loc, scale in (_mixtures(5)["varying scales"], _mixtures(5)["hetero, small epistemic"]):
        loc, scale = loc[:, :1].clone(), scale[:, :1].clone()
        before = (loc.clone(), scale.clone())
        mixture_quantile(loc, scale, torch.tensor([0.5]), tol=_tol(torch.float32))
        assert torch.equal(loc, before[0]) and torch.equal(scale, before[1])
