"""Issue 12, items 1-2: mixture quantiles and CRPS, the 0.1 algorithms against the new ones.

    PYTHONPATH=src python benchmarks/quantiles.py [--rows 2000] [--samples 1000] [--repeats 3]
        [--model DIR] [--against OTHER/src/varbayes/predictive/quantile.py] [--no-bisection]
        [--no-crps]

Fits a ``hetero`` model on the post's toy data (or loads ``--model``), draws its predictive at
``rows`` inputs, and times, in this one process, interleaved and keeping each one's fastest
run (``--against``: another checkout's solver as well, e.g. ``main``'s):

* the three quantiles of ``varbayes predict`` (0.05, 0.5, 0.95): the 0.1 bisection
  (``tests/_bisection.py``, on one thread) against ``mixture_quantile`` on one thread and on
  all of them, with the largest difference in units of the working dtype's resolution;
* the CRPS at S draws on 200 rows: every pair (exact, O(S^2)), the 0.1 default (pair term from
  256 components) and the new exact one, with their relative errors.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _bisection import bisection_quantile  # type: ignore[import-not-found]  # noqa: E402
from varbayes import io, metrics  # noqa: E402
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
    ap.add_argument("--model", help="a saved 1-feature model to predict with (default: a "
                    "hetero fit on the post's toy data); inputs uniform on [-4, 4]")
    ap.add_argument("--against", help="quantile.py of another checkout (e.g. main's): its "
                    "mixture_quantile timed in this process too, as 'previous'")
    ap.add_argument("--no-bisection", action="store_true", help="skip the 0.1 bisection")
    ap.add_argument("--no-crps", action="store_true", help="quantiles only")
    args = ap.parse_args()
    toy = load_toy()
    if args.model:
        fitted = io.load(args.model)
        x = np.random.default_rng(1).uniform(-4, 4, (args.rows, 1))
    else:
        fitted, _ = fit("hetero", toy.x_train, toy.y_train[:, 0], epochs=300,
                        generator=torch.Generator().manual_seed(0), **LEGACY_HETERO)
        x = np.random.default_rng(1).uniform(toy.x_train.min(), toy.x_train.max(),
                                             (args.rows, 1))
    pred = fitted.predict(x, args.samples, generator=torch.Generator().manual_seed(0))
    loc, scale = pred.loc, pred.scale
    q = torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64)
    tol = 4 * torch.finfo(torch.float32).eps
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    fns: dict[str, Callable[[], Any]] = {} if args.no_bisection else {
        "bisection (0.1), 1 thread": lambda: bisection_quantile(loc, scale, q, torch.float32)}
    solvers = {"halley": mixture_quantile}
    if args.against:
        spec = importlib.util.spec_from_file_location("previous_quantile", args.against)
        previous = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(previous)  # type: ignore[union-attr]
        solvers = {"previous": previous.mixture_quantile, **solvers}
    for name, solve in solvers.items():
        for th in (1, threads):
            fns[f"{name}, {th} thread{'s' if th > 1 else ''}"] = (
                lambda solve=solve, th=th: solve(loc, scale, q, tol=tol, threads=th))
    times = _best(fns, args.repeats)
    torch.set_num_threads(threads)
    spread = (scale.square().mean(0) + loc.var(0, correction=0)).sqrt()
    got = mixture_quantile(loc, scale, q, tol=tol)
    base = next(iter(times.values()))
    print(f"quantiles 0.05/0.5/0.95 of {args.rows:,} rows x {args.samples} draws "
          f"(torch {torch.__version__}, {threads} threads)")
    for name, sec in times.items():
        print(f"  {name:<28} {sec:8.3f} s   {base / sec:6.1f}x")
    if not args.no_bisection:
        ref = bisection_quantile(loc, scale, q, torch.float64)
        err = float(((got - ref).abs() / (spread * tol)).max())
        print(f"  largest |halley - float64 bisection| = {err:.3f} x the float32 resolution")
    if args.against:
        old = solvers["previous"](loc, scale, q, tol=tol)
        err = float(((got - old).abs() / (spread * tol)).max())
        print(f"  largest |halley - previous| = {err:.4f} x the float32 resolution")

    if args.no_crps:
        return
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
