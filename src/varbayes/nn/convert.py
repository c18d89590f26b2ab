"""Make an existing network variational: :func:`bayesianize`.

``bayesianize(net)`` swaps the network's ``nn.Linear`` and ``nn.Conv1d/2d/3d`` for mean-field
variational layers (:class:`~varbayes.nn.folded.FoldedBayesLinear`,
:class:`~varbayes.nn.conv.BayesConv`) and keeps everything else, so the network's own
``forward`` runs unchanged. ``covariance='full'`` makes the linear layers
:class:`~varbayes.nn.fullcov.FullCovLinear` instead (a full covariance per output unit: for a
last layer, ``bayesianize(net, "last", covariance="full")``). ``init='pretrained'`` starts the
posterior means at the trained weights, with scales ``init_scale * |w|``;
``prior='pretrained'`` centres the prior on them (MOPED, Krishnan et al. 2020) with standard
deviation ``prior_scale``.

>>> import torch
>>> from torch import nn
>>> net = bayesianize(nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1)))
>>> type(net[0]).__name__, net(torch.zeros(5, 2)).shape
('FoldedBayesLinear', torch.Size([5, 1]))
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from varbayes._checks_scalar import check_positive
from varbayes.nn.conv import BayesConv
from varbayes.nn.folded import FoldedBayesLinear
from varbayes.nn.fullcov import FullCovLinear
from varbayes.nn.layers import Estimator
from varbayes.nn.sampling import VariationalLayer, variational_layers
from varbayes.priors import GaussianPrior, Prior

__all__ = ["MIN_INIT_SCALE", "bayesianize", "convertible_layers"]

_CONVS: dict[type[nn.Module], int] = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}
#: Floor of the initial posterior scale of a pretrained weight (``init_scale * |w|`` is 0 at 0).
MIN_INIT_SCALE = 1e-5


def _convertible(m: nn.Module) -> bool:
    if type(m) is nn.Linear:
        return True
    return type(m) in _CONVS and getattr(m, "padding_mode", "zeros") == "zeros"


def convertible_layers(module: nn.Module) -> list[str]:
    """Names (as in ``named_modules``) of the layers :func:`bayesianize` can convert, in order."""
    return [name for name, m in module.named_modules() if _convertible(m)]


def _rho(values: Tensor, init_scale: float) -> Tensor:
    scale = (values.abs() * init_scale).clamp_min(MIN_INIT_SCALE)
    return torch.log(torch.expm1(scale))  # inverse softplus (min_scale 1e-6 is below the floor)


_Convertible = nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d


def _convert_full(old: nn.Linear, *, prior: Prior | None, centred: bool, init: str,
                  init_scale: float, generator: torch.Generator | None) -> FullCovLinear:
    weight = old.weight.detach()
    bias = None if old.bias is None else old.bias.detach()
    new = FullCovLinear(old.in_features, old.out_features, bias is not None, prior=prior,
                        generator=generator).to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        if init == "pretrained":
            new.weight_loc.copy_(weight.t())
            if bias is not None and new.bias_loc is not None:
                new.bias_loc.copy_(bias)
            new.set_scale((new.unit_loc.abs() * init_scale).clamp_min(MIN_INIT_SCALE))
    if centred:
        new.weight_prior_loc = weight.t().clone()
        new.bias_prior_loc = None if bias is None else bias.clone()
    new.train(old.training)
    return new


def _convert(old: _Convertible, *, prior: Prior | str | None, prior_scale: float, init: str,
             init_scale: float, estimator: Estimator | str, covariance: str,
             generator: torch.Generator | None) -> nn.Module:
    weight = old.weight.detach()
    bias = None if old.bias is None else old.bias.detach()
    layer_prior = GaussianPrior(0.0, prior_scale) if prior == "pretrained" else (
        prior if isinstance(prior, Prior) else None)
    if covariance == "full" and isinstance(old, nn.Linear):
        return _convert_full(old, prior=layer_prior, centred=prior == "pretrained", init=init,
                             init_scale=init_scale, generator=generator)
    opts = dict(bias=bias is not None, prior=layer_prior, estimator=estimator,
                generator=generator)
    new: FoldedBayesLinear | BayesConv
    if isinstance(old, nn.Linear):
        new = FoldedBayesLinear(old.in_features, old.out_features, **opts)
        loc = weight.t()
    else:
        conv = old
        new = BayesConv(_CONVS[type(conv)], conv.in_channels, conv.out_channels,
                        conv.kernel_size, conv.stride,
                        conv.padding if isinstance(conv.padding, str) else tuple(conv.padding),
                        conv.dilation, conv.groups, **opts)  # type: ignore[arg-type]
        loc = weight
    new = new.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        if init == "pretrained":
            new.weight_loc.copy_(loc)
            new.weight_rho.copy_(_rho(loc, init_scale))
            if bias is not None and new.bias_loc is not None and new.bias_rho is not None:
                new.bias_loc.copy_(bias)
                new.bias_rho.copy_(_rho(bias, init_scale))
    if prior == "pretrained":
        new.weight_prior_loc = loc.clone()
        new.bias_prior_loc = None if bias is None else bias.clone()
    new.train(old.training)
    return new


def bayesianize(
    module: nn.Module,
    layers: str | Sequence[str] = "all",
    *,
    prior: Prior | str | None = None,
    prior_scale: float = 1.0,
    init: str = "pretrained",
    init_scale: float = 0.1,
    estimator: Estimator | str = Estimator.REPARAM,
    covariance: str = "diagonal",
    inplace: bool = False,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Replace linear and convolution layers of ``module`` by variational ones.

    Parameters
    ----------
    module : nn.Module
        Any network; its ``forward`` is kept.
    layers : 'all', 'last' or sequence of str, default='all'
        Which layers: every convertible one, the last one in registration order
        (``named_modules``), or these names (from :func:`convertible_layers`).
    prior : Prior, 'pretrained' or None, default=None
        The weight prior; ``None``: :math:`\\mathcal{N}(0, 1)`; ``'pretrained'``: centred on
        each layer's current weights with standard deviation ``prior_scale`` (MOPED).
    prior_scale : float, default=1.0
        Prior standard deviation of ``prior='pretrained'``.
    init : {'pretrained', 'default'}, default='pretrained'
        ``'pretrained'``: posterior means at the current weights, scales ``init_scale * |w|``
        (at least :data:`MIN_INIT_SCALE`); ``'default'``: a fresh initialisation (means
        ~ N(0, 1/fan_in), rho -5).
    init_scale : float, default=0.1
        Relative initial posterior scale of ``init='pretrained'``.
    estimator : {'reparam', 'local', 'flipout'}, default='reparam'
        Gradient estimator of every new mean-field layer (prediction always samples whole
        weights; a full-covariance layer trains with the local reparameterisation).
    covariance : {'diagonal', 'full'}, default='diagonal'
        ``'diagonal'``: mean-field layers. ``'full'``: each chosen ``nn.Linear`` becomes a
        :class:`~varbayes.nn.fullcov.FullCovLinear`, a full-covariance Gaussian per output unit
        (``d^2`` parameters per unit for ``d`` inputs: meant for the last layer); it takes a
        Gaussian prior only, and convolutions cannot be chosen with it.
    inplace : bool, default=False
        Convert ``module`` itself; otherwise a deep copy.
    generator : torch.Generator or None
        Random source of ``init='default'``.

    Returns
    -------
    nn.Module
        The converted network. Layers with parameters that cannot be converted (normalisation,
        embeddings, padding modes other than zeros, transposed convolutions, ...) stay
        deterministic (point estimates) and are listed in one ``UserWarning`` when
        ``layers='all'``.

    Raises
    ------
    ValueError
        For an unknown option, a name in ``layers`` that is not a convertible layer, a
        network with nothing to convert, or ``covariance='full'`` with a convolution chosen
        or a prior other than a Gaussian.
    """
    if init not in ("pretrained", "default"):
        raise ValueError(f"init must be 'pretrained' or 'default', got {init!r}")
    if isinstance(prior, str) and prior != "pretrained":
        raise ValueError(f"prior must be a Prior, 'pretrained' or None, got {prior!r}")
    if prior is not None and not isinstance(prior, str | Prior):
        raise TypeError(f"prior must be a Prior, 'pretrained' or None, got {type(prior).__name__}")
    prior_scale = check_positive(prior_scale, "prior_scale")
    init_scale = check_positive(init_scale, "init_scale")
    Estimator(estimator)  # raises ValueError for an unknown estimator
    if covariance not in ("diagonal", "full"):
        raise ValueError(f"covariance must be 'diagonal' or 'full', got {covariance!r}")
    if covariance == "full" and isinstance(prior, Prior) and not isinstance(prior, GaussianPrior):
        raise ValueError(f"covariance='full' needs a GaussianPrior (or 'pretrained' / None), "
                         f"got {type(prior).__name__}: its KL to a correlated Gaussian has no "
                         "closed form")
    net = module if inplace else copy.deepcopy(module)
    names = convertible_layers(net)
    if isinstance(layers, str):
        if layers not in ("all", "last"):
            raise ValueError(f"layers must be 'all', 'last' or a list of layer names, "
                             f"got {layers!r}")
        chosen = names if layers == "all" else names[-1:]
    else:
        chosen = [str(n) for n in layers]
        unknown = [n for n in chosen if n not in names]
        if unknown:
            raise ValueError(f"layers {unknown} are not convertible layers of "
                             f"{type(module).__name__}; convertible: {names}")
    if not chosen:
        raise ValueError(f"{type(module).__name__} has no nn.Linear or nn.Conv1d/2d/3d layer "
                         "to convert" + (" (it already holds variational layers)"
                                         if variational_layers(net) else ""))
    convs = [n for n in chosen if not isinstance(net.get_submodule(n), nn.Linear)]
    if covariance == "full" and convs:
        raise ValueError(f"covariance='full' converts nn.Linear layers only; {convs} are "
                         "convolutions (choose the linear layers by name, or 'last')")
    if layers == "all":
        left = [f"{name or '(root)'} ({type(m).__name__})" for name, m in net.named_modules()
                if not _convertible(m) and not isinstance(m, VariationalLayer)
                and any(True for _ in m.parameters(recurse=False))]
        if left:
            warnings.warn("bayesianize: these layers have parameters but no variational "
                          f"version, they stay deterministic (point estimates): {left}",
                          UserWarning, stacklevel=2)
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = net.get_submodule(parent_name)
        setattr(parent, child, _convert(
            cast(_Convertible, getattr(parent, child)), prior=prior, prior_scale=prior_scale,
            init=init, init_scale=init_scale, estimator=estimator, covariance=covariance,
            generator=generator))
    return net
