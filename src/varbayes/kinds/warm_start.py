"""Variational inference started from a MAP fit (the "init from MAP" trick).

:func:`train_from_map` trains a mean-field network in two phases. First the means alone, as a
point estimate: every ``rho`` is held at :data:`POINT_RHO`, so each scale is about 6e-6 above
the layer's floor ``min_scale`` (1e-6 by default), and the objective is unchanged; its
closed-form KL is then a constant plus the prior's L2 penalty on the means,
``sum(mu^2) / (2 prior_scale^2)`` per data set, so the first phase is MAP with the prior as
weight decay (what ``MLPClassifier``'s ``alpha`` is).
Then every posterior scale is set to ``scale`` and the usual training (early stopping
included) goes on from those means. bayesian-torch's ``dnn_to_bnn`` and
:func:`varbayes.nn.bayesianize` start from trained weights the same way; ``docs/benchmarks.md``
measures it on scikit-learn's classification data sets.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from varbayes.infer import History
from varbayes.nn.meanfield import MeanField
from varbayes.nn.parametrization import inverse_softplus

__all__ = ["POINT_RHO", "check_map_scale", "set_scales", "train_from_map"]

#: ``rho`` of every scale while the means train as a point (``softplus(-12) ~ 6e-6``).
POINT_RHO = -12.0


def _layers(net: nn.Module) -> list[MeanField]:
    return [m for m in net.modules() if isinstance(m, MeanField)]


def _rhos(layer: MeanField) -> list[nn.Parameter]:
    return [p for p in (layer.weight_rho, layer.bias_rho) if p is not None]


def check_map_scale(net: nn.Module, scale: float) -> None:
    """``ValueError`` unless ``scale`` is above the scale floor of every mean-field layer."""
    for layer in _layers(net):
        if not scale > layer.min_scale:
            raise ValueError(f"map_scale={scale!r} must be above the layers' scale floor "
                             f"min_scale={layer.min_scale!r}")


@torch.no_grad()
def set_scales(net: nn.Module, scale: float) -> None:
    """Set every posterior standard deviation of ``net``'s mean-field layers to ``scale``.

    Raises
    ------
    ValueError
        If ``scale`` is not above a layer's floor ``min_scale``.
    """
    check_map_scale(net, scale)
    for layer in _layers(net):
        for rho in _rhos(layer):
            rho.fill_(inverse_softplus(scale - layer.min_scale))


def train_from_map(net: nn.Module, run: Callable[[int | None], History], *, map_epochs: int,
                   scale: float) -> History:
    """Train ``net`` as a point for ``map_epochs`` epochs, then by VI from scales ``scale``.

    ``run(epochs)`` trains ``net``: ``run(map_epochs)`` the first phase (no callbacks),
    ``run(None)`` the second with its own epochs and callbacks (e.g. early stopping), whose
    :class:`~varbayes.infer.History` is returned. The first phase holds the scales fixed
    (``requires_grad=False``), so it trains on the autograd loop.
    """
    rhos = [rho for layer in _layers(net) for rho in _rhos(layer)]
    with torch.no_grad():
        for rho in rhos:
            rho.fill_(POINT_RHO)
            rho.requires_grad_(False)
    try:
        run(map_epochs)
    finally:
        for rho in rhos:
            rho.requires_grad_(True)
    set_scales(net, scale)
    return run(None)
