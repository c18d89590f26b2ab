"""Input checks shared by the estimator, the CLI and the functional API.

* **User-data checks** (``check_*`` and :func:`as_generator`) always run and raise
  :class:`ValueError` / :class:`TypeError` naming the argument, the offending value and a fix.
* **A validation switch** (:func:`set_validation`, :func:`is_validation_enabled`,
  :func:`validation_enabled`), as in ``torch.distributions``: it defaults to ``__debug__`` and
  governs only the *internal* consistency checks other modules run in hot paths. It never
  switches off the user-data checks.

The checks of scalar arguments (numbers, layer sizes, options, seeds) live in
:mod:`varbayes._checks_scalar` and are re-exported here. Where scikit-learn's estimator checks
pin a wording ("Complex data not supported", "Reshape your data", "0 feature(s) ... minimum of
1 is required", float()'s "argument must be a string or a real number"), the message contains it
as well as varbayes's own description of the row / column at fault.

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
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from varbayes._checks_scalar import (
    as_generator,
    check_choice,
    check_count,
    check_enum,
    check_nonnegative,
    check_positive,
    check_probability_level,
    check_scalar,
    check_sizes,
)

__all__ = [
    "as_generator", "check_X_y", "check_array", "check_choice", "check_count", "check_enum",
    "check_nonnegative", "check_positive",
    "check_probability_level", "check_scalar", "check_sizes", "check_target",
    "feature_names_of", "is_validation_enabled", "set_validation", "to_tensor",
    "validation_enabled",
]  # fmt: skip

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_MISSING_TYPES = ("NAType", "NaTType")

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


def to_tensor(
    a: Any, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Convert an array-like to a tensor, like ``torch.as_tensor``, also for read-only arrays.

    ``torch.as_tensor`` / ``torch.from_numpy`` share a NumPy array's memory and warn ("The given
    NumPy array is not writable") when the array is read-only, which pandas' ``.to_numpy()``,
    memory maps and broadcast views return. Such an array is copied first, so the tensor never
    aliases memory it must not write. Tensors are detached; other inputs go through
    ``np.asarray`` (pandas objects, lists, NumPy scalars).

    Parameters
    ----------
    a : array-like or Tensor
    dtype : torch.dtype or None
        Result dtype; ``None`` keeps the input's.
    device : torch.device, str or None
        Result device; ``None`` keeps a tensor's (the CPU for other inputs).

    Returns
    -------
    torch.Tensor
        Shares memory with a writeable NumPy array or tensor input when no conversion is needed.
    """
    if isinstance(a, torch.Tensor):
        return a.detach().to(device=device, dtype=dtype)
    arr = a if isinstance(a, np.ndarray) else np.asarray(a)
    if not arr.flags.writeable:
        arr = np.array(arr, copy=True)
    return torch.as_tensor(arr, dtype=dtype, device=device)


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


def _complex_message(name: str, dtype: object) -> str:
    return (
        f"Complex data not supported: {name} has complex dtype {dtype}; only real numbers "
        "are supported (pass the real part, or real and imaginary parts as separate features)"
    )


def _to_numpy(X: Any, name: str) -> np.ndarray:
    """Turn any supported container into a NumPy array (no dtype conversion yet)."""
    if X is None:
        raise TypeError(f"{name} is None; expected an array-like of numbers")
    _reject_sparse(X, name)
    if isinstance(X, torch.Tensor):
        t = X.detach()
        if t.is_complex():
            raise ValueError(_complex_message(name, t.dtype))
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
            except ValueError:
                raise ValueError(
                    f"{label} is not numeric: it contains {v!r} at "
                    f"row {i}. Convert it to numbers (e.g. one-hot encode categories) or drop it."
                ) from None
            except TypeError:  # float()'s own wording, which scikit-learn's checks expect
                raise TypeError(
                    f"{label} holds a {_type_name(v)} at row {i} ({v!r}); float() argument must "
                    "be a string or a real number. Convert the column to numbers or drop it."
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
        raise ValueError(_complex_message(name, arr.dtype))
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
        For sparse matrices, non-numeric dtypes (e.g. datetime), object cells that are neither
        numbers nor strings (e.g. a dict), and ``None``.
    ValueError
        For complex data, scalars, 1-D (unless `allow_1d`) or 3-D+ inputs, 0 rows, 0 columns,
        strings that are not numbers, NaN, +inf, -inf, or finite values beyond the float32
        range.
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
                f"{arr.shape}. Reshape your data with {name}.reshape(-1, 1) if it holds a single "
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
            f"{name} has 0 columns: 0 feature(s) (shape={arr.shape}) while a minimum of 1 is "
            "required."
        )
    out = _as_float64(arr, name, columns)
    _check_finite(out, name, columns)
    return out


def check_target(
    y: Any, n_samples: int | None = None, name: str = "y", *, x_name: str = "X"
) -> np.ndarray:
    """Validate a regression target and return it as a new float64 vector.

    Parameters
    ----------
    y : array-like of shape (n,) or (n, 1)
        Target values (NumPy, list, pandas Series / one-column DataFrame, torch tensor).
    n_samples : int or None, default=None
        Expected length (the number of rows of ``X``); ``None`` skips the length check.
    name : str, default="y"
        Name of the argument, used in error messages.
    x_name : str, default="X"
        Name of the features, used in the length-mismatch message.

    Returns
    -------
    ndarray of shape (n,)
        A freshly allocated float64 vector.

    Raises
    ------
    TypeError
        For sparse matrices or non-numeric dtypes.
    ValueError
        For complex values, multi-output targets, a length different from `n_samples`, an
        empty target, non-numeric values, NaN / inf or values beyond the float32 range.
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
            f"{name} has {arr.shape[0]} samples but {x_name} has {n_samples} rows; they must match"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty; at least one target value is required")
    out = _as_float64(arr.reshape(-1, 1), name, None, vector=True)[:, 0]
    _check_finite(out, name)
    return np.ascontiguousarray(out)


def check_X_y(
    X: Any, y: Any, *, allow_1d: bool = False, names: tuple[str, str] = ("X", "y")
) -> tuple[np.ndarray, np.ndarray]:
    """Validate features (n, d) and target (n,) together; see the two checks above.

    `names` are the argument names used in messages (e.g. ``("x", "y")`` for the functional
    API).

    Returns
    -------
    X : ndarray of shape (n, d)
    y : ndarray of shape (n,)
    """
    Xa = check_array(X, names[0], allow_1d=allow_1d)
    return Xa, check_target(y, Xa.shape[0], names[1], x_name=names[0])
