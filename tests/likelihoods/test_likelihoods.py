"""The likelihood interface and the Gaussian likelihood."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from varbayes.likelihoods import LIKELIHOODS, Gaussian, Likelihood, get_likelihood


def test_gaussian_log_prob_matches_scipy_and_torch() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randn(3, 7, generator=g, dtype=torch.float64) * 5
    loc = torch.randn(3, 7, generator=g, dtype=torch.float64)
    scale = torch.rand(3, 7, generator=g, dtype=torch.float64) * 3 + 1e-3
    lik = Gaussian()
    got = lik.log_prob(y, {"loc": loc, "scale": scale})
    np.testing.assert_allclose(got.numpy(), scipy.stats.norm.logpdf(y, loc, scale), rtol=1e-12)
    torch.testing.assert_close(got, lik.distribution({"loc": loc, "scale": scale}).log_prob(y))


def test_registry_names_and_unknown_name() -> None:
    for name, cls in LIKELIHOODS.items():
        assert isinstance(get_likelihood(name), cls) and cls.name == name
        assert set(cls.params) == set(cls.arg_constraints)
    lik = Gaussian()
    assert get_likelihood(lik) is lik
    with pytest.raises(ValueError, match=r"unknown likelihood 'laplace'; expected one of"):
        get_likelihood("laplace")


def test_check_params_names_the_parameter() -> None:
    lik: Likelihood = Gaussian()
    with pytest.raises(ValueError, match=r"missing \['scale'\]"):
        lik.check_params({"loc": torch.zeros(2)})
    with pytest.raises(ValueError, match="parameter 'scale' breaks its constraint"):
        lik.check_params({"loc": torch.zeros(2), "scale": torch.tensor([1.0, -1.0])})
    lik.check_params({"loc": torch.zeros(2), "scale": torch.ones(2)})


def test_check_target_names_the_row() -> None:
    Gaussian().check_target(np.array([0.0, -3.0, 1e30]))
    with pytest.raises(ValueError, match=r"y\[1\] = nan is outside the support"):
        Gaussian().check_target(np.array([0.0, np.nan]))
