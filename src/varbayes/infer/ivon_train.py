"""The training loop of ``method='ivon'``: IVON on the mean negative log-likelihood.

:func:`train_ivon` takes the same arguments as :func:`varbayes.infer.train` and trains a
varbayes model that carries an :class:`~varbayes.optim.posterior.IVONPosterior` (built by
:mod:`varbayes.kinds` for ``method='ivon'``): the model is evaluated at its weight means
(``sample=False``, no weight noise of its own and no KL), and :class:`~varbayes.optim.IVON`
draws the weights, keeps the Hessian estimate in the model's buffers and updates the means. The
prior is IVON's weight decay, so the loss is the likelihood alone. Before every ``callback``
(early stopping scores the model there) and at the end, the layers' scales are set to the
posterior's (:func:`~varbayes.optim.posterior.sync_scales`), so every predictive draws from it.

Under torchrun the rows are sharded as in :func:`~varbayes.infer.train` and each rank draws its
own weight noise; the network is *not* wrapped in DDP: IVON averages the gradient and Hessian
estimates over the ranks itself, with ``ess`` the global number of rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from varbayes._checks_scalar import check_count, check_positive
from varbayes.infer.distributed import DistributedMode, ddp_training
from varbayes.infer.history import (
    History,
    NonFiniteLossError,
    NonFinitePolicy,
    check_policy,
    nonfinite_message,
)
from varbayes.infer.train import _threads_by_problem_size
from varbayes.optim.ivon import IVON
from varbayes.optim.posterior import held_parameters, posterior_of, sync_scales

__all__ = ["train_ivon"]


@_threads_by_problem_size
def train_ivon(
    model: nn.Module,
    objective: Any,
    x: Tensor,
    y: Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    nonfinite: NonFinitePolicy | str = NonFinitePolicy.RAISE,
    progress: bool = False,
    desc: str | None = None,
    distributed: DistributedMode | str = DistributedMode.AUTO,
    callback: Callable[[int], bool] | None = None,
    callback_every: int = 1,
) -> History:
    """Train ``model`` (with ``model.ivon``) by IVON; the arguments are :func:`~varbayes.train`'s.

    ``objective`` is the kind's :class:`~varbayes.ELBO`: only its likelihood and ``n_data`` (the
    global number of training rows, IVON's default ``ess``) are used. ``lr`` is IVON's learning
    rate. The history's ``kl`` is 0 (the prior is in the update, not the loss).

    Raises
    ------
    TypeError
        If ``model`` carries no IVON posterior.
    NonFiniteLossError, ValueError
        As :func:`~varbayes.infer.train`.
    """
    posterior = posterior_of(model)
    if posterior is None:
        raise TypeError(f"train_ivon needs a model built with method='ivon' (model.ivon), got "
                        f"{type(model).__name__}")
    epochs = check_count(epochs, "epochs")
    batch_size = None if batch_size is None else check_count(batch_size, "batch_size")
    lr = check_positive(lr, "lr")
    policy = check_policy(nonfinite)
    callback_every = check_count(callback_every, "callback_every")
    if x.dim() != 2 or y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"train_ivon expects x of shape (n, d) and y of shape (n,), got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    n = x.shape[0]
    batch_size = n if batch_size is None or batch_size >= n else batch_size
    likelihood = objective.likelihood
    ess, decay = posterior.start(int(objective.n_data))
    ddp = ddp_training(model, n=n, batch_size=batch_size, generator=generator, device=x.device,
                       mode=distributed)  # the wrapper is not called: IVON averages the ranks
    if ddp is not None:
        generator, progress = ddp.generator, progress and ddp.is_main
    held = held_parameters(model)
    opt = IVON([p for _, p in held], lr=lr, ess=ess, hess_init=posterior.hess_init,
               beta2=posterior.beta2, weight_decay=decay, mc_samples=posterior.mc_samples,
               clip_radius=posterior.clip_radius, generator=generator)
    for name, p in held:  # IVON updates the model's buffers: they are saved and restored
        opt.state[p]["hess"] = posterior.hessian(name)
    history = History()
    model.train()
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc=desc, disable=None if progress else True, leave=False,
               unit="epoch", mininterval=0.25)
    batches: Sequence[Tensor | None]
    for epoch in bar:
        if ddp is not None:
            batches = ddp.epoch_batches(epoch)
        elif batch_size < n:
            order = torch.randperm(n, generator=generator, device="cpu").to(x.device)
            batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
        else:
            batches = [None]
        total, taken = 0.0, 0
        for step, idx in enumerate(batches):
            xb, yb = (x, y) if idx is None else (x[idx], y[idx])
            loss = x.new_zeros((), dtype=torch.float64)
            for _ in range(posterior.mc_samples):
                with opt.sampled_params(train=True):
                    opt.zero_grad(set_to_none=True)
                    out = model(xb, 1, generator=generator, sample=False)
                    nll = -likelihood.log_prob(yb, out.params).mean()
                    nll.backward()
                loss += nll.detach().double() / posterior.mc_samples
            check = loss if ddp is None else ddp.global_loss(loss)
            if not torch.isfinite(check):
                opt.discard()
                if policy is NonFinitePolicy.RAISE:
                    raise NonFiniteLossError(nonfinite_message(
                        check.item(), epoch=epoch + 1, step=step + 1, lr=lr))
                history.skipped_steps += 1
                continue
            opt.step()
            total += float(loss)
            taken += 1
        if ddp is not None:
            sums, taken = ddp.reduce_epoch(torch.tensor([total]), taken)
            total = float(sums[0])
        if taken == 0:
            raise NonFiniteLossError(nonfinite_message(None, epoch=epoch + 1, step=None, lr=lr))
        history.loss.append(total / taken)
        history.nll.append(total / taken)
        history.kl.append(0.0)
        if progress and (epoch % 25 == 0 or epoch == epochs - 1):
            bar.set_postfix(loss=f"{total / taken:.4f}", refresh=False)
        done = epoch + 1
        if callback is not None and (done % callback_every == 0 or done == epochs):
            sync_scales(model)  # the callback scores the posterior, not the initial scales
            if callback(done):
                break
    bar.close()
    sync_scales(model)
    history.seconds = time.perf_counter() - start
    return history
