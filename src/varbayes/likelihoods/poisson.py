"""Poisson likelihood for counts: a log-rate head; targets are never standardised."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
from torch import Tensor
from torch.distributions import Poisson, constraints

from varbayes.likelihoods.base import Likelihood

__all__ = ["PoissonLikelihood", "check_counts"]


def check_counts(y: np.ndarray, name: str, likelihood: str) -> None:
    """Raise ``ValueError`` naming the first row of ``y`` that is not a non-negative integer."""
    y = np.asarray(y, dtype=np.float64)
    negative = y < 0
    if negative.any():
        row = int(np.flatnonzero(negative)[0])
        raise ValueError(f"{name}[{row}] = {float(y[row])!r} is a negative count; the "
                         f"{likelihood} likelihood needs non-negative integer targets")
    fraction = y != np.round(y)
    if fraction.any():
        row = int(np.flatnonzero(fraction)[0])
        raise ValueError(f"{name}[{row}] = {float(y[row])!r} is not an integer count; the "
                         f"{likelihood} likelihood needs non-negative integer targets")


class PoissonLikelihood(Likelihood):
    """:math:`y \\sim \\mathrm{Poisson}(rate(x))`, ``rate = exp(log_rate)`` from the head."""

    name: ClassVar[str] = "poisson"
    params: ClassVar[tuple[str, ...]] = ("rate",)
    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "rate": constraints.nonnegative,
    }
    support: ClassVar[constraints.Constraint] = constraints.nonnegative_integer
    standardize_target: ClassVar[bool] = False

    def distribution(self, params: Mapping[str, Tensor]) -> Poisson:
        """:class:`torch.distributions.Poisson` of the rate."""
        return Poisson(params["rate"], validate_args=False)

    def check_target(self, y: np.ndarray, name: str = "y") -> None:
        """Raise ``ValueError`` naming the first row that is negative or not an integer."""
        check_counts(y, name, self.name)
