"""Weight priors for Bayesian layers, and the KL divergence to them.

A prior is a small immutable object. It builds a :class:`torch.distributions.Distribution`
on the device and dtype of the variational parameters it is compared with, so the same prior
object serves a model on any device.

Two priors are provided:

* :class:`GaussianPrior` -- :math:`w \\sim \\mathcal{N}(\\mu_0, \\sigma_0^2)` (the blog post uses
  :math:`\\mathcal{N}(0, 1)`). Its KL to a mean-field Gaussian posterior has a closed form, taken
  from the :func:`torch.distributions.kl_divergence` registry.
* :class:`ScaleMixturePrior` -- the two-component scale mixture of Blundell et al. (2015),
  :math:`\\pi \\mathcal{N}(0, \\sigma_1^2) + (1 - \\pi) \\mathcal{N}(0, \\sigma_2^2)`. Its KL has no
  closed form; callers fall back to the Monte-Carlo estimate :math:`\\log q(w) - \\log p(w)`, as
  Pyro's ``TraceMeanField_ELBO`` does when the registry raises ``NotImplementedError``.

All KL values are **summed** over the weights (never averaged): the objective scales the total
once, in :mod:`varbayes.infer.objectives`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Categorical, MixtureSameFamily, Normal, kl_divergence

__all__ = [
    "GaussianPrior",
    "Prior",
    "ScaleMixturePrior",
    "prior_from_config",
]


class Prior:
    """Base class of weight priors.

    Subclasses implement :meth:`distribution`; :meth:`kl` defaults to the closed form from the
    ``torch.distributions`` KL registry and raises ``NotImplementedError`` where none exists.
    """

    name: str = "prior"

    def distribution(self, like: Tensor) -> torch.distributions.Distribution:
        """Return the prior as a distribution on the device and dtype of ``like``."""
        raise NotImplementedError

    def log_prob(self, w: Tensor) -> Tensor:
        """Elementwise log density of weights ``w`` (same shape as ``w``)."""
        return self.distribution(w).log_prob(w)

    def kl(self, loc: Tensor, scale: Tensor) -> Tensor:
        """Closed-form :math:`\\sum KL(\\mathcal{N}(loc, scale^2) \\| p)` over all elements.

        Raises
        ------
        NotImplementedError
            If the prior has no closed-form KL to a Gaussian.
        """
        q = Normal(loc, scale, validate_args=False)
        return kl_divergence(q, self.distribution(loc)).sum()

    @property
    def has_analytic_kl(self) -> bool:
        """Whether :meth:`kl` has a closed form for this prior."""
        return True

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description, inverse of :func:`prior_from_config`."""
        raise NotImplementedError


class GaussianPrior(Prior):
    """Isotropic Gaussian prior :math:`\\mathcal{N}(loc, scale^2)` on every weight.

    Parameters
    ----------
    loc : float, default=0.0
        Prior mean.
    scale : float, default=1.0
        Prior standard deviation; must be positive and finite.

    Raises
    ------
    ValueError
        If ``scale`` is not a positive finite number or ``loc`` is not finite.
    """

    name = "gaussian"

    def __init__(self, loc: float = 0.0, scale: float = 1.0) -> None:
        if not math.isfinite(float(loc)):
            raise ValueError(f"prior loc must be finite, got {loc!r}")
        if not (math.isfinite(float(scale)) and float(scale) > 0):
            raise ValueError(f"prior scale must be a positive finite number, got {scale!r}")
        self.loc = float(loc)
        self.scale = float(scale)

    def distribution(self, like: Tensor) -> Normal:
        """Return :math:`\\mathcal{N}(loc, scale^2)` on the device and dtype of ``like``."""
        loc = torch.tensor(self.loc, dtype=like.dtype, device=like.device)
        scale = torch.tensor(self.scale, dtype=like.dtype, device=like.device)
        return Normal(loc, scale, validate_args=False)

    def kl(self, loc: Tensor, scale: Tensor) -> Tensor:
        """Closed-form KL of :math:`\\mathcal{N}(loc, scale^2)` to the prior, summed over elements.

        .. math:: \\mathrm{KL} = \\log\\frac{\\sigma_0}{\\sigma}
                  + \\frac{\\sigma^2 + (\\mu - \\mu_0)^2}{2\\sigma_0^2} - \\frac12

        The same value as ``torch.distributions.kl_divergence`` of the two Normals (a test checks
        it), written as one fused expression because it runs at every training step.
        """
        ratio = scale / self.scale
        diff = (loc - self.loc) / self.scale
        return (0.5 * (ratio * ratio + diff * diff) - ratio.log() - 0.5).sum()

    def config(self) -> dict[str, Any]:
        """Return ``{"name": "gaussian", "loc": ..., "scale": ...}``."""
        return {"name": self.name, "loc": self.loc, "scale": self.scale}

    def __repr__(self) -> str:
        return f"GaussianPrior(loc={self.loc}, scale={self.scale})"


class ScaleMixturePrior(Prior):
    """Scale mixture of two zero-mean Gaussians (Blundell et al., 2015, eq. 7).

    .. math:: p(w) = \\pi\\,\\mathcal{N}(w; 0, \\sigma_1^2)
              + (1-\\pi)\\,\\mathcal{N}(w; 0, \\sigma_2^2)

    Parameters
    ----------
    pi : float, default=0.5
        Weight of the first component, in (0, 1).
    scale1 : float, default=1.0
        Standard deviation of the first (wide) component.
    scale2 : float, default=exp(-6)
        Standard deviation of the second (narrow) component.
    """

    name = "scale_mixture"

    def __init__(self, pi: float = 0.5, scale1: float = 1.0, scale2: float = math.exp(-6)) -> None:
        if not 0.0 < float(pi) < 1.0:
            raise ValueError(f"scale-mixture weight pi must lie in (0, 1), got {pi!r}")
        for label, s in (("scale1", scale1), ("scale2", scale2)):
            if not (math.isfinite(float(s)) and float(s) > 0):
                raise ValueError(f"prior {label} must be a positive finite number, got {s!r}")
        self.pi = float(pi)
        self.scale1 = float(scale1)
        self.scale2 = float(scale2)

    def distribution(self, like: Tensor) -> MixtureSameFamily:
        """Return the mixture on the device and dtype of ``like`` (scalar batch shape)."""
        probs = torch.tensor([self.pi, 1.0 - self.pi], dtype=like.dtype, device=like.device)
        scales = torch.tensor([self.scale1, self.scale2], dtype=like.dtype, device=like.device)
        comp = Normal(torch.zeros_like(scales), scales, validate_args=False)
        return MixtureSameFamily(Categorical(probs=probs, validate_args=False), comp,
                                 validate_args=False)

    def kl(self, loc: Tensor, scale: Tensor) -> Tensor:
        """Not available in closed form; use the Monte-Carlo estimate instead."""
        raise NotImplementedError(
            "the scale-mixture prior has no closed-form KL; use kl='mc' (log q - log p)"
        )

    @property
    def has_analytic_kl(self) -> bool:
        """Always ``False``: the KL is estimated by Monte Carlo."""
        return False

    def config(self) -> dict[str, Any]:
        """Return ``{"name": "scale_mixture", "pi": ..., "scale1": ..., "scale2": ...}``."""
        return {"name": self.name, "pi": self.pi, "scale1": self.scale1, "scale2": self.scale2}

    def __repr__(self) -> str:
        return f"ScaleMixturePrior(pi={self.pi}, scale1={self.scale1}, scale2={self.scale2})"


def prior_from_config(config: dict[str, Any]) -> Prior:
    """Rebuild a prior from :meth:`Prior.config` output.

    Raises
    ------
    ValueError
        If the prior name is unknown or its parameters are invalid.
    """
    if not isinstance(config, dict) or "name" not in config:
        raise ValueError(f"prior config must be a dict with a 'name' key, got {config!r}")
    params = {k: v for k, v in config.items() if k != "name"}
    name = config["name"]
    classes: dict[str, type[Prior]] = {
        GaussianPrior.name: GaussianPrior,
        ScaleMixturePrior.name: ScaleMixturePrior,
    }
    if name not in classes:
        raise ValueError(f"unknown prior {name!r}; expected one of {sorted(classes)}")
    try:
        return classes[name](**params)
    except TypeError as exc:
        raise ValueError(f"invalid parameters for prior {name!r}: {params!r} ({exc})") from None
