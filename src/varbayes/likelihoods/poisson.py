"""Poisson likelihood for counts: a log-rate head; targets are never standardised."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from torch.distributions import Poisson

from varbayes.likelihoods.base import RateLikelihood, raise_at_first

__all__ = ["PoissonLikelihood", "check_counts"]


def check_counts(y: np.ndarray, name: str, likelihood: str) -> None:
    """Raise ``ValueError`` naming the first row of ``y`` that is not a non-negative integer."""
    y = np.asarray(y, dtype=np.float64)
    needs = f"the {likelihood} likelihood needs non-negative integer targets"
    raise_at_first(y < 0, y, name, f"is a negative count; {needs}")
    raise_at_first(y != np.round(y), y, name, f"is not an integer count; {needs}")


class PoissonLikelihood(RateLikelihood[Poisson]):
    """:math:`y \\sim \\mathrm{Poisson}(rate(x))`, ``rate = exp(log_rate)`` from the head."""

    name: ClassVar[str] = "poisson"
    family = Poisson  # rate >= 0, support: the non-negative integers

    def check_target(self, y: np.ndarray, name: str = "y") -> None:
        """Raise ``ValueError`` naming the first row that is negative or not an integer."""
        check_counts(y, name, self.name)
