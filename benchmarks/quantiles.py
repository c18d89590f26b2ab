"""Issue 12, items 1-2: mixture quantiles and CRPS, the 0.1 algorithms against the new ones.

    PYTHONPATH=src python benchmarks/quantiles.py [--rows 2000] [--samples 1000] [--repeats 3]

Fits a ``hetero`` model on the post's toy data, draws its predictive at ``rows`` inputs, and
times, in this one process, interleaved and keeping each one's fastest run:

* the three quantiles of ``varbayes predict`` (0.05, 0.5, 0.95): the 0.1 bisection
  (``tests/_bisection.py``, on one thread) against ``mixture_quantile`` on one thread and on
  all of them, with the largest difference in units of the working dtype's resolution;
* the CRPS at S draws on 200 rows: every pair (exact, O(S^2)), the 0.1 default (pair term from
  256 components) and the new exact one, with their relative errors.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _bisection import bisection_quantile  # type: ignore[import-not-found]  # noqa: E402
from varbayes import metrics  # noqa: E402
from varbayes.data import load_toy  # noqa: E402
from varbayes.kinds import fit  # noqa: E402
from varbayes.kinds.registry import LEGACY_HETERO  # noqa: E402
from varbayes.metrics import crps_mixture  # noqa: E402
from varbayes.predictive.quantile import mixture_quantile  # noqa: E402


def _best(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    toy = load_toy()
    fitted, _ = fit("hetero", toy.x_train, toy.y_train[:, 0], epochs=300,
                    generator=torch.Generator().manual_seed(0), **LEGACY_HETERO)
    x = np.random.default_rng(1).uniform(toy.x_train.min(), toy.x_train.max(), (args.rows, 1))
    pred = fitted.predict(x, args.samples, generator=torch.Generator().manual_seed(0))
    loc, scale = pred.loc, pred.scale
    q = torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64)
    tol = 4 * torch.finfo(torch.float32).eps
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    times = _best({
        "bisection (0.1), 1 thread": lambda: bisection_quantile(loc, scale, q, torch.float32),
        "halley, 1 thread": lambda: mixture_quantile(loc, scale, q, tol=tol, threads=1),
        f"halley, {threads} threads": lambda: mixture_quantile(loc, scale, q, tol=tol,
                                                               threads=threads),
    }, args.repeats)
    torch.set_num_threads(threads)
    ref = bisection_quantile(loc, scale, q, torch.float64)
    got = mixture_quantile(loc, scale, q, tol=tol)
    spread = (scale.square().mean(0) + loc.var(0, correction=0)).sqrt()
    err = float(((got - ref).abs() / (spread * tol)).max())
    base = times["bisection (0.1), 1 thread"]
    print(f"quantiles 0.05/0.5/0.95 of {args.rows:,} rows x {args.samples} draws "
          f"(torch {torch.__version__}, {threads} threads)")
    for name, sec in times.items():
        print(f"  {name:<28} {sec:8.3f} s   {base / sec:6.1f}x")
    print(f"  largest |halley - float64 bisection| = {err:.3f} x the float32 resolution")

    y = pred.mean[:200] + pred.std[:200] * torch.randn(200, generator=torch.Generator()
                                                      .manual_seed(2), dtype=torch.float64)
    sub_loc, sub_scale = loc[:, :200], scale[:, :200]
    values: dict[str, float] = {}
    def all_pairs() -> float:
        first = metrics._a(y - sub_loc, sub_scale.square()).mean(0)
        return float((first - metrics._spread_term_pairs(sub_loc.t(), sub_scale.t())).mean())

    fns = {"all pairs (exact)": lambda: values.__setitem__("all pairs (exact)", all_pairs()),
           "256 components (0.1)": lambda: values.__setitem__(
               "256 components (0.1)", crps_mixture(y, sub_loc, sub_scale,
                                                    max_pair_components=256)),
           "spread integral (new)": lambda: values.__setitem__(
               "spread integral (new)", crps_mixture(y, sub_loc, sub_scale))}
    times = _best(fns, 1)
    exact = values["all pairs (exact)"]
    print(f"CRPS of 200 rows x {args.samples} draws")
    for name, sec in times.items():
        print(f"  {name:<28} {sec:8.3f} s   rel. error {abs(values[name] - exact) / exact:.1e}")


if __name__ == "__main__":
    main()
