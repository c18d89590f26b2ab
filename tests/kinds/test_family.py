"""The family kind: fitting, save / load round trips, the regressor's likelihood, the fast path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from varbayes import BayesianRegressor, io
from varbayes._fast import unsupported
from varbayes.infer import ELBO
from varbayes.kinds import fit, make_config, predict_family
from varbayes.models import FamilyMLP
from varbayes.predictive import ClassPrediction, FamilyPrediction

G = torch.Generator


def _data(likelihood: str, n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    if likelihood == "poisson":
        return x, rng.poisson(np.exp(1 + 0.5 * x[:, 0])).astype(float)
    if likelihood == "exponential":
        return x, rng.exponential(np.exp(0.3 * x[:, 1]))
    if likelihood == "student_t":
        return x, x[:, 0] + 0.3 * rng.standard_t(3, size=n)
    if likelihood == "bernoulli":
        return x, (x[:, 0] > 0).astype(float)
    return x, np.digitize(x[:, 0], [-0.5, 0.5]).astype(float)


@pytest.mark.parametrize("likelihood", ["student_t", "poisson", "exponential", "bernoulli",
                                        "categorical"])
def test_round_trip_identical_predictions(likelihood: str, tmp_path: Path) -> None:
    x, y = _data(likelihood)
    kw = {"n_classes": 3} if likelihood == "categorical" else {}
    fitted, _ = fit("family", x, y, likelihood=likelihood, epochs=20, generator=G().manual_seed(0),
                    **kw)
    loaded = io.load(io.save(fitted, tmp_path / "m"))
    assert loaded.config == fitted.config and loaded.config["likelihood"] == likelihood
    a = predict_family(fitted, x[:7], 30, generator=G().manual_seed(1))
    b = predict_family(loaded, x[:7], 30, generator=G().manual_seed(1))
    if isinstance(a, ClassPrediction):
        assert isinstance(b, ClassPrediction) and torch.equal(a.logits, b.logits)
    else:
        assert isinstance(b, FamilyPrediction)
        assert all(torch.equal(v, b.params[k]) for k, v in a.params.items())
    with pytest.raises(TypeError, match="predict_family"):
        loaded.predict(x[:2])  # never a silent Gaussian mixture


def test_counts_are_not_standardised_and_student_t_is() -> None:
    x, y = _data("poisson")
    fitted, _ = fit("family", x, y, likelihood="poisson", epochs=5, generator=G().manual_seed(0))
    assert float(fitted.y_scaler.mean[0]) == 0.0 and float(fitted.y_scaler.std[0]) == 1.0
    x, y = _data("student_t")
    fitted, _ = fit("family", x, y + 100, likelihood="student_t", epochs=5,
                    generator=G().manual_seed(0))
    assert abs(float(fitted.y_scaler.mean[0]) - (y + 100).mean()) < 1e-9
    pred = predict_family(fitted, x, 20, generator=G().manual_seed(0))
    assert isinstance(pred, FamilyPrediction) and abs(float(pred.mean.mean()) - 100) < 3


def test_the_fast_engine_takes_class_heads_and_refuses_the_others() -> None:
    for lik in ("student_t", "poisson", "exponential"):
        model = FamilyMLP(2, (8,), likelihood=lik, n_classes=3)
        assert unsupported(model, ELBO(10, likelihood=lik)) is not None
        assert "likelihood head" in str(unsupported(model, ELBO(10)))  # even with a Gaussian ELBO
    for lik in ("bernoulli", "categorical"):  # tests/fast/test_fast_classes.py: the same gradients
        model = FamilyMLP(2, (8,), likelihood=lik, n_classes=3)
        assert unsupported(model, ELBO(10, likelihood=lik)) is None
        assert lik in str(unsupported(model, ELBO(10)))  # never with another likelihood's ELBO


def test_regressor_likelihood_option(tmp_path: Path) -> None:
    x, y = _data("poisson", n=120)
    reg = BayesianRegressor(likelihood="poisson", epochs=30, random_state=0).fit(x, y)
    lower, upper = reg.predict_interval(x[:5])
    assert np.array_equal(lower, np.round(lower)) and np.array_equal(upper, np.round(upper))
    parts = reg.predict_uncertainty(x[:5])
    np.testing.assert_allclose(parts["std"] ** 2,
                               parts["aleatoric_std"] ** 2 + parts["epistemic_std"] ** 2)
    loaded = BayesianRegressor.load(reg.save(tmp_path / "r"))
    np.testing.assert_array_equal(loaded.predict(x[:5]), reg.predict(x[:5]))
    with pytest.raises(ValueError, match="negative count"):
        BayesianRegressor(likelihood="poisson", epochs=2).fit(x, y - 5)
    with pytest.raises(ValueError, match="leave model at its default"):
        BayesianRegressor("bbb", likelihood="poisson").fit(x, y)
    with pytest.raises(ValueError, match="likelihood"):
        BayesianRegressor(likelihood="categorical").fit(x, y)


def test_family_options_are_checked() -> None:
    with pytest.raises(ValueError, match="likelihood"):
        make_config("family", 2, likelihood="gamma")
    with pytest.raises(ValueError, match="n_classes"):
        make_config("family", 2, n_classes=1)
    x, y = _data("categorical")
    with pytest.raises(ValueError, match=r"y\[\d+\] = 2.0 is not a class index of the 2"):
        fit("family", x, y, likelihood="categorical", n_classes=2, epochs=2)
