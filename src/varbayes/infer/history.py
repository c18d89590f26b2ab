"""What a training run records, and what it does when the loss is not finite.

Shared by the autograd loop (:mod:`varbayes.infer.train`) and the vectorised engine
(:mod:`varbayes._fast`), so that both keep one history format and one non-finite policy, with
the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "History",
    "NonFiniteLossError",
    "NonFinitePolicy",
    "check_policy",
    "nonfinite_message",
]


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


class NonFinitePolicy(str, Enum):
    """What to do when a training step produces a NaN or infinite loss."""

    RAISE = "raise"
    """Stop with :class:`NonFiniteLossError` (default)."""
    SKIP = "skip"
    """Skip the step (no parameter update) and go on."""


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


def check_policy(nonfinite: NonFinitePolicy | str) -> NonFinitePolicy:
    """``nonfinite`` as a :class:`NonFinitePolicy`; ``ValueError`` listing the allowed values."""
    try:
        return NonFinitePolicy(nonfinite)
    except ValueError:
        allowed = [p.value for p in NonFinitePolicy]
        raise ValueError(
            f"unknown nonfinite policy {nonfinite!r}; expected one of {allowed}") from None


def nonfinite_message(value: float | None, *, epoch: int, step: int | None, lr: float,
                      model: int | None = None) -> str:
    """The message of :class:`NonFiniteLossError` (``step=None``: every step of the epoch)."""
    which = "" if model is None else f" of model {model}"
    if step is None:
        return (f"every step of epoch {epoch}{which} had a non-finite loss; lower the learning "
                f"rate (lr={lr:g})")
    return (f"the training loss{which} became {value} at epoch {epoch}, step {step}; lower the "
            f"learning rate (lr={lr:g}), standardise the data, or pass nonfinite='skip' to skip "
            "such steps")
