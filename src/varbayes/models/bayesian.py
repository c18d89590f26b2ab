"""Bayes by Backprop: a mean-field Gaussian MLP with a fixed, learned or heteroscedastic head."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from varbayes._checks_scalar import check_positive
from varbayes.models.base import (
    PREDICT_DTYPE,
    Head,
    ModelOutput,
    _check_sizes,
    _mlp,
    _prediction_pass,
    _run_mlp,
)
from varbayes.nn.layers import BayesLinear, Estimator, batched_linear
from varbayes.nn.parametrization import inverse_softplus, softplus_scale
from varbayes.nn.qmc import sobol_normals
from varbayes.nn.rowblocks import augmented_buffer, block_pass, block_pass_independent
from varbayes.priors import Prior

__all__ = ["NOISES", "BayesianMLP"]

#: The weight noises of a prediction pass (:meth:`BayesianMLP.forward`'s ``noise``).
NOISES = ("normal", "sobol")


class _QuasiNoise:
    """Scrambled Sobol normals for every weight and bias of ``layers``, handed out in order."""

    def __init__(self, eps: Tensor) -> None:
        self.eps, self.offset = eps, 0

    def _take(self, shape: tuple[int, ...]) -> Tensor:
        size = math.prod(shape[1:])
        piece = self.eps[:, self.offset:self.offset + size].reshape(shape)
        self.offset += size
        return piece

    def weights(self, layer: BayesLinear, w: Tensor, bias: Tensor | None) -> None:
        """Write ``layer``'s draws into ``w`` (num, in, out) and ``bias`` (num, 1, out)."""
        torch.addcmul(layer.weight_loc, layer.weight_scale, self._take(tuple(w.shape)), out=w)
        scale = layer.bias_scale
        if bias is not None and layer.bias_loc is not None and scale is not None:
            torch.addcmul(layer.bias_loc, scale, self._take(tuple(bias.shape)), out=bias)


def _quasi_noise(layers: Sequence[BayesLinear], num: int, generator: torch.Generator | None,
                 device: torch.device) -> _QuasiNoise | None:
    """The Sobol noise of ``layers``' ``num`` draws, or None above ``qmc.MAX_DIMS`` weights."""
    dims = sum(layer.weight_loc.numel() + (0 if layer.bias_loc is None else layer.bias_loc.numel())
               for layer in layers)
    eps = sobol_normals(num, dims, generator, dtype=layers[0].weight_loc.dtype, device=device)
    return None if eps is None else _QuasiNoise(eps)


class BayesianMLP(nn.Module):
    """Bayes-by-Backprop MLP: mean-field Gaussian weights, ReLU, and a noise :class:`Head`.

    Parameters
    ----------
    in_features : int
    hidden : sequence of int, default=(20, 20)
        The post uses 1-20-20-1.
    head : {'fixed', 'learned', 'heteroscedastic'}, default='fixed'
    noise_std : float, default=0.1
        The fixed noise (``head='fixed'``, the post's 0.1) or the initial learned noise
        (``head='learned'``), in standardised target units.
    min_scale : float, default=1e-3
        Floor of the predicted noise scale for the learned heads.
    noise_hidden : sequence of int or None, default=None
        ``head='heteroscedastic'`` only. ``None``: ``raw(x)`` is a second output of the Bayesian
        network. A sequence: ``raw(x)`` comes from a separate deterministic MLP with these hidden
        sizes (a point estimate, like the post's log-variance network). The separate network is
        what the ``hetero`` recipe uses: with a Bayesian noise output the fitted noise absorbs the
        weight noise of the mean (the ELBO fits :math:`\\sigma^2 \\approx r^2 + Var_w[\\mu_w]`) and
        is inflated further by Jensen's gap over the sampled :math:`\\sigma_w`, which makes the
        predictive over-dispersed on small data (see ``docs/differences.md``).
    prior : Prior or None
        Weight prior, default :math:`\\mathcal{N}(0, 1)`.
    estimator : {'reparam', 'local', 'flipout'}, default='reparam'
    init_loc_std, init_rho, init_rho_bias
        Passed to every :class:`~varbayes.nn.layers.BayesLinear`.
    generator : torch.Generator or None
        Random source for the initialisation.
    """

    #: The prediction pass works through the draws and the rows in cache-sized pieces, so
    #: :func:`~varbayes.predictive.predictive` need not split the rows (``chunk_size``).
    bounded_prediction = True
    layers: Sequence[BayesLinear]  # an nn.ModuleList at run time, typed by its elements
    noise_std: Tensor  # buffer, head='fixed' only
    noise_net: nn.Sequential  # head='heteroscedastic' with noise_hidden only

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (20, 20),
        *,
        head: Head | str = Head.FIXED,
        noise_std: float = 0.1,
        min_scale: float = 1e-3,
        noise_hidden: Sequence[int] | None = None,
        prior: Prior | None = None,
        estimator: Estimator | str = Estimator.REPARAM,
        init_loc_std: float | None = None,
        init_rho: float = -5.0,
        init_rho_bias: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.hidden = _check_sizes(in_features, hidden)
        self.in_features = int(in_features)
        try:
            self.head = Head(head)
        except ValueError:
            raise ValueError(
                f"unknown head {head!r}; expected one of {[h.value for h in Head]}"
            ) from None
        noise_std = check_positive(noise_std, "noise_std")
        min_scale = check_positive(min_scale, "min_scale")
        self.min_scale = float(min_scale)
        if noise_hidden is not None and self.head is not Head.HETEROSCEDASTIC:
            raise ValueError("noise_hidden applies to head='heteroscedastic' only")
        self.noise_hidden = None if noise_hidden is None else tuple(int(h) for h in noise_hidden)
        if self.noise_hidden is not None:
            _check_sizes(in_features, self.noise_hidden)
        two_outputs = self.head is Head.HETEROSCEDASTIC and self.noise_hidden is None
        out = 2 if two_outputs else 1
        sizes = (self.in_features, *self.hidden, out)
        self.layers = cast("Sequence[BayesLinear]", nn.ModuleList(
            BayesLinear(
                a, b, prior=prior, estimator=estimator, init_loc_std=init_loc_std,
                init_rho=init_rho, init_rho_bias=init_rho_bias, generator=generator,
            )
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        ))
        if self.head is Head.FIXED:
            self.register_buffer("noise_std", torch.tensor(float(noise_std)))
        elif self.head is Head.LEARNED:
            raw = inverse_softplus(max(noise_std - self.min_scale, 1e-6))
            self.noise_rho = nn.Parameter(torch.tensor(raw))
        # Start the predicted noise near 1 (unit-variance standardised targets).
        if two_outputs:
            with torch.no_grad():
                cast(nn.Parameter, self.layers[-1].bias_loc)[1] = inverse_softplus(1.0)
        elif self.noise_hidden is not None:
            self.noise_net = _mlp((self.in_features, *self.noise_hidden, 1), generator)
            with torch.no_grad():
                cast(nn.Linear, self.noise_net[-1]).bias.fill_(inverse_softplus(1.0))

    @property
    def prior(self) -> Prior:
        """The weight prior (shared by all layers)."""
        return self.layers[0].prior

    def kl_divergence(self) -> Tensor:
        """Closed-form KL of all weights to the prior, summed over layers (a scalar)."""
        return torch.stack([layer.kl_divergence() for layer in self.layers]).sum()

    def _predict(
        self, x: Tensor, num: int, generator: torch.Generator | None, sample: bool = True,
        noise: str = "normal",
    ) -> Tensor:
        """Prediction pass (eval mode, no autograd): ``num`` weight draws, chunked over draws.

        All weights are drawn first, layer by layer, exactly as the batched pass draws them (the
        same float32 random numbers, or the means when ``sample`` is False). On the CPU the
        network then runs in the weights' dtype in fixed row blocks
        (:func:`varbayes.nn.rowblocks.block_pass`), where this machine's matrix product is
        checked to compute each row on its own
        (:func:`~varbayes.nn.rowblocks.block_pass_independent`):
        a row's outputs are then bitwise the same in any batch. Elsewhere, or where the check
        fails, it runs in :data:`PREDICT_DTYPE` (float64), a few dozen draws at a time so that
        the activations of a chunk stay in the CPU cache. Returns (num, n, out) in
        :data:`PREDICT_DTYPE`. ``noise='sobol'`` draws the weight noise of all layers at once
        from a scrambled Sobol sequence (:func:`varbayes.nn.qmc.sobol_normals`, one generator
        draw), independent normals where the network has more weights than it has dimensions.
        """
        first = self.layers[0]
        if x.dim() != 2 or x.shape[-1] != first.in_features:
            raise ValueError(
                f"BayesLinear expected inputs with {first.in_features} features in the last "
                f"dimension, got shape {tuple(x.shape)}"
            )
        # [W^T | b] of every draw (varbayes.nn.rowblocks.augmented), W and b drawn into it.
        last, augs, draws = len(self.layers) - 1, [], []
        quasi = _quasi_noise(self.layers, num, generator, x.device) if sample and noise == "sobol" \
            else None
        for i, layer in enumerate(self.layers):
            aug, w, b = augmented_buffer(num, layer.in_features, layer.out_features, i < last,
                                         layer.weight_loc.dtype, x.device)
            bias = None if layer.bias_loc is None else b
            if quasi is not None:
                quasi.weights(layer, w, bias)
            elif sample:
                layer.sample_weights(num, generator, out=(w, bias))
            else:
                w.copy_(layer.weight_loc)
                if layer.bias_loc is not None:
                    b.copy_(layer.bias_loc)
            if bias is None:
                b.zero_()
            augs.append(aug)
            draws.append((w, bias))
        dtype = torch.promote_types(x.dtype, augs[0].dtype)
        out = torch.empty((num, x.shape[0], self.layers[-1].out_features), dtype=PREDICT_DTYPE,
                          device=x.device)
        weights = [a.to(dtype) for a in augs]
        if x.device.type == "cpu" and block_pass_independent(weights):
            return block_pass(x.to(dtype), weights, out)
        width = max(layer.out_features for layer in self.layers)
        rows = max(1, (1 << 16) // width)  # ~0.5 MB of float64 per layer and step
        x = x.to(PREDICT_DTYPE)
        for r0 in range(0, x.shape[0], rows):
            xr = x[r0 : r0 + rows]
            step = max(1, (1 << 16) // (xr.shape[0] * width))
            for start in range(0, num, step):
                h, piece = xr, slice(start, start + step)
                for i, (wd, bd) in enumerate(draws):
                    h = batched_linear(h, wd[piece].to(PREDICT_DTYPE),
                                       None if bd is None else bd[piece].to(PREDICT_DTYPE))
                    h = h.relu_() if i < last else h
                out[piece, r0 : r0 + rows] = h
        return out

    def forward(
        self, x: Tensor, num_samples: int = 1, *, generator: torch.Generator | None = None,
        sample: bool = True, kl: str | None = None, noise: str = "normal",
    ) -> ModelOutput:
        """Push ``x`` through ``num_samples`` weight draws in one batched pass.

        Parameters
        ----------
        x : Tensor of shape (n, in_features)
        num_samples : int, default=1
            Number of weight draws ``S`` (ignored when ``sample=False``: one pass at the means).
        generator : torch.Generator or None
        sample : bool, default=True
        kl : {'analytic', 'mc', None}
            Which KL term to return with the output; see
            :meth:`~varbayes.nn.layers.BayesLinear.forward_kl`.
        noise : {'normal', 'sobol'}, default='normal'
            The weight noise: independent normals, or (on a prediction pass: eval mode, no
            autograd, ``kl=None``) scrambled Sobol normals (:mod:`varbayes.nn.qmc`).

        Returns
        -------
        ModelOutput with ``loc`` and ``scale`` of shape (S, n).
        """
        h, total_kl = self._outputs(x, num_samples, generator, sample, kl, noise)
        return self._head(x, h, total_kl)

    def _outputs(
        self, x: Tensor, num_samples: int, generator: torch.Generator | None, sample: bool,
        kl: str | None, noise: str = "normal",
    ) -> tuple[Tensor, Tensor | None]:
        """The network's raw outputs, shape (S, n, out), and the KL asked for (or None)."""
        s = int(num_samples) if sample else 1
        if s < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        total_kl: Tensor | None = None
        last = len(self.layers) - 1
        prediction = kl is None and _prediction_pass(self)
        if noise not in NOISES or (noise != "normal" and not prediction):
            raise ValueError(f"noise must be one of {list(NOISES)} ('sobol' on a prediction "
                             f"pass: eval mode, no autograd, kl=None), got {noise!r}")
        if prediction:
            h = self._predict(x, s, generator, sample, noise)
        else:
            h = x.unsqueeze(0).expand(s, *x.shape) if s > 1 else x.unsqueeze(0)
            for i, layer in enumerate(self.layers):
                h, layer_kl = layer.forward_kl(h, kl=kl, sample=sample, generator=generator)
                if layer_kl is not None:
                    total_kl = layer_kl if total_kl is None else total_kl + layer_kl
                if i < last:
                    h = torch.relu_(h)
        return h, total_kl

    def _head(self, x: Tensor, h: Tensor, total_kl: Tensor | None) -> ModelOutput:
        """The noise head: from the raw outputs to the Gaussian components."""
        loc = h[..., 0]
        if self.head is Head.HETEROSCEDASTIC and self.noise_hidden is not None:
            raw = _run_mlp(self.noise_net, x)[..., 0]
            scale = softplus_scale(raw, self.min_scale).expand_as(loc)
        elif self.head is Head.HETEROSCEDASTIC:
            scale = softplus_scale(h[..., 1], self.min_scale)
        elif self.head is Head.LEARNED:
            scale = softplus_scale(self.noise_rho, self.min_scale).to(loc.dtype).expand_as(loc)
        elif self.head is Head.FIXED:
            scale = self.noise_std.to(loc.dtype).expand_as(loc)
        else:  # every Head member is handled above; a new one must be added here
            raise ValueError(f"BayesianMLP has no noise head {self.head!r}")
        return ModelOutput(loc, scale, total_kl)
