"""Pooled weight draws, a temperature prior off 1, a refit on all rows (docs/benchmarks.md).

The sixth round of BayesianClassifier variants against ``MLPClassifier`` on the tuning splits
(seeds 100-109). It reads (and, when missing, writes) the cache of
``benchmarks/classification_variants.py``: per data set and split, the per-draw logits of the
test rows (1000 draws) and of the early-stopping validation rows (500 draws), and the
temperature the fit chose; ``--tag`` and ``--params`` as there. Per data set it prints accuracy,
NLL and ECE (15 equal-width bins) and the paired difference to the MLP (mean, and mean / its
standard error over the splits) of:

* ``pool a``: the power mean of the draws' probabilities, ``(mean_s p_s^a)^(1/a)``, normalised
  over the classes; ``a = 1`` is the posterior predictive (the linear pool, the defaults),
  ``a = 0`` the logarithmic pool ``softmax(mean_s log p_s)`` (the same as the softmax of the
  mean logits). A lower ``a`` sharpens the rows where the draws disagree and leaves those where
  they agree. Each with the temperature refitted on the validation rows' pooled predictive
  (prior standard deviation 0.5 on ``log T``, as the defaults), and ``T=1``;
* ``pool a chosen``: the ``a`` of ``{1, 0.5, 0.25, 0}`` with the best validation score;
* ``T centre c, sd s``: the linear pool with the temperature's prior on ``log T`` centred at
  ``log c`` instead of 0 (the fitted temperatures are below 1 on every data set);
* with ``--refit``: the defaults' fit as it is, then a fresh network, the same parameters and
  seed, trained without early stopping on *all* training rows for the number of epochs early
  stopping chose (``refit 1.0``) or 1.1 times that (``refit 1.1``: the rows are 1 / 0.9 as many),
  predicted with the temperature fitted on the first fit's validation part (cached in
  ``<tag>_refit.pkl``);

and, with ``--floor``, the ECE each model's test predictions would have if they were exactly
calibrated: labels drawn from the model's own probabilities (200 draws per split). With ~100
test rows the binned ECE is biased upward by the rows in sparsely filled bins, so a model whose
confidences spread over more bins scores a higher ECE at the same calibration. Usage::

    python benchmarks/classification_pools.py --cache /tmp/cls_variants [--floor]
    python benchmarks/classification_pools.py --cache /tmp/cls_variants --tag map200 \\
        --params '{"map_epochs": 200, "map_scale": 0.03}' --refit
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from classification import DATASETS  # benchmarks/classification.py, its neighbour
from classification_variants import (
    Record,
    _cached,
    _split,
    cache_args,
    cache_parser,
    fit_records,
    mlp_records,
    scores,
)
from scipy.optimize import minimize_scalar

from varbayes import BayesianClassifier
from varbayes.kinds import predict_family
from varbayes.metrics_classification import expected_calibration_error

POOLS = (1.0, 0.5, 0.25, 0.0)
CENTRES = ((0.8, 0.5), (0.8, 0.25), (0.7, 0.5), (0.7, 0.25))
REFIT_FACTORS = (1.0, 1.1)


def pooled_log_probs(logits: Any, a: float) -> torch.Tensor:
    """Log of the power-mean pool of the draws' probabilities, shape (n, K), normalised."""
    lp = torch.log_softmax(torch.as_tensor(logits).double(), -1)
    m = lp.mean(0) if a == 0 else (torch.logsumexp(a * lp, 0) - math.log(lp.shape[0])) / a
    return torch.log_softmax(m, -1)


def fit_t(log_p: torch.Tensor, y: np.ndarray, centre: float = 1.0,
          sd: float = 0.5) -> tuple[float, float]:
    """``(T, objective)``: held-out NLL plus a normal prior on ``log T`` (mean ``log centre``)."""
    index = torch.as_tensor(y).long()[:, None]
    mu = math.log(centre)

    def objective(a: float) -> float:
        nll = -float(torch.log_softmax(log_p / math.exp(a), -1).gather(-1, index).sum())
        value = nll + (a - mu) ** 2 / (2 * sd * sd)
        return value if math.isfinite(value) else 1e300

    res = minimize_scalar(objective, bounds=(-3, 3), method="bounded", options={"xatol": 1e-4})
    return math.exp(res.x), float(res.fun)


def _tempered(log_p: torch.Tensor, t: float) -> np.ndarray:
    return torch.softmax(log_p / t, -1).numpy()


def variants(rec: Record, refit: Record | None) -> dict[str, np.ndarray]:
    """Every variant's test probabilities for one split's fit."""
    out: dict[str, np.ndarray] = {}
    best: tuple[float, str] = (math.inf, "")
    for a in POOLS:
        val, test = pooled_log_probs(rec["val_logits"], a), pooled_log_probs(rec["test_logits"], a)
        t, value = fit_t(val, rec["yval"])
        out[f"pool {a:g}"] = _tempered(test, t)
        out[f"pool {a:g}, T=1"] = _tempered(test, 1.0)
        best = min(best, (value, f"pool {a:g}"))
    out["pool a chosen"] = out[best[1]]
    val, test = pooled_log_probs(rec["val_logits"], 1.0), pooled_log_probs(rec["test_logits"], 1.0)
    for centre, sd in CENTRES:
        out[f"T centre {centre}, sd {sd}"] = _tempered(test, fit_t(val, rec["yval"], centre, sd)[0])
    if refit is not None:
        t = fit_t(val, rec["yval"])[0]
        for f in REFIT_FACTORS:
            out[f"refit {f}"] = _tempered(pooled_log_probs(refit[f"logits {f}"], 1.0), t)
    return out


def refit_records(datasets: list[str], seeds: range, params: dict[str, Any],
                  fits: dict[tuple[str, int], Record]) -> dict[tuple[str, int], Record]:
    """Fresh networks on all training rows for the epochs each cached fit's early stopping chose."""
    out: dict[tuple[str, int], Record] = {}
    for name in datasets:
        for seed in seeds:
            xtr, xte, ytr, _ = _split(name, seed)
            base = BayesianClassifier(random_state=seed, **params).fit(xtr, ytr)
            if abs(base.model_.temperature - fits[name, seed]["T"]) > 1e-9:
                raise RuntimeError(f"{name} {seed}: the refit's first fit is not the cached one")
            epochs = int(base.model_.fit_info["best_epoch"])
            rec: Record = {"epochs": epochs}
            for f in REFIT_FACTORS:
                clf = BayesianClassifier(random_state=seed, early_stopping=False,
                                         epochs=max(1, round(epochs * f)), **params).fit(xtr, ytr)
                rec[f"logits {f}"] = predict_family(
                    clf.model_, xte, 1000, generator=torch.Generator().manual_seed(1)
                ).logits.float().numpy()
            out[name, seed] = rec
            print(name, seed, "epochs", epochs, flush=True)
    return out


def calibrated_ece(p: np.ndarray, rng: np.random.Generator, reps: int = 200) -> float:
    """Mean ECE of ``p`` when the labels are drawn from ``p`` itself (exactly calibrated)."""
    cumulative = p.cumsum(1)
    values = []
    for _ in range(reps):
        y = np.minimum((rng.random((len(p), 1)) > cumulative).sum(1), p.shape[1] - 1)
        values.append(expected_calibration_error(y, torch.as_tensor(p, dtype=torch.float64)))
    return float(np.mean(values))


def _row(name: str, label: str, a: np.ndarray, base: np.ndarray) -> str:
    d = a - base
    se = d.std(0, ddof=1) / np.sqrt(len(d))
    diff = [f"{d[:, j].mean():+.4f} ({d[:, j].mean() / se[j]:+.1f} SE)" if se[j] > 0 else ""
            for j in (1, 2)]
    return (f"| {name} | {label} | {a[:, 0].mean():.4f} | {a[:, 1].mean():.4f} "
            f"| {a[:, 2].mean():.4f} | {diff[0]} | {diff[1]} |")


def report(fits: dict[tuple[str, int], Record], mlp: dict[tuple[str, int], Record],
           refits: dict[tuple[str, int], Record] | None) -> str:
    """Markdown table of every variant against the MLP, per data set."""
    lines = ["| data set | variant | accuracy | NLL | ECE | NLL - MLP | ECE - MLP |",
             "|---|---|---|---|---|---|---|"]
    for name in [n for n in DATASETS if any(k[0] == n for k in fits)]:
        keys = sorted(k for k in fits if k[0] == name)
        rows: dict[str, list[np.ndarray]] = {"MLPClassifier": []}
        for k in keys:
            y = fits[k]["yte"]
            rows["MLPClassifier"].append(scores(y, mlp[k]["test_proba"]))
            for label, p in variants(fits[k], None if refits is None else refits[k]).items():
                rows.setdefault(label, []).append(scores(y, p))
        base = np.array(rows["MLPClassifier"])
        lines += [_row(name, label, np.array(arr), base) for label, arr in rows.items()]
    return "\n".join(lines)


def floor_report(fits: dict[tuple[str, int], Record], mlp: dict[tuple[str, int], Record]) -> str:
    """Test ECE against the ECE the same predictions would have if exactly calibrated."""
    rng = np.random.default_rng(0)
    lines = ["| data set | model | ECE | ECE if exactly calibrated | rows of confidence < 14/15 |",
             "|---|---|---|---|---|"]
    for name in [n for n in DATASETS if any(k[0] == n for k in fits)]:
        keys = sorted(k for k in fits if k[0] == name)
        for label, probs in (
                ("BayesianClassifier", [_tempered(pooled_log_probs(fits[k]["test_logits"], 1.0),
                                                  fits[k]["T"]) for k in keys]),
                ("MLPClassifier", [mlp[k]["test_proba"] for k in keys])):
            ece = np.mean([scores(fits[k]["yte"], p)[2] for k, p in zip(keys, probs, strict=True)])
            floor = np.mean([calibrated_ece(p, rng) for p in probs])
            middling = np.mean([(p.max(1) < 14 / 15).sum() for p in probs])
            lines.append(f"| {name} | {label} | {ece:.4f} | {floor:.4f} | {middling:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = cache_parser(__doc__)
    parser.add_argument("--refit", action="store_true", help="also refit on all training rows")
    parser.add_argument("--floor", action="store_true",
                        help="print the ECE each model would have if exactly calibrated")
    args = parser.parse_args()
    names, seeds, params, cache = cache_args(parser, args)
    fits = _cached(cache / f"{args.tag}.pkl", lambda: fit_records(names, seeds, params))
    mlp = _cached(cache / "mlp.pkl", lambda: mlp_records(names, seeds))
    if args.floor:
        print(floor_report(fits, mlp))
        return
    refits = None
    if args.refit:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            refits = _cached(cache / f"{args.tag}_refit.pkl",
                             lambda: refit_records(names, seeds, params, fits))
    print(report(fits, mlp, refits))


if __name__ == "__main__":
    main()
