"""A tiny data set in the UCI layout, for the tests of ``varbayes benchmark uci``."""

from pathlib import Path

import numpy as np

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
    folder.mkdir(parents=True)
    np.savetxt(folder / "data.txt", np.column_stack([x, y]))
    (folder / "index_features.txt").write_text("0\n1\n2\n")
    (folder / "index_target.txt").write_text("3\n")
    for i in range(n_splits):
        perm = np.random.default_rng(i).permutation(n)
        cut = round(0.9 * n)
        np.savetxt(folder / f"index_train_{i}.txt", np.sort(perm[:cut]), fmt="%d")
        np.savetxt(folder / f"index_test_{i}.txt", np.sort(perm[cut:]), fmt="%d")
    (folder / "n_splits.txt").write_text(f"{n_splits}\n")
    (folder / "n_hidden.txt").write_text("8\n")
    (folder / "n_epochs.txt").write_text("40\n")
    return folder
