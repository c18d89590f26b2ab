"""Exponential likelihood for positive waiting times: a log-rate head, targets > 0."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from torch.distributions import Exponential, constraints

from varbayes.likelihoods.base import RateLikelihood, raise_at_first

__all__ = ["ExponentialLikelihood"]


class ExponentialLikelihood(RateLikelihood[Exponential]):
    """:math:`y \\sim \\mathrm{Exp}(rate(x))`, mean ``1 / rate``; targets are not standardised."""

    name: ClassVar[str] = "exponential"
    family = Exponential  # rate > 0
    support: ClassVar[constraints.Constraint] = constraints.positive  # torch's includes y = 0

    def check_target(self, y: np.ndarray, name: str = "y") -> None:
        """Raise ``ValueError`` naming the first row that is not > 0."""
        y = np.asarray(y, dtype=np.float64)
        raise_at_first(~(y > 0), y, name, "is not positive; the exponential likelihood needs "
                       "targets > 0 (waiting times)")
