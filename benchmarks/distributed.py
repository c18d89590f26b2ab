"""Benchmark of issue 6: data-parallel training time and streaming-predict memory.

1. Training: seconds per epoch of the ``hetero`` recipe on synthetic data (default 1,000,000
   rows x 8 features, global batch 10,000), on one process (the default engine with 1 thread,
   the autograd loop that DDP runs with 1 and 2 threads) and on two processes launched by
   ``python -m torch.distributed.run --nproc_per_node=2`` (gloo, 1 thread each), with the
   held-out NLL of each fit as a sanity check.
2. Prediction: peak resident memory (``ru_maxrss`` of the child process) and wall time of
   ``varbayes predict`` on a CSV of many rows (default 1,000,000) with 1000 posterior samples,
   and on a CSV 1/10 the size, to show that memory does not grow with the number of rows.

Usage::

    PYTHONPATH=src python benchmarks/distributed.py --quick            # a few minutes
    PYTHONPATH=src python benchmarks/distributed.py --skip-predict     # training part only
    PYTHONPATH=src python benchmarks/distributed.py --out results.json # full size: the predict
                                       # part takes ~50 min on 2 cores (docs/distributed.md)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["main"]

FEATURES = 8
MEMORY_BOUND_MB = 1024  # the stated bound for streaming predict (peak RSS of the process)


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic heteroscedastic regression data: ``n`` rows of 8 features."""
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, FEATURES)).astype(np.float32)
    w = np.linspace(-1.0, 1.0, FEATURES, dtype=np.float32)
    signal_ = np.sin(x @ w) + 0.5 * x[:, 0] * x[:, 1]
    noise = 0.1 + 0.4 * np.abs(np.tanh(x[:, 2]))
    y = signal_ + noise * g.normal(size=n).astype(np.float32)
    return x, y.astype(np.float32)


# --------------------------------------------------------------------------- train worker


def _train_worker(args: argparse.Namespace) -> None:
    import torch

    from varbayes.infer.distributed import get_world_size, is_main_process, process_group
    from varbayes.kinds import fit
    from varbayes.kinds.registry import LEGACY_HETERO

    torch.set_num_threads(args.threads)
    engine = "autograd"
    if args.engine == "autograd":  # the loop DDP runs, on one process
        import functools
        import inspect

        import varbayes.kinds.members
        from varbayes.infer import train

        if "fast" in inspect.signature(train).parameters:  # the loop kinds.fit trains with
            varbayes.kinds.members.train = functools.partial(train, fast=False)  # type: ignore
    elif get_world_size() == 1:
        engine = "default (fast engine where supported)"
    x, y = make_data(args.rows, 0)
    xt, yt = make_data(10_000, 1)
    with process_group("auto", timeout=300) as parallel:
        world = get_world_size() if parallel else 1
        fitted, history = fit("hetero", x, y, generator=torch.Generator().manual_seed(0),
                              epochs=args.epochs, batch_size=args.batch_size, lr=0.01,
                              **LEGACY_HETERO)
    if is_main_process():
        pred = fitted.predict(xt, 100, generator=torch.Generator().manual_seed(1))
        nll = float(-pred.log_prob(torch.as_tensor(yt)).mean())
        result = {"processes": world, "threads_per_process": args.threads, "engine": engine,
                  "seconds_per_epoch": history.seconds / args.epochs,
                  "final_loss": history.loss[-1], "test_nll": nll}
        Path(args.result).write_text(json.dumps(result))


# --------------------------------------------------------------------------- launching


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[int, float, float]:
    """Run ``cmd`` in its own session; return (exit code, wall seconds, peak RSS MB of a child)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{cmd[:6]} ran past {timeout:.0f}s")
            time.sleep(0.05)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.returncode = os.waitstatus_to_exitcode(status)
    maxrss = usage.ru_maxrss / (1024 if sys.platform != "darwin" else 1024**2)
    return proc.returncode, time.perf_counter() - start, maxrss


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    src = str(Path(__file__).resolve().parent.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def bench_training(args: argparse.Namespace, work: Path) -> list[dict]:
    """Seconds per epoch on 1 process (1 and 2 threads) and on 2 processes (1 thread each)."""
    results = []
    common = ["--rows", str(args.rows), "--epochs", str(args.epochs),
              "--batch-size", str(args.batch_size)]
    for procs, threads, engine in [(1, 1, "default"), (1, 1, "autograd"), (1, 2, "autograd"),
                                   (2, 1, "autograd")]:
        out = work / f"train_{procs}x{threads}_{engine}.json"
        worker = [__file__, "--train-worker", "--threads", str(threads), "--result", str(out),
                  "--engine", engine, *common]
        if procs == 1:
            cmd = [sys.executable, *worker]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}",
                   "--master-addr=127.0.0.1", f"--master-port={_free_port()}", *worker]
        code, wall, _ = _run(cmd, _env(threads), timeout=args.timeout)
        if code != 0:
            raise RuntimeError(f"training run {procs}x{threads} failed with exit code {code}")
        res = json.loads(out.read_text()) | {"wall_seconds": wall}
        print(f"train {args.rows} rows, {procs} process(es) x {threads} thread(s), {engine}: "
              f"{res['seconds_per_epoch']:.2f} s/epoch, test NLL {res['test_nll']:.3f}",
              flush=True)
        results.append(res)
    return results


def _write_inputs(path: Path, n: int) -> None:
    x, _ = make_data(n, 2)
    header = ",".join(f"x{j}" for j in range(FEATURES))
    np.savetxt(path, x, delimiter=",", header=header, comments="", fmt="%.7g")


def bench_predict(args: argparse.Namespace, work: Path) -> list[dict]:
    """Peak RSS and wall time of streaming ``varbayes predict`` at two row counts."""
    import torch

    from varbayes import io
    from varbayes.kinds import fit
    from varbayes.kinds.registry import LEGACY_HETERO

    x, y = make_data(5000, 3)
    names = [f"x{j}" for j in range(FEATURES)]
    fitted, _ = fit("hetero", x, y, generator=torch.Generator().manual_seed(0), epochs=20,
                    batch_size=500, feature_names=names, target_name="y", **LEGACY_HETERO)
    model_dir = work / "model"
    io.save(fitted, model_dir, force=True)
    results = []
    for rows in (args.predict_rows // 10, args.predict_rows):
        inp = work / f"inputs_{rows}.csv"
        _write_inputs(inp, rows)
        cmd = [sys.executable, "-m", "varbayes", "predict", str(model_dir), str(inp),
               "--samples", str(args.samples), "--out", str(work / "pred.csv"), "--force"]
        code, wall, rss = _run(cmd, _env(args.predict_threads), timeout=args.timeout)
        if code != 0:
            raise RuntimeError(f"predict on {rows} rows failed with exit code {code}")
        res = {"rows": rows, "samples": args.samples, "threads": args.predict_threads,
               "peak_rss_mb": rss, "wall_seconds": wall, "bound_mb": MEMORY_BOUND_MB,
               "within_bound": rss < MEMORY_BOUND_MB}
        print(f"predict {rows} rows x {args.samples} samples: peak RSS {rss:.0f} MB "
              f"(bound {MEMORY_BOUND_MB} MB), {wall:.1f} s", flush=True)
        results.append(res)
        inp.unlink()
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--train-worker``, one training worker)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 100k training rows, 10k prediction rows")
    p.add_argument("--rows", type=int, default=1_000_000, help="training rows")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=10_000, help="global batch size")
    p.add_argument("--predict-rows", type=int, default=1_000_000)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--predict-threads", type=int, default=2)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-predict", action="store_true")
    p.add_argument("--timeout", type=float, default=4 * 3600.0, help="seconds per run")
    p.add_argument("--out", type=Path, help="JSON file for the results")
    p.add_argument("--train-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--engine", choices=["default", "autograd"], default="default",
                   help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.train_worker:
        _train_worker(args)
        return 0
    if args.quick:
        args.rows, args.predict_rows = 100_000, 10_000
    report: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                "python": platform.python_version()},
                    "command": " ".join([Path(sys.executable).name, *sys.argv])}
    with tempfile.TemporaryDirectory(prefix="varbayes-bench-") as tmp:
        if not args.skip_train:
            report["training"] = bench_training(args, Path(tmp))
        if not args.skip_predict:
            report["predict"] = bench_predict(args, Path(tmp))
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
