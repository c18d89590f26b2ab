"""The IVON step of :func:`varbayes.infer.train`, for a model built with ``method='ivon'``.

A varbayes model that carries an :class:`~varbayes.optim.posterior.IVONPosterior` (built by
:mod:`varbayes.kinds` for ``method='ivon'``) is trained by :func:`~varbayes.infer.train` with
:class:`IVONStep` in place of Adam: the model is evaluated at its weight means (``sample=False``,
no weight noise of its own and no KL), and :class:`~varbayes.optim.IVON` draws the weights,
keeps the Hessian estimate in the model's buffers and updates the means. The prior is IVON's
weight decay, so the loss is the objective's likelihood alone, and ``ess`` is the objective's
``n_data`` (the global number of rows). Before every ``callback`` (early stopping scores the model
there) and at the end, the layers' scales are set to the posterior's
(:func:`~varbayes.optim.posterior.sync_scales`), so every predictive draws from it.

Under torchrun the rows are sharded as for Adam and each rank draws its own weight noise, but the
network is *not* called through the DDP wrapper: IVON averages the gradient and Hessian
estimates over the ranks itself.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from varbayes.infer.objectives import ELBOTerms
from varbayes.optim.ivon import IVON
from varbayes.optim.posterior import held_parameters, posterior_of, sync_scales

__all__ = ["IVONStep"]


class IVONStep:
    """Training steps of ``model`` (with ``model.ivon``) by IVON at learning rate ``lr``.

    ``objective`` is the kind's :class:`~varbayes.ELBO`: only its likelihood and ``n_data`` are
    used. The history's ``kl`` is 0 (the prior is in the update, not in the loss).

    Raises
    ------
    TypeError
        If ``model`` carries no IVON posterior.
    """

    def __init__(self, model: nn.Module, objective: Any, lr: float,
                 generator: torch.Generator | None) -> None:
        posterior = posterior_of(model)
        if posterior is None:
            raise TypeError(f"IVON training needs a model built with method='ivon' (model.ivon), "
                            f"got {type(model).__name__}")
        self.model, self.posterior, self.likelihood = model, posterior, objective.likelihood
        ess, decay = posterior.start(int(objective.n_data))
        held = held_parameters(model)
        self.optimizer = IVON(
            [p for _, p in held], lr=lr, ess=ess, hess_init=posterior.hess_init,
            beta2=posterior.beta2, weight_decay=decay, mc_samples=posterior.mc_samples,
            clip_radius=posterior.clip_radius, generator=generator)
        for name, p in held:  # IVON updates the model's buffers: they are saved and restored
            self.optimizer.state[p]["hess"] = posterior.hessian(name)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor,
             generator: torch.Generator | None) -> ELBOTerms:
        """The mean negative log-likelihood over ``mc_samples`` draws, its gradients collected."""
        mc = self.posterior.mc_samples
        total = x.new_zeros((), dtype=torch.float64)
        for _ in range(mc):
            with self.optimizer.sampled_params(train=True):
                self.optimizer.zero_grad(set_to_none=True)
                out = self.model(x, 1, generator=generator, sample=False)
                nll = -self.likelihood.log_prob(y, out.params).mean()
                nll.backward()
            total += nll.detach().double() / mc
        return ELBOTerms(total, total, total.new_zeros(()))

    def discard(self) -> None:
        """Forget the gradients of a step that is skipped."""
        self.optimizer.discard()

    def step(self, terms: ELBOTerms) -> None:
        """The IVON update from the gradients :meth:`loss` collected."""
        self.optimizer.step()

    def sync(self) -> None:
        """Set the layers' scales to the posterior's (before a callback, and at the end)."""
        sync_scales(self.model)
