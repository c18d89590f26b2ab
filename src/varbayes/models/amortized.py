"""The post's amortised variational regression of the aleatoric noise."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from varbayes.models.base import ModelOutput, _PointMLPs, _run_mlp

__all__ = ["AmortizedVI"]


class AmortizedVI(_PointMLPs):
    """The post's variational regression: :math:`Q(y|x) = \\mathcal{N}(\\mu(x), \\sigma^2(x))`.

    Two separate MLPs (the post: 1-20-10-1 each) give :math:`\\mu(x)` and
    :math:`\\log\\sigma^2(x)`; :math:`\\sigma = \\exp(\\tfrac12\\log\\sigma^2) + 10^{-5}` as in the
    post. Trained with :class:`varbayes.infer.AmortizedELBO`.

    Parameters
    ----------
    in_features : int
    hidden : sequence of int, default=(20, 10)
    generator : torch.Generator or None
    """

    def __init__(
        self, in_features: int, hidden: Sequence[int] = (20, 10), *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(in_features, hidden)
        self.loc_net = self._mlp(generator)
        self.log_var_net = self._mlp(generator)

    def forward(
        self, x: Tensor, num_samples: int = 1, *, generator: torch.Generator | None = None,
        sample: bool = True, kl: str | None = None,
    ) -> ModelOutput:
        """Return ``loc`` and ``scale`` of :math:`Q(y|x)`, each of shape (1, n)."""
        loc = _run_mlp(self.loc_net, x).squeeze(-1).unsqueeze(0)
        log_var = _run_mlp(self.log_var_net, x).squeeze(-1).unsqueeze(0)
        return ModelOutput(loc, torch.exp(0.5 * log_var) + 1e-5, None)
