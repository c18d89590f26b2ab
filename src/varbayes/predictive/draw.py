"""Drawing the posterior predictive: S weight draws in one batched pass, memory bounded."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from varbayes._checks_scalar import check_count
from varbayes._threads import intra_op_threads
from varbayes.nn.sampling import is_native
from varbayes.predictive.generic import ParameterPosterior, generic_predictive
from varbayes.predictive.mixture import Prediction

__all__ = [
    "MAX_DRAW_BYTES",
    "check_draw_budget",
    "draw_bytes_per_row",
    "predictive",
]

#: Memory the posterior draws for one input row may take in a prediction (2 GiB): S weight
#: draws of every Bayesian layer plus the S mixture components and their interval search.
#: Callers chunk the rows (``varbayes.data.csvstream.predict_chunk_rows``), so more rows never
#: need more than a chunk's worth.
MAX_DRAW_BYTES = 2 << 30


def draw_bytes_per_row(model: torch.nn.Module, num_samples: int) -> int:
    """Bytes the posterior draws of one row take: S x (weight draws + mixture work).

    Each of the ``S`` draws samples every weight and bias of the Bayesian layers (float32, with
    its noise: 8 bytes an element) and adds a mixture component whose interval search works in
    float64 (about 64 bytes). A model without weight uncertainty draws one component.
    """
    sampled = 0
    for module in model.modules():
        for name in ("weight_loc", "bias_loc"):
            tensor = getattr(module, name, None)
            if isinstance(tensor, torch.Tensor):
                sampled += tensor.numel()
    draws = int(num_samples) if sampled else 1
    return draws * (8 * sampled + 64)


def check_draw_budget(model: torch.nn.Module, num_samples: int) -> None:
    """Refuse ``num_samples`` when one row's draws alone exceed :data:`MAX_DRAW_BYTES`.

    Raises
    ------
    ValueError
        Naming the number of samples, the memory it needs, the limit and the largest number
        of samples within it.
    """
    need = draw_bytes_per_row(model, num_samples)
    if need <= MAX_DRAW_BYTES:
        return
    per_draw = max(1, draw_bytes_per_row(model, 1))
    raise ValueError(
        f"num_samples={num_samples} needs about {need / 2**30:.3g} GiB for the posterior draws "
        f"of a single row, above the limit of {MAX_DRAW_BYTES / 2**30:g} GiB "
        f"(varbayes.predictive.MAX_DRAW_BYTES); use at most {MAX_DRAW_BYTES // per_draw} samples"
    )


@torch.no_grad()
def predictive(
    model: nn.Module,
    x: Tensor,
    num_samples: int = 1000,
    *,
    generator: torch.Generator | None = None,
    sample: bool = True,
    chunk_size: int | None = None,
    posterior: ParameterPosterior | None = None,
) -> Prediction:
    """Draw the posterior predictive of ``model`` at ``x`` in one batched pass.

    Parameters
    ----------
    model : nn.Module
        A :mod:`varbayes.models` model, or any network with variational layers
        (:func:`varbayes.nn.bayesianize`) ending in :class:`varbayes.nn.GaussianHead`: S draws
        batched where its layers allow, memory bounded (:mod:`varbayes.predictive.generic`).
    x : Tensor of shape (n, d)
        Standardised inputs.
    num_samples : int, default=1000
        Weight draws ``S``. Models without weight uncertainty return one component.
    generator : torch.Generator or None
        Source of the weight noise; fix it for reproducible predictions.
    sample : bool, default=True
        ``False`` predicts at the posterior means (one component).
    chunk_size : int or None, default=None
        Process the rows in chunks of this size (the same weight draws for every chunk), so
        memory is ``O(S * chunk_size * width)`` rather than ``O(S * n * width)``. A model
        whose prediction pass is already bounded that way (``bounded_prediction``, e.g.
        :class:`~varbayes.models.BayesianMLP`) runs in one pass, with the same result.

    posterior : ParameterPosterior or None, default=None
        Draw the parameters of an unmodified network from this posterior (e.g. a
        :class:`varbayes.optim.IVON` optimizer), see :mod:`varbayes.predictive.generic`.

    Returns
    -------
    Prediction
        In the model's (standardised) units; see :meth:`Prediction.affine`.

    Raises
    ------
    ValueError
        For ``num_samples`` that is not a positive integer, or so large that the draws for a
        single row would exceed :data:`MAX_DRAW_BYTES` (2 GiB).

    Notes
    -----
    The model is evaluated under ``torch.no_grad()`` and nothing about it changes: no KL is
    computed or stored, and its training mode is restored.
    """
    num_samples = check_count(num_samples, "num_samples")
    if posterior is not None or not is_native(model):  # any network: varbayes.nn layers, IVON
        return generic_predictive(model, x, num_samples, generator=generator, sample=sample,
                                  posterior=posterior)
    if x.dim() != 2:
        raise ValueError(f"predictive expects x of shape (n, d), got {tuple(x.shape)}")
    check_draw_budget(model, num_samples if sample else 1)  # before allocating any draw
    was_training = model.training
    model.eval()
    # Per-sample work decides the threads: BayesianMLP chunks large sample counts itself.
    work = x.shape[0] * sum(p.numel() for p in model.parameters())
    with intra_op_threads(work):
        try:
            # A model whose prediction pass bounds its own memory needs no row chunks: one
            # pass draws the weights once (chunks draw the same weights once per chunk).
            if chunk_size is None or chunk_size >= x.shape[0] or \
                    getattr(model, "bounded_prediction", False):
                out = model(x, num_samples, generator=generator, sample=sample)
                loc, scale = out.loc, out.scale
            else:
                # The same weight draws for every chunk: replay the generator state per chunk.
                state = generator.get_state() if generator is not None else None
                seed = None
                if state is None:
                    seed = int(torch.randint(0, 2**62, (1,)).item())
                locs, scales = [], []
                for start in range(0, x.shape[0], chunk_size):
                    g = torch.Generator(device=x.device)
                    if state is not None:
                        g.set_state(state)
                    else:
                        g.manual_seed(cast(int, seed))  # drawn above when state is None
                    out = model(x[start : start + chunk_size], num_samples, generator=g,
                                sample=sample)
                    locs.append(out.loc)
                    scales.append(out.scale.expand_as(out.loc))
                loc, scale = torch.cat(locs, 1), torch.cat(scales, 1)
                if generator is not None:
                    generator.set_state(g.get_state())
        finally:
            model.train(was_training)
    # A scale shared by every draw (a point-estimate noise network) stays one row, broadcast
    # over the draws (stride 0): no (S, n) copy, and the quantile search sees it at once.
    return Prediction(loc, scale.expand_as(loc))
