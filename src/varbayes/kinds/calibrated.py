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

from varbayes._validation import check_scalar, check_X_y
from varbayes.calibration import CalibrationMap, check_method, fit_calibration
from varbayes.kinds.stopping import MIN_VALIDATION

__all__ = ["calibrate", "calibration_rows"]


def calibration_rows(n: int, fraction: float, generator: torch.Generator | None
                     ) -> tuple[Tensor, Tensor]:
    """``(training rows, calibration rows)`` of ``n`` rows, chosen at random."""
    fraction = float(check_scalar(fraction, "validation_fraction", low=0.0, high=1.0,
                                  low_inclusive=False, high_inclusive=False))
    n_cal = max(MIN_VALIDATION, round(fraction * n))
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
    if method is None:
        fitted.calibration = None
        return None
    xa, ya = check_X_y(x, y, names=("x", "y"))
    pred = fitted.predict(xa, num_samples, generator=generator)
    mapping = fit_calibration(method, pred, np.asarray(ya, dtype=np.float64))
    fitted.calibration = mapping
    fitted.fit_info = {**fitted.fit_info, "calibration": {"method": method, "n": len(ya)}}
    return mapping
