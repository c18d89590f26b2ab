"""How the spread factor was chosen on the members' own parts: by held-out NLL or coverage.

One default fit (``kinds.fit(..., early_stopping=True)``, the ensemble of three networks) per
problem, with the validation layout before issue 11's last fix (``layout="members"``: each
member stopped on its own disjoint part; the defaults now share one part,
``docs/calibration.md``); its factor is then recomputed from the same members' validation
parts (each predicted by the member that did not train on it) in several ways, and the test
rows scored with each:

* ``nll``: the factor minimising the validation NLL, shrunk towards 1 as if 50 more rows had
  chosen 1 (the rule before the ensemble);
* ``coverage``: the factor at which the 90 % intervals cover 90 % of the validation rows (the
  defaults' rule then, :func:`varbayes.kinds.members.spread_factor` with ``layout="members"``);
* ``none``: no factor;
* ``pool``: the factor at which the *ensemble's* 90 % intervals cover 90 % of the validation
  rows (every member predicting every row, so two of the three have trained on it: a biased
  proxy of the ensemble on new rows);
* ``ratio``: the coverage factor times the median, over the validation rows, of a member's
  90 % half-width over the ensemble's (label-free: how much wider the pool of the members is
  than the member whose coverage set the factor).

* ``quantile_average``: a factor per test row, the coverage factor times the members' mean
  90 % width over the ensemble's 90 % width at that input (label-free): the ensemble's 90 %
  interval as wide as the average of the members' stretched intervals (the members' quantiles
  averaged, which keeps calibrated members calibrated, where their linear pool, the mixture,
  is over-dispersed: Lichtendahl, Grushka-Cockayne and Winkler 2013; Gneiting and Ranjan
  2013).

* ``error_split``: a factor per test row from a model of the errors: member ``j``'s error is a
  shared part plus its own, independent of the others', whose variance the members' spread of
  means ``D(x)`` (population variance over the members, label-free) estimates as
  ``M / (M - 1) D(x)``; with the members' mean calibrated variance ``s^2 v(x)`` as the error
  variance of one member, the pool mean's error variance is ``s^2 v(x) - D(x)``, and the
  factor makes the pool's variance ``v(x) + D(x)`` that (at least 1 % of ``s^2 v(x)``).

``members``: the test coverage of each member alone, stretched by the coverage factor (mean
over the members): whether the members are calibrated one by one and their pool is not.

Usage::

    python benchmarks/spread_factor.py --uci-root ../shared/data/uci --splits 10 \\
        --out benchmarks/results/spread_factor.json
    python benchmarks/spread_factor.py --uci-root ../shared/data/uci --splits 20 \\
        --datasets yacht --no-gen --out benchmarks/results/spread_factor_yacht20.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import varbayes.kinds.fitted as fitted_module  # noqa: E402
from calibration import generator  # noqa: E402
from varbayes.calibration import ScaleMap, stretch  # noqa: E402
from varbayes.kinds import fit  # noqa: E402
from varbayes.kinds.members import RESCALE_DRAWS, members_of, spread_factor  # noqa: E402
from varbayes.metrics import evaluate  # noqa: E402
from varbayes.predictive import Prediction, predictive  # noqa: E402

GEN_CASES = ((100, 1, 3), (600, 5, 3), (2000, 10, 2))
#: The layout studied here (``kinds.fit``'s ``member_layout``): each member its own part.
LAYOUT = "members"


def _factors(captured: dict[str, Any]) -> dict[str, float]:
    model, xs, ys, plan = captured["args"]
    locs, scales, targets = [], [], []
    for member, (_, val_rows) in zip(members_of(model), plan.folds, strict=False):
        pred = predictive(member, xs[val_rows], RESCALE_DRAWS,
                          generator=torch.Generator().manual_seed(plan.seed))
        locs.append(pred.loc)
        scales.append(pred.scale)
        targets.append(ys[val_rows])
    pooled = Prediction(torch.cat(locs, 1), torch.cat(scales, 1))
    n_val = pooled.loc.shape[1]
    nll = ScaleMap.fit(pooled, torch.cat(targets).double()).factor ** (n_val / (n_val + 50))
    coverage = spread_factor(*captured["args"])
    rows = torch.cat([v for _, v in plan.folds])
    gen = torch.Generator().manual_seed(plan.seed)
    ensemble = predictive(model, xs[rows], RESCALE_DRAWS, generator=gen)
    pool = _coverage_factor(ensemble, ys[rows])
    ratio = torch.median(_half_width(pooled) / _half_width(ensemble))
    return {"none": 1.0, "nll": float(nll), "coverage": coverage, "pool": pool,
            "ratio": coverage * float(ratio)}


def _half_width(pred: Prediction) -> torch.Tensor:
    lower, upper = (b.double() for b in pred.interval(0.9))
    return (upper - lower) / 2


def _coverage_factor(pred: Prediction, y: torch.Tensor) -> float:
    """The factor at which ``pred``'s stretched 90 % intervals cover 90 % of ``y``."""
    lower, upper = (b.double() for b in pred.interval(0.9))
    mean, y = pred.mean.double(), y.double()
    ratio = torch.where(y >= mean, (y - mean) / (upper - mean), (mean - y) / (mean - lower))
    return float(torch.quantile(ratio, 0.9))


def _members_alone(fitted: Any, xt: np.ndarray, yt: np.ndarray, factor: float
                   ) -> tuple[float, torch.Tensor]:
    """Mean test coverage of the members one by one, each stretched by ``factor``; and the
    per-row factor of ``quantile_average``."""
    xs = fitted.x_scaler.transform(torch.as_tensor(xt, dtype=torch.float64)).float()
    ys = fitted.y_scaler.transform(torch.as_tensor(yt, dtype=torch.float64)[:, None])[:, 0]
    covs, widths, means, variances, errors = [], [], [], [], []
    for member in members_of(fitted.model):
        pred = predictive(member, xs, 200, generator=torch.Generator().manual_seed(1))
        lower, upper = (b.double() for b in stretch(pred, factor).interval(0.9))
        covs.append(float(((ys >= lower) & (ys <= upper)).double().mean()))
        widths.append(upper - lower)
        means.append(pred.mean.double())
        variances.append(pred.var.double())
        errors.append(float((ys - pred.mean.double()).pow(2).mean().sqrt()))
    pool = predictive(fitted.model, xs, 200, generator=torch.Generator().manual_seed(1))
    per_row = torch.stack(widths).mean(0) / (2 * _half_width(pool))
    v, d = torch.stack(variances).mean(0), torch.stack(means).var(0, unbiased=False)
    split = ((factor**2 * v - d).clamp_min(0.01 * factor**2 * v) / (v + d)).sqrt()
    rmse = {"members": float(np.mean(errors)),
            "pool": float((ys - pool.mean.double()).pow(2).mean().sqrt())}
    return float(np.mean(covs)), per_row, split, rmse


def run(problems: list[tuple[str, int, tuple[np.ndarray, ...]]]) -> list[dict[str, Any]]:
    captured: dict[str, Any] = {}

    def capture(*args: Any) -> float:
        captured["args"] = args
        return 1.0

    fitted_module.spread_factor = capture  # type: ignore[assignment]  # fit once, score thrice
    rows = []
    for name, seed, (x, y, xt, yt) in problems:
        fitted, _ = fit("hetero", x, y, generator=torch.Generator().manual_seed(seed),
                        early_stopping=True, member_layout=LAYOUT)
        base = fitted.predict(xt, 200, generator=torch.Generator().manual_seed(1))
        row: dict[str, Any] = {"problem": name, "seed": seed}
        factors = _factors(captured)
        for rule, factor in factors.items():
            e = evaluate(yt, stretch(base, factor), level=0.9)
            row[rule] = {"factor": factor, "coverage_90": e["coverage_90"], "nll": e["nll"]}
        row["members"], per_row, split, row["rmse_std_units"] = _members_alone(
            fitted, xt, yt, factors["coverage"])
        for rule, f in (("quantile_average", per_row), ("error_split", split)):
            e = evaluate(yt, stretch(base, f.to(base.loc.dtype)), level=0.9)
            row[rule] = {"factor": float(f.mean()), "coverage_90": e["coverage_90"],
                         "nll": e["nll"]}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    rules = [r for r in ("none", "nll", "coverage", "pool", "ratio", "quantile_average",
                         "error_split") if r in rows[0]]
    lines = ["| problem | seeds | " + " | ".join(f"{r}: factor / coverage / NLL" for r in rules)
             + " | members alone, coverage factor |",
             "|---|---|" + "---|" * (len(rules) + 1)]
    for p in dict.fromkeys(r["problem"] for r in rows):
        rs = [r for r in rows if r["problem"] == p]
        cells = [" / ".join(f"{np.mean([r[rule][k] for r in rs]):.3f}"
                            for k in ("factor", "coverage_90", "nll")) for rule in rules]
        alone = [r["members"] for r in rs if "members" in r]
        cells.append(f"{np.mean(alone):.3f}" if alone else "")
        lines.append(f"| {p} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uci-root", default="../shared/data/uci")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--datasets", nargs="*", help="only these UCI data sets")
    parser.add_argument("--no-gen", action="store_true", help="no generator problems")
    parser.add_argument("--out")
    parser.add_argument("--table", help="print the table of this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.table:
        print(table(json.loads(Path(args.table).read_text())["rows"]))
        return
    from varbayes.data import list_uci, load_uci

    problems = []
    for name in list_uci(args.uci_root):
        if args.datasets and name not in args.datasets:
            continue
        for split in range(args.splits):
            d = load_uci(name, split, root=args.uci_root)
            problems.append((f"uci {name}", split, (d.x_train, d.y_train, d.x_test, d.y_test)))
    for n, d, seeds in () if args.no_gen else GEN_CASES:
        problems += [(f"gen n={n} d={d}", s, generator(n, d, s)) for s in range(seeds)]
    start = time.perf_counter()
    rows = run(problems)
    if args.out:
        Path(args.out).write_text(json.dumps({"seconds": time.perf_counter() - start,
                                              "rows": rows}, indent=1) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
