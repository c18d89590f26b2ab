"""Measure the defaults and the calibration maps: coverage, width and NLL (docs/calibration.md).

Three groups of problems:

* ``gen``: multi-feature heteroscedastic generators (:func:`generator`) over 1-20 features and
  100-20,000 rows, several seeds, 2,000 fresh test rows each;
* ``tiny``: 15 training points, x in [0, 5], coverage among the training inputs and up to one
  data range beyond, for several ``epochs``;
* ``uci``: the first splits of every UCI data set found under ``--uci-root``.

For every problem: the old defaults (no early stopping), the new defaults
(``BayesianRegressor()``), and one fit with a calibration part held out, seen through each map
(``scale``, ``isotonic``, ``conformal``) and through split conformal with the plain score
``|y - mean|`` (constant width) as the baseline of the width comparison.

Usage::

    python benchmarks/calibration.py --group gen --out benchmarks/results/calibration_gen.json
    python benchmarks/calibration.py --group uci --uci-root ../shared/data/uci --splits 3
    python benchmarks/calibration.py --group tiny
    python benchmarks/calibration.py --table benchmarks/results/calibration_*.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from varbayes import BayesianRegressor
from varbayes.calibration import calibration_report, fit_calibration
from varbayes.kinds import fit
from varbayes.metrics import evaluate

#: (rows, features, seeds) of the generator problems.
GEN_CASES = ((100, 1, 3), (600, 5, 3), (2000, 10, 2), (20000, 20, 1))
LEVEL = 0.9


def generator(n: int, d: int, seed: int, n_test: int = 2000
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``d`` features uniform on [-2, 2], a smooth mean, noise growing with feature 0."""
    rng = np.random.default_rng([seed, n, d])
    w = rng.normal(size=d) / math.sqrt(d)

    def draw(m: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(-2, 2, size=(m, d))
        mean = np.sin(1.5 * x[:, 0]) + 0.5 * x[:, min(1, d - 1)] ** 2 + x @ w
        std = 0.1 + 0.4 * (x[:, 0] + 2) / 2 * (1 + 0.5 * np.cos(x[:, d - 1]))
        return x, mean + std * rng.normal(size=m)

    x, y = draw(n)
    xt, yt = draw(n_test)
    return x, y, xt, yt


def _scores(y: np.ndarray, pred: Any) -> dict[str, Any]:
    e = evaluate(y, pred, level=LEVEL)
    return {"coverage_90": e["coverage_90"], "width_90": e["interval_width_90"], "nll": e["nll"],
            "rmse": e["rmse"], **{k: v for k, v in calibration_report(y, pred).items()
                                  if k.startswith("coverage")}}


def _abs_conformal(pred_cal: Any, y_cal: np.ndarray, pred: Any, y: np.ndarray) -> dict[str, Any]:
    """Split conformal with the unnormalised score |y - mean| (constant-width intervals)."""
    s = np.sort(np.abs(y_cal - pred_cal.mean.numpy()))
    k = math.ceil((len(s) + 1) * LEVEL)
    q = s[k - 1] if k <= len(s) else math.inf
    m = pred.mean.numpy()
    return {"coverage_90": float(np.mean(np.abs(y - m) <= q)), "width_90": float(2 * q),
            "nll": None, "rmse": float(np.sqrt(np.mean((y - m) ** 2)))}


def _kinds_fit(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray, seed: int,
               samples: int, **options: Any) -> dict[str, Any]:
    fitted, _ = fit("hetero", x, y, generator=torch.Generator().manual_seed(seed), **options)
    out = _scores(yt, fitted.predict(xt, samples, generator=torch.Generator().manual_seed(1)))
    out["epochs"] = fitted.fit_info.get("best_epoch")
    return out


def run_problem(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray, seed: int,
                samples: int = 200, ablation: bool = True) -> dict[str, Any]:
    """Every variant on one problem (``ablation``: also the old defaults and ES alone)."""
    out: dict[str, Any] = {"n": int(len(y)), "d": int(x.shape[1])}
    t = time.perf_counter()
    if ablation:  # before this work: rho -5, 1500 epochs; then early stopping without rescale
        out["old_default"] = _kinds_fit(x, y, xt, yt, seed, samples, init_rho=-5.0)
        out["es_only"] = _kinds_fit(x, y, xt, yt, seed, samples, early_stopping=True,
                                    rescale=False)
    new = BayesianRegressor(random_state=seed, num_samples=samples).fit(x, y)
    out["default"] = _scores(yt, new._prediction(xt))
    out["default"]["epochs"] = new.model_.fit_info.get("best_epoch")
    out["default"]["spread_factor"] = new.model_.spread_factor
    # One fit with a calibration part held out (as calibration=... does), every map on it.
    cal = BayesianRegressor(random_state=seed, num_samples=samples, calibration="scale")
    cal.fit(x, y)
    held = _held_rows(cal, x)
    gen = torch.Generator().manual_seed(cal.predict_seed_)
    base_cal = cal.model_.predict(x[held], samples, generator=gen)
    base = cal.model_.predict(xt, samples, generator=torch.Generator().manual_seed(1))
    out["held_out_uncalibrated"] = _scores(yt, base)
    for method in ("scale", "isotonic", "conformal"):
        out[method] = _scores(yt, fit_calibration(method, base_cal, y[held]).apply(base))
    out["conformal_abs"] = _abs_conformal(base_cal, y[held], base, yt)
    out["seconds"] = time.perf_counter() - t
    return out


def _held_rows(reg: BayesianRegressor, x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` held out for calibration in ``reg``'s fit (the same random split)."""
    from varbayes._validation import as_generator
    from varbayes.kinds.calibrated import calibration_rows

    g = as_generator(reg.random_state)
    torch.randint(0, 2**62, (1,), generator=g)  # the estimator's predict seed comes first
    _, held = calibration_rows(len(x), reg.validation_fraction, g)
    return held.numpy()


def group_gen(seeds: int) -> list[dict[str, Any]]:
    rows = []
    for n, d, case_seeds in GEN_CASES:
        for seed in range(min(seeds, case_seeds)):
            x, y, xt, yt = generator(n, d, seed)
            rows.append({"problem": f"gen n={n} d={d}", "seed": seed,
                         **run_problem(x, y, xt, yt, seed)})
            print(json.dumps(_short(rows[-1])), file=sys.stderr, flush=True)
    return rows


def group_uci(root: str, splits: int) -> list[dict[str, Any]]:
    from varbayes.data import list_uci, load_uci

    rows = []
    for name in list_uci(root):
        for split in range(splits):
            data = load_uci(name, split, root=root)
            rows.append({"problem": f"uci {name}", "seed": split,
                         **run_problem(data.x_train, data.y_train, data.x_test, data.y_test,
                                       split, ablation=False)})
            print(json.dumps(_short(rows[-1])), file=sys.stderr, flush=True)
    return rows


def group_tiny(seeds: int, epochs: tuple[int, ...] = (50, 100, 200, 1500)) -> list[dict[str, Any]]:
    fns = {"sin": lambda x: np.sin(2 * x) + 0.5 * x, "quad": lambda x: 0.3 * x**2 - x}
    rows = []
    for fname, f in fns.items():
        for seed in range(seeds):
            rng = np.random.default_rng([seed, 15])
            x = rng.uniform(0, 5, 15)
            y = f(x) + 0.3 * rng.normal(size=15)
            among = rng.uniform(0, 5, 2000)
            away = np.concatenate([rng.uniform(-5, 0, 1000), rng.uniform(5, 10, 1000)])
            for ep in epochs:
                reg = BayesianRegressor(epochs=ep, random_state=seed).fit(x[:, None], y)
                row = {"problem": f"tiny {fname}", "seed": seed, "epochs": ep}
                for where, xt in (("among", among), ("away", away)):
                    yt = f(xt) + 0.3 * rng.normal(size=xt.size)
                    lo, hi = reg.predict_interval(xt[:, None], LEVEL)
                    row[f"coverage_{where}"] = float(np.mean((yt >= lo) & (yt <= hi)))
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def _short(row: dict[str, Any]) -> dict[str, Any]:
    return {"problem": row["problem"], "seed": row["seed"],
            **{k: round(row[k]["coverage_90"], 3) for k, _ in VARIANTS if k in row}}


VARIANTS = (("old_default", "old defaults"), ("es_only", "early stopping alone"),
            ("default", "defaults (early stopping + spread factor)"),
            ("held_out_uncalibrated", "held-out fit, no map"), ("scale", "scale"),
            ("isotonic", "isotonic"), ("conformal", "conformal"),
            ("conformal_abs", "conformal, |y - mean|"))


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per problem, mean over seeds of coverage / width / NLL of every variant."""
    problems = list(dict.fromkeys(r["problem"] for r in rows if "default" in r))
    lines = ["| problem | seeds | " + " | ".join(t for _, t in VARIANTS) + " |",
             "|---|---|" + "---|" * len(VARIANTS)]
    for p in problems:
        rs = [r for r in rows if r["problem"] == p]
        cells = []
        for key, _ in VARIANTS:
            if key not in rs[0]:
                cells.append("")
                continue
            cov = np.mean([r[key]["coverage_90"] for r in rs])
            width = np.mean([r[key]["width_90"] for r in rs])
            nlls = [r[key]["nll"] for r in rs if r[key].get("nll") is not None]
            nll = f" / {np.mean(nlls):.2f}" if nlls else ""
            cells.append(f"{cov:.3f} / {width:.3g}{nll}")
        lines.append(f"| {p} | {len(rs)} | " + " | ".join(cells) + " |")
    tiny = [r for r in rows if r["problem"].startswith("tiny")]
    if tiny:
        lines += ["", "| problem | epochs | seeds | coverage among (min / mean) | "
                  "coverage away (min / mean) |", "|---|---|---|---|---|"]
        for p in dict.fromkeys(r["problem"] for r in tiny):
            for ep in sorted({r["epochs"] for r in tiny}):
                rs = [r for r in tiny if r["problem"] == p and r["epochs"] == ep]
                a = [r["coverage_among"] for r in rs]
                b = [r["coverage_away"] for r in rs]
                lines.append(f"| {p} | {ep} | {len(rs)} | {min(a):.3f} / {np.mean(a):.3f} | "
                             f"{min(b):.3f} / {np.mean(b):.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", choices=["gen", "uci", "tiny"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--splits", type=int, default=2)
    parser.add_argument("--uci-root", default="../shared/data/uci")
    parser.add_argument("--out")
    parser.add_argument("--table", nargs="*", help="print the table of these JSON files")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.table:
        rows = [r for f in args.table for r in json.loads(Path(f).read_text())["rows"]]
        print(table(rows))
        return
    start = time.perf_counter()
    if args.group == "gen":
        rows = group_gen(args.seeds)
    elif args.group == "uci":
        rows = group_uci(args.uci_root, args.splits)
    else:
        rows = group_tiny(args.seeds)
    doc = {"group": args.group, "seconds": time.perf_counter() - start, "rows": rows,
           "torch": torch.__version__}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
