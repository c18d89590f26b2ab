"""Checks of scalar arguments: numbers, layer sizes, options and seeds.

The private half of :mod:`varbayes._validation`, which re-exports every name here; import them
from there. Every check raises :class:`TypeError` for a value of the wrong type and
:class:`ValueError` for a value of the right type outside its allowed range or set, and the
message names the argument, the value it got and what is allowed.

Examples
--------
>>> check_scalar(3, "epochs", kind=int, low=1)
3
>>> check_sizes(12, "hidden")
[12]
>>> check_choice("Fixed", ("fixed", "learned"), "noise")
'fixed'
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from enum import Enum
from typing import Any, TypeVar, cast

import numpy as np
import torch

__all__ = [
    "as_generator",
    "check_choice",
    "check_count",
    "check_enum",
    "check_nonnegative",
    "check_positive",
    "check_probability_level",
    "check_scalar",
    "check_sizes",
]

E = TypeVar("E", bound=Enum)


def _type_name(value: object) -> str:
    return type(value).__name__


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


def check_count(value: Any, name: str) -> int:
    """A positive integer (``int`` or NumPy integer, not bool): sizes, epochs, draws."""
    return int(check_scalar(value, name, kind=int, low=1))


def check_positive(value: Any, name: str) -> float:
    """A positive finite number: learning rates, scales, standard deviations."""
    return float(check_scalar(value, name, low=0.0, low_inclusive=False))


def check_nonnegative(value: Any, name: str) -> float:
    """A finite number >= 0: weights of terms, initial spreads."""
    return float(check_scalar(value, name, low=0.0))


def check_probability_level(level: Any, name: str = "level") -> float:
    """Validate a probability level in the open interval (0, 1), e.g. 0.9; return a float."""
    kw: dict[str, Any] = {"low": 0.0, "high": 1.0, "low_inclusive": False, "high_inclusive": False}
    try:
        return float(check_scalar(level, name, kind=float, **kw))
    except ValueError as exc:
        raise ValueError(f"{exc} (a level is a probability, e.g. 0.9 for 90%)") from None


def check_sizes(value: Any, name: str = "hidden") -> list[int]:
    """Validate layer sizes: an int (one layer) or a non-empty sequence of ints >= 1.

    Parameters
    ----------
    value : int or sequence of int
        E.g. ``50`` or ``[50, 50]``. A string is refused (``"12"`` is not ``[1, 2]``).
    name : str, default="hidden"
        Name of the argument, used in error messages.

    Returns
    -------
    list of int

    Raises
    ------
    TypeError
        For a string, a float, or any other non-integer size.
    ValueError
        For an empty sequence or a size below 1.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
        return [check_scalar(value, name, kind=int, low=1)]
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(
            f"{name} must be an int or a sequence of ints such as [50, 50], got "
            f"{_type_name(value)} {value!r}"
        )
    sizes = [check_scalar(h, f"{name}[{i}]", kind=int, low=1) for i, h in enumerate(value)]
    if not sizes:
        raise ValueError(f"{name} must list at least one layer size, got {value!r}")
    return sizes


def check_choice(value: Any, allowed: Sequence[str], name: str) -> str:
    """Validate a string option against ``allowed`` (matched case-insensitively).

    Raises
    ------
    TypeError
        If `value` is not a str.
    ValueError
        If it is none of the allowed values (all of which the message lists).
    """
    listed = ", ".join(repr(a) for a in allowed)
    if isinstance(value, Enum):
        value = value.value
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {listed}, got {_type_name(value)} {value!r}")
    for option in allowed:
        if option == value or option.lower() == value.strip().lower():
            return option
    raise ValueError(f"unknown {name} {value!r}; allowed values are {listed}")


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
        seed = int(cast(int, np.random.SeedSequence().entropy)) % 2**63  # an int when drawn
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
