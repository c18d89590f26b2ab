"""A point-estimate network, with or without a variational last layer (docs/benchmarks.md).

Round 9 of the classification study (issue 10), on the tuning splits: does a network trained
as ``MLPClassifier`` trains it, made Bayesian in its output layer only, beat the mean-field
network of ``BayesianClassifier``? Per split (the splits and scores of
``benchmarks/classification.py``; ``MLPClassifier``'s scores from the cache that
``benchmarks/classification_screen.py`` writes):

1. Standardise the features; hold out 10 % of the training rows (stratified).
2. A network of one hidden layer (``--hidden``, ReLU) trained by Adam (lr 1e-3, batches of
   200) on the cross-entropy plus the L2 penalty of a ``N(0, wd^2)`` prior, early-stopped on
   the held-out rows' NLL (patience 50 epochs, at most 2000).
3. Unless ``--no-vi``: a mean-field Gaussian over the output layer's weights and biases, at the
   trained ones with standard deviation softplus(-6), fitted by Adam (lr 1e-2, ``--vi-steps``
   full-batch steps) on the ELBO with the hidden features fixed; the logits of a row are
   Gaussian under it (the local reparameterisation, exact for one linear layer), 8 draws a step.
   ``--prior eb``: the prior's scale is ``sqrt(mean(mu^2 + sigma^2))`` over the layer (the KL's
   minimiser); a number: that fixed standard deviation. ``--posterior full``: instead, per
   class a full-covariance Gaussian over its weights and bias (``varbayes.nn.FullCovLinear``,
   round 10), the same start, steps and draws, a fixed prior.
4. A temperature on the mixture, fitted on the held-out rows (500 draws) as the classifier
   fits it (``varbayes.calibration.temperature``, prior sd ``--tprior`` on ``log T``); the test
   rows predicted with 1000 draws.

::

    python benchmarks/classification_last_layer.py --first-split 100 --splits 10
    python benchmarks/classification_last_layer.py --first-split 100 --splits 10 --no-vi
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import Tensor, nn

from varbayes.calibration.temperature import TemperedClassPrediction, fit_temperature
from varbayes.nn import FullCovLinear, bayesianize
from varbayes.nn.sampling import run_draws
from varbayes.predictive.classes import ClassPrediction
from varbayes.priors import GaussianPrior

sys.path.insert(0, os.path.dirname(__file__))
import classification as bench  # noqa: E402


def train_point(args: argparse.Namespace, xf: Tensor, yf: Tensor, xv: Tensor, yv: Tensor,
                k: int, seed: int) -> tuple[nn.Module, nn.Linear, int]:
    """Step 2: the point-estimate network, early-stopped; returns (body, head, epochs)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    body = nn.Sequential(nn.Linear(xf.shape[1], args.hidden), nn.ReLU())
    head = nn.Linear(args.hidden, k)
    params = [*body.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    n, best, since, done = len(yf), -math.inf, 0, 0
    best_state = [p.detach().clone() for p in params]
    for epoch in range(1, 2001):
        done = epoch
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, 200):
            idx = perm[i:i + 200]
            loss = nn.functional.cross_entropy(head(body(xf[idx])), yf[idx])
            l2 = sum((p * p).sum() for p in params) / (2 * args.wd ** 2 * n)
            opt.zero_grad()
            (loss + l2).backward()
            opt.step()
        with torch.no_grad():
            score = -float(nn.functional.cross_entropy(head(body(xv)), yv))
        if score > best:
            best, since, best_state = score, 0, [p.detach().clone() for p in params]
        else:
            since += 1
            if since >= 50:
                break
    with torch.no_grad():
        for p, b in zip(params, best_state, strict=True):
            p.copy_(b)
    return body, head, done


def _with_bias(h: Tensor) -> Tensor:
    return torch.cat([h, torch.ones(len(h), 1)], 1).double()


def fit_last_layer(args: argparse.Namespace, h: Tensor, y: Tensor, head: nn.Linear,
                   seed: int) -> tuple[Tensor, Tensor, float]:
    """Step 3: the output layer's mean-field posterior (means, sds) and the prior's sd."""
    torch.manual_seed(seed)
    h1 = _with_bias(h)
    k = head.out_features
    mu = torch.cat([head.weight.detach().T, head.bias.detach()[None]], 0).double()
    mu.requires_grad_()
    rho = torch.full_like(mu, -6.0).requires_grad_()
    opt = torch.optim.Adam([mu, rho], lr=1e-2)
    s2 = torch.tensor(1.0, dtype=torch.float64)
    for _ in range(args.vi_steps):
        sig = nn.functional.softplus(rho)
        m, v = h1 @ mu, (h1 * h1) @ (sig * sig)
        logits = m + v.sqrt() * torch.randn(8, *m.shape, dtype=m.dtype)
        ll = -nn.functional.cross_entropy(logits.reshape(-1, k), y.repeat(8),
                                          reduction="sum") / 8
        second = (mu * mu + sig * sig).mean()
        s2 = second if args.prior == "eb" else torch.tensor(float(args.prior) ** 2,
                                                            dtype=torch.float64)
        kl = 0.5 * mu.numel() * (s2.log() + second / s2 - 1.0) - sig.log().sum()
        opt.zero_grad()
        ((kl - ll) / len(y)).backward()
        opt.step()
    return mu.detach(), nn.functional.softplus(rho).detach(), float(s2.detach().sqrt())


def fit_full(args: argparse.Namespace, h: Tensor, y: Tensor, head: nn.Linear,
             seed: int) -> FullCovLinear:
    """Step 3 with ``--posterior full``: per class a full-covariance Gaussian over its weights.

    ``varbayes.nn.FullCovLinear`` at the trained weights (standard deviation softplus(-6), no
    correlation), prior ``N(0, s^2)`` with ``s`` = ``--prior`` (a number), fitted like the
    mean-field layer (Adam, lr 1e-2, 8 draws a step; in training mode each row's logits are
    drawn from their Gaussian, in eval mode whole weights).
    """
    torch.manual_seed(seed)
    layer = bayesianize(nn.Sequential(head), "last", prior=GaussianPrior(0.0, float(args.prior)),
                        init_scale=1.0, covariance="full")[0].double()
    layer.set_scale(torch.full_like(layer.unit_loc, math.log1p(math.exp(-6.0))))
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    h = h.double()
    layer.train()
    for _ in range(args.vi_steps):
        logits = run_draws(layer, h, 8)
        ll = -nn.functional.cross_entropy(logits.reshape(-1, head.out_features), y.repeat(8),
                                          reduction="sum") / 8
        opt.zero_grad()
        ((layer.kl_divergence() - ll) / len(y)).backward()
        opt.step()
    return layer.eval()


def predict_full(h: Tensor, layer: FullCovLinear, draws: int, seed: int) -> ClassPrediction:
    """Logits of ``draws`` whole-weight draws of the full-covariance layer at features ``h``."""
    with torch.no_grad():
        return ClassPrediction(run_draws(layer, h.double(), draws,
                                         generator=torch.Generator().manual_seed(seed)))


def predict(h: Tensor, mu: Tensor, sig: Tensor, draws: int, seed: int) -> ClassPrediction:
    """Logits of ``draws`` draws of the mean-field output layer at features ``h``."""
    h1 = _with_bias(h)
    m, v = h1 @ mu, (h1 * h1) @ (sig * sig)
    eps = torch.randn(draws, *m.shape, generator=torch.Generator().manual_seed(seed),
                      dtype=m.dtype)
    return ClassPrediction(m + v.sqrt() * eps)


def run_split(args: argparse.Namespace, x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, Any]:
    """Steps 1-4 on one split; its scores and what was fitted."""
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    start = time.perf_counter()
    scaler = StandardScaler().fit(xtr)
    xf, xv, yf, yv = train_test_split(scaler.transform(xtr), ytr, test_size=0.1, stratify=ytr,
                                      random_state=seed)

    def t(z: np.ndarray) -> Tensor:
        return torch.as_tensor(z, dtype=torch.float32)

    k = len(np.unique(y))
    body, head, epochs = train_point(args, t(xf), torch.as_tensor(yf), t(xv),
                                     torch.as_tensor(yv), k, seed)
    with torch.no_grad():
        hf, hv, ht = body(t(xf)), body(t(xv)), body(t(scaler.transform(xte)))
    if args.posterior == "full" and not args.no_vi:
        layer = fit_full(args, hf, torch.as_tensor(yf), head, seed)
        prior_sd = float(args.prior)

        def draw(h: Tensor, num: int, at: int) -> ClassPrediction:
            return predict_full(h, layer, num, at)
    else:
        if args.no_vi:
            mu = torch.cat([head.weight.detach().T, head.bias.detach()[None]], 0).double()
            sig, prior_sd = torch.zeros_like(mu), 0.0
        else:
            mu, sig, prior_sd = fit_last_layer(args, hf, torch.as_tensor(yf), head, seed)

        def draw(h: Tensor, num: int, at: int) -> ClassPrediction:
            return predict(h, mu, sig, num, at)
    temp = fit_temperature(draw(hv, 500, seed + 1), torch.as_tensor(yv), prior_sd=args.tprior)
    proba = TemperedClassPrediction(draw(ht, 1000, seed + 2).logits, temp).probs
    return {"split": seed, "epochs": epochs, "temperature": temp, "prior_sd": prior_sd,
            "seconds": time.perf_counter() - start, **bench._scores(yte, proba.numpy())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="breast_cancer,wine,digits")
    parser.add_argument("--first-split", type=int, default=100)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--wd", type=float, default=1.0, help="the body's prior sd")
    parser.add_argument("--prior", default="eb", help="the last layer's prior sd, or 'eb'")
    parser.add_argument("--posterior", choices=("diag", "full"), default="diag",
                        help="the output layer's Gaussian: mean-field, or full per class")
    parser.add_argument("--vi-steps", type=int, default=1000)
    parser.add_argument("--tprior", type=float, default=0.5)
    parser.add_argument("--no-vi", action="store_true", help="the point estimate, tempered")
    parser.add_argument("--cache", default="/tmp/cls_screen_mlp.json",
                        help="MLPClassifier's scores (classification_screen.py writes them)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cache = json.load(open(args.cache)) if os.path.exists(args.cache) else {}
    for name in args.datasets.split(","):
        x, y = bench.DATASETS[name](return_X_y=True)
        rows = []
        for seed in range(args.first_split, args.first_split + args.splits):
            rows.append(run_split(args, x, y, seed))
            print(json.dumps(rows[-1]), flush=True)
        cells = [name]
        for key in ("accuracy", "nll", "ece"):
            ours = np.array([r[key] for r in rows])
            cells.append(f"{key} {ours.mean():.4f}")
            mlp = [cache.get(f"{name}/{r['split']}", {}).get(key) for r in rows]
            if None not in mlp and len(rows) > 1:
                diff = ours - np.array(mlp)
                se = diff.std(ddof=1) / np.sqrt(len(diff))
                cells[-1] += (f" vs MLP {np.mean(mlp):.4f} ({diff.mean():+.4f}, "
                              f"{diff.mean() / se:+.1f} SE)")
        cells.append(f"median T {np.median([r['temperature'] for r in rows]):.2f}")
        print("SUMMARY", " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
