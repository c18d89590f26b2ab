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
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import torch
from torch import Tensor

from varbayes._threads import available_threads

__all__ = ["CHUNK_CELLS", "MAX_ITERATIONS", "mixture_quantile"]

#: Component values (levels x rows x components) one chunk works on: 4 MB per float64 array.
CHUNK_CELLS = 2**19
#: Evaluations of the CDF per element at most (bisection needs about 60 from the widest bracket).
MAX_ITERATIONS = 200

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_EPS64 = torch.finfo(torch.float64).eps
#: Rounding noise of a mixture CDF value, in probability: a step within it is converged.
_CDF_NOISE = 8 * _EPS64
#: Largest step (in spread units) that rounding noise in the CDF may excuse.
_NOISE_CAP = 1e-11


def _ndtr(z: Tensor) -> Tensor:
    return cast(Tensor, torch.special.ndtr(z))  # torch.special is untyped


def _start(m: Tensor, w: Tensor, z: Tensor) -> Tensor:
    """Cornish-Fisher start for standardised mixtures (mean 0, variance 1); shape (k, c).

    ``m``, ``w``: (c, S) component means and scales in spread units; ``z``: (k, c) normal
    quantiles of the levels. Where the correction exceeds 0.5 the Gaussian start ``z`` is kept.
    """
    w2 = w * w
    m2 = m * m
    skew = (m * (m2 + 3 * w2)).mean(1)
    kurt = (m2 * (m2 + 6 * w2) + 3 * w2 * w2).mean(1) - 3
    z2 = z * z
    corr = ((z2 - 1) * skew / 6 + (z2 - 3) * z * kurt / 24
            - (2 * z2 - 5) * z * skew * skew / 36)
    good = torch.isfinite(corr) & (corr.abs() <= 0.5)
    return z + torch.where(good, corr, torch.zeros_like(corr))


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


def _solve_chunk(loc: Tensor, scale: Tensor, levels: Tensor, tol: float) -> Tensor:
    """Quantiles of one chunk: ``loc``, ``scale`` (S, c), ``levels`` (k, c); returns (k, c)."""
    big = torch.float64
    comp_loc = loc.to(big).t().contiguous()  # (c, S): one row's components are contiguous
    comp_scale = scale.to(big).t().contiguous()
    c = comp_loc.shape[0]
    k = levels.shape[0]
    centre = comp_loc.mean(1)
    dev = comp_loc - centre[:, None]
    spread = ((comp_scale * comp_scale).mean(1) + (dev * dev).mean(1)).sqrt()
    spread = spread.clamp_min(torch.finfo(big).tiny)
    m = dev / spread[:, None]
    w = comp_scale / spread[:, None]
    zq = torch.special.ndtri(levels)  # (k, c)
    # The root lies between the smallest and the largest component quantile; bound those by
    # the extreme means and scales (O(S) per row, not per level).
    m_lo, m_hi = m.min(1).values, m.max(1).values
    w_lo, w_hi = w.min(1).values, w.max(1).values
    neg = zq < 0
    lo = (m_lo + zq * torch.where(neg, w_hi, w_lo)).reshape(-1)
    hi = (m_hi + zq * torch.where(neg, w_lo, w_hi)).reshape(-1)
    u = _start(m, w, zq).reshape(-1)
    u = torch.minimum(torch.maximum(u, lo), hi)
    if bool((w_lo == w_hi).all()):
        w = w[:, :1]  # one scale per row (a point-estimate noise network): (c, 1), same values
    q = levels.reshape(-1)
    row = torch.arange(c, device=loc.device).repeat(k)  # element -> row of the chunk
    result = torch.empty_like(u)
    idx = torch.arange(k * c, device=loc.device)  # the elements still iterating
    step = hi - lo
    step_old = step.clone()
    for _ in range(MAX_ITERATIONS):
        if idx.numel() == 0:
            break
        if idx.numel() == k * c:  # every element: broadcast, no gather
            cdf, dens, slope = (t.reshape(-1) for t in _cdf_terms(u.view(k, c, 1), m, w))
        else:
            cdf, dens, slope = _cdf_terms(u[:, None], m.index_select(0, row),
                                          w.index_select(0, row))
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
            & (curve.abs() <= 0.1) & torch.isfinite(proposal)
        mid = 0.5 * (lo + hi)
        narrow = (hi - lo) <= tol * (1 + mid.abs())
        usable = torch.isfinite(proposal) & (proposal > lo) & (proposal < hi) & (g != 0) \
            & (halley.abs() <= 0.5 * step_old.abs())
        final = torch.where(converged, torch.minimum(torch.maximum(proposal, lo), hi), mid)
        bad = ~torch.isfinite(g)  # a non-finite component: NaN, at once
        final = torch.where(bad, torch.full_like(final, math.nan), final)
        done = converged | narrow | bad
        result.index_copy_(0, idx, final)  # overwritten until the element is done
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
        Component values (k x rows x S) per chunk.

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
    rows = max(1, min(int(chunk_cells) // (s * k), -(-n // workers)))
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
