"""The predictive of any network: S weight draws, batched where the layers allow, memory bounded.

:func:`sample_outputs` pushes ``S`` weight draws of a network through it and returns its outputs
with a leading sample dimension. Two sources of draws:

* a network with variational layers (:func:`varbayes.nn.bayesianize`, :class:`BayesConv`,
  :class:`BayesLinear`): the draws are *folded* into the batch (:mod:`varbayes.nn.sampling`),
  so a chunk of draws is one forward pass;
* a ``posterior`` over the parameters of an unmodified network (:class:`varbayes.optim.IVON`):
  the parameter draws are applied with ``torch.func.vmap`` over ``functional_call``.

Networks whose layers cannot take a folded batch (:func:`varbayes.nn.batchable`: recurrent and
sequence-first attention layers, batch norm in training mode), or whose ops ``vmap`` rejects,
take the draws one at a time. Either way the work is split into chunks of draws and rows so that
the activations of a chunk stay within ``max_bytes`` (:data:`MAX_CHUNK_BYTES`, 256 MiB): the
activation size of one row and one draw is measured by a probe pass over one row, and each chunk
of rows replays the generator state of its chunk of draws, so every row sees the same draws.

:func:`generic_predictive` turns the outputs of a Gaussian head
(:class:`varbayes.nn.GaussianHead`) into a :class:`~varbayes.predictive.Prediction`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast, runtime_checkable

import torch
from torch import Tensor, nn

from varbayes._checks_scalar import check_count
from varbayes.nn.sampling import batchable, run_draws, variational_layers
from varbayes.predictive.mixture import Prediction

__all__ = [
    "MAX_CHUNK_BYTES",
    "ParameterPosterior",
    "chunk_plan",
    "generic_predictive",
    "sample_outputs",
]

#: Bound on the activations (and weight draws) of one chunk of a generic prediction.
MAX_CHUNK_BYTES = 256 << 20


@runtime_checkable
class ParameterPosterior(Protocol):
    """A posterior over (some of) a network's parameters, e.g. :class:`varbayes.optim.IVON`."""

    def sample_parameters(
        self, module: nn.Module, num: int, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """``num`` draws of each parameter of ``module`` it covers: name -> (num, *shape)."""
        ...


def _map(out: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    if isinstance(out, Tensor):
        return fn(out)
    if isinstance(out, dict):
        return {k: _map(v, fn) for k, v in out.items()}
    if isinstance(out, tuple | list):
        return type(out)(_map(v, fn) for v in out)
    raise TypeError(f"a network output of type {type(out).__name__} is not a tensor, dict or "
                    "tuple of tensors")


def _cat(parts: list[Any], dim: int) -> Any:
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, Tensor):
        return torch.cat(parts, dim)
    if isinstance(first, dict):
        return {k: _cat([p[k] for p in parts], dim) for k in first}
    return type(first)(_cat([p[i] for p in parts], dim) for i in range(len(first)))


def _nbytes(out: Any) -> int:
    if isinstance(out, Tensor):
        return out.numel() * out.element_size()
    if isinstance(out, dict):
        return sum(_nbytes(v) for v in out.values())
    if isinstance(out, tuple | list):
        return sum(_nbytes(v) for v in out)
    return 0


def _probe_bytes(module: nn.Module, x: Tensor, plain: bool = False) -> int:
    """Bytes of every module output for one row and one draw (the activations a draw keeps).

    ``plain``: call ``module`` as it is (a network without variational layers) instead of
    through one weight draw.
    """
    total = [0]

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        total[0] += _nbytes(out)

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    try:
        if plain:
            module(x[:1])
        else:
            run_draws(module, x[:1], 1, generator=torch.Generator(device=x.device).manual_seed(0))
    finally:
        for h in handles:
            h.remove()
    return max(total[0], x[:1].numel() * x.element_size())


def chunk_plan(per_row_draw: int, per_draw: int, num: int, rows: int, max_bytes: int
               ) -> tuple[int, int]:
    """Draws and rows per chunk: ``d * (per_draw + r * per_row_draw) <= max_bytes`` if possible.

    All draws in one chunk where they fit with at least one row; otherwise as many as fit.
    Returns ``(draws_per_chunk, rows_per_chunk)``, each at least 1.
    """
    d = num if num * (per_draw + per_row_draw) <= max_bytes else max(
        1, max_bytes // max(1, per_draw + per_row_draw))
    r = max(1, min(rows, (max_bytes - d * per_draw) // max(1, d * per_row_draw)))
    return d, r


def _vmapped(module: nn.Module, params: dict[str, Tensor], x: Tensor, loop: bool) -> Any:
    from torch.func import functional_call, vmap

    def one(p: dict[str, Tensor], xb: Tensor) -> Any:
        return functional_call(module, p, (xb,))

    if not loop:
        try:
            return vmap(one, in_dims=(0, None))(params, x)
        except (RuntimeError, NotImplementedError, ValueError):
            pass  # an op vmap does not batch: one draw at a time below
    num = next(iter(params.values())).shape[0]
    outs = [_map(one({k: v[s] for k, v in params.items()}, x), lambda t: t.unsqueeze(0))
            for s in range(num)]
    return _cat(outs, 0)


@torch.no_grad()
def sample_outputs(
    module: nn.Module, x: Tensor, num_samples: int, *, generator: torch.Generator | None = None,
    sample: bool = True, posterior: ParameterPosterior | None = None,
    batched: bool | None = None, max_bytes: int = MAX_CHUNK_BYTES,
) -> Any:
    """The outputs of ``num_samples`` weight draws of ``module`` at ``x``: shape ``(S, n, ...)``.

    Parameters
    ----------
    module : nn.Module
        A network with variational layers, or any network when ``posterior`` is given.
    x : Tensor of shape (n, ...)
    num_samples : int
    generator : torch.Generator or None
        Source of the draws (fix it for reproducible outputs).
    sample : bool, default=True
        ``False``: one pass at the posterior means.
    posterior : ParameterPosterior or None
        Draw the parameters from it (e.g. an :class:`~varbayes.optim.IVON` optimizer).
    batched : bool or None
        Fold the draws into the batch (``None``: where :func:`~varbayes.nn.batchable` allows).
    max_bytes : int, default=MAX_CHUNK_BYTES
        Bound on the activations and weight draws of one chunk.

    Returns
    -------
    Tensor, dict or tuple of tensors with a leading dimension of ``S`` (1 without sampling).
    """
    num = check_count(num_samples, "num_samples") if sample else 1
    max_bytes = check_count(max_bytes, "max_bytes")
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"sample_outputs needs x with at least one row, got {tuple(x.shape)}")
    if posterior is None and not variational_layers(module):
        raise ValueError(f"{type(module).__name__} has no variational layer; convert it with "
                         "varbayes.nn.bayesianize or pass the posterior= of an IVON optimizer")
    was_training = module.training
    module.eval()
    try:
        fold = batchable(module) if batched is None else bool(batched)
        if generator is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
            generator = torch.Generator(device=x.device).manual_seed(seed)
        if posterior is not None:
            numel = sum(p.numel() for p in module.parameters())
            per_draw = 3 * numel * 4
            probe = _probe_bytes(module, x, plain=True)
        else:
            per_draw = 12 * sum(m.weight_loc.numel() for m in variational_layers(module))
            probe = _probe_bytes(module, x)
        d, r = chunk_plan(probe, per_draw, num, x.shape[0], max_bytes)
        if not fold:
            d = 1
        chunks = []
        for start in range(0, num, d):
            size = min(d, num - start)
            state = generator.get_state()
            params = None
            if posterior is not None and sample:
                params = posterior.sample_parameters(module, size, generator)
            rows = []
            for lo in range(0, x.shape[0], r):
                xb = x[lo : lo + r]
                if params is not None:
                    rows.append(_vmapped(module, params, xb, loop=not fold))
                elif posterior is not None:  # sample=False: the means
                    rows.append(_map(module(xb), lambda t: t.unsqueeze(0)))
                else:
                    generator.set_state(state)  # the same draws for every chunk of rows
                    rows.append(run_draws(module, xb, size, generator=generator, sample=sample))
            chunks.append(_cat(rows, 1))
        return _cat(chunks, 0)
    finally:
        module.train(was_training)


def generic_predictive(
    module: nn.Module, x: Tensor, num_samples: int = 1000, *,
    generator: torch.Generator | None = None, sample: bool = True,
    posterior: ParameterPosterior | None = None, max_bytes: int = MAX_CHUNK_BYTES,
) -> Prediction:
    """The Gaussian-mixture predictive of a network ending in a Gaussian head.

    See :func:`sample_outputs`; the network's output must be ``{"loc", "scale"}`` of shape
    ``(n,)`` (:class:`varbayes.nn.GaussianHead`).
    """
    out = sample_outputs(module, x, num_samples, generator=generator, sample=sample,
                         posterior=posterior, max_bytes=max_bytes)
    if not (isinstance(out, dict) and "loc" in out and "scale" in out):
        raise TypeError(
            f"{type(module).__name__} does not end in a Gaussian head: varbayes.predictive needs "
            "its output to be {'loc': ..., 'scale': ...} (end it in varbayes.nn.GaussianHead); "
            "for other outputs use varbayes.predictive.sample_outputs")
    loc, scale = cast(Tensor, out["loc"]), cast(Tensor, out["scale"])
    if loc.dim() != 2:
        raise ValueError(f"a Gaussian head must output loc of shape (n,), got "
                         f"{tuple(loc.shape[1:])} per draw")
    return Prediction(loc, scale.expand_as(loc).contiguous())
