"""The tensor kernels of the hand-derived engine: flat layout, noise fill, MLP backward."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["mlp_backward", "mm", "mm_t", "offsets", "outer_into", "relu_grad", "standard_normal_"]

relu_grad = torch.ops.aten.threshold_backward  # grad where the ReLU output is > 0, else 0


def offsets(sizes: Sequence[int]) -> tuple[list[tuple[int, int, int, int]], int]:
    """Per layer ``(weight offset, bias offset, fan_in, fan_out)`` in a flat vector; its size."""
    out, off = [], 0
    for fi, fo in zip(sizes[:-1], sizes[1:], strict=True):
        out.append((off, off + fi * fo, fi, fo))
        off += fi * fo + fo
    return out, off


def standard_normal_(view: Tensor, generator: torch.Generator | None) -> None:
    """Fill ``view`` with the values ``torch.randn(view.shape)`` would draw from ``generator``."""
    if view.is_contiguous():
        view.normal_(generator=generator)
    else:  # normal_ fills strided memory in another order
        view.copy_(torch.randn(view.shape, dtype=view.dtype, device=view.device,
                               generator=generator))


def mm(g: Tensor, wt: Tensor) -> Tensor:
    """``g @ wt`` for g (K, B, f_out) and wt (K, f_out, f_in); broadcast if f_out = 1."""
    return g * wt if wt.shape[1] == 1 else torch.bmm(g, wt)


def mm_t(g: Tensor, w: Tensor) -> Tensor:
    """``g @ w^T`` for (K, B, f_out) and w of shape (K, f_in, f_out); broadcast if f_out = 1."""
    return mm(g, w.transpose(1, 2))


def outer_into(out: Tensor, h: Tensor, g: Tensor) -> None:
    """``out[:] = h^T g`` (K, f_in, f_out) for h (K, B, f_in), g (K, B, f_out).

    A broadcast product and sum for one output (a slow BLAS shape); else ``bmm``, straight into
    ``out`` only if it is contiguous (``bmm(out=strided)`` loops over the batch).
    """
    if g.shape[2] == 1:  # h * g broadcasts g over f_in: the products of h^T g, summed over B
        torch.sum(h * g, 1, out=out.squeeze(2))
    elif out.is_contiguous():
        torch.bmm(h.transpose(1, 2), g, out=out)
    else:
        out.copy_(torch.bmm(h.transpose(1, 2), g))


def mlp_backward(g: Tensor, acts: list[Tensor], weights_t: list[Tensor],
                  gws: list[Tensor], gbs: list[Tensor]) -> None:
    """Backpropagate ``g`` (K, B, f_L) through ``h_{l+1} = relu(h_l W_l + b_l)`` (batched in K).

    ``weights_t[l]`` is ``W_l`` transposed, (K, f_{l+1}, f_l): views made once by the caller.
    Writes the weight gradients into ``gws[l]`` (K, f_l, f_{l+1}) and the bias gradients into
    ``gbs[l]`` (K, 1, f_{l+1}); ``acts[l]`` is the input of layer ``l`` (post-ReLU for ``l > 0``).
    """
    for i in reversed(range(len(weights_t))):
        outer_into(gws[i], acts[i], g)
        torch.sum(g, 1, keepdim=True, out=gbs[i])
        if i:
            g = relu_grad(mm(g, weights_t[i]), acts[i], 0)
