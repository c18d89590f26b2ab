"""``method='ivon'``: the options, the posterior a fit leaves, save/load and tampering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from varbayes import io
from varbayes.kinds import FittedModel, fit, make_config, predict_family
from varbayes.kinds.ivon import IVON_DEFAULTS, IVON_OPTIONS
from varbayes.nn import BayesLinear
from varbayes.optim.posterior import check_posterior, held_parameters, posterior_of

RNG = np.random.default_rng(0)
X = RNG.uniform(-2, 2, size=(120, 2))
Y = np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] + 0.1 * RNG.normal(size=120)


def _fit(kind: str = "hetero", y: np.ndarray = Y, **kw: Any) -> FittedModel:
    kw = {"epochs": 80, "hidden": [8], "method": "ivon", **kw}
    return fit(kind, X, y, generator=torch.Generator().manual_seed(0), feature_names=["a", "b"],
               target_name="t", **kw)[0]


def test_method_options_are_checked() -> None:
    assert "method" not in make_config("hetero", 2)  # Bayes by Backprop: configs as before
    assert make_config("hetero", 2, method="bbb") == make_config("hetero", 2)
    config = make_config("hetero", 2, method="ivon")
    assert config["method"] == "ivon" and config["lr"] == IVON_DEFAULTS["hetero"]["lr"]
    assert {k: config[k] for k in IVON_OPTIONS} == IVON_OPTIONS
    assert make_config("bbb", 2, method="ivon", lr=0.5, ivon_mc_samples=2)["lr"] == 0.5
    with pytest.raises(ValueError, match=r"unknown method 'adam'; allowed values are 'bbb', "):
        make_config("hetero", 2, method="adam")
    with pytest.raises(ValueError, match="weight uncertainty .* not model='mle'"):
        make_config("mle", 2, method="ivon")
    with pytest.raises(ValueError, match=r"\['ivon_hess_init'\] apply to method='ivon' only"):
        make_config("hetero", 2, ivon_hess_init=1.0)
    with pytest.raises(ValueError, match="kl='mc' does not apply to method='ivon'"):
        make_config("hetero", 2, method="ivon", kl="mc")
    with pytest.raises(ValueError, match="prior='scale_mixture' does not apply"):
        make_config("bbb", 2, method="ivon", prior="scale_mixture")
    with pytest.raises(ValueError, match="ivon_beta2"):
        make_config("hetero", 2, method="ivon", ivon_beta2=1.0)
    with pytest.raises(TypeError, match="ivon_mc_samples must be an int"):
        make_config("hetero", 2, method="ivon", ivon_mc_samples=1.5)


def test_fit_keeps_the_ivon_posterior_in_the_model() -> None:
    fitted = _fit(prior_scale=2.0, ivon_hess_init=0.5, early_stopping=True, epochs=1000)
    model = fitted.model
    posterior = posterior_of(model)
    assert posterior is not None
    n = 120 - fitted.fit_info["n_validation"]  # ess: the rows it trained on
    assert float(posterior.ess) == n
    assert float(posterior.weight_decay) == pytest.approx(1 / (n * 2.0**2))
    # IVON holds the means and the head, not the layers' rho (those follow from its posterior)
    held = dict(held_parameters(model))
    assert "layers.0.weight_loc" in held and "noise_net.0.weight" in held
    assert not any(name.endswith("_rho") for name in held)
    for name, layer in model.named_modules():
        if isinstance(layer, BayesLinear):
            torch.testing.assert_close(layer.weight_scale,
                                       posterior.scale(f"{name}.weight_loc"), rtol=1e-5, atol=0)
            assert not torch.equal(posterior.hessian(f"{name}.weight_loc"),
                                   torch.full_like(layer.weight_loc, 0.5))  # it was trained
    assert check_posterior(model) == []
    pred = fitted.predict(X, 50, generator=torch.Generator().manual_seed(0))
    assert bool((pred.loc.std(0) > 0).all())  # the weight draws differ: an epistemic part
    rmse = float(np.sqrt(np.mean((pred.mean.numpy() - Y) ** 2)))
    assert rmse < 0.8 * Y.std()  # learnt: a constant gives 1 (seeds 0-4 give 0.30-0.67)
    again = _fit(prior_scale=2.0, ivon_hess_init=0.5, early_stopping=True, epochs=1000)
    assert torch.equal(again.model.layers[0].weight_loc, model.layers[0].weight_loc)


def test_round_trip_gives_identical_predictions(tmp_path: Path) -> None:
    fitted = _fit("bbb", noise="learned")
    path = io.save(fitted, tmp_path / "m")
    doc = json.loads((path / "config.json").read_text())
    assert doc["config"]["method"] == "ivon" and doc["config"]["ivon_ess"] is None
    loaded = io.load(path)
    assert loaded.config == fitted.config
    for a, b in ((fitted, loaded), (loaded, fitted)):
        pa = a.predict(X, 64, generator=torch.Generator().manual_seed(3))
        pb = b.predict(X, 64, generator=torch.Generator().manual_seed(3))
        assert torch.equal(pa.loc, pb.loc) and torch.equal(pa.scale, pb.scale)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return io.save(_fit(epochs=5), tmp_path_factory.mktemp("ivon") / "model")


def _tampered(saved: Path, tmp_path: Path, key: str, edit: Any) -> Path:
    path = Path(shutil.copytree(saved, tmp_path / "model"))
    tensors = load_file(path / "model.safetensors")
    tensors[key] = edit(tensors[key])
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})
    return path


@pytest.mark.parametrize(("key", "edit", "match"), [
    ("model.ivon.hess_layers_0_weight_loc", lambda t: t - 10.0,
     r"Hessian estimate of 'layers.0.weight_loc' must be >= 0"),
    ("model.ivon.hess_layers_1_bias_loc", lambda t: t * 4.0,
     "do not follow from the IVON Hessian estimate"),
    ("model.layers.0.weight_rho", lambda t: t + 0.5, "do not follow from the IVON Hessian"),
    ("model.ivon.ess", lambda t: t * 0.0, "'ess' must be > 0"),
    ("model.ivon.weight_decay", lambda t: t - 1.0, "'weight_decay' must be >= 0"),
])  # fmt: skip
def test_tampered_posterior_is_a_clear_error(saved: Path, tmp_path: Path, key: str, edit: Any,
                                             match: str) -> None:
    path = _tampered(saved, tmp_path, key, edit)
    with pytest.raises(ValueError, match=match) as info:
        io.load(path)
    assert "model.safetensors" in str(info.value)


def test_a_config_that_drops_or_adds_the_method_is_refused(saved: Path, tmp_path: Path) -> None:
    path = Path(shutil.copytree(saved, tmp_path / "model"))
    doc = json.loads((path / "config.json").read_text())
    del doc["config"]["method"]
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"'ivon_mc_samples'\] apply to method='ivon' only"):
        io.load(path)
    for key in IVON_OPTIONS:
        del doc["config"][key]
    (path / "config.json").write_text(json.dumps(doc))  # a bbb model with IVON's tensors
    with pytest.raises(ValueError, match=r"unexpected tensors.*model.ivon.ess"):
        io.load(path)
    doc["config"]["method"] = "adam"
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="config.json: invalid model config: unknown method"):
        io.load(path)


def test_family_likelihoods_train_with_ivon() -> None:
    counts = np.random.default_rng(1).poisson(np.exp(0.5 * X[:, 0] + 0.5)).astype(float)
    fitted = _fit("family", y=counts, likelihood="poisson")
    pred = predict_family(fitted, X, 50, generator=torch.Generator().manual_seed(0))
    corr = np.corrcoef(pred.mean.numpy(), np.exp(0.5 * X[:, 0]))[0, 1]
    assert corr > 0.9 and check_posterior(fitted.model) == []
