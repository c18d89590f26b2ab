"""Quantiles of mixtures in runs of one scale (an ensemble's rows) on the run-by-run series.

Every case is seeded and deterministic (no false positives); the agreement bound is the solver's
resolution, as for the other quantile tests.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from _bisection import bisection_quantile
from varbayes.predictive import Prediction, quantile, quantile_runs
from varbayes.predictive.quantile import mixture_quantile
from varbayes.predictive.quantile_runs import (
    MAX_RUNS,
    draw_runs,
    row_major,
    run_mean,
    scale_runs,
)

LEVELS = torch.tensor([1e-4, 0.05, 0.5, 0.95], dtype=torch.float64)


def _tol(dtype: torch.dtype) -> float:
    return 4 * torch.finfo(dtype).eps


def _ensemble(runs: list[int], n: int, epistemic: float, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``len(runs)`` members: each its own offset, scale and draws spread ``epistemic`` of it."""
    g = torch.Generator().manual_seed(seed)
    locs, scales = [], []
    centre = 10 * torch.randn(n, generator=g, dtype=torch.float64)
    for count in runs:
        sigma = 0.2 + torch.rand(n, generator=g, dtype=torch.float64)
        shift = 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
        draws = torch.randn(count, n, generator=g, dtype=torch.float64)
        locs.append(centre + shift + epistemic * sigma * draws)
        scales.append(sigma.expand(count, n))
    return torch.cat(locs), torch.cat(scales)


def _agree(loc: Tensor, scale: Tensor, got: Tensor, ref: Tensor, tol: float) -> None:
    """To the resolution in units of the row's spread, or both on the CDF's rounding noise."""
    spread = (scale.square().mean(0) + loc.var(0, correction=0)).sqrt()
    u = (ref - loc.mean(0)).abs() / spread
    close = (got - ref).abs() <= 2 * tol * spread * (1 + u) + 1e-15 * ref.abs()
    flat = torch.stack([(Prediction(loc, scale).cdf(v) - LEVELS[:, None]).abs()
                        for v in (got, ref)]).amax(0) <= 1e-12
    assert bool((close | flat).all()), float(((got - ref).abs() / spread).max())


@pytest.fixture
def series_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Element counts of every run-series evaluation while the test runs."""
    real, calls = quantile_runs.series_cdf_terms, []
    monkeypatch.setattr(quantile_runs, "series_cdf_terms",
                        lambda t, p: (calls.append(t.shape[0]), real(t, p))[1])
    return calls


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("epistemic", [0.05, 0.2, 0.6])
def test_ensemble_rows_match_the_bisection(dtype: torch.dtype, epistemic: float,
                                           series_calls: list[int]) -> None:
    loc, scale = _ensemble([334, 333, 333], 12, epistemic)
    tol = _tol(dtype)
    got = mixture_quantile(loc, scale, LEVELS, tol=tol)
    _agree(loc, scale, got, bisection_quantile(loc, scale, LEVELS, dtype), tol)
    if dtype == torch.float32 and epistemic <= 0.2:
        assert series_calls  # the rows went to the run series


def test_rows_do_not_depend_on_the_batch_chunks_or_threads(series_calls: list[int]) -> None:
    parts = [_ensemble([334, 333, 333], 8, 0.1, 1), _ensemble([500, 500], 8, 0.1, 2),
             _ensemble([1000], 8, 0.1, 3), _ensemble([200] * 5, 8, 0.6, 4)]
    loc, scale = torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)
    varying = torch.rand(1000, 8, generator=torch.Generator().manual_seed(5)).double() + 0.1
    loc, scale = torch.cat([loc, parts[0][0]], 1), torch.cat([scale, varying], 1)
    tol = _tol(torch.float32)
    full = mixture_quantile(loc, scale, LEVELS, tol=tol)
    assert series_calls
    _agree(loc, scale, full, bisection_quantile(loc, scale, LEVELS, torch.float32), tol)
    for kwargs in ({"threads": 1}, {"threads": 2}, {"chunk_cells": 1}, {"chunk_cells": 20_000}):
        assert torch.equal(mixture_quantile(loc, scale, LEVELS, tol=tol, **kwargs), full)
    for i in range(0, loc.shape[1], 3):
        one = mixture_quantile(loc[:, i : i + 1], scale[:, i : i + 1], LEVELS, tol=tol)
        assert torch.equal(one[:, 0], full[:, i])


def test_runs_read_from_the_draws_give_the_bits_of_the_transposed_search(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loc, scale = _ensemble([334, 333, 333], 12, 0.1, 6)
    scale[334:667, 3] = scale[0, 3]  # row 3: two neighbouring members of one scale
    scale[:, 5] = scale[0, 5]  # row 5: one scale
    bounds = draw_runs(scale)
    assert bounds == [0, 334, 667, 1000]
    heads = scale[bounds[:-1]]
    assert torch.equal(row_major(heads, bounds), scale.t().contiguous())
    tol = _tol(torch.float32)
    fast = mixture_quantile(loc, scale, LEVELS, tol=tol)
    monkeypatch.setattr(quantile, "draw_runs", lambda s: None)  # the search on every draw
    assert torch.equal(mixture_quantile(loc, scale, LEVELS, tol=tol), fast)
    # The runs' mean squared scale: one term per run, equal to the mean over every draw up to
    # rounding, and a row's value the same alone or among others.
    means = run_mean(heads.t().square(), bounds)
    torch.testing.assert_close(means, scale.square().mean(0), rtol=1e-15, atol=0)
    for i in range(scale.shape[1]):
        assert torch.equal(run_mean(heads.t()[i : i + 1].square(), bounds), means[i : i + 1])
    # Any bit that differs within a run, or more runs than MAX_RUNS, and the draws are searched.
    nudged = scale.clone()
    nudged[500, 2] = torch.nextafter(nudged[500, 2], torch.tensor(math.inf, dtype=torch.float64))
    assert draw_runs(nudged) is None
    signed = torch.zeros(4, 2, dtype=torch.float64)
    signed[2:, 1] = -0.0
    assert draw_runs(signed) is None
    assert draw_runs(torch.arange(MAX_RUNS + 1.0, dtype=torch.float64)[:, None]) is None


def test_an_ensembles_rows_are_solved_without_writing_every_draws_scale(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loc, scale = _ensemble([334, 333, 333], 40, 0.1, 7)
    written: list[int] = []

    def counted(heads: Tensor, bounds: list[int]) -> Tensor:
        written.append(heads.shape[1])
        return row_major(heads, bounds)

    monkeypatch.setattr(quantile, "row_major", counted)
    tol = _tol(torch.float32)
    got = mixture_quantile(loc, scale, LEVELS, tol=tol, threads=1)
    assert written == []  # the runs' heads only: no (rows x draws) copy of the scales
    _agree(loc, scale, got, bisection_quantile(loc, scale, LEVELS, torch.float32), tol)
    scale[334:667, 3] = scale[0, 3]  # a row with two neighbouring members of one scale
    mixture_quantile(loc, scale, LEVELS, tol=tol, threads=1)
    assert written == [40]  # written once, for that row's own search


def test_scale_runs_groups_rows_by_their_own_boundaries() -> None:
    scale = torch.tensor([[1.0, 1.0, 2.0, 2.0, 2.0, 3.0],
                          [5.0, 5.0, 6.0, 6.0, 6.0, 7.0],
                          [1.0, 2.0, 2.0, 2.0, 2.0, 2.0],
                          [4.0, 4.0, 4.0, 4.0, 4.0, 4.0],
                          [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]], dtype=torch.float64)
    every = torch.ones(5, dtype=torch.bool)
    found = {tuple(rows.tolist()): bounds for rows, bounds in scale_runs(scale, every)}
    assert found == {(0, 1): [0, 2, 5, 6], (2,): [0, 1, 6], (4,): [0, 1, 2, 3, 4, 5, 6]}
    some = scale_runs(scale, torch.tensor([False, True, False, True, False]))
    assert [(r.tolist(), b) for r, b in some] == [([1], [0, 2, 5, 6])]  # row 3: one scale
    many = torch.arange(MAX_RUNS + 1, dtype=torch.float64).repeat_interleave(2)[None]
    assert scale_runs(many, torch.ones(1, dtype=torch.bool)) == []


def test_a_component_narrower_than_the_step_does_not_stop_the_search(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by the property test: the root lies 18.8 above a cluster that holds a component of
    # scale 1e-5; at that component's centre a step below the resolution passed the curvature
    # check (0.09 < 0.1) although its CDF saturates at q - 0.07. The bisection finds the root.
    mu = -782573.3990926484
    loc = torch.full((10, 1), mu, dtype=torch.float64)
    loc[6] = 0.0
    scale = torch.full((10, 1), 275.05184244158625, dtype=torch.float64)
    scale[3], scale[6], scale[8] = 1e-5, 229.03901349027606, 462.84525420995453
    q = torch.tensor([0.5207221324481478], dtype=torch.float64)
    ref = bisection_quantile(loc, scale, q, torch.float32)
    assert abs(float(ref) - mu - 18.8) < 0.1
    for max_runs in (MAX_RUNS, 1):  # on the run series (7 runs), then on the components
        monkeypatch.setattr(quantile_runs, "MAX_RUNS", max_runs)
        got = mixture_quantile(loc, scale, q, tol=_tol(torch.float32))
        assert abs(float(got - ref)) < 0.22  # 2x the resolution, 4 eps32 x spread 2.3e5
