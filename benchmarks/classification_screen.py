"""Screen BayesianClassifier variants that its parameters do not expose (docs/benchmarks.md).

For tuning on splits that are not the docs' table (``--first-split 100``): the ``family``
kind's options (``ivon_hess_init``, ``ivon_ess``, ``ivon_mc_samples``, ``init_rho``,
``num_particles``, ...), three derived ones, and per data set the paired difference against
``MLPClassifier`` (its scores cached in ``--cache``)::

    python benchmarks/classification_screen.py --datasets digits --splits 10 --first-split 100 \\
        --params '{"method": "ivon", "ivon_hess_init": 0.1, "ess_mult": 4}'

``ess_mult``: IVON's effective sample size as a multiple of the rows that train (the default is
1). ``layer_prior``: the standard deviation of the Gaussian prior per layer, input layer first
(the network is then trained on autograd: the fast engine takes one prior). ``last_layer``:
every layer but the output one at a point (see :func:`_last_layer`). The splits, the
models and the scores are those of ``benchmarks/classification.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

import varbayes.classifier as vc
import varbayes.infer.early_stopping as es
import varbayes.kinds.family as vf
from varbayes.nn import BayesLinear
from varbayes.priors import GaussianPrior

sys.path.insert(0, os.path.dirname(__file__))
import classification as bench  # noqa: E402

KIND_OPTIONS = ("ivon_hess_init", "ivon_beta2", "ivon_mc_samples", "ivon_ess",
                "ivon_clip_radius", "init_rho", "num_particles")
DERIVED = ("ess_mult", "layer_prior", "last_layer", "eb_floor", "keep_last")


def _expose_kind_options() -> None:
    """Let BayesianClassifier pass the kind options set as attributes (``None``: unset)."""
    vc._OPTIONS = (*vc._OPTIONS, *KIND_OPTIONS)  # type: ignore[attr-defined]
    for name in KIND_OPTIONS:
        setattr(vc.BayesianClassifier, name, None)


def _layer_prior(scales: list[float]) -> None:
    """Build every network with prior standard deviation ``scales[l]`` on layer ``l``."""
    build = vf.build_model

    def built(config: dict[str, Any], generator: Any) -> Any:
        model = build(config, generator)
        layers = [m for m in model.modules() if isinstance(m, BayesLinear)]
        if len(layers) != len(scales):
            raise ValueError(f"{len(scales)} prior scales for {len(layers)} layers")
        for layer, scale in zip(layers, scales, strict=True):
            layer.prior = GaussianPrior(0.0, float(scale))
        return model

    vf.build_model = built  # type: ignore[assignment]


def _last_layer() -> None:
    """Keep every layer but the last at (nearly) a point: ``rho`` fixed at -12, so its scale is
    the floor ``min_scale``; its KL is then a constant plus the prior's L2 penalty on the
    means (a MAP body trained jointly with a Bayesian output layer, on autograd)."""
    build = vf.build_model

    def built(config: dict[str, Any], generator: Any) -> Any:
        model = build(config, generator)
        bayes = [m for m in model.modules() if isinstance(m, BayesLinear)]
        for layer in bayes[:-1]:
            for name, param in layer.named_parameters():
                if name.endswith("rho"):
                    param.data.fill_(-12.0)
                    param.requires_grad_(False)
        return model

    vf.build_model = built  # type: ignore[assignment]


class _EmpiricalPrior(GaussianPrior):
    """``N(0, s^2)`` per weight tensor with ``s^2 = mean(mu^2 + sigma^2) + floor^2``.

    With ``floor = 0`` that ``s`` minimises the tensor's KL (type-II maximum of the ELBO); the
    floor, an improper ``exp(-n floor^2 / (2 s^2))`` hyperprior on the scale, keeps it from
    shrinking below ``floor``. The KL is taken to that prior and differentiated through ``s``
    (a subclass of GaussianPrior, so the fast engine, which takes one fixed Gaussian prior, is
    bypassed).
    """

    def __init__(self, floor: float) -> None:
        super().__init__(0.0, 1.0)
        self.floor2 = float(floor) ** 2

    def kl(self, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        n = loc.numel()
        second = (loc * loc + scale * scale).mean()
        s2 = second + self.floor2
        return 0.5 * n * (s2.log() + second / s2 - 1.0) - scale.log().sum()


def _empirical_prior(floor: float) -> None:
    """Build every network with :class:`_EmpiricalPrior` on every layer."""
    build = vf.build_model

    def built(config: dict[str, Any], generator: Any) -> Any:
        model = build(config, generator)
        for layer in model.modules():
            if isinstance(layer, BayesLinear):
                layer.prior = _EmpiricalPrior(floor)
        return model

    vf.build_model = built  # type: ignore[assignment]


def _keep_last() -> None:
    """Every finite check is the new best: training runs all epochs and keeps the last."""

    def offer(self: es.BestCheckpoint, score: float, what: Any = None) -> bool:
        if not np.isfinite(score):
            self.since_best += 1
            return False
        self.best_score, self.best, self.since_best = score, what, 0
        return True

    es.BestCheckpoint.offer = offer  # type: ignore[method-assign]


def _classifier(seed: int, params: dict[str, Any], n_train: int) -> vc.BayesianClassifier:
    clf = vc.BayesianClassifier(random_state=seed, **{
        k: v for k, v in params.items() if k not in KIND_OPTIONS + DERIVED})
    for name in KIND_OPTIONS:
        if name in params:
            setattr(clf, name, params[name])
    if "ess_mult" in params:  # the rows that train: all but the validation part
        clf.ivon_ess = float(params["ess_mult"]) * (n_train - round(0.1 * n_train))  # type: ignore[attr-defined]
    return clf


def _summary(name: str, rows: list[dict[str, Any]]) -> str:
    cells = [name]
    for key in ("accuracy", "nll", "ece"):
        ours = np.array([r[key] for r in rows])
        mlp = np.array([r["mlp"][key] for r in rows])
        diff = ours - mlp
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
        cells.append(f"{key} {ours.mean():.4f} vs MLP {mlp.mean():.4f} "
                     f"({diff.mean():+.4f}, {diff.mean() / se:+.1f} SE)")
    cells.append(f"median T {np.median([r['temperature'] for r in rows]):.2f}")
    return " | ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="{}")
    parser.add_argument("--datasets", default="digits,breast_cancer,wine")
    parser.add_argument("--first-split", type=int, default=100)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--cache", default="/tmp/cls_screen_mlp.json")
    args = parser.parse_args()
    params = json.loads(args.params)
    _expose_kind_options()
    if "layer_prior" in params:
        _layer_prior(params["layer_prior"])
    if params.get("last_layer"):
        _last_layer()
    if "eb_floor" in params:
        _empirical_prior(float(params["eb_floor"]))
    if params.get("keep_last"):
        _keep_last()
    cache = json.load(open(args.cache)) if os.path.exists(args.cache) else {}
    for name in args.datasets.split(","):
        x, y = bench.DATASETS[name](return_X_y=True)
        rows = []
        for seed in range(args.first_split, args.first_split + args.splits):
            xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y,
                                                  random_state=seed)
            key = f"{name}/{seed}"
            if key not in cache:
                mlp = bench._models(seed)["MLPClassifier"]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    mlp.fit(xtr, ytr)  # type: ignore[attr-defined]
                cache[key] = bench._scores(yte, mlp.predict_proba(xte))  # type: ignore[attr-defined]
                with open(args.cache, "w") as f:
                    json.dump(cache, f)
            clf = _classifier(seed, params, len(ytr))
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.fit(xtr, ytr)
            rows.append({"dataset": name, "split": seed, "mlp": cache[key],
                         "seconds": time.perf_counter() - start,
                         "temperature": clf.model_.temperature,
                         "best_epoch": clf.model_.fit_info.get("best_epoch"),
                         **bench._scores(yte, clf.predict_proba(xte))})
            print(json.dumps(rows[-1]), flush=True)
        print("SUMMARY", _summary(name, rows), flush=True)


if __name__ == "__main__":
    main()
