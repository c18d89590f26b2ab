"""An ensemble of variational networks whose predictive is the mixture of its members'.

:class:`Ensemble` holds ``M`` networks of the model contract (:mod:`varbayes.models.base`) and
answers ``forward(x, num_samples=S)`` with ``S`` components: member ``m`` draws ``S_m`` of them
(``S // M``, the first ``S % M`` members one more), so the predictive is the equal-weight
mixture of the members' predictives (Lakshminarayanan et al. 2017, with variational members);
a draw of the ensemble's posterior is a member's draw. With ``S < M`` the first ``S`` members
draw one each.
Each member trains on its own objective (:func:`varbayes.kinds.fit` trains them one after the
other); the ensemble itself has no training objective and refuses ``kl=``.

>>> import torch
>>> from varbayes.models import BayesianMLP
>>> ens = Ensemble([BayesianMLP(1, (8,)) for _ in range(3)])
>>> ens(torch.zeros(4, 1), num_samples=10).loc.shape
torch.Size([10, 4])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from varbayes.models.base import ModelOutput
from varbayes.priors import Prior

__all__ = ["Ensemble", "member_draws"]


def member_draws(num_samples: int, members: int) -> list[int]:
    """Components each of ``members`` members draws for ``num_samples`` in all."""
    base, extra = divmod(int(num_samples), members)
    return [base + (m < extra) for m in range(members)]


class Ensemble(nn.Module):
    """``M`` networks of one contract; the predictive is the mixture of theirs.

    Parameters
    ----------
    members : sequence of nn.Module
        At least one network answering ``forward(x, num_samples, generator=, sample=)`` with a
        :class:`~varbayes.models.ModelOutput` (e.g. :class:`~varbayes.models.BayesianMLP`).
    """

    members: Sequence[nn.Module]  # an nn.ModuleList at run time

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 1:
            raise ValueError("an Ensemble needs at least one member")
        self.members = cast("Sequence[nn.Module]", nn.ModuleList(members))

    @property
    def bounded_prediction(self) -> bool:
        """Whether every member bounds its prediction pass's memory (no row chunks needed)."""
        return all(getattr(m, "bounded_prediction", False) for m in self.members)

    @property
    def prior(self) -> Prior:
        """The first member's weight prior (those of :func:`varbayes.kinds.fit` share one)."""
        return cast(Prior, getattr(self.members[0], "prior"))  # noqa: B009  # a module attribute

    def forward(
        self, x: Tensor, num_samples: int = 1, *, generator: torch.Generator | None = None,
        sample: bool = True, kl: str | None = None,
    ) -> ModelOutput:
        """Every member's components at ``x``, concatenated: shape ``(S, n)``.

        ``sample=False`` gives one component per member (each at its posterior means).
        """
        if kl is not None:
            raise TypeError("an Ensemble has no training objective; train each of its members")
        counts = member_draws(num_samples, len(self.members)) if sample \
            else [1] * len(self.members)
        outs = [member(x, count, generator=generator, sample=sample)
                for member, count in zip(self.members, counts, strict=True) if count]
        loc = torch.cat([o.loc for o in outs])
        # Each member's scale may be one row broadcast over its draws: filled in place, which
        # is several times faster than a cat of the broadcast views.
        scale = loc.new_empty(loc.shape)
        start = 0
        for o in outs:
            stop = start + o.loc.shape[0]
            scale[start:stop] = o.scale
            start = stop
        return ModelOutput(loc, scale)
