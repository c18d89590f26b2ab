"""The mixture-quantile bisection varbayes used before issue 12 (tests only: the reference)."""

from __future__ import annotations

import torch
from torch import Tensor


def bisection_quantile(loc: Tensor, scale: Tensor, q: Tensor,
                       working_dtype: torch.dtype | None = None) -> Tensor:
    """Quantiles (k, n) of the mixtures ``loc``, ``scale`` (S, n) at levels ``q`` (k,)."""
    qt = q.to(torch.float64).reshape(-1)
    loc, scale = loc.double(), scale.double()
    if loc.shape[0] == 1:
        return loc[0] + scale[0] * torch.special.ndtri(qt)[:, None]
    centre = loc.mean(0)
    spread = ((scale * scale).mean(0) + loc.var(0, correction=0)).sqrt()
    spread = spread.clamp_min(torch.finfo(torch.float64).tiny)
    loc, scale = (loc - centre) / spread, scale / spread
    zq = torch.special.ndtri(qt)[:, None, None]
    comp_q = loc + scale * zq
    lo, hi = comp_q.min(1).values, comp_q.max(1).values
    target = qt[:, None]
    tol = 4 * torch.finfo(working_dtype or torch.float64).eps
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        active = (hi - lo) > tol * (1 + mid.abs())
        if not bool(active.any()):
            break
        below = torch.special.ndtr((mid.unsqueeze(1) - loc) / scale).mean(1) < target
        lo = torch.where(active & below, mid, lo)
        hi = torch.where(active & ~below, mid, hi)
    return centre + spread * (0.5 * (lo + hi))
