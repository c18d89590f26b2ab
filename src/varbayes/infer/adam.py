"""Adam with foreach operations, without importing ``torch.optim``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import cast

import torch
from torch import Tensor

__all__ = ["Adam"]

#: Dtypes whose arithmetic with a 0-dim tensor equals that with a Python float (reduced
#: precision dtypes compute with a Python float at float32, with a 0-dim tensor at their own).
_FULL = (torch.float32, torch.float64)


class Adam:
    """Adam on a list of tensors: the arithmetic of ``torch.optim.Adam``, with foreach ops.

    Constructing the first ``torch.optim`` optimiser of a process imports ``torch._dynamo``
    (about 2 s of CPU), more than the whole training of the post's models; this class does not.
    ``weight_decay`` is added to the gradient (L2, as ``torch.optim.Adam``), parameters without
    a gradient are skipped, and each tensor keeps its own step count.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, betas: tuple[float, float] = (0.9,
                 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format)
                        for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format)
                           for p in self.params]
        self.steps = [0] * len(self.params)
        # per tensor for :meth:`_step_one`: the square-root buffer, 0-dim beta2 and eps * c2
        self._one: dict[int, tuple[Tensor, Tensor, Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients (``set_to_none`` is accepted for ``torch.optim`` parity)."""
        for p in self.params:
            p.grad = None

    def step(self, grads: Sequence[Tensor | None] | None = None) -> None:
        """Update the parameters in place from ``grads`` (default: their ``.grad``)."""
        if torch.is_grad_enabled():  # no_grad only where needed: it costs microseconds a call
            with torch.no_grad():
                self.step(grads)
            return
        grads = [p.grad for p in self.params] if grads is None else grads
        live = [i for i, g in enumerate(grads) if g is not None]
        if not live:
            return
        beta1, beta2 = self.betas
        one = self.params[live[0]]
        if (len(live) == 1 and not self.weight_decay and one.device.type == "cpu"
                and one.dtype in _FULL):
            self._step_one(live[0], cast(Tensor, grads[live[0]]))
            return
        params = [self.params[i] for i in live]
        g: list[Tensor] | tuple[Tensor, ...] = cast("list[Tensor]", [grads[i] for i in live])
        m, v = [self.exp_avg[i] for i in live], [self.exp_avg_sq[i] for i in live]
        if self.weight_decay:
            g = torch._foreach_add(g, params, alpha=self.weight_decay)
        for i in live:
            self.steps[i] += 1
        torch._foreach_lerp_(m, g, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, g, g, value=1 - beta2)
        # sqrt(v) / c2 + eps with c2 = sqrt(1 - beta2^t) moved into the step size
        c2 = [math.sqrt(1 - beta2 ** self.steps[i]) for i in live]
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, [self.eps * c for c in c2])
        sizes = [-self.lr * c / (1 - beta1 ** self.steps[i]) for c, i in zip(c2, live, strict=True)]
        torch._foreach_addcdiv_(params, m, denom, sizes)

    def _step_one(self, i: int, g: Tensor) -> None:
        """The step of :meth:`step` for one float32/float64 CPU tensor, without weight decay.

        The same operations as the ``foreach`` calls (on CPU they run them tensor by tensor), so
        the same values, without the lists and with the square-root buffer kept between steps:
        a few microseconds less per step, which is much of a small model's step. The scalars
        are 0-dim tensors of the tensor's dtype: a Python float there becomes a float64 tensor
        converted on every call (the same rounded value, a microsecond or two more).
        """
        beta1, beta2 = self.betas
        self.steps[i] += 1
        step, m, v = self.steps[i], self.exp_avg[i], self.exp_avg_sq[i]
        if i not in self._one:
            self._one[i] = (torch.empty_like(v), v.new_tensor(beta2, device=v.device),
                            v.new_empty(()))
        denom, beta2_, eps = self._one[i]
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2_).addcmul_(g, g, value=1 - beta2)
        c2 = math.sqrt(1 - beta2**step)
        torch.sqrt(v, out=denom).add_(eps.fill_(self.eps * c2))
        self.params[i].addcdiv_(m, denom, value=-self.lr * c2 / (1 - beta1**step))
