"""A 2-D classification toy problem whose class probabilities are known (the demo's).

Inputs are standard normal in the plane; the label is Bernoulli with

.. math::
    p(y = 1 \\mid x) = \\operatorname{sigmoid}\\big(3\\,(x_2 - \\sin(1.5\\,x_1))\\big),

a curved boundary with label noise near it. Away from the origin there are no training inputs,
which is where a Bayesian classifier's epistemic uncertainty (the mutual information) should
grow. :meth:`ToyClasses.oracle_nll` scores the generator itself: no model beats it on average.

>>> data = load_toy_classes()
>>> data.x_train.shape, data.y_train.shape, sorted(set(data.y_train.tolist()))
((500, 2), (500,), [0, 1])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ToyClasses", "load_toy_classes", "toy_class_probability"]

#: Slope of the true log-odds across the boundary.
TOY_CLASS_SHARPNESS = 3.0


def toy_class_probability(x: np.ndarray) -> np.ndarray:
    """The true :math:`p(y = 1 \\mid x)` at inputs ``x`` of shape (n, 2)."""
    x = np.asarray(x, dtype=np.float64)
    logit = TOY_CLASS_SHARPNESS * (x[:, 1] - np.sin(1.5 * x[:, 0]))
    return np.asarray(1.0 / (1.0 + np.exp(-logit)))


def _draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((n, 2))
    return x, (rng.random(n) < toy_class_probability(x)).astype(np.int64)


@dataclass(frozen=True)
class ToyClasses:
    """Training and test draws of the toy problem: ``x`` (n, 2), labels ``y`` in {0, 1}."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def oracle_nll(self) -> float:
        """Mean test NLL (nats) of the true class probabilities."""
        p = toy_class_probability(self.x_test)
        return float(-np.mean(np.log(np.where(self.y_test == 1, p, 1.0 - p))))


def load_toy_classes(n_train: int = 500, n_test: int = 2000, seed: int = 0) -> ToyClasses:
    """Draw the toy problem: ``n_train`` and ``n_test`` rows from generator ``seed``."""
    rng = np.random.default_rng(seed)
    x_train, y_train = _draw(int(n_train), rng)
    x_test, y_test = _draw(int(n_test), rng)
    return ToyClasses(x_train, y_train, x_test, y_test)
