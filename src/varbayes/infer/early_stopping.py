"""Early stopping: score the model on held-out rows every few epochs, keep the best checkpoint.

:class:`EarlyStopping` is a callback of :func:`varbayes.infer.train` (and of the fast engine,
which hands it the parameters as they are at each check). Every ``check_every`` epochs it asks
``score()`` (higher is better; :func:`varbayes.kinds.fit` passes the mean log predictive density
of a validation part in data units), keeps a copy of the parameters whenever the score beats the
best so far (the earliest checkpoint wins ties), and stops training after ``n_iter_no_change``
checks without improvement. :meth:`EarlyStopping.restore` puts the best parameters back.

This is the UCI runner's selection on a validation part (``docs/benchmarks.md``), lifted into the
library with scikit-learn's names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["EarlyStopping", "default_check_every"]


def default_check_every(epochs: int) -> int:
    """Epochs between validation checks for a run of ``epochs``: about 60 checks, 1 to 25 apart."""
    return max(1, min(25, epochs // 60))


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
        self.best_epoch = 0
        self.best_score = -math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.curve: list[tuple[int, float]] = []
        self.stopped_epoch = 0
        self._since_best = 0

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
        if math.isfinite(value) and value > self.best_score:
            self.best_score, self.best_epoch, self._since_best = value, epochs_done, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            return False
        self._since_best += 1
        return self._since_best >= self.n_iter_no_change

    def rebase(self, model: nn.Module) -> None:
        """Go on with ``model``, whose parameters as they are now are the best checkpoint.

        For a change of parametrisation between two training phases (the ``hetero`` warm-up
        ends with the best checkpoint of its homoscedastic twin moved into the heteroscedastic
        model): the best score stays, the checkpoint is ``model``'s state, and the patience
        starts again.
        """
        self.model = model
        self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._since_best = 0

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
