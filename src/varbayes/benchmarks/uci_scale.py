"""The UCI-split row of ``varbayes benchmark speed``: the UCI protocol on a larger data set.

No UCI data set of 10k rows or more is shipped anywhere varbayes may read without a download,
so :func:`write_friedman_uci` writes one in the UCI layout from scikit-learn's
``make_friedman1`` (10 features, 5 of them used) with heteroscedastic noise
``(0.5 + |x_1|) N(0, 1)`` and 90 / 10 splits like the standard ones.
:func:`run_uci_scale` runs :func:`varbayes.benchmarks.uci_run.run_uci_benchmark` on it
(``hetero``, the splits trained together) and reports the seconds per split and the test LL.
``benchmarks/uci_scale.py`` compares it with one split at a time.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["format_uci_scale", "friedman_data", "run_uci_scale", "write_friedman_uci",
           "write_uci_folder"]


def write_uci_folder(folder: Path, x: np.ndarray, y: np.ndarray,
                     permutations: Sequence[np.ndarray], *, n_hidden: int = 50,
                     fmt: str = "%.18e") -> Path:
    """Write ``x``, ``y`` in the UCI layout, split ``i`` the 90 / 10 cut of ``permutations[i]``."""
    folder.mkdir(parents=True)
    d = x.shape[1]
    np.savetxt(folder / "data.txt", np.column_stack([x, y]), fmt=fmt)
    (folder / "index_features.txt").write_text("".join(f"{i}\n" for i in range(d)))
    (folder / "index_target.txt").write_text(f"{d}\n")
    for i, perm in enumerate(permutations):
        cut = round(0.9 * len(perm))
        np.savetxt(folder / f"index_train_{i}.txt", np.sort(perm[:cut]), fmt="%d")
        np.savetxt(folder / f"index_test_{i}.txt", np.sort(perm[cut:]), fmt="%d")
    (folder / "n_splits.txt").write_text(f"{len(permutations)}\n")
    (folder / "n_hidden.txt").write_text(f"{n_hidden}\n")
    (folder / "n_epochs.txt").write_text("40\n")
    return folder


def friedman_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` rows of ``make_friedman1`` (10 features) with the noise ``(0.5 + |x_1|) N(0, 1)``.

    The streams: ``make_friedman1(random_state=seed)``, then ``np.random.default_rng(seed)``
    for the noise.
    """
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=rows, n_features=10, noise=0.0, random_state=seed)
    rng = np.random.default_rng(seed)
    return x, y + (0.5 + np.abs(x[:, 1])) * rng.normal(size=rows)


def write_friedman_uci(root: Path, rows: int, splits: int, seed: int = 0) -> str:
    """A ``friedman<rows>`` folder under ``root`` in the UCI layout; returns its name."""
    x, y = friedman_data(rows, seed)
    name = f"friedman{rows}"
    perms = [np.random.default_rng([seed, i]).permutation(rows) for i in range(splits)]
    write_uci_folder(root / name, x, y, perms, fmt="%.6f")
    return name


def run_uci_scale(rows: int = 10_000, splits: int = 20, *, quick: bool = False,
                  **kwargs: Any) -> dict[str, Any]:
    """Time the UCI protocol on ``splits`` splits of a ``rows``-row friedman1 data set.

    ``quick`` is the protocol's smoke schedule (a tenth of the epochs); ``kwargs`` go to
    :func:`~varbayes.benchmarks.uci_run.run_uci_benchmark`.

    Returns
    -------
    dict
        ``rows``, ``splits``, ``quick``, ``seconds`` (wall), ``cpu_seconds``,
        ``seconds_per_split``, ``test_ll`` (mean over the splits) and ``ll`` (per split).
    """
    from varbayes.benchmarks.uci_run import run_uci_benchmark

    with tempfile.TemporaryDirectory() as tmp:
        name = write_friedman_uci(Path(tmp), rows, splits)
        start, cpu = time.perf_counter(), time.process_time()
        result = run_uci_benchmark(tmp, name, progress=False, quick=quick, splits=splits,
                                   **kwargs)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    lls = [r["ll"] for r in result["datasets"][name]["splits"]]
    return {"rows": int(rows), "splits": len(lls), "quick": bool(quick), "seconds": wall,
            "cpu_seconds": cpu, "seconds_per_split": wall / len(lls),
            "test_ll": float(np.mean(lls)), "ll": lls}


def format_uci_scale(row: dict[str, Any]) -> str:
    """One line: rows, splits, seconds per split, mean test LL."""
    return (f"UCI protocol at scale: friedman1 {row['rows']:,} rows, {row['splits']} splits "
            f"trained together{' (quick schedule)' if row['quick'] else ''} in "
            f"{row['seconds']:.1f} s ({row['seconds_per_split']:.2f} s/split, CPU "
            f"{row['cpu_seconds']:.1f} s); mean test LL {row['test_ll']:.4f}")
