"""The training loop: Adam on an objective, full-batch or mini-batch, with a progress bar.

Data stays as tensors for the whole run (one permutation per epoch, slicing for batches), the
objective is the only place where the KL is scaled, and randomness comes from one
``torch.Generator`` so that two runs with the same seed are identical.

A loss that becomes non-finite stops training with :class:`NonFiniteLossError`, whose message
suggests the usual fix (a lower learning rate); ``nonfinite='skip'`` skips such steps instead
(and still stops if every step of an epoch was skipped).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from varbayes.objectives import ELBOTerms

__all__ = [
    "History",
    "NonFiniteLossError",
    "NonFinitePolicy",
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
        raise ValueError(f"unknown nonfinite policy {nonfinite!r}; expected one of {allowed}") from None
    if x.dim() != 2 or y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"train expects x of shape (n, d) and y of shape (n,), got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    n = x.shape[0]
    if batch_size is None or batch_size >= n:
        batch_size = n
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    history = History()
    model.train()
    start = time.perf_counter()
    # disable=None: tqdm shows the bar only when stderr is a terminal.
    bar = tqdm(range(epochs), desc=desc, disable=None if progress else True, leave=False,
               unit="epoch",
               mininterval=0.25)
    for epoch in bar:
        if batch_size < n:
            order = torch.randperm(n, generator=generator, device="cpu").to(x.device)
            batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
        else:
            batches = [None]
        sums = torch.zeros(3, dtype=torch.float64)
        taken = 0
        for step, idx in enumerate(batches):
            xb, yb = (x, y) if idx is None else (x[idx], y[idx])
            terms = objective(model, xb, yb, generator=generator)
            if not torch.isfinite(terms.loss):
                if policy is NonFinitePolicy.RAISE:
                    raise NonFiniteLossError(
                        f"the training loss became {terms.loss.item()} at epoch {epoch + 1}, "
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
