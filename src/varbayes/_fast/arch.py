"""What models must share to be stacked (:class:`varbayes._fast.stack.BayesianMLPStack`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from varbayes._fast.classes import CLASS_HEADS
from varbayes.models import BayesianMLP, FamilyMLP, Head
from varbayes.nn.layers import BayesLinear, Estimator
from varbayes.priors import GaussianPrior

__all__ = ["ESTIMATORS", "HEADS", "Arch", "stack_architecture"]

#: The heads and estimators whose gradients this module derives: the whitelist. Anything else
#: (a new head or estimator included) is refused by :func:`stack_architecture` and so trains on
#: the autograd path; every branch of the stack on a head or estimator covers exactly these members.
HEADS = frozenset({Head.FIXED, Head.LEARNED, Head.HETEROSCEDASTIC})
ESTIMATORS = frozenset({Estimator.REPARAM, Estimator.LOCAL, Estimator.FLIPOUT})


@dataclass(frozen=True)
class Arch:
    """Everything two models must share to be stacked."""

    sizes: tuple[int, ...]
    likelihood: str  # 'gaussian' (a BayesianMLP) or one of CLASS_HEADS (a FamilyMLP)
    noise_sizes: tuple[int, ...] | None
    head: Head
    estimator: Estimator
    prior: tuple[float, float]
    floor: float
    min_scale: float
    dtype: torch.dtype
    device: torch.device
    frozen: tuple[bool, ...]  # per parameter of model.parameters(): requires_grad is False


def stack_architecture(model: nn.Module) -> Arch:
    """Describe ``model`` for stacking, or raise ``ValueError`` naming what is not supported."""
    likelihood = "gaussian"
    if type(model) is FamilyMLP:  # a BayesianMLP with a fixed head, replaced by the likelihood's
        if model.likelihood not in CLASS_HEADS:
            raise ValueError(f"has no gradients for the {model.likelihood!r} likelihood head")
        likelihood = model.likelihood
    elif type(model) is not BayesianMLP:
        raise ValueError(f"needs a BayesianMLP, got {type(model).__name__}")
    if model.head not in HEADS:
        raise ValueError(f"has no gradients for the head {model.head.value!r}")
    layers = list(model.layers)
    if not all(type(m) is BayesLinear and m.bias_loc is not None for m in layers):
        raise ValueError("needs BayesLinear layers with a bias")
    if len({(m.estimator, m.min_scale) for m in layers}) != 1:
        raise ValueError("needs one estimator and one min_scale for all layers")
    if layers[0].estimator not in ESTIMATORS:
        raise ValueError(f"has no gradients for the estimator {layers[0].estimator.value!r}")
    priors = {(type(m.prior), getattr(m.prior, "loc", None), getattr(m.prior, "scale", None))
              for m in layers}
    kind, loc, scale = priors.pop()
    if priors or kind is not GaussianPrior:
        raise ValueError("needs one GaussianPrior for all layers (closed-form KL)")
    noise_sizes = None
    if model.noise_hidden is not None:
        linears = cast("list[nn.Linear]", list(model.noise_net)[0::2])  # checked next
        if not all(type(m) is nn.Linear and m.bias is not None for m in linears) or not all(
                type(m) is nn.ReLU for m in list(model.noise_net)[1::2]):
            raise ValueError("needs a noise network of Linear and ReLU layers")
        noise_sizes = (linears[0].in_features, *(m.out_features for m in linears))
    params = list(model.parameters())
    if len({(p.dtype, p.device) for p in params}) != 1:
        raise ValueError("needs parameters of one dtype and device")
    if any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
           for m in model.modules()):
        raise ValueError("the model has hooks; they run only on the autograd path")
    sizes = (layers[0].in_features, *(m.out_features for m in layers))
    prior = (cast(float, loc), cast(float, scale))  # a GaussianPrior's, checked above
    return Arch(sizes, likelihood, noise_sizes, model.head, layers[0].estimator, prior,
                 layers[0].min_scale, model.min_scale, params[0].dtype, params[0].device,
                 tuple(not p.requires_grad for p in params))
