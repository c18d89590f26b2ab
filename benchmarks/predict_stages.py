"""CPU time per stage of ``varbayes predict``'s loop, per row, on one thread.

    PYTHONPATH=src python benchmarks/predict_stages.py MODEL INPUT.csv [--rows 50000]
    PYTHONPATH=src python benchmarks/predict_stages.py MODEL IN.csv --against OTHER/src --rounds 3

Runs the loop of ``varbayes predict`` (the same reader, ``predict_calibrated``,
``prediction_columns`` and writer, with the CLI's chunk sizes) serially on one thread and
charges the thread's CPU clock (``time.thread_time``) to each stage: reading and parsing a
chunk of the CSV, naming its rows (for error messages), the forward pass (weight draws, network,
map to data units, calibration), the quantile search, the other columns (mean, std, the
variance parts, the finiteness checks) and writing. It prints microseconds per row for each
stage. Wall times on a shared machine swing with the other jobs; CPU time much less.

``--against DIR`` measures another checkout too (its ``src`` folder, e.g. ``main``'s): each
round runs this script once per checkout in a fresh process, alternating, and the table shows
the median of the rounds for both and their ratio, so "before" and "after" come from one run.
The output file is written to a temporary folder and removed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STAGES = ("read", "row names", "forward", "quantiles", "other columns", "write")


def measure(model_dir: str, source: str, rows: int | None, level: float = 0.9,
            seed: int = 0) -> dict[str, Any]:
    """CPU seconds per stage of the CLI's predict loop over the first ``rows`` rows."""
    import torch

    from varbayes import io
    from varbayes._heap import keep_freed_memory
    from varbayes.data.csvstream import CSVChunkReader, CSVChunkWriter, predict_chunk_rows
    from varbayes.predictive.columns import COLUMNS, prediction_columns

    torch.set_num_threads(1)
    keep_freed_memory()
    fitted = io.load(model_dir)
    samples = int(io.read_config(Path(model_dir))["metadata"].get("num_samples", 1000))
    width = max([1, *fitted.config["hidden"], *(fitted.config.get("noise_hidden") or [])])
    chunk_rows, forward_rows = predict_chunk_rows(samples, width)
    out_names = [c for c in COLUMNS if fitted.has_epistemic or c != "epistemic_std"]
    cpu = dict.fromkeys(STAGES, 0.0)
    patched: dict[type, Any] = {}

    def timed_quantile(original: Any) -> Any:
        def quantile(self: Any, q: Any) -> Any:
            start = time.thread_time()
            try:
                return original(self, q)
            finally:
                cpu["quantiles"] += time.thread_time() - start
        return quantile

    fitted.model.eval()
    done = 0
    with tempfile.TemporaryDirectory() as tmp, \
            CSVChunkReader(source, fitted.feature_names, chunk_rows=chunk_rows) as reader, \
            CSVChunkWriter(Path(tmp) / "p.csv", [*reader.header, *out_names]) as writer:
        chunks = reader.chunks()
        start_all = time.thread_time()
        while rows is None or done < rows:
            t0 = time.thread_time()
            item = next(chunks, None)
            if item is None:
                break
            x, text = item
            t1 = time.thread_time()
            names = [f"{source}, row {n}" for n in reader.chunk_lines]
            t2 = time.thread_time()
            pred = fitted.predict_calibrated(
                x, samples, chunk_size=forward_rows,
                generator=torch.Generator(fitted.device).manual_seed(seed))
            t3 = time.thread_time()
            kind = type(pred)
            if kind not in patched:
                patched[kind] = kind.quantile
                kind.quantile = timed_quantile(kind.quantile)  # type: ignore[method-assign]
            q_before = cpu["quantiles"]
            cols = prediction_columns(pred, level, epistemic=fitted.has_epistemic,
                                      row_names=names)
            t4 = time.thread_time()
            writer.write(text, cols)
            t5 = time.thread_time()
            cpu["read"] += t1 - t0
            cpu["row names"] += t2 - t1
            cpu["forward"] += t3 - t2
            cpu["other columns"] += (t4 - t3) - (cpu["quantiles"] - q_before)
            cpu["write"] += t5 - t4
            done += len(x)
        total = time.thread_time() - start_all
    for kind, original in patched.items():
        kind.quantile = original  # type: ignore[method-assign]
    return {"rows": done, "samples": samples, "total_s": total, "stages_s": cpu}


def _table(results: dict[str, list[dict[str, Any]]]) -> str:
    labels = list(results)
    head = "| stage | " + " | ".join(f"{k} (µs/row)" for k in labels)
    head += " | ratio |" if len(labels) == 2 else " |"
    lines = [head, "|---|" + "---:|" * (len(labels) + (len(labels) == 2))]

    def med(label: str, stage: str | None) -> float:
        runs = results[label]
        return statistics.median(
            1e6 * (r["total_s"] if stage is None else r["stages_s"][stage]) / r["rows"]
            for r in runs)

    for stage in (*STAGES, None):
        vals = [med(k, stage) for k in labels]
        cells = " | ".join(f"{v:.2f}" for v in vals)
        ratio = f" | {vals[0] / vals[1]:.2f}x" if len(vals) == 2 and vals[1] > 0 else ""
        lines.append(f"| {stage or '**total**'} | {cells}{ratio} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("--rows", type=int, default=50_000, help="first rows of INPUT (0 = all)")
    ap.add_argument("--against", metavar="SRC", help="another checkout's src folder")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one child's result
    args = ap.parse_args()
    rows = args.rows or None
    if args.json:
        print(json.dumps(measure(args.model, args.input, rows)))
        return
    here = str(Path(__file__).resolve().parents[1] / "src")
    srcs = {"this": here} if args.against is None else {"before": args.against, "after": here}
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in srcs}
    for _ in range(args.rounds):
        for label, src in srcs.items():
            env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
            out = subprocess.run([sys.executable, __file__, args.model, args.input,
                                  "--rows", str(args.rows), "--json"],
                                 env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
            results[label].append(json.loads(out.strip().splitlines()[-1]))
    n = results[next(iter(results))][0]["rows"]
    load = os.getloadavg()
    print(f"varbayes predict loop, {n:,} rows x {results[next(iter(results))][0]['samples']} "
          f"draws, one thread, CPU µs per row, median of {args.rounds} round(s); "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(_table(results))


if __name__ == "__main__":
    main()
