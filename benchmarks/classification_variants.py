"""Calibration variants of BayesianClassifier on fitted models (docs/benchmarks.md).

The classification section of ``docs/benchmarks.md`` lists calibration variants tried on the
tuning splits (seeds 100-109) and not kept. They all re-score the *same* fitted models, so this
script fits once and keeps, per data set and split, the raw (temperature 1) per-draw logits of
the test rows (1000 weight draws, seed 1) and of the early-stopping validation rows (500 draws,
seed 2), the temperature the fit chose, and the ``MLPClassifier`` baseline's test
probabilities, in ``--cache DIR`` (``<tag>.pkl`` and ``mlp.pkl``; a cache is reused when
present). Then it prints, per data set, accuracy, NLL and ECE (15 equal-width bins of the
top-class confidence) of each variant, and the paired difference to the MLP (mean, and mean /
its standard error over the splits):

* ``T fitted (sd 0.5)``: the defaults (the temperature of the fit);
* ``T=1``: no temperature;
* ``T prior sd S``: the temperature refitted on the validation rows with a prior of standard
  deviation ``S`` on ``log T`` (``none``: no prior);
* ``Brier T``: the temperature minimising the validation rows' Brier score (no prior, or a
  prior of 0.5 or 2);
* ``two T``: a temperature on each draw's logits and one on the mixture, both fitted (Nelder-
  Mead, each ``log T`` with the prior of 0.5, on the first 200 validation draws).

``--members M`` also scores the equal mixture of ``M`` default models fitted with
``random_state`` ``seed``, ``seed + 1000``, ... (each with its own random validation part):
the prototype of an ensemble. Its calibration maps are fitted on the union of the parts, each
predicted by its own model: a temperature (prior standard deviation 0.5, 1 or 2 on ``log T``),
top-label Platt scaling (an affine map of the top class's logit, the other classes in
proportion; normal priors of 0.5 on its shift and log slope), and the temperature followed by
that map. ``--sweep NAME`` prints the NLL and ECE of one data set's (mixture) predictive at
fixed temperatures: chosen on the test rows, a bound on what one temperature can do, not a
method. ``--reliability NAME`` prints the reliability diagram (15 bins) of one data set's
pooled test rows, the defaults against the MLP. Usage::

    python benchmarks/classification_variants.py --first-split 100 --splits 10 \\
        --cache /tmp/cls_variants
    python benchmarks/classification_variants.py --first-split 100 --splits 10 \\
        --cache /tmp/cls_variants --reliability digits
    python benchmarks/classification_variants.py --first-split 100 --splits 10 \\
        --cache /tmp/cls_variants --members 3 [--sweep digits]
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from classification import DATASETS, _models  # benchmarks/classification.py, its neighbour
from scipy.optimize import minimize, minimize_scalar
from sklearn.model_selection import train_test_split

from varbayes import BayesianClassifier
from varbayes.calibration.temperature import _mixture_log_probs, fit_temperature
from varbayes.kinds import predict_family
from varbayes.metrics_classification import expected_calibration_error
from varbayes.predictive import ClassPrediction

Record = dict[str, Any]


def _split(name: str, seed: int) -> tuple[np.ndarray, ...]:
    x, y = DATASETS[name](return_X_y=True)
    return tuple(train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed))


def fit_records(datasets: list[str], seeds: range, params: dict[str, Any],
                offset: int = 0) -> dict[tuple[str, int], Record]:
    """Fit ``BayesianClassifier(random_state=seed + offset, **params)``; keep raw logits."""
    out: dict[tuple[str, int], Record] = {}
    for name in datasets:
        for seed in seeds:
            xtr, xte, ytr, yte = _split(name, seed)
            clf = BayesianClassifier(random_state=seed + offset, **params).fit(xtr, ytr)
            fitted = clf.model_
            temperature, fitted.temperature = fitted.temperature, 1.0
            rec: Record = {"yte": np.searchsorted(clf.classes_, yte), "T": temperature}
            rec["test_logits"] = predict_family(fitted, xte, 1000,
                                                generator=torch.Generator().manual_seed(1)
                                                ).logits.float().numpy()
            rows = fitted.validation_rows
            if rows is not None:
                rec["val_logits"] = predict_family(fitted, xtr[rows.numpy()], 500,
                                                   generator=torch.Generator().manual_seed(2)
                                                   ).logits.float().numpy()
                rec["yval"] = np.searchsorted(clf.classes_, ytr[rows.numpy()])
            out[name, seed] = rec
            print(name, seed, f"T={temperature:.3f}", flush=True)
    return out


def mlp_records(datasets: list[str], seeds: range) -> dict[tuple[str, int], Record]:
    """The ``MLPClassifier`` baseline of ``benchmarks/classification.py`` on the same splits."""
    out: dict[tuple[str, int], Record] = {}
    for name in datasets:
        for seed in seeds:
            xtr, xte, ytr, yte = _split(name, seed)
            model = _models(seed)["MLPClassifier"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(xtr, ytr)  # type: ignore[attr-defined]
            out[name, seed] = {"test_proba": model.predict_proba(xte),  # type: ignore[attr-defined]
                               "yte": yte}
    return out


def _cached(path: Path, make: Any) -> dict[tuple[str, int], Record]:
    if path.exists():
        with open(path, "rb") as fh:
            return pickle.load(fh)  # type: ignore[no-any-return]
    records = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(records, fh)
    return records


def scores(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Accuracy, NLL (nats per row) and ECE (15 equal-width bins)."""
    nll = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None)).mean())
    return np.array([float((p.argmax(1) == y).mean()), nll,
                     expected_calibration_error(y, torch.as_tensor(p, dtype=torch.float64))])


def _probs(logits: Any, temperature: float) -> np.ndarray:
    log_p = _mixture_log_probs(torch.as_tensor(logits))
    return torch.softmax(log_p / temperature, -1).numpy()


def brier_temperature(logits: Any, y: np.ndarray, prior_sd: float | None) -> float:
    """The temperature minimising the Brier score of the mixture (plus a prior on log T)."""
    log_p = _mixture_log_probs(torch.as_tensor(logits).double())
    onehot = torch.nn.functional.one_hot(torch.as_tensor(y).long(), log_p.shape[1]).double()

    def objective(a: float) -> float:
        q = torch.softmax(log_p / math.exp(a), -1)
        penalty = a * a / (2 * prior_sd * prior_sd) if prior_sd else 0.0
        return float(((q - onehot) ** 2).sum()) + penalty

    res = minimize_scalar(objective, bounds=(-3, 3), method="bounded", options={"xatol": 1e-4})
    return math.exp(res.x)


def _two_t_log_probs(logits: torch.Tensor, per_draw: float, mixture: float) -> torch.Tensor:
    lp = torch.log_softmax(logits / per_draw, -1)
    return torch.log_softmax((torch.logsumexp(lp, 0) - math.log(lp.shape[0])) / mixture, -1)


def two_temperatures(logits: Any, y: np.ndarray, prior_sd: float = 0.5) -> tuple[float, float]:
    """A temperature on each draw's logits and one on the mixture, fitted together."""
    draws = torch.as_tensor(logits).double()[:200]
    index = torch.as_tensor(y).long()[:, None]

    def objective(v: np.ndarray) -> float:
        lp = _two_t_log_probs(draws, math.exp(v[0]), math.exp(v[1]))
        return -float(lp.gather(-1, index).sum()) + float(v @ v) / (2 * prior_sd * prior_sd)

    res = minimize(objective, [0.0, 0.0], method="Nelder-Mead",
                   options={"xatol": 1e-3, "fatol": 1e-4})
    return math.exp(res.x[0]), math.exp(res.x[1])


def variants(rec: Record) -> dict[str, np.ndarray]:
    """Every calibration variant's test probabilities for one fitted model."""
    test, out = rec["test_logits"], {}
    out["T fitted (sd 0.5)"] = _probs(test, rec["T"])
    out["T=1"] = _probs(test, 1.0)
    if "val_logits" not in rec:
        return out
    val = ClassPrediction(torch.as_tensor(rec["val_logits"]).double())
    yval = torch.as_tensor(rec["yval"])
    for sd in (0.25, 1.0, 2.0, None):
        t = fit_temperature(val, yval, prior_sd=100.0 if sd is None else sd)
        out[f"T prior sd {sd or 'none'}"] = _probs(test, t)
    for sd in (None, 0.5, 2.0):
        out[f"Brier T, prior {sd or 'none'}"] = _probs(test, brier_temperature(
            rec["val_logits"], rec["yval"], sd))
    t1, t2 = two_temperatures(rec["val_logits"], rec["yval"])
    out["two T (sd 0.5)"] = _two_t_log_probs(torch.as_tensor(test).double(), t1, t2).exp().numpy()
    return out


def top_label(log_p: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Top-label Platt scaling: the top class's logit ``z`` to ``a + b z``, the rest in proportion.

    A temperature scales every logit alike; this map may sharpen the middling confidences
    (``b > 1``) and leave the top ones where they are. It can change the predicted class when
    it lowers a top class below the next.
    """
    p = log_p.exp()
    c, k = p.max(1)
    c = c.clamp(1e-12, 1 - 1e-12)
    c2 = torch.sigmoid(a + b * (c.log() - torch.log1p(-c)))
    q = p * ((1 - c2) / (1 - c))[:, None]
    q[torch.arange(len(k)), k] = c2
    return q


def fit_top_label(log_p: torch.Tensor, y: np.ndarray, prior_sd: float = 0.5) -> tuple[float, float]:
    """``(a, b)`` of :func:`top_label` by the held-out NLL, normal priors on ``a`` and ``log b``."""
    index = torch.as_tensor(y).long()

    def objective(v: np.ndarray) -> float:
        q = top_label(log_p, v[0], math.exp(v[1]))[torch.arange(len(index)), index]
        return -float(q.clamp_min(1e-300).log().sum()) + float(v @ v) / (2 * prior_sd**2)

    res = minimize(objective, [0.0, 0.0], method="Nelder-Mead",
                   options={"xatol": 1e-4, "fatol": 1e-6})
    return float(res.x[0]), math.exp(res.x[1])


def ensemble(recs: list[Record]) -> dict[str, np.ndarray]:
    """The equal mixture of several fits under a temperature and a top-label map.

    The maps are fitted on the union of the fits' validation parts, each part predicted by its
    own fit (the rows it did not train on).
    """
    test = _mixture_log_probs(torch.as_tensor(np.concatenate([r["test_logits"] for r in recs])))
    val = torch.cat([torch.as_tensor(r["val_logits"]).double() for r in recs], 1)
    val_log_p = torch.cat([_mixture_log_probs(torch.as_tensor(r["val_logits"])) for r in recs])
    yval = np.concatenate([r["yval"] for r in recs])
    label, out = f"{len(recs)} fits", {}
    out[f"{label}, T=1"] = test.exp().numpy()
    for sd in (0.5, 1.0, 2.0):
        t = fit_temperature(ClassPrediction(val), torch.as_tensor(yval), prior_sd=sd)
        out[f"{label}, T fitted (sd {sd})"] = torch.softmax(test / t, -1).numpy()
    a, b = fit_top_label(val_log_p, yval)
    out[f"{label}, top-label (sd 0.5)"] = top_label(test, a, b).numpy()
    t = fit_temperature(ClassPrediction(val), torch.as_tensor(yval))
    a, b = fit_top_label(torch.log_softmax(val_log_p / t, -1), yval)
    out[f"{label}, T then top-label"] = top_label(torch.log_softmax(test / t, -1), a, b).numpy()
    return out


def sweep(fits: list[dict[tuple[str, int], Record]], name: str) -> str:
    """Test ECE and NLL of the fits' mixture at fixed temperatures (chosen on the test rows)."""
    keys = sorted(k for k in fits[0] if k[0] == name)
    lines = ["| T | NLL | ECE |", "|---|---|---|"]
    for t in (1.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3):
        s = np.mean([scores(fits[0][k]["yte"], _probs(np.concatenate(
            [f[k]["test_logits"] for f in fits]), t)) for k in keys], 0)
        lines.append(f"| {t} | {s[1]:.4f} | {s[2]:.4f} |")
    return "\n".join(lines)


def report(fits: list[dict[tuple[str, int], Record]], mlp: dict[tuple[str, int], Record]) -> str:
    """Markdown table of every variant against the MLP, per data set."""
    lines = ["| data set | variant | accuracy | NLL | ECE | NLL - MLP | ECE - MLP |",
             "|---|---|---|---|---|---|---|"]
    for name in [n for n in DATASETS if any(k[0] == n for k in fits[0])]:
        keys = sorted(k for k in fits[0] if k[0] == name)
        rows: dict[str, list[np.ndarray]] = {"MLPClassifier": []}
        for k in keys:
            y = fits[0][k]["yte"]
            rows["MLPClassifier"].append(scores(y, mlp[k]["test_proba"]))
            probs = variants(fits[0][k])
            if len(fits) > 1:
                probs.update(ensemble([f[k] for f in fits]))
            for label, p in probs.items():
                rows.setdefault(label, []).append(scores(y, p))
        base = np.array(rows["MLPClassifier"])
        for label, arr in rows.items():
            a = np.array(arr)
            d = a - base
            se = d.std(0, ddof=1) / np.sqrt(len(d))
            diff = [f"{d[:, j].mean():+.4f} ({d[:, j].mean() / se[j]:+.1f} SE)"
                    if se[j] > 0 else "" for j in (1, 2)]
            lines.append(f"| {name} | {label} | {a[:, 0].mean():.4f} | {a[:, 1].mean():.4f} "
                         f"| {a[:, 2].mean():.4f} | {diff[0]} | {diff[1]} |")
    return "\n".join(lines)


def reliability(fits: dict[tuple[str, int], Record], mlp: dict[tuple[str, int], Record],
                name: str, bins: int = 15) -> str:
    """Reliability diagram of the pooled test rows: the defaults and the MLP, per bin."""
    keys = sorted(k for k in fits if k[0] == name)
    lines = ["| model | bin | rows | confidence | accuracy | gap x rows / N |",
             "|---|---|---|---|---|---|"]
    for label, probs in (("BayesianClassifier", [_probs(fits[k]["test_logits"], fits[k]["T"])
                                                  for k in keys]),
                         ("MLPClassifier", [mlp[k]["test_proba"] for k in keys])):
        conf = np.concatenate([p.max(1) for p in probs])
        right = np.concatenate([p.argmax(1) == fits[k]["yte"] for p, k in zip(probs, keys,
                                                                              strict=True)])
        which = np.minimum((conf * bins).astype(int), bins - 1)
        for b in range(bins):
            sel = which == b
            if sel.any():
                gap = (conf[sel].mean() - right[sel].mean()) * sel.sum() / len(conf)
                lines.append(f"| {label} | {b / bins:.2f}-{(b + 1) / bins:.2f} | {sel.sum()} "
                             f"| {conf[sel].mean():.3f} | {right[sel].mean():.3f} "
                             f"| {gap:+.4f} |")
    return "\n".join(lines)


def cache_parser(doc: str) -> argparse.ArgumentParser:
    """The options of a script on this cache: splits, data sets, parameters, cache and tag."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--first-split", type=int, default=100,
                        help="seed of the first split (tuning splits: 100)")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--params", default="{}", help="JSON of BayesianClassifier parameters")
    parser.add_argument("--cache", required=True, help="folder of the fitted models' logits")
    parser.add_argument("--tag", default="defaults", help="cache file name of these params")
    return parser


def cache_args(parser: argparse.ArgumentParser, args: argparse.Namespace
               ) -> tuple[list[str], range, dict[str, Any], Path]:
    """``(data sets, seeds, params, cache folder)`` of :func:`cache_parser`'s options."""
    names = args.datasets.split(",")
    if unknown := sorted(set(names) - set(DATASETS)):
        parser.error(f"unknown data set(s) {unknown}; choose from {list(DATASETS)}")
    seeds = range(args.first_split, args.first_split + args.splits)
    return names, seeds, json.loads(args.params), Path(args.cache)


def main() -> None:
    parser = cache_parser(__doc__)
    parser.add_argument("--members", type=int, default=1,
                        help="also score the mixture of this many fits (a prototype ensemble)")
    parser.add_argument("--reliability", help="print one data set's reliability diagram")
    parser.add_argument("--sweep", help="print one data set's NLL and ECE at fixed temperatures")
    args = parser.parse_args()
    names, seeds, params, cache = cache_args(parser, args)
    fits = [_cached(cache / f"{args.tag if m == 0 else f'{args.tag}_m{m}'}.pkl",
                    lambda m=m: fit_records(names, seeds, params, 1000 * m))
            for m in range(args.members)]
    mlp = _cached(cache / "mlp.pkl", lambda: mlp_records(names, seeds))
    if args.reliability:
        print(reliability(fits[0], mlp, args.reliability))
        return
    if args.sweep:
        print(sweep(fits, args.sweep))
        return
    print(report(fits, mlp))


if __name__ == "__main__":
    main()
