"""The training loop: Adam (or IVON) on an objective, full-batch or mini-batch, with a progress bar.

Data stays as tensors for the whole run (one permutation per epoch, slicing for batches), the
objective is the only place where the KL is scaled, and randomness comes from one
``torch.Generator`` so that two runs with the same seed are identical.

A loss that becomes non-finite stops training with :class:`NonFiniteLossError`, whose message
suggests the usual fix (a lower learning rate); ``nonfinite='skip'`` skips such steps instead
(and still stops if every step of an epoch was skipped).

Under torchrun the same call trains data-parallel (see :mod:`varbayes.infer.distributed`): the rows
are sharded over the ranks, the model is wrapped in DDP, the epoch diagnostics are averaged over
the ranks and only rank 0 shows the progress bar.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ParamSpec, cast

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from varbayes._atomic import check_terminated
from varbayes._checks_scalar import check_count, check_positive
from varbayes._threads import PARALLEL_WORK, intra_op_threads
from varbayes.infer.adam import Adam
from varbayes.infer.distributed import DistributedMode, ddp_training
from varbayes.infer.history import (
    History,
    NonFiniteLossError,
    NonFinitePolicy,
    check_policy,
    nonfinite_message,
)
from varbayes.infer.ivon_train import IVONStep
from varbayes.infer.objectives import ELBOTerms
from varbayes.optim.posterior import posterior_of

if TYPE_CHECKING:
    from varbayes.infer.objectives import ELBO
    from varbayes.models import BayesianMLP

__all__ = ["train"]

Objective = Callable[..., ELBOTerms]
_P = ParamSpec("_P")


class _AdamStep:
    """Training steps by Adam on ``objective`` (what :class:`IVONStep` is for IVON)."""

    def __init__(self, model: nn.Module, objective: Objective, lr: float,
                 weight_decay: float) -> None:
        self.objective = objective
        self.optimizer = Adam(model.parameters(), lr=lr, weight_decay=weight_decay)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor,
             generator: torch.Generator | None) -> ELBOTerms:
        """The objective on one batch (differentiable)."""
        return self.objective(model, x, y, generator=generator)

    def discard(self) -> None:
        """Nothing to forget: Adam has not seen the skipped step."""

    def step(self, terms: ELBOTerms) -> None:
        """Backward pass and Adam update."""
        self.optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        self.optimizer.step()

    def sync(self) -> None:
        """Nothing to do: the parameters are the model."""


def _threads_by_problem_size(fn: Callable[_P, History]) -> Callable[_P, History]:
    """Decorate :func:`train`: small problems train under :func:`intra_op_threads`."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> History:
        work = PARALLEL_WORK  # unchanged threads unless the arguments look valid and small
        try:
            bound = signature.bind(*args, **kwargs).arguments
            n = bound["x"].shape[0]
            rows = min(int(bound.get("batch_size") or n), n)
            work = rows * sum(p.numel() for p in bound["model"].parameters())
        except (TypeError, AttributeError, IndexError, ValueError):
            pass  # train reports bad arguments itself
        with intra_op_threads(work):
            return fn(*args, **kwargs)

    return wrapper


@_threads_by_problem_size
def train(
    model: nn.Module, objective: Objective, x: Tensor, y: Tensor, *, epochs: int, lr: float,
    batch_size: int | None = None, generator: torch.Generator | None = None,
    nonfinite: NonFinitePolicy | str = NonFinitePolicy.RAISE, progress: bool = False,
    desc: str | None = None, weight_decay: float = 0.0,
    distributed: DistributedMode | str = DistributedMode.AUTO, fast: bool | None = None,
    callback: Callable[[int], bool] | None = None, callback_every: int = 1,
) -> History:
    """Minimise ``objective(model, x_batch, y_batch)`` with Adam (or IVON, see below).

    A model built with ``method='ivon'`` (it carries ``model.ivon``, see
    :mod:`varbayes.optim.posterior`) is trained by IVON instead, on the objective's likelihood
    alone, with ``lr`` as IVON's learning rate (:class:`~varbayes.infer.ivon_train.IVONStep`).

    Parameters
    ----------
    model : nn.Module
        A :mod:`varbayes.models` model (or any module the objective accepts).
    objective : callable
        ``objective(model, x, y, generator=g) -> ELBOTerms``, e.g. :class:`~varbayes.ELBO`.
    x : Tensor of shape (n, d)
        Standardised inputs (moved to the model's device by the caller).
    y : Tensor of shape (n,)
        Standardised targets.
    epochs : int
        Passes over the data.
    lr : float
        Adam learning rate.
    batch_size : int or None, default=None
        Mini-batch size; ``None`` or ``>= n`` trains full-batch (the post's setting).
    generator : torch.Generator or None
        Source of the batch permutation and of the objective's noise.
    nonfinite : {'raise', 'skip'}, default='raise'
        Policy for a NaN/inf loss, see :class:`NonFinitePolicy`.
    progress : bool, default=False
        Show a tqdm progress bar (on stderr).
    desc : str or None
        Label of the progress bar.
    weight_decay : float, default=0.0
        Adam weight decay (for the MLE baseline; leave 0 for variational models, whose prior
        already regularises).
    distributed : {'auto', 'on', 'off'}, default='auto'
        Data-parallel training over the processes of a torchrun launch (``'auto'``: when there
        are several), see :func:`varbayes.infer.distributed.ddp_training`. ``batch_size`` stays the
        global batch; each rank draws its noise from a generator derived from ``(seed, rank)``.
    fast : bool or None, default=None
        A :class:`~varbayes.models.BayesianMLP` with a closed-form :class:`~varbayes.ELBO`
        trains on the vectorised engine of :mod:`varbayes._fast` (hand-derived gradients,
        the same objective, other random numbers) when not distributed. ``None``: whenever
        supported; ``False``: always the autograd loop below; ``True``: raise ``ValueError`` if
        the engine does not support the model.
    callback : callable or None, default=None
        ``callback(epochs_done) -> stop`` after every ``callback_every``-th epoch (and after the
        last), with the model's parameters up to date (e.g.
        :class:`~varbayes.infer.early_stopping.EarlyStopping`). Training ends early when it
        returns True. It must leave the parameters and the model's train/eval mode as it
        found them.
    callback_every : int, default=1
        Epochs between calls of ``callback``.

    Returns
    -------
    History

    Raises
    ------
    NonFiniteLossError
        If a loss is NaN/inf and ``nonfinite='raise'``, or all steps of an epoch were skipped.
    ValueError
        For invalid arguments (non-positive epochs, lr, batch size; mismatched lengths).
    """
    epochs = check_count(epochs, "epochs")
    batch_size = None if batch_size is None else check_count(batch_size, "batch_size")
    lr = check_positive(lr, "lr")
    policy = check_policy(nonfinite)
    callback_every = check_count(callback_every, "callback_every")
    if x.dim() != 2 or y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"train expects x of shape (n, d) and y of shape (n,), got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    n = x.shape[0]
    if batch_size is None or batch_size >= n:
        batch_size = n
    ivon = posterior_of(model) is not None
    if ivon and (weight_decay or fast):
        raise ValueError("a model built with method='ivon' trains by IVON, whose prior is its "
                         "weight decay: leave weight_decay=0 and fast=None")
    history = History()
    model.train()
    ddp = ddp_training(model, n=n, batch_size=batch_size, generator=generator, device=x.device,
                       mode=distributed)
    step_model = model if ddp is None or ivon else ddp.model  # IVON averages the ranks itself
    if ddp is not None:
        generator = ddp.generator
        progress = progress and ddp.is_main
    stepper: _AdamStep | IVONStep = IVONStep(model, objective, lr, generator) if ivon else \
        _AdamStep(model, objective, lr, weight_decay)
    if ddp is None and fast is not False and not weight_decay and not ivon:
        from varbayes import _fast  # only when asked for: the engine is no import of this module

        why = _fast.unsupported(model, objective)
        if why is None:
            # unsupported() answered None: a BayesianMLP and an ELBO
            return _fast.run([cast("BayesianMLP", model)], cast("ELBO", objective), x, y,
                             epochs=epochs, lr=lr, batch_size=batch_size, generator=generator,
                             nonfinite=policy, progress=progress, desc=desc, callback=callback,
                             callback_every=callback_every)[0]
        if fast:
            raise ValueError(f"fast=True, but the fast engine {why}")
    elif fast:
        raise ValueError("fast=True needs weight_decay=0 and no distributed training")
    start = time.perf_counter()
    # disable=None: tqdm shows the bar only when stderr is a terminal.
    bar = tqdm(range(epochs), desc=desc, disable=None if progress else True, leave=False,
               unit="epoch",
               mininterval=0.25)
    batches: Sequence[Tensor | None]
    for epoch in bar:
        check_terminated()  # a SIGTERM whose exception C code swallowed (CLI only)
        if ddp is not None:
            batches = ddp.epoch_batches(epoch)
        elif batch_size < n:
            order = torch.randperm(n, generator=generator, device="cpu").to(x.device)
            batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
        else:
            batches = [None]
        sums = torch.zeros(3, dtype=torch.float64)
        taken = 0
        for step, idx in enumerate(batches):
            xb, yb = (x, y) if idx is None else (x[idx], y[idx])
            terms = stepper.loss(step_model, xb, yb, generator)
            check = terms.loss if ddp is None else ddp.global_loss(terms.loss)
            if not torch.isfinite(check):
                stepper.discard()
                if policy is NonFinitePolicy.RAISE:
                    raise NonFiniteLossError(nonfinite_message(
                        check.item(), epoch=epoch + 1, step=step + 1, lr=lr))
                history.skipped_steps += 1
                continue
            stepper.step(terms)
            sums += torch.stack([terms.loss.detach(), terms.nll, terms.kl]).double().cpu()
            taken += 1
        if ddp is not None:
            sums, taken = ddp.reduce_epoch(sums, taken)
        if taken == 0:
            raise NonFiniteLossError(nonfinite_message(None, epoch=epoch + 1, step=None, lr=lr))
        loss, nll, kl = (sums / taken).tolist()
        history.loss.append(loss)
        history.nll.append(nll)
        history.kl.append(kl)
        if progress and (epoch % 25 == 0 or epoch == epochs - 1):
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        done = epoch + 1
        if callback is not None and (done % callback_every == 0 or done == epochs):
            stepper.sync()  # IVON: the layers' scales to the posterior's, which it scores
            if callback(done):
                break
    bar.close()
    stepper.sync()
    history.seconds = time.perf_counter() - start
    return history
