"""IVON: the exact posterior of a linear-Gaussian model, draws, the predictive, DDP averaging."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _spawn import on_two_ranks
from varbayes.nn import GaussianHead
from varbayes.optim import IVON
from varbayes.predictive import predictive


def _regression(n: int = 400, d: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + torch.randn(n, generator=g)
    return x, y


def test_ivon_finds_the_posterior_of_bayesian_linear_regression() -> None:
    """Mean-field VI of y = Xw + N(0, 1), prior N(0, 1): mean = ridge, 1/sigma^2 = diag(A)."""
    x, y = _regression()
    n = len(y)
    net = nn.Linear(3, 1, bias=False)
    opt = IVON(net.parameters(), lr=0.05, ess=n, weight_decay=1 / n, beta2=0.999,
               hess_init=0.5, generator=torch.Generator().manual_seed(1))
    for _ in range(1500):
        with opt.sampled_params(train=True):
            opt.zero_grad()
            (0.5 * (net(x)[:, 0] - y).pow(2).mean()).backward()
        opt.step()
    a = x.T @ x + torch.eye(3)
    torch.testing.assert_close(net.weight.detach()[0], torch.linalg.solve(a, x.T @ y),
                               atol=0.02, rtol=0)
    torch.testing.assert_close(opt.posterior_scale(net.weight)[0], a.diag().rsqrt(),
                               rtol=0.1, atol=0)


def test_sampled_params_draws_and_restores_and_the_closure_form() -> None:
    net = nn.Linear(2, 1)
    opt = IVON(net.parameters(), lr=0.1, ess=10, generator=torch.Generator().manual_seed(0))
    before = net.weight.detach().clone()
    with opt.sampled_params():
        inside = net.weight.detach().clone()
    assert not torch.equal(inside, before) and torch.equal(net.weight.detach(), before)
    with pytest.raises(RuntimeError, match="sampled_params"):
        opt.step()
    x = torch.randn(8, 2)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = net(x).pow(2).mean()
        loss.backward()
        return loss

    opt.mc_samples = 3
    assert opt.step(closure) is not None
    assert not torch.equal(net.weight.detach(), before)


def test_predictive_draws_from_the_ivon_posterior() -> None:
    net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2), GaussianHead())
    opt = IVON(net.parameters(), lr=0.1, ess=50)
    x = torch.randn(5, 2)
    pred = predictive(net, x, 64, posterior=opt, generator=torch.Generator().manual_seed(0))
    again = predictive(net, x, 64, posterior=opt, generator=torch.Generator().manual_seed(0))
    assert pred.loc.shape == (64, 5) and pred.loc.std(0).min() > 0
    torch.testing.assert_close(pred.loc, again.loc)
    draws = opt.sample_parameters(net, 64, torch.Generator().manual_seed(0))
    loop = torch.stack([torch.func.functional_call(net, {k: v[s] for k, v in draws.items()},
                                                   (x,))["loc"] for s in range(64)])
    torch.testing.assert_close(pred.loc, loop)  # vmap over draws = one call per draw


def _worker(rank: int) -> dict[str, torch.Tensor]:
    x, y = _regression(40)
    net = nn.Linear(3, 1)
    torch.manual_seed(0)
    net.reset_parameters()
    opt = IVON(net.parameters(), lr=0.1, ess=40, generator=torch.Generator().manual_seed(rank))
    rows = slice(rank * 20, rank * 20 + 20)
    with opt.sampled_params(train=True):
        (0.5 * (net(x[rows])[:, 0] - y[rows]).pow(2).mean()).backward()
    opt.step()
    return {"w": net.weight.detach(), "h": opt.state[net.weight]["hess"]}


@pytest.mark.distributed
def test_ddp_averages_the_hessian_estimate_over_ranks() -> None:
    out = on_two_ranks(_worker)
    torch.testing.assert_close(out[0]["w"], out[1]["w"], rtol=0, atol=0)  # ranks stay identical
    # one process, the two ranks' draws as two MC samples: the same update
    x, y = _regression(40)
    net = nn.Linear(3, 1)
    torch.manual_seed(0)
    net.reset_parameters()
    opt = IVON(net.parameters(), lr=0.1, ess=40)
    for rank in range(2):
        opt.generator = torch.Generator().manual_seed(rank)
        rows = slice(rank * 20, rank * 20 + 20)
        opt.zero_grad()
        with opt.sampled_params(train=True):
            (0.5 * (net(x[rows])[:, 0] - y[rows]).pow(2).mean()).backward()
    opt.step()
    torch.testing.assert_close(out[0]["w"], net.weight.detach())
    torch.testing.assert_close(out[0]["h"], opt.state[net.weight]["hess"])
