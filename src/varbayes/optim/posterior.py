"""IVON's posterior kept inside a varbayes model: what ``method='ivon'`` trains, saves and loads.

A model of the ``bbb``, ``hetero`` or ``family`` kind trained with ``method='ivon'``
(:mod:`varbayes.kinds.ivon`) is the kind's own network evaluated at its weight means, an
ordinary deterministic MLP as far as training sees: :class:`~varbayes.optim.IVON` perturbs the
means itself. Its posterior lives in the model, so that every predictive, save and load path of
the kind works on it unchanged:

* the means are the network's parameters (``weight_loc``, ``bias_loc`` of each
  :class:`~varbayes.nn.BayesLinear`, and the point-estimate parts of the head);
* :class:`IVONPosterior`, attached as ``model.ivon``, holds IVON's Hessian estimate of every one
  of those parameters, the effective sample size ``ess`` and the weight decay ``weight_decay``
  as buffers (saved in ``model.safetensors`` like any other tensor);
* :func:`sync_scales` writes the posterior standard deviations
  :math:`1/\\sqrt{ess\\,(h + \\delta)}` into the layers' ``weight_rho`` and ``bias_rho``, so the
  layers draw their weights from IVON's posterior. :func:`check_posterior` refuses a model whose
  scales do not follow from its Hessian estimate (a tampered directory).

The head's point-estimate parameters (the ``hetero`` noise network, a learned noise, the
Student-t degrees of freedom) have a Hessian estimate too, but are predicted at their means,
as the kind predicts them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from varbayes.nn.layers import BayesLinear
from varbayes.nn.parametrization import inverse_softplus_scale, softplus_scale

__all__ = ["IVONPosterior", "check_posterior", "held_parameters", "posterior_of", "sync_scales"]


def _key(name: str) -> str:
    return "hess_" + name.replace(".", "_")


def held_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters IVON trains: every one but the ``rho`` of the variational layers."""
    rhos = {id(p) for m in model.modules() if isinstance(m, BayesLinear)
            for p in (m.weight_rho, m.bias_rho) if p is not None}
    return [(n, p) for n, p in model.named_parameters() if id(p) not in rhos]


class IVONPosterior(nn.Module):
    """IVON's Hessian estimate of a model's parameters, its ``ess`` and weight decay, as buffers.

    Parameters
    ----------
    shapes : dict of str to tuple of int
        The held parameters (:func:`held_parameters`) by name, and their shapes.
    hess_init : float
        The Hessian estimate before training (IVON's :math:`h_0`).
    prior_scale : float
        Standard deviation of the Gaussian prior: the weight decay is
        :math:`\\delta = 1 / (ess \\cdot prior\\_scale^2)` once ``ess`` is known (:meth:`start`).
    ess : float or None
        Effective sample size; ``None``: the number of training rows, set by :meth:`start`.
    beta2, mc_samples, clip_radius
        IVON's settings for training (kept in the model's ``config``, not in the buffers).
    """

    ess: Tensor
    weight_decay: Tensor

    def __init__(self, shapes: dict[str, tuple[int, ...]], *, hess_init: float,
                 prior_scale: float, ess: float | None = None, beta2: float = 0.999,
                 mc_samples: int = 1, clip_radius: float = math.inf) -> None:
        super().__init__()
        self.names = list(shapes)
        self.hess_init, self.prior_scale = float(hess_init), float(prior_scale)
        self.fixed_ess, self.beta2, self.mc_samples = ess, float(beta2), int(mc_samples)
        self.clip_radius = float(clip_radius)
        for name, shape in shapes.items():
            self.register_buffer(_key(name), torch.full(shape, self.hess_init))
        self.register_buffer("ess", torch.tensor(1.0 if ess is None else float(ess)))
        self.register_buffer("weight_decay", torch.tensor(0.0))

    def hessian(self, name: str) -> Tensor:
        """The Hessian estimate of parameter ``name`` (the buffer itself: IVON updates it)."""
        return getattr(self, _key(name))  # type: ignore[no-any-return]

    def scale(self, name: str) -> Tensor:
        """Posterior standard deviation of parameter ``name``: ``1/sqrt(ess (h + wd))``."""
        return torch.rsqrt(self.ess * (self.hessian(name) + self.weight_decay))

    def start(self, n_data: int) -> tuple[float, float]:
        """Reset the Hessian estimate and set ``ess`` (``n_data`` unless fixed) and the decay."""
        ess = float(n_data if self.fixed_ess is None else self.fixed_ess)
        with torch.no_grad():
            for name in self.names:
                self.hessian(name).fill_(self.hess_init)
            self.ess.fill_(ess)
            self.weight_decay.fill_(1.0 / (ess * self.prior_scale ** 2))
        return ess, float(self.weight_decay)


def posterior_of(model: nn.Module) -> IVONPosterior | None:
    """The :class:`IVONPosterior` attached to ``model`` as ``model.ivon``, or ``None``."""
    found = getattr(model, "ivon", None)
    return found if isinstance(found, IVONPosterior) else None


def _layer_scales(model: nn.Module, posterior: IVONPosterior
                  ) -> list[tuple[nn.Parameter, Tensor, float]]:
    """``(rho, posterior scale, floor)`` of every weight and bias of the variational layers."""
    out = []
    for prefix, m in model.named_modules():
        if not isinstance(m, BayesLinear):
            continue
        for part in ("weight", "bias"):
            rho = getattr(m, f"{part}_rho")
            if rho is not None:
                out.append((rho, posterior.scale(f"{prefix}.{part}_loc"), m.min_scale))
    return out


@torch.no_grad()
def sync_scales(model: nn.Module) -> None:
    """Set the variational layers' scales to IVON's posterior scales (``model.ivon``)."""
    posterior = posterior_of(model)
    if posterior is None:
        raise TypeError(f"{type(model).__name__} holds no IVON posterior (model.ivon)")
    for rho, scale, floor in _layer_scales(model, posterior):
        rho.copy_(inverse_softplus_scale(scale, floor))


@torch.no_grad()
def check_posterior(model: nn.Module) -> list[str]:
    """What is wrong with a loaded IVON posterior (empty: nothing).

    The Hessian estimate must be >= 0, ``ess`` > 0 and ``weight_decay`` >= 0 with
    ``h + weight_decay > 0``, and every layer's scale must be the one the Hessian estimate gives
    (to a relative 1e-4: both are float32 functions of the same numbers).
    """
    posterior = posterior_of(model)
    if posterior is None:
        return ["the model holds no IVON posterior"]
    problems = []
    if not float(posterior.ess) > 0:
        problems.append(f"'ess' must be > 0, got {float(posterior.ess)!r}")
    if not float(posterior.weight_decay) >= 0:
        problems.append(f"'weight_decay' must be >= 0, got {float(posterior.weight_decay)!r}")
    for name in posterior.names:
        hess = posterior.hessian(name)
        if bool((hess < 0).any()) or bool((hess + posterior.weight_decay <= 0).any()):
            problems.append(f"the Hessian estimate of {name!r} must be >= 0 (and > 0 where the "
                            "weight decay is 0)")
    if problems:
        return problems
    for rho, scale, floor in _layer_scales(model, posterior):
        expected = scale.clamp_min(floor)
        if not torch.allclose(softplus_scale(rho, floor), expected, rtol=1e-4, atol=0.0):
            problems.append("the layers' posterior scales (weight_rho, bias_rho) do not follow "
                            "from the IVON Hessian estimate, ess and weight_decay")
            break
    return problems
