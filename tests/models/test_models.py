import math

import pytest
import torch

from varbayes.infer import ELBO
from varbayes.models import AmortizedVI, BayesianMLP, MLPRegressor


@pytest.mark.parametrize(
    "make",
    [
        lambda: MLPRegressor(3, (5,)),
        lambda: AmortizedVI(3, (5, 4)),
        lambda: BayesianMLP(3, (5, 4), head="fixed"),
        lambda: BayesianMLP(3, (5,), head="learned"),
        lambda: BayesianMLP(3, (5,), head="heteroscedastic"),
        lambda: BayesianMLP(3, (5,), head="heteroscedastic", noise_hidden=(4,)),
    ],
)
def test_every_model_returns_positive_scales_of_matching_shape(make):
    model = make()
    out = model(torch.randn(7, 3), 4)
    assert out.loc.shape[1] == 7 and out.loc.shape[0] in (1, 4)
    assert out.scale.shape == out.loc.shape
    assert (out.scale > 0).all() and torch.isfinite(out.loc).all()


def test_fixed_and_learned_heads():
    fixed = BayesianMLP(1, (4,), head="fixed", noise_std=0.1)
    assert torch.allclose(fixed(torch.randn(3, 1)).scale, torch.tensor(0.1))
    learned = BayesianMLP(1, (4,), head="learned", noise_std=0.3)
    assert torch.allclose(learned(torch.randn(3, 1)).scale, torch.tensor(0.3), atol=1e-5)
    assert any(name == "noise_rho" for name, _ in learned.named_parameters())
    assert not any(name == "noise_std" for name, _ in learned.named_parameters())


def test_noise_network_is_a_point_estimate_outside_the_kl():
    model = BayesianMLP(1, (4,), head="heteroscedastic", noise_hidden=(3,))
    kl_before = model.kl_divergence().item()
    with torch.no_grad():
        for p in model.noise_net.parameters():
            p.add_(1.0)
    assert model.kl_divergence().item() == kl_before
    # the noise does not change between weight draws: it is aleatoric only
    out = model(torch.randn(5, 1), 10)
    assert torch.allclose(out.scale, out.scale[:1].expand_as(out.scale))
    assert out.loc.std(0).min() > 0


def test_two_models_do_not_share_kl_state():
    torch.manual_seed(0)
    a, b = BayesianMLP(1, (5,)), BayesianMLP(1, (5,))
    x, y = torch.randn(10, 1), torch.randn(10)
    kl_a = a.kl_divergence().item()
    opt = torch.optim.Adam(b.parameters(), lr=0.1)
    for _ in range(20):
        opt.zero_grad()
        ELBO(10)(b, x, y).loss.backward()
        opt.step()
    assert a.kl_divergence().item() == kl_a
    assert b.kl_divergence().item() != kl_a
    # the ELBO of a is the same before and after training b
    g = torch.Generator().manual_seed(1)
    t1 = ELBO(10)(a, x, y, generator=g)
    g = torch.Generator().manual_seed(1)
    t2 = ELBO(10)(a, x, y, generator=g)
    assert torch.equal(t1.loss, t2.loss)


def test_sample_false_is_the_mean_network():
    model = BayesianMLP(2, (4,), head="heteroscedastic")
    x = torch.randn(3, 2)
    a = model(x, 50, sample=False)
    b = model(x, 1, sample=False)
    assert a.loc.shape == (1, 3) and torch.equal(a.loc, b.loc)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(in_features=0), "in_features"),
        (dict(in_features=1, hidden=(0,)), "hidden"),
        (dict(in_features=1, head="poisson"), "unknown head"),
        (dict(in_features=1, noise_std=-1.0), "noise_std"),
        (dict(in_features=1, min_scale=0.0), "min_scale"),
        (dict(in_features=1, head="fixed", noise_hidden=(3,)), "noise_hidden"),
    ],
)
def test_bad_model_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BayesianMLP(**kwargs)


def test_learned_head_starts_at_the_requested_noise():
    for noise in (0.05, 1.0, 3.0):
        model = BayesianMLP(1, (2,), head="learned", noise_std=noise)
        assert model(torch.zeros(1, 1)).scale.item() == pytest.approx(noise, rel=1e-4)
    assert math.isfinite(BayesianMLP(1, (2,), head="learned", noise_std=1e-4)(
        torch.zeros(1, 1)).scale.item())
