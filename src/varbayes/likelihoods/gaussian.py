"""The Gaussian likelihood, and the one Gaussian log-density of varbayes.

Every Gaussian log-density in the library (the ELBO's data term, the mixture predictive's
density, the metrics' NLL) is :func:`gaussian_log_prob`. The noise parametrisation (fixed,
learned homoscedastic, heteroscedastic) belongs to the model's head, which outputs ``loc`` and
``scale``; the likelihood only turns them into :math:`\\mathcal{N}(loc, scale^2)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

from torch import Tensor
from torch.distributions import Normal, constraints

from varbayes.likelihoods.base import Likelihood

__all__ = ["Gaussian", "gaussian_log_prob"]

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_log_prob(y: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    """Elementwise :math:`\\log \\mathcal{N}(y; loc, scale^2)`, broadcast.

    .. math:: -\\tfrac12 z^2 - \\log scale - \\tfrac12 \\log 2\\pi, \\qquad z = (y - loc) / scale

    The same value as ``torch.distributions.Normal(loc, scale).log_prob(y)``, without building
    the distribution object (this runs once per training step).
    """
    z = (y - loc) / scale
    return -0.5 * z * z - scale.log() - HALF_LOG_2PI


class Gaussian(Likelihood):
    """:math:`y \\sim \\mathcal{N}(loc(x), scale(x)^2)`; targets are standardised for training."""

    name: ClassVar[str] = "gaussian"
    params: ClassVar[tuple[str, ...]] = ("loc", "scale")
    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "loc": constraints.real, "scale": constraints.positive,
    }
    support: ClassVar[constraints.Constraint] = constraints.real
    standardize_target: ClassVar[bool] = True

    def distribution(self, params: Mapping[str, Tensor]) -> Normal:
        """:class:`torch.distributions.Normal` of the parameters (no argument validation)."""
        return Normal(params["loc"], params["scale"], validate_args=False)

    def log_prob(self, y: Tensor, params: Mapping[str, Tensor]) -> Tensor:
        """:func:`gaussian_log_prob` of ``y``."""
        return gaussian_log_prob(y, params["loc"], params["scale"])
