"""The blog post's toy problem, bit for bit, with a held-out test draw and its oracle.

:func:`load_toy` reproduces the post's generator exactly (a test runs the post's code); the
test draw comes from another seed of the same process, and :meth:`ToyData.oracle_nll` scores the
data-generating process itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from varbayes._validation import check_scalar

__all__ = ["TOY_B0", "TOY_W0", "TOY_X_RANGE", "ToyData", "load_toy"]

TOY_W0: float = 0.125
TOY_B0: float = 5.0
TOY_X_RANGE: tuple[int, int] = (-20, 60)


def _toy_noise_std_raw(x: np.ndarray) -> np.ndarray:
    g = (x - TOY_X_RANGE[0]) / (TOY_X_RANGE[1] - TOY_X_RANGE[0])
    return 3 * (0.25 + g**2.0)


def _toy_mean_raw(x: np.ndarray) -> np.ndarray:
    return cast(np.ndarray, TOY_W0 * x * (1.0 + np.sin(x)) + TOY_B0)  # np.sin is Any-typed


def _toy_draw(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` raw (x, y) pairs exactly as the post does, from a private RandomState."""
    rs = np.random.RandomState(seed)
    x = (TOY_X_RANGE[1] - TOY_X_RANGE[0]) * rs.rand(n) + TOY_X_RANGE[0]
    eps = rs.randn(n) * _toy_noise_std_raw(x)
    return x, _toy_mean_raw(x) + eps


@dataclass(frozen=True, eq=False)
class ToyData:
    """The toy regression data of the post, with a held-out test draw.

    Attributes
    ----------
    x_train, y_train : ndarray of shape (n, 1)
        Sorted inputs in [-20, 60] and self-standardised targets, exactly as in the post.
    x_test, y_test : ndarray of shape (n_test, 1)
        An independent draw (sorted), standardised with the *training* statistics.
    y_mean, y_std : float
        Mean and population std (ddof=0) of the raw training targets.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    y_mean: float
    y_std: float

    def mean_function(self, x: Any) -> np.ndarray:
        """Return the true E[y | x] in standardised y units (same shape as array-like `x`)."""
        return (_toy_mean_raw(np.asarray(x, dtype=np.float64)) - self.y_mean) / self.y_std

    def noise_std(self, x: Any) -> np.ndarray:
        """Return the true noise std at `x` in standardised y units (same shape as `x`)."""
        return _toy_noise_std_raw(np.asarray(x, dtype=np.float64)) / self.y_std

    def oracle_nll(self, x: Any, y: Any) -> float:
        r"""Return the mean NLL of `y` under the true generator (≈0.35 on the test draw).

        :math:`-\frac{1}{m} \sum_i \log \mathcal{N}(y_i; f(x_i), s(x_i)^2)` for `x`, `y`
        array-like of shape (m,) or (m, 1), `y` in standardised units.
        """
        xa = np.asarray(x, dtype=np.float64).reshape(-1)
        ya = np.asarray(y, dtype=np.float64).reshape(-1)
        if xa.shape != ya.shape or xa.size == 0:
            raise ValueError(f"oracle_nll: x and y have lengths {xa.size} and {ya.size}")
        mu, sd = self.mean_function(xa), self.noise_std(xa)
        return float(np.mean(0.5 * np.log(2 * np.pi * sd**2) + (ya - mu) ** 2 / (2 * sd**2)))


def load_toy(n: int = 150, n_test: int = 150, *, seed: int = 43, test_seed: int = 44) -> ToyData:
    r"""Load the post's toy data set (bit for bit) plus an independent test draw.

    :math:`x \sim U(-20, 60)`, :math:`y = w_0 x (1 + \sin x) + b_0 + \varepsilon`,
    :math:`\varepsilon \sim N(0, (3 (0.25 + g^2))^2)`, :math:`g = (x + 20) / 80`.
    NumPy's global random state is left untouched.

    Parameters
    ----------
    n, n_test : int, default=150
        Number of training points (at least 2) and of test points (at least 1).
    seed, test_seed : int, default=43, 44
        Seeds of the training draw (43 is the post's) and of the test draw.
    """
    n = check_scalar(n, "n", kind=int, low=2)
    n_test = check_scalar(n_test, "n_test", kind=int, low=1)
    seed = check_scalar(seed, "seed", kind=int, low=0, high=2**32 - 1)
    test_seed = check_scalar(test_seed, "test_seed", kind=int, low=0, high=2**32 - 1)
    x, y = _toy_draw(n, seed)
    y_mean, y_std = y.mean(), y.std()
    y = (y - y_mean) / y_std
    idx = np.argsort(x)
    xt, yt = _toy_draw(n_test, test_seed)
    yt = (yt - y_mean) / y_std
    it = np.argsort(xt)
    return ToyData(
        x[idx][:, None], y[idx][:, None], xt[it][:, None], yt[it][:, None], float(y_mean),
        float(y_std),
    )  # fmt: skip
