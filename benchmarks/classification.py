"""BayesianClassifier against MLPClassifier and LogisticRegression (docs/benchmarks.md).

The classification data sets scikit-learn ships inside its package (no download): breast
cancer, wine and digits. Each split is a stratified 80/20 train/test split (seeds 0..K-1, or
from ``--first-split``); the same split for every model. Scores on the test rows: accuracy,
NLL (nats per row) and ECE (15 equal-width bins of the top-class confidence,
:mod:`varbayes.metrics_classification`).
The baselines see standardised features (``StandardScaler`` in a pipeline) and their default
parameters (``MLPClassifier(max_iter=1000)``, ``LogisticRegression(max_iter=5000)``);
``BayesianClassifier()`` runs with its defaults.

Usage::

    python benchmarks/classification.py --splits 10 --out benchmarks/results/classification.json
    python benchmarks/classification.py --table benchmarks/results/classification.json

Settings are chosen on other splits (seeds 100-109) before the table's splits are run, e.g.::

    python benchmarks/classification.py --splits 10 --first-split 100 --datasets digits \\
        --params '{"prior_scale": 2.0}'

``--speed`` instead times training per epoch (best of 3) of one network size, 10 features and
one hidden layer of 50 with the local reparameterisation (the ``family`` kind's defaults),
under a Gaussian head with a heteroscedastic noise output (the regression of the same size)
and the classification heads, on the fast engine and on the autograd loop::

    python benchmarks/classification.py --speed --out benchmarks/results/classification_speed.json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from varbayes import BayesianClassifier
from varbayes.infer import ELBO, train
from varbayes.metrics_classification import accuracy, expected_calibration_error
from varbayes.models import BayesianMLP, FamilyMLP

DATASETS = {"breast_cancer": load_breast_cancer, "wine": load_wine, "digits": load_digits}


def _models(seed: int, params: dict[str, object] | None = None) -> dict[str, object]:
    return {
        "BayesianClassifier": BayesianClassifier(random_state=seed, **(params or {})),
        "MLPClassifier": make_pipeline(StandardScaler(),
                                       MLPClassifier(max_iter=1000, random_state=seed)),
        "LogisticRegression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
    }


def _scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    p = torch.as_tensor(proba, dtype=torch.float64)
    nll = float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-300, None)).mean())
    return {"accuracy": accuracy(y, p), "nll": nll, "ece": expected_calibration_error(y, p)}


def run(splits: int, first: int = 0, params: dict[str, object] | None = None,
        datasets: list[str] | None = None) -> list[dict[str, object]]:
    """Every model on splits ``first .. first+splits-1``; ``params`` for BayesianClassifier."""
    rows: list[dict[str, object]] = []
    for name in datasets or list(DATASETS):
        x, y = DATASETS[name](return_X_y=True)
        for seed in range(first, first + splits):
            xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y,
                                                  random_state=seed)
            for model_name, model in _models(seed, params).items():
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(xtr, ytr)  # type: ignore[attr-defined]
                proba = model.predict_proba(xte)  # type: ignore[attr-defined]
                rows.append({"dataset": name, "split": seed, "model": model_name,
                             "seconds": time.perf_counter() - start, **_scores(yte, proba)})
                if isinstance(model, BayesianClassifier):  # what the validation part chose
                    rows[-1]["temperature"] = model.model_.temperature
                    rows[-1]["best_epoch"] = model.model_.fit_info.get("best_epoch")
                print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict[str, object]]) -> str:
    lines = ["| data set | model | accuracy | NLL | ECE | fit s |", "|---|---|---|---|---|---|"]
    for name in [n for n in DATASETS if any(r["dataset"] == n for r in rows)]:
        for model in ("BayesianClassifier", "MLPClassifier", "LogisticRegression"):
            sel = [r for r in rows if r["dataset"] == name and r["model"] == model]
            if not sel:
                continue

            def cell(key: str, fmt: str, sel: list[dict[str, object]] = sel) -> str:
                v = np.array([float(r[key]) for r in sel])  # type: ignore[arg-type]
                return f"{v.mean():{fmt}} ± {v.std(ddof=1) / np.sqrt(len(v)):{fmt}}"

            lines.append(f"| {name} (n splits {len(sel)}) | {model} | {cell('accuracy', '.4f')} "
                         f"| {cell('nll', '.4f')} | {cell('ece', '.4f')} "
                         f"| {np.mean([float(r['seconds']) for r in sel]):.1f} |")  # type: ignore[arg-type]
        lines.append(_paired(rows, name))
    return "\n".join(lines)


def _paired(rows: list[dict[str, object]], name: str) -> str:
    """Table row: BayesianClassifier minus MLPClassifier per split, mean / standard error."""
    by = {(r["model"], r["split"]): r for r in rows if r["dataset"] == name}
    splits = sorted({s for m, s in by if m == "BayesianClassifier" and ("MLPClassifier", s) in by})
    cells = []
    for key in ("accuracy", "nll", "ece"):
        d = np.array([float(by["BayesianClassifier", s][key])  # type: ignore[arg-type]
                      - float(by["MLPClassifier", s][key]) for s in splits])  # type: ignore[arg-type]
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        cells.append(f"{d.mean():+.4f} ({d.mean() / se:+.1f} SE)")
    return f"| {name} | Bayes - MLP, paired | " + " | ".join(cells) + " | |"


#: (label, likelihood, classes, fast engine) of the speed runs; Gaussian first (the reference).
SPEED_HEADS = [("Gaussian (hetero head)", "gaussian", 0, True),
               ("Gaussian on autograd", "gaussian", 0, False),
               ("Bernoulli", "bernoulli", 2, True), ("categorical K=3", "categorical", 3, True),
               ("categorical K=10", "categorical", 10, True),
               ("categorical K=3 on autograd", "categorical", 3, False)]
SPEED_SIZES = [(2000, None), (20000, 256)]


def _speed_model(likelihood: str, classes: int, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    if likelihood == "gaussian":
        return BayesianMLP(10, (50,), head="heteroscedastic", estimator="local", init_rho=-3.0,
                           generator=g)
    return FamilyMLP(10, (50,), likelihood=likelihood, n_classes=max(classes, 2),
                     estimator="local", init_rho=-3.0, generator=g)


def speed(epochs: int = 40, repeats: int = 3) -> list[dict[str, object]]:
    """Training milliseconds per epoch of each head and size, the best of ``repeats`` runs."""
    rows: list[dict[str, object]] = []
    for n, batch in SPEED_SIZES:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, 10, generator=g)
        for label, likelihood, classes, fast in SPEED_HEADS:
            y = (torch.randn(n, generator=g) if likelihood == "gaussian"
                 else torch.randint(0, classes, (n,), generator=g).float())
            best = float("inf")
            for r in range(repeats):
                model = _speed_model(likelihood, classes, r)
                hist = train(model, ELBO(n, likelihood=likelihood), x, y, epochs=epochs,
                             lr=0.01, batch_size=batch, generator=torch.Generator().manual_seed(r),
                             fast=fast)
                best = min(best, hist.seconds / epochs)
            rows.append({"rows": n, "batch": batch, "head": label, "fast": fast,
                         "ms_per_epoch": 1000 * best})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def speed_table(rows: list[dict[str, object]]) -> str:
    """Markdown: ms per epoch and the ratio to the Gaussian head on the fast engine."""
    heads = [h[0] for h in SPEED_HEADS]
    lines = ["| rows, batch | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for n, batch in SPEED_SIZES:
        sel = {r["head"]: float(r["ms_per_epoch"]) for r in rows  # type: ignore[arg-type]
               if r["rows"] == n and r["batch"] == batch}
        ref = sel[heads[0]]
        cells = [f"{sel[h]:.2f} ms ({sel[h] / ref:.2f}x)" for h in heads]
        lines.append(f"| {n:,}, {'full batch' if batch is None else batch} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--first-split", type=int, default=0,
                        help="seed of the first split (tuning: 100; the docs' table: 0)")
    parser.add_argument("--params", default="{}",
                        help="JSON of BayesianClassifier parameters, e.g. '{\"prior_scale\": 2}'")
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help="comma-separated subset of " + ", ".join(DATASETS))
    parser.add_argument("--out")
    parser.add_argument("--table")
    parser.add_argument("--speed", action="store_true", help="time training per epoch instead")
    args = parser.parse_args()
    if args.table:
        with open(args.table) as fh:
            rows = json.load(fh)
        print(speed_table(rows) if rows and "ms_per_epoch" in rows[0] else table(rows))
        return
    if args.speed:
        rows = speed()
        if args.out:
            with open(args.out, "w") as fh:
                json.dump(rows, fh, indent=1)
        print(speed_table(rows))
        return
    names = args.datasets.split(",")
    if unknown := sorted(set(names) - set(DATASETS)):
        parser.error(f"unknown data set(s) {unknown}; choose from {list(DATASETS)}")
    rows = run(args.splits, args.first_split, json.loads(args.params), names)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)
    print(table(rows))


if __name__ == "__main__":
    main()
