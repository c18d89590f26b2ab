"""Neural-network building blocks: variational layers, conversion, heads, draws."""

from __future__ import annotations

from varbayes.nn.conv import BayesConv
from varbayes.nn.convert import bayesianize, convertible_layers
from varbayes.nn.folded import FoldedBayesLinear
from varbayes.nn.fullcov import FullCovLinear
from varbayes.nn.heads import GaussianHead
from varbayes.nn.layers import BayesLinear, Estimator, batched_linear
from varbayes.nn.parametrization import inverse_softplus, softplus_scale
from varbayes.nn.sampling import batchable, draws, fold, kl_divergence, unfold

__all__ = [
    "BayesConv",
    "BayesLinear",
    "Estimator",
    "FoldedBayesLinear",
    "FullCovLinear",
    "GaussianHead",
    "batchable",
    "batched_linear",
    "bayesianize",
    "convertible_layers",
    "draws",
    "fold",
    "inverse_softplus",
    "kl_divergence",
    "softplus_scale",
    "unfold",
]
