"""From a prediction to the per-row columns and scores that every front door reports.

The CLI's ``predict``, the estimator and the demo all ask :func:`prediction_columns`, so the
same prediction gives the same numbers everywhere and no ``inf`` / ``nan`` is ever written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from varbayes._threads import intra_op_threads
from varbayes.predictive.mixture import Prediction

__all__ = ["COLUMNS", "ROW_ALIGN", "aligned_columns", "aligned_rows", "prediction_columns"]


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


#: Rows are predicted in groups of this many (:func:`aligned_rows`). torch's vectorised
#: kernels (sums over the draws, ``exp``, ``softplus``) treat the columns past the last full
#: vector of a row-wide tensor with other instructions, so without padding a row's last bits
#: depended on how many rows shared its tensor (1 ulp in float64, found on the last chunk of a
#: CSV file). With the row count a multiple of 32 every row is in the vectorised body.
ROW_ALIGN = 32

#: Every column :func:`prediction_columns` can report, in the order the CLI writes them.
COLUMNS = ("mean", "std", "lower", "median", "upper", "aleatoric_std", "epistemic_std")


@torch.no_grad()
def prediction_columns(
    pred: Prediction | Any, level: float = 0.9, *, epistemic: bool = True,
    row_names: Sequence[str] | None = None, columns: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Per-row summaries of ``pred`` as float64 arrays, refusing non-finite values.

    The summaries are computed in float64 (a std of 1e30 has a variance of 1e60, beyond
    float32), and every value is checked before anything is returned, so no ``inf`` / ``nan``
    reaches a results file or a caller. The CLI's ``predict`` and the estimator's prediction
    methods all read their numbers here.

    Parameters
    ----------
    pred : Prediction or calibrated predictive
        ``n`` rows, in the units to report (a :mod:`varbayes.calibration` predictive has the
        same summaries).
    level : float in (0, 1), default=0.9
        Probability of the central interval ``lower`` .. ``upper``.
    epistemic : bool, default=True
        Include ``epistemic_std`` (when ``columns`` is not given).
    row_names : sequence of str or None
        How to name row ``i`` in the error (e.g. ``"data.csv, row 7"``); default ``"row i"``.
    columns : sequence of str or None
        The columns to compute, from :data:`COLUMNS`; default all of them (without
        ``epistemic_std`` unless ``epistemic``). Quantiles are searched only when asked for.

    Returns
    -------
    dict of str to ndarray of shape (n,)
        The requested columns, in :data:`COLUMNS` order.

    Raises
    ------
    ValueError
        Naming the first row whose prediction (a component or a summary) is NaN or infinite,
        or an unknown column.
    """
    wanted = [c for c in COLUMNS if epistemic or c != "epistemic_std"] if columns is None \
        else list(columns)
    unknown = sorted(set(wanted) - set(COLUMNS))
    if unknown:
        raise ValueError(f"unknown prediction column(s) {unknown}; expected some of {COLUMNS}")
    # Rows x samples decides the threads, as for the forward pass (the quantiles share their
    # chunks among all cores themselves).
    with intra_op_threads(pred.loc.numel()):
        return _columns(pred, level, wanted, row_names)


def _columns(pred: Prediction | Any, level: float, wanted: list[str],
             row_names: Sequence[str] | None) -> dict[str, np.ndarray]:
    # A calibrated predictive (varbayes.calibration) already works in float64.
    wide = Prediction(pred.loc.double(), pred.scale.double(),
                      pred.working_dtype or pred.loc.dtype) if isinstance(pred, Prediction) \
        else pred
    split: tuple[Tensor, Tensor] | None = None
    if isinstance(wide, Prediction):  # Prediction.std, with each part computed once
        split = (wide.aleatoric_var, wide.epistemic_var)
    mean, std = wide.mean, wide.std if split is None else (split[0] + split[1]).sqrt()
    _first_nonfinite({"mean": mean, "std": std}, row_names)  # before bisecting on NaN
    out: dict[str, Tensor] = {"mean": mean, "std": std}
    # Every requested quantile in one pass; each level's value does not depend on the others.
    names = [c for c in ("lower", "upper", "median") if c in wanted]
    if names:
        if not 0.0 < float(level) < 1.0:
            raise ValueError(f"level must lie in (0, 1), got {level!r}")
        at = {"lower": (1 - level) / 2, "upper": (1 + level) / 2, "median": 0.5}
        values = wide.quantile(torch.tensor([at[c] for c in names], dtype=torch.float64))
        out.update(zip(names, values, strict=True))
    if "aleatoric_std" in wanted:
        out["aleatoric_std"] = (wide.aleatoric_var if split is None else split[0]).sqrt()
    if "epistemic_std" in wanted:
        out["epistemic_std"] = (wide.epistemic_var if split is None else split[1]).sqrt()
    chosen = {k: out[k] for k in COLUMNS if k in wanted}
    _first_nonfinite(chosen, row_names)
    return {k: v.detach().cpu().numpy() for k, v in chosen.items()}


def aligned_rows(summarise: Callable[[np.ndarray], dict[str, np.ndarray]],
                 x: np.ndarray) -> dict[str, np.ndarray]:
    """``summarise(x)`` (per-row arrays), with ``x`` padded to whole row groups.

    The rows of ``x`` (shape (n, d)) are padded with copies of the last row up to a multiple
    of :data:`ROW_ALIGN` and the padding is cut from every result, so each row's numbers are
    the same bits whatever rows it is predicted with (``summarise`` must draw its weights
    independently of the row count, as every varbayes predictive does).
    """
    n = len(x)
    pad = -n % ROW_ALIGN
    if pad:
        x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
    return {k: v[:n] for k, v in summarise(x).items()}


def aligned_columns(
    predict: Callable[[Any], Prediction | Any], x: np.ndarray, level: float = 0.9, *,
    epistemic: bool = True, row_names: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """:func:`prediction_columns` of ``predict(x)`` through :func:`aligned_rows`.

    A non-finite padding row is named as the last row of ``x`` (it is a copy of it).
    """
    names = None if row_names is None else \
        [*row_names, *[row_names[-1]] * (-len(x) % ROW_ALIGN)]
    return aligned_rows(lambda xs: prediction_columns(
        predict(xs), level, epistemic=epistemic, row_names=names, columns=columns), x)
