"""What a larger ``validation_fraction`` buys in one fit's coverage and costs in NLL.

``BayesianRegressor()`` (three ``hetero`` networks stopped on one shared validation part)
fits its spread factor on that part, ``validation_fraction`` of the rows (at least 20). Given
``m`` factor rows a calibrated model covers a Beta(0.9 (m + 1), 0.1 (m + 1)) share of new
rows (sd ``0.3 / sqrt(m + 2)``), so one fit's 90 % coverage scatters less with a larger part,
while the members train on fewer rows (``docs/calibration.md``, "The price in one fit's
coverage").

Data: scikit-learn's ``make_friedman1`` (10 features, 5 used) with the noise
``(0.5 + |x[:, 1]|) N(0, 1)`` of :func:`varbayes.benchmarks.uci_scale.write_friedman_uci`
(its random streams: ``make_friedman1(random_state=seed)``, then
``np.random.default_rng(seed)`` for the noise), ``n`` training rows followed by 5,000 fresh
test rows of the same draw. For each size ``n``, seed and fraction ``f``:
``BayesianRegressor(random_state=seed, validation_fraction=f)`` with nothing else set, the
same training rows for every fraction of a seed (so the differences are paired). Recorded:
the 90 % coverage of :meth:`~varbayes.BayesianRegressor.predict_interval` on the test rows,
the test mean NLL of the predictive (:func:`varbayes.metrics.evaluate`, as
``benchmarks/calibration.py`` scores), fit seconds, the validation (= factor) rows and the
spread factor from ``fit_info``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/validation_fraction.py --estimate
    OMP_NUM_THREADS=1 python benchmarks/validation_fraction.py \\
        --out benchmarks/results/validation_fraction.json
    python benchmarks/validation_fraction.py --table benchmarks/results/validation_fraction.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

SIZES = (300, 1000, 3000)
FRACTIONS = (0.1, 0.2, 0.3)
N_TEST = 5000
LEVEL = 0.9
BAND = (0.87, 0.93)


def friedman(n: int, seed: int, n_test: int = N_TEST
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` training rows and ``n_test`` test rows of the heteroscedastic friedman1 data."""
    from varbayes.benchmarks.uci_scale import friedman_data

    x, y = friedman_data(n + n_test, seed)
    return x[:n], y[:n], x[n:], y[n:]


def fresh_factor_coverage(reg: Any, n: int, seed: int, xt: np.ndarray, yt: np.ndarray
                          ) -> dict[str, Any]:
    """The fit's coverage with its spread factor set instead on fresh rows, as many as its own.

    The same members and the same rule (:func:`varbayes.kinds.members.spread_factor`), on
    rows of the generator that nothing chose (the draw's rows after the test rows): what the
    factor gives when its rows did not also choose the stopping epochs.
    """
    import torch

    from varbayes.benchmarks.uci_scale import friedman_data
    from varbayes.kinds.members import spread_factor
    from varbayes.kinds.stopping import ValidationPlan

    fitted = reg.model_
    m = int(fitted.fit_info["factor_rows"])
    x, y = friedman_data(n + N_TEST + m, seed)  # the first n + N_TEST rows are run_one's
    xs = fitted.x_scaler.transform(torch.as_tensor(x[n + N_TEST:])).float()
    ys = fitted.y_scaler.transform(torch.as_tensor(y[n + N_TEST:, None]))[:, 0].float()
    plan = ValidationPlan(None, None, 1, 1, "", seed=seed, factor_rows=torch.arange(m))
    own = fitted.spread_factor
    fitted.spread_factor = spread_factor(fitted.model, xs, ys, plan)
    try:
        lower, upper = reg.predict_interval(xt, level=LEVEL)
        fresh = fitted.spread_factor
    finally:
        fitted.spread_factor = own
    return {"coverage_90_fresh_factor": float(np.mean((yt >= lower) & (yt <= upper))),
            "spread_factor_fresh": fresh}


def run_one(n: int, fraction: float, seed: int, layout: str | None = None,
            fresh_factor: bool = False) -> dict[str, Any]:
    """One default fit with ``validation_fraction=fraction``, scored on fresh rows.

    ``layout``: the members' validation layout (``kinds.fit``'s ``member_layout``; None: the
    default, one part shared by the members, where the spread factor is fitted too).
    """
    from varbayes import BayesianRegressor
    from varbayes.metrics import evaluate

    x, y, xt, yt = friedman(n, seed)
    reg = BayesianRegressor(random_state=seed, validation_fraction=fraction)
    reg._member_layout = layout
    start = time.perf_counter()
    reg.fit(x, y)
    seconds = time.perf_counter() - start
    lower, upper = reg.predict_interval(xt, level=LEVEL)
    scores = evaluate(yt, reg._prediction(xt), level=LEVEL)
    info = reg.model_.fit_info
    fresh = fresh_factor_coverage(reg, n, seed, xt, yt) if fresh_factor else {}
    return {**fresh, "n": n, "fraction": fraction, "seed": seed, "layout": layout or "shared",
            "coverage_90": float(np.mean((yt >= lower) & (yt <= upper))),
            "coverage_90_evaluate": scores["coverage_90"], "nll": scores["nll"],
            "rmse": scores["rmse"], "width_90": float(np.mean(upper - lower)),
            "fit_seconds": seconds, "n_validation": int(info["n_validation"]),
            "factor_rows": int(info["factor_rows"]),
            "spread_factor": info.get("spread_factor"), "best_epoch": info.get("best_epoch")}


def beta_sd(m: float) -> float:
    """The sd of Beta(0.9 (m + 1), 0.1 (m + 1)): one calibrated fit's coverage on ``m`` rows."""
    return math.sqrt(LEVEL * (1 - LEVEL) / (m + 2))


def table(records: list[dict[str, Any]]) -> str:
    """Markdown table per (n, fraction), NLL differences paired by seed against 0.1."""
    lines = ["| n | fraction | factor rows | fits | mean coverage | sd over seeds | in "
             f"[{BAND[0]}, {BAND[1]}] | Beta sd | test NLL | NLL - NLL(0.1) (± s.e.) | "
             "fit s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    base = {(r["n"], r["seed"]): r["nll"] for r in records if r["fraction"] == 0.1}
    for n in sorted({r["n"] for r in records}):
        for f in sorted({r["fraction"] for r in records if r["n"] == n}):
            rs = sorted((r for r in records if r["n"] == n and r["fraction"] == f),
                        key=lambda r: r["seed"])
            cov = np.array([r["coverage_90"] for r in rs])
            nll = np.array([r["nll"] for r in rs])
            m = float(np.mean([r.get("factor_rows", r["n_validation"]) for r in rs]))
            inside = int(np.sum((cov >= BAND[0]) & (cov <= BAND[1])))
            sd = f"{cov.std(ddof=1):.3f}" if len(rs) > 1 else "-"
            diffs = np.array([r["nll"] - base[n, r["seed"]] for r in rs
                              if (n, r["seed"]) in base])
            if f == 0.1 or len(diffs) < 2:
                diff = "-"
            else:
                se = diffs.std(ddof=1) / math.sqrt(len(diffs))
                diff = f"{diffs.mean():+.3f} ± {se:.3f}"
            secs = np.mean([r["fit_seconds"] for r in rs])
            lines.append(f"| {n} | {f:g} | {m:g} | {len(rs)} | {cov.mean():.3f} | {sd} | "
                         f"{inside}/{len(rs)} | {beta_sd(m):.3f} | {nll.mean():.3f} | {diff} | "
                         f"{secs:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    parser.add_argument("--seeds", type=int, default=8, help="seeds 0 .. SEEDS-1")
    parser.add_argument("--seeds-large", type=int, nargs=2, metavar=("N", "SEEDS"),
                        help="only SEEDS seeds for size N (to bound the run time)")
    parser.add_argument("--layout", choices=("shared", "members", "separate"),
                        help="the members' validation layout (default: the library's)")
    parser.add_argument("--fresh-factor", action="store_true",
                        help="also the coverage with the factor set on as many fresh rows")
    parser.add_argument("--estimate", action="store_true",
                        help="time one fit per size (seed 0, fraction 0.1) and stop")
    parser.add_argument("--out", type=Path, help="write the records here (after every fit)")
    parser.add_argument("--table", type=Path, help="print the table of a saved JSON and stop")
    args = parser.parse_args()
    if args.table is not None:
        print(table(json.loads(args.table.read_text())["records"]))
        return
    if args.estimate:
        for n in args.sizes:
            r = run_one(n, 0.1, 0)
            print(f"n={n}: {r['fit_seconds']:.1f} s fit, coverage {r['coverage_90']:.3f}",
                  flush=True)
        return
    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    for n in args.sizes:
        seeds = args.seeds
        if args.seeds_large is not None and n == args.seeds_large[0]:
            seeds = args.seeds_large[1]
        for seed in range(seeds):
            for f in args.fractions:
                r = run_one(n, f, seed, args.layout, args.fresh_factor)
                records.append(r)
                print(f"n={n} seed={seed} f={f:g}: coverage {r['coverage_90']:.3f}, "
                      f"NLL {r['nll']:.3f}, {r['n_validation']} rows, "
                      f"{r['fit_seconds']:.1f} s", flush=True)
                if args.out is not None:
                    args.out.write_text(json.dumps(
                        {"level": LEVEL, "n_test": N_TEST,
                         "wall_seconds": time.perf_counter() - start,
                         "records": records}, indent=1) + "\n")
    print(f"\n{len(records)} fits in {time.perf_counter() - start:.0f} s\n")
    print(table(records))


if __name__ == "__main__":
    main()
