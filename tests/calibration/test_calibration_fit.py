"""Early stopping in ``kinds.fit`` / the estimator / the CLI, and calibrated estimators."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.base import clone

from varbayes import BayesianRegressor, io
from varbayes.calibration import CalibratedPrediction
from varbayes.cli import main
from varbayes.infer import ELBO, train
from varbayes.infer.early_stopping import EarlyStopping
from varbayes.kinds import fit
from varbayes.kinds.calibrated import DEFAULT_CONFORMAL_STEP, calibration_rows
from varbayes.kinds.registry import FIXED_INIT_RHO, hetero_init_rho
from varbayes.kinds.stopping import MIN_ROWS
from varbayes.models import BayesianMLP


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(n, 2))
    return x, np.sin(x[:, 0]) + 0.1 * (1 + x[:, 1] ** 2) * rng.normal(size=n)


@pytest.mark.parametrize("fast", [True, False])
def test_callback_stops_both_loops(fast: bool) -> None:
    """The autograd loop and the fast engine call back every k epochs and stop on True."""
    x = torch.linspace(-2, 2, 32)[:, None]
    model = BayesianMLP(1, (8,), head="heteroscedastic", noise_hidden=(4,), estimator="local",
                        generator=torch.Generator().manual_seed(0))
    seen: list[tuple[int, float]] = []

    def callback(done: int) -> bool:
        seen.append((done, float(model.layers[0].weight_loc.detach().sum())))
        return done >= 30

    history = train(model, ELBO(32), x, torch.sin(x[:, 0]), epochs=100, lr=0.01, fast=fast,
                    callback=callback, callback_every=10)
    assert [d for d, _ in seen] == [10, 20, 30]
    assert len(history.loss) == 30
    assert len({w for _, w in seen}) == 3  # the callback saw the parameters move


def test_early_stopping_keeps_the_best_checkpoint() -> None:
    model = torch.nn.Linear(1, 1)
    scores = iter([1.0, 3.0, 2.0, math.nan, 2.5])
    stop = EarlyStopping(model, lambda: next(scores), check_every=5, n_iter_no_change=3)
    with torch.no_grad():
        model.weight.fill_(1.0)
        assert not stop(5)
        model.weight.fill_(2.0)
        assert not stop(10)
        model.weight.fill_(3.0)
        assert not stop(15) and not stop(20)
        assert stop(25)
    stop.restore()
    assert float(model.weight.detach()) == 2.0
    assert stop.best_epoch == 10 and stop.stopped_epoch == 25
    assert json.dumps(stop.summary())  # JSON-ready, NaN as null
    with pytest.raises(ValueError):
        EarlyStopping(model, lambda: 0.0, check_every=0, n_iter_no_change=1)


def test_fit_early_stopping_records_and_restores() -> None:
    x, y = _data(200)
    fitted, history = fit("hetero", x, y, epochs=600, early_stopping=True, n_iter_no_change=3,
                          generator=torch.Generator().manual_seed(0))
    info = fitted.fit_info
    assert info["early_stopping"] and info["n_validation"] == 20
    assert 0 < info["best_epoch"] <= info["stopped_epoch"] == len(history.loss) <= 600
    assert info["curve"][-1][0] == info["stopped_epoch"]
    assert fitted.validation_rows.numel() == 20
    assert info["spread_factor"] == fitted.spread_factor > 0
    assert fitted.spread_factor != 1.0
    # too few rows: no validation part, trained for the configured epochs
    small, _ = fit("hetero", x[:30], y[:30], epochs=40, early_stopping=True,
                   generator=torch.Generator().manual_seed(0))
    assert small.fit_info["early_stopping"] is False and "30 rows" in small.fit_info["reason"]
    for bad in ({"validation_fraction": 1.0}, {"n_iter_no_change": 0}):
        with pytest.raises(ValueError):
            fit("hetero", x, y, epochs=5, early_stopping=True, **bad)


def test_hetero_init_rho() -> None:
    """Below MIN_ROWS rows (no validation part) the posterior starts at the prior's scale."""
    config = {"prior_scale": 1.0}
    assert math.log1p(math.exp(hetero_init_rho(15, config, MIN_ROWS))) == pytest.approx(1.0)
    mixture = {"prior": "scale_mixture", "prior_pi": 0.5, "prior_scale": 2.0,
               "prior_scale2": 0.0}
    assert math.log1p(math.exp(hetero_init_rho(15, mixture, MIN_ROWS))) == pytest.approx(
        math.sqrt(2.0))
    assert hetero_init_rho(MIN_ROWS, config, MIN_ROWS) == FIXED_INIT_RHO
    x, y = _data(40)
    fitted, _ = fit("hetero", x, y, epochs=2, prior_scale=0.5,
                    generator=torch.Generator().manual_seed(0))
    assert math.log1p(math.exp(fitted.config["init_rho"])) == pytest.approx(0.5)
    big, _ = fit("hetero", *_data(100), epochs=2, early_stopping=True, n_members=1)
    assert big.config["init_rho"] == FIXED_INIT_RHO
    fixed, _ = fit("hetero", x, y, epochs=2, init_rho=-5.0)
    assert fixed.config["init_rho"] == -5.0


def test_calibration_part_is_sized_for_an_exact_ninety_percent() -> None:
    """``n_cal + 1`` a multiple of 10 where 20 rows are left to train on, as many as 80 (a
    validation part) where there were 80 before; else as before."""
    sizes = {n: len(calibration_rows(n, 0.1, torch.Generator().manual_seed(0))[1])
             for n in (45, 48, 49, 99, 100, 108, 109, 200, 277, 691, 1000)}
    assert sizes == {45: 20, 48: 20, 49: 29, 99: 29, 100: 20, 108: 20, 109: 29, 200: 29,
                     277: 29, 691: 69, 1000: 109}
    assert len(calibration_rows(1000, 0.5, None)[1]) == 509


def test_conformal_step_sets_the_rounding_of_the_calibration_part() -> None:
    """None is the default step, 10; 1 keeps ``round(0.1 n)`` (at least 20), other steps round
    to their multiples; the same random order, so a smaller part is a subset of a larger."""
    assert DEFAULT_CONFORMAL_STEP == 10

    def held(n: int, step: int | None) -> set[int]:
        rows = calibration_rows(n, 0.1, torch.Generator().manual_seed(0), step)[1]
        return set(rows.tolist())

    for n, plain, by20 in ((100, 20, 20), (200, 20, 39), (277, 28, 39), (1000, 100, 119)):
        default = held(n, None)
        assert default == held(n, 10) and len(held(n, 1)) == plain
        assert len(held(n, 20)) == by20
        assert held(n, 1) <= default <= held(n, 20)


def test_conformal_step_reaches_the_calibration_part_of_a_fit() -> None:
    """``kinds.fit(conformal_step=1)`` (and the estimator's hook) holds out 20 rows of 200,
    not the default 29; the hook is not a parameter."""
    x, y = _data(200)
    options = {"epochs": 2, "calibration": "conformal", "calibration_samples": 20}
    default, _ = fit("hetero", x, y, generator=torch.Generator().manual_seed(0), **options)
    plain, _ = fit("hetero", x, y, generator=torch.Generator().manual_seed(0), conformal_step=1,
                   **options)
    assert default.fit_info["calibration"]["n"] == 29
    assert plain.fit_info["calibration"]["n"] == 20
    reg = BayesianRegressor(epochs=2, num_samples=20, calibration="conformal", random_state=0)
    reg._conformal_step = 1
    assert reg.fit(x, y).model_.fit_info["calibration"]["n"] == 20
    assert "conformal_step" not in reg.get_params()
    assert clone(reg)._conformal_step is None  # a hook on the instance, not cloned


def test_bad_conformal_step_is_refused() -> None:
    x, y = _data(100)
    with pytest.raises(ValueError, match=r"conformal_step must be in the range \[1, inf\), got 0"):
        fit("hetero", x, y, epochs=1, calibration="scale", conformal_step=0)
    with pytest.raises(TypeError, match="conformal_step must be an int, got float 2.5"):
        fit("hetero", x, y, epochs=1, conformal_step=2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="conformal_step must be an int, got bool True"):
        calibration_rows(100, 0.1, None, True)
    with pytest.raises(ValueError, match="conformal_step must be in the range"):
        calibration_rows(100, 0.1, None, -10)


@pytest.mark.parametrize("method", ["scale", "isotonic", "conformal"])
def test_estimator_calibration_round_trip(method: str, tmp_path: object) -> None:
    x, y = _data(200)
    reg = BayesianRegressor(epochs=150, num_samples=50, calibration=method, random_state=0)
    reg.fit(x, y)
    assert reg.model_.calibration.method == method
    assert reg.model_.fit_info["calibration"]["n"] == 29  # 20 rounded up: 30 * 0.9 = 27
    mean, std = reg.predict(x[:5], return_std=True)
    lo, hi = reg.predict_interval(x[:5])
    assert np.all(lo < mean) and np.all(mean < hi) and np.all(std > 0)
    assert reg.sample_y(x[:3], 4).shape == (3, 4)
    assert set(reg.predict_uncertainty(x[:2])) == {"mean", "std", "aleatoric_std",
                                                   "epistemic_std"}
    path = reg.save(tmp_path / "m")  # type: ignore[operator]
    again = BayesianRegressor.load(path)
    np.testing.assert_array_equal(again.predict_interval(x[:5])[1], hi)
    assert again.calibration == method and again.early_stopping is True
    assert clone(reg).get_params()["calibration"] == method


def test_estimator_calibrate_on_user_rows() -> None:
    x, y = _data(300)
    reg = BayesianRegressor(epochs=100, num_samples=50, random_state=0).fit(x[:200], y[:200])
    before = reg.predict_interval(x[200:])
    reg.calibrate(x[200:250], y[200:250], method="conformal")
    pred = reg._prediction(x[250:])
    assert isinstance(pred, CalibratedPrediction)
    after = reg.predict_interval(x[250:])
    assert not np.allclose(after[0], before[0][50:])
    reg.calibrate(x[200:250], y[200:250], method=None)
    np.testing.assert_array_equal(reg.predict_interval(x[200:])[0], before[0])
    with pytest.raises(ValueError, match="calibration method"):
        reg.calibrate(x[:5], y[:5], method="platt")
    with pytest.raises(ValueError, match="too few"):
        BayesianRegressor(epochs=5, calibration="conformal").fit(x[:30], y[:30])
    with pytest.raises(ValueError, match="calibration method"):
        BayesianRegressor(epochs=5, calibration="magic").fit(x, y)


def test_cli_fit_calibrate_evaluate(tmp_path: object, capsys: pytest.CaptureFixture[str]
                                    ) -> None:
    x, y = _data(260)
    for name, rows in (("train", slice(0, 200)), ("cal", slice(200, 260))):
        np.savetxt(tmp_path / f"{name}.csv", np.c_[x[rows], y[rows]], delimiter=",",  # type: ignore[operator]
                   header="a,b,y", comments="")
    d = str(tmp_path)
    assert main(["fit", f"{d}/train.csv", "--target", "y", "--epochs", "120", "--samples", "50",
                 "--calibration", "scale", "--out", f"{d}/m1"]) == 0
    doc = json.loads((tmp_path / "m1" / "config.json").read_text())  # type: ignore[operator]
    assert doc["calibration"]["method"] == "scale"
    assert doc["metadata"]["fit"]["early_stopping"] is True
    assert main(["calibrate", f"{d}/m1", f"{d}/cal.csv", "--method", "conformal",
                 "--out", f"{d}/m2"]) == 0
    assert io.load(f"{d}/m2").calibration.method == "conformal"
    capsys.readouterr()
    assert main(["evaluate", f"{d}/m2", f"{d}/cal.csv", "--json", "--plot", f"{d}/c.png"]) == 0
    scores = json.loads(capsys.readouterr().out)
    for pct in ("50", "80", "90", "95", "99"):
        assert f"coverage_{pct}" in scores
    assert scores["calibration"] == "conformal" and scores["nll"] is None
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"  # type: ignore[operator]
    assert main(["fit", f"{d}/train.csv", "--target", "y", "--epochs", "5",
                 "--no-early-stopping", "--out", f"{d}/m3"]) == 0
    assert io.load(f"{d}/m3").fit_info == {}


def test_spread_factor_is_saved_and_checked(tmp_path: object) -> None:
    x, y = _data(120)
    fitted, _ = fit("hetero", x, y, epochs=50, early_stopping=True,
                    generator=torch.Generator().manual_seed(0))
    path = io.save(fitted, tmp_path / "m")  # type: ignore[operator]
    again = io.load(path)
    assert again.spread_factor == fitted.spread_factor
    g = torch.Generator().manual_seed(0)
    a = fitted.predict(x[:4], 20, generator=g).std
    b = again.predict(x[:4], 20, generator=torch.Generator().manual_seed(0)).std
    torch.testing.assert_close(a, b)
    doc = json.loads((path / "config.json").read_text())
    doc["spread_factor"] = -1
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="spread_factor"):
        io.load(path)
