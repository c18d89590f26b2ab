"""Speed benchmark of issue 3, and the time-to-quality study behind the default estimator.

1. ``python benchmarks/speed.py [--sizes 150,10000] [--quick] [--out FILE]`` runs
   :func:`varbayes.benchmarks.speed.run_speed_benchmark` (the same as ``varbayes benchmark speed``):
   varbayes against the post's straightforward implementation and Pyro, in one process.
2. ``python benchmarks/speed.py --estimators [--out FILE]`` trains the same model with each
   gradient estimator (``reparam``, ``local``, ``flipout``) for three seeds, each for the wall
   time ``reparam`` needs for the setting's epochs, and reports the epochs that bought, the
   final training loss and negative ELBO per point, and the wall time until the smoothed
   training loss first gets within 2% (of its range) of the best final value of all
   estimators: the numbers ``docs/performance.md`` uses to pick the default.

Run from the repository root with ``PYTHONPATH=src``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from varbayes._threads import intra_op_threads
from varbayes.benchmarks.speed import (
    _data,
    _quality,
    _varbayes_samples,
    format_speed_table,
    run_speed_benchmark,
)
from varbayes.infer import ELBO, train
from varbayes.kinds import build_model, make_config
from varbayes.kinds.registry import LEGACY_HETERO

#: (name, model kind, N, batch size or None, epochs)
SETTINGS = [
    ("post: bbb, N=150, full batch", "bbb", 150, None, 2000),
    ("hetero recipe, N=150, full batch", "hetero", 150, None, 1500),
    ("bbb, N=10000, batches of 500", "bbb", 10_000, 500, 40),
    ("bbb, N=100000, batches of 10000", "bbb", 100_000, 10_000, 30),
]
ESTIMATORS = ("reparam", "local", "flipout")


def _smooth(values, width=25):
    width = max(1, min(width, len(values) // 8))
    kernel = np.ones(width) / width
    padded = np.concatenate([np.full(width - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def _fit(kind, estimator, data, batch, epochs, seed, single_thread):
    legacy = LEGACY_HETERO if kind == "hetero" else {}  # one network, as performance.md timed
    config = make_config(kind, 1, estimator=estimator, **legacy)
    g = torch.Generator().manual_seed(seed)
    model = build_model(config, g)
    n = data["x"].shape[0]
    work = 0 if single_thread else (batch or n) * sum(p.numel() for p in model.parameters())
    with intra_op_threads(work):  # as in the speed benchmark
        hist = train(model, ELBO(n), data["x"], data["y"], epochs=epochs, lr=config["lr"],
                     batch_size=batch, generator=g)
    return model, hist


def estimator_study(seeds=(0, 1, 2), quick=False, single_thread=True):
    """Each estimator gets the wall time ``reparam`` needs for the setting's epochs."""
    rows = []
    for name, kind, n, batch, epochs in SETTINGS:
        epochs = max(2, epochs // 10) if quick else epochs
        data = _data(n)
        calib = max(2, min(epochs // 4, 200))
        per_epoch = {est: min(_fit(kind, est, data, batch, calib, 0, single_thread)[1].seconds
                              for _ in range(2)) / calib for est in ESTIMATORS}
        budget = per_epoch["reparam"] * epochs
        runs = {}
        for est in ESTIMATORS:
            est_epochs = max(2, round(budget / per_epoch[est]))
            for seed in seeds:
                model, hist = _fit(kind, est, data, batch, est_epochs, seed, single_thread)
                quality = {}
                if kind == "bbb":  # fixed noise 0.1: the speed benchmark's scorer applies
                    kl = float(model.kl_divergence().detach())
                    quality = _quality(lambda xs, s, m=model: _varbayes_samples(m, xs, s), kl,
                                       data, min(n, 10_000))
                runs.setdefault(est, []).append((hist, quality))
        best_final = min(float(np.mean([_smooth(np.array(h.loss))[-1] for h, _ in r]))
                         for r in runs.values())
        for est, r in runs.items():
            curves = [_smooth(np.array(h.loss)) for h, _ in r]
            span = max(float(np.max(c[0] - best_final)) for c in curves)
            target = best_final + 0.02 * span
            reach = []
            for (h, _), c in zip(r, curves, strict=True):
                hit = np.nonzero(c <= target)[0]
                reach.append(h.seconds * (hit[0] + 1) / len(c) if hit.size else float("inf"))
            seconds = float(np.mean([h.seconds for h, _ in r]))
            row = {"setting": name, "estimator": est, "epochs": len(r[0][0].loss),
                   "seconds": seconds, "ms_per_epoch": 1e3 * seconds / len(r[0][0].loss),
                   "final_loss": float(np.mean([c[-1] for c in curves])),
                   "seconds_to_target": float(np.median(reach))}
            if r[0][1]:
                row["neg_elbo_per_point"] = float(np.mean([q["neg_elbo_per_point"] for _, q in r]))
                row["test_nll"] = float(np.mean([q["test_nll"] for _, q in r]))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def _format_study(rows):
    lines = [f"{'setting':<34} {'estimator':<9} {'epochs':>6} {'ms/epoch':>9} {'final loss':>11}"
             f" {'s to target':>11} {'-ELBO/pt':>9} {'test NLL':>9}"]
    for r in rows:
        lines.append(f"{r['setting']:<34} {r['estimator']:<9} {r['epochs']:>6}"
                     f" {r['ms_per_epoch']:>9.3f}"
                     f" {r['final_loss']:>11.4f} {r['seconds_to_target']:>11.2f}"
                     f" {r.get('neg_elbo_per_point', float('nan')):>9.3f}"
                     f" {r.get('test_nll', float('nan')):>9.3f}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda t: tuple(int(v) for v in t.split(",")))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--estimators", action="store_true",
                        help="run the time-to-quality study of the estimators instead")
    parser.add_argument("--all-threads", action="store_true",
                        help="let varbayes pick intra-op threads by problem size (default: 1)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.estimators:
        rows = estimator_study(quick=args.quick, single_thread=not args.all_threads)
        print(_format_study(rows))
        report = {"estimator_study": rows}
    else:
        sizes = args.sizes or ((150, 1000) if args.quick else (150, 10_000, 100_000, 1_000_000))
        report = run_speed_benchmark(sizes, quick=args.quick, single_thread=not args.all_threads,
                                     log=lambda line: print(line, file=sys.stderr, flush=True))
        print(format_speed_table(report))
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
