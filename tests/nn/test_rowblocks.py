"""Prediction passes in fixed row blocks: the values, the bitwise batch invariance, the check."""

from __future__ import annotations

import pytest
import torch

from varbayes.models import BayesianMLP
from varbayes.nn import BayesLinear, rowblocks
from varbayes.nn.rowblocks import (
    BLOCK_ROWS,
    augmented,
    augmented_buffer,
    block_pass,
    block_pass_independent,
    rows_independent,
)
from varbayes.predictive import predictive


def _draws(sizes, num, gen, bias=True):
    return [(torch.randn(num, a, b, generator=gen),
             torch.randn(num, 1, b, generator=gen) if bias else None)
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)]


def _reference(x, draws):
    """The same network in float64, one plain matmul per layer: (S, n, out)."""
    h = x.double()
    for i, (w, b) in enumerate(draws):
        h = h @ w.double() + (0 if b is None else b.double())
        h = h.relu() if i < len(draws) - 1 else h
    return h


def _weights(draws):
    last = len(draws) - 1
    return [augmented(w, b, ones=i < last) for i, (w, b) in enumerate(draws)]


def _pass(x, draws, **kwargs):
    out = torch.empty((draws[0][0].shape[0], x.shape[0], draws[-1][0].shape[-1]),
                      dtype=torch.float64)
    return block_pass(x, _weights(draws), out, **kwargs)


@pytest.mark.parametrize(("sizes", "n", "bias"), [
    ((1, 20, 20, 1), 150, True), ((3, 7, 2), 1, True), ((5, 4), 65, True),
    ((2, 9, 9, 3), 33, False), ((40, 50, 1), 200, True),
])
def test_block_pass_computes_the_network(gen, sizes, n, bias):
    draws = _draws(sizes, 13, gen, bias)
    x = torch.randn(n, sizes[0], generator=gen)
    got = _pass(x, draws, cells=BLOCK_ROWS * 3 * max(sizes))  # several draws per step
    ref = _reference(x, draws)
    assert got.dtype == torch.float64 and got.shape == ref.shape
    # float32 arithmetic against float64: a few ulps of the activations' magnitude
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def test_ones_row_passes_the_bias_on_exactly(gen):
    draws = _draws((4, 6, 2), 3, gen)
    weights = [augmented(w, b, ones=i == 0) for i, (w, b) in enumerate(draws)]
    assert weights[0].shape == (3, 7, 5) and weights[1].shape == (3, 2, 7)
    assert torch.equal(weights[0][:, 6], torch.tensor([0.0, 0, 0, 0, 1]).expand(3, 5))
    assert torch.equal(weights[0][:, :6, 4], draws[0][1][:, 0])  # the bias column
    assert torch.equal(augmented(draws[1][0], None, ones=False)[:, :, 6], torch.zeros(3, 2))


def test_rows_are_bitwise_independent_of_the_batch(gen):
    draws = _draws((1, 20, 20, 1), 50, gen)
    if not block_pass_independent(_weights(draws)):
        pytest.skip("this machine's matrix product is not column-independent (float64 used)")
    x = torch.randn(150, 1, generator=gen)
    full = _pass(x, draws)
    for i in (0, 1, 31, 32, 33, 149):  # each row alone, in every position of a block
        assert torch.equal(_pass(x[i : i + 1], draws), full[:, i : i + 1])
    perm = torch.randperm(150, generator=gen)
    assert torch.equal(_pass(x[perm], draws), full[:, perm])
    assert torch.equal(_pass(x[40:77], draws), full[:, 40:77])


def test_model_predictions_are_bitwise_batch_invariant(gen, monkeypatch):
    model = BayesianMLP(3, (16, 8), head="heteroscedastic", init_rho=-2.0, generator=gen)
    x = torch.randn(70, 3, generator=gen)
    calls = []
    real = rowblocks.block_pass
    monkeypatch.setattr("varbayes.models.bayesian.block_pass",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    full = predictive(model, x, 64, generator=torch.Generator().manual_seed(5))
    exact = bool(calls)  # the block pass ran: checked bitwise invariant on this machine
    for i in (0, 33, 69):
        one = predictive(model, x[i : i + 1], 64, generator=torch.Generator().manual_seed(5))
        if exact:
            assert torch.equal(one.loc[:, 0], full.loc[:, i])
            assert torch.equal(one.scale[:, 0], full.scale[:, i])
        else:  # the float64 pass
            assert torch.allclose(one.loc[:, 0], full.loc[:, i], rtol=1e-13, atol=1e-13)


def skewed_mm(real_mm, a, b, **kwargs):
    out = real_mm(a, b, **kwargs)
    out[:, 0] = out[:, 0] * (1 + 2.0**-20)
    return out


def test_a_column_dependent_kernel_is_caught_and_float64_used(gen, monkeypatch):
    real_bmm = torch.bmm

    def skewed(a, b, **kwargs):  # a kernel whose first column rounds differently
        out = real_bmm(a, b, **kwargs)
        out[..., 0] = out[..., 0] * (1 + 2.0**-20)
        return out

    monkeypatch.setattr(rowblocks, "_VERDICTS", {})
    monkeypatch.setattr(rowblocks.torch, "bmm", skewed)
    assert not rows_independent(21, 21, torch.float32)
    assert rows_independent(21, 2, torch.float32, stacked=7) in (True, False)  # mm: unskewed
    monkeypatch.setattr(rowblocks.torch, "bmm", real_bmm)
    real_mm = torch.mm
    monkeypatch.setattr(rowblocks.torch, "mm", lambda a, b, **k: skewed_mm(real_mm, a, b, **k))
    assert not rows_independent(21, 2, torch.float32, stacked=3)
    monkeypatch.setattr(rowblocks.torch, "mm", real_mm)
    model = BayesianMLP(1, (21,), generator=gen)
    model.eval()
    calls = []
    monkeypatch.setattr("varbayes.models.bayesian.block_pass",
                        lambda *a, **k: calls.append(1))
    rowblocks._VERDICTS[(1, 22, 0, torch.float32, "cpu", torch.get_num_threads())] = False
    with torch.no_grad():
        out = model(torch.randn(5, 1, generator=gen), 10, generator=gen)
    assert not calls and out.loc.dtype == torch.float64 and torch.isfinite(out.loc).all()


def test_the_check_is_cached_per_shape_and_thread_count(monkeypatch):
    monkeypatch.setattr(rowblocks, "_VERDICTS", {})
    assert rows_independent(5, 3, torch.float64) in (True, False)
    key = (5, 3, 0, torch.float64, "cpu", torch.get_num_threads())
    assert rows_independent(5, 3, torch.float64, stacked=4) in (True, False)
    assert (5, 3, 4, torch.float64, "cpu", torch.get_num_threads()) in rowblocks._VERDICTS
    assert key in rowblocks._VERDICTS
    rowblocks._VERDICTS[key] = False  # the cached answer is the one given
    assert rows_independent(5, 3, torch.float64) is False


def test_weights_drawn_into_the_buffer_are_the_plain_draws(gen):
    layer = BayesLinear(7, 5, init_rho=-1.0, generator=gen)
    state = torch.Generator().manual_seed(9).get_state()
    with torch.no_grad():
        w, b = layer.sample_weights(30, torch.Generator().set_state(state))
        aug, wv, bv = augmented_buffer(30, 7, 5, True, torch.float32)
        got = layer.sample_weights(30, torch.Generator().set_state(state), out=(wv, bv))
    assert got[0] is wv and torch.equal(wv, w) and torch.equal(bv, b)  # bit for bit
    assert torch.equal(aug, augmented(w, b, ones=True))
