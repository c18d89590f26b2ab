"""A tiny data set in the UCI layout, for the tests of ``varbayes benchmark uci``."""

from pathlib import Path

import numpy as np

from varbayes.benchmarks.uci_scale import write_uci_folder

__all__ = ["synthetic_uci"]


def synthetic_uci(root: Path, name: str = "synth", *, nested: bool = False, n: int = 60,
                  constant: bool = True, n_splits: int = 2) -> Path:
    """A tiny data set in the UCI layout; column 1 is constant when ``constant``."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    if constant:
        x[:, 1] = 4.2
    y = 2.0 * x[:, 0] - x[:, 2] + 0.3 * rng.normal(size=n)
    folder = root / name / "data" if nested else root / name
    perms = [np.random.default_rng(i).permutation(n) for i in range(n_splits)]
    write_uci_folder(folder, x, y, perms, n_hidden=8)
    return folder
