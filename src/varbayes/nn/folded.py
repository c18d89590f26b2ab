"""The linear layer of converted networks: :class:`BayesLinear` on inputs of any shape.

:class:`FoldedBayesLinear` is :class:`~varbayes.nn.layers.BayesLinear` (the same parameters,
estimators and random numbers) behind the call signature of :class:`torch.nn.Linear`: an input of
shape ``(..., in_features)`` gives ``(..., out_features)``. Weight draws come from the draw state
that :func:`varbayes.nn.sampling.draws` sets: the leading dimension holds ``S`` draws x rows,
sample-major, and draw ``s`` is applied to block ``s``.

A converted layer may also carry a prior centred on pretrained weights (MOPED, Krishnan et al.
2020): the buffers ``weight_prior_loc`` / ``bias_prior_loc`` shift the prior's mean per weight.
"""

from __future__ import annotations

from torch import Tensor

from varbayes.nn.layers import BayesLinear
from varbayes.nn.meanfield import centred_kl
from varbayes.nn.sampling import VariationalLayer, draw_blocks

__all__ = ["FoldedBayesLinear", "centred_kl"]


class FoldedBayesLinear(BayesLinear, VariationalLayer):
    """:class:`BayesLinear` with ``nn.Linear``'s call signature and folded weight draws.

    Parameters are those of :class:`~varbayes.nn.layers.BayesLinear`; ``weight_loc`` has shape
    ``(in_features, out_features)`` (the transpose of ``nn.Linear.weight``).
    """

    weight_prior_loc: Tensor | None
    bias_prior_loc: Tensor | None

    def __init__(self, in_features: int, out_features: int, **kwargs: object) -> None:
        super().__init__(in_features, out_features, **kwargs)  # type: ignore[arg-type]
        self._register_prior_centres()

    def kl_divergence(self) -> Tensor:
        """Closed-form KL to the prior, centred on the pretrained weights where set."""
        return self._kl(self.weight_prior_loc, self.bias_prior_loc)

    def forward(  # type: ignore[override]
        self, x: Tensor
    ) -> Tensor:
        """``x @ W + b`` for ``x`` of shape ``(..., in_features)``, one draw per folded block."""
        state = self.draw_state
        h = draw_blocks(self, x, self.in_features, state.num)
        lead = x.shape[:-1]
        out, _ = self.forward_kl(h, kl=None, sample=state.sample, generator=state.generator)
        return out.reshape(*lead, self.out_features)
