"""A pretrained MLP made Bayesian in its last layer, against full conversion and IVON (UCI).

On one of the five UCI regression data sets (``varbayes.data.load_uci``):

* ``pretrained``: an MLP (50 hidden units, a heteroscedastic Gaussian head) trained by Adam on
  the Gaussian NLL: a point estimate, the starting point of the next two;
* ``last_layer``: ``bayesianize(net, "last", prior="pretrained")``, then the ELBO
  (``varbayes.infer.train``): a variational last layer centred on the trained weights;
* ``last_layer_full``: the same with ``covariance="full"``: each output unit's weights and bias
  under one full-covariance Gaussian (``varbayes.nn.FullCovLinear``);
* ``all_layers``: ``bayesianize(net, "all")``, then the ELBO;
* ``ivon``: the same MLP, untouched, trained from scratch by ``varbayes.optim.IVON`` with the
  library's IVON defaults (``varbayes.kinds.ivon``: lr 0.2, h0 1, beta2 0.999, update clipped at
  0.03, ess = N, prior N(0, 1)) for 3 x the epochs; the predictive draws from its posterior
  (``predictive(net, x, S, posterior=opt)``);
* ``estimator_bbb`` and ``estimator_ivon``: ``BayesianRegressor()`` and
  ``BayesianRegressor(method="ivon")`` with their defaults (the ``hetero`` kind: 20 hidden units
  and a 20-unit noise network, early stopping on 10 % of the training rows).

Each reports the seconds of its own training, the test log-likelihood, RMSE and the coverage of
the central 90 % interval, in data units.

    python examples/uci_last_layer.py --dataset yacht
    python examples/uci_last_layer.py --dataset all --splits 3 --out results.json
    python examples/uci_last_layer.py --quick        # what CI runs
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from varbayes import BayesianRegressor
from varbayes.data import load_uci
from varbayes.data.uci import list_uci
from varbayes.infer import ELBO, train
from varbayes.kinds.ivon import IVON_DEFAULTS, IVON_OPTIONS
from varbayes.likelihoods.gaussian import gaussian_log_prob
from varbayes.metrics import evaluate
from varbayes.nn import GaussianHead, bayesianize
from varbayes.optim import IVON
from varbayes.predictive import Prediction, predictive

ROOT = Path(os.environ.get("VARBAYES_DATA_DIR")
            or Path(__file__).resolve().parents[2] / "shared" / "data" / "uci")


def mlp(d: int, hidden: int) -> nn.Module:
    """One hidden layer and a heteroscedastic Gaussian head."""
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 2), GaussianHead())


def _scores(pred: Prediction, mean: float, std: float, y: np.ndarray) -> dict[str, float]:
    s = evaluate(y, pred.affine(torch.tensor(mean, dtype=torch.float64),
                                torch.tensor(std, dtype=torch.float64)), level=0.9)
    return {"ll": -s["nll"], "rmse": s["rmse"], "coverage_90": s["coverage_90"]}


def run_split(name: str, split: int, root: Path, quick: bool) -> dict[str, dict[str, float]]:
    """Every method on one split: its scores in data units and seconds."""
    data = load_uci(name, split, root=root)
    x_mean, x_std = data.x_train.mean(0), data.x_train.std(0) + 1e-12
    y_mean, y_std = float(data.y_train.mean()), float(data.y_train.std())
    x = torch.tensor((data.x_train - x_mean) / x_std, dtype=torch.float32)
    y = torch.tensor((data.y_train - y_mean) / y_std, dtype=torch.float32)
    xt = torch.tensor((data.x_test - x_mean) / x_std, dtype=torch.float32)
    epochs = 100 if quick else 1000
    samples = 50 if quick else 200
    n = len(y)
    results: dict[str, dict[str, float]] = {}
    torch.manual_seed(split)

    start = time.perf_counter()
    net = mlp(x.shape[1], data.n_hidden)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(epochs):
        opt.zero_grad()
        out = net(x)
        (-gaussian_log_prob(y, out["loc"], out["scale"]).mean()).backward()
        opt.step()
    pretrain = time.perf_counter() - start
    with torch.no_grad():
        out = net(xt)
    point = Prediction(out["loc"][None].double(), out["scale"][None].double())
    results["pretrained"] = {**_scores(point, y_mean, y_std, data.y_test), "seconds": pretrain}

    for label, layers, prior, covariance in (
            ("last_layer", "last", "pretrained", "diagonal"),
            ("last_layer_full", "last", "pretrained", "full"),
            ("all_layers", "all", None, "diagonal")):
        start = time.perf_counter()
        bnn = bayesianize(copy.deepcopy(net), layers, prior=prior, init_scale=0.1,
                          covariance=covariance)
        train(bnn, ELBO(n), x, y, epochs=epochs, lr=0.003,
              generator=torch.Generator().manual_seed(split))
        seconds = time.perf_counter() - start
        pred = predictive(bnn, xt, samples, generator=torch.Generator().manual_seed(1))
        results[label] = {**_scores(pred.__class__(pred.loc.double(), pred.scale.double()),
                                    y_mean, y_std, data.y_test),
                          "seconds": seconds + pretrain}

    start = time.perf_counter()
    plain = mlp(x.shape[1], data.n_hidden)
    ivon = IVON(plain.parameters(), lr=IVON_DEFAULTS["hetero"]["lr"], ess=n, weight_decay=1.0 / n,
                hess_init=IVON_OPTIONS["ivon_hess_init"], beta2=IVON_OPTIONS["ivon_beta2"],
                clip_radius=IVON_OPTIONS["ivon_clip_radius"],
                generator=torch.Generator().manual_seed(split))
    for _ in range(3 * epochs):
        with ivon.sampled_params(train=True):
            ivon.zero_grad()
            out = plain(x)
            (-gaussian_log_prob(y, out["loc"], out["scale"]).mean()).backward()
        ivon.step()
    seconds = time.perf_counter() - start
    pred = predictive(plain, xt, samples, posterior=ivon,
                      generator=torch.Generator().manual_seed(1))
    results["ivon"] = {**_scores(Prediction(pred.loc.double(), pred.scale.double()), y_mean,
                                 y_std, data.y_test), "seconds": seconds}

    for label, method in (("estimator_bbb", "bbb"), ("estimator_ivon", "ivon")):
        start = time.perf_counter()
        reg = BayesianRegressor(method=method, epochs=epochs if quick else None,
                                random_state=split).fit(data.x_train, data.y_train)
        seconds = time.perf_counter() - start
        pred = reg.model_.predict(data.x_test, samples, generator=torch.Generator().manual_seed(1))
        s = evaluate(data.y_test, pred, level=0.9)
        results[label] = {"ll": -s["nll"], "rmse": s["rmse"], "coverage_90": s["coverage_90"],
                          "seconds": seconds}
    return results


def _summary(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Mean of each figure over the splits, its standard error (``_se``) and the splits' values."""
    out: dict[str, Any] = {}
    for key in rows[0]:
        values = np.array([r[key] for r in rows])
        out[key] = float(values.mean())
        se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
        out[f"{key}_se"] = float(se)
        out[f"{key}_splits"] = values.tolist()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the data sets and splits asked for; print a row per method."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="yacht", help="a data set name or 'all'")
    parser.add_argument("--splits", type=int, default=1)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--quick", action="store_true", help="a tenth of the epochs (CI)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    names = list_uci(args.root) if args.dataset == "all" else [args.dataset]
    report: dict[str, Any] = {}
    for name in names:
        runs = [run_split(name, i, args.root, args.quick) for i in range(args.splits)]
        report[name] = {method: _summary([r[method] for r in runs]) for method in runs[0]}
        report[name]["splits"] = args.splits
        for method, row in report[name].items():
            if isinstance(row, dict):
                print(f"{name:18s} {method:14s} LL {row['ll']:7.3f} ± {row['ll_se']:.3f}  RMSE "
                      f"{row['rmse']:7.3f} ± {row['rmse_se']:.3f}  cov90 {row['coverage_90']:.2f}"
                      f"  {row['seconds']:6.1f} s")
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
