"""Family predictives: exact mixture CDFs and quantiles, sampling, variance and entropy splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from varbayes.models import FamilyMLP
from varbayes.predictive import ClassPrediction, FamilyPrediction, family_predictive

G = torch.Generator


def _poisson(s: int = 7, n: int = 5, seed: int = 0) -> FamilyPrediction:
    rate = torch.rand((s, n), generator=G().manual_seed(seed), dtype=torch.float64) * 20 + 0.1
    return FamilyPrediction("poisson", {"rate": rate})


def test_poisson_cdf_is_the_mixture_of_scipy_cdfs() -> None:
    pred = _poisson()
    k = torch.tensor([[-1.0, 0.0, 2.5, 7.0, 30.0]], dtype=torch.float64)
    ref = stats.poisson.cdf(np.floor(k.numpy()), pred.params["rate"].numpy()).mean(0)
    np.testing.assert_allclose(pred.cdf(k)[0].numpy(), ref, atol=1e-12)


def test_count_quantiles_are_the_smallest_integers_reaching_the_level() -> None:
    pred = _poisson()
    levels = torch.tensor([0.01, 0.05, 0.5, 0.9, 0.95, 0.999], dtype=torch.float64)
    q = pred.quantile(levels)
    assert torch.equal(q, q.round())
    rate = pred.params["rate"].numpy()
    for i, level in enumerate(levels.tolist()):
        for j in range(rate.shape[1]):
            ks = np.arange(0, 200)
            cdf = stats.poisson.cdf(ks[:, None], rate[:, j]).mean(1)
            assert q[i, j] == ks[np.argmax(cdf >= level)]


def test_exponential_and_student_t_quantiles_invert_the_cdf() -> None:
    g = G().manual_seed(1)
    rate = torch.rand((9, 4), generator=g, dtype=torch.float64) * 3 + 0.2
    exp = FamilyPrediction("exponential", {"rate": rate})
    loc = torch.randn((9, 4), generator=g, dtype=torch.float64)
    t = FamilyPrediction("student_t", {"loc": loc, "scale": rate, "df": rate + 2.5})
    levels = torch.tensor([0.02, 0.3, 0.5, 0.97], dtype=torch.float64)
    for pred in (exp, t):
        q = pred.quantile(levels)
        torch.testing.assert_close(pred.cdf(q), levels[:, None].expand_as(q), atol=1e-6, rtol=0)
    one = FamilyPrediction("student_t", {"loc": loc[:1], "scale": rate[:1], "df": rate[:1] + 2})
    ref = stats.t.ppf(0.95, rate[:1].numpy() + 2, loc[:1].numpy(), rate[:1].numpy())[0]
    np.testing.assert_allclose(one.quantile(0.95).numpy(), ref, rtol=1e-6)


def test_variance_split_is_expected_variance_plus_variance_of_means() -> None:
    pred = _poisson(s=50)
    rate = pred.params["rate"]
    torch.testing.assert_close(pred.aleatoric_var, rate.mean(0))
    torch.testing.assert_close(pred.epistemic_var, rate.var(0, correction=0))
    draws = pred.sample(40000, generator=G().manual_seed(0))
    torch.testing.assert_close(draws.mean(0), pred.mean, rtol=0.03, atol=0.05)
    torch.testing.assert_close(draws.var(0), pred.var, rtol=0.06, atol=0.1)


@pytest.mark.parametrize("family", ["student_t", "exponential"])
def test_sampling_matches_the_cdf(family: str) -> None:
    g = G().manual_seed(3)
    rate = torch.rand((5, 2), generator=g, dtype=torch.float64) + 0.5
    params = {"rate": rate} if family == "exponential" else {
        "loc": torch.randn((5, 2), generator=g, dtype=torch.float64), "scale": rate,
        "df": rate + 2.5}
    pred = FamilyPrediction(family, params)
    draws = pred.sample(20000, generator=g)
    for j in range(2):
        res = stats.kstest(draws[:, j].numpy(), lambda v, j=j: pred.cdf(
            torch.as_tensor(v)[:, None].expand(-1, 2))[:, j].numpy())
        assert res.pvalue > 1e-3  # FPR 0.1 % per column for a correct sampler


def test_entropy_split_is_exact_over_the_draws() -> None:
    logits = torch.randn((30, 6, 4), generator=G().manual_seed(0), dtype=torch.float64)
    pred = ClassPrediction(logits)
    p = torch.softmax(logits, -1)
    total = -(p.mean(0) * p.mean(0).log()).sum(-1)
    expected = -(p * p.log()).sum(-1).mean(0)
    torch.testing.assert_close(pred.entropy, total)
    torch.testing.assert_close(pred.aleatoric_entropy, expected)
    torch.testing.assert_close(pred.entropy, pred.aleatoric_entropy + pred.mutual_information)
    assert bool((pred.mutual_information > 0).all())
    assert float(ClassPrediction(logits[:1]).mutual_information.abs().max()) == 0.0
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    torch.testing.assert_close(pred.log_prob(y), p.mean(0)[torch.arange(6), y].log())


@pytest.mark.parametrize("likelihood", ["student_t", "poisson", "exponential", "bernoulli",
                                        "categorical"])
def test_chunked_draws_equal_one_pass(likelihood: str) -> None:
    model = FamilyMLP(2, (8,), likelihood=likelihood, n_classes=3,
                      generator=G().manual_seed(0))
    x = torch.randn(10, 2, generator=G().manual_seed(1))
    a = family_predictive(model, x, 20, generator=G().manual_seed(2))
    b = family_predictive(model, x, 20, generator=G().manual_seed(2), chunk_size=3)
    if isinstance(a, ClassPrediction):
        assert isinstance(b, ClassPrediction)
        torch.testing.assert_close(a.logits, b.logits)
    else:
        assert isinstance(b, FamilyPrediction)
        for key, value in a.params.items():
            torch.testing.assert_close(value, b.params[key])
