"""Exponential likelihood for positive waiting times: a log-rate head, targets > 0."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
from torch import Tensor
from torch.distributions import Exponential, constraints

from varbayes.likelihoods.base import Likelihood

__all__ = ["ExponentialLikelihood"]


class ExponentialLikelihood(Likelihood):
    """:math:`y \\sim \\mathrm{Exp}(rate(x))`, mean ``1 / rate``; targets are not standardised."""

    name: ClassVar[str] = "exponential"
    params: ClassVar[tuple[str, ...]] = ("rate",)
    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "rate": constraints.positive,
    }
    support: ClassVar[constraints.Constraint] = constraints.positive
    standardize_target: ClassVar[bool] = False

    def distribution(self, params: Mapping[str, Tensor]) -> Exponential:
        """:class:`torch.distributions.Exponential` of the rate."""
        return Exponential(params["rate"], validate_args=False)

    def check_target(self, y: np.ndarray, name: str = "y") -> None:
        """Raise ``ValueError`` naming the first row that is not > 0."""
        y = np.asarray(y, dtype=np.float64)
        bad = ~(y > 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name}[{row}] = {float(y[row])!r} is not positive; the "
                             "exponential likelihood needs targets > 0 (waiting times)")
