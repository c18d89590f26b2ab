"""Figures: the blog post's data / fit / credible band, uncertainty decomposition, calibration.

Every function draws on a given ``ax`` or, with ``ax=None``, on a new
:class:`matplotlib.figure.Figure` that is not registered with ``pyplot``, so nothing here needs a
display, changes global state, or calls ``plt.show()``. Save with ``ax.figure.savefig(path)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from varbayes._checks_scalar import check_count
from varbayes._validation import to_tensor
from varbayes.predictive import Prediction

__all__ = [
    "plot_calibration",
    "plot_calibration_report",
    "plot_data",
    "plot_fit",
    "plot_uncertainty",
]


def _axes(ax: Axes | None, figsize: tuple[float, float] = (10, 4.5)) -> Axes:
    if ax is not None:
        return ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def _x1d(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"plots need a single input feature; got x of shape {a.shape}")
    return a


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def plot_data(x: Any, y: Any, *, ax: Axes | None = None, label: str = "data",
              **scatter_kw: Any) -> Axes:
    """Scatter the data ``y`` against a single input ``x``."""
    ax = _axes(ax)
    kw: dict[str, Any] = {"s": 12, "alpha": 0.7, "color": "C0"} | scatter_kw
    ax.scatter(_x1d(x), _x1d(y), label=label, **kw)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    return ax


def plot_fit(
    x: Any, prediction: Prediction, *, x_data: Any = None, y_data: Any = None,
    level: float | None = 0.9, mean_band: bool = False, ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """The post's figure: data, predictive mean and central credible band of ``y``.

    Parameters
    ----------
    x : array-like of shape (n,) or (n, 1)
        Inputs at which ``prediction`` was made (sorted for a clean line).
    prediction : Prediction
        Predictive at ``x``, in the units of ``y_data``.
    x_data, y_data : array-like, optional
        Observations to scatter.
    level : float or None, default=0.9
        Probability of the band of ``y``; ``None`` draws no band (point estimate).
    mean_band : bool, default=False
        Also draw the band of the mean function :math:`\\mu_s(x)` (epistemic only), which is
        what the post's Bayes-by-Backprop figure shows.
    ax : Axes or None
    title : str or None
    """
    ax = _axes(ax)
    xs = _x1d(x)
    order = np.argsort(xs)
    xs = xs[order]
    if x_data is not None and y_data is not None:
        plot_data(x_data, y_data, ax=ax)
    if level is not None:
        lo, hi = (_np(b)[order] for b in prediction.interval(level))
        ax.fill_between(xs, lo, hi, alpha=0.25, color="C1",
                        label=f"{100 * level:g}% credible interval of y")
    if mean_band and prediction.num_samples > 1:
        q = np.quantile(_np(prediction.loc), [(1 - (level or 0.9)) / 2, (1 + (level or 0.9)) / 2],
                        axis=0)
        ax.fill_between(xs, q[0][order], q[1][order], alpha=0.35, color="C2",
                        label="band of the mean function")
    ax.plot(xs, _np(prediction.mean)[order], color="C3", lw=2, label="predictive mean")
    ax.legend(loc="upper left", fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def plot_uncertainty(
    x: Any, prediction: Prediction, *, true_noise_std: Any = None, ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Predictive standard deviation split into aleatoric and epistemic parts, against ``x``.

    The two variances add up to the total (:mod:`varbayes.predictive`); the figure stacks them
    as standard deviations: the lower curve is the aleatoric std, the upper the total std.
    """
    ax = _axes(ax)
    xs = _x1d(x)
    order = np.argsort(xs)
    xs = xs[order]
    alea = np.sqrt(_np(prediction.aleatoric_var))[order]
    total = np.sqrt(_np(prediction.var))[order]
    ax.fill_between(xs, 0, alea, alpha=0.5, color="C0", label="aleatoric std")
    ax.fill_between(xs, alea, total, alpha=0.5, color="C1", label="epistemic (added to total)")
    ax.plot(xs, np.sqrt(_np(prediction.epistemic_var))[order], color="C1", lw=1.5, ls="--",
            label="epistemic std")
    if true_noise_std is not None:
        ax.plot(xs, _x1d(true_noise_std)[order], color="k", lw=1.5, label="true noise std")
    ax.set_xlabel("x")
    ax.set_ylabel("standard deviation of y")
    ax.legend(loc="upper left", fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def plot_calibration(y: Any, prediction: Prediction, *, num_levels: int = 19,
                     ax: Axes | None = None, title: str | None = None) -> Axes:
    """Reliability diagram: observed versus nominal quantile level (diagonal is perfect)."""
    num_levels = check_count(num_levels, "num_levels")
    ax = _axes(ax, figsize=(4.5, 4.5))
    yt = to_tensor(_x1d(y), torch.float64, "cpu")
    pit = _np(Prediction(prediction.loc.double(), prediction.scale.double()).cdf(yt))
    levels = np.arange(1, num_levels + 1) / (num_levels + 1)
    observed = (pit[None, :] <= levels[:, None]).mean(1)
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1)
    ax.plot(levels, observed, marker="o", color="C0")
    ax.set_xlabel("nominal quantile level")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title)
    return ax


def plot_calibration_report(y: Any, prediction: Any, *, num_levels: int = 19, bins: int = 20,
                            title: str | None = None) -> Figure:
    """Reliability diagram and PIT histogram side by side, for any predictive.

    ``prediction`` is a :class:`Prediction` or a calibrated predictive of
    :mod:`varbayes.calibration`. Left: observed frequency of ``F(y) <= p`` against the nominal
    level ``p`` (the diagonal is perfect calibration). Right: histogram of the PIT ``F(y)``
    (flat at 1 when calibrated; a U shape means over-confident, a hump under-confident).
    """
    from varbayes.calibration import pit_values

    fig, (left, right) = new_figure(1, 2, figsize=(9, 4))
    pit = pit_values(_x1d(y), prediction)
    levels = np.arange(1, num_levels + 1) / (num_levels + 1)
    observed = (pit[None, :] <= levels[:, None]).mean(1)
    left.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1)
    left.plot(levels, observed, marker="o", color="C0")
    left.set(xlabel="nominal quantile level", ylabel="observed frequency", xlim=(0, 1),
             ylim=(0, 1), title="reliability diagram")
    right.hist(pit, bins=bins, range=(0, 1), density=True, color="C0", alpha=0.7)
    right.axhline(1.0, color="0.5", ls="--", lw=1)
    right.set(xlabel="PIT = F(y)", ylabel="density", xlim=(0, 1), title="PIT histogram")
    if title:
        fig.suptitle(title)
    return fig


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] = (10, 4.5)
               ) -> tuple[Figure, Any]:
    """A pyplot-free figure with a grid of axes (for callers composing several plots)."""
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(nrows, ncols)
