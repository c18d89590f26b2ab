"""The mean-field Gaussian parameters of a variational layer, shared by BayesLinear and BayesConv.

Each weight and bias has the posterior :math:`\\mathcal{N}(\\mu, \\sigma^2)` with
:math:`\\sigma = \\operatorname{softplus}(\\rho) + \\sigma_{\\min}`
(:func:`~varbayes.nn.parametrization.softplus_scale`). :class:`MeanField` creates the
parameters ``weight_loc``, ``weight_rho`` (and ``bias_loc``, ``bias_rho``), initialises them,
maps ``rho`` to the scales and sums the closed-form KL to the prior, optionally centred per
weight (MOPED, Krishnan et al. 2020). The layers keep their own shapes, checks and forward.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from varbayes.nn.parametrization import softplus_scale
from varbayes.priors import GaussianPrior, Prior

__all__ = ["MeanField", "centred_kl"]


def centred_kl(prior: Prior, loc: Tensor, scale: Tensor, centre: Tensor | None) -> Tensor:
    """``prior.kl(loc, scale)`` with the prior's mean shifted by ``centre`` (elementwise)."""
    return prior.kl(loc if centre is None else loc - centre, scale)


class MeanField(nn.Module):
    """Base of the mean-field Gaussian layers: their parameters, initialisation, scales, KL."""

    weight_loc: nn.Parameter
    weight_rho: nn.Parameter
    bias_loc: nn.Parameter | None
    bias_rho: nn.Parameter | None

    def _mean_field(
        self, shape: tuple[int, ...], out_features: int, bias: bool, *, prior: Prior | None,
        min_scale: float, init_loc_std: float | None, init_rho: float,
        init_rho_bias: float | None, generator: torch.Generator | None,
    ) -> None:
        """Keep the options, create the parameters (weights of ``shape``) and initialise them."""
        self.prior = prior if prior is not None else GaussianPrior(0.0, 1.0)
        self.min_scale = float(min_scale)
        self.init_loc_std = init_loc_std
        self.init_rho = float(init_rho)
        self.init_rho_bias = float(init_rho if init_rho_bias is None else init_rho_bias)
        self.weight_loc = nn.Parameter(torch.empty(shape))
        self.weight_rho = nn.Parameter(torch.empty(shape))
        if bias:
            self.bias_loc = nn.Parameter(torch.empty(out_features))
            self.bias_rho = nn.Parameter(torch.empty(out_features))
        else:
            self.register_parameter("bias_loc", None)
            self.register_parameter("bias_rho", None)
        self.reset_parameters(generator)

    def _fan_in(self) -> int:
        """Inputs that feed one output unit (sets the default spread of the initial means)."""
        raise NotImplementedError

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Means ~ N(0, init_loc_std^2) (default ``1/sqrt(fan_in)``), rho constant + jitter.

        The bias means start at 0 and the bias ``rho`` at ``init_rho_bias``. On the ``meta``
        device (shapes only, :mod:`varbayes.io`'s checks) nothing is drawn: a random op there
        imports ``torch._dynamo``, seconds of CPU for nothing.
        """
        if self.weight_loc.is_meta:
            return
        std = self.init_loc_std
        if std is None:
            std = 1.0 / math.sqrt(self._fan_in())
        self.weight_loc.normal_(0.0, std, generator=generator)
        self.weight_rho.normal_(self.init_rho, 1e-3, generator=generator)
        if self.bias_loc is not None and self.bias_rho is not None:
            self.bias_loc.zero_()
            self.bias_rho.fill_(self.init_rho_bias)

    @property
    def weight_scale(self) -> Tensor:
        """Posterior standard deviation of the weights, ``softplus(rho) + min_scale``."""
        return softplus_scale(self.weight_rho, self.min_scale)

    @property
    def bias_scale(self) -> Tensor | None:
        """Posterior standard deviation of the bias, or ``None`` without bias."""
        return None if self.bias_rho is None else softplus_scale(self.bias_rho, self.min_scale)

    def _register_prior_centres(self) -> None:
        """Buffers ``weight_prior_loc`` / ``bias_prior_loc`` (``None``: the prior's own mean)."""
        self.register_buffer("weight_prior_loc", None)
        self.register_buffer("bias_prior_loc", None)

    def _kl(self, weight_centre: Tensor | None, bias_centre: Tensor | None) -> Tensor:
        """Closed-form KL(q || prior) summed over weights and bias, the prior centred as given."""
        kl = centred_kl(self.prior, self.weight_loc, self.weight_scale, weight_centre)
        bias_scale = self.bias_scale  # None exactly when bias_loc is None
        if self.bias_loc is not None and bias_scale is not None:
            kl = kl + centred_kl(self.prior, self.bias_loc, bias_scale, bias_centre)
        return kl
