"""The objectives' view of any network: its likelihood parameters per draw, and its KL.

varbayes's own models take ``model(x, num_samples, generator=..., kl=...)`` and return a
:class:`~varbayes.models.ModelOutput`. Any other network (one converted by
:func:`varbayes.nn.bayesianize`, or built of :mod:`varbayes.nn` layers) keeps its own
``forward(x)``; :func:`model_output` runs it on ``S`` folded weight draws
(:mod:`varbayes.nn.sampling`) and returns the same two things the objective reads: ``params``,
the likelihood's parameters of shape ``(S, n, ...)`` (from a head such as
:class:`varbayes.nn.GaussianHead`), and ``kl``, the closed-form KL of every variational layer,
summed. The ELBO then computes the same loss in the same way for both: one code path.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from varbayes.nn.sampling import is_native, kl_divergence, run_draws

__all__ = ["GenericOutput", "model_output"]


class GenericOutput(NamedTuple):
    """A network's likelihood parameters, ``(S, n, ...)`` each, and its KL (or ``None``)."""

    params: dict[str, Tensor]
    kl: Tensor | None = None


def model_output(
    model: nn.Module, x: Tensor, num_samples: int, *, generator: torch.Generator | None = None,
    kl: str | None = None,
) -> Any:
    """``model``'s output for ``num_samples`` weight draws: its own call, or the folded one.

    Raises
    ------
    ValueError
        For ``kl='mc'`` on a network that is not a varbayes model (the closed form only).
    TypeError
        If such a network does not return a ``dict`` of likelihood parameters.
    """
    if is_native(model):
        return model(x, num_samples, generator=generator, kl=kl)
    if kl not in (None, "analytic"):
        raise ValueError(f"kl={kl!r}: networks converted with varbayes.nn (or built of its layers) "
                         "train with the closed-form KL, kl='analytic'")
    params = run_draws(model, x, num_samples, generator=generator)
    if not isinstance(params, dict):
        raise TypeError(
            f"{type(getattr(model, 'module', model)).__name__} returns a "
            f"{type(params).__name__}; the ELBO needs a dict of likelihood parameters: end the "
            "network in a head such as varbayes.nn.GaussianHead")
    return GenericOutput(params, None if kl is None else kl_divergence(model))
