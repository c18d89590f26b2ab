"""Scores of a classifier's predictive (:class:`~varbayes.predictive.ClassPrediction`).

With predictive class probabilities :math:`\\bar p_i` and true class indices :math:`y_i`:

* ``accuracy``: share of rows whose most probable class is :math:`y_i`.
* ``nll``: :math:`-\\frac1n \\sum_i \\log \\bar p_{i, y_i}` (nats; by logsumexp over the draws).
* ``brier``: :math:`\\frac1n \\sum_i \\sum_k (\\bar p_{ik} - 1\\{y_i = k\\})^2` (0 to 2).
* ``ece``: expected calibration error of the confidence :math:`c_i = \\max_k \\bar p_{ik}`,
  binned into :data:`ECE_BINS` equal-width bins of [0, 1] (a confidence of exactly 1 in the
  last): :math:`\\sum_b \\frac{n_b}{n} |\\mathrm{acc}_b - \\mathrm{conf}_b|`.
* ``entropy``, ``aleatoric_entropy``, ``mutual_information``: the means over rows of the
  entropy split (nats, exact over the S draws).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from varbayes.predictive.classes import ClassPrediction

__all__ = ["ECE_BINS", "accuracy", "brier_score", "evaluate_classification",
           "expected_calibration_error"]

#: Equal-width confidence bins of the ECE.
ECE_BINS = 15


def _index(y_true: Any, n: int) -> Tensor:
    y = torch.as_tensor(np.asarray(y_true)).reshape(-1).long()
    if y.shape[0] != n:
        raise ValueError(f"y_true has {y.shape[0]} values but the prediction has {n} rows")
    return y


def accuracy(y_true: Any, probs: Tensor) -> float:
    """Share of rows whose most probable class is the true class index."""
    y = _index(y_true, probs.shape[0])
    return float((probs.argmax(-1) == y).double().mean())


def brier_score(y_true: Any, probs: Tensor) -> float:
    """Multi-class Brier score: mean over rows of the squared error summed over classes."""
    y = _index(y_true, probs.shape[0])
    onehot = torch.nn.functional.one_hot(y, probs.shape[-1]).to(probs.dtype)
    return float(((probs - onehot) ** 2).sum(-1).mean())


def expected_calibration_error(y_true: Any, probs: Tensor, *, bins: int = ECE_BINS) -> float:
    """ECE of the top-class confidence over ``bins`` equal-width bins of [0, 1]."""
    y = _index(y_true, probs.shape[0])
    conf, label = probs.max(-1)
    correct = (label == y).double()
    which = (conf * bins).long().clamp(0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if bool(inside.any()):
            total += float(inside.double().mean()) * abs(
                float(correct[inside].mean()) - float(conf[inside].double().mean()))
    return total


def evaluate_classification(y_true: Any, pred: ClassPrediction) -> dict[str, float]:
    """Accuracy, NLL, Brier, ECE and the mean entropy split of ``pred`` at class indices."""
    probs = pred.probs
    y = _index(y_true, probs.shape[0])
    return {
        "accuracy": accuracy(y, probs),
        "nll": float(-pred.log_prob(y).mean()),
        "brier": brier_score(y, probs),
        "ece": expected_calibration_error(y, probs),
        "entropy": float(pred.entropy.mean()),
        "aleatoric_entropy": float(pred.aleatoric_entropy.mean()),
        "mutual_information": float(pred.mutual_information.mean()),
        "n": int(y.shape[0]),
    }
