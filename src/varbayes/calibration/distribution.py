"""Calibrated predictive distributions: the base mixture seen through a calibration map.

``scale`` keeps the predictive a :class:`~varbayes.predictive.Prediction` (every component is
stretched about the mean, so it is still a Gaussian mixture). ``isotonic`` and ``conformal``
give a :class:`CalibratedPrediction`: the same methods as a ``Prediction`` (``mean``, ``std``,
``var``, ``cdf``, ``quantile``, ``interval``, ``sample``, ``log_prob`` where a density exists),
computed from the base mixture and the map. See ``docs/calibration.md`` for what each method
guarantees.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from varbayes.predictive import Prediction
from varbayes.predictive.moments import central_interval
from varbayes.predictive.quantile import mixture_quantile

__all__ = ["CalibratedPrediction", "as_levels", "elementwise_quantile", "interp"]


def interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation of the points ``(xp, fp)`` at ``x`` (``np.interp``)."""
    xp, fp = xp.to(x), fp.to(x)
    i = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.numel() - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    t = ((x - x0) / (x1 - x0).clamp_min(1e-300)).clamp(0.0, 1.0)
    return f0 + t * (f1 - f0)


def elementwise_quantile(pred: Prediction, p: Tensor) -> Tensor:
    """Quantiles of ``pred`` at per-element levels ``p`` of shape (k, n), to float64 resolution."""
    return mixture_quantile(pred.loc, pred.scale, p.double().clamp(1e-12, 1 - 1e-12),
                            tol=4 * torch.finfo(torch.float64).eps)


class CalibratedPrediction(ABC):
    """A predictive distribution defined by a base :class:`Prediction` and a calibration map.

    Subclasses define :meth:`cdf`, :meth:`quantile` and :meth:`sample`; the summaries follow.

    Attributes
    ----------
    base : Prediction
        The model's own predictive (data units).
    """

    #: Quantile grid of :attr:`mean` and :attr:`std` for maps with no closed form.
    GRID = 64

    def __init__(self, base: Prediction) -> None:
        self.base = base

    @property
    def num_samples(self) -> int:
        """Components of the base mixture."""
        return self.base.num_samples

    @property
    def loc(self) -> Tensor:
        """Component means of the base mixture (for code that only needs shapes and devices)."""
        return self.base.loc

    @abstractmethod
    def cdf(self, y: Tensor) -> Tensor:
        """Calibrated CDF at ``y`` of shape (n,) (or broadcastable to (k, n))."""

    @abstractmethod
    def quantile(self, q: float | Tensor) -> Tensor:
        """Calibrated quantiles: shape (n,) for a float ``q``, else (k, n)."""

    @abstractmethod
    def sample(self, num: int = 1, *, generator: torch.Generator | None = None) -> Tensor:
        """``num`` draws of ``y`` per input, shape (num, n)."""

    def log_prob(self, y: Tensor) -> Tensor:
        """Calibrated log density; ``NotImplementedError`` where the map defines none."""
        raise NotImplementedError(f"{type(self).__name__} defines no density")

    def interval(self, level: float = 0.9) -> tuple[Tensor, Tensor]:
        """Central interval of probability ``level``."""
        return central_interval(self.quantile, level)

    def _grid(self) -> Tensor:
        u = (torch.arange(self.GRID, dtype=torch.float64) + 0.5) / self.GRID
        return self.quantile(u)

    @property
    def mean(self) -> Tensor:
        """Mean of the calibrated distribution (shape (n,))."""
        return self._grid().mean(0)

    @property
    def var(self) -> Tensor:
        """Variance of the calibrated distribution (shape (n,))."""
        return self._grid().var(0, correction=0)

    @property
    def std(self) -> Tensor:
        """Standard deviation (shape (n,))."""
        return self.var.sqrt()

    def _ratio(self) -> Tensor:
        return self.var / self.base.var.clamp_min(torch.finfo(torch.float64).tiny)

    @property
    def aleatoric_var(self) -> Tensor:
        """The base's aleatoric variance, rescaled by the map's change of the total variance."""
        return self.base.aleatoric_var * self._ratio()

    @property
    def epistemic_var(self) -> Tensor:
        """The base's epistemic variance, rescaled like :attr:`aleatoric_var`."""
        return self.base.epistemic_var * self._ratio()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.base.loc.shape[1]}, S={self.num_samples})"


def as_levels(q: float | Tensor) -> tuple[Tensor, bool]:
    """Quantile levels as a float64 vector, and whether ``q`` was a scalar."""
    qt = torch.as_tensor(q, dtype=torch.float64)
    scalar = qt.dim() == 0
    qt = qt.reshape(-1)
    if not bool(((qt > 0) & (qt < 1)).all()):
        raise ValueError(f"quantile levels must lie in (0, 1), got {qt.tolist()}")
    return qt, scalar
