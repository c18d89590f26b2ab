"""The non-Gaussian likelihoods: densities, support checks naming the row, the Student-t CDF."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import special, stats

from varbayes.likelihoods import LIKELIHOODS, get_likelihood, student_t_cdf
from varbayes.likelihoods.student_t import regularized_beta


def test_registry_holds_every_family() -> None:
    assert set(LIKELIHOODS) == {"gaussian", "student_t", "poisson", "exponential", "bernoulli",
                                "categorical"}


def test_student_t_cdf_error_bound_against_scipy() -> None:
    y = torch.linspace(-300, 300, 4001, dtype=torch.float64)
    for df in (2.0001, 2.5, 3.0, 7.0, 30.0, 1e3, 1e4):
        f64 = torch.float64
        got = student_t_cdf(y, torch.tensor(df, dtype=f64), torch.tensor(0.3, dtype=f64),
                            torch.tensor(2.0, dtype=f64))
        ref = stats.t.cdf(y.numpy(), df, loc=0.3, scale=2.0)
        assert np.abs(got.numpy() - ref).max() < 2e-11, df


def test_regularized_beta_against_scipy() -> None:
    rng = np.random.default_rng(0)
    a, b, x = rng.uniform(0.1, 50, 500), rng.uniform(0.1, 50, 500), rng.uniform(0, 1, 500)
    got = regularized_beta(torch.tensor(a), torch.tensor(b), torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, special.betainc(a, b, x), atol=1e-11)


def test_log_probs_match_scipy() -> None:
    y = torch.tensor([0.0, 1.0, 3.0, 7.0], dtype=torch.float64)
    rate = torch.tensor([0.5, 1.0, 2.0, 9.0], dtype=torch.float64)
    np.testing.assert_allclose(get_likelihood("poisson").log_prob(y, {"rate": rate}).numpy(),
                               stats.poisson.logpmf(y.numpy(), rate.numpy()))
    yt = y + 0.5
    np.testing.assert_allclose(
        get_likelihood("exponential").log_prob(yt, {"rate": rate}).numpy(),
        stats.expon.logpdf(yt.numpy(), scale=1 / rate.numpy()))
    params = {"loc": rate, "scale": rate, "df": rate + 2}
    np.testing.assert_allclose(get_likelihood("student_t").log_prob(y, params).numpy(),
                               stats.t.logpdf(y.numpy(), rate.numpy() + 2, rate.numpy(),
                                              rate.numpy()))
    logits = torch.tensor([[0.0, 1.0, -1.0]] * 4, dtype=torch.float64)
    got = get_likelihood("categorical").log_prob(torch.tensor([0.0, 1.0, 2.0, 1.0]),
                                                 {"logits": logits})
    ref = torch.log_softmax(logits, -1)[torch.arange(4), torch.tensor([0, 1, 2, 1])]
    torch.testing.assert_close(got, ref)


def test_negative_count_names_the_row() -> None:
    with pytest.raises(ValueError, match=r"y\[2\] = -1.0 is a negative count"):
        get_likelihood("poisson").check_target(np.array([0.0, 3.0, -1.0]))


def test_non_integer_count_names_the_row() -> None:
    with pytest.raises(ValueError, match=r"y\[1\] = 2.5 is not an integer count"):
        get_likelihood("poisson").check_target(np.array([0.0, 2.5, 1.0]))


def test_non_positive_exponential_target_names_the_row() -> None:
    with pytest.raises(ValueError, match=r"y\[0\] = 0.0 is not positive"):
        get_likelihood("exponential").check_target(np.array([0.0, 2.5]))
    with pytest.raises(ValueError, match=r"y\[1\] = -2.0 is not positive"):
        get_likelihood("exponential").check_target(np.array([1.0, -2.0]))
