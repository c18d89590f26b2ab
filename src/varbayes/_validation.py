"""Input checks shared by the estimator, the CLI and the functional API.

* **User-data checks** (``check_*`` and :func:`as_generator`) always run and raise
  :class:`ValueError` / :class:`TypeError` naming the argument, the offending value and a fix.
* **A validation switch** (:func:`set_validation`, :func:`is_validation_enabled`,
  :func:`validation_enabled`), as in ``torch.distributions``: it defaults to ``__debug__`` and
  governs only the *internal* consistency checks other modules run in hot paths. It never
  switches off the user-data checks.

Examples
--------
>>> import numpy as np
>>> check_array([[1, 2], [3, 4]]).dtype
dtype('float64')
>>> with validation_enabled(False):
...     is_validation_enabled()
False
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator
from enum import Enum
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "as_generator", "check_X_y", "check_array", "check_enum", "check_probability_level",
    "check_scalar", "check_target", "feature_names_of", "is_validation_enabled",
    "set_validation", "validation_enabled",
]  # fmt: skip

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_MISSING_TYPES = ("NAType", "NaTType")
E = TypeVar("E", bound=Enum)

# --------------------------------------------------------------------------- switch

_VALIDATE: bool = __debug__


def set_validation(flag: bool) -> None:
    """Switch internal consistency checks on (default unless ``python -O``) or off.

    Raises
    ------
    TypeError
        If `flag` is not a bool.
    """
    global _VALIDATE
    if not isinstance(flag, bool | np.bool_):
        raise TypeError(f"set_validation expects a bool flag, got {type(flag).__name__} {flag!r}")
    _VALIDATE = bool(flag)


def is_validation_enabled() -> bool:
    """Return whether internal consistency checks are on (user-data checks always run)."""
    return _VALIDATE


@contextlib.contextmanager
def validation_enabled(flag: bool = True) -> Iterator[None]:
    """Set the validation switch to `flag` inside a ``with`` block, then restore it."""
    previous = _VALIDATE
    set_validation(flag)
    try:
        yield
    finally:
        set_validation(previous)


# --------------------------------------------------------------------------- arrays


def _type_name(value: object) -> str:
    return type(value).__name__


def _reject_sparse(X: object, name: str) -> None:
    if type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"{name} is a scipy sparse matrix ({_type_name(X)}); varbayes needs dense data. "
            f"Densify it first with {name}.toarray()."
        )
    if isinstance(X, torch.Tensor) and X.layout != torch.strided:
        raise TypeError(
            f"{name} is a sparse torch tensor (layout {X.layout}); densify it first with "
            f"{name}.to_dense()."
        )


def _to_numpy(X: Any, name: str) -> np.ndarray:
    """Turn any supported container into a NumPy array (no dtype conversion yet)."""
    if X is None:
        raise TypeError(f"{name} is None; expected an array-like of numbers")
    _reject_sparse(X, name)
    if isinstance(X, torch.Tensor):
        t = X.detach()
        if t.is_complex():
            raise TypeError(f"{name} has complex dtype {t.dtype}; only real numbers are supported")
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.cpu().numpy()
    if hasattr(X, "to_numpy") and (hasattr(X, "columns") or hasattr(X, "dtype")):
        return np.asarray(X.to_numpy())  # pandas DataFrame / Series
    try:
        return np.asarray(X)
    except ValueError as exc:
        raise ValueError(
            f"{name} is a ragged nested sequence: every row must have the same number of values"
        ) from exc


def _column_label(j: int, columns: list[str] | None) -> str:
    return f"column {j}" + (f" ({columns[j]!r})" if columns and j < len(columns) else "")


def _where(arr: np.ndarray, mask: np.ndarray, columns: list[str] | None) -> tuple[str, float]:
    first = tuple(int(k) for k in np.argwhere(mask)[0])
    col = f", {_column_label(first[1], columns)}" if arr.ndim > 1 else ""
    return f"row {first[0]}{col}", float(arr[first])


def _convert_columns(
    arr: np.ndarray, name: str, columns: list[str] | None, vector: bool
) -> np.ndarray:
    """Convert an object / string array of shape (n, d) to float64, column by column."""
    out = np.empty(arr.shape, dtype=np.float64)
    for j in range(arr.shape[1]):
        col, label = arr[:, j], name if vector else f"{name} {_column_label(j, columns)}"
        try:
            out[:, j] = col.astype(np.float64)
            continue
        except (ValueError, TypeError):
            pass
        for i, v in enumerate(col):
            v = v.item() if isinstance(v, np.generic) else v
            if v is None or _type_name(v) in _MISSING_TYPES:
                raise ValueError(
                    f"{label} has a missing value ({v!r}) at row {i}; "
                    "impute or drop missing values first"
                )
            try:
                out[i, j] = float(v)
            except (ValueError, TypeError):
                raise ValueError(
                    f"{label} is not numeric: it contains {v!r} at "
                    f"row {i}. Convert it to numbers (e.g. one-hot encode categories) or drop it."
                ) from None
    return out


def _check_finite(arr: np.ndarray, name: str, columns: list[str] | None = None) -> None:
    """Raise if `arr` (1-D or 2-D float64) holds NaN/inf or values overflowing float32."""
    if not (finite := np.isfinite(arr)).all():
        where, value = _where(arr, ~finite, columns)
        counts = (
            int(np.isnan(arr).sum()),
            int(np.isposinf(arr).sum()),
            int(np.isneginf(arr).sum()),
        )
        raise ValueError(
            f"{name} contains {sum(counts)} non-finite value(s) (NaN: {counts[0]}, +inf: "
            f"{counts[1]}, -inf: {counts[2]}); the first is {value!r} at {where}. Remove or impute "
            "them (e.g. sklearn.impute.SimpleImputer) first."
        )
    if (too_big := np.abs(arr) > _FLOAT32_MAX).any():
        where, value = _where(arr, too_big, columns)
        raise ValueError(
            f"{name} contains {int(too_big.sum())} value(s) whose magnitude exceeds the float32 "
            f"maximum ({_FLOAT32_MAX:.4g}), e.g. {value!r} at {where}; they would overflow "
            "float32 to inf. Rescale the data (e.g. change units) first."
        )


def _as_float64(
    arr: np.ndarray, name: str, columns: list[str] | None, vector: bool = False
) -> np.ndarray:
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} has complex dtype {arr.dtype}; only real numbers are supported")
    if kind in "bifu":
        return np.array(arr, dtype=np.float64, order="C", copy=True)
    if kind in "OUS":
        return _convert_columns(arr, name, columns, vector)
    raise TypeError(
        f"{name} has unsupported dtype {arr.dtype} (kind {kind!r}); expected numbers "
        "(bool, int or float)"
    )


def feature_names_of(X: Any) -> list[str] | None:
    """Return ``[str(c) for c in X.columns]`` for a DataFrame-like `X`, else ``None``."""
    if hasattr(X, "columns") and not isinstance(X, np.ndarray | torch.Tensor):
        return [str(c) for c in X.columns]
    return None


def check_array(X: Any, name: str = "X", *, allow_1d: bool = False) -> np.ndarray:
    """Validate a feature matrix and return it as a new C-contiguous float64 array.

    Parameters
    ----------
    X : array-like of shape (n, d)
        NumPy array (also read-only, memory-mapped or non-contiguous), list of lists, pandas
        DataFrame, or torch tensor (detached and moved to the CPU). bool, int and float16
        values are cast to float64; object / string columns are converted when every value
        parses as a number.
    name : str, default="X"
        Name of the argument, used in error messages.
    allow_1d : bool, default=False
        If ``True``, a 1-D input of length ``n`` is accepted as a single feature and
        returned with shape (n, 1).

    Returns
    -------
    ndarray of shape (n, d)
        A freshly allocated, writeable, C-contiguous float64 array.

    Raises
    ------
    TypeError
        For sparse matrices, complex or otherwise non-numeric dtypes, and ``None``.
    ValueError
        For scalars, 1-D (unless `allow_1d`) or 3-D+ inputs, 0 rows, 0 columns, values that
        are not numbers, NaN, +inf, -inf, or finite values beyond the float32 range.
    """
    columns = feature_names_of(X)
    arr = _to_numpy(X, name)
    if arr.ndim == 0:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got a scalar "
            f"({_type_name(X)} {X!r})"
        )
    if arr.ndim == 1:
        if arr.size == 0:
            raise ValueError(f"{name} is empty (shape {arr.shape}); at least one sample is needed")
        if not allow_1d:
            raise ValueError(
                f"{name} must be 2-D of shape (n_samples, n_features), got a 1-D array of shape "
                f"{arr.shape}. Reshape it with {name}.reshape(-1, 1) if it holds a single "
                f"feature, or {name}.reshape(1, -1) if it holds a single sample."
            )
        arr = arr.reshape(-1, 1)
    if arr.ndim > 2:
        raise ValueError(
            f"{name} must be 2-D of shape (n_samples, n_features), got {arr.ndim}-D shape "
            f"{arr.shape}; flatten the trailing dimensions first"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has 0 rows (shape {arr.shape}); at least one sample is required")
    if arr.shape[1] == 0:
        raise ValueError(
            f"{name} has 0 columns (shape {arr.shape}); at least one feature is required"
        )
    out = _as_float64(arr, name, columns)
    _check_finite(out, name, columns)
    return out


def check_target(y: Any, n_samples: int | None = None, name: str = "y") -> np.ndarray:
    """Validate a regression target and return it as a new float64 vector.

    Parameters
    ----------
    y : array-like of shape (n,) or (n, 1)
        Target values (NumPy, list, pandas Series / one-column DataFrame, torch tensor).
    n_samples : int or None, default=None
        Expected length (the number of rows of ``X``); ``None`` skips the length check.
    name : str, default="y"
        Name of the argument, used in error messages.

    Returns
    -------
    ndarray of shape (n,)
        A freshly allocated float64 vector.

    Raises
    ------
    TypeError
        For sparse, complex or otherwise non-numeric dtypes.
    ValueError
        For multi-output targets, a length different from `n_samples`, an empty target,
        non-numeric values, NaN / inf or values beyond the float32 range.
    """
    arr = _to_numpy(y, name)
    if arr.ndim == 0:
        raise ValueError(f"{name} must be 1-D of shape (n_samples,), got a scalar {y!r}")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim == 2 and arr.shape[1] > 1:
        raise ValueError(
            f"multi-output targets are not supported (got shape {arr.shape} for {name}); "
            f"pass a single target column of shape (n_samples,)"
        )
    elif arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D of shape (n_samples,), got shape {arr.shape}")
    if n_samples is not None and arr.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} samples but X has {n_samples} rows; they must match"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty; at least one target value is required")
    out = _as_float64(arr.reshape(-1, 1), name, None, vector=True)[:, 0]
    _check_finite(out, name)
    return np.ascontiguousarray(out)


def check_X_y(X: Any, y: Any, *, allow_1d: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validate features (n, d) and target (n,) together; see the two checks above.

    Returns
    -------
    X : ndarray of shape (n, d)
    y : ndarray of shape (n,)
    """
    Xa = check_array(X, "X", allow_1d=allow_1d)
    return Xa, check_target(y, Xa.shape[0], "y")


# --------------------------------------------------------------------------- scalars


def _fmt_range(low: float | None, high: float | None, low_inc: bool, high_inc: bool) -> str:
    left = "(-inf" if low is None else ("[" if low_inc else "(") + repr(low)
    return left + ", " + ("inf)" if high is None else repr(high) + ("]" if high_inc else ")"))


def check_scalar(
    value: Any,
    name: str,
    *,
    kind: type = float,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> Any:
    """Validate a scalar hyperparameter.

    Parameters
    ----------
    value : int or float
        The value to check. bools are rejected; NumPy scalars are accepted.
    name : str
        Name of the parameter, used in error messages.
    kind : {float, int}, default=float
        Required type. ``int`` rejects floats (even ``10.0``); ``float`` accepts ints.
    low, high : float or None, default=None
        Bounds of the allowed range (``None``: unbounded).
    low_inclusive, high_inclusive : bool, default=True
        Whether the bounds themselves are allowed.

    Returns
    -------
    int or float
        ``value`` converted to a built-in ``kind``.

    Raises
    ------
    TypeError
        If the value has the wrong type.
    ValueError
        If a float is NaN or infinite, or the value lies outside the allowed range.
    """
    if kind not in (int, float):
        raise TypeError(f"check_scalar: kind must be int or float, got {kind!r}")
    if isinstance(value, bool | np.bool_):
        raise TypeError(
            f"{name} must be {'an int' if kind is int else 'a float'}, got bool {value!r}"
        )
    if kind is int:
        if not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {_type_name(value)} {value!r}")
        out: int | float = int(value)
    else:
        if not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a float, got {_type_name(value)} {value!r}")
        out = float(value)
        if not np.isfinite(out):
            raise ValueError(f"{name} must be a finite number, got {out!r}")
    too_low = low is not None and (out < low if low_inclusive else out <= low)
    too_high = high is not None and (out > high if high_inclusive else out >= high)
    if too_low or too_high:
        allowed = _fmt_range(low, high, low_inclusive, high_inclusive)
        raise ValueError(f"{name} must be in the range {allowed}, got {out!r}")
    return out


def check_probability_level(level: Any, name: str = "level") -> float:
    """Validate a probability level in the open interval (0, 1), e.g. 0.9; return a float."""
    kw: dict[str, Any] = {"low": 0.0, "high": 1.0, "low_inclusive": False, "high_inclusive": False}
    try:
        return float(check_scalar(level, name, kind=float, **kw))
    except ValueError as exc:
        raise ValueError(f"{exc} (a level is a probability, e.g. 0.9 for 90%)") from None


def check_enum(value: Any, enum_cls: type[E], name: str) -> E:
    """Validate an option given as an enum member or its string value.

    Parameters
    ----------
    value : enum member or str
        A member of `enum_cls` or one of its values (matched case-insensitively).
    enum_cls : type of Enum
        A ``class X(str, Enum)`` options class.
    name : str
        Name of the argument, used in error messages.

    Raises
    ------
    TypeError
        If `value` is neither a str nor a member of `enum_cls`.
    ValueError
        If the string is not one of the allowed values.
    """
    allowed = ", ".join(repr(m.value) for m in enum_cls)
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, Enum) or not isinstance(value, str):
        raise TypeError(
            f"{name} must be one of {allowed} (a str or {enum_cls.__name__} member), got "
            f"{_type_name(value)} {value!r}"
        )
    for exact in (True, False):
        for member in enum_cls:
            if str(member.value) == value or (
                not exact and str(member.value).lower() == value.strip().lower()
            ):
                return member
    raise ValueError(f"unknown {name} {value!r}; allowed values are {allowed}")


# --------------------------------------------------------------------------- randomness


def as_generator(random_state: Any = None, name: str = "random_state") -> torch.Generator:
    """Resolve a seed-like argument into a CPU :class:`torch.Generator`.

    Parameters
    ----------
    random_state : None, int, torch.Generator, numpy.random.Generator or RandomState
        ``None``: fresh OS entropy; ``int >= 0``: ``torch.Generator().manual_seed(int)``;
        a ``torch.Generator`` is returned as is; a NumPy generator seeds a new torch
        generator with one integer drawn from it (advancing it).
    name : str, default="random_state"
        Name of the argument, used in error messages.

    Raises
    ------
    TypeError
        For floats, strings, bools and any other type.
    ValueError
        For negative integers or integers of 2**64 and above.
    """
    if isinstance(random_state, torch.Generator):
        return random_state
    if random_state is None:
        seed = int(np.random.SeedSequence().entropy) % 2**63
        return torch.Generator().manual_seed(seed)
    if isinstance(random_state, np.random.Generator):
        return torch.Generator().manual_seed(int(random_state.integers(0, 2**63)))
    if isinstance(random_state, np.random.RandomState):
        return torch.Generator().manual_seed(int(random_state.randint(0, 2**63, dtype=np.int64)))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool | np.bool_):
        seed = int(random_state)
        if not 0 <= seed < 2**64:
            raise ValueError(f"{name} must be an integer in [0, 2**64), got {seed}")
        return torch.Generator().manual_seed(seed)
    raise TypeError(
        f"{name} must be None, a non-negative int, a torch.Generator, or a "
        f"numpy.random.Generator / RandomState; got {_type_name(random_state)} {random_state!r}"
    )
