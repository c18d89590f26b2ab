"""Mixtures whose draws come in runs of one scale each: the moment series run by run.

An :class:`~varbayes.models.Ensemble` of heteroscedastic networks with point-estimate noise
networks (the default ``hetero`` fit) gives all draws of one member the member's scale, so a
row's ``S`` components fall into a few runs of consecutive draws, each of one scale. The
mixture's CDF is the weighted sum of the runs' CDFs, :math:`F = \\sum_g \\frac{n_g}{S} F_g`, and
each :math:`F_g` is a mixture of one common scale: the moment series of
:mod:`varbayes.predictive.quantile_series` about the run's own mean and scale. Its remainder is
bounded by :math:`\\sum_g \\frac{n_g}{S} |R_g|`, which
:func:`varbayes.predictive.quantile.mixture_quantile` checks exactly as for one run.

Any split of the draws into runs of one scale is exact (the remainder bound holds for each run);
a row's runs are found from its own scales only (where consecutive scales differ), so the result
does not depend on the other rows of the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from varbayes.predictive.quantile_series import (
    ORDER,
    series_cdf_terms,
    series_coefficients,
    series_polynomials,
)

__all__ = ["MAX_RUNS", "RunSeries", "draw_runs", "row_major", "run_mean", "run_series",
           "scale_runs", "scale_runs_of"]

#: Rows with more runs of one scale than this are solved on their components.
MAX_RUNS = 8

#: (cdf, density, slope) of elements ``u`` (E,) of chunk rows ``row`` (E,).
_Evaluate = Callable[[Tensor, "Tensor | None"], tuple[Tensor, Tensor, Tensor]]


def draw_runs(scale: Tensor) -> list[int] | None:
    """Run boundaries ``[0, b_1, ..., S]`` that every row's scales follow, or ``None``.

    Parameters
    ----------
    scale : Tensor of shape (S, c), float64
        Component scales in draw order, one column per row (the layout of ``Prediction``).

    Returns
    -------
    list of int or None
        The boundaries where the first row's scales change, when there are at most
        :data:`MAX_RUNS` runs and every row's scales are bitwise constant within each of
        them (an ensemble of point-estimate noise networks: one scale per member). Checked on
        the draws-major layout, without the transposed copy.
    """
    s = scale.shape[0]
    if scale.stride(0) == 0:  # one row broadcast over the draws: one run
        return [0, s]
    first = scale[:, 0]
    cuts = ((first[1:] != first[:-1]).nonzero()[:, 0] + 1).tolist()
    if len(cuts) >= MAX_RUNS:
        return None
    bounds = [0, *cuts, s]
    bits = scale.view(torch.int64)  # bitwise: -0.0 is not 0.0 here, a NaN equals itself
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if not bool((bits[a + 1 : b] == bits[a]).all()):
            return None
    return bounds


def row_major(heads: Tensor, bounds: list[int]) -> Tensor:
    """The scales (c, S) of rows that follow ``bounds`` (:func:`draw_runs`), from ``heads``.

    ``heads`` (G, c) holds each run's scale; the result equals ``scale.t().contiguous()``
    bit for bit, written run by run instead of transposed.
    """
    by_row = heads.t()
    out = heads.new_empty((heads.shape[1], bounds[-1]))
    for g, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        out[:, a:b] = by_row[:, g : g + 1]  # a broadcast fill: 4x faster than a cat of views
    return out


def scale_runs(scale: Tensor, candidates: Tensor) -> list[tuple[Tensor, list[int]]]:
    """The candidate rows grouped by where their scales change along the draws.

    Parameters
    ----------
    scale : Tensor of shape (c, S)
        Each row's component scales, in draw order.
    candidates : Tensor of shape (c,), bool
        Rows to consider; those with more than :data:`MAX_RUNS` runs are left out.

    Returns
    -------
    list of (rows, bounds)
        The row indices of one pattern and its run boundaries ``[0, b_1, ..., S]``.
    """
    s = scale.shape[1]
    change = scale[:, 1:] != scale[:, :-1]  # (c, S - 1)
    runs = change.sum(1) + 1
    at = (candidates & (runs > 1) & (runs <= MAX_RUNS)).nonzero()[:, 0]
    if at.numel() == 0:
        return []
    # An ensemble's rows share one pattern (its members' boundaries): take the first row's and
    # keep every row whose changes are exactly those (as many, and all at those positions).
    cuts = change[at[0]].nonzero()[:, 0]
    same = (runs.index_select(0, at) == cuts.numel() + 1) & \
        change.index_select(1, cuts).index_select(0, at).all(1)
    found = [(at[same], [0, *(int(b) + 1 for b in cuts), s])]
    at = at[~same]
    if at.numel() == 0:
        return found
    # The other rows: each row's change positions, padded with S, as a key of MAX_RUNS - 1
    # integers.
    counts = runs.index_select(0, at) - 1
    r, p = change.index_select(0, at).nonzero(as_tuple=True)  # row-major: p rises in a row
    first = torch.cumsum(counts, 0) - counts
    pos = torch.full((at.numel(), MAX_RUNS - 1), s, dtype=torch.long, device=scale.device)
    pos[r, torch.arange(r.numel(), device=scale.device) - first[r]] = p + 1
    keys, inverse = torch.unique(pos, dim=0, return_inverse=True)
    return found + [(at[inverse == i], [0, *(int(b) for b in key if b < s), s])
                    for i, key in enumerate(keys)]


def scale_runs_of(scales: Callable[[], Tensor], candidates: Tensor, heads: Tensor,
                  bounds: list[int] | None) -> list[tuple[Tensor, list[int], Tensor]]:
    """:func:`scale_runs` of the row-major scales ``scales()``, each group with its run scales.

    Where every row's scales follow ``bounds`` (:func:`draw_runs`) with ``heads`` (G, c) as the
    runs' scales, a row whose consecutive runs all differ has exactly those runs; only the
    other rows (two neighbouring members of one scale) are searched, and ``scales()`` (which
    writes every draw's scale) is called only for them.

    Returns
    -------
    list of (rows, bounds, firsts)
        As :func:`scale_runs`, and ``firsts`` (c, G): every chunk row's scale in each of the
        group's runs (its first draw's; the group's rows read theirs from it).
    """
    if bounds is None:
        return _with_firsts(scales(), candidates)
    if len(bounds) <= 2:  # one run: no row has more
        return []
    distinct = (heads[1:] != heads[:-1]).all(0)
    rows = (candidates & distinct).nonzero()[:, 0]
    found = [(rows, bounds, heads.t())] if rows.numel() else []
    rest = candidates & ~distinct
    return found + _with_firsts(scales(), rest) if bool(rest.any()) else found


def _with_firsts(scale: Tensor, candidates: Tensor) -> list[tuple[Tensor, list[int], Tensor]]:
    """:func:`scale_runs` of ``scale`` (c, S), each group with its runs' first scales (c, G)."""
    return [(rows, cuts, scale[:, cuts[:-1]]) for rows, cuts in scale_runs(scale, candidates)]


def run_mean(values: Tensor, bounds: list[int]) -> Tensor:
    """Each row's mean over the draws of values constant in each run: (r, G) -> (r,).

    One weighted term per run, added in run order element by element, so a row's result is
    the same in any chunk and whichever search found its runs.
    """
    s = bounds[-1]
    total = values[:, 0] * ((bounds[1] - bounds[0]) / s)
    for g in range(1, len(bounds) - 1):
        total = total + values[:, g] * ((bounds[g + 1] - bounds[g]) / s)
    return total


class RunSeries(NamedTuple):
    """The run-by-run series of some rows: see :func:`run_series`."""

    bound: Tensor  #: (r,) remainder bound of each row's CDF, in probability
    evaluate: _Evaluate  #: CDF, density and slope (in ``u``) at elements of chunk rows
    skew: Tensor  #: (r,) the mixture's third moment in spread units
    kurt: Tensor  #: (r,) its fourth moment minus 3 (the excess kurtosis at unit variance)
    scale_min: Tensor  #: (r,) the smallest component scale, in spread units
    scale_max: Tensor  #: (r,) the largest


def run_series(loc: Tensor, firsts: Tensor, centre: Tensor, spread: Tensor, rows: Tensor,
               bounds: list[int]) -> RunSeries:
    """The run-by-run moment series of ``rows`` (one pattern of :func:`scale_runs`).

    Parameters
    ----------
    loc : Tensor of shape (c, S)
        The chunk's component means (float64), one row per mixture.
    firsts : Tensor of shape (c, G)
        Each chunk row's scale in each run, as :func:`scale_runs_of` gives it.
    centre, spread : Tensor of shape (c,)
        Each row's mean and spread (the square root of its second central moment): the series
        works in ``u = (y - centre) / spread``.
    rows : Tensor of shape (r,)
        Chunk rows of this pattern.
    bounds : list of int
        Run boundaries ``[0, b_1, ..., S]``.

    Returns
    -------
    RunSeries
        The remainder bounds, the evaluator ``evaluate(u, row)`` for elements ``u`` of chunk
        rows ``row`` (all in ``rows``), and the moments and extreme scales that start and
        bracket the search (from the runs' moments: O(runs) per row, not O(S)).
    """
    every = rows.numel() == loc.shape[0]
    m = loc if every else loc.index_select(0, rows)
    c0, sp = centre.index_select(0, rows), spread.index_select(0, rows)
    s = m.shape[1]
    offsets, rhos, polys, moments = [], [], [], []
    bound = torch.zeros_like(c0)
    weights = torch.tensor([(b - a) / s for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
                           dtype=m.dtype, device=m.device)
    for g, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        part, sigma = m[:, a:b], firsts[:, g].index_select(0, rows)
        mean = part.mean(1)
        coefficients, remainder = series_coefficients((part - mean[:, None]) / sigma[:, None])
        bound = bound + weights[g] * remainder
        offsets.append((mean - c0) / sp)
        rhos.append(sigma / sp)
        polys.append(series_polynomials(coefficients))
        moments.append(coefficients[:, 2:5] * torch.tensor([2.0, 6.0, 24.0], dtype=m.dtype,
                                                            device=m.device))  # M_2, M_3, M_4
    off, rho = torch.stack(offsets, 1), torch.stack(rhos, 1)  # (r, G)
    poly = torch.stack(polys, 1)  # (r, G, 3, ORDER + 1)
    mk = torch.stack(moments, 1)  # (r, G, 3)
    # Raw moments of each run's means about the row's centre (M_1 = 0), then the mixture's.
    d, r2 = off, rho * rho
    e2 = d * d + r2 * mk[..., 0]
    e3 = d**3 + 3 * d * r2 * mk[..., 0] + r2 * rho * mk[..., 1]
    e4 = d**4 + 6 * d * d * r2 * mk[..., 0] + 4 * d * r2 * rho * mk[..., 1] + r2 * r2 * mk[..., 2]
    skew = ((e3 + 3 * r2 * d) * weights).sum(1)
    kurt = ((e4 + 6 * r2 * e2 + 3 * r2 * r2) * weights).sum(1) - 3
    local = torch.full((loc.shape[0],), -1, dtype=torch.long, device=loc.device)
    local[rows] = torch.arange(rows.numel(), device=loc.device)
    groups = len(bounds) - 1

    def evaluate(u: Tensor, row: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        at = local.index_select(0, row if row is not None else rows)
        r = rho.index_select(0, at)
        t = (u[:, None] - off.index_select(0, at)) / r
        cdf, dens, slope = series_cdf_terms(
            t.reshape(-1), poly.index_select(0, at).reshape(-1, 3, ORDER + 1))
        shape = (-1, groups)
        return ((cdf.view(shape) * weights).sum(1),
                (dens.view(shape) / r * weights).sum(1),
                (slope.view(shape) / (r * r) * weights).sum(1))

    return RunSeries(bound, evaluate, skew, kurt, rho.amin(1), rho.amax(1))
