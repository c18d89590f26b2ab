"""The post's maximum-likelihood baseline."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from varbayes.models.base import ModelOutput, _PointMLPs, _run_mlp

__all__ = ["MLPRegressor"]


class MLPRegressor(_PointMLPs):
    """Maximum-likelihood MLP (the post's baseline): ``x -> mu(x)``, ReLU hidden layers.

    Parameters
    ----------
    in_features : int
    hidden : sequence of int, default=(20,)
        The post uses one hidden layer of 20 units.
    generator : torch.Generator or None
        Random source for the initialisation.

    Notes
    -----
    ``noise_std`` is a buffer (1.0 until set): the residual standard deviation on the training
    data, set by the training recipe after fitting, so that the predictive
    :math:`\\mathcal{N}(\\mu(x), \\hat\\sigma^2)` has a likelihood to compare.
    """

    noise_std: Tensor  # buffer

    def __init__(
        self, in_features: int, hidden: Sequence[int] = (20,), *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(in_features, hidden)
        self.net = self._mlp(generator)
        self.register_buffer("noise_std", torch.ones(()))

    def forward(
        self, x: Tensor, num_samples: int = 1, *, generator: torch.Generator | None = None,
        sample: bool = True, kl: str | None = None,
    ) -> ModelOutput:
        """Return ``loc`` of shape (1, n) and the residual ``scale`` broadcast to (1, n)."""
        loc = _run_mlp(self.net, x).squeeze(-1).unsqueeze(0)
        return ModelOutput(loc, self.noise_std.to(loc.dtype).expand_as(loc), None)
