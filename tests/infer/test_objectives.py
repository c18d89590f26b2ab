import math

import pytest
import torch

from varbayes.infer import ELBO, AmortizedELBO, SquaredError
from varbayes.models import AmortizedVI, BayesianMLP, MLPRegressor


def _nll(y, loc, scale):
    return -torch.distributions.Normal(loc, scale).log_prob(y)


def test_elbo_scales_kl_once_by_the_data_size(gen):
    model = BayesianMLP(2, (5,), head="heteroscedastic", generator=gen)
    x, y = torch.randn(8, 2, generator=gen), torch.randn(8, generator=gen)
    for n_data in (8, 80, 8000):
        terms = ELBO(n_data)(model, x, y, generator=torch.Generator().manual_seed(0))
        out = model(x, 1, generator=torch.Generator().manual_seed(0), kl="analytic")
        nll = _nll(y, out.loc, out.scale).mean()
        assert torch.allclose(terms.nll, nll, atol=1e-6)
        assert torch.allclose(terms.kl, model.kl_divergence())
        # loss = mean nll of the batch + (total KL summed over weights) / N
        assert torch.allclose(terms.loss, nll + model.kl_divergence() / n_data, atol=1e-6)


def test_elbo_kl_is_the_sum_over_layers_and_weights():
    model = BayesianMLP(1, (4, 3))
    total = sum(layer.kl_divergence() for layer in model.layers)
    per_weight = []
    for layer in model.layers:
        for loc, scale in ((layer.weight_loc, layer.weight_scale),
                           (layer.bias_loc, layer.bias_scale)):
            per_weight.append(layer.prior.kl(loc.reshape(-1, 1), scale.reshape(-1, 1)))
    assert torch.allclose(model.kl_divergence(), total)
    assert torch.allclose(model.kl_divergence(), torch.stack(per_weight).sum(), rtol=1e-5)


def test_minibatch_loss_is_unbiased_for_the_full_batch_loss():
    """E over random batches and independent weight noise of the mini-batch loss = full loss.

    Both sides are Monte-Carlo means with independent noise; the test allows 4 combined
    standard errors: deterministic under the fixed seed (3); with a fresh seed, a
    false-positive rate of 6.3e-5 for an unbiased estimator (normal approximation, 3000 and
    20000 draws). A KL counted per batch instead of once (scaled by
    B / N instead of 1 / N) shifts the mean by 2 KL / N, about 40 standard errors here.
    """
    g = torch.Generator().manual_seed(3)
    model = BayesianMLP(1, (6,), head="heteroscedastic", init_rho=-1.5, generator=g).double()
    x = torch.randn(12, 1, generator=g, dtype=torch.float64)
    y = torch.randn(12, generator=g, dtype=torch.float64)
    elbo = ELBO(12)
    with torch.no_grad():
        ref = ELBO(12, num_particles=20_000)(model, x, y, generator=g).loss
        full = [elbo(model, x, y, generator=g).loss for _ in range(200)]
        ref_se = torch.stack(full).std() / math.sqrt(20_000)
        losses = []
        for _ in range(3000):
            idx = torch.randperm(12, generator=g)[:4]
            losses.append(elbo(model, x[idx], y[idx], generator=g).loss)
    losses = torch.stack(losses)
    se = losses.std() / math.sqrt(len(losses))
    assert abs(losses.mean() - ref) < 4 * math.sqrt(se**2 + ref_se**2)
    assert 2 * model.kl_divergence() / 12 > 30 * math.sqrt(se**2 + ref_se**2)


def test_mc_kl_objective_has_the_analytic_expectation(gen):
    """The ELBO's MC KL (20000 particles) estimates the closed-form KL to within 2 %.

    Deterministic under the fixed seeds; with a fresh generator the MC KL of this model spreads by
    0.013 (standard deviation over 100 seeds) around a KL of 7.79, so the 2 % bound is 12 standard
    deviations out: false-positive rate below 1e-30 (normal approximation).
    """
    model = BayesianMLP(1, (3,), head="fixed", init_rho=-1.0, generator=gen).double()
    x, y = torch.randn(4, 1, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    mc = ELBO(4, kl="mc", num_particles=20_000)(model, x, y, generator=gen)
    assert abs(mc.kl - model.kl_divergence()) < 0.02 * model.kl_divergence()


def test_mc_elbo_gradient_matches_analytic_elbo_gradient_in_expectation():
    """The gradient of the MC-KL ELBO (50000 particles) matches that of the closed-form ELBO.

    Deterministic under the fixed seed (1); with a fresh seed the MC-minus-analytic gradient spreads
    by at most 5.3e-4 per coordinate (standard deviation over 40 seeds) while atol=0.05 alone is 94
    of those: false-positive rate 0 to double precision (normal approximation).
    """
    torch.manual_seed(0)
    model = BayesianMLP(1, (3,), head="fixed", init_rho=-1.0).double()
    x, y = torch.randn(5, 1, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    grads = {}
    for kl in ("mc", "analytic"):
        model.zero_grad()
        ELBO(5, kl=kl, num_particles=50_000)(
            model, x, y, generator=torch.Generator().manual_seed(1)
        ).loss.backward()
        grads[kl] = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert torch.allclose(grads["mc"], grads["analytic"], atol=0.05, rtol=0.05)


def _fit_amortized(objective, noise_std, steps=600):
    torch.manual_seed(0)
    n = 1000
    x = torch.zeros(n, 1)
    y = noise_std * torch.randn(n)
    model = AmortizedVI(1, (4,))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        objective(model, x, y).loss.backward()
        opt.step()
    return model(x[:1]).scale.item()


def test_post_vi_objective_predicts_sqrt_of_true_std():
    """The post's ELBO over y has its optimum at sigma^2 = sqrt(v): std = sqrt(true std).

    Deterministic under the fixed seed (0); with a fresh seed (data and initialisation) the
    fitted std spreads by 1.0 % (relative standard deviation over 20 seeds; the sampling part
    alone is sqrt(2 / 1000) / 4 = 1.1 %), so rel=0.08 is 7.8 standard deviations:
    false-positive rate 7e-15 (normal approximation).
    """
    scale = _fit_amortized(AmortizedELBO(kl="analytic", reconstruction="gaussian"), 0.25)
    assert scale == pytest.approx(math.sqrt(0.25), rel=0.08)


def test_post_closed_form_variant_predicts_constant_variance_one_half():
    """The post's squared-error variant predicts variance 1/2 whatever the data (std 0.707).

    Deterministic under the fixed seed (0); with a fresh seed (data and initialisation) the fitted
    std spreads by 0.96 % (relative standard deviation over 20 seeds), so rel=0.08 is 8.3 standard
    deviations: false-positive rate 1.5e-16 (normal approximation).
    """
    scale = _fit_amortized(AmortizedELBO(kl="analytic", reconstruction="squared_error"), 0.25)
    assert scale == pytest.approx(math.sqrt(0.5), rel=0.08)


def test_amortized_mc_and_analytic_kl_agree_in_expectation():
    """The amortised ELBO with MC KL (50000 rows) matches the closed form to rel 0.02.

    Deterministic under the fixed seeds; with a fresh generator the MC loss spreads by 0.0019
    (standard deviation over 100 seeds) around 1.246, so the bound (0.025) is 13 standard
    deviations out: false-positive rate below 1e-30 (normal approximation).
    """
    model = AmortizedVI(1, (4,))
    x = torch.randn(1, 1).expand(50_000, 1)
    y = torch.zeros(50_000)
    mc = AmortizedELBO(kl="mc")(model, x, y, generator=torch.Generator().manual_seed(0))
    an = AmortizedELBO(kl="analytic")(model, x, y)
    assert mc.loss.item() == pytest.approx(an.loss.item(), rel=0.02, abs=0.01)


def test_squared_error_is_half_mse():
    model = MLPRegressor(1, (3,))
    x, y = torch.randn(6, 1), torch.randn(6)
    loss = SquaredError()(model, x, y).loss
    assert torch.allclose(loss, 0.5 * ((model(x).loc[0] - y) ** 2).mean())


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(n_data=0), "n_data"), (dict(n_data=10, kl="exact"), "unknown kl"),
     (dict(n_data=10, num_particles=0), "num_particles"),
     (dict(n_data=10, kl_weight=-1.0), "kl_weight")],
)
def test_elbo_rejects_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ELBO(**kwargs)
