"""The predictive of any network: batched draws, chunks of rows, a memory bound, the dispatch."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from _memguard import SUPPORTED, address_space_limit
from varbayes.models import BayesianMLP
from varbayes.nn import GaussianHead, bayesianize
from varbayes.predictive import predictive, sample_outputs
from varbayes.predictive.generic import chunk_plan


def _cnn() -> nn.Module:
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(64, 10))
    return bayesianize(net, init="default", generator=torch.Generator().manual_seed(0))


def _calls(module: nn.Module) -> list[int]:
    rows: list[int] = []
    module.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[0]))
    return rows


def test_chunk_plan() -> None:
    assert chunk_plan(100, 10, 50, 7, 10**9) == (50, 7)
    assert chunk_plan(100, 10, 50, 7, 50 * 10 + 50 * 100 * 2) == (50, 2)
    assert chunk_plan(100, 10, 50, 7, 300) == (2, 1)


def run_cnn(n: int, num: int, max_bytes: int) -> tuple[torch.Tensor, list[int], float]:
    net = _cnn()
    x = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    calls = _calls(net)
    start = time.perf_counter()
    with address_space_limit(max_bytes + (768 << 20)):
        out = sample_outputs(net, x, num, generator=torch.Generator().manual_seed(2),
                             max_bytes=max_bytes)
    return out, calls, time.perf_counter() - start


@pytest.mark.skipif(not SUPPORTED, reason="the address-space guard needs Linux")
def test_thousand_draws_of_a_cnn_in_chunks_of_rows_not_a_loop_over_draws() -> None:
    out, calls, _ = run_cnn(200, 1000, 64 << 20)
    assert out.shape == (1000, 200, 10) and torch.isfinite(out).all()
    probe, chunks = calls[0], calls[1:]
    assert probe == 1  # one row, one draw: the activation size
    assert all(c % 1000 == 0 for c in chunks)  # every call pushes all 1000 draws
    assert sum(chunks) == 1000 * 200
    assert out.std(0).mean() > 0


@pytest.mark.slow
def test_thousand_draws_on_thousand_images() -> None:
    out, calls, seconds = run_cnn(1000, 1000, 256 << 20)
    assert out.shape == (1000, 1000, 10) and all(c % 1000 == 0 for c in calls[1:])
    print(f"1000 draws x 1000 images: {seconds:.1f} s, {len(calls) - 1} chunks of rows")


def test_the_same_draws_for_every_row_whatever_the_chunks() -> None:
    net = _cnn()
    x = torch.randn(30, 1, 8, 8)
    whole = sample_outputs(net, x, 40, generator=torch.Generator().manual_seed(3))
    calls = _calls(net)
    parts = sample_outputs(net, x, 40, generator=torch.Generator().manual_seed(3),
                           max_bytes=2_500_000)  # all 40 draws, a few rows at a time
    assert len(calls) > 3 and all(c % 40 == 0 for c in calls[1:])
    torch.testing.assert_close(parts, whole)
    looped = sample_outputs(net, x, 40, generator=torch.Generator().manual_seed(3),
                            batched=False)
    assert looped.shape == whole.shape  # one draw at a time: other random numbers, same law


def test_predictive_dispatches_any_network_and_keeps_the_native_path() -> None:
    net = bayesianize(nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2)))
    model = nn.Sequential(net, GaussianHead())
    x = torch.randn(6, 2)
    pred = predictive(model, x, 50, generator=torch.Generator().manual_seed(0))
    assert pred.loc.shape == (50, 6) and (pred.scale > 0).all()
    again = predictive(model, x, 50, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(pred.loc, again.loc)
    with pytest.raises(TypeError, match="Gaussian head"):
        predictive(net, x, 5)
    with pytest.raises(ValueError, match="no variational layer"):
        predictive(nn.Sequential(nn.Linear(2, 1), GaussianHead("fixed")), x, 5)
    mlp = BayesianMLP(2, (4,))  # varbayes's own models keep their path
    assert predictive(mlp, x, 7).loc.dtype == torch.float64
