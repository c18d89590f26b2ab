"""From a prediction to the per-row columns and scores that every front door reports.

The CLI's ``predict``, the estimator and the demo all ask :func:`prediction_columns`, so the
same prediction gives the same numbers everywhere and no ``inf`` / ``nan`` is ever written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from varbayes.predictive.mixture import Prediction

__all__ = ["prediction_columns"]


def _first_nonfinite(columns: dict[str, Tensor], row_names: Sequence[str] | None) -> None:
    """Raise ``ValueError`` naming the first row (and its column) that is not finite."""
    bad = torch.zeros_like(next(iter(columns.values())), dtype=torch.bool)
    for values in columns.values():
        bad |= ~torch.isfinite(values)
    if not bool(bad.any()):
        return
    i = int(torch.nonzero(bad)[0])
    name, value = next((k, float(v[i])) for k, v in columns.items() if not math.isfinite(v[i]))
    where = row_names[i] if row_names is not None else f"row {i}"
    raise ValueError(
        f"{where}: the prediction is not finite ({name} = {value}), refusing to write it "
        f"({int(bad.sum())} such row(s)); the input is far outside the training data or the "
        "model's weights are out of range"
    )


@torch.no_grad()
def prediction_columns(
    pred: Prediction, level: float = 0.9, *, epistemic: bool = True,
    row_names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Per-row summaries of ``pred`` as float64 arrays, refusing non-finite values.

    The summaries are computed in float64 (a std of 1e30 has a variance of 1e60, beyond
    float32), and every value is checked before anything is returned, so no ``inf`` / ``nan``
    reaches a results file.

    Parameters
    ----------
    pred : Prediction
        ``n`` rows, in the units to report.
    level : float in (0, 1), default=0.9
        Probability of the central interval ``lower`` .. ``upper``.
    epistemic : bool, default=True
        Include ``epistemic_std``.
    row_names : sequence of str or None
        How to name row ``i`` in the error (e.g. ``"data.csv, row 7"``); default ``"row i"``.

    Returns
    -------
    dict of str to ndarray of shape (n,)
        ``mean``, ``std``, ``lower``, ``median``, ``upper``, ``aleatoric_std`` and, with
        ``epistemic``, ``epistemic_std``.

    Raises
    ------
    ValueError
        Naming the first row whose prediction (a component or a summary) is NaN or infinite.
    """
    wide = Prediction(pred.loc.double(), pred.scale.double(),
                      pred.working_dtype or pred.loc.dtype)
    mean, std = wide.mean, wide.std
    _first_nonfinite({"mean": mean, "std": std}, row_names)  # before bisecting on NaN
    lower, upper = wide.interval(level)
    columns = {"mean": mean, "std": std, "lower": lower, "median": wide.quantile(0.5),
               "upper": upper, "aleatoric_std": wide.aleatoric_var.sqrt()}
    if epistemic:
        columns["epistemic_std"] = wide.epistemic_var.sqrt()
    _first_nonfinite(columns, row_names)
    return {k: v.detach().cpu().numpy() for k, v in columns.items()}
