"""Generators with a known truth for the family acceptance tests (counts, times, classes)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def inputs(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-2, 2, size=(n, 2))


def poisson_rate(x: np.ndarray) -> np.ndarray:
    return np.exp(2.5 + 0.6 * np.sin(1.5 * x[:, 0]) + 0.3 * x[:, 1])


def exponential_rate(x: np.ndarray) -> np.ndarray:
    return np.exp(0.5 * np.cos(1.5 * x[:, 0]) - 0.4 * x[:, 1])


def class_probs(x: np.ndarray) -> np.ndarray:
    logits = np.stack([np.zeros(len(x)), 2.0 * x[:, 0] + np.sin(2 * x[:, 1]),
                       1.5 * x[:, 1] - x[:, 0] ** 2 / 2], 1)
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def draw(family: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x``, ``y`` and the generator's own log-likelihood of each row."""
    rng = np.random.default_rng(seed)
    x = inputs(n, rng)
    if family == "poisson":
        rate = poisson_rate(x)
        y = rng.poisson(rate).astype(np.float64)
        return x, y, stats.poisson.logpmf(y, rate)
    if family == "exponential":
        rate = exponential_rate(x)
        y = rng.exponential(1 / rate)
        return x, y, stats.expon.logpdf(y, scale=1 / rate)
    p = class_probs(x)
    y = (rng.uniform(size=(n, 1)) > p.cumsum(1)).sum(1).astype(np.float64)
    return x, y, np.log(p[np.arange(n), y.astype(int)])
