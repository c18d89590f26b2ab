"""The speed benchmark's peers (Pyro, bayesian-torch): trained on the task, or skipped."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from varbayes.benchmarks.peers import PEERS, SIZES, Peer
from varbayes.benchmarks.speed import format_speed_table, run_speed_benchmark


def test_a_missing_peer_is_skipped_with_a_note_naming_its_package(monkeypatch):
    absent = Peer("no_such_module_varbayes", "no-such-dist", *(lambda *a: None,) * 3)
    monkeypatch.setitem(PEERS, "bayesian-torch", absent)
    assert absent.missing() == ("no-such-dist is not installed "
                                "(pip install 'varbayes[bench]')")
    report = run_speed_benchmark((150,), quick=True, implementations=("bayesian-torch",))
    (row,) = report["results"]
    assert row["skipped"] == absent.missing()
    assert "skipped: no-such-dist is not installed" in format_speed_table(report)


@pytest.mark.skipif(importlib.util.find_spec("bayesian_torch") is None,
                    reason="bayesian-torch is not installed (the bench extra)")
def test_bayesian_torch_peer_learns_the_task():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny autograd steps: a second thread only stalls them
    try:
        _check_bayesian_torch()
    finally:
        torch.set_num_threads(threads)


def _check_bayesian_torch():
    peer = PEERS["bayesian-torch"]
    assert peer.missing() is None
    torch.manual_seed(0)
    x = torch.linspace(-2, 2, 64)[:, None]
    y = torch.sin(2 * x[:, 0])
    seconds, fitted = peer.train(x, y, 300, 64)
    assert seconds > 0
    draws = peer.samples(fitted, x, 40)
    assert draws.shape == (40, 64)
    assert not torch.equal(draws[0], draws[1])  # weights drawn in every pass
    # 300 full-batch steps bring the predictive mean near the target (untrained error ~0.7)
    assert float((draws.mean(0) - y).abs().mean()) < 0.3
    n_params = sum(a * b + b for a, b in zip(SIZES[:-1], SIZES[1:], strict=True))
    kl = peer.kl(fitted)
    assert kl > 0 and sum(p.numel() for p in fitted.parameters()) == 2 * n_params
