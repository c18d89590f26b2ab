"""BayesianClassifier against MLPClassifier and LogisticRegression (docs/benchmarks.md).

The classification data sets scikit-learn ships inside its package (no download): breast
cancer, wine and digits. Each split is a stratified 80/20 train/test split (seeds 0..K-1); the
same split for every model. Scores on the test rows: accuracy, NLL (nats per row) and ECE
(15 equal-width bins of the top-class confidence, :mod:`varbayes.metrics_classification`).
The baselines see standardised features (``StandardScaler`` in a pipeline) and their default
parameters (``MLPClassifier(max_iter=1000)``, ``LogisticRegression(max_iter=5000)``);
``BayesianClassifier()`` runs with its defaults.

Usage::

    python benchmarks/classification.py --splits 5 --out benchmarks/results/classification.json
    python benchmarks/classification.py --table benchmarks/results/classification.json
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
from varbayes.metrics_classification import accuracy, expected_calibration_error

DATASETS = {"breast_cancer": load_breast_cancer, "wine": load_wine, "digits": load_digits}


def _models(seed: int) -> dict[str, object]:
    return {
        "BayesianClassifier": BayesianClassifier(random_state=seed),
        "MLPClassifier": make_pipeline(StandardScaler(),
                                       MLPClassifier(max_iter=1000, random_state=seed)),
        "LogisticRegression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
    }


def _scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    p = torch.as_tensor(proba, dtype=torch.float64)
    nll = float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-300, None)).mean())
    return {"accuracy": accuracy(y, p), "nll": nll, "ece": expected_calibration_error(y, p)}


def run(splits: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for name, loader in DATASETS.items():
        x, y = loader(return_X_y=True)
        for seed in range(splits):
            xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y,
                                                  random_state=seed)
            for model_name, model in _models(seed).items():
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(xtr, ytr)  # type: ignore[attr-defined]
                proba = model.predict_proba(xte)  # type: ignore[attr-defined]
                rows.append({"dataset": name, "split": seed, "model": model_name,
                             "seconds": time.perf_counter() - start, **_scores(yte, proba)})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict[str, object]]) -> str:
    lines = ["| data set | model | accuracy | NLL | ECE | fit s |", "|---|---|---|---|---|---|"]
    for name in DATASETS:
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
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--out")
    parser.add_argument("--table")
    args = parser.parse_args()
    if args.table:
        with open(args.table) as fh:
            print(table(json.load(fh)))
        return
    rows = run(args.splits)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)
    print(table(rows))


if __name__ == "__main__":
    main()
