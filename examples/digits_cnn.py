"""A variational CNN on scikit-learn's 8x8 digits: epistemic uncertainty rises off the data.

A small CNN is trained deterministically, made Bayesian with ``varbayes.nn.bayesianize`` (the
posterior means start at the trained weights) and fine-tuned on the ELBO: a softmax head with
cross-entropy as the data term and the closed-form KL of every variational layer over N. The
predictive draws S weight samples in batched passes (``varbayes.predictive.sample_outputs``);
the mutual information between the label and the weights,

    MI = H[mean_s p_s] - mean_s H[p_s],

is the epistemic part of the predictive entropy. It rises on rotated and on noised digits.

    python examples/digits_cnn.py            # about a minute on 2 CPU cores
    python examples/digits_cnn.py --quick    # what CI runs
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from varbayes.nn import bayesianize, draws, kl_divergence
from varbayes.predictive import sample_outputs


def cnn() -> nn.Module:
    """The small CNN: two conv + pool blocks and a linear layer to 10 logits."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64, 10))


def mutual_information(probs: torch.Tensor) -> torch.Tensor:
    """MI per row from class probabilities of shape (S, n, K)."""
    def entropy(p: torch.Tensor) -> torch.Tensor:
        return -(p * p.clamp_min(1e-12).log()).sum(-1)
    return entropy(probs.mean(0)) - entropy(probs).mean(0)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train, convert, fine-tune; the mutual information on clean and shifted digits."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few epochs and draws (CI)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y), generator=g)
    train, test = order[:1400], order[1400:]
    pre_epochs, vi_epochs, draws_s = (5, 2, 32) if args.quick else (30, 20, 500)
    start = time.perf_counter()

    net = cnn()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(pre_epochs):  # the "pretrained" network
        for idx in train[torch.randperm(len(train), generator=g)].split(64):
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()

    bnn = bayesianize(net, init="pretrained", init_scale=0.2, prior_scale=1.0)
    opt = torch.optim.Adam(bnn.parameters(), lr=0.003)
    n = len(train)
    for _ in range(vi_epochs):  # the ELBO: cross-entropy + KL / N, one weight draw per step
        for idx in train[torch.randperm(n, generator=g)].split(64):
            opt.zero_grad()
            with draws(bnn, 1, generator=g):
                loss = F.cross_entropy(bnn(x[idx]), y[idx]) + kl_divergence(bnn) / n
            loss.backward()
            opt.step()

    xt, yt = x[test], y[test]
    shifted = {"clean": xt, "rotated": torch.rot90(xt, 1, (2, 3)),
               "noised": (xt + 0.5 * torch.randn(xt.shape, generator=g)).clamp(0, 1)}
    out: dict[str, float] = {}
    for name, images in shifted.items():
        logits = sample_outputs(bnn, images, draws_s, generator=torch.Generator().manual_seed(1))
        probs = logits.softmax(-1)
        out[f"mi_{name}"] = float(mutual_information(probs).mean())
        out[f"accuracy_{name}"] = float((probs.mean(0).argmax(-1) == yt).float().mean())
    out["seconds"] = time.perf_counter() - start
    print(json.dumps({k: round(v, 4) for k, v in out.items()}, indent=1))
    return out


if __name__ == "__main__":
    main()
