"""A linear layer whose posterior has a full covariance per output unit: :class:`FullCovLinear`.

The mean-field layers (:class:`~varbayes.nn.folded.FoldedBayesLinear`) give every weight its
own variance. Output unit ``j`` of :class:`FullCovLinear` has one Gaussian over its ``d``
inputs' weights and its bias together,

.. math:: (w_j, b_j) \\sim \\mathcal{N}(m_j, L_j L_j^\\top),

independent across units, with ``L_j`` lower triangular (its diagonal
``softplus(raw) + min_scale``). A row ``x`` then has the Gaussian pre-activation
``N(x1^T m_j, |L_j^T x1|^2)`` with ``x1 = (x, 1)``. The covariance can be wide along directions
of the input space that the training rows do not span and narrow along those they do, which a
diagonal cannot: this is the Bayesian last layer of VBLL (Harrison et al. 2024) and of a
last-layer Laplace approximation, fitted here on the ELBO like every varbayes layer. It costs
``d^2`` parameters per unit and ``O(n d^2)`` time per unit and step, so it is meant for a
network's last layer (``bayesianize(net, "last", covariance="full")``), not for wide hidden
layers.

Training (``module.train()``) draws each row's pre-activation from its Gaussian (the local
reparameterisation, exact for one linear layer and the lower-variance gradient); prediction
(``eval()``) draws whole weights, so that each draw is one network across the rows. The KL to
a :class:`~varbayes.priors.GaussianPrior`, optionally centred per weight on pretrained values
(MOPED), is in closed form; its value is that of ``torch.distributions.kl_divergence`` of the
two multivariate normals (a test checks it), written for the isotropic prior in ``O(d^2)`` per
unit instead of the general ``O(d^3)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from varbayes._checks_scalar import check_positive
from varbayes.nn.parametrization import inverse_softplus_scale, softplus_scale
from varbayes.nn.sampling import VariationalLayer, draw_blocks
from varbayes.priors import GaussianPrior, Prior

__all__ = ["MAX_COVARIANCE_ENTRIES", "FullCovLinear"]

#: The most Cholesky-factor entries (``out_features * d * d``) a layer may have: 4 GiB of
#: float32. A full covariance over a wide hidden layer is refused with a clear error, not an
#: allocation failure.
MAX_COVARIANCE_ENTRIES = 2**30


class FullCovLinear(VariationalLayer):
    """``nn.Linear``'s call signature; a full-covariance Gaussian posterior per output unit.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the input and output.
    bias : bool, default=True
        Whether the layer has a (Bayesian) bias, which shares its unit's covariance.
    prior : GaussianPrior or None, default=None
        The prior on every weight and bias; ``None``: :math:`\\mathcal{N}(0, 1)`. Other priors
        have no closed-form KL to a correlated Gaussian and are refused.
    init_loc_std : float or None, default=None
        Standard deviation of the initial weight means; ``None``: ``1 / sqrt(in_features)``.
    init_scale : float, default=softplus(-5) (about 0.0067)
        The initial posterior standard deviation of every weight (no correlation).
    min_scale : float, default=1e-6
        Floor added to the diagonal of each Cholesky factor.
    generator : torch.Generator or None
        Random source of the initialisation.

    Attributes
    ----------
    weight_loc : Parameter of shape (in_features, out_features)
        The posterior means (the transpose of ``nn.Linear.weight``, as in ``FoldedBayesLinear``).
    bias_loc : Parameter of shape (out_features,) or None
    scale_tril_raw : Parameter of shape (out_features, d, d), ``d = in_features + bias``
        Unconstrained Cholesky factors; :attr:`scale_tril` maps them.
    weight_prior_loc, bias_prior_loc : Tensor or None
        Buffers: the prior's mean per weight (MOPED), or ``None`` for the prior's own.
    """

    weight_prior_loc: Tensor | None
    bias_prior_loc: Tensor | None

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, *,
        prior: Prior | None = None, init_loc_std: float | None = None,
        init_scale: float = math.log1p(math.exp(-5.0)), min_scale: float = 1e-6,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if int(in_features) < 1 or int(out_features) < 1:
            raise ValueError(
                f"in_features and out_features must be >= 1, got {in_features}, {out_features}")
        prior = GaussianPrior(0.0, 1.0) if prior is None else prior
        if not isinstance(prior, GaussianPrior):
            raise ValueError(
                f"FullCovLinear needs a GaussianPrior (the KL of a correlated Gaussian to "
                f"{type(prior).__name__} has no closed form)")
        self.prior = prior
        self.in_features, self.out_features = int(in_features), int(out_features)
        d = self.in_features + int(bias)
        if self.out_features * d * d > MAX_COVARIANCE_ENTRIES:
            raise ValueError(
                f"FullCovLinear({self.in_features}, {self.out_features}) needs "
                f"{self.out_features} x {d} x {d} = {self.out_features * d * d:,} covariance "
                f"entries, above {MAX_COVARIANCE_ENTRIES:,} (4 GiB of float32): use it for a "
                "last layer of few inputs, or covariance='diagonal'")
        self.min_scale = check_positive(min_scale, "min_scale")
        init_scale = check_positive(init_scale, "init_scale")
        std = 1.0 / math.sqrt(self.in_features) if init_loc_std is None else init_loc_std
        self.weight_loc = nn.Parameter(
            torch.randn(self.in_features, self.out_features, generator=generator) * std)
        self.bias_loc = nn.Parameter(torch.zeros(self.out_features)) if bias else None
        self.scale_tril_raw = nn.Parameter(torch.zeros(self.out_features, d, d))
        self.set_scale(torch.full((self.out_features, d), init_scale))
        self.register_buffer("weight_prior_loc", None)
        self.register_buffer("bias_prior_loc", None)

    @property
    def scale_tril(self) -> Tensor:
        """The Cholesky factors ``L_j``, shape ``(out_features, d, d)``."""
        raw = self.scale_tril_raw
        diag = softplus_scale(torch.diagonal(raw, dim1=-2, dim2=-1), self.min_scale)
        return torch.tril(raw, -1) + torch.diag_embed(diag)

    @property
    def unit_loc(self) -> Tensor:
        """The posterior means per unit, ``(out_features, d)``: weights, then the bias."""
        if self.bias_loc is None:
            return self.weight_loc.t()
        return torch.cat([self.weight_loc.t(), self.bias_loc[:, None]], dim=1)

    def _prior_centre(self) -> Tensor:
        """The prior's mean per unit, ``(out_features, d)``."""
        loc = self.unit_loc
        centre = torch.full_like(loc, self.prior.loc)
        if self.weight_prior_loc is not None:
            centre[:, :self.in_features] += self.weight_prior_loc.t()
        if self.bias_prior_loc is not None and self.bias_loc is not None:
            centre[:, -1] += self.bias_prior_loc
        return centre

    @torch.no_grad()
    def set_scale(self, scale: Tensor) -> None:
        """Reset the posterior to independent weights of standard deviations ``scale``.

        ``scale`` has shape ``(out_features, d)`` (weights then bias, as :attr:`unit_loc`).
        """
        self.scale_tril_raw.copy_(torch.diag_embed(inverse_softplus_scale(scale, self.min_scale)))

    def kl_divergence(self) -> Tensor:
        """Closed-form KL(q || prior), summed over the units (a scalar).

        .. math:: \\tfrac12 \\big[ (\\|L_j\\|_F^2 + \\|m_j - c_j\\|^2) / s^2 - d
                  + 2 d \\log s - 2 \\textstyle\\sum_i \\log L_{j,ii} \\big]
        """
        tril = self.scale_tril
        d = tril.shape[-1]
        s2 = self.prior.scale ** 2
        diff = self.unit_loc - self._prior_centre()
        log_diag = torch.diagonal(tril, dim1=-2, dim2=-1).log().sum()
        quad = (tril.square().sum() + diff.square().sum()) / s2
        units = self.out_features
        return 0.5 * (quad - units * d + 2 * units * d * math.log(self.prior.scale)) - log_diag

    def _with_one(self, h: Tensor) -> Tensor:
        if self.bias_loc is None:
            return h
        return torch.cat([h, h.new_ones(*h.shape[:-1], 1)], dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """``x @ W + b`` for ``x`` of shape ``(..., in_features)``, one draw per folded block."""
        state = self.draw_state
        h = draw_blocks(self, x, self.in_features, state.num)
        lead = x.shape[:-1]
        mean = h @ self.weight_loc
        if self.bias_loc is not None:
            mean = mean + self.bias_loc
        if not state.sample:
            return mean.reshape(*lead, self.out_features)
        h1 = self._with_one(h)
        tril = self.scale_tril
        opts: dict[str, Any] = dict(device=x.device, dtype=mean.dtype,
                                    generator=state.generator)
        if self.training:  # each row's pre-activation from its Gaussian
            # The same rows in every draw (a deterministic network below this layer): their
            # standard deviations once, not once per draw, the O(n d^2) part of the step.
            same = state.num > 1 and bool((h == h[:1]).all())
            rows = h1[:1] if same else h1
            sd = torch.einsum("snd,ode->snoe", rows, tril).square().sum(-1).sqrt()
            out = mean + sd * torch.randn(mean.shape, **opts)
        else:  # whole weights: one network per draw
            eps = torch.randn((state.num, self.out_features, tril.shape[-1]), **opts)
            noise = torch.einsum("ode,soe->sod", tril, eps)
            out = mean + torch.einsum("snd,sod->sno", h1, noise)
        return out.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        """The sizes, the bias and the prior, for ``repr``."""
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias_loc is not None}, prior={self.prior!r}")
