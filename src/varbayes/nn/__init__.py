"""Neural-network building blocks: the mean-field variational linear layer and its parts."""

from __future__ import annotations

from varbayes.nn.layers import BayesLinear, Estimator, batched_linear, kl_divergence
from varbayes.nn.parametrization import inverse_softplus, softplus_scale

__all__ = [
    "BayesLinear",
    "Estimator",
    "batched_linear",
    "inverse_softplus",
    "kl_divergence",
    "softplus_scale",
]
