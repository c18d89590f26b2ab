"""The speed benchmark's peers from other libraries: Pyro and bayesian-torch.

Each peer trains the benchmark's task (:mod:`varbayes.benchmarks.speed`: the post's Bayes by
Backprop, :data:`SIZES`, prior :math:`\\mathcal{N}(0, 1)`, noise :data:`NOISE`, Adam at
:data:`LR`) with its own library's tools, the way that library documents them, and draws the
predictive the way it documents too. Both are optional (the ``bench`` extra); a peer whose
package is missing is skipped with a note (:meth:`Peer.missing`).

``pyro``
    A ``PyroModule`` with ``PyroSample`` weights, an ``AutoNormal`` guide, ``Trace_ELBO``,
    ``pyro.optim.Adam``, and a vectorised ``Predictive(parallel=True)``.
``bayesian-torch``
    Intel's bayesian-torch: ``LinearReparameterization`` layers (weights drawn in every forward
    pass, each layer returning its closed-form KL with its output), the loss of its README,
    ``mean NLL + KL / batch_size``, with ``torch.optim.Adam``, and its README's prediction: a
    Python loop of forward passes in eval mode. The layers start from its own initialisation
    (``posterior_mu_init=0``: means drawn from N(0, 0.1)) with ``posterior_rho_init=-2.5``,
    the post's weight ρ. On the full batch the README's loss is the post's ELBO divided by
    ``N``; with mini-batches it weights the KL once per batch rather than once per epoch.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn

__all__ = ["LR", "NOISE", "PEERS", "SIZES", "Peer", "batches", "gauss_kl"]

#: The network of the post: 1-20-20-1.
SIZES = (1, 20, 20, 1)
#: The post's fixed observation noise (standardised units) and Adam's learning rate.
NOISE, LR = 0.1, 0.01


def batches(n: int, epochs: int, batch_size: int) -> Iterator[slice | Tensor]:
    """The rows of each training step: the full batch, or a fresh permutation every epoch."""
    for _ in range(epochs):
        order = torch.randperm(n) if batch_size < n else None
        for i in range(0, n, batch_size):
            yield slice(None) if order is None else order[i : i + batch_size]


def gauss_kl(loc: Tensor, scale: Tensor) -> float:
    """Closed-form KL(N(loc, scale^2) || N(0, 1)) summed over elements."""
    scale = scale.detach().double()
    return float((0.5 * (scale**2 + loc.detach().double() ** 2) - scale.log() - 0.5).sum())



def _pyro_model(n_data_default: int) -> Any:
    import pyro
    import pyro.distributions as pdist
    from pyro.nn import PyroModule, PyroSample

    class PyroBNN(PyroModule):
        def __init__(self) -> None:
            super().__init__()
            for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
                prior = pdist.Normal(0.0, 1.0)
                setattr(self, f"w{i}", PyroSample(prior.expand([a, b]).to_event(2)))
                setattr(self, f"b{i}", PyroSample(prior.expand([b]).to_event(1)))

        def forward(self, x: Tensor, y: Tensor | None = None, n_data: int | None = None) -> Tensor:
            h, last = x, len(SIZES) - 2
            for i in range(last + 1):
                w, b = getattr(self, f"w{i}"), getattr(self, f"b{i}")
                if w.dim() > 2:  # a leading sample dimension (vectorised Predictive)
                    w, b = w.reshape(-1, *w.shape[-2:]), b.reshape(-1, 1, b.shape[-1])
                h = h @ w + b
                h = torch.relu(h) if i < last else h
            mu = h[..., 0]
            n = x.shape[0]
            size = n_data or n_data_default
            with pyro.plate("data", size, subsample=torch.arange(n) if size != n else None):
                pyro.sample("obs", pdist.Normal(mu, NOISE), obs=y)
            return mu

    return PyroBNN()


def _pyro_train(x: Tensor, y: Tensor, epochs: int, batch_size: int) -> tuple[float, Any]:
    import pyro
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal

    pyro.clear_param_store()
    n = x.shape[0]
    model = _pyro_model(n)
    guide = AutoNormal(model)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": LR}), Trace_ELBO())
    start = time.perf_counter()
    for idx in batches(n, epochs, batch_size):
        svi.step(x[idx], y[idx], n)
    return time.perf_counter() - start, (model, guide)


def _pyro_samples(fitted: Any, x: Tensor, num: int) -> Tensor:
    from pyro.infer import Predictive

    model, guide = fitted
    with torch.no_grad():
        out = Predictive(model, guide=guide, num_samples=num, parallel=True,
                         return_sites=("_RETURN",))(x)
    return cast(Tensor, out["_RETURN"].reshape(num, -1))


def _pyro_kl(fitted: Any) -> float:
    import pyro

    store, prefix = pyro.get_param_store(), "AutoNormal.locs."
    return sum(gauss_kl(store[k], store["AutoNormal.scales." + k[len(prefix):]])
               for k in list(store.keys()) if k.startswith(prefix))


def _bt_model() -> nn.Module:
    from bayesian_torch.layers import LinearReparameterization

    class BayesianTorchBNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(
                LinearReparameterization(a, b, prior_mean=0.0, prior_variance=1.0,
                                         posterior_mu_init=0.0, posterior_rho_init=-2.5)
                for a, b in zip(SIZES[:-1], SIZES[1:], strict=True))

        def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
            h, kl, last = x, torch.zeros(()), len(self.layers) - 1
            for i, layer in enumerate(self.layers):
                h, layer_kl = layer(h)  # the output and the layer's KL
                kl = kl + layer_kl
                h = torch.relu(h) if i < last else h
            return h[:, 0], kl

    return BayesianTorchBNN()


def _bt_train(x: Tensor, y: Tensor, epochs: int, batch_size: int) -> tuple[float, Any]:
    n = x.shape[0]
    model = _bt_model()
    optim = torch.optim.Adam(model.parameters(), lr=LR)
    start = time.perf_counter()
    for idx in batches(n, epochs, batch_size):
        xb, yb = x[idx], y[idx]
        optim.zero_grad()
        out, kl = model(xb)
        nll = -torch.distributions.Normal(out, NOISE).log_prob(yb).mean()
        loss = nll + kl / xb.shape[0]  # the README's ELBO loss
        loss.backward()
        optim.step()
    return time.perf_counter() - start, model


def _bt_samples(model: nn.Module, x: Tensor, num: int) -> Tensor:
    model.eval()
    with torch.no_grad():
        return torch.stack([model(x)[0] for _ in range(num)])


def _bt_kl(model: nn.Module) -> float:
    total = 0.0
    for layer in cast("nn.ModuleList", model.layers):
        for name in ("weight", "bias"):
            mu, rho = (cast(Tensor, getattr(layer, f"{k}_{name}")) for k in ("mu", "rho"))
            total += gauss_kl(mu, torch.log1p(torch.exp(rho)))  # the layer's softplus
    return total


@dataclass(frozen=True)
class Peer:
    """A peer implementation: its package and its train, predictive and KL functions.

    Attributes
    ----------
    module, distribution : str
        The import name and the name ``pip`` installs it by.
    train : callable
        ``train(x, y, epochs, batch_size) -> (seconds, fitted)``.
    samples : callable
        ``samples(fitted, x, num)``: ``num`` draws of the network's output at ``x``, (num, n).
    kl : callable
        ``kl(fitted)``: closed-form KL of the fitted posterior to the prior.
    """

    module: str
    distribution: str
    train: Callable[[Tensor, Tensor, int, int], tuple[float, Any]]
    samples: Callable[[Any, Tensor, int], Any]
    kl: Callable[[Any], float]

    def missing(self) -> str | None:
        """A note naming the package when it is not installed, else ``None``."""
        if importlib.util.find_spec(self.module) is not None:
            return None
        return f"{self.distribution} is not installed (pip install 'varbayes[bench]')"


#: The peers by benchmark name, in the order the table shows them.
PEERS: dict[str, Peer] = {
    "pyro": Peer("pyro", "pyro-ppl", _pyro_train, _pyro_samples, _pyro_kl),
    "bayesian-torch": Peer("bayesian_torch", "bayesian-torch", _bt_train, _bt_samples, _bt_kl),
}
