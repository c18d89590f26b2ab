"""Training the networks of ``kinds.fit``: members, their validation parts, the noise warm-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from varbayes import BayesianRegressor, io
from varbayes.cli import main
from varbayes.infer import ELBO, train
from varbayes.kinds import fit
from varbayes.kinds.members import _hand_over, _twin, members_of
from varbayes.kinds.stopping import plan_validation
from varbayes.models import BayesianMLP, Ensemble
from varbayes.predictive import predictive


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(n, 2))
    return x, np.sin(x[:, 0]) + 0.1 * (1 + x[:, 1] ** 2) * rng.normal(size=n)


def test_members_get_disjoint_validation_parts() -> None:
    one = plan_validation(200, True, 0.1, 5, 100, torch.Generator().manual_seed(0))
    plan = plan_validation(200, True, 0.1, 5, 100, torch.Generator().manual_seed(0), members=3)
    assert torch.equal(plan.val_rows, one.val_rows) and torch.equal(plan.fit_rows, one.fit_rows)
    vals = [set(v.tolist()) for _, v in plan.folds]
    assert all(len(v) == 20 for v in vals) and not (vals[0] & vals[1] or vals[1] & vals[2])
    for fit_rows, val_rows in plan.folds:
        assert sorted(fit_rows.tolist() + val_rows.tolist()) == list(range(200))
    # more validation rows than the members can have apart: the parts wrap round and overlap
    wide = plan_validation(80, True, 0.5, 5, 100, torch.Generator().manual_seed(0), members=3)
    assert [len(v) for _, v in wide.folds] == [40, 40, 40]
    assert plan_validation(60, True, 0.1, 5, 100, None, members=3).folds == []


def test_hand_over_keeps_the_predictive() -> None:
    """The twin's best checkpoint and the member after the hand-over predict the same."""
    member = BayesianMLP(2, (8,), head="heteroscedastic", noise_hidden=(4,), estimator="local",
                         generator=torch.Generator().manual_seed(0))
    twin = _twin(member)
    assert twin.layers is member.layers and twin.noise_rho.device.type == "cpu"
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    train(twin, ELBO(64), x, x[:, 0].sin(), epochs=30, lr=0.02)
    _hand_over(twin, member)
    a = predictive(twin, x, 20, generator=torch.Generator().manual_seed(2))
    b = predictive(member, x, 20, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a.loc, b.loc)
    torch.testing.assert_close(a.scale, b.scale)


def test_the_monitor_scores_the_model_it_holds() -> None:
    """The warm-up hands the monitor its twin: the checks must score the twin, not the member."""
    member = BayesianMLP(2, (8,), head="heteroscedastic", noise_hidden=(4,), estimator="local",
                         generator=torch.Generator().manual_seed(0))
    twin = _twin(member)
    with torch.no_grad():
        twin.noise_rho.fill_(-3.0)  # a noise level the member's noise network does not give
    plan = plan_validation(100, True, 0.2, 5, 100, torch.Generator().manual_seed(0))
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(1))
    y = x[:, 0].sin()
    monitor = plan.monitor(member, x[plan.val_rows], y[plan.val_rows], 0.0)
    as_member = monitor.score()
    monitor.model = twin
    assert monitor.score() != as_member
    _hand_over(twin, member)
    assert monitor.score() == pytest.approx(plan.monitor(member, x[plan.val_rows],
                                                         y[plan.val_rows], 0.0).score())


def test_fit_trains_every_member_with_a_warm_up() -> None:
    x, y = _data(200)
    fitted, history = fit("hetero", x, y, epochs=90, early_stopping=True, n_iter_no_change=2,
                          generator=torch.Generator().manual_seed(0))
    assert isinstance(fitted.model, Ensemble) and len(members_of(fitted.model)) == 3
    info = fitted.fit_info
    assert len(info["members"]) == 3 and info["members"][0]["best_epoch"] == info["best_epoch"]
    for record in info["members"]:
        assert 0 <= record["warmup_epochs"] <= record["best_epoch"] <= record["stopped_epoch"]
        assert record["warmup_epochs"] <= 60  # round(2/3 * 90)
    assert len(history.loss) == info["stopped_epoch"]
    # without a validation part: 60 epochs homoscedastic, then 30 of every parameter
    plain, history = fit("hetero", x, y, epochs=90, n_members=1,
                         generator=torch.Generator().manual_seed(0))
    assert len(history.loss) == 90 and plain.fit_info == {}
    assert float(plain.model.noise_net[-1].weight.detach().abs().sum()) > 0
    none, _ = fit("hetero", x, y, epochs=20, n_members=1, warmup_fraction=0.0)
    assert isinstance(none.model, BayesianMLP)


@pytest.mark.parametrize("epochs", [50, 300])
def test_fifteen_points_are_covered_away_from_the_data(epochs: int) -> None:
    """Issue 11: on 15 points, whatever ``epochs`` >= 50, the 90 % interval covers >= 0.85.

    Deterministic given the seeds (no false positives); measured 1.000 among and away for
    these seeds (``docs/calibration.md``, ``tiny quad``; 300 epochs is where 20 hidden units
    instead of 50 fell to 0.71 away on one seed of five).
    """
    f = lambda x: 0.3 * x**2 - x  # noqa: E731
    rng = np.random.default_rng([0, 15])
    x = rng.uniform(0, 5, 15)
    y = f(x) + 0.3 * rng.normal(size=15)
    reg = BayesianRegressor(epochs=epochs, random_state=0).fit(x[:, None], y)
    for xt in (rng.uniform(0, 5, 1000), np.concatenate([rng.uniform(-5, 0, 500),
                                                         rng.uniform(5, 10, 500)])):
        yt = f(xt) + 0.3 * rng.normal(size=xt.size)
        lo, hi = reg.predict_interval(xt[:, None], 0.9)
        assert np.mean((yt >= lo) & (yt <= hi)) >= 0.85


def test_estimator_and_cli_share_the_defaults(tmp_path: Path) -> None:
    """``BayesianRegressor()`` and ``varbayes fit`` train the same default model."""
    x, y = _data(120)
    np.savetxt(tmp_path / "d.csv", np.c_[x, y], delimiter=",", header="a,b,y", comments="")
    assert main(["fit", str(tmp_path / "d.csv"), "--target", "y", "--epochs", "30",
                 "--samples", "20", "--out", str(tmp_path / "m")]) == 0
    cli = io.load(tmp_path / "m")
    est = BayesianRegressor(epochs=30, num_samples=20, random_state=0).fit(x, y).model_
    for key in ("n_members", "hidden", "noise_hidden", "warmup_fraction", "init_rho", "lr"):
        assert cli.config[key] == est.config[key], key
    assert est.config["n_members"] == 3 and est.config["hidden"] == [50]
    assert len(cli.fit_info["members"]) == len(est.fit_info["members"]) == 3
