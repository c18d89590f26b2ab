"""Temperature of a classifier's predictive, fitted on held-out rows.

A mean-field posterior's class probabilities are under-confident on small data: the predictive
averages over weight draws whose spread the KL keeps wide (``docs/benchmarks.md``, the
classification section, measures it). One scalar ``T`` recalibrates them: the calibrated
predictive is

.. math::
    \\tilde p_k \\propto \\bar p_k^{1/T},

the temperature on the log-probabilities of the mixture :math:`\\bar p` (``T < 1`` sharpens).
``T`` is the maximum a posteriori value on held-out rows, their summed NLL plus a normal prior
on :math:`\\log T` of standard deviation :data:`TEMPERATURE_PRIOR_SD` (on 20 rows that all
come out right, the NLL alone would send ``T`` to 0; the prior keeps it near 1 unless the rows
say otherwise), found by a bounded golden-section search on :math:`\\log T \\in [-3, 3]`.

:class:`TemperedClassPrediction` is a :class:`~varbayes.predictive.ClassPrediction` whose
probabilities (``probs``, ``log_prob``, ``sample``) are the calibrated ones; its entropy split
(``entropy``, ``aleatoric_entropy``, ``mutual_information``) stays that of the posterior's own
predictive, exact over the draws: the temperature calibrates the probabilities, it does not
say where the uncertainty comes from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from varbayes.predictive.classes import ClassPrediction, entropy

__all__ = ["TEMPERATURE_PRIOR_SD", "TemperedClassPrediction", "fit_temperature"]

#: Standard deviation of the normal prior on log T (T = e^{+-0.5} is one standard deviation).
TEMPERATURE_PRIOR_SD = 0.5


def _mixture_log_probs(logits: Tensor) -> Tensor:
    """:math:`\\log \\bar p`, shape (n, K), from per-draw logits (S, n, K)."""
    return torch.logsumexp(torch.log_softmax(logits.double(), -1), 0) - math.log(logits.shape[0])


@dataclass(frozen=True)
class TemperedClassPrediction(ClassPrediction):
    """A :class:`ClassPrediction` with its probabilities calibrated by ``temperature``."""

    temperature: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.temperature, float) and 0 < self.temperature < math.inf):
            raise ValueError(f"temperature must be a positive float, got {self.temperature!r}")

    @property
    def log_probs(self) -> Tensor:
        """Calibrated :math:`\\log \\tilde p`, shape (n, K)."""
        return torch.log_softmax(_mixture_log_probs(self.logits) / self.temperature, -1)

    @property
    def probs(self) -> Tensor:
        """Calibrated class probabilities :math:`\\tilde p`, shape (n, K)."""
        return self.log_probs.exp()

    @property
    def entropy(self) -> Tensor:
        """Entropy of the posterior's predictive :math:`H[\\bar p]` (before the temperature)."""
        return entropy(self.probs_per_draw.mean(0))

    def log_prob(self, y: Tensor) -> Tensor:
        """Calibrated :math:`\\log \\tilde p_y` of class indices ``y`` of shape (n,)."""
        return self.log_probs.gather(-1, y.long().reshape(-1, 1))[:, 0]

    def __getitem__(self, index: slice | Tensor) -> TemperedClassPrediction:
        """Select inputs (the second dimension)."""
        return TemperedClassPrediction(self.logits[:, index], self.temperature)


def fit_temperature(pred: ClassPrediction, y: Tensor,
                    prior_sd: float = TEMPERATURE_PRIOR_SD) -> float:
    """The temperature that maximises the held-out rows' log-likelihood plus the prior.

    ``pred`` is the posterior's predictive at the held-out inputs, ``y`` their class indices.
    """
    from scipy.optimize import minimize_scalar  # type: ignore[import-untyped]  # no stubs

    log_p = _mixture_log_probs(pred.logits)
    index = y.long().reshape(-1, 1).to(log_p.device)

    def objective(log_t: float) -> float:
        nll = -float(torch.log_softmax(log_p / math.exp(log_t), -1).gather(-1, index).sum())
        value = nll + log_t * log_t / (2 * prior_sd * prior_sd)
        return value if math.isfinite(value) else 1e300

    res = minimize_scalar(objective, bounds=(-3.0, 3.0), method="bounded",
                          options={"xatol": 1e-4})
    return float(math.exp(res.x))
