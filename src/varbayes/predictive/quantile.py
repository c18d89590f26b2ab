"""Quantiles of equal-weight Gaussian mixtures: safeguarded Halley steps on the mixture CDF.

For each row the mixture :math:`F(y) = \\frac1S\\sum_s \\Phi((y - \\mu_s)/\\sigma_s)` is solved
for :math:`F(y) = q` in units of the row's own spread, ``u = (y - centre) / spread``, so that
the resolution follows the mixture's width, not the magnitude of ``y`` (``y = 1e9 + k``).

* **Start**: the Cornish-Fisher expansion of the mixture's first four moments (the
  moment-matched Gaussian, corrected for skewness and kurtosis), or the moment-matched Gaussian
  itself where the correction is large.
* **Steps**: Halley's method with the CDF, the density and its derivative, all from one pass
  over the components (one ``ndtr`` and one ``exp`` per component). Near the root a step
  multiplies the error's exponent by three, so a typical row needs two passes.
* **Safeguard**: a bracket ``[lo, hi]`` with ``F(lo) <= q <= F(hi)``, started from bounds on the
  component quantiles and narrowed at every evaluation. A step that leaves it, or does not halve
  the step before last (Numerical Recipes' ``rtsafe`` rule), is replaced by bisection, so
  far-apart components and tiny scales converge like the bisection would.
* **Stopping**, element by element: when the step is below the working dtype's resolution
  (``4 eps (1 + |u|)``) or within the CDF's rounding noise; the returned value then takes that
  last step, which makes the result independent of where exactly the iteration stopped. A row
  whose bracket is that narrow stops at its midpoint. Finally the values are made
  non-decreasing in the level (see :func:`_monotone`).

Every element iterates on its own row's components only (converged elements leave the working
set), so a row's quantile does not depend on the other rows of the batch. Rows are processed in
chunks of about :data:`CHUNK_CELLS` component values (bounded memory, cache-sized work arrays),
and the chunks are shared among threads, each running single-threaded tensor operations.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import torch
from torch import Tensor

from varbayes._threads import available_threads
from varbayes.predictive.quantile_runs import (
    RunSeries,
    draw_runs,
    row_major,
    run_mean,
    run_series,
    scale_runs_of,
)
from varbayes.predictive.quantile_series import (
    ORDER,
    series_cdf_terms,
    series_coefficients,
    series_polynomials,
)

__all__ = ["CHUNK_CELLS", "MAX_ITERATIONS", "mixture_quantile"]

#: Component values (rows x components) one chunk works on: 8 MB per float64 array of the
#: rows' components (in the L3 cache), k times that for the component evaluations of the k
#: levels while none has converged. A chunk costs about 4 ms of per-operation overhead on the
#: 2-core VM, so fewer, larger chunks win: counting the levels too (the chunks of 0.2, a third of
#: these for three levels) took 30% more CPU on the default hetero ensemble.
CHUNK_CELLS = 2**20
#: Evaluations of the CDF per element at most (bisection needs about 60 from the widest bracket).
MAX_ITERATIONS = 200

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_EPS64 = torch.finfo(torch.float64).eps
#: Rounding noise of a mixture CDF value, in probability: a step within it is converged.
_CDF_NOISE = 8 * _EPS64
#: Largest step (in spread units) that rounding noise in the CDF may excuse.
_NOISE_CAP = 1e-11
#: Largest ``|newton * slope / density|`` at which a step below the resolution is accepted: the
#: local quadratic model must hold by a wide margin. (0.1 accepted a point inside a component
#: narrower than the step, whose CDF saturates before the root: F - q = -0.07 there.)
_CURVE_MAX = 1e-3
#: The moment series is tried on rows whose remainder bound (in probability) is at most this
#: times the resolution: where the density exceeds 1/10 (in spread units) the quantiles then
#: pass the check of each one's error (1/16 of the resolution). With float64's resolution that
#: takes draws spread less than a twentieth of their scale.
_SERIES_BOUND_PER_TOL = 1 / 160


def _ndtr(z: Tensor) -> Tensor:
    return cast(Tensor, torch.special.ndtr(z))  # torch.special is untyped


def _cornish_fisher(z: Tensor, skew: Tensor, kurt: Tensor) -> Tensor:
    """Cornish-Fisher start for standardised mixtures (mean 0, variance 1); shape (k, c).

    ``z``: (k, c) normal quantiles of the levels; ``skew``, ``kurt``: (c,) the mixture's
    skewness and excess kurtosis. Where the correction exceeds 0.5 the Gaussian start ``z``
    is kept.
    """
    z2 = z * z
    corr = ((z2 - 1) * skew / 6 + (z2 - 3) * z * kurt / 24
            - (2 * z2 - 5) * z * skew * skew / 36)
    good = torch.isfinite(corr) & (corr.abs() <= 0.5)
    return z + torch.where(good, corr, torch.zeros_like(corr))


def _start(m: Tensor, w: Tensor, z: Tensor) -> Tensor:
    """:func:`_cornish_fisher` from components ``m``, ``w`` (c, S) in spread units."""
    w2 = w * w
    m2 = m * m
    skew = (m * (m2 + 3 * w2)).mean(1)
    kurt = (m2 * (m2 + 6 * w2) + 3 * w2 * w2).mean(1) - 3
    return _cornish_fisher(z, skew, kurt)


def _cdf_terms(u: Tensor, m: Tensor, w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mixture CDF, density and its slope at ``u`` (shape (..., 1)) over the last dimension.

    ``m`` and ``w`` broadcast against ``u`` ((..., S) means, (..., S) or (..., 1) scales).
    """
    z = (u - m).div_(w)
    cdf = _ndtr(z).mean(-1)
    pdf = torch.exp(z.square().mul_(-0.5)).div_(w)
    dens = pdf.mean(-1) * _INV_SQRT_2PI
    slope = pdf.mul_(z.div_(w)).mean(-1) * -_INV_SQRT_2PI
    return cdf, dens, slope


#: (cdf, density, slope) of the elements ``u`` (E,) of rows ``row`` (E,), or of every element
#: of the chunk in (level, row) order when ``row`` is None.
_Evaluate = Callable[[Tensor, "Tensor | None"], tuple[Tensor, Tensor, Tensor]]


def _halley(u: Tensor, lo: Tensor, hi: Tensor, q: Tensor, row: Tensor, evaluate: _Evaluate,
            tol: float, whole: bool) -> tuple[Tensor, Tensor]:
    """Safeguarded Halley iteration of elements (spread units); (quantiles, final densities).

    ``whole``: the elements are every element of the chunk, in order (``evaluate`` may then
    broadcast until one converges).
    """
    result, density = torch.empty_like(u), torch.empty_like(u)
    total = u.shape[0]
    idx = torch.arange(total, device=u.device)  # the elements still iterating
    step = hi - lo
    step_old = step.clone()
    for _ in range(MAX_ITERATIONS):
        if idx.numel() == 0:
            break
        cdf, dens, slope = evaluate(u, None if whole and idx.numel() == total else row)
        g = cdf - q
        # Narrow the bracket: F(lo) <= q <= F(hi). An exact zero residual moves hi, like the
        # bisection, so a flat stretch of the CDF at exactly q resolves to its left end.
        below = g < 0
        lo = torch.where(below, u, lo)
        hi = torch.where(below, hi, u)
        newton = g / dens
        curve = newton * slope / dens  # small where the local quadratic model holds
        denom = 1 - 0.5 * curve
        halley = torch.where((denom > 0.5) & (denom < 2), newton / denom, newton)
        proposal = u - halley
        # Converged: the step is below the resolution, or below the CDF's rounding noise
        # (capped, so that a flat stretch of the CDF near q is bisected, not accepted), and the
        # step is one the local model can be trusted for: in the exponential tail of a narrow
        # component a Newton step underestimates the distance to the root.
        noise = torch.clamp(_CDF_NOISE / dens, max=_NOISE_CAP)
        converged = (halley.abs() <= (tol + noise) * (1 + u.abs())) & (g != 0) \
            & (curve.abs() <= _CURVE_MAX) & torch.isfinite(proposal)
        # F(u) = q exactly where the CDF rises steeply enough for its rounding to pin the
        # root to the resolution: u is the root (elsewhere an exact zero may be a flat stretch).
        hit = (g == 0) & (_CDF_NOISE <= dens * tol * (1 + u.abs()))
        mid = 0.5 * (lo + hi)
        narrow = (hi - lo) <= tol * (1 + mid.abs())
        usable = torch.isfinite(proposal) & (proposal > lo) & (proposal < hi) & (g != 0) \
            & (halley.abs() <= 0.5 * step_old.abs())
        final = torch.where(converged, torch.minimum(torch.maximum(proposal, lo), hi), mid)
        final = torch.where(hit, u, final)
        bad = ~torch.isfinite(g)  # a non-finite component: NaN, at once
        final = torch.where(bad, torch.full_like(final, math.nan), final)
        done = converged | hit | narrow | bad
        result.index_copy_(0, idx, final)  # overwritten until the element is done
        density.index_copy_(0, idx, dens)
        nxt = torch.where(usable, proposal, mid)
        step_old, step = step, (nxt - u)
        keep = ~done
        if not bool(keep.all()):
            keep_at = keep.nonzero()[:, 0]
            idx, row, u, lo, hi, q = (t.index_select(0, keep_at)
                                      for t in (idx, row, nxt, lo, hi, q))
            step, step_old = step.index_select(0, keep_at), step_old.index_select(0, keep_at)
        else:
            u = nxt
    return result, density


def _exact(m: Tensor, w: Tensor, k: int) -> _Evaluate:
    """Every component's error function: ``m`` (c, S) and ``w`` (c, S) or (c, 1).

    At most :data:`CHUNK_CELLS` component values per pass (a level of the chunk's rows at a
    time, or that many elements), so the work arrays stay cache-sized for any ``k``.
    """
    c, s = m.shape
    per = max(1, CHUNK_CELLS // s)

    def evaluate(u: Tensor, row: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        if row is None:  # every element: broadcast, no gather
            levels = max(1, per // c)
            parts = [_cdf_terms(u.view(k, c, 1)[j : j + levels], m, w)
                     for j in range(0, k, levels)]
        else:
            parts = [_cdf_terms(u[j : j + per, None], m.index_select(0, row[j : j + per]),
                                w.index_select(0, row[j : j + per]))
                     for j in range(0, u.shape[0], per)]
        if len(parts) == 1 and row is not None:
            return parts[0]
        cdf, dens, slope = (torch.cat([p[i].reshape(-1) for p in parts]) for i in range(3))
        return cdf, dens, slope

    return evaluate


def _series(coefficients: Tensor, rho: Tensor) -> _Evaluate:
    """The moment series of rows with one common scale ``rho`` (c,) in spread units."""
    polynomials = series_polynomials(coefficients)

    def evaluate(u: Tensor, row: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        at = cast(Tensor, row)  # always given: the series rows are never the whole chunk
        r = rho.index_select(0, at)
        cdf, dens, slope = series_cdf_terms(u / r, polynomials.index_select(0, at))
        return cdf, dens / r, slope / (r * r)

    return evaluate


def _in_spread_units(dev: Tensor, w: Tensor | None, spread: Tensor, common: Tensor,
                     rho: Tensor) -> tuple[Tensor, Tensor]:
    """Components in spread units: means (c, S) and scales (c, S), or (c, 1) without ``w``."""
    m = dev / spread[:, None]
    if w is None:
        return m, rho[:, None]
    w = w / spread[:, None]  # (not in place: w may be a view of scale)
    w[common] = rho[common, None]  # a row's values never depend on the others
    return m, w


def _solve_chunk(loc: Tensor, scale: Tensor, levels: Tensor, tol: float) -> Tensor:
    """Quantiles of one chunk: ``loc``, ``scale`` (S, c), ``levels`` (k, c); returns (k, c).

    A row whose components share one scale (a point-estimate noise network) is set up from
    the moments of its means (:mod:`varbayes.predictive.quantile_series`), and solved on the
    moment series when its remainder is far below the resolution; every other row, and every
    quantile the remainder could move, is solved on its components. Either way only the
    row's own values decide, so a row's quantile does not depend on the chunk.
    """
    big = torch.float64
    # (c, S): one row's components are contiguous (transposed before the exact widening: half
    # the bytes moved)
    comp_loc = loc.t().contiguous().to(big)
    c, k = comp_loc.shape[0], levels.shape[0]
    wide = scale.to(big)
    # Draws in runs of one scale (an ensemble): the extremes and the row-major scales from the
    # runs' heads, the same values without passes over (or a transposed copy of) every draw.
    bounds = draw_runs(wide) if wide.shape[1] else None
    heads = wide if bounds is None else wide[bounds[:-1]]
    s_lo, s_hi = heads.amin(0), heads.amax(0)
    common = (s_lo == s_hi) & (s_lo > 0) & torch.isfinite(s_lo)
    centre = comp_loc.mean(1)
    dev = comp_loc - centre[:, None]  # (not in place: the copy may be a view of loc)
    zq = torch.special.ndtri(levels)  # (k, c)
    # One common scale: moments of a = dev / sigma, the start and the bracket from them.
    coefficients = dev.new_zeros((c, ORDER))
    bound = torch.full_like(s_lo, math.inf)
    sigma = torch.where(common, s_lo, torch.ones_like(s_lo))
    if bool(common.all()):
        coefficients, bound = series_coefficients(dev / sigma[:, None])
    elif bool(common.any()):
        rows = common.nonzero()[:, 0]
        coefficients[rows], bound[rows] = series_coefficients(dev[rows] / sigma[rows, None])
    rho = (1 + 2 * coefficients[:, 2]).rsqrt()  # sigma / spread
    skew = 6 * coefficients[:, 3] * rho**3
    kurt = (24 * coefficients[:, 4] + 12 * coefficients[:, 2] + 3) * rho**4 - 3
    spread = sigma / rho
    m: Tensor | None = None
    w: Tensor | None = None
    written: list[Tensor] = []

    def scales() -> Tensor:
        """The scales row-major (c, S), written once, when a row first needs every draw's."""
        if not written:  # from the runs' heads where there are runs: no transposed copy
            written.append(wide.t().contiguous() if bounds is None else row_major(heads, bounds))
        return written[0]

    several = not bool(common.all())
    groups: list[tuple[Tensor, list[int], Tensor]] = []
    if several:  # rows of several scales: everything from their components
        # Rows of a few scales, each shared by a run of draws (an ensemble): the moment series
        # run by run, started and bracketed from the runs' moments.
        other = ~common
        usable = other & (s_lo > 0) & torch.isfinite(s_hi)
        groups = scale_runs_of(scales, usable, heads, bounds)
        # Each row's mean squared scale: one term per run of its own (the same bits whichever
        # search found the runs), over every draw only for rows without a few runs.
        square = torch.zeros_like(spread)
        alone = other.clone()
        for rows, cuts, firsts in groups:
            square[rows] = run_mean(firsts.index_select(0, rows).square(), cuts)
            alone[rows] = False
        if bool(alone.any()):
            at = alone.nonzero()[:, 0]
            square[at] = scales().index_select(0, at).square().mean(1)
        spread = torch.where(common, spread, (square + (dev * dev).mean(1)).sqrt())
    spread = spread.clamp_min(torch.finfo(big).tiny)
    m_lo, m_hi = dev.amin(1) / spread, dev.amax(1) / spread
    u = _cornish_fisher(zq, skew, kurt)
    # The root lies between the smallest and the largest component quantile; bound those by
    # the extreme means and scales (O(S) per row, not per level).
    w_lo, w_hi = rho.clone(), rho.clone()
    on_runs: list[tuple[Tensor, RunSeries]] = []
    if several:
        for rows, cuts, firsts in groups:
            runs = run_series(comp_loc, firsts, centre, spread, rows, cuts)
            u[:, rows] = _cornish_fisher(zq[:, rows], runs.skew, runs.kurt)
            w_lo[rows], w_hi[rows] = runs.scale_min, runs.scale_max
            other[rows] = False
            on_runs.append((rows, runs))
        if bool(other.any()):
            m, w = _in_spread_units(dev, scales(), spread, common, rho)
            mo, wo = (m, w) if bool(other.all()) else (m[other], w[other])
            w_lo[other], w_hi[other] = wo.amin(1), wo.amax(1)
            u[:, other] = _start(mo, wo, zq[:, other])
    neg = zq < 0
    lo = (m_lo + zq * torch.where(neg, w_hi, w_lo)).reshape(-1)
    hi = (m_hi + zq * torch.where(neg, w_lo, w_hi)).reshape(-1)
    u = torch.minimum(torch.maximum(u.reshape(-1), lo), hi)
    q = levels.reshape(-1)
    row = torch.arange(c, device=loc.device).repeat(k)  # element -> row of the chunk
    result = torch.empty_like(u)
    exact = torch.ones_like(u, dtype=torch.bool)

    def on_series(use: Tensor, bound: Tensor, evaluate: _Evaluate) -> None:
        """Solve the elements of rows ``use`` on a series with remainder ``bound`` (c,)."""
        use = use & (bound <= tol * _SERIES_BOUND_PER_TOL)
        if not bool(use.any()):
            return
        at = use.index_select(0, row).nonzero()[:, 0]
        got, dens = _halley(u[at], lo[at], hi[at], q[at], row[at], evaluate, tol, whole=False)
        # Keep a quantile only where the remainder moves it by far less than the resolution;
        # the others are solved on the components.
        kept = bound.index_select(0, row[at]) <= dens * tol * (1 + got.abs()) / 16
        result[at[kept]] = got[kept]
        exact[at[kept]] = False

    on_series(common, bound, _series(coefficients, rho))
    for rows, runs in on_runs:
        bound_at = torch.full_like(bound, math.inf)
        bound_at[rows] = runs.bound
        on_series(torch.isfinite(bound_at), bound_at, runs.evaluate)
    if bool(exact.any()):
        if m is None or w is None:
            m, w = _in_spread_units(dev, scales() if several else None, spread, common, rho)
        whole = bool(exact.all())
        at = exact.nonzero()[:, 0]
        result[at], _ = _halley(u[at], lo[at], hi[at], q[at], row[at], _exact(m, w, k), tol,
                                whole=whole)
    out = centre.repeat(k) + spread.repeat(k) * result
    return out.reshape(k, c)


def mixture_quantile(
    loc: Tensor, scale: Tensor, levels: Tensor, *, tol: float, threads: int | None = None,
    chunk_cells: int = CHUNK_CELLS,
) -> Tensor:
    """Quantiles of the equal-weight mixtures of ``N(loc[s, i], scale[s, i]^2)``, ``s = 1..S``.

    Parameters
    ----------
    loc, scale : Tensor of shape (S, n)
        Component means and (positive) standard deviations; computed in float64.
    levels : Tensor of shape (k,) or (k, n)
        Probabilities in (0, 1): the same for every row, or one per element.
    tol : float
        Relative resolution in units of each row's spread (``4 eps`` of the working dtype).
    threads : int or None
        Threads sharing the chunks (CPU only); default
        :func:`varbayes._threads.available_threads`. Each runs single-threaded tensor
        operations, so a descheduled thread never stalls the others.
    chunk_cells : int, default=CHUNK_CELLS
        Component values (rows x S) per chunk.

    Returns
    -------
    Tensor of shape (k, n), float64.
    """
    s, n = loc.shape
    lv = levels.to(device=loc.device, dtype=torch.float64)
    lv = lv[:, None].expand(-1, n) if lv.dim() == 1 else lv
    k = lv.shape[0]
    if s == 1:
        return cast(Tensor, loc.double() + scale.double() * torch.special.ndtri(lv))
    workers = available_threads() if threads is None else int(threads)
    workers = max(1, min(workers, os.cpu_count() or 1))
    # Cache-sized chunks, and at least one per thread.
    rows = max(1, min(int(chunk_cells) // s, -(-n // workers)))
    starts = list(range(0, n, rows))
    out = torch.empty((k, n), dtype=torch.float64, device=loc.device)

    def work(start: int) -> None:
        stop = min(n, start + rows)
        out[:, start:stop] = _solve_chunk(loc[:, start:stop], scale[:, start:stop],
                                          lv[:, start:stop].contiguous(), tol)

    if loc.device.type != "cpu":
        for start in starts:
            work(start)
        return _monotone(out, lv)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # coarse-grained: each thread runs its chunks alone
    try:
        if workers == 1 or len(starts) == 1:
            for start in starts:
                work(start)
        else:
            list(_pool(workers).map(work, starts))
    finally:
        torch.set_num_threads(previous)
    return _monotone(out, lv)


def _monotone(values: Tensor, levels: Tensor) -> Tensor:
    """``values`` (k, n) made non-decreasing in the level: a running maximum in level order.

    Each value is within the resolution of its true quantile, and the true quantiles are
    ordered, so the running maximum is within it too. Levels that share one narrow component
    (a spike thinner than the resolution) may otherwise come out in either order.
    """
    if values.shape[0] == 1:
        return values
    order = levels.argsort(0)
    return values.scatter(0, order, values.gather(0, order).cummax(0).values)


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    """A pool of ``workers`` threads, made once per process (streamed chunks reuse it).

    Keyed by the process id too: a forked child has none of its parent's threads.
    """
    key = (os.getpid(), workers)
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = ThreadPoolExecutor(max_workers=workers,
                                                thread_name_prefix="varbayes-quantile")
    return pool
