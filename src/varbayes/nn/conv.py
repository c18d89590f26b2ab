"""Mean-field Gaussian convolution, in the style of :class:`~varbayes.nn.layers.BayesLinear`.

Each weight and bias of a 1-, 2- or 3-D convolution has the posterior
:math:`\\mathcal{N}(\\mu, \\sigma^2)`, :math:`\\sigma = \\operatorname{softplus}(\\rho) +
\\sigma_{\\min}` (:func:`~varbayes.nn.parametrization.softplus_scale`). The layer holds no KL
state: :meth:`BayesConv.kl_divergence` is the closed form of the prior, from the current
parameters.

Weight draws. An input of shape ``(N, C, *spatial)`` holds ``S`` draws x ``n`` rows, sample-major,
with ``S`` from the draw state of :func:`varbayes.nn.sampling.draws` (1 outside it); an input
with one more leading dimension, ``(S, n, C, *spatial)``, names ``S`` explicitly. ``S > 1``
weight draws are applied in **one** grouped convolution: the draws become ``S`` groups of
channels (``groups = S * groups``), so there is no Python loop over draws.

Estimators (``estimator=``), as for :class:`BayesLinear`; prediction (eval mode) always samples
whole weights:

``"reparam"``   one weight draw per sample index, shared by its rows.
``"local"``     local reparameterisation: output ~ N(conv(x, mu), conv(x^2, sigma^2)), per element.
``"flipout"``   one perturbation per sample index, decorrelated per row by random sign flips of
                the input and output channels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from varbayes._checks_scalar import check_positive
from varbayes.nn.layers import Estimator
from varbayes.nn.meanfield import MeanField
from varbayes.nn.sampling import VariationalLayer
from varbayes.priors import Prior

__all__ = ["BayesConv"]

_CONV: dict[int, Callable[..., Tensor]] = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _tuple(value: int | Sequence[int], dims: int, name: str) -> tuple[int, ...]:
    out = (int(value),) * dims if isinstance(value, int) else tuple(int(v) for v in value)
    if len(out) != dims:
        raise ValueError(f"{name} needs {dims} values, got {value!r}")
    return out


class BayesConv(MeanField, VariationalLayer):
    """Convolution over ``dims`` spatial dimensions with a mean-field Gaussian posterior.

    Parameters
    ----------
    dims : {1, 2, 3}
        Spatial dimensions (``nn.Conv1d`` / ``Conv2d`` / ``Conv3d``).
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
        As for :class:`torch.nn.Conv2d` (zero padding; ``padding`` may be ``'same'`` or
        ``'valid'``).
    prior : Prior, default=GaussianPrior(0, 1)
    estimator : {'reparam', 'local', 'flipout'}, default='reparam'
    init_loc_std : float or None
        Standard deviation of the normal initialisation of the means; ``None``:
        ``1 / sqrt(fan_in)``.
    init_rho : float, default=-5.0
    init_rho_bias : float or None
    min_scale : float, default=1e-6
    generator : torch.Generator or None
        Random source of the initialisation.

    Attributes
    ----------
    weight_loc, weight_rho : Parameter of shape (out_channels, in_channels / groups, *kernel)
    bias_loc, bias_rho : Parameter of shape (out_channels,) or None
    """

    weight_prior_loc: Tensor | None
    bias_prior_loc: Tensor | None

    def __init__(
        self, dims: int, in_channels: int, out_channels: int,
        kernel_size: int | Sequence[int], stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | str = 0, dilation: int | Sequence[int] = 1,
        groups: int = 1, bias: bool = True, *, prior: Prior | None = None,
        estimator: Estimator | str = Estimator.REPARAM, init_loc_std: float | None = None,
        init_rho: float = -5.0, init_rho_bias: float | None = None, min_scale: float = 1e-6,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if dims not in _CONV:
            raise ValueError(f"dims must be 1, 2 or 3, got {dims!r}")
        if in_channels < 1 or out_channels < 1 or groups < 1 or in_channels % groups \
                or out_channels % groups:
            raise ValueError(
                f"in_channels={in_channels} and out_channels={out_channels} must be positive "
                f"multiples of groups={groups}")
        try:
            self.estimator = Estimator(estimator)
        except ValueError:
            raise ValueError(f"unknown estimator {estimator!r}; expected one of "
                             f"{[e.value for e in Estimator]}") from None
        self.dims, self.in_channels, self.out_channels = dims, int(in_channels), int(out_channels)
        self.kernel_size = _tuple(kernel_size, dims, "kernel_size")
        self.stride = _tuple(stride, dims, "stride")
        self.dilation = _tuple(dilation, dims, "dilation")
        self.padding: tuple[int, ...] | str = (
            padding if isinstance(padding, str) else _tuple(padding, dims, "padding"))
        if isinstance(self.padding, str) and self.padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same', 'valid' or integers, got {padding!r}")
        self.groups = int(groups)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self._mean_field(shape, self.out_channels, bias, prior=prior,
                         min_scale=check_positive(min_scale, "min_scale"),
                         init_loc_std=init_loc_std, init_rho=init_rho,
                         init_rho_bias=init_rho_bias, generator=generator)
        self._register_prior_centres()

    def _fan_in(self) -> int:
        return self.weight_loc[0].numel()

    def kl_divergence(self) -> Tensor:
        """Closed-form KL(q || prior), summed over weights and biases."""
        return self._kl(self.weight_prior_loc, self.bias_prior_loc)

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None, draws: int = 1) -> Tensor:
        return _CONV[self.dims](x, weight, bias, self.stride, self.padding, self.dilation,
                                self.groups * draws)

    def _per_draw(self, xs: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """Apply weight draw ``s`` to ``xs[s]``: (S, n, C, *sp) -> (S, n, out, *sp')."""
        num, n = xs.shape[0], xs.shape[1]
        if num == 1:
            return self._conv(xs[0], weight[0], None if bias is None else bias[0]).unsqueeze(0)
        xg = xs.transpose(0, 1).reshape(n, num * self.in_channels, *xs.shape[3:])
        wg = weight.reshape(num * self.out_channels, *weight.shape[2:])
        out = self._conv(xg, wg, None if bias is None else bias.reshape(-1), num)
        return out.reshape(n, num, self.out_channels, *out.shape[2:]).transpose(0, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the convolution with the draws of the current draw state."""
        return self.forward_kl(x, kl=None)[0]

    def forward_kl(
        self, x: Tensor, *, kl: str | None = "analytic", sample: bool | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Apply the layer; return the output and the closed-form KL (or ``None``).

        Parameters
        ----------
        x : Tensor of shape (S * n, C, *spatial), (S, n, C, *spatial) or (C, *spatial)
        kl : {'analytic', None}
        sample : bool or None
            ``None``: the draw state's. ``False`` uses the means.
        generator : torch.Generator or None
            ``None``: the draw state's.
        """
        if kl not in (None, "analytic"):
            raise ValueError(f"BayesConv has the closed-form KL only (kl='analytic'), not {kl!r}")
        state = self.draw_state
        sample = state.sample if sample is None else sample
        generator = state.generator if generator is None else generator
        base = self.dims + 2
        if x.dim() not in (base - 1, base, base + 1) or x.shape[-self.dims - 1] != \
                self.in_channels:
            raise ValueError(
                f"BayesConv{self.dims}d expected inputs (N, {self.in_channels}, *spatial) with "
                f"{self.dims} spatial dimensions, got shape {tuple(x.shape)}")
        explicit = x.dim() == base + 1
        unbatched = x.dim() == base - 1
        if unbatched:
            x = x.unsqueeze(0)
        num = x.shape[0] if explicit else state.num
        xs = x if explicit else x.reshape(num, -1, *x.shape[1:])
        out = self._sampled(xs, sample, generator)  # (S, n, out, *sp')
        out = out if explicit else out.reshape(-1, *out.shape[2:])
        if unbatched:
            out = out.squeeze(0)
        return out, None if kl is None else self.kl_divergence()

    def _sampled(self, xs: Tensor, sample: bool, generator: torch.Generator | None) -> Tensor:
        num, n = xs.shape[0], xs.shape[1]
        flat = xs.reshape(num * n, *xs.shape[2:])
        b_loc, b_scale = self.bias_loc, self.bias_scale
        if not sample:
            out = self._conv(flat, self.weight_loc, b_loc)
            return out.reshape(num, n, *out.shape[1:])
        noise: dict[str, Any] = dict(device=xs.device, dtype=xs.dtype, generator=generator)
        estimator = self.estimator if self.training else Estimator.REPARAM
        w_scale = self.weight_scale
        if estimator is Estimator.LOCAL:
            mean = self._conv(flat, self.weight_loc, b_loc)
            var = self._conv(flat * flat, w_scale * w_scale,
                             None if b_scale is None else b_scale * b_scale)
            out = mean + var.clamp_min(1e-30).sqrt() * torch.randn(mean.shape, **noise)
            return out.reshape(num, n, *out.shape[1:])
        eps_w = torch.randn((num, *self.weight_loc.shape), **noise)
        eps_b = None if b_loc is None else torch.randn((num, self.out_channels), **noise)
        if estimator is Estimator.REPARAM:
            weight = torch.addcmul(self.weight_loc, w_scale, eps_w)
            bias = None if b_loc is None or b_scale is None or eps_b is None else \
                torch.addcmul(b_loc, b_scale, eps_b)
            return self._per_draw(xs, weight, bias)
        if estimator is Estimator.FLIPOUT:
            ones = (1,) * self.dims
            sign_in = torch.randint(0, 2, (num, n, self.in_channels, *ones), generator=generator,
                                    device=xs.device).to(xs.dtype).mul_(2).sub_(1)
            sign_out = torch.randint(0, 2, (num, n, self.out_channels, *ones),
                                     generator=generator,
                                     device=xs.device).to(xs.dtype).mul_(2).sub_(1)
            mean = self._conv(flat, self.weight_loc, b_loc)
            mean = mean.reshape(num, n, *mean.shape[1:])
            delta = self._per_draw(xs * sign_in, w_scale * eps_w, None) * sign_out
            out = mean + delta
            if b_scale is not None and eps_b is not None:
                out = out + (b_scale * eps_b).reshape(num, 1, self.out_channels, *ones)
            return out
        raise ValueError(f"BayesConv has no estimator {estimator!r}")  # every member above

    def extra_repr(self) -> str:
        """Sizes, kernel, estimator and prior, for ``repr``."""
        return (f"dims={self.dims}, {self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"bias={self.bias_loc is not None}, estimator={self.estimator.value!r}, "
                f"prior={self.prior!r}")
