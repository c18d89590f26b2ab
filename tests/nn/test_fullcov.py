"""FullCovLinear: its KL, its draws, its conversion, and the posterior it fits.

The statistical checks are seeded (the same numbers every run). Each compares an estimate from
``S`` Monte Carlo draws with its exact value within 5 of the estimate's standard errors: were
the seed drawn at random, a two-sided normal check fails with probability 5.7e-7, and the
about 50 checks of this file together below 3e-5.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal, kl_divergence

from varbayes import io
from varbayes.nn import FullCovLinear, bayesianize, draws
from varbayes.nn.parametrization import inverse_softplus_scale, softplus_scale
from varbayes.nn.sampling import run_draws
from varbayes.predictive import sample_outputs
from varbayes.priors import GaussianPrior, ScaleMixturePrior

Z = 5.0  # standard errors allowed to a Monte Carlo estimate
STEPS = 1500  # Adam steps of the regression fit


def _layer(prior: GaussianPrior | None = None, *, bias: bool = True, seed: int = 0
           ) -> FullCovLinear:
    """A 3 -> 2 layer in float64 with correlated posteriors and a centred prior."""
    g = torch.Generator().manual_seed(seed)
    layer = FullCovLinear(3, 2, bias, prior=prior, generator=g).double()
    with torch.no_grad():
        layer.scale_tril_raw.copy_(0.4 * torch.randn(layer.scale_tril_raw.shape, generator=g,
                                                      dtype=torch.float64))
        layer.weight_prior_loc = 0.2 * torch.randn(3, 2, generator=g, dtype=torch.float64)
        if bias:
            layer.bias_loc.copy_(torch.randn(2, generator=g, dtype=torch.float64))
    return layer


def test_kl_is_torch_distributions_and_its_monte_carlo_estimate() -> None:
    prior = GaussianPrior(0.3, 0.7)
    for bias in (True, False):
        layer = _layer(prior, bias=bias).requires_grad_(False)
        q = MultivariateNormal(layer.unit_loc, scale_tril=layer.scale_tril)
        centre = layer._prior_centre()
        eye = torch.eye(centre.shape[1], dtype=torch.float64)
        p = MultivariateNormal(centre, scale_tril=0.7 * eye)
        reference = kl_divergence(q, p).sum()
        torch.testing.assert_close(layer.kl_divergence(), reference, rtol=1e-10, atol=1e-10)
        w = q.sample((200_000,))  # torch's global generator, seeded below
        terms = (q.log_prob(w) - p.log_prob(w)).sum(-1)
        se = terms.std() / len(terms) ** 0.5
        assert abs(float(terms.mean() - reference)) < Z * float(se)
    assert _layer().prior.scale == 1.0  # None: N(0, 1)
    at_prior = _layer(prior).requires_grad_(False)  # q = p: the KL is 0, and only then
    with torch.no_grad():
        at_prior.set_scale(torch.full_like(at_prior.unit_loc, 0.7))
        centre = at_prior._prior_centre()
        at_prior.weight_loc.copy_(centre[:, :3].t())
        at_prior.bias_loc.copy_(centre[:, 3])
    assert abs(float(at_prior.kl_divergence())) < 1e-12
    with torch.no_grad():
        at_prior.scale_tril_raw[0, 1, 0] = 0.05  # a correlation alone makes it positive
    assert float(at_prior.kl_divergence()) > 1e-4


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _moments(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(n, o)`` and the covariance between rows ``(o, n, n)`` of draws ``(S, n, o)``."""
    centred = out - out.mean(0)
    return out.mean(0), torch.einsum("sao,sbo->oab", centred, centred) / (len(out) - 1)


def test_prediction_draws_whole_weights_and_training_draws_rows() -> None:
    layer = _layer()
    x = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.2, 0.8, 0.1]],
                     dtype=torch.float64)
    x1 = torch.cat([x, torch.ones(3, 1, dtype=torch.float64)], 1)
    cov_w = layer.scale_tril @ layer.scale_tril.transpose(-1, -2)
    mean = (x1 @ layer.unit_loc.t()).detach()
    joint = torch.einsum("ad,ode,be->oab", x1, cov_w, x1).detach()  # across rows, per unit
    num = 100_000
    for mode, expected in (("eval", joint), ("train", torch.diag_embed(
            torch.diagonal(joint, dim1=-2, dim2=-1)))):
        layer.train(mode == "train")
        with torch.no_grad():
            out = run_draws(layer, x, num, generator=torch.Generator().manual_seed(1))
        got_mean, got_cov = _moments(out)
        sd = torch.diagonal(joint, dim1=-2, dim2=-1).sqrt()  # (o, n)
        assert ((got_mean - mean).abs() < Z * sd.t() / num ** 0.5).all(), mode
        # the standard error of a covariance estimate: sqrt((s_a^2 s_b^2 + c_ab^2) / S)
        se = ((sd[:, :, None] * sd[:, None, :]) ** 2 + expected ** 2).sqrt() / num ** 0.5
        assert ((got_cov - expected).abs() < Z * se).all(), mode
    # the rows' covariance under whole-weight draws is far from the training draws' zero
    assert ((joint - expected).abs() / se).max() > 10 * Z


def test_training_noise_is_the_rows_own_standard_deviation_in_every_draw() -> None:
    """The shortcut for rows repeated across draws gives what each draw's own rows give."""
    layer = _layer().train()
    x = torch.randn(2, 4, 3, dtype=torch.float64)  # draw 2's rows differ from draw 1's
    x1 = torch.cat([x, torch.ones(2, 4, 1, dtype=torch.float64)], -1)
    sd = torch.einsum("snd,ode->snoe", x1, layer.scale_tril).square().sum(-1).sqrt()
    for rows in (x, x[:1].expand(2, 4, 3)):
        with torch.no_grad(), draws(layer, 2, generator=torch.Generator().manual_seed(3)):
            out = layer(rows.reshape(8, 3)).reshape(2, 4, 2)
        mean = rows @ layer.weight_loc + layer.bias_loc
        eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(3),
                          dtype=torch.float64)
        want = sd if rows is x else sd[:1].expand(2, 4, 2)
        torch.testing.assert_close(out, (mean + want * eps).detach())


def test_means_without_sampling_and_bad_inputs() -> None:
    layer = _layer().eval()
    x = torch.randn(5, 3, dtype=torch.float64)
    with torch.no_grad(), draws(layer, sample=False):
        torch.testing.assert_close(layer(x), x @ layer.weight_loc + layer.bias_loc)
    with pytest.raises(ValueError, match="3 features"):
        layer(torch.randn(5, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="GaussianPrior"):
        FullCovLinear(3, 2, prior=ScaleMixturePrior())
    with pytest.raises(ValueError, match=">= 1"):
        FullCovLinear(0, 2)
    with pytest.raises(ValueError, match=r"1000 x 4097 x 4097 = .* covariance entries"):
        FullCovLinear(4096, 1000)  # 67 GB of factors: refused before any allocation
    assert layer.kl_divergence().requires_grad


def _mlp() -> nn.Sequential:
    torch.manual_seed(4)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 4))


def test_bayesianize_a_last_layer_with_a_full_covariance() -> None:
    net = _mlp().eval()
    conv = bayesianize(net, "last", covariance="full", prior="pretrained", prior_scale=0.5)
    layer = conv[2]
    assert isinstance(layer, FullCovLinear) and isinstance(conv[0], nn.Linear)
    assert not layer.training
    x = torch.randn(6, 3)
    with torch.no_grad(), draws(conv, sample=False):
        torch.testing.assert_close(conv(x), net(x))  # the means are the trained weights
    scale = torch.diagonal(layer.scale_tril, dim1=-2, dim2=-1)
    torch.testing.assert_close(scale, (0.1 * layer.unit_loc.abs()).clamp_min(1e-5),
                               rtol=1e-4, atol=1e-6)
    assert (torch.tril(layer.scale_tril, -1) == 0).all()
    # the prior is centred on the trained weights: only the scale terms are left in the KL
    s = scale / 0.5
    torch.testing.assert_close(layer.kl_divergence(), (0.5 * s * s - s.log() - 0.5).sum())
    fresh = bayesianize(net, "last", covariance="full", init="default",
                        generator=torch.Generator().manual_seed(0))
    assert not torch.equal(fresh[2].weight_loc, net[2].weight.detach().t())


def test_bayesianize_full_covariance_refuses_what_it_cannot_do() -> None:
    cnn = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 3, 2))
    with pytest.raises(ValueError, match=r"nn.Linear layers only; \['0'\]"):
        bayesianize(cnn, ["0", "2"], covariance="full")
    assert isinstance(bayesianize(cnn, "last", covariance="full")[2], FullCovLinear)
    with pytest.raises(ValueError, match="covariance must be"):
        bayesianize(cnn, covariance="dense")
    with pytest.raises(ValueError, match="needs a GaussianPrior"):
        bayesianize(cnn, "last", covariance="full", prior=ScaleMixturePrior())


def test_it_fits_the_exact_posterior_of_bayesian_linear_regression() -> None:
    """Linear-Gaussian regression: the exact posterior is a correlated Gaussian, in the family.

    With two inputs correlated at 0.95 the exact posterior correlation of the two weights is
    strongly negative (about -0.94 here), which a mean-field posterior cannot represent. The
    ELBO's maximiser over full-covariance Gaussians is the exact posterior; Adam on the
    sampled ELBO (a decaying step) gets there to within the tolerances below.
    """
    g = torch.Generator().manual_seed(0)
    n, noise, prior_sd = 40, 0.5, 1.0
    base = torch.randn(n, 1, generator=g, dtype=torch.float64)
    x = torch.cat([base, 0.95 * base + 0.31 * torch.randn(n, 1, generator=g,
                                                           dtype=torch.float64)], 1)
    y = x @ torch.tensor([1.0, -0.5], dtype=torch.float64) + noise * torch.randn(
        n, generator=g, dtype=torch.float64)
    precision = x.t() @ x / noise**2 + torch.eye(2, dtype=torch.float64) / prior_sd**2
    cov = torch.linalg.inv(precision)
    mean = cov @ x.t() @ y / noise**2
    layer = FullCovLinear(2, 1, bias=False, prior=GaussianPrior(0.0, prior_sd),
                          generator=g).double()
    opt = torch.optim.Adam(layer.parameters(), lr=0.02)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.003 ** (1 / STEPS))
    for _ in range(STEPS):
        out = run_draws(layer, x, 16)[..., 0]
        nll = 0.5 * ((out - y) / noise).square().sum(-1).mean()
        opt.zero_grad()
        (nll + layer.kl_divergence()).backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        fitted = layer.scale_tril[0] @ layer.scale_tril[0].t()
        sd, fitted_sd = cov.diagonal().sqrt(), fitted.diagonal().sqrt()
        assert ((layer.unit_loc[0] - mean).abs() < 0.1 * sd).all()
        assert ((fitted_sd / sd - 1).abs() < 0.1).all()
        corr = cov[0, 1] / (sd[0] * sd[1])
        assert corr < -0.9
        assert abs(float(fitted[0, 1] / (fitted_sd[0] * fitted_sd[1]) - corr)) < 0.02


def test_save_and_load_give_identical_predictions(tmp_path: Path) -> None:
    conv = bayesianize(_mlp(), "last", covariance="full")
    with torch.no_grad():
        conv[2].scale_tril_raw.add_(0.1 * torch.randn(conv[2].scale_tril_raw.shape))
    x = torch.randn(7, 3)
    before = sample_outputs(conv, x, 50, generator=torch.Generator().manual_seed(2))
    io.save(conv, tmp_path / "m")
    loaded = io.load(tmp_path / "m", module=bayesianize(_mlp(), "last", covariance="full"))
    after = sample_outputs(loaded, x, 50, generator=torch.Generator().manual_seed(2))
    assert before.shape == (50, 7, 4) and torch.equal(before, after)
    assert before.std(0).min() > 0


def test_inverse_softplus_scale_round_trips_and_keeps_the_floor() -> None:
    for dtype in (torch.float32, torch.float64):
        scale = torch.tensor([1e-5, 0.0067, 0.7, 30.0, 1e4], dtype=dtype)
        back = softplus_scale(inverse_softplus_scale(scale, 1e-6), 1e-6)
        torch.testing.assert_close(back, scale, rtol=1e-5, atol=0.0)
        low = inverse_softplus_scale(torch.tensor([1e-6, 0.0, -1.0], dtype=dtype), 1e-6)
        assert torch.isfinite(low).all()
        torch.testing.assert_close(softplus_scale(low, 1e-6),
                                   torch.full((3,), 1e-6, dtype=dtype))
