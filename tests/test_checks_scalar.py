"""The scalar checks of ``varbayes._checks_scalar`` (re-exported by ``varbayes._validation``).

Scalars, probability levels, enums and choices, layer sizes, and ``random_state`` to generator.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import pytest
import torch

import varbayes._validation as V
from varbayes._checks_scalar import (
    as_generator,
    check_choice,
    check_enum,
    check_probability_level,
    check_scalar,
    check_sizes,
)

# --------------------------------------------------------------------------- scalars


def test_check_scalar_ok() -> None:
    assert check_scalar(3, "n", kind=int, low=1) == 3
    assert type(check_scalar(np.int64(3), "n", kind=int)) is int
    assert check_scalar(2, "lr", low=0, low_inclusive=False) == 2.0
    assert type(check_scalar(np.float32(0.5), "lr")) is float


@pytest.mark.parametrize("value", [True, np.bool_(False)])
def test_check_scalar_rejects_bool(value: object) -> None:
    with pytest.raises(TypeError, match="n_epochs must be an int, got bool"):
        check_scalar(value, "n_epochs", kind=int)
    with pytest.raises(TypeError, match="lr must be a float, got bool"):
        check_scalar(value, "lr")


def test_check_scalar_type_errors() -> None:
    with pytest.raises(TypeError, match=r"n_epochs must be an int, got float 10\.0"):
        check_scalar(10.0, "n_epochs", kind=int)
    with pytest.raises(TypeError, match=r"lr must be a float, got str '0\.1'"):
        check_scalar("0.1", "lr")
    with pytest.raises(TypeError, match="kind must be int or float"):
        check_scalar(1, "x", kind=str)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_check_scalar_non_finite(value: float) -> None:
    with pytest.raises(ValueError, match="lr must be a finite number"):
        check_scalar(value, "lr")


def test_check_scalar_ranges() -> None:
    with pytest.raises(ValueError, match=r"n_epochs must be in the range \[0, inf\), got -1"):
        check_scalar(-1, "n_epochs", kind=int, low=0)
    with pytest.raises(ValueError, match=r"lr must be in the range \(0, inf\), got 0\.0"):
        check_scalar(0, "lr", low=0, low_inclusive=False)
    with pytest.raises(ValueError, match=r"\(-inf, 1\], got 2\.0"):
        check_scalar(2.0, "p", high=1)
    with pytest.raises(ValueError, match=r"\[1, 5\), got 5"):
        check_scalar(5, "k", kind=int, low=1, high=5, high_inclusive=False)
    assert check_scalar(5, "k", kind=int, low=1, high=5) == 5


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1])
def test_probability_level_bad(level: float) -> None:
    with pytest.raises(ValueError, match=r"level must be in the range \(0\.0, 1\.0\)"):
        check_probability_level(level)


def test_probability_level_ok_and_types() -> None:
    assert check_probability_level(0.9) == 0.9
    with pytest.raises(ValueError, match="coverage must be a finite number"):
        check_probability_level(np.nan, "coverage")
    with pytest.raises(TypeError, match="level must be a float"):
        check_probability_level("0.9")


class _Mode(str, Enum):
    SAMPLE = "sample"
    MEAN = "mean"


class _Other(str, Enum):
    SAMPLE = "sample"


def test_check_enum() -> None:
    assert check_enum("sample", _Mode, "mode") is _Mode.SAMPLE
    assert check_enum(_Mode.MEAN, _Mode, "mode") is _Mode.MEAN
    assert check_enum(" MEAN", _Mode, "mode") is _Mode.MEAN
    with pytest.raises(
        ValueError, match=r"unknown mode 'median'; allowed values are 'sample', 'mean'"
    ):
        check_enum("median", _Mode, "mode")
    with pytest.raises(TypeError, match=r"mode must be one of 'sample', 'mean'.*got int 3"):
        check_enum(3, _Mode, "mode")
    with pytest.raises(TypeError, match="got _Other"):
        check_enum(_Other.SAMPLE, _Mode, "mode")


# --------------------------------------------------------------------------- generators


def test_as_generator_int_reproducible() -> None:
    a = torch.rand(3, generator=as_generator(7))
    b = torch.rand(3, generator=as_generator(np.int64(7)))
    assert torch.equal(a, b)
    assert torch.equal(a, torch.rand(3, generator=torch.Generator().manual_seed(7)))


def test_as_generator_passthrough_and_none() -> None:
    g = torch.Generator()
    assert as_generator(g) is g
    g1, g2 = as_generator(None), as_generator(None)
    assert isinstance(g1, torch.Generator)
    assert g1.initial_seed() != g2.initial_seed()
    assert 0 <= g1.initial_seed() < 2**63


def test_as_generator_from_numpy() -> None:
    s1 = as_generator(np.random.default_rng(3)).initial_seed()
    s2 = as_generator(np.random.default_rng(3)).initial_seed()
    assert s1 == s2
    rs = np.random.RandomState(5)
    s3 = as_generator(rs).initial_seed()
    assert s3 == as_generator(np.random.RandomState(5)).initial_seed()
    assert as_generator(rs).initial_seed() != s3  # the numpy generator was advanced


@pytest.mark.parametrize("bad", [0.5, "42", True, [1], 1.0])
def test_as_generator_type_errors(bad: object) -> None:
    with pytest.raises(TypeError, match=r"random_state must be None, a non-negative int, a torch"):
        as_generator(bad)


@pytest.mark.parametrize("bad", [-1, 2**64])
def test_as_generator_range(bad: int) -> None:
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*64\)"):
        as_generator(bad, "seed")


# --------------------------------------------------------------------------- sizes and choices


def test_check_sizes() -> None:
    assert check_sizes(12) == [12]
    assert check_sizes(np.int64(3)) == [3]
    assert check_sizes((4, 5)) == [4, 5]
    assert check_sizes(np.array([2, 3])) == [2, 3]
    with pytest.raises(TypeError, match=r"hidden must be an int or a sequence of ints.*str '12'"):
        check_sizes("12")  # not silently [1, 2]
    with pytest.raises(TypeError, match=r"hidden\[1\] must be an int, got float 2\.5"):
        check_sizes([3, 2.5])
    with pytest.raises(TypeError, match="noise_hidden must be an int or a sequence"):
        check_sizes(2.0, "noise_hidden")
    with pytest.raises(TypeError, match="got bool"):
        check_sizes(True)
    with pytest.raises(ValueError, match=r"hidden\[0\] must be in the range \[1, inf\), got 0"):
        check_sizes([0])
    with pytest.raises(ValueError, match="at least one layer size"):
        check_sizes([])


def test_check_choice() -> None:
    assert check_choice("fixed", ("fixed", "learned"), "noise") == "fixed"
    assert check_choice(" Learned", ("fixed", "learned"), "noise") == "learned"
    assert check_choice(_Mode.MEAN, ("sample", "mean"), "mode") == "mean"
    with pytest.raises(
        ValueError, match=r"unknown noise 'loud'; allowed values are 'fixed', 'learned'"
    ):
        check_choice("loud", ("fixed", "learned"), "noise")
    with pytest.raises(TypeError, match=r"noise must be one of 'fixed', 'learned', got float"):
        check_choice(0.1, ("fixed", "learned"), "noise")


def test_scalar_checks_are_reexported() -> None:
    import varbayes._checks_scalar as S

    for name in S.__all__:
        assert getattr(V, name) is getattr(S, name), name
        assert name in V.__all__
