"""Classification likelihoods: Bernoulli (one logit) and categorical (K logits).

Targets are class indices ``0 .. K-1`` (the front doors encode labels); they are never
standardised. Both likelihoods take the same parameter, ``logits`` of shape ``(..., K)``
(``K = 2`` for the Bernoulli: the head's one logit ``f`` becomes ``(0, f)``), so the predictive
code handles them alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
from torch import Tensor
from torch.distributions import Categorical, constraints

from varbayes.likelihoods.base import Likelihood
from varbayes.likelihoods.poisson import check_counts

__all__ = ["BernoulliLikelihood", "CategoricalLikelihood", "ClassLikelihood"]


class ClassLikelihood(Likelihood):
    """A likelihood over class indices, from ``logits`` of shape ``(..., K)``."""

    params: ClassVar[tuple[str, ...]] = ("logits",)
    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "logits": constraints.real_vector,
    }
    support: ClassVar[constraints.Constraint] = constraints.nonnegative_integer

    def distribution(self, params: Mapping[str, Tensor]) -> Categorical:
        """:class:`torch.distributions.Categorical` of the logits."""
        return Categorical(logits=params["logits"], validate_args=False)

    def log_prob(self, y: Tensor, params: Mapping[str, Tensor]) -> Tensor:
        """:math:`\\log p(y)` of class indices ``y`` (a float tensor of whole numbers)."""
        logits = params["logits"]
        log_p = logits - logits.logsumexp(-1, keepdim=True)
        index = y.long().expand(log_p.shape[:-1]).unsqueeze(-1)
        return log_p.gather(-1, index).squeeze(-1)

    def check_target(self, y: np.ndarray, name: str = "y") -> None:
        """Raise ``ValueError`` naming the first row that is not a class index."""
        check_counts(y, name, self.name)


class BernoulliLikelihood(ClassLikelihood):
    """Two classes: the head outputs one logit of class 1."""

    name: ClassVar[str] = "bernoulli"


class CategoricalLikelihood(ClassLikelihood):
    """``K >= 2`` classes: the head outputs ``K`` logits."""

    name: ClassVar[str] = "categorical"
