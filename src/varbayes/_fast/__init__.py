"""Speed-only code, fenced: the vectorised engine with hand-derived gradients.

Nothing here is needed for correctness: every model it trains also trains on the autograd loop
of :func:`varbayes.infer.train` with the same objective, and ``tests/fast/test_fast.py`` checks that
the two give the same losses and gradients on replayed noise for every configuration the
engine accepts. The training loop asks :func:`unsupported` (an explicit whitelist: a
:class:`~varbayes.models.BayesianMLP` whose head and estimator are in
:data:`~varbayes._fast.stack.HEADS` and :data:`~varbayes._fast.stack.ESTIMATORS`, or a
:class:`~varbayes.models.FamilyMLP` whose likelihood is in :data:`CLASS_HEADS`; a Gaussian
prior, the closed-form :class:`~varbayes.infer.ELBO`) and calls :func:`run` only when it
answers ``None``; it imports this package only then, so the loop's module never depends on it.
"""

from __future__ import annotations

from varbayes._fast.classes import CLASS_HEADS
from varbayes._fast.engine import fast_path_unsupported as unsupported
from varbayes._fast.engine import train_many as run
from varbayes._fast.stack import ESTIMATORS, HEADS, BayesianMLPStack

__all__ = [
    "CLASS_HEADS",
    "ESTIMATORS",
    "HEADS",
    "BayesianMLPStack",
    "run",
    "unsupported",
]
