"""Likelihood heads for your own networks: a raw output to the likelihood's parameters.

End a network in a head and :class:`varbayes.infer.ELBO`, :func:`varbayes.predictive` and
:mod:`varbayes.io` accept it: the head returns a ``dict`` of the parameters of a likelihood of
:mod:`varbayes.likelihoods` (for :class:`GaussianHead`, ``{"loc": ..., "scale": ...}``, each of
shape ``(batch,)``), which is what the objective scores and the predictive mixes.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(3, 2), GaussianHead("heteroscedastic"))
>>> sorted(net(torch.zeros(4, 3)))
['loc', 'scale']
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from varbayes._checks_scalar import check_positive
from varbayes.nn.parametrization import inverse_softplus, softplus_scale

__all__ = ["NOISE_KINDS", "GaussianHead"]

#: How a :class:`GaussianHead` sets the noise scale.
NOISE_KINDS = ("fixed", "learned", "heteroscedastic")


class GaussianHead(nn.Module):
    """Gaussian likelihood head: ``loc`` from the network, ``scale`` by the noise model.

    Parameters
    ----------
    noise : {'fixed', 'learned', 'heteroscedastic'}, default='heteroscedastic'
        ``'fixed'``: the scale is ``noise_std``; ``'learned'``: one learned scale starting at
        ``noise_std``; ``'heteroscedastic'``: the network outputs two columns, ``loc`` and a raw
        scale mapped by ``softplus(raw) + min_scale``.
    noise_std : float, default=0.1
    min_scale : float, default=1e-3
        Floor of a learned scale.

    Input: shape ``(batch, 1)`` or ``(batch,)`` (``(batch, 2)`` for ``'heteroscedastic'``).
    Output: ``{"loc": (batch,), "scale": (batch,)}``.
    """

    noise_std: Tensor

    def __init__(self, noise: str = "heteroscedastic", *, noise_std: float = 0.1,
                 min_scale: float = 1e-3) -> None:
        super().__init__()
        if noise not in NOISE_KINDS:
            raise ValueError(f"unknown noise {noise!r}; expected one of {list(NOISE_KINDS)}")
        self.noise = noise
        noise_std = check_positive(noise_std, "noise_std")
        self.min_scale = check_positive(min_scale, "min_scale")
        if noise == "fixed":
            self.register_buffer("noise_std", torch.tensor(float(noise_std)))
        elif noise == "learned":
            self.noise_rho = nn.Parameter(
                torch.tensor(inverse_softplus(max(noise_std - self.min_scale, 1e-6))))

    def forward(self, raw: Tensor) -> dict[str, Tensor]:
        """The parameters ``loc`` and ``scale`` of shape ``(batch,)``."""
        width = 2 if self.noise == "heteroscedastic" else 1
        if raw.dim() == 1 and width == 1:
            raw = raw.unsqueeze(-1)
        if raw.dim() != 2 or raw.shape[-1] != width:
            raise ValueError(f"GaussianHead(noise={self.noise!r}) takes inputs of shape "
                             f"(batch, {width}), got {tuple(raw.shape)}")
        loc = raw[..., 0]
        if self.noise == "heteroscedastic":
            scale = softplus_scale(raw[..., 1], self.min_scale)
        elif self.noise == "learned":
            scale = softplus_scale(self.noise_rho, self.min_scale).to(loc.dtype).expand_as(loc)
        else:
            scale = self.noise_std.to(loc.dtype).expand_as(loc)
        return {"loc": loc, "scale": scale}

    def extra_repr(self) -> str:
        """The noise model."""
        return f"noise={self.noise!r}"
