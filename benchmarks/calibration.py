"""Measure the defaults and the calibration maps: coverage, width and NLL (docs/calibration.md).

Three groups of problems:

* ``gen``: multi-feature heteroscedastic generators (:func:`generator`) over 1-20 features and
  100-20,000 rows, several seeds, 2,000 fresh test rows each;
* ``tiny``: 15 training points, x in [0, 5], coverage among the training inputs and up to one
  data range beyond, for several ``epochs``;
* ``uci``: the first splits of every UCI data set found under ``--uci-root``;
* ``toy``: the blog post's 150 rows at 300 epochs over training seeds (one fit's spread).

For every problem: the defaults (``BayesianRegressor()``), and one fit with a calibration part
held out, seen through each map (``scale``, ``isotonic``, ``conformal``) and through split
conformal with the plain score ``|y - mean|`` (constant width) as the baseline of the width
comparison. With the ablation (``gen`` always, ``uci`` on ``--ablation-splits``): the recipe
before issue 11 (:data:`OLD_RECIPE`), and one network instead of the ensemble, its best
checkpoint kept or refitted on all rows.

Usage::

    python benchmarks/calibration.py --group gen --out benchmarks/results/calibration_gen.json
    python benchmarks/calibration.py --group uci --uci-root ../shared/data/uci --splits 20 \
        --ablation-splits 10 --maps-splits 5
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
from varbayes.kinds.stopping import LAYOUTS
from varbayes.metrics import evaluate

#: (rows, features, seeds) of the generator problems.
GEN_CASES = ((100, 1, 5), (600, 5, 5), (2000, 10, 3), (20000, 20, 2))
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


#: The hetero recipe before issue 11: one network of 20 units, rho -5, 1500 epochs, no stopping.
OLD_RECIPE = {"init_rho": -5.0, "hidden": [20], "n_members": 1, "warmup_fraction": 0.0}


def _regressor(layout: str | None, step: int | None = None, **params: Any
               ) -> BayesianRegressor:
    """``BayesianRegressor(**params)`` fitting its members with validation layout ``layout``
    (:func:`varbayes.kinds.fit`'s ``member_layout``) and, with ``calibration``, rounding the
    calibration part with ``step`` (its ``conformal_step``); None: the defaults."""
    reg = BayesianRegressor(**params)
    reg._member_layout = layout
    reg._conformal_step = step
    return reg


def _kinds_fit(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray, seed: int,
               samples: int, layout: str | None, **options: Any) -> tuple[dict[str, Any], Any]:
    fitted, _ = fit("hetero", x, y, generator=torch.Generator().manual_seed(seed),
                    member_layout=layout, **options)
    out = _scores(yt, fitted.predict(xt, samples, generator=torch.Generator().manual_seed(1)))
    out["epochs"] = fitted.fit_info.get("best_epoch")
    return out, fitted


def _single_networks(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray, seed: int,
                     samples: int, layout: str | None) -> dict[str, Any]:
    """One network: its best checkpoint, and a refit on all rows for the epochs it chose.

    The refit trains ``warmup_epochs`` homoscedastic then the rest heteroscedastic (the
    checkpoint's phases, ``warmup_fraction = warm / best``) without a validation part, and keeps
    the checkpoint's spread factor.
    """
    ckpt, fitted = _kinds_fit(x, y, xt, yt, seed, samples, layout, early_stopping=True,
                              n_members=1)
    best, warm = fitted.fit_info["best_epoch"], fitted.fit_info["warmup_epochs"]
    refit, again = _kinds_fit(x, y, xt, yt, seed, samples, layout, n_members=1,
                              epochs=max(1, best), warmup_fraction=min(warm / max(1, best), 0.999))
    again.spread_factor = fitted.spread_factor
    refit = _scores(yt, again.predict(xt, samples, generator=torch.Generator().manual_seed(1)))
    refit["epochs"] = best
    return {"single_ckpt": ckpt, "single_refit": refit}


def run_problem(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray, seed: int,
                samples: int = 200, ablation: bool = True, maps: bool = True,
                defaults: bool = True, layout: str | None = None, step: int | None = None
                ) -> dict[str, Any]:
    """Every variant on one problem (``ablation``: also the old recipe and single networks;
    ``defaults=False``: not the defaults' fit, e.g. to add maps to rows measured before;
    ``layout``: the members' validation layout of every fit, ``step``: the held-out fit's
    ``conformal_step``, None: the defaults)."""
    out: dict[str, Any] = {"n": int(len(y)), "d": int(x.shape[1])}
    t = time.perf_counter()
    if ablation:
        out["old_default"] = _kinds_fit(x, y, xt, yt, seed, samples, layout, **OLD_RECIPE)[0]
        out.update(_single_networks(x, y, xt, yt, seed, samples, layout))
    if defaults:
        new = _regressor(layout, random_state=seed, num_samples=samples).fit(x, y)
        out["default"] = _scores(yt, new._prediction(xt))
        out["default"]["epochs"] = new.model_.fit_info.get("best_epoch")
        out["default"]["spread_factor"] = new.model_.spread_factor
    if maps:  # one fit with a calibration part held out (as calibration=... does), every map
        cal = _regressor(layout, step, random_state=seed, num_samples=samples,
                         calibration="scale")
        cal.fit(x, y)
        held = _held_rows(cal, x)
        gen = torch.Generator().manual_seed(cal.predict_seed_)
        base_cal = cal.model_.predict(x[held], samples, generator=gen)
        base = cal.model_.predict(xt, samples, generator=torch.Generator().manual_seed(1))
        out["held_out_uncalibrated"] = _scores(yt, base)
        out["n_cal"] = int(len(held))
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
    _, held = calibration_rows(len(x), reg.validation_fraction, g, reg._conformal_step)
    return held.numpy()


def group_gen(seeds: int, maps_only: bool = False, defaults_only: bool = False,
              layout: str | None = None, step: int | None = None) -> list[dict[str, Any]]:
    rows = []
    for n, d, case_seeds in GEN_CASES:
        for seed in range(min(seeds, case_seeds)):
            x, y, xt, yt = generator(n, d, seed)
            rows.append({"problem": f"gen n={n} d={d}", "seed": seed,
                         **run_problem(x, y, xt, yt, seed,
                                       ablation=not (maps_only or defaults_only),
                                       maps=not defaults_only, defaults=not maps_only,
                                       layout=layout, step=step)})
            print(json.dumps(_short(rows[-1])), file=sys.stderr, flush=True)
    return rows


def group_uci(root: str, splits: int, ablation_splits: int, maps_splits: int,
              datasets: list[str] | None = None, maps_only: bool = False,
              layout: str | None = None, step: int | None = None) -> list[dict[str, Any]]:
    from varbayes.data import list_uci, load_uci

    rows = []
    for name in list_uci(root):
        if datasets and name not in datasets:
            continue
        for split in range(splits):
            data = load_uci(name, split, root=root)
            rows.append({"problem": f"uci {name}", "seed": split,
                         **run_problem(data.x_train, data.y_train, data.x_test, data.y_test,
                                       split, ablation=split < ablation_splits,
                                       maps=split < maps_splits, defaults=not maps_only,
                                       layout=layout, step=step)})
            print(json.dumps(_short(rows[-1])), file=sys.stderr, flush=True)
    return rows


def group_tiny(seeds: int, epochs: tuple[int, ...] = (50, 100, 200, 300, 500, 1500),
               layout: str | None = None) -> list[dict[str, Any]]:
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
                reg = _regressor(layout, epochs=ep, random_state=seed).fit(x[:, None], y)
                row = {"problem": f"tiny {fname}", "seed": seed, "epochs": ep}
                for where, xt in (("among", among), ("away", away)):
                    yt = f(xt) + 0.3 * rng.normal(size=xt.size)
                    lo, hi = reg.predict_interval(xt[:, None], LEVEL)
                    row[f"coverage_{where}"] = float(np.mean((yt >= lo) & (yt <= hi)))
                    row[f"width_{where}"] = float(np.mean(hi - lo))
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def group_toy(seeds: int, epochs: int = 300, layout: str | None = None
              ) -> list[dict[str, Any]]:
    """The blog post's toy data (150 rows) as ``tests/cli/test_cli.py`` fits it: the defaults
    with ``epochs`` over training seeds, 2,000 fresh draws (``test_seed=777``); the spread of
    one fit's coverage, with the factor set on a 20-row validation part."""
    from varbayes.data import load_toy

    data, fresh = load_toy(), load_toy(n_test=2000, test_seed=777)
    rows = []
    for seed in range(seeds):
        reg = _regressor(layout, epochs=epochs, random_state=seed)
        reg.fit(data.x_train, data.y_train[:, 0])
        rows.append({"problem": f"toy, {epochs} epochs", "seed": seed,
                     "default": _scores(fresh.y_test[:, 0], reg._prediction(fresh.x_test))})
        print(json.dumps(_short(rows[-1])), file=sys.stderr, flush=True)
    covs = [r["default"]["coverage_90"] for r in rows]
    print(f"toy: coverage mean {np.mean(covs):.3f}, sd {np.std(covs):.3f}, min {min(covs):.3f}, "
          f"max {max(covs):.3f}", file=sys.stderr)
    return rows


def _short(row: dict[str, Any]) -> dict[str, Any]:
    return {"problem": row["problem"], "seed": row["seed"],
            **{k: round(row[k]["coverage_90"], 3) for k, _ in VARIANTS if k in row}}


VARIANTS = (("old_default", "old recipe"), ("single_ckpt", "one network, checkpoint"),
            ("single_refit", "one network, refit"), ("default", "defaults"),
            ("held_out_uncalibrated", "held-out fit, no map"), ("scale", "scale"),
            ("isotonic", "isotonic"), ("conformal", "conformal"),
            ("conformal_abs", "conformal, |y - mean|"))


def merge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per problem, seed (and epochs): the variants of later rows added or replacing."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        key = (r["problem"], r["seed"], r.get("epochs") if r["problem"].startswith("tiny")
               else None)
        merged[key] = {**merged.get(key, {}), **r}
    return list(merged.values())


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per problem, mean over seeds of coverage / width / NLL of every variant."""
    problems = list(dict.fromkeys(r["problem"] for r in rows
                                  if any(k in r for k, _ in VARIANTS)))
    lines = ["| problem | seeds | " + " | ".join(t for _, t in VARIANTS) + " |",
             "|---|---|" + "---|" * len(VARIANTS)]
    for p in problems:
        rs_all = [r for r in rows if r["problem"] == p]
        cells = []
        for key, _ in VARIANTS:
            rs = [r for r in rs_all if key in r]
            if not rs:
                cells.append("")
                continue
            fewer = f" ({len(rs)})" if len(rs) < len(rs_all) else ""
            cov = np.mean([r[key]["coverage_90"] for r in rs])
            width = np.mean([r[key]["width_90"] for r in rs])
            nlls = [r[key]["nll"] for r in rs if r[key].get("nll") is not None]
            nll = f" / {np.mean(nlls):.2f}" if nlls else ""
            cells.append(f"{cov:.3f} / {width:.3g}{nll}{fewer}")
        lines.append(f"| {p} | {len(rs_all)} | " + " | ".join(cells) + " |")
    tiny = [r for r in rows if r["problem"].startswith("tiny")]
    if tiny:
        lines += ["", "| problem | epochs | seeds | coverage among (min / mean) | "
                  "coverage away (min / mean) | mean width among / away |",
                  "|---|---|---|---|---|---|"]
        for p in dict.fromkeys(r["problem"] for r in tiny):
            for ep in sorted({r["epochs"] for r in tiny}):
                rs = [r for r in tiny if r["problem"] == p and r["epochs"] == ep]
                a = [r["coverage_among"] for r in rs]
                b = [r["coverage_away"] for r in rs]
                widths = " / ".join(f"{np.mean([r.get(f'width_{w}', np.nan) for r in rs]):.3g}"
                                    for w in ("among", "away"))
                lines.append(f"| {p} | {ep} | {len(rs)} | {min(a):.3f} / {np.mean(a):.3f} | "
                             f"{min(b):.3f} / {np.mean(b):.3f} | {widths} |")
    return "\n".join(lines)


def runner_table(rows: list[dict[str, Any]], runner: dict[str, Any]) -> str:
    """Markdown: test NLL of the defaults against the UCI runner's, split by split."""
    lines = ["| data set | splits | defaults NLL | runner NLL, same splits | paired difference "
             "(± s.e.) | runner NLL, 20 splits | defaults coverage |",
             "|---|---|---|---|---|---|---|"]
    for name, data in runner["datasets"].items():
        rs = [r for r in rows if r["problem"] == f"uci {name}" and "default" in r]
        if not rs:
            continue
        ours = np.array([r["default"]["nll"] for r in rs])
        ref = np.array([data["splits"][r["seed"]]["nll"] for r in rs])
        diff = ours - ref
        se = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else math.nan
        every = np.mean([s["nll"] for s in data["splits"]])
        cov = np.mean([r["default"]["coverage_90"] for r in rs])
        lines.append(f"| {name} | {len(rs)} | {ours.mean():.3f} | {ref.mean():.3f} | "
                     f"{diff.mean():+.3f} ± {se:.3f} | {every:.3f} | {cov:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", choices=["gen", "uci", "tiny", "toy"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--splits", type=int, default=2)
    parser.add_argument("--ablation-splits", type=int, default=0,
                        help="uci: the old recipe and single networks on the first N splits")
    parser.add_argument("--maps-splits", type=int, default=10**9,
                        help="uci: the held-out fit and the maps on the first N splits")
    parser.add_argument("--uci-root", default="../shared/data/uci")
    parser.add_argument("--datasets", nargs="*", help="uci: only these data sets")
    parser.add_argument("--conformal-step", type=int,
                        help="gen, uci: round the calibration part to n + 1 a multiple of this "
                             "(varbayes.kinds.fit's conformal_step; default: "
                             "varbayes.kinds.calibrated.DEFAULT_CONFORMAL_STEP; 1: no rounding)")
    parser.add_argument("--maps-only", action="store_true",
                        help="gen, uci: only the held-out fit and the maps (merged by --table "
                             "with the rows of an earlier run, later files winning)")
    parser.add_argument("--defaults-only", action="store_true",
                        help="gen: only the defaults' fit (no ablation, no maps)")
    parser.add_argument("--validation-layout", choices=LAYOUTS,
                        help="the members' validation parts and where the spread factor is "
                             "fitted (varbayes.kinds.fit's member_layout; default: "
                             "varbayes.kinds.stopping.DEFAULT_MEMBER_LAYOUT)")
    parser.add_argument("--out")
    parser.add_argument("--table", nargs="*", help="print the table of these JSON files")
    parser.add_argument("--runner", default="benchmarks/results/uci_hetero.json",
                        help="with --table: the UCI runner's results to compare the NLL with")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.conformal_step is not None and args.conformal_step < 1:
        parser.error(f"--conformal-step must be a positive int, got {args.conformal_step}")
    if args.table:
        rows = merge([r for f in args.table for r in json.loads(Path(f).read_text())["rows"]])
        print(table(rows))
        if any(r["problem"].startswith("uci") for r in rows) and Path(args.runner).is_file():
            print("\n" + runner_table(rows, json.loads(Path(args.runner).read_text())))
        return
    start = time.perf_counter()
    layout, step = args.validation_layout, args.conformal_step
    if args.group == "gen":
        rows = group_gen(args.seeds, args.maps_only, args.defaults_only, layout, step)
    elif args.group == "uci":
        rows = group_uci(args.uci_root, args.splits, args.ablation_splits, args.maps_splits,
                         args.datasets, args.maps_only, layout, step)
    elif args.group == "toy":
        rows = group_toy(args.seeds, layout=layout)
    else:
        rows = group_tiny(args.seeds, layout=layout)
    doc = {"group": args.group, "seconds": time.perf_counter() - start, "rows": rows,
           "torch": torch.__version__}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
