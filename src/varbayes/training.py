"""The training loop: Adam on an objective, full-batch or mini-batch, with a progress bar.

Data stays as tensors for the whole run (one permutation per epoch, slicing for batches), the
objective is the only place where the KL is scaled, and randomness comes from one
``torch.Generator`` so that two runs with the same seed are identical.

A loss that becomes non-finite stops training with :class:`NonFiniteLossError`, whose message
suggests the usual fix (a lower learning rate); ``nonfinite='skip'`` skips such steps instead
(and still stops if every step of an epoch was skipped).

Under torchrun the same call trains data-parallel (see :mod:`varbayes.distributed`): the rows
are sharded over the ranks, the model is wrapped in DDP, the epoch diagnostics are averaged over
the ranks and only rank 0 shows the progress bar.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from varbayes.distributed import DistributedMode, ddp_training
from varbayes.objectives import ELBOTerms

__all__ = [
    "History",
    "NonFiniteLossError",
    "NonFinitePolicy",
    "intra_op_threads",
    "train",
]

Objective = Callable[..., ELBOTerms]


class NonFinitePolicy(str, Enum):
    """What to do when a training step produces a NaN or infinite loss."""

    RAISE = "raise"
    """Stop with :class:`NonFiniteLossError` (default)."""
    SKIP = "skip"
    """Skip the step (no parameter update) and go on."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


@dataclass
class History:
    """Per-epoch means of the objective's terms, and the wall time.

    Attributes
    ----------
    loss, nll, kl : list of float
        One value per epoch (mean over the epoch's steps).
    skipped_steps : int
        Steps skipped under ``nonfinite='skip'``.
    seconds : float
        Wall time of the training loop.
    """

    loss: list[float] = field(default_factory=list)
    nll: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    skipped_steps: int = 0
    seconds: float = 0.0


def _positive_int(value: int | None, name: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class _Adam:
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

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients (``set_to_none`` is accepted for ``torch.optim`` parity)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, grads: list[Tensor] | None = None) -> None:
        """Update the parameters in place from ``grads`` (default: their ``.grad``)."""
        grads = [p.grad for p in self.params] if grads is None else grads
        live = [i for i, g in enumerate(grads) if g is not None]
        if not live:
            return
        params = [self.params[i] for i in live]
        g = [grads[i] for i in live]
        m, v = [self.exp_avg[i] for i in live], [self.exp_avg_sq[i] for i in live]
        if self.weight_decay:
            g = torch._foreach_add(g, params, alpha=self.weight_decay)
        beta1, beta2 = self.betas
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


#: Below this much work per step (rows x parameters, about the multiply-adds of one forward
#: pass) a second intra-op thread costs more in synchronisation than it computes; on a loaded
#: machine a descheduled worker thread can stall every operation for milliseconds.
PARALLEL_WORK = 1 << 22


@contextlib.contextmanager
def intra_op_threads(work: int) -> Iterator[None]:
    """Run the block single-threaded if ``work`` (rows x parameters per step) is small.

    Small models (the post's 1-20-20-1 on 150 points) are bound by per-operation overhead, not
    arithmetic; intra-op threads only add synchronisation. The previous thread count is restored
    on exit. Larger problems keep ``torch.get_num_threads()`` threads.
    """
    previous = torch.get_num_threads()
    if work >= PARALLEL_WORK or previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _threads_by_problem_size(fn: Callable[..., History]) -> Callable[..., History]:
    """Decorate :func:`train`: small problems train under :func:`intra_op_threads`."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> History:
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
    model: nn.Module,
    objective: Objective,
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
    weight_decay: float = 0.0,
    distributed: DistributedMode | str = DistributedMode.AUTO,
    fast: bool | None = None,
) -> History:
    """Minimise ``objective(model, x_batch, y_batch)`` with Adam.

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
        are several), see :func:`varbayes.distributed.ddp_training`. ``batch_size`` stays the
        global batch; each rank draws its noise from a generator derived from ``(seed, rank)``.
    fast : bool or None, default=None
        A :class:`~varbayes.models.BayesianMLP` with a closed-form :class:`~varbayes.ELBO`
        trains on the vectorised engine of :mod:`varbayes.ensemble` (hand-derived gradients,
        the same objective, other random numbers) when not distributed. ``None``: whenever
        supported; ``False``: always the autograd loop below; ``True``: raise ``ValueError`` if
        the engine does not support the model.

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
    _positive_int(epochs, "epochs")
    batch_size = _positive_int(batch_size, "batch_size", allow_none=True)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    try:
        policy = NonFinitePolicy(nonfinite)
    except ValueError:
        allowed = [p.value for p in NonFinitePolicy]
        raise ValueError(
            f"unknown nonfinite policy {nonfinite!r}; expected one of {allowed}") from None
    if x.dim() != 2 or y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"train expects x of shape (n, d) and y of shape (n,), got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    n = x.shape[0]
    if batch_size is None or batch_size >= n:
        batch_size = n
    optimizer = _Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = History()
    model.train()
    ddp = ddp_training(model, n=n, batch_size=batch_size, generator=generator, device=x.device,
                       mode=distributed)
    step_model = model if ddp is None else ddp.model
    if ddp is not None:
        generator = ddp.generator
        progress = progress and ddp.is_main
    if ddp is None and fast is not False and not weight_decay:
        from varbayes.ensemble import fast_path_unsupported, train_many  # builds on this module

        why = fast_path_unsupported(model, objective)
        if why is None:
            return train_many([model], objective, x, y, epochs=epochs, lr=lr,
                              batch_size=batch_size, generator=generator, nonfinite=policy,
                              progress=progress, desc=desc)[0]
        if fast:
            raise ValueError(f"fast=True, but the fast engine {why}")
    elif fast:
        raise ValueError("fast=True needs weight_decay=0 and no distributed training")
    start = time.perf_counter()
    # disable=None: tqdm shows the bar only when stderr is a terminal.
    bar = tqdm(range(epochs), desc=desc, disable=None if progress else True, leave=False,
               unit="epoch",
               mininterval=0.25)
    for epoch in bar:
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
            terms = objective(step_model, xb, yb, generator=generator)
            check = terms.loss if ddp is None else ddp.global_loss(terms.loss)
            if not torch.isfinite(check):
                if policy is NonFinitePolicy.RAISE:
                    raise NonFiniteLossError(
                        f"the training loss became {check.item()} at epoch {epoch + 1}, "
                        f"step {step + 1}; lower the learning rate (lr={lr:g}), standardise the "
                        "data, or pass nonfinite='skip' to skip such steps"
                    )
                history.skipped_steps += 1
                continue
            optimizer.zero_grad(set_to_none=True)
            terms.loss.backward()
            optimizer.step()
            sums += torch.stack([terms.loss.detach(), terms.nll, terms.kl]).double().cpu()
            taken += 1
        if ddp is not None:
            sums, taken = ddp.reduce_epoch(sums, taken)
        if taken == 0:
            raise NonFiniteLossError(
                f"every step of epoch {epoch + 1} had a non-finite loss; lower the learning rate "
                f"(lr={lr:g})"
            )
        loss, nll, kl = (sums / taken).tolist()
        history.loss.append(loss)
        history.nll.append(nll)
        history.kl.append(kl)
        if progress and (epoch % 25 == 0 or epoch == epochs - 1):
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
    bar.close()
    history.seconds = time.perf_counter() - start
    return history
