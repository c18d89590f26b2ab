"""Drawing the predictive of a :class:`~varbayes.models.FamilyMLP`: S weight draws, one pass.

An :class:`~varbayes.models.Ensemble` of them gives the equal mixture of its members'
predictives: member ``m`` draws its share of the ``S`` draws
(:func:`~varbayes.models.ensemble.member_draws`), one member after the other on the same
generator.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from varbayes._checks_scalar import check_count
from varbayes.likelihoods import CLASSIFICATION
from varbayes.models.ensemble import Ensemble, member_draws
from varbayes.predictive.classes import ClassPrediction
from varbayes.predictive.draw import check_draw_budget
from varbayes.predictive.families import FamilyPrediction

__all__ = ["family_predictive"]


@torch.no_grad()
def family_predictive(
    model: nn.Module, x: Tensor, num_samples: int = 1000, *,
    generator: torch.Generator | None = None, chunk_size: int | None = None,
    noise: str = "normal",
) -> FamilyPrediction | ClassPrediction:
    """The predictive of ``model`` (a ``FamilyMLP``) at standardised inputs ``x`` of shape (n, d).

    Returns a :class:`ClassPrediction` for a Bernoulli or categorical head, else a
    :class:`FamilyPrediction` (in the model's units). ``chunk_size`` processes the rows in
    chunks with the same weight draws for every chunk. ``noise``: the weight noise,
    ``'normal'`` (independent draws) or ``'sobol'`` (scrambled Sobol normals,
    :mod:`varbayes.nn.qmc`). The model's mode is restored.
    """
    num_samples = check_count(num_samples, "num_samples")
    if isinstance(model, Ensemble):
        shares = [family_predictive(member, x, count, generator=generator, chunk_size=chunk_size,
                                    noise=noise)
                 for member, count in zip(model.members, member_draws(num_samples,
                                                                      len(model.members)),
                                          strict=True) if count]
        return _concatenated(shares)
    likelihood = getattr(model, "likelihood", None)
    if not isinstance(likelihood, str):
        raise TypeError(f"family_predictive needs a FamilyMLP, got {type(model).__name__}")
    if x.dim() != 2:
        raise ValueError(f"family_predictive expects x of shape (n, d), got {tuple(x.shape)}")
    check_draw_budget(model, num_samples)
    was_training = model.training
    model.eval()
    state = None if generator is None else generator.get_state()
    seed = int(torch.randint(0, 2**62, (1,)).item()) if state is None else 0
    step = x.shape[0] if chunk_size is None else max(1, int(chunk_size))
    parts: list[dict[str, Tensor]] = []
    try:
        g = generator
        for start in range(0, max(1, x.shape[0]), step):
            g = torch.Generator(device=x.device)
            if state is not None:
                g.set_state(state)
            else:
                g.manual_seed(seed)
            out = model(x[start:start + step], num_samples, generator=g, noise=noise)
            assert out.family is not None  # a FamilyMLP always fills it
            parts.append({k: v.double() for k, v in out.family.items()})
        if generator is not None and g is not None:
            generator.set_state(g.get_state())
    finally:
        model.train(was_training)
    params = {k: torch.cat([p[k] for p in parts], 1) for k in parts[0]}
    if likelihood in CLASSIFICATION:
        return ClassPrediction(params["logits"])
    return FamilyPrediction(likelihood, {k: v.contiguous() for k, v in params.items()},
                            torch.float32)


def _concatenated(parts: list[FamilyPrediction | ClassPrediction]
                  ) -> FamilyPrediction | ClassPrediction:
    """One predictive of the draws of ``parts`` (predictives of the same inputs), in order."""
    first = parts[0]
    if isinstance(first, ClassPrediction):
        return ClassPrediction(torch.cat([cast(ClassPrediction, p).logits for p in parts]))
    params = {k: torch.cat([cast(FamilyPrediction, p).params[k] for p in parts]).contiguous()
              for k in first.params}
    return FamilyPrediction(first.likelihood, params, first.working_dtype)
