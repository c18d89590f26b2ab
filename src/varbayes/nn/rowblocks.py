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

__all__ = ["BLOCK_CELLS", "BLOCK_ROWS", "augmented", "block_pass", "rows_independent"]

#: Rows per block: the columns of every matrix product of a prediction pass. A multiple of the
#: widest vector (16 float32 lanes), so that no column falls in a kernel's remainder loop.
BLOCK_ROWS = 32
#: Activation values (draws x block rows x widest layer) of one step of :func:`block_pass`:
#: 1 MB of float32, so that a step's activations and weights stay in the CPU's L2 cache.
BLOCK_CELLS = 2**18

_VERDICTS: dict[tuple[object, ...], bool] = {}


def _same_columns(weight: Tensor, h: Tensor, ref: Tensor) -> bool:
    """Whether ``weight @ h`` on permuted and on replaced columns gives ``ref``'s columns."""
    r = h.shape[-1]
    g = torch.Generator().manual_seed(1)
    orders = [torch.arange(r - 1, -1, -1)]
    orders += [torch.roll(torch.arange(r), s) for s in (1, 2, 3, r // 2 + 1)]
    orders += [torch.randperm(r, generator=g) for _ in range(3)]
    for order in orders:
        order = order.to(h.device)
        if not torch.equal(torch.bmm(weight, h[..., order]), ref[..., order]):
            return False
    other = torch.randn(h.shape, generator=g, dtype=h.dtype).to(h.device)
    other[..., 5] = h[..., 5]  # the same column among other neighbours
    return torch.equal(torch.bmm(weight, other)[..., 5], ref[..., 5])


def rows_independent(
    out_features: int, in_features: int, dtype: torch.dtype, device: torch.device | str = "cpu",
) -> bool:
    """Whether ``torch.bmm`` here computes each column of a row block on its own.

    Runs the product of :func:`block_pass`, ``A (B, out, in) @ H (B, in, BLOCK_ROWS)``, on
    random values and compares bit for bit: the columns of ``H`` reversed, shifted and
    permuted (each column's result must move with it), one column among other neighbours,
    batches of 1 and 2 matrices against 9, ``H`` one matrix broadcast over the batch, ``A``
    a view at an unaligned offset, and one intra-op thread against the current count. Cached
    per shape, dtype, device and thread count (a few dozen small products, once).

    Returns
    -------
    bool
        ``True`` when every check gives bitwise the same columns: a row's outputs then do not
        depend on the other rows, their number, or the thread count.
    """
    threads = torch.get_num_threads()
    key = (int(out_features), int(in_features), dtype, str(device), threads)
    verdict = _VERDICTS.get(key)
    if verdict is not None:
        return verdict
    g = torch.Generator().manual_seed(0)
    batch, shape = 9, (int(out_features), int(in_features))
    flat = torch.randn(batch * shape[0] * shape[1] + 1, generator=g, dtype=dtype).to(device)
    weight = flat[: -1].view(batch, *shape)
    unaligned = flat[1:].view(batch, *shape)
    h = torch.randn((batch, shape[1], BLOCK_ROWS), generator=g, dtype=dtype).to(device)
    ref = torch.bmm(weight, h)
    verdict = _same_columns(weight, h, ref)
    verdict = verdict and all(torch.equal(torch.bmm(weight[:b], h[:b]), ref[:b]) for b in (1, 2))
    verdict = verdict and torch.equal(torch.bmm(weight, h[:1].expand_as(h))[3],
                                      torch.bmm(weight[3:4], h[:1])[0])
    verdict = verdict and torch.equal(torch.bmm(unaligned, h),
                                      torch.bmm(unaligned.contiguous(), h))
    if verdict and threads > 1:
        torch.set_num_threads(1)
        try:
            verdict = torch.equal(torch.bmm(weight, h), ref)
        finally:
            torch.set_num_threads(threads)
    _VERDICTS[key] = bool(verdict)
    return bool(verdict)


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
    aug = weight.new_empty((s, f_out + int(ones), f_in + 1))
    aug[:, :f_out, :f_in] = weight.transpose(1, 2)
    aug[:, :f_out, f_in] = 0 if bias is None else bias[:, 0, :]
    if ones:
        aug[:, f_out, :f_in] = 0
        aug[:, f_out, f_in] = 1
    return aug


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
    Only the shapes of the products are fixed here. Whether a row's outputs are then
    independent of the other rows is the kernel's property: ask :func:`rows_independent` for
    each layer's weight shape.
    """
    n, f0 = x.shape
    r = BLOCK_ROWS
    num = weights[0].shape[0]
    blocks = -(-n // r)
    padded = x.new_zeros((blocks * r, f0))
    padded[:n] = x
    xb = x.new_ones((blocks, f0 + 1, r))  # a block's rows as columns, then a row of ones
    xb[:, :f0] = padded.view(blocks, r, f0).transpose(1, 2)
    step = max(1, cells // (r * max(w.shape[1] for w in weights)))  # draws per step
    f_out = weights[-1].shape[1]
    result = x.new_empty((blocks, num, f_out, r))  # each step's output is one contiguous piece
    for s0 in range(0, num, step):
        d = min(step, num - s0)
        chunk = [w[s0 : s0 + d] for w in weights]
        for block in range(blocks):
            h = xb[block].expand(d, f0 + 1, r)
            for w in chunk[:-1]:
                h = torch.bmm(w, h).relu_()
            torch.bmm(chunk[-1], h, out=result[block, s0 : s0 + d])
    # (blocks, S, f_out, R) -> (S, blocks * R, f_out), the padding rows dropped
    out.copy_(result.permute(1, 0, 3, 2).reshape(num, blocks * r, f_out)[:, :n])
    return out
