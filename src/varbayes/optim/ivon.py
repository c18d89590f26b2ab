"""IVON, variational learning as an optimiser (Shen et al. 2024).

From "Variational Learning is Effective for Large Deep Networks" (ICML 2024). IVON keeps a
mean-field Gaussian posterior :math:`q(\\theta) = \\mathcal{N}(m, \\sigma^2)` over the
parameters of an **unmodified** network: the means are the network's parameters, the scales
:math:`\\sigma = 1 / \\sqrt{\\lambda (h + \\delta)}` follow from a diagonal Hessian estimate ``h``
held by the optimiser, with :math:`\\lambda` the effective sample size (``ess``, the number of
training points) and :math:`\\delta` the weight decay (prior precision :math:`\\lambda\\delta`).
One step, for a loss that is the **mean** negative log-likelihood of a batch:

1. For each of ``mc_samples`` draws :math:`\\theta = m + \\sigma\\epsilon`: the gradient
   :math:`\\hat g` at :math:`\\theta` and the reparameterisation Hessian estimate
   :math:`\\hat g \\cdot \\epsilon / \\sigma`; both averaged over the draws.
2. :math:`g \\leftarrow \\beta_1 g + (1-\\beta_1)\\bar g`;
   :math:`\\hat h = \\lambda (h + \\delta)\\,\\overline{\\hat g \\cdot \\sigma\\epsilon}`;
   :math:`h \\leftarrow \\beta_2 h + (1-\\beta_2)\\hat h +
   \\tfrac12 (1-\\beta_2)^2 (h - \\hat h)^2 / (h + \\delta)` (the last term keeps ``h``
   positive).
3. :math:`m \\leftarrow m - \\alpha\\,\\mathrm{clip}\\big((g / (1-\\beta_1^t) + \\delta m) /
   (h + \\delta), \\pm r\\big)`, with :math:`\\alpha` the learning rate times
   :math:`h_0 + \\delta` (``rescale_lr``), so that the first step is an SGD step of size ``lr``.

Under ``torch.distributed`` every rank draws its own noise (a different generator per rank) and
the averaged gradient and Hessian estimate are all-reduced before the update, so the ranks stay
identical and the Hessian estimate is the average over the ranks; ``ess`` is the *global*
number of training points. Do not wrap the network in DDP as well.

>>> import torch
>>> net = torch.nn.Linear(2, 1)
>>> opt = IVON(net.parameters(), lr=0.1, ess=100)
>>> with opt.sampled_params(train=True):
...     net(torch.randn(8, 2)).pow(2).mean().backward()
>>> opt.step()
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from varbayes._checks_scalar import check_count

__all__ = ["IVON"]


class IVON(torch.optim.Optimizer):
    """Improved Variational Online Newton.

    Parameters
    ----------
    params : iterable of Parameter or dicts
        The network's parameters: the posterior means.
    lr : float
        Learning rate (of the first step, with ``rescale_lr``).
    ess : float
        Effective sample size :math:`\\lambda`, the number of training points (all ranks).
    hess_init : float, default=1.0
        Initial Hessian estimate :math:`h_0`; initial scales
        :math:`1/\\sqrt{\\lambda(h_0+\\delta)}`.
    beta1, beta2 : float, default=0.9, 0.99999
        Decay of the gradient momentum and of the Hessian estimate.
    weight_decay : float, default=1e-4
        :math:`\\delta`; the prior is :math:`\\mathcal{N}(0, 1/(\\lambda\\delta))`.
    mc_samples : int, default=1
        Weight draws per step when :meth:`step` is given a closure.
    clip_radius : float, default=inf
        Elementwise clip of the preconditioned update.
    rescale_lr : bool, default=True
        Multiply ``lr`` by :math:`h_0 + \\delta`.
    sync : bool or None, default=None
        All-reduce the gradient and Hessian estimates over ``torch.distributed`` ranks
        (``None``: when a process group with more than one rank is initialised).
    generator : torch.Generator or None
        Random source of the weight noise.
    """

    def __init__(
        self, params: Iterable[Any], lr: float, ess: float, *, hess_init: float = 1.0,
        beta1: float = 0.9, beta2: float = 0.99999, weight_decay: float = 1e-4,
        mc_samples: int = 1, clip_radius: float = math.inf, rescale_lr: bool = True,
        sync: bool | None = None, generator: torch.Generator | None = None,
    ) -> None:
        for name, value in (("lr", lr), ("ess", ess), ("hess_init", hess_init),
                            ("clip_radius", clip_radius)):
            if not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not 0.0 <= float(weight_decay) < math.inf:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        for name, value in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= float(value) < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
        defaults = dict(lr=float(lr), ess=float(ess), hess_init=float(hess_init),
                        beta1=float(beta1), beta2=float(beta2),
                        weight_decay=float(weight_decay), clip_radius=float(clip_radius))
        super().__init__(params, defaults)
        self.mc_samples = check_count(mc_samples, "mc_samples")
        self.rescale_lr = bool(rescale_lr)
        self.sync = sync
        self.generator = generator
        self.steps = 0
        self._count = 0
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["momentum"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["hess"] = torch.full_like(p, group["hess_init"])

    # ------------------------------------------------------------------ the posterior

    def _params(self) -> Iterator[tuple[dict[str, Any], Tensor]]:
        for group in self.param_groups:
            for p in group["params"]:
                yield group, p

    def posterior_scale(self, p: Tensor) -> Tensor:
        """The posterior standard deviation of parameter ``p``, ``1/sqrt(ess (h + wd))``."""
        group = next(g for g in self.param_groups if any(q is p for q in g["params"]))
        return torch.rsqrt(group["ess"] * (self.state[p]["hess"] + group["weight_decay"]))

    def sample_parameters(
        self, module: nn.Module, num: int, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """``num`` posterior draws of each parameter of ``module`` this optimiser holds.

        Returns ``{name: Tensor of shape (num, *param.shape)}`` (the draws
        :func:`varbayes.predictive.sample_outputs` applies with ``vmap``).
        """
        num = check_count(num, "num")
        held = {id(p) for _, p in self._params()}
        out = {}
        for name, p in module.named_parameters():
            if id(p) not in held:
                continue
            eps = torch.randn((num, *p.shape), generator=generator, dtype=p.dtype,
                              device=p.device)
            out[name] = p.detach() + self.posterior_scale(p) * eps
        if not out:
            raise ValueError(f"this IVON optimiser holds none of {type(module).__name__}'s "
                             "parameters")
        return out

    @contextlib.contextmanager
    def sampled_params(self, train: bool = False) -> Iterator[None]:
        """Set the parameters to one posterior draw inside the block, the means after it.

        With ``train=True`` the gradients left in ``p.grad`` by a ``backward()`` inside the
        block are collected for the next :meth:`step` (several blocks: several MC samples).
        """
        means, noises = [], []
        with torch.no_grad():
            for group, p in self._params():
                noise = torch.randn(p.shape, generator=self.generator, dtype=p.dtype,
                                    device=p.device)
                noise.mul_(torch.rsqrt(group["ess"] * (self.state[p]["hess"]
                                                       + group["weight_decay"])))
                means.append(p.detach().clone())
                noises.append(noise)
                p.add_(noise)
        try:
            yield
        finally:
            with torch.no_grad():
                count = self._count + 1 if train else self._count
                for (_, p), mean, noise in zip(self._params(), means, noises, strict=True):
                    p.copy_(mean)
                    if not train:
                        continue
                    grad = torch.zeros_like(p) if p.grad is None else p.grad.detach()
                    state = self.state[p]
                    if count == 1:
                        state["avg_grad"] = grad.clone()
                        state["avg_nxg"] = noise * grad
                    else:  # running means over the MC samples
                        state["avg_grad"].add_(grad - state["avg_grad"], alpha=1.0 / count)
                        state["avg_nxg"].add_(noise * grad - state["avg_nxg"], alpha=1.0 / count)
                self._count = count

    def discard(self) -> None:
        """Forget the gradients collected since the last :meth:`step` (e.g. of a NaN loss)."""
        for _, p in self._params():
            self.state[p].pop("avg_grad", None)
            self.state[p].pop("avg_nxg", None)
        self._count = 0

    # ------------------------------------------------------------------ the update

    def _all_reduce(self) -> None:
        sync = self.sync
        if sync is None:
            sync = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not sync:
            return
        world = dist.get_world_size()
        for _, p in self._params():
            for key in ("avg_grad", "avg_nxg"):
                dist.all_reduce(self.state[p][key])
                self.state[p][key].div_(world)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        """One IVON update from the gradients collected in :meth:`sampled_params` blocks.

        ``closure`` (zero the gradients, compute the loss, ``backward()``, return the loss) is
        called ``mc_samples`` times at fresh draws; the mean loss is returned.
        """
        loss: Tensor | None = None
        if closure is not None:
            losses = []
            for _ in range(self.mc_samples):
                with self.sampled_params(train=True), torch.enable_grad():
                    losses.append(closure().detach())
            loss = torch.stack(losses).mean()
        if self._count == 0:
            raise RuntimeError("IVON.step() needs gradients at sampled parameters: run the "
                               "backward pass inside `with opt.sampled_params(train=True):` or "
                               "pass a closure")
        self._all_reduce()
        self.steps += 1
        for group in self.param_groups:
            b1, b2, wd = group["beta1"], group["beta2"], group["weight_decay"]
            lr = group["lr"] * ((group["hess_init"] + wd) if self.rescale_lr else 1.0)
            debias = 1.0 - b1 ** self.steps
            for p in group["params"]:
                state = self.state[p]
                m, h = state["momentum"], state["hess"]
                m.mul_(b1).add_(state["avg_grad"], alpha=1.0 - b1)
                h_hat = state["avg_nxg"] * (h + wd) * group["ess"]
                h.copy_(b2 * h + (1.0 - b2) * h_hat
                        + 0.5 * (1.0 - b2) ** 2 * (h - h_hat).square() / (h + wd))
                update = ((m / debias + wd * p) / (h + wd)).clamp_(
                    -group["clip_radius"], group["clip_radius"])
                p.sub_(update, alpha=lr)
                del state["avg_grad"], state["avg_nxg"]
        self._count = 0
        return loss
