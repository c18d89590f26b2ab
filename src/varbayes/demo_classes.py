"""The demo's classification part: epistemic uncertainty you can see on a 2-D toy problem.

:func:`run_classification_demo` trains a :class:`~varbayes.BayesianClassifier` (its defaults)
on the toy problem of :mod:`varbayes.data.toy_classes`, whose class probabilities are known,
scores it on a held-out draw against the generator itself, and draws over the plane the
predictive probability of class 1 and the mutual information between the label and the weights
(the epistemic part of the entropy): low where the training inputs lie, high away from them.
``mi_near`` and ``mi_far`` put that in numbers: the mean mutual information at the test inputs
(inside the data) and on the circle of radius :data:`FAR_RADIUS` (outside it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from varbayes.data.toy_classes import ToyClasses, load_toy_classes, toy_class_probability

__all__ = ["FAR_RADIUS", "PLANE", "run_classification_demo"]

#: Half-width of the square of the plane that the figure draws.
PLANE = 5.0
#: Radius of the circle, far outside the training inputs (standard normal), of ``mi_far``.
FAR_RADIUS = 4.5
#: Grid points per side of the figure's plane.
GRID = 101


def _far_points(num: int = 360) -> np.ndarray:
    angle = np.linspace(0.0, 2 * np.pi, num, endpoint=False)
    return FAR_RADIUS * np.stack([np.cos(angle), np.sin(angle)], 1)


def _figure(clf: Any, data: ToyClasses) -> Any:
    from varbayes.plots import new_figure  # matplotlib only when a figure is asked for

    axis = np.linspace(-PLANE, PLANE, GRID)
    gx, gy = np.meshgrid(axis, axis)
    plane = np.stack([gx.ravel(), gy.ravel()], 1)
    prob = clf.predict_proba(plane)[:, 1].reshape(gx.shape)
    mi = clf.predict_uncertainty(plane)["mutual_information"].reshape(gx.shape)
    truth = toy_class_probability(plane).reshape(gx.shape)
    fig, axes = new_figure(1, 2, figsize=(12, 5))
    panels = [(axes[0], prob, "viridis", "predictive p(class 1)", (0.0, 1.0)),
              (axes[1], mi, "magma", "mutual information (nats, epistemic)", (0.0, None))]
    for ax, values, cmap, title, (lo, hi) in panels:
        mesh = ax.pcolormesh(gx, gy, values, cmap=cmap, vmin=lo, vmax=hi, shading="auto")
        fig.colorbar(mesh, ax=ax)
        ax.contour(gx, gy, truth, levels=[0.5], colors="w", linestyles="--", linewidths=1)
        for label, marker in ((0, "o"), (1, "^")):
            inside = data.y_train == label
            ax.scatter(data.x_train[inside, 0], data.x_train[inside, 1], s=8, marker=marker,
                       facecolors="none", edgecolors="k" if label else "0.6", linewidths=0.6)
        ax.set_xlim(-PLANE, PLANE)
        ax.set_ylim(-PLANE, PLANE)
        ax.set_aspect("equal")
        ax.set_title(title)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
    return fig


def run_classification_demo(out: Path | None = None, *, seed: int = 0, quick: bool = False,
                            num_samples: int = 200,
                            savefig: Callable[[Any, Path], None] | None = None
                            ) -> dict[str, float]:
    """Train, score and (with ``out``) draw the classification toy problem.

    Returns
    -------
    dict
        ``accuracy``, ``nll``, ``brier``, ``ece`` (:mod:`varbayes.metrics_classification`) on
        the 2000 test rows, ``oracle_nll`` (the generator's own), ``prob_mae`` (mean absolute
        error of the predictive probability of class 1 against the true one), ``mi_near`` and
        ``mi_far`` (mean mutual information at the test inputs and far away), ``train_seconds``
        and ``predict_seconds``. With ``out``, writes ``out / 'classification.png'`` (by
        ``savefig(figure, path)``).
    """
    import torch

    from varbayes.classifier import BayesianClassifier
    from varbayes.metrics_classification import accuracy, brier_score, expected_calibration_error

    data = load_toy_classes()
    clf = BayesianClassifier(num_samples=num_samples, random_state=seed,
                             epochs=50 if quick else None)
    start = time.perf_counter()
    clf.fit(data.x_train, data.y_train)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    probs = clf.predict_proba(data.x_test)
    predict_seconds = time.perf_counter() - start
    p = torch.as_tensor(probs)
    y = data.y_test
    near = clf.predict_uncertainty(data.x_test)["mutual_information"]
    far = clf.predict_uncertainty(_far_points())["mutual_information"]
    report = {
        "accuracy": accuracy(y, p),
        "nll": float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-300, None)))),
        "brier": brier_score(y, p), "ece": expected_calibration_error(y, p),
        "oracle_nll": data.oracle_nll(),
        "prob_mae": float(np.mean(np.abs(probs[:, 1] - toy_class_probability(data.x_test)))),
        "mi_near": float(np.mean(near)), "mi_far": float(np.mean(far)),
        "train_seconds": train_seconds, "predict_seconds": predict_seconds,
    }
    if out is not None and savefig is not None:
        savefig(_figure(clf, data), out / "classification.png")
    return report
