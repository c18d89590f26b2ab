"""How the prediction draws of BayesianClassifier move its test NLL and ECE (docs/benchmarks.md).

The eighth round of the classification section: the Monte Carlo error of the predictive
:math:`\\bar p = \\frac1S \\sum_s p_s` (``S`` weight draws) is of the order of the gaps to
``MLPClassifier``, and :math:`\\log \\bar p_y` is biased low for finite ``S`` (Jensen), so the
NLL is biased up. This script fits each model once (``BayesianClassifier(random_state=seed,
**params)``, pickled in ``--cache DIR``), then re-predicts the test rows with

* ``S`` of ``--draws`` (default 1024, 4096, 16384) weight draws, the temperature refitted on the
  early-stopping validation rows with ``S / 2`` draws (the shipped fit uses 500 for 1000);
* a weight-noise ``sampler``: ``plain`` (independent normals), ``antithetic`` (pairs
  ``eps, -eps`` of every weight at once) or ``sobol`` (scrambled Sobol points through the
  inverse normal CDF, :class:`torch.quasirandom.SobolEngine`, one dimension per weight);
* two prediction seeds per setting (``--pred-seeds``),

and prints, per data set and setting, accuracy, NLL, ECE (15 equal-width bins) as means over the
splits, the paired difference to ``MLPClassifier``, and the Monte Carlo spread across the
prediction seeds: the standard deviation of one prediction's split NLL and ECE (per split over
the seeds, root mean square over the splits), and of a test row's :math:`\\log \\bar p_y` at
temperature 1 (root mean square, median, 90th and 99th percentile over the rows). The network
runs in float64 on weights drawn here (the product draws float32 weights), chunks of 1024
draws. Usage::

    python benchmarks/classification_draws.py --first-split 100 --splits 10 --cache /tmp/cls8
    python benchmarks/classification_draws.py --first-split 100 --splits 10 --cache /tmp/cls8 \\
        --tag map200 --params '{"map_epochs": 200, "map_scale": 0.03}'
    python benchmarks/classification_draws.py --first-split 100 --cache /tmp/cls8 --draws 1024 \\
        --pred-seeds 1,2,3,4,5,6,7,8 --fixed-t     # 8 seeds, the fit's temperature
    python benchmarks/classification_draws.py --first-split 100 --cache /tmp/cls8 --predict-time
    python benchmarks/classification_draws.py --first-split 100 --cache /tmp/cls8 --draws 1024 \\
        --samplers plain --pred-seeds 1 --posterior-scale 0.5    # round 9: sigma -> 0.5 sigma

``--predict-time`` times the product's own prediction (``predict_family``, 1000 draws) with
independent and with Sobol noise on the digits model of one split.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from classification import DATASETS, _models  # benchmarks/classification.py, its neighbour
from classification_variants import scores
from sklearn.model_selection import train_test_split

from varbayes import BayesianClassifier
from varbayes.calibration.temperature import fit_temperature
from varbayes.predictive import ClassPrediction

CHUNK = 1024


def _split(name: str, seed: int) -> tuple[np.ndarray, ...]:
    x, y = DATASETS[name](return_X_y=True)
    return tuple(train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed))


def fitted(cache: Path, tag: str, name: str, seed: int, params: dict[str, Any]
           ) -> BayesianClassifier:
    """The fitted classifier of one data set and split, from the cache or fitted now."""
    path = cache / tag / f"{name}_{seed}.pkl"
    if path.exists():
        with open(path, "rb") as fh:
            clf: BayesianClassifier = pickle.load(fh)
        if not hasattr(clf, "prediction_noise"):  # pickled before the option existed
            clf.prediction_noise = "normal"
        return clf
    xtr, _, ytr, _ = _split(name, seed)
    clf = BayesianClassifier(random_state=seed, **params).fit(xtr, ytr)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(clf, fh)
    return clf


def mlp_proba(cache: Path, name: str, seed: int) -> np.ndarray:
    """``MLPClassifier``'s test probabilities (benchmarks/classification.py's baseline)."""
    path = cache / "mlp" / f"{name}_{seed}.npy"
    if path.exists():
        return np.load(path)  # type: ignore[no-any-return]
    xtr, xte, ytr, _ = _split(name, seed)
    model = _models(seed)["MLPClassifier"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(xtr, ytr)  # type: ignore[attr-defined]
    proba = model.predict_proba(xte)  # type: ignore[attr-defined]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, proba)
    return proba  # type: ignore[no-any-return]


class Noise:
    """Standard normal weight noise, ``num`` draws of ``dims`` numbers, in chunks."""

    def __init__(self, sampler: str, dims: int, seed: int) -> None:
        self.sampler, self.dims = sampler, dims
        self.g = torch.Generator().manual_seed(seed)
        self.sobol = torch.quasirandom.SobolEngine(dims, scramble=True, seed=seed) \
            if sampler == "sobol" else None

    def draw(self, num: int) -> torch.Tensor:
        if self.sampler == "plain":
            return torch.randn((num, self.dims), generator=self.g, dtype=torch.float64)
        if self.sampler == "antithetic":
            half = torch.randn(((num + 1) // 2, self.dims), generator=self.g, dtype=torch.float64)
            return torch.cat([half, -half])[:num]
        assert self.sobol is not None
        u = self.sobol.draw(num, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
        return torch.special.ndtri(u)


@torch.no_grad()
def mixture_log_probs(clf: BayesianClassifier, x: np.ndarray, num: int, sampler: str,
                      seed: int, posterior_scale: float = 1.0) -> torch.Tensor:
    """:math:`\\log \\bar p` (n, K) at raw inputs ``x`` over ``num`` draws of ``sampler``.

    ``posterior_scale``: every posterior standard deviation multiplied by it (1: the posterior;
    0: the network at the posterior means).
    """
    fit = clf.model_
    z = fit.x_scaler.transform(torch.as_tensor(x, dtype=torch.float64)).double()
    layers = list(fit.model.layers)
    shapes = []
    for layer in layers:
        shapes.append((layer.weight_loc.double(), layer.weight_scale.double() * posterior_scale))
        shapes.append((layer.bias_loc.double(), layer.bias_scale.double() * posterior_scale))
    dims = sum(loc.numel() for loc, _ in shapes)
    noise = Noise(sampler, dims, seed)
    total = None
    for start in range(0, num, CHUNK):
        c = min(CHUNK, num - start)
        eps, off, params = noise.draw(c), 0, []
        for loc, scale in shapes:
            k = loc.numel()
            params.append(loc + scale * eps[:, off:off + k].reshape(c, *loc.shape))
            off += k
        h = z.unsqueeze(0).expand(c, *z.shape)
        for i in range(len(layers)):
            h = torch.baddbmm(params[2 * i + 1].reshape(c, 1, -1), h, params[2 * i])
            if i < len(layers) - 1:
                h = h.relu()
        if h.shape[-1] == 1:  # Bernoulli head: logits (0, f)
            h = torch.cat([torch.zeros_like(h), h], -1)
        p = torch.softmax(h, -1).sum(0)
        total = p if total is None else total + p
    assert total is not None
    return (total / num).log()


def evaluate(clf: BayesianClassifier, name: str, seed: int, num: int, sampler: str,
             pred_seed: int, fixed_t: bool = False, posterior_scale: float = 1.0
             ) -> dict[str, Any]:
    """Test scores with the temperature refitted on the validation rows (``num // 2`` draws).

    ``fixed_t``: with the temperature of the fit instead (the prediction's own noise alone).
    ``posterior_scale``: :func:`mixture_log_probs`'s.
    """
    xtr, xte, ytr, yte = _split(name, seed)
    y = np.searchsorted(clf.classes_, yte)
    t = float(clf.model_.temperature)
    if not fixed_t:
        rows = clf.model_.validation_rows
        log_val = mixture_log_probs(clf, xtr[rows.numpy()], num // 2, sampler, pred_seed + 1000,
                                    posterior_scale)
        yval = torch.as_tensor(np.searchsorted(clf.classes_, ytr[rows.numpy()]))
        t = fit_temperature(ClassPrediction(log_val.unsqueeze(0)), yval)
    raw = mixture_log_probs(clf, xte, num, sampler, pred_seed, posterior_scale)
    log_test = torch.log_softmax(raw / t, -1)
    acc, nll, ece = scores(y, log_test.exp().numpy())
    return {"accuracy": acc, "nll": nll, "ece": ece, "T": t,
            "row_logp": log_test[np.arange(len(y)), y].numpy(),
            "row_logp_raw": raw[np.arange(len(y)), y].numpy()}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    cache, params = Path(args.cache), json.loads(args.params)
    out = []
    for name in args.datasets.split(","):
        for seed in range(args.first_split, args.first_split + args.splits):
            clf = fitted(cache, args.tag, name, seed, params)
            y = np.searchsorted(clf.classes_, _split(name, seed)[3])
            mlp = scores(y, mlp_proba(cache, name, seed))
            shipped = scores(y, clf.predict_proba(_split(name, seed)[1]))
            base = {"dataset": name, "split": seed, "mlp": mlp.tolist(),
                    "shipped": shipped.tolist(), "T_fit": clf.model_.temperature}
            for num in [int(d) for d in args.draws.split(",")]:
                for sampler in args.samplers.split(","):
                    for ps in [int(s) for s in args.pred_seeds.split(",")]:
                        rec = {**base, "draws": num, "sampler": sampler, "pred_seed": ps,
                               **evaluate(clf, name, seed, num, sampler, ps, args.fixed_t,
                                          args.posterior_scale)}
                        out.append(rec)
                        print(json.dumps({k: v for k, v in rec.items()
                                          if not k.startswith("row_")}), flush=True)
    return out


def summary(recs: list[dict[str, Any]]) -> str:
    lines = ["| data set | draws | sampler | accuracy | NLL | ECE | NLL - MLP | ECE - MLP "
             "| MC sd split NLL | MC sd split ECE | MC sd row log p: RMS | median | 90 % | 99 % |",
             "|---" * 14 + "|"]
    for name in dict.fromkeys(r["dataset"] for r in recs):
        sel = [r for r in recs if r["dataset"] == name]
        splits = sorted({r["split"] for r in sel})
        first = {r["split"]: r for r in sel}
        mlp = np.array([first[s]["mlp"] for s in splits])
        shipped = np.array([first[s]["shipped"] for s in splits])
        lines.append(f"| {name} | MLPClassifier | | {mlp[:, 0].mean():.4f} | "
                     f"{mlp[:, 1].mean():.4f} | {mlp[:, 2].mean():.4f} | | | | | | | | |")
        lines.append(f"| {name} | 1000 (shipped, `predict_seed_`) | plain | "
                     f"{shipped[:, 0].mean():.4f} | {shipped[:, 1].mean():.4f} | "
                     f"{shipped[:, 2].mean():.4f} | {_paired(shipped[:, 1] - mlp[:, 1])} | "
                     f"{_paired(shipped[:, 2] - mlp[:, 2])} | | | | | | |")
        for num, sampler in dict.fromkeys((r["draws"], r["sampler"]) for r in sel):
            by = {(r["split"], r["pred_seed"]): r for r in sel
                  if r["draws"] == num and r["sampler"] == sampler}
            seeds = sorted({ps for _, ps in by})
            m = np.array([[[by[s, ps][k] for k in ("accuracy", "nll", "ece")] for s in splits]
                          for ps in seeds])  # (seeds, splits, 3)
            mean = m.mean(0)
            cells = [f"{v:.4f}" for v in mean.mean(0)]
            cells += [_paired(mean[:, 1] - mlp[:, 1]), _paired(mean[:, 2] - mlp[:, 2])]
            if len(seeds) >= 2:
                var = m.var(0, ddof=1).mean(0)  # per split over the seeds, mean over splits
                cells += [f"{math.sqrt(var[1]):.4f}", f"{math.sqrt(var[2]):.4f}"]
                rows = np.concatenate([np.stack([by[s, ps]["row_logp_raw"] for ps in seeds])
                                       for s in splits], 1).std(0, ddof=1)
                cells += [f"{math.sqrt((rows ** 2).mean()):.4f}", f"{np.median(rows):.5f}",
                          f"{np.quantile(rows, 0.9):.4f}", f"{np.quantile(rows, 0.99):.4f}"]
            else:
                cells += [""] * 6
            lines.append(f"| {name} | {num} | {sampler} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _paired(d: np.ndarray) -> str:
    se = d.std(ddof=1) / math.sqrt(len(d))
    return f"{d.mean():+.4f} ({d.mean() / se:+.1f} SE)"


def predict_time(clf: BayesianClassifier, x_test: np.ndarray, repeats: int = 2) -> list[str]:
    """Seconds of ``predict_family`` (1000 draws) per noise, the best of alternating runs.

    On the digits test rows and on 100,000 rows drawn around the training data (chunks of
    4096 rows, as the CLI predicts).
    """
    from varbayes.kinds import predict_family

    rng = np.random.default_rng(0)
    big = rng.normal(size=(100_000, x_test.shape[1])) * x_test.std(0) + x_test.mean(0)
    lines = []
    for label, x, reps, chunk in (("digits test rows (360)", x_test, 10 * repeats, None),
                                  ("100,000 rows", big, repeats, 4096)):
        best = {"normal": math.inf, "sobol": math.inf}
        for r in range(reps):
            for noise in best:
                start = time.perf_counter()
                predict_family(clf.model_, x, 1000, noise=noise, chunk_size=chunk,
                               generator=torch.Generator().manual_seed(r))
                best[noise] = min(best[noise], time.perf_counter() - start)
        lines.append(f"| {label} | {best['normal']:.3f} s | {best['sobol']:.3f} s | "
                     f"{best['sobol'] / best['normal']:.2f}x |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--first-split", type=int, default=100)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--params", default="{}")
    parser.add_argument("--tag", default="defaults")
    parser.add_argument("--cache", required=True)
    parser.add_argument("--draws", default="1024,4096,16384")
    parser.add_argument("--samplers", default="plain,antithetic,sobol")
    parser.add_argument("--pred-seeds", default="1,2")
    parser.add_argument("--fixed-t", action="store_true",
                        help="keep the fit's temperature (no refit on the validation rows)")
    parser.add_argument("--posterior-scale", type=float, default=1.0,
                        help="every posterior sd times this at prediction (round 9)")
    parser.add_argument("--out", help="pickle of the records (with per-row log p)")
    parser.add_argument("--predict-time", action="store_true",
                        help="time predict_family on digits (split --first-split) instead")
    args = parser.parse_args()
    if args.predict_time:
        torch.set_num_threads(1)
        clf = fitted(Path(args.cache), args.tag, "digits", args.first_split,
                     json.loads(args.params))
        print("| rows | independent draws | Sobol draws | ratio |\n|---|---|---|---|")
        predict_time(clf, _split("digits", args.first_split)[1])
        return
    recs = run(args)
    if args.out:
        with open(args.out, "wb") as fh:
            pickle.dump(recs, fh)
    print(summary(recs))


if __name__ == "__main__":
    main()
