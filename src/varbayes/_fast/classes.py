"""The classification heads of the hand-derived engine: Bernoulli and categorical (softmax).

A :class:`~varbayes.models.FamilyMLP` whose likelihood is in :data:`CLASS_HEADS` ends in
logits; its data term per row is the cross-entropy, and the gradient of the mean over the ``S``
draws and ``B`` rows with respect to each logit is :math:`(p - \\text{onehot}(y)) / (S B)`:

* ``categorical``: ``K`` logits :math:`f`, :math:`-\\log p(y) = \\operatorname{logsumexp}(f) -
  f_y`, :math:`p = \\operatorname{softmax}(f)`;
* ``bernoulli``: one logit :math:`f` of class 1 (the likelihood's logits are ``(0, f)``),
  :math:`-\\log p(y) = \\operatorname{softplus}(f) - y f`, gradient
  :math:`\\operatorname{sigmoid}(f) - y`.

``tests/fast/test_fast.py`` checks both against autograd through
:class:`~varbayes.likelihoods.ClassLikelihood` on replayed noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["CLASS_HEADS", "class_head"]

#: The likelihood heads of :class:`~varbayes.models.FamilyMLP` this engine has gradients for:
#: the whitelist. Any other likelihood head is refused and trains on the autograd path.
CLASS_HEADS = frozenset({"bernoulli", "categorical"})


def class_head(out: Tensor, y: Tensor, likelihood: str) -> tuple[Tensor, Tensor]:
    """Mean NLL per model (M,) and its gradient w.r.t. the logits ``out`` (M, S, B, f_L).

    ``y`` holds class indices (as floats) of shape (B,) or (M, 1, B).
    """
    m, s, b, _ = out.shape
    inv = 1.0 / (s * b)
    if likelihood == "bernoulli":
        f = out[..., 0]
        nll = (F.softplus(f) - y * f).sum((1, 2)).mul_(inv)
        return nll, torch.sigmoid(f).sub_(y).mul_(inv).unsqueeze(-1)
    if likelihood != "categorical":  # every member of CLASS_HEADS is handled above
        raise ValueError(f"the fast engine has no branch for the {likelihood!r} head")
    index = y.long().expand(m, s, b).unsqueeze(-1)
    log_p = torch.log_softmax(out, -1)
    nll = log_p.gather(-1, index).sum((1, 2, 3)).mul_(-inv)
    grad = log_p.exp_()
    grad.scatter_add_(-1, index, torch.full_like(index, -1, dtype=grad.dtype))
    return nll, grad.mul_(inv)
