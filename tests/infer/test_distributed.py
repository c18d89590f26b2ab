"""Data-parallel training under torchrun (issue 6).

The multi-process tests launch ``python -m torch.distributed.run --nproc_per_node=2`` on
127.0.0.1 (gloo, CPU), each launch in its own session with a hard timeout, and kill whatever is
left of the session afterwards. This file is also the worker script of those launches
(``--worker``): the workers write JSON, the test process checks it against single-process
computations.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import varbayes
from varbayes.infer import ELBO
from varbayes.infer.distributed import (
    DistributedMode,
    ShardedBatches,
    ddp_training,
    get_rank,
    get_world_size,
    is_main_process,
    launch_info,
    process_group,
    rank_generator,
    rank_seed,
)
from varbayes.kinds import fit
from varbayes.models import BayesianMLP

WORLD = 2
LAUNCH_TIMEOUT = 120  # seconds, per launch
N_GLOBAL = 1000  # the "global data size" of the gradient check (larger than its batch)
SEED = 1234
FIT = dict(epochs=40, batch_size=100, lr=0.01)

# --------------------------------------------------------------------------- shared problems


class _MeanPath(nn.Module):
    """Run a BayesianMLP at its posterior means (no sampling noise); the KL is still returned."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x, num_samples=1, *, generator=None, sample=True, kl=None):
        return self.inner(x, num_samples, generator=generator, sample=False, kl=kl)


def _grad_problem():
    """A float64 model and a global batch of 16 rows; rank r takes rows [8r, 8r + 8)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, generator=g, dtype=torch.float64)
    y = torch.sin(x.sum(1)) + 0.1 * torch.randn(16, generator=g, dtype=torch.float64)
    model = BayesianMLP(3, (8,), head="heteroscedastic", estimator="local", init_rho=-3.0,
                        generator=torch.Generator().manual_seed(1)).double()
    return model, x, y


def _rank_rows(r):
    return slice(8 * r, 8 * r + 8)


def _fit_data(n, seed):
    g = np.random.default_rng(seed)
    x = g.uniform(-3, 3, size=(n, 1))
    y = np.sin(x[:, 0]) * 2 + (0.2 + 0.3 * np.abs(x[:, 0])) * g.normal(size=n)
    return x, y


def _test_nll(fitted, x, y):
    pred = fitted.predict(x, 200, generator=torch.Generator().manual_seed(7))
    return float(-pred.log_prob(torch.as_tensor(y, dtype=torch.float32)).mean())


def _grads(model):
    return [p.grad.detach().clone() for p in model.parameters()]


# --------------------------------------------------------------------------- the worker


def _worker(out: Path) -> None:
    """Run under torchrun: the gradient checks and a 2-process fit; write rank<r>.json."""
    torch.set_num_threads(1)
    with process_group("auto", timeout=60) as parallel:
        assert parallel
        import torch.distributed as dist

        from varbayes.infer.distributed import wrap_model

        rank = get_rank()
        result: dict = {"rank": rank, "world_size": get_world_size(),
                        "is_main": is_main_process()}
        model, x, y = _grad_problem()
        rows = _rank_rows(rank)
        for name in ("mean", "sampled"):
            net = _MeanPath(model) if name == "mean" else model
            ddp = wrap_model(net)
            gen = rank_generator(SEED, rank)
            model.zero_grad(set_to_none=True)
            terms = ELBO(N_GLOBAL)(ddp, x[rows], y[rows], generator=gen)
            terms.loss.backward()
            loss = terms.loss.detach().clone()
            dist.all_reduce(loss)
            result[name] = {"loss": float(loss) / WORLD,
                            "grads": [g.reshape(-1).tolist() for g in _grads(model)]}
        # The whole training loop, as users call it (auto-detects the launch).
        xtr, ytr = _fit_data(1000, 0)
        xte, yte = _fit_data(1000, 1)
        fitted, history = fit("hetero", xtr, ytr, generator=torch.Generator().manual_seed(0),
                              **FIT)
        result["fit"] = {"test_nll": _test_nll(fitted, xte, yte), "loss": history.loss,
                         "params": [p.detach().reshape(-1).tolist()
                                    for p in fitted.model.parameters()]}
        again, _ = fit("hetero", xtr, ytr, generator=torch.Generator().manual_seed(0),
                       **FIT | {"epochs": 3})
        again2, _ = fit("hetero", xtr, ytr, generator=torch.Generator().manual_seed(0),
                        **FIT | {"epochs": 3})
        result["reproducible"] = all(
            torch.equal(a, b)
            for a, b in zip(again.model.parameters(), again2.model.parameters(), strict=True)
        )
    (out / f"rank{rank}.json").write_text(json.dumps(result))


# --------------------------------------------------------------------------- launching


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(varbayes.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    if sys.platform.startswith("linux") and "GLOO_SOCKET_IFNAME" not in env:
        if "lo" in {name for _, name in socket.if_nameindex()}:
            env["GLOO_SOCKET_IFNAME"] = "lo"  # gloo on loopback
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def torchrun(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=2`` on 127.0.0.1 with a hard timeout; no process survives."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}",
           "--nnodes=1", "--master-addr=127.0.0.1", f"--master-port={_free_port()}",
           "--max-restarts=0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), cwd=cwd, start_new_session=True)
    left_behind = False
    try:
        out, err = proc.communicate(timeout=LAUNCH_TIMEOUT)
        deadline = time.monotonic() + 5
        while _session_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        left_behind = _session_alive(proc.pid)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun did not finish within {LAUNCH_TIMEOUT}s:\n{err[-3000:]}")
    finally:
        try:  # the session leader is gone; kill any worker it left behind
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    assert not left_behind, "torchrun exited but left processes of its session running"
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _session_alive(pgid: int) -> bool:
    """Whether a process of the session (process group) ``pgid`` still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="module")
def worker_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    proc = torchrun(__file__, "--worker", str(out))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]


# --------------------------------------------------------------------------- single process


def test_sharded_batches_cover_the_data_in_equal_batches():
    for n, batch in [(10, 4), (1001, 100), (7, None), (3, 1), (1, 5)]:
        shards = [ShardedBatches(n, batch, rank=r, world_size=3, seed=5) for r in range(3)]
        for epoch in range(2):
            per_rank = [s.epoch(epoch) for s in shards]
            assert len({len(b) for b in per_rank}) == 1  # same number of steps on every rank
            for step in zip(*per_rank, strict=True):
                assert len({len(b) for b in step}) == 1  # same batch size on every rank
            seen = torch.cat([torch.cat(b) for b in per_rank])
            assert set(seen.tolist()) == set(range(n))
            assert len(seen) - n < 3  # padding of at most world_size - 1 rows
        global_batch = n if batch is None else min(batch, n)
        assert shards[0].local_batch_size == min(shards[0].shard_size,
                                                 math.ceil(global_batch / 3))
    a, b = ShardedBatches(100, 10, rank=0, world_size=2, seed=1), \
        ShardedBatches(100, 10, rank=0, world_size=2, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.epoch(3), b.epoch(3), strict=True))
    assert not torch.equal(torch.cat(a.epoch(0)), torch.cat(a.epoch(1)))  # set_epoch reshuffles


def test_sharded_indices_are_those_of_distributed_sampler():
    for n, world, batch in [(10, 3, 4), (7, 2, None), (2, 5, 1), (1001, 4, 10)]:
        for rank in range(world):
            shard = ShardedBatches(n, batch, rank=rank, world_size=world, seed=9)
            for epoch in (0, 3):
                shard.sampler.set_epoch(epoch)
                assert shard.indices().tolist() == list(shard.sampler)


def test_rank_seeds_differ_per_rank_and_are_reproducible():
    assert rank_seed(3, 0) == rank_seed(3, 0)
    assert len({rank_seed(3, r) for r in range(8)} | {rank_seed(4, 0)}) == 9
    a = torch.randn(5, generator=rank_generator(3, 1))
    assert torch.equal(a, torch.randn(5, generator=rank_generator(3, 1)))
    assert not torch.equal(a, torch.randn(5, generator=rank_generator(3, 0)))
    with pytest.raises(ValueError, match=">= 0"):
        rank_seed(-1, 0)


def test_without_torchrun_everything_stays_single_process(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert launch_info() is None and get_rank() == 0 and get_world_size() == 1
    assert is_main_process()
    with process_group("auto") as parallel:
        assert parallel is False
    model = BayesianMLP(1, (4,))
    assert ddp_training(model, n=10, batch_size=None, generator=None, device="cpu") is None
    with pytest.raises(RuntimeError, match="torchrun"):
        with process_group("on"):
            pass
    with pytest.raises(ValueError, match="distributed mode"):
        with process_group("sometimes"):
            pass


def test_launch_info_reads_and_checks_the_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert tuple(launch_info()) == (1, 4, 1)
    assert not is_main_process() and get_world_size() == 4
    assert ddp_training(BayesianMLP(1, (4,)), n=10, batch_size=None, generator=None,
                        device="cpu", mode=DistributedMode.OFF) is None
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK < WORLD_SIZE"):
        launch_info()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="RANK='x'"):
        launch_info()


# --------------------------------------------------------------------------- two processes


@pytest.mark.distributed
def test_ddp_elbo_and_gradients_equal_one_process_over_the_global_batch(worker_results):
    """Mean path (no noise): exact equality with the single-process ELBO on all 16 rows."""
    model, x, y = _grad_problem()
    terms = ELBO(N_GLOBAL)(_MeanPath(model), x, y)
    terms.loss.backward()
    expected, loss = _grads(model), float(terms.loss.detach())
    for res in worker_results:
        assert res["mean"]["loss"] == pytest.approx(loss, rel=1e-12, abs=1e-12)
        for got, want in zip(res["mean"]["grads"], expected, strict=True):
            np.testing.assert_allclose(got, want.reshape(-1).numpy(), rtol=1e-10, atol=1e-12)
    # The check is sharp: counting the KL once per rank (each rank using N / R) would fail it.
    model.zero_grad()
    wrong = ELBO(N_GLOBAL // WORLD)(_MeanPath(model), x, y)
    wrong.loss.backward()
    gap = max(float((a - b).abs().max()) for a, b in zip(_grads(model), expected, strict=True))
    assert gap > 1e-4


@pytest.mark.distributed
def test_ddp_gradients_with_per_rank_noise_average_the_ranks(worker_results):
    """Sampled path: each rank's noise comes from rank_generator(seed, rank); DDP averages."""
    model, x, y = _grad_problem()
    losses, grads = [], []
    for r in range(WORLD):
        model.zero_grad(set_to_none=True)
        terms = ELBO(N_GLOBAL)(model, x[_rank_rows(r)], y[_rank_rows(r)],
                               generator=rank_generator(SEED, r))
        terms.loss.backward()
        losses.append(float(terms.loss.detach()))
        grads.append(_grads(model))
    expected = [sum(gs) / WORLD for gs in zip(*grads, strict=True)]
    for res in worker_results:
        assert res["sampled"]["loss"] == pytest.approx(np.mean(losses), rel=1e-12)
        for got, want in zip(res["sampled"]["grads"], expected, strict=True):
            np.testing.assert_allclose(got, want.reshape(-1).numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.distributed
def test_two_process_fit_matches_one_process_fit(worker_results):
    """A 2-process fit is as good as a 1-process one: test NLL within 0.05 nats of two seeds' mean.

    Deterministic under the fixed seeds. With fresh ones, the seed-to-seed spread of one-process
    fits (about 0.01 nats here) makes the difference of one fit and the mean of two spread by
    0.01 * sqrt(1.5) = 0.012, so 0.05 is 4.1 standard deviations: false-positive rate 4.5e-5
    (normal approximation, taking the 0.01 spread as exact).
    """
    r0, r1 = worker_results
    assert (r0["rank"], r0["world_size"], r0["is_main"]) == (0, WORLD, True)
    assert (r1["rank"], r1["is_main"]) == (1, False)
    # DDP keeps the replicas identical, and the epoch diagnostics are the same on every rank.
    assert r0["fit"]["params"] == r1["fit"]["params"]
    assert r0["fit"]["loss"] == r1["fit"]["loss"]
    assert r0["reproducible"] and r1["reproducible"]
    xtr, ytr = _fit_data(1000, 0)
    xte, yte = _fit_data(1000, 1)
    single, threads = [], torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker; a tiny model gains nothing from more threads
    try:
        for seed in (0, 1):
            fitted, _ = fit("hetero", xtr, ytr, generator=torch.Generator().manual_seed(seed),
                            **FIT)
            single.append(_test_nll(fitted, xte, yte))
    finally:
        torch.set_num_threads(threads)
    # Within noise: seed-to-seed spread of one-process fits is ~0.01 nats here.
    print("test NLL: 2 processes", r0["fit"]["test_nll"], "1 process", single)
    assert abs(r0["fit"]["test_nll"] - np.mean(single)) < 0.05, (r0["fit"]["test_nll"], single)


@pytest.mark.distributed
def test_torchrun_cli_fit_then_predict(tmp_path):
    from varbayes.cli import main

    x, y = _fit_data(400, 3)
    data = tmp_path / "train.csv"
    with open(data, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["x", "y"])
        writer.writerows(zip(x[:, 0].tolist(), y.tolist(), strict=True))
    model_dir = tmp_path / "model"
    proc = torchrun("-m", "varbayes", "fit", str(data), "--target", "y", "--epochs", "20",
                    "--batch-size", "50", "--samples", "50", "--out", str(model_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("trained hetero on 400 rows") == 1  # rank 0 only
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "model.safetensors"]
    assert not list(tmp_path.glob("**/*.tmp"))
    inp = tmp_path / "x.csv"
    inp.write_text("x\n-2\n0\n2.5\n")
    assert main(["predict", str(model_dir), str(inp), "--out", str(tmp_path / "p.csv")]) == 0
    with open(tmp_path / "p.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:4] == ["x", "mean", "std", "lower"] and len(rows) == 4


# --------------------------------------------------------------------------- streaming predict


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    from varbayes import io
    from varbayes.data import load_toy

    toy = load_toy()
    fitted, _ = fit("hetero", toy.x_train, toy.y_train[:, 0], epochs=30,
                    generator=torch.Generator().manual_seed(0), feature_names=["x"],
                    target_name="y")
    path = tmp_path_factory.mktemp("stream") / "model"
    io.save(fitted, path)
    return path, fitted


def _small_chunks(monkeypatch, samples):
    import varbayes.data.csvstream as cs

    monkeypatch.setattr(cs, "SAMPLE_CELLS", 7 * samples)  # 7 rows per chunk
    monkeypatch.setattr(cs, "ACTIVATION_CELLS", 3 * samples * 20)  # 3 rows per forward pass
    assert cs.predict_chunk_rows(samples, 20) == (7, 3)


def test_streamed_predict_equals_one_pass_prediction(small_model, tmp_path, monkeypatch, capsys):
    from varbayes.cli import main

    path, fitted = small_model
    _small_chunks(monkeypatch, 20)
    x = np.linspace(-20, 60, 50)
    inp = tmp_path / "in.csv"
    with open(inp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "x", "note"])
        for i, v in enumerate(x):
            writer.writerow([f"r{i}", repr(float(v)), "a,b" if i % 9 == 0 else ""])
            if i % 10 == 0:
                fh.write("\n")  # blank lines are skipped, as by read_csv
    out = tmp_path / "out.csv"
    assert main(["predict", str(path), str(inp), "--samples", "20", "--seed", "4",
                 "--out", str(out)]) == 0
    assert "wrote 50 predictions" in capsys.readouterr().err
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", "x", "note", "mean", "std", "lower", "median", "upper",
                       "aleatoric_std", "epistemic_std"]
    assert [r[0] for r in rows[1:]] == [f"r{i}" for i in range(50)]
    assert rows[1][2] == "a,b"
    got = np.array([[float(v) for v in r[3:]] for r in rows[1:]])
    pred = fitted.predict(x[:, None], 20, generator=torch.Generator().manual_seed(4))
    lower, upper = pred.interval(0.9)
    want = torch.stack([pred.mean, pred.std, lower, pred.quantile(0.5), upper,
                        pred.aleatoric_var.sqrt(), pred.epistemic_var.sqrt()], 1).double()
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_bad_cell_in_a_late_chunk_leaves_no_output(small_model, tmp_path, monkeypatch, capsys):
    from varbayes.cli import main

    path, _ = small_model
    _small_chunks(monkeypatch, 20)
    inp = tmp_path / "in.csv"
    inp.write_text("x\n" + "".join(f"{v}\n" for v in range(40)) + "oops\n1\n")
    out = tmp_path / "out.csv"
    assert main(["predict", str(path), str(inp), "--samples", "20", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "row 42, column 'x': value 'oops' is not a number" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # no partial or temp file


@pytest.mark.parametrize(
    "text",
    [
        "", "x\n", "x;y\n1;2\n", "1,2\n3,4\n", "x,x\n1,2\n", "x,\n1,2\n", "x,y\n1\n",
        "x,y\n1,2\n,3\n", "x,y\n1,2\nabc,3\n", "x,y\n1,2\ninf,3\n", "y\n1\n",
    ],
)
def test_stream_reader_reports_what_read_csv_reports(tmp_path, text):
    from varbayes.data import read_csv
    from varbayes.data.csvstream import CSVChunkReader

    path = tmp_path / "in.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as expected:
        read_csv(path, features=["x"])
    with pytest.raises(ValueError) as got:
        with CSVChunkReader(path, ["x"], chunk_rows=1) as reader:
            list(reader.chunks())
    assert str(got.value) == str(expected.value)


def test_chunk_sizes_bound_the_memory_of_a_chunk():
    from varbayes.data.csvstream import (
        ACTIVATION_CELLS,
        MAX_CHUNK_ROWS,
        SAMPLE_CELLS,
        predict_chunk_rows,
    )

    for samples, width in [(1, 1), (10, 50), (1000, 20), (10**6, 100)]:
        chunk, forward = predict_chunk_rows(samples, width)
        assert 1 <= forward <= chunk <= MAX_CHUNK_ROWS
        assert chunk == 1 or chunk * samples <= SAMPLE_CELLS
        assert forward == 1 or forward * samples * width <= ACTIVATION_CELLS


if __name__ == "__main__":  # the torchrun worker
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker(Path(sys.argv[2]))
    else:
        sys.exit(
            "usage: torchrun --nproc_per_node=2 tests/infer/test_distributed.py --worker OUT_DIR"
        )
