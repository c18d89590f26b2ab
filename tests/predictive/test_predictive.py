import numpy as np
import pytest
import torch
from scipy import optimize, stats

from varbayes.models import AmortizedVI, BayesianMLP, MLPRegressor
from varbayes.predictive import Prediction, predictive


def _model(gen, head="heteroscedastic"):
    return BayesianMLP(1, (8, 8), head=head, init_rho=-2.0, generator=gen)


def test_batched_predictive_equals_a_sequential_loop(gen):
    model = _model(gen)
    x = torch.linspace(-2, 2, 7)[:, None]
    pred = predictive(model, x, 50, generator=torch.Generator().manual_seed(3))
    # the same noise, consumed one weight draw at a time through the layers
    g = torch.Generator().manual_seed(3)
    eps = []
    for layer in model.layers:
        eps.append((torch.randn(50, layer.in_features, layer.out_features, generator=g),
                    torch.randn(50, 1, layer.out_features, generator=g)))
    for s in range(50):
        h = x
        for i, layer in enumerate(model.layers):
            w = layer.weight_loc + layer.weight_scale * eps[i][0][s]
            b = layer.bias_loc + layer.bias_scale * eps[i][1][s, 0]
            h = h @ w + b
            if i < len(model.layers) - 1:
                h = torch.relu(h)
        assert torch.allclose(pred.loc[s].float(), h[:, 0], atol=1e-5)  # float32 row blocks
        scale = torch.nn.functional.softplus(h[:, 1]) + model.min_scale
        assert torch.allclose(pred.scale[s].float(), scale, atol=1e-5)


def test_prediction_leaves_no_state_behind(gen):
    model = _model(gen)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(5, 1)
    predictive(model, x, 100, generator=gen)
    predictive(model, x, 100, generator=gen)
    assert model.training
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert torch.allclose(model.kl_divergence(), _model_kl(before, model))


def _model_kl(state, model):
    clone = BayesianMLP(1, (8, 8), head="heteroscedastic")
    clone.load_state_dict(state)
    return clone.kl_divergence()


def test_variance_decomposition_identity(gen):
    """Total variance = aleatoric + epistemic, exactly and against 200000 draws of y.

    The exact identities hold to rounding. The sampled variance is checked to rtol=0.03: with the
    mixture's fourth moments (kurtosis 3.1 to 3.5 here) that is at least 8.5 standard errors of a
    sample variance at each of the 9 points. Deterministic under the fixed seed; with a fresh seed
    the false-positive rate is 2.7e-17 (normal approximation, union bound).
    """
    model = _model(gen)
    pred = predictive(model, torch.randn(9, 1), 400, generator=gen)
    p64 = Prediction(pred.loc.double(), pred.scale.double())
    # total variance of the mixture computed from its second moment
    second = (p64.scale**2 + p64.loc**2).mean(0)
    total = second - p64.mean**2
    assert torch.allclose(p64.aleatoric_var + p64.epistemic_var, total, rtol=1e-9, atol=1e-12)
    assert torch.allclose(p64.var, total, rtol=1e-9, atol=1e-12)
    # and by sampling y
    ys = p64.sample(200_000, generator=gen)
    assert torch.allclose(ys.var(0), total, rtol=0.03)


def test_single_sample_has_zero_not_nan_epistemic_variance(gen):
    pred = predictive(_model(gen), torch.randn(4, 1), 1, generator=gen)
    assert torch.equal(pred.epistemic_var, torch.zeros(4))
    assert torch.isfinite(pred.std).all()


def test_models_without_weight_uncertainty_have_one_component():
    x = torch.randn(6, 1)
    for model in (MLPRegressor(1), AmortizedVI(1)):
        pred = predictive(model, x, 1000)
        assert pred.num_samples == 1
        assert torch.equal(pred.epistemic_var, torch.zeros(6))


def test_mixture_quantiles_match_a_root_finder():
    g = torch.Generator().manual_seed(0)
    loc = torch.randn(5, 3, generator=g, dtype=torch.float64)
    scale = torch.rand(5, 3, generator=g, dtype=torch.float64) + 0.2
    pred = Prediction(loc, scale)
    qs = pred.quantile(torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64))
    for j in range(3):
        cdf = lambda t, j=j: stats.norm.cdf(t, loc[:, j].numpy(), scale[:, j].numpy()).mean()  # noqa: E731
        for i, q in enumerate([0.05, 0.5, 0.95]):
            root = optimize.brentq(lambda t, q=q, cdf=cdf: cdf(t) - q, -20, 20, xtol=1e-12)
            assert qs[i, j].item() == pytest.approx(root, abs=1e-8)


def test_single_component_quantile_is_gaussian_ppf():
    pred = Prediction(torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, 2.0]]))
    lo, hi = pred.interval(0.9)
    assert torch.allclose(lo, torch.tensor([1 - 1.6448536 * 0.5, -2 - 1.6448536 * 2]))
    assert torch.allclose(hi, torch.tensor([1 + 1.6448536 * 0.5, -2 + 1.6448536 * 2]))


def test_log_prob_matches_scipy_mixture():
    loc = torch.tensor([[0.0, 1.0], [2.0, -1.0]], dtype=torch.float64)
    scale = torch.tensor([[1.0, 0.5], [0.3, 2.0]], dtype=torch.float64)
    y = torch.tensor([0.5, 0.0], dtype=torch.float64)
    ref = np.log(stats.norm.pdf(y.numpy(), loc.numpy(), scale.numpy()).mean(0))
    assert np.allclose(Prediction(loc, scale).log_prob(y).numpy(), ref)


def test_log_prob_is_stable_far_in_the_tails():
    pred = Prediction(torch.zeros(3, 1), torch.full((3, 1), 0.01))
    assert torch.isfinite(pred.log_prob(torch.tensor([50.0]))).all()


def test_chunked_prediction_equals_unchunked(gen):
    model = _model(gen)
    x = torch.randn(23, 1)
    a = predictive(model, x, 30, generator=torch.Generator().manual_seed(9))
    b = predictive(model, x, 30, generator=torch.Generator().manual_seed(9), chunk_size=5)
    assert torch.allclose(a.loc, b.loc, atol=1e-6) and torch.allclose(a.scale, b.scale, atol=1e-6)


def test_affine_moves_the_predictive_to_data_units():
    pred = Prediction(torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [1.0]]))
    moved = pred.affine(10.0, 3.0)
    assert torch.allclose(moved.mean, torch.tensor([10.0 + 1.5]))
    assert torch.allclose(moved.var, pred.var * 9)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (2.5, TypeError),
                                        (True, TypeError)])
def test_bad_num_samples(bad, error, gen):
    with pytest.raises(error, match="num_samples"):
        predictive(_model(gen), torch.randn(2, 1), bad)


def test_bad_levels():
    pred = Prediction(torch.zeros(1, 2), torch.ones(1, 2))
    for level in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="level"):
            pred.interval(level)
    with pytest.raises(ValueError, match="quantile levels"):
        pred.quantile(1.0)
