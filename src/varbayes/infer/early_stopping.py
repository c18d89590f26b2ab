"""Early stopping: score the model on held-out rows every few epochs, keep the best checkpoint.

:class:`EarlyStopping` is a callback of :func:`varbayes.infer.train` (and of the fast engine,
which hands it the parameters as they are at each check). Every ``check_every`` epochs it asks
``score()`` (higher is better; :func:`varbayes.kinds.fit` passes the mean log predictive density
of a validation part in data units), keeps a copy of the parameters whenever the score beats the
best so far (the earliest checkpoint wins ties), and stops training after ``n_iter_no_change``
checks without improvement. :meth:`EarlyStopping.restore` puts the best parameters back.

:class:`BestCheckpoint` is the rule itself: the best finite score so far (the earliest wins ties)
and the checks since it. :class:`EarlyStopping` applies it to a model trained by ``train``; the
UCI runner (:mod:`varbayes.benchmarks.uci`, :mod:`varbayes.benchmarks.uci_stack`) applies the
same rule to the checkpoints of its schedule, so the benchmark and the library select alike
(``docs/benchmarks.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["BestCheckpoint", "EarlyStopping", "default_check_every"]


def default_check_every(epochs: int) -> int:
    """Epochs between validation checks for a run of ``epochs``: about 60 checks, 1 to 25 apart."""
    return max(1, min(25, epochs // 60))


class BestCheckpoint:
    """The best finite score of a series of checks, and how many checks ago it came.

    Parameters
    ----------
    n_iter_no_change : int or None
        Checks without a new best after which :attr:`exhausted` is true (``None``: never).

    Attributes
    ----------
    best_score : float
        ``-inf`` before the first finite score.
    best : object
        What :meth:`offer` was given with the best score (``None`` before it).
    since_best : int
        Checks since the best (or since the start, before the first finite score).
    """

    def __init__(self, n_iter_no_change: int | None = None) -> None:
        if n_iter_no_change is not None and (
                isinstance(n_iter_no_change, bool) or not isinstance(n_iter_no_change, int)
                or n_iter_no_change < 1):
            raise ValueError(f"n_iter_no_change must be a positive integer or None, got "
                             f"{n_iter_no_change!r}")
        self.n_iter_no_change = n_iter_no_change
        self.best_score = -math.inf
        self.best: Any = None
        self.since_best = 0

    def offer(self, score: float, what: Any = None) -> bool:
        """Record one check's ``score``; True when it is a new best (finite, strictly higher)."""
        if math.isfinite(score) and score > self.best_score:
            self.best_score, self.best, self.since_best = score, what, 0
            return True
        self.since_best += 1
        return False

    @property
    def exhausted(self) -> bool:
        """Whether ``n_iter_no_change`` checks have passed without a new best."""
        return self.n_iter_no_change is not None and self.since_best >= self.n_iter_no_change


class EarlyStopping:
    """Training callback: validation score every ``check_every`` epochs, best checkpoint kept.

    Parameters
    ----------
    model : nn.Module
        The model being trained (its ``state_dict`` is copied at each new best).
    score : callable
        ``score() -> float``, higher is better, evaluated on the model as it is; non-finite
        scores never count as an improvement.
    check_every : int
        Epochs between checks; the value given to ``train(callback_every=...)``.
    n_iter_no_change : int
        Checks without a new best after which training stops.

    Attributes
    ----------
    best_epoch : int
        Epochs done at the best checkpoint (0 before the first finite score).
    best_score : float
    curve : list of (int, float)
        ``(epochs done, score)`` of every check.
    stopped_epoch : int
        Epochs done when training stopped (the last check).
    """

    def __init__(self, model: nn.Module, score: Callable[[], float], *, check_every: int,
                 n_iter_no_change: int) -> None:
        for value, name in ((check_every, "check_every"), (n_iter_no_change, "n_iter_no_change")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.model = model
        self.score = score
        self.check_every = check_every
        self.n_iter_no_change = n_iter_no_change
        self.best_state: dict[str, torch.Tensor] | None = None
        self.curve: list[tuple[int, float]] = []
        self.stopped_epoch = 0
        self._best = BestCheckpoint(n_iter_no_change)

    @property
    def best_epoch(self) -> int:
        """Epochs done at the best checkpoint (0 before the first finite score)."""
        return int(self._best.best or 0)

    @property
    def best_score(self) -> float:
        """The best validation score so far (``-inf`` before the first finite one)."""
        return self._best.best_score

    def __call__(self, epochs_done: int) -> bool:
        """Score the model after ``epochs_done`` epochs; True when training should stop."""
        training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                value = float(self.score())
        finally:
            self.model.train(training)
        self.curve.append((epochs_done, value))
        self.stopped_epoch = epochs_done
        if self._best.offer(value, epochs_done):
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return self._best.exhausted

    def rebase(self, model: nn.Module) -> None:
        """Go on with ``model``, whose parameters as they are now are the best checkpoint.

        For a change of parametrisation between two training phases (the ``hetero`` warm-up
        ends with the best checkpoint of its homoscedastic twin moved into the heteroscedastic
        model): the best score stays, the checkpoint is ``model``'s state, and the patience
        starts again.
        """
        self.model = model
        self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._best.since_best = 0

    def restore(self) -> None:
        """Load the best checkpoint's parameters into the model (no-op before any finite score)."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def summary(self) -> dict[str, Any]:
        """JSON-ready record: best and stopping epochs, best score, checks and the curve."""
        return {
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "best_score": self.best_score if math.isfinite(self.best_score) else None,
            "check_every": self.check_every,
            "n_iter_no_change": self.n_iter_no_change,
            "curve": [[e, s if math.isfinite(s) else None] for e, s in self.curve],
        }
