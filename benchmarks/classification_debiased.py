"""The classification table's binned calibration error, plain and debiased (docs/benchmarks.md).

The table's ECE (15 equal-width bins of the top-class confidence, the mean absolute gap
between a bin's accuracy and its mean confidence, weighted by its rows) is biased upward by
the binomial noise of each bin's accuracy, more so for a model with more rows in sparsely
filled bins. This script re-fits the table's three models on its splits and reports, per data
set and model, the mean over the splits of

* ``ece``: the table's ECE;
* ``l2``: the root of the weighted mean *squared* gap (the plug-in l2 calibration error);
* ``l2 debiased``: the same with each bin's squared gap less its binomial variance
  ``acc (1 - acc) / (n_b - 1)`` (Kumar, Liang & Ma 2019, "Verified uncertainty calibration"),
  an unbiased estimate of the binned squared error; reported as ``sign * sqrt(|.|)`` per split,
  since on a few rows it can come out negative.

::

    python benchmarks/classification_debiased.py --splits 10
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.dirname(__file__))
import classification as bench  # noqa: E402

BINS = 15


def calibration_errors(y: np.ndarray, proba: np.ndarray) -> tuple[float, float, float]:
    """(ECE, plug-in l2, debiased l2) of the top-class confidence, :data:`BINS` bins."""
    conf = proba.max(1)
    correct = (proba.argmax(1) == y).astype(float)
    which = np.minimum((conf * BINS).astype(int), BINS - 1)
    ece = plug = debiased = 0.0
    for b in np.unique(which):
        rows = which == b
        n_b, acc = int(rows.sum()), float(correct[rows].mean())
        gap = acc - float(conf[rows].mean())
        weight = n_b / len(y)
        ece += weight * abs(gap)
        plug += weight * gap * gap
        debiased += weight * (gap * gap - (acc * (1 - acc) / (n_b - 1) if n_b > 1 else 0.0))
    return ece, float(np.sqrt(plug)), float(np.sign(debiased) * np.sqrt(abs(debiased)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-split", type=int, default=0)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--datasets", default=",".join(bench.DATASETS))
    args = parser.parse_args()
    print("| data set | model | ECE | l2 | l2 debiased |\n|---|---|---|---|---|")
    for name in args.datasets.split(","):
        x, y = bench.DATASETS[name](return_X_y=True)
        scores: dict[str, list[tuple[float, float, float]]] = {}
        for seed in range(args.first_split, args.first_split + args.splits):
            xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y,
                                                  random_state=seed)
            for model_name, model in bench._models(seed).items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(xtr, ytr)  # type: ignore[attr-defined]
                proba = model.predict_proba(xte)  # type: ignore[attr-defined]
                scores.setdefault(model_name, []).append(calibration_errors(yte, proba))
        for model_name, values in scores.items():
            mean = np.array(values).mean(0)
            print(f"| {name} | {model_name} | {mean[0]:.4f} | {mean[1]:.4f} | {mean[2]:.4f} |",
                  flush=True)


if __name__ == "__main__":
    main()
