"""The three calibration maps: ``scale``, ``isotonic`` and ``conformal``.

Each map is fitted on held-out rows (``fit(prediction, y)``), applied to any later prediction of
the same model (``apply(prediction)``), and saved as a small JSON object (``to_json`` /
:func:`map_from_json`).

============  =======================================================================
``scale``     one factor ``s`` on the predictive spread (every component's mean is moved
              ``s`` times further from the mixture mean and its std multiplied by ``s``),
              chosen by the NLL of the held-out rows; the result is still a mixture.
``isotonic``  Kuleshov et al. (2018): an increasing map ``R`` of the PIT ``F(y)`` fitted
              by isotonic regression to its empirical CDF; the calibrated CDF is
              ``R(F(y))``.
``conformal`` split conformal prediction with the score ``|y - mean| / std``; the
              interval of level ``l`` is ``mean +- q_l * std`` with ``q_l`` the
              ``ceil((n + 1) l)``-th smallest held-out score.
============  =======================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from varbayes.calibration.distribution import (
    CalibratedPrediction,
    as_levels,
    elementwise_quantile,
    interp,
)
from varbayes.predictive import Prediction

__all__ = [
    "METHODS",
    "ConformalMap",
    "ConformalPrediction",
    "IsotonicMap",
    "IsotonicPrediction",
    "ScaleMap",
    "map_from_json",
    "stretch",
]

#: Share of the identity mixed into the isotonic map, so it is strictly increasing (a density
#: exists everywhere and every quantile is unique).
ISOTONIC_IDENTITY = 1e-3


def _wide(pred: Prediction) -> Prediction:
    return Prediction(pred.loc.double(), pred.scale.double(), pred.working_dtype)


def _vector(y: Any, n: int) -> Tensor:
    yt = torch.as_tensor(np.asarray(y, dtype=np.float64)).reshape(-1)
    if yt.numel() != n:
        raise ValueError(f"y has {yt.numel()} values for a prediction of {n} rows")
    if not bool(torch.isfinite(yt).all()):
        raise ValueError("y must be finite")
    return yt


def stretch(pred: Prediction, factor: float) -> Prediction:
    """``pred`` with every component ``factor`` times further from the mean and wider."""
    mean = pred.loc.mean(0, keepdim=True)
    return Prediction(mean + factor * (pred.loc - mean), factor * pred.scale, pred.working_dtype)


@dataclass(frozen=True)
class ScaleMap:
    """Multiply the predictive spread (both parts of the variance split) by ``factor``."""

    factor: float
    n: int
    method = "scale"

    @classmethod
    def fit(cls, pred: Prediction, y: Any) -> ScaleMap:
        """The factor in [e^-6, e^6] minimising the mean NLL of ``y`` (golden-section search)."""
        from scipy.optimize import minimize_scalar  # type: ignore[import-untyped]  # no stubs

        wide = _wide(pred)
        yt = _vector(y, wide.loc.shape[1])

        def nll(log_s: float) -> float:
            value = -float(stretch(wide, math.exp(log_s)).log_prob(yt).mean())
            return value if math.isfinite(value) else 1e300

        res = minimize_scalar(nll, bounds=(-6.0, 6.0), method="bounded",
                              options={"xatol": 1e-4})
        return cls(float(math.exp(res.x)), int(yt.numel()))

    def apply(self, pred: Prediction) -> Prediction:
        """The rescaled mixture (a :class:`Prediction`)."""
        return stretch(_wide(pred), self.factor)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {"method": self.method, "factor": self.factor, "n": self.n}


class IsotonicPrediction(CalibratedPrediction):
    """The base mixture with its CDF composed with an increasing map ``R``: ``R(F(y))``."""

    def __init__(self, base: Prediction, knots_p: Tensor, knots_r: Tensor) -> None:
        super().__init__(_wide(base))
        self.knots_p, self.knots_r = knots_p, knots_r

    def cdf(self, y: Tensor) -> Tensor:  # noqa: D102
        return interp(self.base.cdf(y), self.knots_p, self.knots_r)

    def _inverse(self, u: Tensor) -> Tensor:
        return interp(u, self.knots_r, self.knots_p).clamp(1e-12, 1 - 1e-12)

    def quantile(self, q: float | Tensor) -> Tensor:  # noqa: D102
        qt, scalar = as_levels(q)
        result = self.base.quantile(self._inverse(qt))
        return result[0] if scalar and result.dim() > 1 else result

    def log_prob(self, y: Tensor) -> Tensor:
        """``log R'(F(y)) + log f(y)``: ``R`` is piecewise linear and strictly increasing."""
        p = self.base.cdf(y).contiguous()
        i = torch.searchsorted(self.knots_p, p).clamp(1, self.knots_p.numel() - 1)
        slope = (self.knots_r[i] - self.knots_r[i - 1]) / (
            self.knots_p[i] - self.knots_p[i - 1]).clamp_min(1e-300)
        return slope.log() + self.base.log_prob(y)

    def sample(self, num: int = 1, *, generator: torch.Generator | None = None) -> Tensor:  # noqa: D102
        n = self.base.loc.shape[1]
        u = torch.rand((num, n), generator=generator, dtype=torch.float64)
        return elementwise_quantile(self.base, self._inverse(u))


@dataclass(frozen=True)
class IsotonicMap:
    """Recalibration of the PIT by isotonic regression (Kuleshov et al. 2018)."""

    knots_p: tuple[float, ...]
    knots_r: tuple[float, ...]
    n: int
    method = "isotonic"

    @classmethod
    def fit(cls, pred: Prediction, y: Any) -> IsotonicMap:
        """Fit ``R`` to the pairs (PIT_i, share of held-out PITs <= PIT_i)."""
        from sklearn.isotonic import IsotonicRegression

        wide = _wide(pred)
        pit = wide.cdf(_vector(y, wide.loc.shape[1])).numpy()
        order = np.sort(pit)
        ecdf = np.searchsorted(order, pit, side="right") / len(pit)
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(pit, ecdf)
        p = np.concatenate([[0.0], iso.X_thresholds_, [1.0]])
        r = np.concatenate([[0.0], iso.y_thresholds_, [1.0]])
        p, keep = np.unique(p, return_index=True)  # strictly increasing knots
        r = np.maximum.accumulate(r[keep])
        r = (1 - ISOTONIC_IDENTITY) * r + ISOTONIC_IDENTITY * p
        return cls(tuple(float(v) for v in p), tuple(float(v) for v in r), len(pit))

    def apply(self, pred: Prediction) -> IsotonicPrediction:
        """The recalibrated distribution."""
        return IsotonicPrediction(pred, torch.tensor(self.knots_p, dtype=torch.float64),
                                  torch.tensor(self.knots_r, dtype=torch.float64))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready description (the knots of ``R``)."""
        return {"method": self.method, "knots_p": list(self.knots_p),
                "knots_r": list(self.knots_r), "n": self.n}


class ConformalPrediction(CalibratedPrediction):
    """Split-conformal intervals ``mean +- q_l std`` around the base mixture.

    ``quantile(q)`` for ``q > 0.5`` is ``mean + q_l std`` with ``l = 2q - 1`` (mirrored below
    0.5), so central intervals are exactly the conformal ones. ``cdf`` is the conformal
    predictive distribution of the symmetric score, ``std`` is the base std times the root mean
    square held-out score, and there is no density.
    """

    def __init__(self, base: Prediction, scores: Tensor) -> None:
        super().__init__(_wide(base))
        self.scores = scores
        self.centre, self.spread = self.base.mean, self.base.std

    def radius(self, level: float | Tensor) -> Tensor:
        """``q_l``: the ``ceil((n + 1) l)``-th smallest score (``inf`` beyond the n-th)."""
        n = self.scores.numel()
        lt = torch.as_tensor(level, dtype=torch.float64)
        k = torch.ceil((n + 1) * lt - 1e-9).long()
        padded = torch.cat([self.scores, torch.tensor([math.inf], dtype=torch.float64)])
        return padded[(k - 1).clamp(0, n)]

    def quantile(self, q: float | Tensor) -> Tensor:  # noqa: D102
        qt, scalar = as_levels(q)
        sign = torch.sign(qt - 0.5)
        r = torch.where(sign == 0, torch.zeros_like(qt), self.radius((2 * qt - 1).abs()))
        result = self.centre[None] + (sign * r)[:, None] * self.spread[None]
        return result[0] if scalar else result

    def cdf(self, y: Tensor) -> Tensor:  # noqa: D102
        d = y - self.centre
        r = (d.abs() / self.spread).contiguous()
        share = torch.searchsorted(self.scores, r, right=True).double() / (self.scores.numel() + 1)
        return 0.5 + 0.5 * torch.sign(d) * share

    @property
    def mean(self) -> Tensor:  # noqa: D102
        return self.centre

    @property
    def var(self) -> Tensor:  # noqa: D102
        return self.spread.pow(2) * self.scores.pow(2).mean()

    def sample(self, num: int = 1, *, generator: torch.Generator | None = None) -> Tensor:  # noqa: D102
        n = self.centre.numel()
        pick = torch.randint(0, self.scores.numel(), (num, n), generator=generator)
        sign = torch.randint(0, 2, (num, n), generator=generator).double() * 2 - 1
        return self.centre[None] + sign * self.scores[pick] * self.spread[None]


@dataclass(frozen=True)
class ConformalMap:
    """Split conformal prediction with the score ``|y - mean| / std`` (sorted held-out scores)."""

    scores: tuple[float, ...]
    method = "conformal"

    @property
    def n(self) -> int:
        """Held-out rows."""
        return len(self.scores)

    @classmethod
    def fit(cls, pred: Prediction, y: Any) -> ConformalMap:
        """The sorted scores of the held-out rows."""
        wide = _wide(pred)
        yt = _vector(y, wide.loc.shape[1])
        scores = ((yt - wide.mean).abs() / wide.std.clamp_min(1e-300)).sort().values
        return cls(tuple(float(v) for v in scores))

    def apply(self, pred: Prediction) -> ConformalPrediction:
        """The conformal predictive."""
        return ConformalPrediction(pred, torch.tensor(self.scores, dtype=torch.float64))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready description (the sorted scores)."""
        return {"method": self.method, "scores": list(self.scores), "n": self.n}


CalibrationMap = ScaleMap | IsotonicMap | ConformalMap
#: Map class of each method name.
METHODS: dict[str, type[ScaleMap] | type[IsotonicMap] | type[ConformalMap]] = {
    "scale": ScaleMap, "isotonic": IsotonicMap, "conformal": ConformalMap}


def map_from_json(doc: Any, where: str = "calibration") -> CalibrationMap:
    """Rebuild a map from :meth:`to_json`'s object, checking every field."""
    if not isinstance(doc, dict) or doc.get("method") not in METHODS:
        raise ValueError(f"{where}: expected an object with 'method' one of {list(METHODS)}")

    def floats(key: str, low: float = -math.inf, high: float = math.inf) -> tuple[float, ...]:
        value = doc.get(key)
        if not (isinstance(value, list) and value and all(
                isinstance(v, int | float) and not isinstance(v, bool) and low <= v <= high
                for v in value)):
            raise ValueError(f"{where}: '{key}' must be a non-empty list of numbers in "
                             f"[{low}, {high}]")
        return tuple(float(v) for v in value)

    method = doc["method"]
    if method == "scale":
        factor, n = doc.get("factor"), doc.get("n")
        if (isinstance(factor, bool) or not isinstance(factor, int | float)
                or not 0 < factor < math.inf or isinstance(n, bool) or not isinstance(n, int)):
            raise ValueError(f"{where}: 'factor' must be a positive number and 'n' an integer")
        return ScaleMap(float(factor), n)
    if method == "isotonic":
        p, r = floats("knots_p", 0.0, 1.0), floats("knots_r", 0.0, 1.0)
        if len(p) != len(r) or len(p) < 2 or np.any(np.diff(p) <= 0) or np.any(np.diff(r) < 0):
            raise ValueError(f"{where}: isotonic knots must be increasing and of equal length")
        return IsotonicMap(p, r, int(doc.get("n", 0)))
    scores = floats("scores", 0.0)
    if np.any(np.diff(scores) < 0):
        raise ValueError(f"{where}: conformal scores must be sorted")
    return ConformalMap(scores)
