"""How the defaults' spread factor is chosen: by held-out NLL or by held-out 90 % coverage.

One default fit (``kinds.fit(..., early_stopping=True)``, the ensemble of three networks) per
problem; its factor is then recomputed from the same members' validation parts (each predicted
by the member that did not train on it) in two ways, and the test rows scored with each:

* ``nll``: the factor minimising the validation NLL, shrunk towards 1 as if 50 more rows had
  chosen 1 (the rule before the ensemble);
* ``coverage``: the factor at which the 90 % intervals cover 90 % of the validation rows (the
  defaults' rule, :func:`varbayes.kinds.members.spread_factor`);
* ``none``: no factor.

Usage::

    python benchmarks/spread_factor.py --uci-root ../shared/data/uci --splits 10 \\
        --out benchmarks/results/spread_factor.json
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
    return {"none": 1.0, "nll": float(nll), "coverage": spread_factor(*captured["args"])}


def run(problems: list[tuple[str, int, tuple[np.ndarray, ...]]]) -> list[dict[str, Any]]:
    captured: dict[str, Any] = {}

    def capture(*args: Any) -> float:
        captured["args"] = args
        return 1.0

    fitted_module.spread_factor = capture  # type: ignore[assignment]  # fit once, score thrice
    rows = []
    for name, seed, (x, y, xt, yt) in problems:
        fitted, _ = fit("hetero", x, y, generator=torch.Generator().manual_seed(seed),
                        early_stopping=True)
        base = fitted.predict(xt, 200, generator=torch.Generator().manual_seed(1))
        row: dict[str, Any] = {"problem": name, "seed": seed}
        for rule, factor in _factors(captured).items():
            e = evaluate(yt, stretch(base, factor), level=0.9)
            row[rule] = {"factor": factor, "coverage_90": e["coverage_90"], "nll": e["nll"]}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    rules = ("none", "nll", "coverage")
    lines = ["| problem | seeds | " + " | ".join(f"{r}: factor / coverage / NLL" for r in rules)
             + " |", "|---|---|" + "---|" * len(rules)]
    for p in dict.fromkeys(r["problem"] for r in rows):
        rs = [r for r in rows if r["problem"] == p]
        cells = [" / ".join(f"{np.mean([r[rule][k] for r in rs]):.3f}"
                            for k in ("factor", "coverage_90", "nll")) for rule in rules]
        lines.append(f"| {p} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uci-root", default="../shared/data/uci")
    parser.add_argument("--splits", type=int, default=10)
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
        for split in range(args.splits):
            d = load_uci(name, split, root=args.uci_root)
            problems.append((f"uci {name}", split, (d.x_train, d.y_train, d.x_test, d.y_test)))
    for n, d, seeds in GEN_CASES:
        problems += [(f"gen n={n} d={d}", s, generator(n, d, s)) for s in range(seeds)]
    start = time.perf_counter()
    rows = run(problems)
    if args.out:
        Path(args.out).write_text(json.dumps({"seconds": time.perf_counter() - start,
                                              "rows": rows}, indent=1) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
