"""Reference implementations copied verbatim from the founding blog post (tests only)."""

# ruff: noqa: NPY002, E702
from __future__ import annotations

import numpy as np

# Verbatim copy: keep it byte for byte.
# fmt: off
w0 = 0.125; b0 = 5.; x_range = [-20, 60]
def load_dataset(n=150, n_tst=150):
    np.random.seed(43)
    def s(x):
        g = (x - x_range[0]) / (x_range[1] - x_range[0])
        return 3 * (0.25 + g**2.)
    x = (x_range[1] - x_range[0]) * np.random.rand(n) + x_range[0]
    eps = np.random.randn(n) * s(x)
    y = (w0 * x * (1. + np.sin(x)) + b0) + eps
    y = (y - y.mean()) / y.std()
    idx = np.argsort(x); x = x[idx]; y = y[idx]
    return y[:, None], x[:, None]
# fmt: on


#: The post's generator, under the name the tests use. Returns ``(y, x)`` as the post does.
post_load_dataset = load_dataset
