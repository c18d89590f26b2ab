"""Training the networks of ``kinds.fit``: members, their validation parts, the noise warm-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone

import varbayes.kinds.fitted as fitted_module
from varbayes import BayesianRegressor, io
from varbayes.calibration import stretch
from varbayes.cli import main
from varbayes.infer import ELBO, train
from varbayes.kinds import fit
from varbayes.kinds.members import RESCALE_DRAWS, _hand_over, _twin, members_of, spread_factor
from varbayes.kinds.stopping import DEFAULT_MEMBER_LAYOUT, ValidationPlan, plan_validation
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


def test_regressor_members_share_one_validation_part() -> None:
    """The regressor's layout: one part no member trains on, where the factor is fitted."""
    assert DEFAULT_MEMBER_LAYOUT == "shared"
    members = plan_validation(200, True, 0.1, 5, 100, torch.Generator().manual_seed(0),
                              members=3)
    plan = plan_validation(200, True, 0.1, 5, 100, torch.Generator().manual_seed(0), members=3,
                           layout="shared")
    assert len(plan.folds) == 1 and members.factor_rows is None  # every member: folds[0]
    assert torch.equal(plan.val_rows, members.val_rows)  # the same random stream, the same rows
    assert torch.equal(plan.factor_rows, plan.val_rows) and plan.seed == members.seed
    # "separate": disjoint parts for stopping, and a part for the factor that nothing else sees
    apart = plan_validation(200, True, 0.1, 5, 100, torch.Generator().manual_seed(0), members=3,
                            layout="separate")
    held = set(apart.factor_rows.tolist())
    assert len(held) == 20 and len(apart.folds) == 3
    for fit_rows, val_rows in apart.folds:
        assert not held & set(fit_rows.tolist() + val_rows.tolist())
        assert len(fit_rows) + len(val_rows) == 180
    few = plan_validation(90, True, 0.1, 5, 100, None, members=3, layout="separate")
    assert len(few.folds) == 1 and torch.equal(few.factor_rows, few.val_rows)  # 70 < 80 left
    with pytest.raises(ValueError, match="layout must be one of"):
        plan_validation(200, True, 0.1, 5, 100, None, layout="own")


def _spy_plans(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ValidationPlan]]:
    """Record the ``layout`` and the plan of every ``plan_validation`` call of ``kinds.fit``."""
    calls: list[tuple[str, ValidationPlan]] = []

    def spy(*args: object, layout: str, **kwargs: object) -> ValidationPlan:
        plan = plan_validation(*args, layout=layout, **kwargs)  # type: ignore[arg-type]
        calls.append((layout, plan))
        return plan

    monkeypatch.setattr(fitted_module, "plan_validation", spy)
    return calls


def test_member_layout_reaches_the_validation_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """``member_layout`` of ``kinds.fit`` (and the estimator's hook) chooses the members' parts."""
    calls = _spy_plans(monkeypatch)
    x, y = _data(200)
    options = {"epochs": 6, "early_stopping": True, "n_iter_no_change": 1}
    shared, _ = fit("hetero", x, y, generator=torch.Generator().manual_seed(0), **options)
    own, _ = fit("hetero", x, y, generator=torch.Generator().manual_seed(0),
                 member_layout="Members", **options)
    (default, plan), (members, apart) = calls
    assert (default, members) == (DEFAULT_MEMBER_LAYOUT, "members")
    assert len(plan.folds) == 1 and torch.equal(plan.factor_rows, plan.val_rows)
    vals = [set(v.tolist()) for _, v in apart.folds]
    assert len(vals) == 3 and apart.factor_rows is None
    assert not (vals[0] & vals[1] or vals[1] & vals[2] or vals[0] & vals[2])
    assert torch.equal(own.validation_rows, shared.validation_rows)  # the same stream
    assert own.spread_factor != shared.spread_factor  # fitted on other rows
    reg = BayesianRegressor(epochs=6, n_iter_no_change=1, random_state=0)
    reg._member_layout = "separate"
    reg.fit(x, y)
    assert calls[-1][0] == "separate" and len(calls[-1][1].folds) == 3
    assert calls[-1][1].factor_rows is not None  # a part of its own for the factor
    assert "member_layout" not in reg.get_params()


def test_bad_member_layout_is_refused() -> None:
    x, y = _data(100)
    with pytest.raises(ValueError, match="unknown member_layout 'own'; allowed values are"):
        fit("hetero", x, y, epochs=1, member_layout="own")
    with pytest.raises(TypeError, match="member_layout must be one of"):
        fit("hetero", x, y, epochs=1, member_layout=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="member_layout='members' applies to Gaussian"):
        fit("family", x, (y > 0).astype(float), epochs=1, likelihood="bernoulli",
            member_layout="members")


def test_spread_factor_calibrates_the_mixture_on_the_shared_part() -> None:
    """The factor is the score of rank 0.9 (n + 1) of the mixture's on the shared part.

    Deterministic (no false positives): of 20 rows, rank 18.9 lies between the 18th and 19th
    smallest score, so the stretched 90 % interval covers exactly 18 of them.
    """
    gen = torch.Generator().manual_seed(0)
    model = Ensemble([BayesianMLP(2, (8,), head="heteroscedastic", noise_hidden=(4,),
                                  generator=gen) for _ in range(3)]).eval()
    xs = torch.randn(200, 2, generator=gen)
    ys = xs[:, 0].sin() + 0.3 * torch.randn(200, generator=gen)
    plan = plan_validation(200, True, 0.1, 5, 100, torch.Generator().manual_seed(1), members=3,
                           layout="shared")
    factor = spread_factor(model, xs, ys, plan)
    rows = plan.factor_rows
    pred = predictive(model, xs[rows], RESCALE_DRAWS,
                      generator=torch.Generator().manual_seed(plan.seed))
    lower, upper = stretch(pred, factor).interval(0.9)
    assert int(((ys[rows] >= lower) & (ys[rows] <= upper)).sum()) == 18
    members = plan_validation(200, True, 0.1, 5, 100, torch.Generator().manual_seed(1),
                              members=3)
    assert spread_factor(model, xs, ys, members) != factor  # each member on its own part


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


def test_n_members_and_warmup_fraction_are_estimator_options(tmp_path: Path) -> None:
    """The estimator's ``n_members`` / ``warmup_fraction``: trained, cloned, saved and loaded."""
    x, y = _data(120)
    reg = BayesianRegressor(n_members=2, warmup_fraction=0.25, epochs=20, num_samples=20,
                            random_state=0)
    assert clone(reg).get_params()["n_members"] == 2
    assert reg.set_params(warmup_fraction=0.5).warmup_fraction == 0.5
    reg.fit(x, y)
    assert isinstance(reg.model_.model, Ensemble) and len(members_of(reg.model_.model)) == 2
    assert reg.model_.config["n_members"] == 2 and reg.model_.config["warmup_fraction"] == 0.5
    assert all(r["warmup_epochs"] <= 10 for r in reg.model_.fit_info["members"])  # 0.5 * 20
    again = BayesianRegressor.load(reg.save(tmp_path / "m"))
    assert again.get_params()["n_members"] == 2 and again.warmup_fraction == 0.5
    np.testing.assert_array_equal(again.predict(x[:5]), reg.predict(x[:5]))
    one = BayesianRegressor(n_members=1, warmup_fraction=0.0, epochs=5).fit(x, y)
    assert isinstance(one.model_.model, BayesianMLP)


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"n_members": 0}, ValueError, r"n_members must be in the range \[1, inf\), got 0"),
    ({"n_members": 2.5}, TypeError, "n_members must be an int, got float 2.5"),
    ({"warmup_fraction": 1.0}, ValueError, r"warmup_fraction must be .*\[0.0, 1.0\), got 1.0"),
    ({"warmup_fraction": "a"}, TypeError, "warmup_fraction must be a float, got str 'a'"),
    ({"model": "mle", "n_members": 2}, ValueError, "n_members=2 does not apply to model='mle'"),
    ({"likelihood": "poisson", "warmup_fraction": 0.5}, ValueError,
     "warmup_fraction=0.5 does not apply to model='family'"),
    ({"method": "ivon", "n_members": 3}, ValueError, r"n_members=3: method='ivon' trains one "
                                                     r"network \(n_members=1\)"),
    ({"method": "ivon", "warmup_fraction": 0.5}, ValueError, "warmup_fraction=0.5: method='ivon' "
                                                             "trains without the noise warm-up"),
])
def test_bad_n_members_or_warmup_fraction_is_refused_at_fit(
        options: dict[str, object], error: type[Exception], match: str) -> None:
    x, y = _data(30)
    reg = BayesianRegressor(epochs=2, **options)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        reg.fit(x, np.abs(np.round(y)))


def test_cli_n_members_and_warmup_fraction(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    x, y = _data(120)
    data = tmp_path / "d.csv"
    np.savetxt(data, np.c_[x, np.abs(np.round(y))], delimiter=",", header="a,b,y", comments="")
    fit_args = ["fit", str(data), "--target", "y", "--epochs", "20", "--samples", "20"]
    assert main([*fit_args, "--n-members", "2", "--warmup-fraction", "0.25", "--out",
                 str(tmp_path / "m")]) == 0
    fitted = io.load(tmp_path / "m")
    assert fitted.config["n_members"] == 2 and fitted.config["warmup_fraction"] == 0.25
    est = BayesianRegressor.load(tmp_path / "m")
    assert est.n_members == 2 and est.warmup_fraction == 0.25
    capsys.readouterr()
    for bad, says in ((["--n-members", "0"], "--n-members: expected a positive integer"),
                      (["--warmup-fraction", "1"], "--warmup-fraction: expected a number in "
                                                   "[0, 1), got '1'"),
                      (["--model", "mle", "--n-members", "2"], "--n-members applies to --model "
                                                               "hetero"),
                      (["--likelihood", "poisson", "--warmup-fraction", "0.2"],
                       "--warmup-fraction applies to --model hetero with the gaussian"),
                      (["--method", "ivon", "--n-members", "2"], "n_members=2: method='ivon' "
                                                                 "trains one network")):
        with pytest.raises(SystemExit) as stop:  # argparse's errors exit, the others return
            raise SystemExit(main([*fit_args, *bad, "--out", str(tmp_path / "bad")]))
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()
    # the family kind of --likelihood takes --n-members too (one network by default)
    assert main([*fit_args, "--likelihood", "poisson", "--n-members", "2", "--out",
                 str(tmp_path / "counts")]) == 0
    assert len(members_of(io.load(tmp_path / "counts").model)) == 2
