"""Weight draws for any module built of variational layers: the sample dimension, folded.

A converted network (:func:`varbayes.nn.bayesianize`) keeps its user's ``forward``, which knows
nothing of weight samples. To push ``S`` weight draws through it in one pass, the input is
*folded*: ``x`` of shape ``(n, ...)`` becomes ``(S * n, ...)``, sample-major, and every
variational layer unfolds its input to ``(S, n', ...)``, applies draw ``s`` to block ``s`` and
folds the output back. Everything between the layers (activations, pooling, flatten, reshapes that
keep the batch dimension first, normalisation in eval mode) sees an ordinary, larger batch, so
any forward that works on a batch works on ``S`` draws at once.

The draw state (``S``, the random source, whether to sample at all) reaches the layers through
:func:`draws`, a context manager that sets it on every variational layer of a module and
restores it afterwards; outside it a layer draws one weight sample per call (``S = 1``) from the
global random source, which is what a plain training loop wants.

Layers that cannot take a folded batch (recurrent layers and attention that put the sequence
first) are detected by :func:`batchable`; :mod:`varbayes.predictive.generic` then applies the
draws one at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "DrawState",
    "VariationalLayer",
    "batchable",
    "draw_blocks",
    "draws",
    "fold",
    "is_native",
    "kl_divergence",
    "run_draws",
    "unfold",
    "variational_layers",
]


@dataclass(frozen=True)
class DrawState:
    """How a variational layer draws its weights in the current call.

    Attributes
    ----------
    num : int
        Weight draws ``S`` folded into the leading dimension of the input.
    generator : torch.Generator or None
        Random source of the weight noise.
    sample : bool
        ``False``: use the posterior means (then ``num`` must be 1).
    """

    num: int = 1
    generator: torch.Generator | None = None
    sample: bool = True


#: The state of a layer outside :func:`draws`: one draw per call, the global random source.
DEFAULT_STATE = DrawState()


class VariationalLayer(nn.Module):
    """Base of the layers :func:`draws` controls: a draw state and a closed-form KL."""

    draw_state: DrawState = DEFAULT_STATE

    def kl_divergence(self) -> Tensor:
        """Closed-form KL(q || prior) of the layer's weights, summed (a scalar)."""
        raise NotImplementedError


def variational_layers(module: nn.Module) -> list[Any]:
    """Every module inside ``module`` with a closed-form ``kl_divergence`` and weight posterior.

    That is the :class:`VariationalLayer` subclasses and :class:`~varbayes.nn.BayesLinear`
    (checked by name of its attributes, so this module imports no layer).
    """
    return [m for m in module.modules()
            if isinstance(m, VariationalLayer) or (
                hasattr(m, "weight_loc") and hasattr(m, "weight_rho")
                and callable(getattr(m, "kl_divergence", None)))]


def kl_divergence(module: nn.Module) -> Tensor:
    """Closed-form KL of every variational layer inside ``module``, summed in module order.

    Raises
    ------
    ValueError
        If ``module`` holds no variational layer.
    """
    total: Tensor | None = None
    for layer in variational_layers(module):
        term = layer.kl_divergence()
        total = term if total is None else total + term
    if total is None:
        raise ValueError(f"{type(module).__name__} contains no variational layer (no "
                         "BayesLinear, FoldedBayesLinear or BayesConv)")
    return total


@contextlib.contextmanager
def draws(
    module: nn.Module, num: int = 1, *, generator: torch.Generator | None = None,
    sample: bool = True,
) -> Iterator[nn.Module]:
    """Let every variational layer of ``module`` draw ``num`` folded weight samples.

    Parameters
    ----------
    module : nn.Module
    num : int, default=1
        Weight draws ``S``; the input of the module must then have ``S * n`` rows, sample-major
        (see :func:`fold`).
    generator : torch.Generator or None
        Random source of the weight noise.
    sample : bool, default=True
        ``False``: every layer uses its posterior means (``num`` must be 1).

    Yields
    ------
    nn.Module
        ``module`` itself.
    """
    num = int(num)
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    if not sample and num != 1:
        raise ValueError("sample=False uses the means: one draw, num=1")
    state = DrawState(num, generator, sample)
    layers = [m for m in variational_layers(module) if hasattr(m, "draw_state")]
    previous = [m.draw_state for m in layers]
    for m in layers:
        m.draw_state = state
    try:
        yield module
    finally:
        for m, old in zip(layers, previous, strict=True):
            m.draw_state = old


def draw_blocks(layer: nn.Module, x: Tensor, in_features: int, num: int) -> Tensor:
    """A linear layer's folded input ``(..., in_features)`` as ``(num, rows, in_features)``.

    Raises
    ------
    ValueError
        Naming ``layer``'s class, if the last dimension is not ``in_features``.
    """
    if x.shape[-1] != in_features:
        raise ValueError(
            f"{type(layer).__name__} expected inputs with {in_features} features in the last "
            f"dimension, got shape {tuple(x.shape)}")
    return x.reshape(num, -1, in_features)


def fold(x: Tensor, num: int) -> Tensor:
    """``(n, ...)`` to ``(num * n, ...)``: ``num`` copies, sample-major."""
    if num == 1:
        return x
    return x.unsqueeze(0).expand(num, *x.shape).reshape(num * x.shape[0], *x.shape[1:])


def unfold(out: Any, num: int) -> Any:
    """``(num * n, ...)`` to ``(num, n, ...)``, for a tensor or a mapping / tuple of tensors."""
    if isinstance(out, Tensor):
        if out.dim() == 0 or out.shape[0] % num:
            raise ValueError(
                f"the module's output of shape {tuple(out.shape)} has no leading batch dimension "
                f"of {num} draws x rows; its forward does not keep the batch dimension first")
        return out.reshape(num, out.shape[0] // num, *out.shape[1:])
    if isinstance(out, dict):
        return {k: unfold(v, num) for k, v in out.items()}
    if isinstance(out, tuple | list):
        return type(out)(unfold(v, num) for v in out)
    raise TypeError(f"cannot unfold a module output of type {type(out).__name__}")


#: Modules whose batch dimension is not the first one by default (sequence-first layouts).
_SEQUENCE_FIRST = (nn.RNNBase, nn.MultiheadAttention, nn.Transformer, nn.TransformerEncoderLayer,
                   nn.TransformerDecoderLayer)


def batchable(module: nn.Module) -> bool:
    """Whether folded draws can go through ``module`` in one pass.

    ``False`` when it holds a recurrent layer, attention or a transformer layer that is not
    ``batch_first`` (their batch is the second dimension), or batch normalisation in training
    mode (its statistics would mix the draws).
    """
    for m in module.modules():
        if isinstance(m, _SEQUENCE_FIRST) and not getattr(m, "batch_first", False):
            return False
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            return False
    return True


def run_draws(
    module: nn.Module, x: Tensor, num: int, *, generator: torch.Generator | None = None,
    sample: bool = True,
) -> Any:
    """``module`` on ``num`` folded weight draws at ``x``; the output unfolded to ``(num, n, ...)``.

    The draws come from ``generator`` in the order the layers run, so the same generator state
    gives the same draws for any rows.
    """
    with draws(module, num, generator=generator, sample=sample):
        out = module(fold(x, num))
    return unfold(out, num)


def is_native(model: nn.Module) -> bool:
    """Whether ``model`` follows the varbayes model contract (``forward(x, num_samples, ...)``)."""
    inner = getattr(model, "module", model)  # DistributedDataParallel
    forward = getattr(inner, "forward", None)
    try:
        code = forward.__code__  # type: ignore[union-attr]
    except AttributeError:
        return False
    return "num_samples" in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
