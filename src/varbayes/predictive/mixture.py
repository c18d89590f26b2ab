"""Posterior predictive: S weight draws in one batched pass, summarised as a Gaussian mixture.

For a model with Gaussian components :math:`\\mathcal{N}(\\mu_s(x), \\sigma_s^2(x))`,
:math:`s = 1..S`, the predictive of ``y`` is the mixture

.. math:: p(y|x) \\approx \\frac1S \\sum_{s=1}^S \\mathcal{N}(y; \\mu_s(x), \\sigma_s^2(x))

with

.. math::
    \\mathbb{E}[y] = \\bar\\mu = \\frac1S\\sum_s \\mu_s, \\qquad
    \\operatorname{Var}[y] = \\underbrace{\\frac1S\\sum_s \\sigma_s^2}_{\\text{aleatoric}}
      + \\underbrace{\\frac1S\\sum_s (\\mu_s - \\bar\\mu)^2}_{\\text{epistemic}}.

The epistemic part uses the population variance (divisor ``S``), so the identity is exact for any
``S`` and ``S = 1`` gives 0, never NaN. Quantiles are those of the mixture itself, solved on its
CDF to the resolution of the prediction's dtype (safeguarded Halley steps, see
:mod:`varbayes.predictive.quantile`), not empirical quantiles of a finite number of ``y``
draws. The blog post's 1000 forward passes in a Python loop become one
call with a leading sample dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor

from varbayes._checks_scalar import check_count
from varbayes._validation import to_tensor
from varbayes.likelihoods.gaussian import gaussian_log_prob
from varbayes.predictive.moments import VarianceSplit, central_interval
from varbayes.predictive.quantile import mixture_quantile

__all__ = ["Prediction"]


@dataclass(frozen=True)
class Prediction(VarianceSplit):
    """Gaussian-mixture predictive for ``n`` inputs.

    Attributes
    ----------
    loc : Tensor of shape (S, n)
        Component means :math:`\\mu_s(x)`.
    scale : Tensor of shape (S, n)
        Component standard deviations :math:`\\sigma_s(x)`. Where every draw has the same
        scale (a point-estimate noise network, a fixed noise), a view of one row broadcast over
        the draws (stride 0 in the first dimension): read it, do not write into it.
    working_dtype : torch.dtype or None
        The dtype the components were computed in, when ``loc`` and ``scale`` were widened
        afterwards (e.g. float32 network outputs held in float64 data units): quantiles are
        resolved to its precision. ``None``: ``loc``'s dtype.
    """

    loc: Tensor
    scale: Tensor
    working_dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        if self.loc.dim() != 2 or self.loc.shape != self.scale.shape:
            raise ValueError(
                f"Prediction needs loc and scale of the same shape (S, n), got "
                f"{tuple(self.loc.shape)} and {tuple(self.scale.shape)}"
            )

    @property
    def num_samples(self) -> int:
        """Number of mixture components ``S``."""
        return self.loc.shape[0]


    @property
    def component_means(self) -> Tensor:
        """The means of the mixture's components, shape (S, n)."""
        return self.loc

    @property
    def aleatoric_var(self) -> Tensor:
        """Expected noise variance :math:`\\frac1S\\sum_s\\sigma_s^2`, shape (n,)."""
        return (self.scale * self.scale).mean(0)




    def cdf(self, y: Tensor) -> Tensor:
        """Mixture CDF at ``y`` of shape (n,) (or broadcastable to (k, n)); returns that shape."""
        z = (y.unsqueeze(-2) - self.loc) / self.scale
        return cast(Tensor, torch.special.ndtr(z).mean(-2))  # torch.special is untyped

    def log_prob(self, y: Tensor) -> Tensor:
        """Mixture log density at ``y`` of shape (n,), computed with logsumexp; shape (n,)."""
        comp = gaussian_log_prob(y, self.loc, self.scale)
        return torch.logsumexp(comp, dim=0) - math.log(self.num_samples)

    def quantile(self, q: float | Tensor) -> Tensor:
        """Quantiles of the mixture.

        Parameters
        ----------
        q : float or Tensor of shape (k,)
            Probabilities in (0, 1).

        Returns
        -------
        Tensor of shape (n,) for a float ``q``, else (k, n).
        """
        qt = to_tensor(q, torch.float64, "cpu")
        scalar = qt.dim() == 0
        qt = qt.reshape(-1)
        if not bool(((qt > 0) & (qt < 1)).all()):
            raise ValueError(f"quantile levels must lie in (0, 1), got {qt.tolist()}")
        tol = 4 * torch.finfo(self.working_dtype or self.loc.dtype).eps
        result = mixture_quantile(self.loc, self.scale, qt, tol=tol)
        result = result.to(self.loc.dtype)
        return result[0] if scalar else result

    def interval(self, level: float = 0.9) -> tuple[Tensor, Tensor]:
        """Central interval of probability ``level``: the (1-level)/2 and (1+level)/2 quantiles."""
        return central_interval(self.quantile, level)

    def sample(self, num: int = 1, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``num`` values of ``y`` per input from the mixture; shape (num, n)."""
        num = check_count(num, "num")
        n = self.loc.shape[1]
        comp = torch.randint(0, self.num_samples, (num, n), generator=generator,
                             device=self.loc.device)
        loc = self.loc.gather(0, comp)
        scale = self.scale.gather(0, comp)
        eps = torch.randn(loc.shape, generator=generator, dtype=loc.dtype, device=loc.device)
        return loc + scale * eps

    def affine(self, shift: Tensor | float, scale: Tensor | float) -> Prediction:
        """The predictive of ``shift + scale * y`` (e.g. back to data units), ``scale > 0``."""
        return Prediction(self.loc * scale + shift, self.scale * scale, self.working_dtype)

    def __getitem__(self, index: slice | Tensor) -> Prediction:
        """Select inputs (the second dimension)."""
        return Prediction(self.loc[:, index], self.scale[:, index], self.working_dtype)
