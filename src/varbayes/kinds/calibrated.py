"""Calibration of a fitted model: on a held-out part of the training rows, or on given rows.

:func:`calibration_rows` chooses the held-out part for ``fit(..., calibration=...)``: a random
``fraction`` of the rows (at least :data:`~varbayes.kinds.stopping.MIN_VALIDATION`), kept apart
from training *and* from the early-stopping validation part, so that the conformal guarantee
holds exactly (the held-out rows are exchangeable with new rows; they chose nothing).
:func:`calibrate` fits a map of :mod:`varbayes.calibration` on rows and attaches it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from varbayes._validation import check_count, check_scalar, check_X_y
from varbayes.calibration import CalibrationMap, check_method, coverage_sd, fit_calibration
from varbayes.kinds.members import SPREAD_LEVEL
from varbayes.kinds.stopping import MIN_ROWS, MIN_VALIDATION

__all__ = ["DEFAULT_CONFORMAL_STEP", "calibrate", "calibration_rows"]

#: The calibration part has ``n`` rows with ``n + 1`` a multiple of this, where the rows allow:
#: then ``(n + 1) * 0.9`` is an integer and split conformal's expected 90 % coverage,
#: ``ceil((n + 1) 0.9) / (n + 1)``, is exactly 0.9 (28 rows: 27 / 29 = 0.931). The step
#: when :func:`calibration_rows`' ``conformal_step`` is None; the benchmarks pass others
#: (1: no rounding).
DEFAULT_CONFORMAL_STEP = 10


def calibration_rows(n: int, fraction: float, generator: torch.Generator | None,
                     conformal_step: int | None = None) -> tuple[Tensor, Tensor]:
    """``(training rows, calibration rows)`` of ``n`` rows, chosen at random.

    The calibration part has ``round(fraction * n)`` rows (at least
    :data:`~varbayes.kinds.stopping.MIN_VALIDATION`), rounded up to the next count ``m`` with
    ``m + 1`` a multiple of ``conformal_step`` (a positive int; None:
    :data:`DEFAULT_CONFORMAL_STEP`, at most 9 rows more; 1: no rounding) where that leaves
    :data:`MIN_VALIDATION` rows to train on and does not take them below
    :data:`~varbayes.kinds.stopping.MIN_ROWS` (below it training has no validation part: the
    rounding must not change how the model trains). The count depends on ``n`` and
    ``fraction`` alone, never on the data, so the conformal guarantee (coverage >= level, and
    <= level + 1 / (m + 1) without ties) holds as for any fixed ``m``; the rounding removes the
    excess of the 90 % interval's expected coverage over 0.9, up to ``0.9 / (m + 1)``
    (``docs/calibration.md``).
    """
    fraction = float(check_scalar(fraction, "validation_fraction", low=0.0, high=1.0,
                                  low_inclusive=False, high_inclusive=False))
    step = (DEFAULT_CONFORMAL_STEP if conformal_step is None
            else check_count(conformal_step, "conformal_step"))
    n_cal = max(MIN_VALIDATION, round(fraction * n))
    rounded = n_cal + (-(n_cal + 1)) % step
    if n - rounded >= MIN_VALIDATION and (n - rounded >= MIN_ROWS) == (n - n_cal >= MIN_ROWS):
        n_cal = rounded
    if n - n_cal < MIN_VALIDATION:
        raise ValueError(
            f"calibration needs a held-out part of at least {MIN_VALIDATION} rows and as many "
            f"to train on; {n} rows are too few: fit without calibration and call calibrate() "
            "on rows of your own"
        )
    order = torch.randperm(n, generator=generator)
    return order[n_cal:].sort().values, order[:n_cal].sort().values


def calibrate(fitted: Any, x: Any, y: Any, method: str | None, *, num_samples: int = 200,
              generator: torch.Generator | None = None) -> CalibrationMap | None:
    """Fit the map ``method`` on rows ``(x, y)`` not used in training; attach it to ``fitted``.

    ``method=None`` removes the map. Returns the map. The rows must be exchangeable with the
    data the model will predict for the conformal guarantee to hold.
    """
    method = check_method(method, allow_none=True)
    if method is None:  # the coverage rests on the spread factor's rows again, if it has them
        fitted.calibration = None
        info = {k: v for k, v in fitted.fit_info.items() if k not in ("calibration", "coverage_sd")}
        if "factor_rows" in info:
            info["coverage_sd"] = coverage_sd(int(info["factor_rows"]), SPREAD_LEVEL)
        fitted.fit_info = info
        return None
    xa, ya = check_X_y(x, y, names=("x", "y"))
    pred = fitted.predict(xa, num_samples, generator=generator)
    mapping = fit_calibration(method, pred, np.asarray(ya, dtype=np.float64))
    fitted.calibration = mapping
    fitted.fit_info = {**fitted.fit_info, "calibration": {"method": method, "n": len(ya)},
                       "coverage_sd": coverage_sd(len(ya))}  # the map's rows, not the factor's
    return mapping
