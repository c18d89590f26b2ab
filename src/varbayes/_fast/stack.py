"""``M`` Bayesian MLPs as one flat tensor, with the negative ELBO's gradient derived by hand.

:class:`BayesianMLPStack` holds ``M`` :class:`~varbayes.models.BayesianMLP` of one architecture
in one ``(M, P)`` tensor and evaluates the negative ELBO of :class:`~varbayes.infer.ELBO`
(closed-form KL, Gaussian prior) *and its gradient* for all of them, one batched matrix product
per layer and direction: no autograd graph, no distribution objects, no views rebuilt per step
(about a hundred tensor operations a step, whatever ``M``). ``tests/fast/test_fast.py`` checks
it against autograd; :mod:`varbayes._fast.engine` trains it. Gradients, per model, with
:math:`c = \\text{kl\\_weight} / N` and a prior :math:`\\mathcal{N}(\\mu_0, s_0^2)`:

.. math::
    \\frac{\\partial \\text{loss}}{\\partial \\mu}
        = \\frac{\\partial \\overline{\\text{nll}}}{\\partial w}
        + c\\,\\frac{\\mu - \\mu_0}{s_0^2}, \\qquad
    \\frac{\\partial \\text{loss}}{\\partial \\rho}
        = \\Big(\\frac{\\partial \\overline{\\text{nll}}}{\\partial \\sigma}
        + c\\,\\big(\\frac{\\sigma}{s_0^2} - \\frac1\\sigma\\big)\\Big)
        \\operatorname{sigmoid}(\\rho)

where :math:`\\partial/\\partial\\sigma` is :math:`\\epsilon\\,\\partial/\\partial w` for
sampled weights (``reparam``, ``flipout``) and :math:`2\\sigma\\,\\partial/\\partial\\sigma^2`
through the pre-activation variance for ``local``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, TypeAlias, cast

import torch
from torch import Tensor, nn

from varbayes._fast.arch import ESTIMATORS, HEADS, stack_architecture
from varbayes._fast.classes import CLASS_HEADS, class_head
from varbayes._fast.kernels import (
    mlp_backward,
    mm_t,
    offsets,
    outer_into,
    relu_grad,
    standard_normal_,
)
from varbayes.models import BayesianMLP, Head
from varbayes.nn.layers import Estimator, batched_linear
from varbayes.nn.parametrization import softplus_scale

__all__ = [
    "CLASS_HEADS",
    "HEADS",
    "ESTIMATORS",
    "BayesianMLPStack",
    "stack_architecture",
]

#: One step's noise from :meth:`BayesianMLPStack.draw_noise`: a Tensor (``reparam``), a list of
#: Tensor (``local``) or a Tensor and the random signs (``flipout``).
Noise: TypeAlias = "Tensor | list[Tensor] | tuple[Tensor, Tensor]"

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _require(covered: bool, member: Head | Estimator) -> None:
    """Fail loudly where a branch on a head or estimator meets a member it does not cover."""
    if not covered:
        raise ValueError(f"the fast engine has no branch for {member!r}")


class BayesianMLPStack:
    """``M`` Bayesian MLPs of one architecture as one flat tensor with a leading model dimension.

    Parameters
    ----------
    models : sequence of BayesianMLP
        Models of identical architecture (sizes, head, estimator, prior, floors, dtype, device);
        their parameters are copied in. :meth:`store` copies them back.

    Attributes
    ----------
    params : Tensor of shape (M, P)
        Per model: weight and bias means (``Pb``), their ``rho`` (``Pb``), the noise network
        (``head='heteroscedastic'`` with ``noise_hidden``) and ``noise_rho`` (``head='learned'``).
    grad : Tensor of shape (M, P)
        Filled by :meth:`loss_and_grad`.
    """

    def __init__(self, models: Sequence[BayesianMLP]) -> None:
        models = list(models)
        if not models:
            raise ValueError("need at least one model")
        arch = stack_architecture(models[0])
        for i, model in enumerate(models[1:], 1):
            if stack_architecture(model) != arch:
                raise ValueError(f"model {i} differs in architecture from model 0")
        self.arch, self.num_models = arch, len(models)
        self.layers, pb = offsets(arch.sizes)
        self.noise_layers, pd = offsets(arch.noise_sizes) if arch.noise_sizes else ([], 0)
        self.num_bayes = pb
        learned = arch.head is Head.LEARNED
        opts: dict[str, Any] = dict(dtype=arch.dtype, device=arch.device)
        self.params = torch.empty(self.num_models, 2 * pb + pd + learned, **opts)
        self.grad = torch.zeros_like(self.params)
        self.loc, self.rho = self.params[:, :pb], self.params[:, pb : 2 * pb]
        self.gloc, self.grho = self.grad[:, :pb], self.grad[:, pb : 2 * pb]
        self.det = self.params[:, 2 * pb : 2 * pb + pd]
        self.gdet = self.grad[:, 2 * pb : 2 * pb + pd]
        # the learned noise's rho: the last column (only with head='learned')
        self.noise_rho, self.gnoise_rho = self.params[:, -1:], self.grad[:, -1:]
        self._spaces: dict[tuple[str, int], tuple[Tensor, list[Tensor], list[Tensor]]] = {}
        self._transposes: dict[tuple[str, int], list[Tensor]] = {}
        self._noise: dict[tuple[str, int, int, int],
                          tuple[Tensor | list[Tensor], list[Tensor], Tensor | None]] = {}
        self._loc3 = self.loc.unsqueeze(1)
        # the last view made at each call site of :meth:`_view`, with the tensor it views
        self._last: dict[str, tuple[Tensor, Tensor]] = {}
        self._consts: dict[float, Tensor] = {}
        self.noise_std: float | Tensor = 1.0
        if arch.head is Head.FIXED:
            stds = torch.stack([m.noise_std.detach() for m in models]).to(**opts)
            same = bool((stds == stds[0]).all())
            self.noise_std = float(stds[0]) if same else stds.view(-1, 1, 1)
        self.load(models)
        # columns of frozen parameters (requires_grad False): their gradient is kept at zero
        self.frozen: Tensor | None = None
        if any(arch.frozen):
            self.frozen = torch.zeros(self.params.shape[1], dtype=torch.bool, device=arch.device)
            for tensor, flat in self._pairs(models[0], 0):
                start = flat.storage_offset() - self.params.storage_offset()
                self.frozen[start : start + flat.numel()] |= not tensor.requires_grad

    def _pairs(self, model: BayesianMLP, m: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Each parameter of ``model`` with its flat slice in row ``m`` of :attr:`params`."""
        for layer, (ow, ob, _, fo) in zip(model.layers, self.layers, strict=True):
            yield layer.weight_loc, self.loc[m, ow:ob]
            yield cast(Tensor, layer.bias_loc), self.loc[m, ob : ob + fo]  # checked in arch
            yield layer.weight_rho, self.rho[m, ow:ob]
            yield cast(Tensor, layer.bias_rho), self.rho[m, ob : ob + fo]
        linears = cast("list[nn.Linear]", list(model.noise_net)[0::2] if self.noise_layers else [])
        for linear, (ow, ob, _, fo) in zip(linears, self.noise_layers, strict=True):
            yield linear.weight.T, self.det[m, ow:ob]  # stored as (fan_in, fan_out)
            yield linear.bias, self.det[m, ob : ob + fo]
        if self.arch.head is Head.LEARNED:
            yield model.noise_rho, self.noise_rho[m]

    @torch.no_grad()
    def load(self, models: Sequence[BayesianMLP]) -> None:
        """Copy the parameters of ``models`` (one per stacked model) into :attr:`params`."""
        for m, model in enumerate(models):
            for tensor, flat in self._pairs(model, m):
                flat.copy_(tensor.reshape(-1))

    @torch.no_grad()
    def store(self, models: Sequence[BayesianMLP]) -> None:
        """Copy :attr:`params` back into the parameters of ``models``."""
        for m, model in enumerate(models):
            for tensor, flat in self._pairs(model, m):
                tensor.copy_(flat.view(tensor.shape))

    def draw_noise(self, rows: int, particles: int = 1,
                   generator: torch.Generator | Sequence[torch.Generator] | None = None) -> Noise:
        """Standard-normal noise of one step for ``rows`` data rows and ``particles`` draws.

        With ``M = 1``, drawn layer by layer in the order and shapes of the layers' own forward
        pass: :func:`~varbayes.infer.train` gives the same model with or without the engine.
        With one generator per model (``reparam``, ``local``), model ``m`` gets what it would
        get alone with ``generator[m]``. The tensors are reused: the next call overwrites them.

        Returns
        -------
        ``reparam``: Tensor of shape (M, S, Pb), one draw of every weight and bias.
        ``local``: list of Tensor of shape (M, S * rows, f_out), one per pre-activation.
        ``flipout``: that of ``reparam`` and random signs of shape
        (M * S, rows, sum of fan-ins + fan-outs).
        """
        m, s, est = self.num_models, particles, self.arch.estimator
        key = (est.value, m, s, rows if est is not Estimator.REPARAM else 0)
        if key not in self._noise:
            opts: dict[str, Any] = dict(dtype=self.arch.dtype, device=self.arch.device)
            if est is Estimator.LOCAL:  # one flat buffer, contiguous per layer
                flat = torch.empty(m * s * rows * sum(self.arch.sizes[1:]), **opts)
                views, off = [], 0
                for *_, fo in self.layers:
                    views.append(flat[off : off + m * s * rows * fo].view(m, s * rows, fo))
                    off += m * s * rows * fo
                self._noise[key] = (views, views, None)
            else:
                eps = torch.empty(m, s, self.num_bayes, **opts)
                views = [v for ow, ob, _, fo in self.layers
                         for v in (eps[..., ow:ob], eps[..., ob : ob + fo])]
                fans = sum(self.arch.sizes[:-1]) + sum(self.arch.sizes[1:])
                signs = (torch.empty(m * s, rows, fans, **opts)
                         if est is Estimator.FLIPOUT else None)
                self._noise[key] = (eps, views, signs)
        out, views, signs = self._noise[key]
        if not (generator is None or isinstance(generator, torch.Generator)):  # one per model
            if signs is not None or len(generator) != m:
                raise ValueError("one generator per model needs reparam or local, and M of them")
            for view in views:
                for i, gen in enumerate(generator):
                    standard_normal_(view[i], gen)
            return out
        if m > 1 and est is not Estimator.LOCAL:  # no autograd path to match: one draw
            cast(Tensor, out).normal_(generator=generator)
        elif signs is None:
            for view in views:
                standard_normal_(view, generator)
        if signs is None:
            return out
        i_off, o_off = 0, sum(self.arch.sizes[:-1])
        for i, (_, _, fi, fo) in enumerate(self.layers):  # flipout, in the layers' order
            if m == 1:
                standard_normal_(views[2 * i], generator)
                standard_normal_(views[2 * i + 1], generator)
            for off, width in ((i_off, fi), (o_off, fo)):
                bits = torch.randint(0, 2, (m * s, rows, width), generator=generator,
                                     device=self.arch.device)
                signs[..., off : off + width] = bits.mul_(2).sub_(1)
            i_off, o_off = i_off + fi, o_off + fo
        return cast(Tensor, out), signs

    def _const(self, value: float) -> Tensor | float:
        """``value`` as a 0-dim tensor of the parameters' dtype, made once (float32, float64).

        A Python float in an operation on a float32 tensor becomes a float64 scalar tensor that
        is converted (``aten::to``) on every call; a 0-dim tensor of the right dtype is the same
        operand (rounded alike) without that conversion, a few microseconds per operation.
        Reduced-precision dtypes compute with a Python float at float32: they keep the float.
        """
        if self.arch.dtype not in (torch.float32, torch.float64):
            return value
        const = self._consts.get(value)
        if const is None:
            const = self._consts[value] = torch.tensor(value, dtype=self.arch.dtype,
                                                       device=self.arch.device)
        return const

    def _views(self, flat: Tensor, k: int, layers: list[tuple[int, int, int, int]]
               ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """``flat`` (k, width) with its weight (k, f_in, f_out) and bias (k, 1, f_out) views."""
        return (flat, [flat[:, ow:ob].view(k, fi, fo) for ow, ob, fi, fo in layers],
                [flat[:, ob : ob + fo].view(k, 1, fo) for _, ob, _, fo in layers])

    def _space(self, name: str, particles: int = 1) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """A persistent tensor and its per-layer views, made once (no per-step view churn).

        ``loc``, ``gloc``, ``det``, ``gdet`` are parts of :attr:`params` and :attr:`grad`; the
        others are workspaces of shape (M * particles, Pb): ``w`` (sampled weights or the flipout
        perturbation), ``gw`` (their gradient), ``var`` and ``gvar`` (local reparameterisation).
        """
        key = (name, particles)
        if key not in self._spaces:
            k = self.num_models * particles
            layers = self.noise_layers if name in ("det", "gdet") else self.layers
            flat = getattr(self, name, None)
            if flat is None:
                flat = torch.empty(k, self.num_bayes, dtype=self.arch.dtype,
                                   device=self.arch.device)
            self._spaces[key] = self._views(flat, k, layers)
        return self._spaces[key]

    def _view(self, site: str, t: Tensor, shape: tuple[int, ...]) -> Tensor:
        """``t.view(shape)`` (``t.unsqueeze(0)`` for an empty ``shape``), kept while ``t`` is.

        The tensors viewed here are mostly the same from step to step (the workspaces, the
        noise buffer, full-batch data): one view per call site is kept and reused when the
        same tensor comes again, which saves a tensor operation.
        """
        last = self._last.get(site)
        if last is not None and last[0] is t:
            return last[1]
        view = t.view(shape) if shape else t.unsqueeze(0)
        self._last[site] = (t, view)
        return view

    def _transposed(self, name: str, particles: int = 1) -> list[Tensor]:
        """The weight views of :meth:`_space` transposed, (k, f_out, f_in), made once."""
        key = (name + ".T", particles)
        if key not in self._transposes:
            self._transposes[key] = [w.transpose(1, 2) for w in self._space(name, particles)[1]]
        return self._transposes[key]

    def _sampled(self, h: Tensor, noise: Noise, sigma: Tensor,
                 particles: int) -> tuple[Tensor, list[Any]]:
        """Forward pass with weight-space noise (reparam, flipout); h of shape (M*S, B, d)."""
        m, k, last = self.num_models, self.num_models * particles, len(self.layers) - 1
        w, ws, bs = self._space("w", particles)
        if self.arch.estimator is Estimator.REPARAM:  # W = mu + sigma * eps
            torch.addcmul(self._loc3, sigma.unsqueeze(1), cast(Tensor, noise),
                          out=self._view("w", w, (m, particles, -1)))
            acts, wts = [], self._transposed("w", particles)
            for i in range(len(ws)):
                acts.append(h)
                h = batched_linear(h, ws[i], bs[i], weight_t=wts[i])
                h = h.relu_() if i < last else h
            return h, acts
        _require(self.arch.estimator is Estimator.FLIPOUT, self.arch.estimator)
        # flipout: h W = h mu + ((h * s_in) (sigma * eps)) * s_out; the bias is not flipped
        eps, signs = cast("tuple[Tensor, Tensor]", noise)
        torch.mul(sigma.unsqueeze(1), eps, out=w.view(m, particles, -1))
        _, locs, loc_bs = self._space("loc")
        cache, i_off, o_off = [], 0, sum(self.arch.sizes[:-1])
        for i, (_, _, fi, fo) in enumerate(self.layers):
            s_in, s_out = signs[..., i_off : i_off + fi], signs[..., o_off : o_off + fo]
            i_off, o_off = i_off + fi, o_off + fo
            hs = h * s_in
            mean = batched_linear(h.reshape(m, -1, fi), locs[i], loc_bs[i]).view(k, -1, fo)
            out = batched_linear(hs, ws[i]).mul_(s_out).add_(mean).add_(bs[i])
            cache.append((h, hs, s_in, s_out))
            h = out.relu_() if i < last else out
        return h, cache

    def _sampled_backward(self, g: Tensor, cache: list[Any], noise: Noise,
                          particles: int) -> Tensor:
        """Fill :attr:`gloc` with the likelihood gradient; return that of ``sigma`` (M, Pb)."""
        m, pb = self.num_models, self.num_bayes
        reparam = self.arch.estimator is Estimator.REPARAM
        _, ws, _ = self._space("w", particles)
        gw, gws, gbs = self._space("gloc" if reparam and particles == 1 else "gw", particles)
        if reparam:
            mlp_backward(g, cache, self._transposed("w", particles), gws, gbs)
            eps = cast(Tensor, noise)
        else:
            _require(self.arch.estimator is Estimator.FLIPOUT, self.arch.estimator)
            eps = cast("tuple[Tensor, Tensor]", noise)[0]
            _, locs, _ = self._space("loc")
            _, gloc_ws, _ = self._space("gloc")
            for i in reversed(range(len(self.layers))):
                h, hs, s_in, s_out = cache[i]
                fi, fo = h.shape[-1], g.shape[-1]
                gs = g * s_out
                outer_into(gws[i], hs, gs)
                torch.sum(g, 1, keepdim=True, out=gbs[i])
                g_rows = g.reshape(m, -1, fo)
                outer_into(gloc_ws[i], h.reshape(m, -1, fi), g_rows)
                if i:
                    gh = mm_t(gs, ws[i]).mul_(s_in)
                    gh += mm_t(g_rows, locs[i]).view_as(gh)
                    g = relu_grad(gh, h, 0)
            # the bias gradient of the mean equals that of its perturbation, summed over draws
            for _, ob, _, fo in self.layers:
                self.gloc[:, ob : ob + fo] = gw.view(m, particles, pb)[:, :, ob : ob + fo].sum(1)
        if particles == 1:
            return torch.mul(gw if reparam else gw.view(m, pb), self._view("eps", eps, (m, pb)))
        gw = gw.view(m, particles, pb)
        if reparam:
            torch.sum(gw, 1, out=self.gloc)
        return (gw * eps).sum(1)

    def _local(self, h: Tensor, xi: list[Tensor], sigma: Tensor) -> tuple[Tensor, list[Any]]:
        """Local reparameterisation: sample pre-activations; h of shape (M, S*B, d)."""
        last = len(self.layers) - 1
        var, vws, vbs = self._space("var")
        torch.mul(sigma, sigma, out=var)
        _, ws, bs = self._space("loc")
        cache = []
        for i, noise in enumerate(xi):
            h2 = h * h
            std = batched_linear(h2, vws[i], vbs[i]).sqrt_()
            out = batched_linear(h, ws[i], bs[i]).addcmul_(std, noise)
            cache.append((h, h2, std, noise))
            h = out.relu_() if i < last else out
        return h, cache

    def _local_backward(self, g: Tensor, cache: list[Any], sigma: Tensor) -> Tensor:
        """Fill :attr:`gloc`; return the likelihood gradient of ``sigma`` (M, Pb)."""
        _, ws, _ = self._space("loc")
        _, vws, _ = self._space("var")
        _, gws, gbs = self._space("gloc")
        gvar, gvws, gvbs = self._space("gvar")  # twice the gradient of the variances
        for i in reversed(range(len(self.layers))):
            h, h2, std, noise = cache[i]
            gv = torch.mul(g, noise).div_(std)  # d/d var = g * noise / (2 std)
            outer_into(gws[i], h, g)
            torch.sum(g, 1, keepdim=True, out=gbs[i])
            outer_into(gvws[i], h2, gv)
            torch.sum(gv, 1, keepdim=True, out=gvbs[i])
            if i:
                gh = mm_t(g, ws[i])
                gh.addcmul_(h, mm_t(gv, vws[i]))
                g = relu_grad(gh, h, 0)
        return gvar * sigma  # d/d sigma = 2 sigma d/d var

    def _noise_net(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The point-estimate noise network on x (M, B, d): raw output (M, B, 1), its inputs."""
        _, ws, bs = self._space("det")
        acts, h, last, wts = [], x, len(ws) - 1, self._transposed("det")
        for i in range(len(ws)):
            acts.append(h)
            h = batched_linear(h, ws[i], bs[i], weight_t=wts[i])
            h = h.relu_() if i < last else h
        return h, acts

    def _head(self, out: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Mean NLL per model (M,) and its gradient w.r.t. ``out`` (M, S, B, f_L)."""
        arch, (m, s, b, _) = self.arch, out.shape
        if arch.likelihood != "gaussian":
            return class_head(out, y, arch.likelihood)
        inv = 1.0 / (s * b)
        loc = out[..., 0]
        if arch.head is Head.FIXED or arch.head is Head.LEARNED:
            r = loc - y
            q = (r * r).sum((1, 2))
            if arch.head is Head.FIXED:
                std = self.noise_std  # a float, or one value per model (M, 1, 1)
                if isinstance(std, float):
                    nll = torch.mul(q, self._const(0.5 * inv / std**2)).add_(
                        self._const(math.log(std) + _HALF_LOG_2PI))
                    return nll, r.mul_(self._const(inv / std**2))
                nll = (0.5 * inv) * q / std.view(m) ** 2 + std.view(m).log() + _HALF_LOG_2PI
                return nll, r.mul_(inv / std**2)
            std = softplus_scale(self.noise_rho, arch.min_scale)  # (M, 1)
            prec = std.pow(-2)
            nll = (0.5 * inv) * q * prec[:, 0] + std[:, 0].log() + _HALF_LOG_2PI
            g_std = 1.0 / std - (inv * q).unsqueeze(1) * prec / std
            torch.mul(g_std, torch.sigmoid(self.noise_rho), out=self.gnoise_rho)
            return nll, r.mul_(prec.view(m, 1, 1) * inv)
        _require(arch.head is Head.HETEROSCEDASTIC, arch.head)
        cache = None
        if self.noise_layers:  # sigma(x) from the point-estimate network, shared by the S draws
            raw3, cache = self._noise_net(x if x.dim() == 3 else x.expand(m, *x.shape))
            raw = raw3.view(m, 1, b)
        else:  # sigma(x) from the second output of the Bayesian network
            raw = out[..., 1]
        std = softplus_scale(raw, arch.min_scale)
        z = (loc - y) / std
        nll = (0.5 * (z * z).sum((1, 2)) + std.log().sum((1, 2)) * (s if cache else 1)) * inv
        g_loc = (z / std).mul_(inv)
        g_raw = (1.0 - z * z).div_(std).mul_(inv)
        if cache is None:
            return nll + _HALF_LOG_2PI, torch.stack((g_loc, g_raw.mul_(torch.sigmoid(raw))), -1)
        g_raw = g_raw.sum(1, keepdim=True).mul_(torch.sigmoid(raw)).view(m, b, 1)
        mlp_backward(g_raw, cache, self._transposed("det"), *self._space("gdet")[1:])
        return nll + _HALF_LOG_2PI, g_loc.unsqueeze(-1)

    def loss_and_grad(self, x: Tensor, y: Tensor, noise: Noise, *,
                      n_data: int, kl_weight: float = 1.0, particles: int = 1) -> Tensor:
        """Negative ELBO of every model on one batch; fills :attr:`grad`.

        Parameters
        ----------
        x : Tensor of shape (B, d) or (M, B, d)
            Inputs, shared by all models or one batch per model.
        y : Tensor of shape (B,) or (M, B)
        noise
            From :meth:`draw_noise` with ``rows=B`` and the same ``particles``.
        n_data, kl_weight, particles
            As in :class:`~varbayes.ELBO` (``N``, KL multiplier, ``num_particles``).

        Returns
        -------
        Tensor of shape (3, M)
            ``loss = nll + kl_weight * kl / n_data``, the mean NLL per point and the KL, per model,
            exactly the terms of :class:`~varbayes.ELBO` (without autograd).
        """
        arch, m, s, b = self.arch, self.num_models, particles, x.shape[-2]
        local = arch.estimator is Estimator.LOCAL
        sigma = softplus_scale(self.rho, self._const(arch.floor))
        if x.dim() == 2 and m * s == 1:
            h = self._view("x", x, ())
        elif local:
            h = x if x.dim() == 3 else x.expand(m, *x.shape)
            h = h.repeat(1, s, 1) if s > 1 else h
        elif x.dim() == 2:
            h = x.expand(m * s, b, x.shape[-1])
        else:
            h = x.unsqueeze(1).expand(m, s, b, x.shape[-1]).reshape(m * s, b, x.shape[-1])
        out, cache = (self._local(h, cast("list[Tensor]", noise), sigma) if local
                      else self._sampled(h, noise, sigma, s))
        nll, g_out = self._head(out.view(m, s, b, -1), x, y if y.dim() == 1 else y.unsqueeze(1))
        g_out = g_out.view(out.shape)
        g_sigma = (self._local_backward(g_out, cache, sigma) if local
                   else self._sampled_backward(g_out, cache, noise, s))
        # closed-form KL to N(mu0, s0^2) and its gradient, scaled by c = kl_weight / N
        mu0, s0 = arch.prior
        c = kl_weight / n_data
        diff = self.loc - mu0 if mu0 else self.loc
        kl = torch.linalg.vecdot(sigma, sigma).add_(torch.linalg.vecdot(diff, diff))
        kl.mul_(self._const(0.5 / s0**2)).sub_(sigma.log().sum(1))
        kl.add_(self._const(self.num_bayes * (math.log(s0) - 0.5)))
        self.gloc.add_(diff, alpha=c / s0**2)
        g_sigma.add_(sigma, alpha=c / s0**2).add_(sigma.reciprocal(), alpha=-c)
        torch.mul(g_sigma, torch.sigmoid(self.rho), out=self.grho)
        if self.frozen is not None:
            self.grad.masked_fill_(self.frozen, 0.0)
        return torch.stack((torch.add(nll, kl, alpha=c), nll, kl))
