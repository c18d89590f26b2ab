"""Prediction passes whose rows do not depend on the batch: matrix products in fixed row blocks.

A BLAS library chooses its kernel, and with it the order of the roundings, by the shape of the
operands. In float32 a row predicted alone could therefore differ by an ulp from the same row
predicted in a batch of 150, which then shows in every summary of the prediction (issue 13,
item 17). The remedy of 0.2 was to compute prediction passes in float64, at about twice the cost.

Here every matrix product of a prediction pass has one shape per layer instead. The rows of the
batch are laid out as the columns of blocks of :data:`BLOCK_ROWS` (the last block padded with
zeros), and each layer computes, for each weight draw and block,

.. math:: H_{out} = [W^\\top \\mid b] \\begin{bmatrix} H_{in} \\\\ 1 \\end{bmatrix},
          \\qquad [W^\\top \\mid b]: (f_{out}, f_{in} + 1), \\quad H_{in}: (f_{in}, R),

with one batched product (``torch.bmm``) per layer, block and step of draws. The bias rides in
the product on a row of ones (:func:`augmented`). The shapes of these products depend on the
layer and the number of draws, never on the number of rows: more rows only mean more blocks.
A row's result then depends only on its own values and on its column within the block, and
BLAS kernels vectorise along that dimension, giving every column the same multiply-adds.

That last property is the kernel's, not ours, so it is checked rather than assumed.
:func:`rows_independent` runs each layer's product once per process on random blocks, with
the columns permuted and shifted, among other neighbours, in other batch counts and on one
thread and on all, and asks for bitwise equal columns. Where a check fails (another BLAS,
another CPU), :class:`~varbayes.models.BayesianMLP` keeps the float64 pass. Off the CPU the
float64 pass is used too (GPU libraries choose kernels by batch count; unchecked).

On the post's setup (150 rows x 1000 draws of a 1-20-20-1 network) the float32 block pass
takes about what 0.1.0's batch-dependent float32 pass took, half the float64 pass
(``docs/performance.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "BLOCK_CELLS",
    "BLOCK_ROWS",
    "augmented",
    "augmented_buffer",
    "block_pass",
    "block_pass_independent",
    "rows_independent",
]

#: Rows per block: the columns of every matrix product of a prediction pass. A multiple of the
#: widest vector (16 float32 lanes), so that no column falls in a kernel's remainder loop.
BLOCK_ROWS = 32
#: Activation values (draws x block rows x widest layer) of one step of :func:`block_pass`:
#: 1 MB of float32, so that a step's activations and weights stay in the CPU's L2 cache.
BLOCK_CELLS = 2**18

_VERDICTS: dict[tuple[object, ...], bool] = {}


def _product(weight: Tensor, h: Tensor) -> Tensor:
    """``weight @ h``: a batch (3-D) by ``torch.bmm``, one matrix (2-D) by ``torch.mm``."""
    return torch.bmm(weight, h) if weight.dim() == 3 else torch.mm(weight, h)


def _same_columns(weight: Tensor, h: Tensor) -> bool:
    """Whether ``weight @ h`` gives each column the same values wherever it stands.

    The columns of ``h`` reversed, shifted and permuted (each column's result must move with
    it), one column among other neighbours, ``weight`` at an unaligned offset, and one
    intra-op thread against the current count, all compared bit for bit.
    """
    ref = _product(weight, h)
    r = h.shape[-1]
    g = torch.Generator().manual_seed(1)
    orders = [torch.arange(r - 1, -1, -1)]
    orders += [torch.roll(torch.arange(r), s) for s in (1, 2, 3, r // 2 + 1)]
    orders += [torch.randperm(r, generator=g) for _ in range(3)]
    for order in orders:
        order = order.to(h.device)
        if not torch.equal(_product(weight, h[..., order]), ref[..., order]):
            return False
    other = torch.randn(h.shape, generator=g, dtype=h.dtype).to(h.device)
    other[..., 5] = h[..., 5]  # the same column among other neighbours
    if not torch.equal(_product(weight, other)[..., 5], ref[..., 5]):
        return False
    unaligned = torch.empty(weight.numel() + 1, dtype=weight.dtype, device=weight.device)
    unaligned = unaligned[1:].view(weight.shape).copy_(weight)
    if not torch.equal(_product(unaligned, h), ref):
        return False
    threads = torch.get_num_threads()
    if threads == 1:
        return True
    torch.set_num_threads(1)
    try:
        return torch.equal(_product(weight, h), ref)
    finally:
        torch.set_num_threads(threads)


def rows_independent(
    out_features: int, in_features: int, dtype: torch.dtype, device: torch.device | str = "cpu",
    *, stacked: int = 0,
) -> bool:
    """Whether this machine's matrix product computes each column of a row block on its own.

    Runs a product of :func:`block_pass` on random values, ``A (out, in) @ H (in,
    BLOCK_ROWS)``: batched by ``torch.bmm`` (``stacked=0``; batches of 1 and 2 matrices are
    compared with 9, and ``H`` broadcast over the batch with ``H`` repeated), or as one
    ``torch.mm`` with the weights of ``stacked`` draws stacked into ``A`` (the first layer,
    whose input every draw shares). See :func:`_same_columns` for the other checks. Cached per
    shape, dtype, device and thread count (a few dozen small products, once).

    Returns
    -------
    bool
        ``True`` when every check gives bitwise the same columns: a row's outputs then do not
        depend on the other rows, their number, or the thread count.
    """
    threads = torch.get_num_threads()
    key = (int(out_features), int(in_features), int(stacked), dtype, str(device), threads)
    verdict = _VERDICTS.get(key)
    if verdict is not None:
        return verdict
    g = torch.Generator().manual_seed(0)
    rows = int(out_features) * max(1, int(stacked))
    batch = () if stacked else (9,)
    weight = torch.randn((*batch, rows, int(in_features)), generator=g, dtype=dtype).to(device)
    h = torch.randn((*batch, int(in_features), BLOCK_ROWS), generator=g, dtype=dtype).to(device)
    verdict = _same_columns(weight, h)
    if verdict and not stacked:
        ref = torch.bmm(weight, h)
        verdict = all(torch.equal(torch.bmm(weight[:b], h[:b]), ref[:b]) for b in (1, 2))
        verdict = verdict and torch.equal(torch.bmm(weight, h[:1].expand_as(h)),
                                          torch.bmm(weight, h[:1].repeat(9, 1, 1)))
    _VERDICTS[key] = bool(verdict)
    return bool(verdict)


def augmented_buffer(
    num: int, in_features: int, out_features: int, ones: bool, dtype: torch.dtype,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor, Tensor]:
    """An :func:`augmented` weight tensor to draw into, and its weight and bias views.

    Returns
    -------
    aug : Tensor of shape (num, out_features (+1), in_features + 1)
        With the row ``[0 ... 0 | 1]`` already in place when ``ones``.
    weight : Tensor of shape (num, in_features, out_features)
        A view of ``aug`` (``W`` of each draw); to be filled.
    bias : Tensor of shape (num, 1, out_features)
        A view of ``aug`` (``b`` of each draw); to be filled (zeros for a layer without bias).
    """
    aug = torch.empty((num, out_features + int(ones), in_features + 1), dtype=dtype,
                      device=device)
    if ones:
        aug[:, out_features, :in_features] = 0
        aug[:, out_features, in_features] = 1
    return (aug, aug[:, :out_features, :in_features].transpose(1, 2),
            aug[:, :out_features, in_features].unsqueeze(1))


def augmented(weight: Tensor, bias: Tensor | None, ones: bool) -> Tensor:
    """``[W^T | b]`` per draw, shape (S, f_out (+1), f_in + 1), for inputs with a row of ones.

    Parameters
    ----------
    weight : Tensor of shape (S, f_in, f_out)
    bias : Tensor of shape (S, 1, f_out) or None
    ones : bool
        Append the row ``[0 ... 0 | 1]``, which passes the row of ones on: through a ReLU it
        stays exactly 1, so the next layer's bias rides in its product too (no bias is copied
        per step, and the product's result is the layer's output as it is).
    """
    s, f_in, f_out = weight.shape
    aug, w, b = augmented_buffer(s, f_in, f_out, ones, weight.dtype, weight.device)
    w.copy_(weight)
    if bias is None:
        b.zero_()
    else:
        b.copy_(bias)
    return aug


def _step(weights: Sequence[Tensor], cells: int) -> int:
    """Draws per step of :func:`block_pass`."""
    return max(1, cells // (BLOCK_ROWS * max(w.shape[1] for w in weights)))


def block_pass_independent(weights: Sequence[Tensor], *, cells: int = BLOCK_CELLS) -> bool:
    """Whether :func:`block_pass` with these weights computes every row on its own here.

    Asks :func:`rows_independent` about each of the pass's products: the first layer's
    ``torch.mm`` for a full step of draws and for the last, shorter one, and the batched
    products of the other layers.
    """
    num, step = weights[0].shape[0], _step(weights, cells)
    first = weights[0]
    dtype, device = first.dtype, first.device
    steps = {min(step, num), num % step or step}
    return all(rows_independent(first.shape[1], first.shape[2], dtype, device, stacked=d)
               for d in steps) and \
        all(rows_independent(w.shape[1], w.shape[2], dtype, device) for w in weights[1:])


def block_pass(x: Tensor, weights: Sequence[Tensor], out: Tensor, *,
               cells: int = BLOCK_CELLS) -> Tensor:
    """A ReLU network under ``S`` weight draws, its rows in blocks of :data:`BLOCK_ROWS`.

    Parameters
    ----------
    x : Tensor of shape (n, f_0)
        Inputs, in the dtype of the weights (the dtype the pass computes in).
    weights : sequence of Tensor
        Per layer the :func:`augmented` weights, of shape (S, f_{i+1} + 1, f_i + 1) with the
        row of ones, and (S, f_L, f_{L-1} + 1) for the last layer. ReLU follows every layer
        but the last.
    out : Tensor of shape (S, n, f_L)
        Where the outputs go (converted to its dtype); returned.
    cells : int, default=BLOCK_CELLS
        Activation values per step (draws x block rows x widest layer).

    Returns
    -------
    Tensor
        ``out``.

    Notes
    -----
    Only the shapes of the products are fixed here (they depend on the layers and the number
    of draws, never on ``n``). Whether a row's outputs are then independent of the other rows
    is the kernel's property: ask :func:`block_pass_independent`.
    """
    n, f0 = x.shape
    r = BLOCK_ROWS
    num = weights[0].shape[0]
    blocks = -(-n // r)
    padded = x.new_zeros((blocks * r, f0))
    padded[:n] = x
    xb = x.new_ones((blocks, f0 + 1, r))  # a block's rows as columns, then a row of ones
    xb[:, :f0] = padded.view(blocks, r, f0).transpose(1, 2)
    step = _step(weights, cells)
    f_out = weights[-1].shape[1]
    result = x.new_empty((blocks, num, f_out, r))  # each step's output is one contiguous piece
    hidden = x.new_empty(min(step, num) * weights[0].shape[1] * r)  # the first layer's, reused
    for s0 in range(0, num, step):
        d = min(step, num - s0)
        first, *rest = (w[s0 : s0 + d] for w in weights)
        stacked = first.reshape(-1, f0 + 1)  # the first layer: one product for all d draws
        h0 = hidden[: stacked.shape[0] * r].view(-1, r)
        for block in range(blocks):
            if not rest:
                torch.mm(stacked, xb[block], out=result[block, s0 : s0 + d].view(-1, r))
                continue
            h = torch.mm(stacked, xb[block], out=h0).view(d, -1, r).relu_()
            for w in rest[:-1]:
                h = torch.bmm(w, h).relu_()
            torch.bmm(rest[-1], h, out=result[block, s0 : s0 + d])
    # (blocks, S, f_out, R) -> (S, blocks * R, f_out), the padding rows dropped: one strided
    # copy of the full blocks and one of the last, partial block (no reshaped copy first)
    full = n // r
    out[:, : full * r].view(num, full, r, f_out).copy_(result[:full].permute(1, 0, 3, 2))
    if n > full * r:
        out[:, full * r :].copy_(result[full, :, :, : n - full * r].transpose(1, 2))
    return out
