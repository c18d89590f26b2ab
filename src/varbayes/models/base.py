"""The model contract: what every varbayes network returns, and the pieces they share.

Every model maps standardised inputs ``x`` of shape ``(n, d)`` to Gaussian predictive
*components* per weight draw, through one call signature (the :class:`Model` protocol)::

    out = model(x, num_samples=S, generator=g, sample=True, kl=None)
    out.loc, out.scale   # shape (S, n) or (1, n) where the model has no weight uncertainty
    out.kl               # KL(q || prior) of the weights, or None

so that the predictive of ``y`` is the mixture
:math:`\\frac1S \\sum_s \\mathcal{N}(loc_s, scale_s^2)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum
from typing import NamedTuple, Protocol, cast, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "PREDICT_DTYPE",
    "Head",
    "Model",
    "ModelOutput",
]


class ModelOutput(NamedTuple):
    """Gaussian components of the predictive, one per sample index.

    Attributes
    ----------
    loc : Tensor of shape (S, n)
        Component means (``S = 1`` for models without weight uncertainty).
    scale : Tensor of shape (S, n) or (1, n)
        Component standard deviations (the aleatoric part).
    kl : Tensor or None
        KL of the weight posterior to the prior: a scalar (closed form) or shape ``(S,)``
        (Monte Carlo), ``None`` when not requested or not applicable.
    family : dict of str to Tensor, or None
        A head of another likelihood (:class:`~varbayes.models.FamilyMLP`) puts that
        likelihood's parameters here; ``loc`` and ``scale`` are then each component's mean and
        standard deviation (NaN for a categorical head, which has no scalar mean). ``None``:
        the Gaussian ``loc`` and ``scale``.
    """

    loc: Tensor
    scale: Tensor
    kl: Tensor | None = None
    family: dict[str, Tensor] | None = None

    @property
    def params(self) -> dict[str, Tensor]:
        """The likelihood's parameters (:class:`~varbayes.likelihoods.Gaussian`: loc, scale)."""
        if self.family is not None:
            return self.family
        return {"loc": self.loc, "scale": self.scale}


class Head(str, Enum):
    """Observation-noise head of a :class:`BayesianMLP`."""

    FIXED = "fixed"
    """A fixed noise standard deviation (the blog post uses 0.1)."""
    LEARNED = "learned"
    """One learned homoscedastic noise standard deviation (a point estimate)."""
    HETEROSCEDASTIC = "heteroscedastic"
    """Input-dependent noise sigma(x) = softplus(raw(x)) + min_scale, where raw(x) is a second
    output of the Bayesian network or, with ``noise_hidden``, a separate point-estimate MLP."""


@runtime_checkable
class Model(Protocol):
    """What the objectives, the training loop and the predictive rely on."""

    in_features: int
    training: bool

    def __call__(
        self, x: Tensor, num_samples: int = 1, *, generator: torch.Generator | None = None,
        sample: bool = True, kl: str | None = None,
    ) -> ModelOutput:
        """Components of the predictive at ``x`` for ``num_samples`` weight draws."""
        ...


def _init_linear(layer: nn.Linear, generator: torch.Generator | None) -> None:
    """PyTorch's default ``nn.Linear`` initialisation, drawn from ``generator``."""
    bound = 1.0 / math.sqrt(layer.in_features)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        if layer.bias is not None:
            layer.bias.uniform_(-bound, bound, generator=generator)


#: Prediction passes (eval mode, no autograd) return float64. BLAS picks its kernel by the
#: batch size and float32 kernels round differently, so in float32 a row predicted alone could
#: differ from the same row predicted in a batch by an ulp (~1e-7); in float64 the difference
#: (~1e-16) is far below anything an output resolves. The deterministic networks (noise net,
#: MLE, amortised VI) compute in float64. A :class:`~varbayes.models.BayesianMLP` computes in
#: float32 in fixed row blocks where that is checked to be batch-invariant bit for bit
#: (:mod:`varbayes.nn.rowblocks`), else in float64. Parameters, inputs and weight draws stay
#: float32 (the same random numbers); training is unchanged.
PREDICT_DTYPE = torch.float64


def _prediction_pass(module: nn.Module) -> bool:
    """Whether ``module`` runs a prediction pass: eval mode and no autograd."""
    return not module.training and not torch.is_grad_enabled()


def _run_mlp(net: nn.Sequential, x: Tensor) -> Tensor:
    """``net(x)``; on a prediction pass in :data:`PREDICT_DTYPE` (batch-invariant rows)."""
    if not _prediction_pass(net):
        return cast(Tensor, net(x))
    h = x.to(PREDICT_DTYPE)
    for module in net:
        if isinstance(module, nn.Linear):
            bias = None if module.bias is None else module.bias.to(PREDICT_DTYPE)
            h = F.linear(h, module.weight.to(PREDICT_DTYPE), bias)
        else:
            h = module(h)
    return h


def _mlp(sizes: Sequence[int], generator: torch.Generator | None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        linear = nn.Linear(a, b)
        _init_linear(linear, generator)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _check_sizes(in_features: int, hidden: Sequence[int]) -> tuple[int, ...]:
    if int(in_features) < 1:
        raise ValueError(f"in_features must be >= 1, got {in_features}")
    hidden = tuple(int(h) for h in hidden)
    if any(h < 1 for h in hidden):
        raise ValueError(f"hidden layer sizes must be >= 1, got {hidden}")
    return hidden


class _PointMLPs(nn.Module):
    """Base of the models of point-estimate MLPs: checked sizes, MLPs ``in -> hidden -> 1``."""

    def __init__(self, in_features: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.hidden = _check_sizes(in_features, hidden)
        self.in_features = int(in_features)

    def _mlp(self, generator: torch.Generator | None) -> nn.Sequential:
        """An MLP of the model's sizes and one output, initialised from ``generator``."""
        return _mlp((self.in_features, *self.hidden, 1), generator)
