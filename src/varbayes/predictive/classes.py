"""The classification predictive over S weight draws: class probabilities and the entropy split.

With class probabilities :math:`p_s(x)` of draw :math:`s = 1..S` (softmax of the head's logits),
the predictive is :math:`\\bar p = \\frac1S \\sum_s p_s`, and its entropy splits exactly, over
the same S draws, into

.. math::
    \\underbrace{H[\\bar p]}_{\\text{entropy}}
    = \\underbrace{\\tfrac1S \\sum_s H[p_s]}_{\\text{aleatoric\\_entropy}}
    + \\underbrace{H[\\bar p] - \\tfrac1S \\sum_s H[p_s]}_{\\text{mutual\\_information}},

the mutual information between the label and the weights (the epistemic part, >= 0 by
concavity of the entropy; 0 for ``S = 1``). Entropies are in nats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor

from varbayes._checks_scalar import check_count

__all__ = ["ClassPrediction", "entropy"]


def entropy(p: Tensor) -> Tensor:
    """Entropy in nats over the last dimension, with :math:`0 \\log 0 = 0`."""
    return -cast(Tensor, torch.special.xlogy(p, p)).sum(-1)  # torch.special is untyped


@dataclass(frozen=True)
class ClassPrediction:
    """Predictive over ``K`` classes for ``n`` inputs from ``S`` weight draws.

    Attributes
    ----------
    logits : Tensor of shape (S, n, K)
        The head's logits per draw (float64 on a prediction pass).
    """

    logits: Tensor

    def __post_init__(self) -> None:
        if self.logits.dim() != 3 or self.logits.shape[-1] < 2:
            raise ValueError(f"ClassPrediction needs logits of shape (S, n, K >= 2), got "
                             f"{tuple(self.logits.shape)}")

    @property
    def num_samples(self) -> int:
        """Number of weight draws ``S``."""
        return int(self.logits.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``."""
        return int(self.logits.shape[-1])

    @property
    def log_probs_per_draw(self) -> Tensor:
        """:math:`\\log p_s`, shape (S, n, K)."""
        return torch.log_softmax(self.logits, -1)

    @property
    def probs_per_draw(self) -> Tensor:
        """:math:`p_s`, shape (S, n, K)."""
        return torch.softmax(self.logits, -1)

    @property
    def probs(self) -> Tensor:
        """Predictive class probabilities :math:`\\bar p`, shape (n, K)."""
        return self.probs_per_draw.mean(0)

    @property
    def label_index(self) -> Tensor:
        """The most probable class per input, shape (n,)."""
        return self.probs.argmax(-1)

    @property
    def entropy(self) -> Tensor:
        """Total predictive entropy :math:`H[\\bar p]`, shape (n,)."""
        return entropy(self.probs)

    @property
    def aleatoric_entropy(self) -> Tensor:
        """Expected entropy :math:`\\frac1S\\sum_s H[p_s]`, shape (n,)."""
        return entropy(self.probs_per_draw).mean(0)

    @property
    def mutual_information(self) -> Tensor:
        """Entropy minus expected entropy (>= 0; rounding below 0 is clipped), shape (n,)."""
        return (self.entropy - self.aleatoric_entropy).clamp_min(0.0)

    def log_prob(self, y: Tensor) -> Tensor:
        """:math:`\\log \\bar p_y` of class indices ``y`` of shape (n,), by logsumexp."""
        index = y.long().reshape(1, -1, 1).expand(self.num_samples, -1, 1)
        comp = self.log_probs_per_draw.gather(-1, index)[..., 0]
        return torch.logsumexp(comp, 0) - math.log(self.num_samples)

    def sample(self, num: int = 1, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``num`` class indices per input from the predictive; shape (num, n)."""
        num = check_count(num, "num")
        cum = self.probs.cumsum(-1)
        u = torch.rand((num, cum.shape[0], 1), generator=generator, dtype=cum.dtype,
                       device=cum.device)
        return (u > cum.unsqueeze(0)).sum(-1).clamp_max(self.num_classes - 1)

    def __getitem__(self, index: slice | Tensor) -> ClassPrediction:
        """Select inputs (the second dimension)."""
        return ClassPrediction(self.logits[:, index])
