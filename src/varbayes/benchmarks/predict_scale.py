"""The predict-at-scale row of ``varbayes benchmark speed``: many rows x 1000 posterior draws.

A ``hetero`` model (the CLI's default kind and size) is fitted briefly on the post's toy data,
then predicts ``rows`` inputs in the chunks ``varbayes predict`` streams, each reduced to the
columns of an interval and the median. The time is split into the forward pass (the draws of
the mixture components) and the quantile search, and the peak memory is reported, which stays
bounded by a chunk whatever the number of rows. No CSV is read or written. Like
``varbayes predict``, the run keeps freed memory in the heap (:mod:`varbayes._heap`): the
benchmark owns its process.
"""

from __future__ import annotations

import resource
import time
from typing import Any

import numpy as np
import torch

from varbayes._heap import keep_freed_memory
from varbayes.data import load_toy
from varbayes.data.csvstream import predict_chunk_rows
from varbayes.kinds import fit
from varbayes.kinds.registry import LEGACY_HETERO
from varbayes.predictive.columns import prediction_columns

__all__ = ["format_predict_scale", "run_predict_scale"]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def run_predict_scale(rows: int = 1_000_000, num_samples: int = 1000, *,
                      seed: int = 0) -> dict[str, Any]:
    """Time predicting ``rows`` rows with ``num_samples`` draws (interval + median).

    Returns
    -------
    dict
        ``rows``, ``samples``, ``seconds``, ``forward_seconds``, ``quantile_seconds``,
        ``rows_per_second``, ``peak_mb`` (growth of the peak resident memory during the run).
    """
    keep_freed_memory()
    toy = load_toy()
    fitted, _ = fit("hetero", toy.x_train, toy.y_train[:, 0], epochs=200,
                    generator=torch.Generator().manual_seed(seed), **LEGACY_HETERO)
    width = max([1, *fitted.config["hidden"], *(fitted.config.get("noise_hidden") or [])])
    chunk, forward_rows = predict_chunk_rows(num_samples, width)
    lo, hi = float(toy.x_train.min()), float(toy.x_train.max())
    rng = np.random.default_rng(seed)
    start_rss, forward, quantiles = _rss_mb(), 0.0, 0.0
    start = time.perf_counter()
    for first in range(0, rows, chunk):
        x = rng.uniform(lo, hi, size=(min(chunk, rows - first), 1))
        t0 = time.perf_counter()
        pred = fitted.predict(x, num_samples, chunk_size=forward_rows,
                              generator=torch.Generator().manual_seed(seed))
        t1 = time.perf_counter()
        prediction_columns(pred, 0.9, columns=["lower", "median", "upper"])
        forward, quantiles = forward + t1 - t0, quantiles + time.perf_counter() - t1
    seconds = time.perf_counter() - start
    return {"rows": int(rows), "samples": int(num_samples), "seconds": seconds,
            "forward_seconds": forward, "quantile_seconds": quantiles,
            "rows_per_second": rows / seconds, "peak_mb": _rss_mb() - start_rss,
            "threads": torch.get_num_threads()}


def format_predict_scale(row: dict[str, Any]) -> str:
    """One line: rows x samples, total, forward and quantile seconds, rows/s, peak MB."""
    return (f"predict at scale: {row['rows']:,} rows x {row['samples']} draws (interval + "
            f"median) in {row['seconds']:.2f} s (forward {row['forward_seconds']:.2f} s, "
            f"quantiles {row['quantile_seconds']:.2f} s; {row['rows_per_second']:,.0f} rows/s, "
            f"+{row['peak_mb']:.0f} MB peak)")
