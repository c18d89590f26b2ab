"""Recalibration and conformal prediction on held-out rows: ``scale``, ``isotonic``, ``conformal``.

>>> import torch
>>> from varbayes.predictive import Prediction
>>> pred = Prediction(torch.zeros(1, 500), torch.full((1, 500), 0.5))
>>> y = torch.randn(500, generator=torch.Generator().manual_seed(0))
>>> round(fit_calibration("scale", pred, y).factor, 1)
2.0
"""

from __future__ import annotations

from typing import Any

from varbayes.calibration.distribution import CalibratedPrediction
from varbayes.calibration.maps import (
    METHODS,
    CalibrationMap,
    ConformalMap,
    ConformalPrediction,
    IsotonicMap,
    IsotonicPrediction,
    ScaleMap,
    map_from_json,
    stretch,
)
from varbayes.calibration.report import calibration_report, coverage_sd, pit_values
from varbayes.calibration.temperature import (
    TEMPERATURE_PRIOR_SD,
    TemperedClassPrediction,
    fit_temperature,
)
from varbayes.predictive import Prediction

__all__ = [
    "METHODS",
    "TEMPERATURE_PRIOR_SD",
    "CalibratedPrediction",
    "CalibrationMap",
    "ConformalMap",
    "ConformalPrediction",
    "IsotonicMap",
    "IsotonicPrediction",
    "ScaleMap",
    "TemperedClassPrediction",
    "calibration_report",
    "check_method",
    "coverage_sd",
    "fit_calibration",
    "fit_temperature",
    "map_from_json",
    "pit_values",
    "stretch",
]


def check_method(method: Any, allow_none: bool = False) -> str | None:
    """``method`` if it names a calibration method (or is None and ``allow_none``)."""
    if method is None and allow_none:
        return None
    if not isinstance(method, str) or method not in METHODS:
        allowed = ([None] if allow_none else []) + list(METHODS)
        raise ValueError(f"calibration method must be one of {allowed}, got {method!r}")
    return method


def fit_calibration(method: str, prediction: Prediction, y: Any) -> CalibrationMap:
    """Fit the map ``method`` on held-out rows: their ``prediction`` and targets ``y``."""
    return METHODS[str(check_method(method))].fit(prediction, y)
