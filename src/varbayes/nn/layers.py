"""Mean-field Gaussian linear layer for Bayes by Backprop.

Each weight :math:`w_{ij}` (and bias) has the variational posterior

.. math:: q(w_{ij}) = \\mathcal{N}(\\mu_{ij}, \\sigma_{ij}^2), \\qquad
          \\sigma_{ij} = \\operatorname{softplus}(\\rho_{ij}) + \\sigma_{\\min}

``softplus`` is :func:`torch.nn.functional.softplus`, which is linear above a threshold and so
never overflows; the blog post's ``log(1 + exp(rho))`` returns ``inf`` for ``rho > 88`` in float32
and ``0`` (then ``log 0``) for very negative ``rho``. The floor :math:`\\sigma_{\\min}` keeps the
scale strictly positive.

The layer holds **no KL state**. :meth:`BayesLinear.kl_divergence` computes the closed-form KL
from the current parameters whenever it is asked, and :meth:`BayesLinear.forward_kl` returns the
Monte-Carlo term of the weights it just drew together with the output. Nothing accumulates
between calls, so prediction can never grow a KL and two models never share one (the post keeps
it in a class attribute shared by every model).

Inputs may carry a leading *sample* dimension: ``x`` of shape ``(S, n, in)`` is pushed through
``S`` independent weight draws in one batched matrix product, which is how
:mod:`varbayes.predictive` draws 1000 networks without a Python loop.

Gradient estimators (``estimator=``):

``"reparam"``
    Sample the weights, :math:`W = \\mu + \\sigma \\odot \\epsilon` (Blundell et al. 2015);
    one draw per sample index, shared by the batch. Supports the Monte-Carlo KL.
``"local"``
    Local reparameterisation (Kingma et al. 2015): sample the pre-activations
    :math:`\\mathcal{N}(x\\mu, x^2\\sigma^2)` directly. Independent noise per row, lower gradient
    variance, same expected objective; needs the closed-form KL.
``"flipout"``
    Flipout (Wen et al. 2018): one weight perturbation per sample, decorrelated across rows with
    random sign flips. Supports the closed-form KL.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

import torch
from torch import Tensor, nn

from varbayes._checks_scalar import check_nonnegative, check_positive
from varbayes.nn.meanfield import MeanField
from varbayes.priors import GaussianPrior, Prior

__all__ = [
    "BayesLinear",
    "Estimator",
    "batched_linear",
    "kl_divergence",
]


class Estimator(str, Enum):
    """Gradient estimator of a :class:`BayesLinear` layer."""

    REPARAM = "reparam"
    """Sample weights (Bayes by Backprop); one draw per sample index, shared by the batch."""
    LOCAL = "local"
    """Local reparameterisation: sample pre-activations, independent per row."""
    FLIPOUT = "flipout"
    """Flipout: one weight perturbation per sample, decorrelated per row by sign flips."""


def batched_linear(h: Tensor, weight: Tensor, bias: Tensor | None = None, *,
                   weight_t: Tensor | None = None) -> Tensor:
    """``h @ weight + bias`` for a batch of ``K`` weight matrices.

    Parameters
    ----------
    h : Tensor of shape (K, B, f_in), or (B, f_in) shared by the batch
    weight : Tensor of shape (K, f_in, f_out)
    bias : Tensor of shape (K, 1, f_out) or None
    weight_t : Tensor or None
        ``weight.transpose(1, 2)`` where the caller keeps that view (one operation less).

    Returns
    -------
    Tensor of shape (K, B, f_out)

    Notes
    -----
    Batched GEMM is slow on two shapes of small networks: a rank-1 product (``f_in = 1``, the
    first layer of a 1-D regression) is a broadcast ``addcmul`` here, and a matrix-vector
    product (``f_out = 1``, the output layer) is computed transposed, ``(weight^T h^T)^T``, a
    row-times-matrix product that BLAS runs several times faster. The latter returns a
    non-contiguous (transposed) view.
    """
    if weight.shape[-2] == 1:
        return h * weight if bias is None else torch.addcmul(bias, h, weight)
    if h.dim() == 2:
        h = h.expand(weight.shape[0], *h.shape)
    if weight.shape[-1] == 1:
        wt = weight.transpose(1, 2) if weight_t is None else weight_t
        ht = h.transpose(1, 2)
        out = torch.bmm(wt, ht) if bias is None else torch.baddbmm(bias, wt, ht)
        return out.transpose(1, 2)
    return torch.bmm(h, weight) if bias is None else torch.baddbmm(bias, h, weight)


class BayesLinear(MeanField):
    """Linear layer with a mean-field Gaussian posterior over its weights and bias.

    ``y = x @ W + b`` with ``W`` of shape ``(in_features, out_features)``.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the input and output.
    bias : bool, default=True
        Whether the layer has a (Bayesian) bias.
    prior : Prior, default=GaussianPrior(0, 1)
        Prior over every weight and bias.
    estimator : {'reparam', 'local', 'flipout'}, default='reparam'
        Gradient estimator used when sampling, see the module docstring.
    init_loc_std : float or None, default=None
        Standard deviation of the normal initialisation of the weight means; ``None`` uses
        ``1 / sqrt(in_features)`` (Kaiming-like, keeps activations of unit order).
    init_rho : float, default=-5.0
        Initial ``rho`` of the weights (``softplus(-5) ~ 0.0067``).
    init_rho_bias : float or None, default=None
        Initial ``rho`` of the bias; ``None`` uses ``init_rho``.
    min_scale : float, default=1e-6
        The floor :math:`\\sigma_{\\min}` added to ``softplus(rho)``.
    generator : torch.Generator or None, default=None
        Random source for the initialisation.

    Attributes
    ----------
    weight_loc, weight_rho : Parameter of shape (in_features, out_features)
    bias_loc, bias_rho : Parameter of shape (out_features,) or None
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        prior: Prior | None = None,
        estimator: Estimator | str = Estimator.REPARAM,
        init_loc_std: float | None = None,
        init_rho: float = -5.0,
        init_rho_bias: float | None = None,
        min_scale: float = 1e-6,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if int(in_features) < 1 or int(out_features) < 1:
            raise ValueError(
                f"in_features and out_features must be >= 1, got {in_features}, {out_features}"
            )
        min_scale = check_positive(min_scale, "min_scale")
        for label, value in (("init_rho", init_rho), ("init_rho_bias", init_rho_bias)):
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{label} must be finite, got {value!r}")
        if init_loc_std is not None:
            init_loc_std = check_nonnegative(init_loc_std, "init_loc_std")
        try:
            self.estimator = Estimator(estimator)
        except ValueError:
            allowed = [e.value for e in Estimator]
            raise ValueError(
                f"unknown estimator {estimator!r}; expected one of {allowed}") from None
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self._mean_field((self.in_features, self.out_features), self.out_features, bias,
                         prior=prior, min_scale=min_scale, init_loc_std=init_loc_std,
                         init_rho=init_rho, init_rho_bias=init_rho_bias, generator=generator)

    def _fan_in(self) -> int:
        return self.in_features

    def kl_divergence(self) -> Tensor:
        """Closed-form KL(q || prior), summed over all weights and biases (a scalar).

        Raises
        ------
        NotImplementedError
            If the prior has no closed-form KL (use ``forward_kl(..., kl='mc')``).
        """
        return self._kl(None, None)

    def sample_weights(
        self, num: int, generator: torch.Generator | None = None, *,
        out: tuple[Tensor, Tensor | None] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Draw ``num`` weight matrices and biases from the posterior.

        Consumes the same random numbers from ``generator`` as :meth:`forward` on an input
        with a leading sample dimension ``num`` (``estimator='reparam'`` or eval mode), so a
        caller can draw all weights first and apply them in chunks of samples.

        Parameters
        ----------
        num : int
        generator : torch.Generator or None
        out : (Tensor, Tensor or None) or None
            Tensors of the shapes below (any strides, e.g. views of one buffer) to write the
            draws into; the bias is written when both the layer and ``out`` have one.

        Returns
        -------
        weight : Tensor of shape (num, in_features, out_features)
        bias : Tensor of shape (num, 1, out_features) or None
        """
        opts: dict[str, Any] = dict(device=self.weight_loc.device, dtype=self.weight_loc.dtype,
                                    generator=generator)
        w_out, b_out = (None, None) if out is None else out
        eps_w = torch.randn((num, self.in_features, self.out_features), **opts)
        weight = torch.addcmul(self.weight_loc, self.weight_scale, eps_w, out=w_out)
        bias_scale = self.bias_scale
        if self.bias_loc is None or bias_scale is None:
            return weight, None
        eps_b = torch.randn((num, 1, self.out_features), **opts)
        return weight, torch.addcmul(self.bias_loc, bias_scale, eps_b, out=b_out)

    def forward(
        self, x: Tensor, *, sample: bool = True, generator: torch.Generator | None = None
    ) -> Tensor:
        """Apply the layer.

        Parameters
        ----------
        x : Tensor of shape (n, in_features) or (S, n, in_features)
            Input; a leading dimension ``S`` indexes independent weight draws.
        sample : bool, default=True
            Draw weights (or activations) from the posterior; ``False`` uses the means.
        generator : torch.Generator or None
            Random source for the noise.

        Returns
        -------
        Tensor of shape (n, out_features) or (S, n, out_features)
        """
        return self.forward_kl(x, kl=None, sample=sample, generator=generator)[0]

    def forward_kl(
        self,
        x: Tensor,
        *,
        kl: str | None = "analytic",
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Apply the layer and return its KL term with the output.

        Parameters
        ----------
        x : Tensor of shape (n, in_features) or (S, n, in_features)
        kl : {'analytic', 'mc', None}, default='analytic'
            ``'analytic'``: the closed-form KL (a scalar). ``'mc'``: the single-sample estimate
            :math:`\\log q(w) - \\log p(w)` of the weights drawn for this call, one value per
            sample index (shape ``(S,)`` or a scalar); needs ``estimator='reparam'``.
            ``None``: no KL (returned as ``None``).
        sample, generator
            As in :meth:`forward`.

        Returns
        -------
        out : Tensor of shape (..., n, out_features)
        kl : Tensor or None
        """
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"BayesLinear expected inputs with {self.in_features} features in the last "
                f"dimension, got shape {tuple(x.shape)}"
            )
        if x.dim() not in (2, 3):
            raise ValueError(f"BayesLinear takes 2-D or 3-D inputs, got shape {tuple(x.shape)}")
        # Prediction (eval mode) always draws whole weight samples, so each sample index is one
        # coherent network; the training-time estimators only change gradient variance.
        estimator = self.estimator if self.training else Estimator.REPARAM
        if kl == "mc" and sample and estimator is not Estimator.REPARAM:
            raise ValueError(
                f"kl='mc' needs sampled weights (estimator='reparam'), "
                f"not estimator={self.estimator.value!r}; use kl='analytic'"
            )
        if kl not in (None, "analytic", "mc"):
            raise ValueError(f"unknown kl mode {kl!r}; expected 'analytic', 'mc' or None")

        w_loc, b_loc = self.weight_loc, self.bias_loc
        if not sample:
            out = x @ w_loc
            if b_loc is not None:
                out = out + b_loc
            kl_value: Tensor | None = None if kl is None else self._analytic_or_mean_kl(kl)
            return out, kl_value

        w_scale, b_scale = self.weight_scale, self.bias_scale
        batched = x.dim() == 3
        num = x.shape[0] if batched else 1
        noise: dict[str, Any] = dict(device=x.device, dtype=x.dtype, generator=generator)

        if estimator is Estimator.LOCAL:
            mean = x @ w_loc
            var = (x * x) @ (w_scale * w_scale)
            if b_loc is not None and b_scale is not None:
                mean = mean + b_loc
                var = var + b_scale * b_scale
            out = mean + var.sqrt() * torch.randn(mean.shape, **noise)
            return out, None if kl is None else self.kl_divergence()

        # Weight-space estimators: one perturbation per sample index.
        eps_w = torch.randn((num, self.in_features, self.out_features), **noise)
        eps_b = torch.randn((num, 1, self.out_features), **noise) if b_loc is not None else None
        xb = x if batched else x.unsqueeze(0)
        if estimator is Estimator.REPARAM:
            w = torch.addcmul(w_loc, w_scale, eps_w)
            if b_loc is not None and b_scale is not None and eps_b is not None:
                b = torch.addcmul(b_loc, b_scale, eps_b)
                out = torch.baddbmm(b, xb, w)
            else:
                out = torch.bmm(xb, w)
        elif estimator is Estimator.FLIPOUT:
            sign_in = torch.randint(0, 2, xb.shape, generator=generator, device=x.device)
            sign_out = torch.randint(
                0, 2, (*xb.shape[:-1], self.out_features), generator=generator, device=x.device
            )
            sign_in = sign_in.to(x.dtype).mul_(2).sub_(1)
            sign_out = sign_out.to(x.dtype).mul_(2).sub_(1)
            out = xb @ w_loc + torch.bmm(xb * sign_in, w_scale * eps_w) * sign_out
            if b_loc is not None and b_scale is not None and eps_b is not None:
                out = out + b_loc + b_scale * eps_b
        else:  # every Estimator member is handled above; a new one must be added here
            raise ValueError(f"BayesLinear has no estimator {estimator!r}")

        kl_value = None
        if kl == "analytic":
            kl_value = self.kl_divergence()
        elif kl == "mc":
            kl_value = self._mc_kl(w, eps_w, w_scale)
            if b_loc is not None and b_scale is not None and eps_b is not None:
                kl_value = kl_value + self._mc_kl(b, eps_b, b_scale)
        if not batched:
            out = out.squeeze(0)
            if kl == "mc" and kl_value is not None:
                kl_value = kl_value.squeeze(0)
        return out, kl_value

    def _mc_kl(self, w: Tensor, eps: Tensor, scale: Tensor) -> Tensor:
        """``log q(w) - log p(w)`` per sample index, summed over the weights."""
        # log q(w) with w = mu + sigma * eps is -0.5 eps^2 - log sigma - 0.5 log 2 pi.
        log_q = -0.5 * eps * eps - scale.log()
        if isinstance(self.prior, GaussianPrior):  # plain tensor math, no distribution objects
            z = (w - self.prior.loc) / self.prior.scale
            return (log_q + 0.5 * z * z).flatten(1).sum(1) + (
                math.log(self.prior.scale) * scale.numel())
        log_q = log_q - 0.5 * math.log(2 * math.pi)
        return (log_q - self.prior.log_prob(w)).flatten(1).sum(1)

    def _analytic_or_mean_kl(self, kl: str) -> Tensor:
        if kl == "mc" and not self.prior.has_analytic_kl:
            raise ValueError("kl='mc' needs sample=True with a prior that has no closed-form KL")
        return self.kl_divergence()

    def extra_repr(self) -> str:
        """Sizes, bias, estimator and prior, for ``repr``."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias_loc is not None}, estimator={self.estimator.value!r}, "
            f"prior={self.prior!r}"
        )


def kl_divergence(module: nn.Module) -> Tensor:
    """Closed-form KL of every :class:`BayesLinear` inside ``module``, summed.

    Use it to add the KL term to a loss in your own PyTorch model built from
    :class:`BayesLinear` layers; it reads the current parameters and keeps no state.
    """
    terms = [m.kl_divergence() for m in module.modules() if isinstance(m, BayesLinear)]
    if not terms:
        raise ValueError(f"{type(module).__name__} contains no BayesLinear layer")
    return torch.stack(terms).sum()
