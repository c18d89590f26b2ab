"""The posterior predictive: drawing it, the mixture it is, and the columns it reports.

>>> import torch
>>> from varbayes.models import BayesianMLP
>>> from varbayes.predictive import predictive
>>> pred = predictive(BayesianMLP(1, (8,)), torch.zeros(3, 1), num_samples=100)
>>> pred.loc.shape, pred.mean.shape
(torch.Size([100, 3]), torch.Size([3]))
"""

from __future__ import annotations

from varbayes.predictive.classes import ClassPrediction
from varbayes.predictive.columns import prediction_columns
from varbayes.predictive.draw import (
    MAX_DRAW_BYTES,
    check_draw_budget,
    draw_bytes_per_row,
    predictive,
)
from varbayes.predictive.families import FamilyPrediction
from varbayes.predictive.family_draw import family_predictive
from varbayes.predictive.generic import MAX_CHUNK_BYTES, sample_outputs
from varbayes.predictive.mixture import Prediction

__all__ = [
    "MAX_CHUNK_BYTES",
    "MAX_DRAW_BYTES",
    "ClassPrediction",
    "FamilyPrediction",
    "Prediction",
    "check_draw_budget",
    "draw_bytes_per_row",
    "family_predictive",
    "prediction_columns",
    "predictive",
    "sample_outputs",
]
