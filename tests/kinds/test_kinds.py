"""The kinds registry: one record per kind, and the prior as a configuration option."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from varbayes import io
from varbayes.kinds import KINDS, ModelKind, build_model, fit, get_kind, make_config
from varbayes.priors import GaussianPrior, ScaleMixturePrior


def test_every_kind_has_one_record() -> None:
    assert list(KINDS) == [k.value for k in ModelKind]
    for name, kind in KINDS.items():
        assert kind.name == name and kind.title
        config = make_config(name, 3)
        model = kind.build(config, torch.Generator().manual_seed(0))
        out = model(torch.randn(4, 3), 2)
        assert out.loc.shape[-1] == 4
        assert kind.has_epistemic == (out.loc.shape[0] == 2)  # weight draws differ only then
    with pytest.raises(ValueError, match=r"unknown model kind 'gp'; expected one of \['mle'"):
        get_kind("gp")


def test_prior_option_reaches_the_model() -> None:
    config = make_config("bbb", 2)
    assert config["prior"] == "gaussian"
    assert isinstance(build_model(config).prior, GaussianPrior)
    config = make_config("bbb", 2, prior="scale_mixture", prior_pi=0.25, prior_scale=2.0,
                         prior_scale2=0.01)
    prior = build_model(config).prior
    assert isinstance(prior, ScaleMixturePrior)
    assert (prior.pi, prior.scale1, prior.scale2) == (0.25, 2.0, 0.01)
    # no closed-form KL: the defaults follow, explicit conflicting options are refused
    assert config["kl"] == "mc" and config["estimator"] == "reparam"
    hetero = make_config("hetero", 2, prior="scale_mixture")
    assert hetero["kl"] == "mc" and hetero["estimator"] == "reparam"
    with pytest.raises(ValueError, match="needs kl='mc' and estimator='reparam'; got kl="):
        make_config("bbb", 2, prior="scale_mixture", kl="analytic")
    with pytest.raises(ValueError, match="got estimator='local'"):
        make_config("hetero", 2, prior="scale_mixture", estimator="local")
    with pytest.raises(ValueError, match="prior_pi"):
        make_config("bbb", 2, prior_pi=1.0)
    with pytest.raises(ValueError, match="prior"):
        make_config("bbb", 2, prior="laplace")
    with pytest.raises(ValueError, match="unknown option"):
        make_config("mle", 2, prior="gaussian")


def test_scale_mixture_model_trains_and_round_trips(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2))
    y = x[:, 0] + 0.1 * rng.normal(size=30)
    fitted, history = fit("hetero", x, y, generator=torch.Generator().manual_seed(0), epochs=20,
                          hidden=[4], prior="scale_mixture")
    assert np.isfinite(history.loss).all()
    loaded = io.load(io.save(fitted, tmp_path / "m"))
    assert isinstance(loaded.model.prior, ScaleMixturePrior)
    a = fitted.predict(x, 5, generator=torch.Generator().manual_seed(1))
    b = loaded.predict(x, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.loc, b.loc) and torch.equal(a.scale, b.scale)


def test_estimator_takes_the_prior() -> None:
    from sklearn.base import clone

    from varbayes import BayesianRegressor

    rng = np.random.default_rng(1)
    x = rng.normal(size=(25, 2))
    y = x[:, 1] + 0.1 * rng.normal(size=25)
    reg = BayesianRegressor("bbb", prior="scale_mixture", epochs=5, hidden=4, random_state=0)
    reg.fit(x, y)
    assert isinstance(reg.model_.model.prior, ScaleMixturePrior)
    assert clone(reg).get_params()["prior"] == "scale_mixture"
    with pytest.raises(ValueError, match="prior"):
        BayesianRegressor("bbb", prior="laplace", epochs=2).fit(x, y)


def test_cli_fit_takes_the_prior(tmp_path, capsys) -> None:
    from varbayes.cli import main

    assert main(["fit", "--model", "bbb", "--prior", "scale_mixture", "--prior-scale", "0.5",
                 "--epochs", "3", "--out", str(tmp_path / "m")]) == 0
    prior = io.load(tmp_path / "m").model.prior
    assert isinstance(prior, ScaleMixturePrior) and prior.scale1 == 0.5
    assert main(["fit", "--model", "mle", "--prior", "gaussian", "--epochs", "3",
                 "--out", str(tmp_path / "m2")]) == 2
    assert "--prior applies to --model bbb and hetero only" in capsys.readouterr().err
