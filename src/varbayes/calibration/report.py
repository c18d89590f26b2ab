"""What ``varbayes evaluate --json`` and ``--plot`` report about calibration.

Works on a :class:`~varbayes.predictive.Prediction` or any calibrated predictive (anything with
``cdf`` and ``interval``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["LEVELS", "calibration_report", "coverage_sd", "pit_values"]

#: Interval levels of the report.
LEVELS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.99)


def coverage_sd(rows: int, level: float = 0.9) -> float:
    """How far one fit's coverage of new rows may land from ``level``: its standard deviation.

    An interval set on ``rows`` exchangeable held-out rows so that it covers a new row with
    probability ``level`` (the ``k``-th smallest of the ``rows`` scores, ``k = level (rows +
    1)``, as split conformal and :func:`varbayes.kinds.members.spread_factor` choose it)
    covers a ``Beta(k, rows + 1 - k)`` share of all new rows: mean ``level``, standard
    deviation ``sqrt(level (1 - level) / (rows + 2))`` (0.064 for 20 rows, 0.021 for 200). The
    mean is right whatever ``rows``; one fit scatters around it by this much
    (``docs/calibration.md``).
    """
    if isinstance(rows, bool) or int(rows) != rows or rows < 1:
        raise ValueError(f"rows must be a positive integer, got {rows!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    return math.sqrt(level * (1.0 - level) / (int(rows) + 2))


def _y(y: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(y, dtype=np.float64)).reshape(-1)


def _wide(pred: Any) -> Any:
    from varbayes.predictive import Prediction

    if isinstance(pred, Prediction):
        return Prediction(pred.loc.double(), pred.scale.double(), pred.working_dtype)
    return pred


def pit_values(y: Any, pred: Any) -> np.ndarray:
    """The probability integral transform ``F_i(y_i)`` of every row (uniform if calibrated)."""
    pit: np.ndarray = _wide(pred).cdf(_y(y)).numpy()
    return pit


def calibration_report(y: Any, pred: Any, levels: Sequence[float] = LEVELS
                       ) -> dict[str, float | None]:
    """Coverage and mean width of the central interval at each of ``levels``.

    Keys ``coverage_<pct>`` and ``interval_width_<pct>`` (``pct`` as in
    :func:`varbayes.metrics.evaluate`), and ``mean_interval_width`` (over the levels). A level
    that a conformal map cannot serve (too few calibration rows) reports ``None``.
    """
    yt, wide = _y(y), _wide(pred)
    out: dict[str, float | None] = {}
    widths = []
    for level in levels:
        pct = f"{100 * level:g}".replace(".", "_")
        lo, hi = wide.interval(level)
        if not bool(torch.isfinite(lo).all() & torch.isfinite(hi).all()):
            out[f"coverage_{pct}"] = out[f"interval_width_{pct}"] = None
            continue
        out[f"coverage_{pct}"] = float(((yt >= lo) & (yt <= hi)).double().mean())
        width = float((hi - lo).mean())
        out[f"interval_width_{pct}"] = width
        widths.append(width)
    out["mean_interval_width"] = float(np.mean(widths)) if widths else None
    return out
