"""The estimators with ``method='ivon'``: scikit-learn's checks, every prediction, save/load."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from varbayes import BayesianClassifier, BayesianRegressor
from varbayes._threads import intra_op_threads
from varbayes.cli import main
from varbayes.optim.posterior import posterior_of

#: Small but real settings: ``check_regressors_train`` (R^2 > 0.5) and the classifier's accuracy
#: checks pass with them.
FAST = dict(epochs=60, hidden=16, num_samples=20)

RNG = np.random.default_rng(0)
X = RNG.uniform(-2, 2, size=(150, 3))
Y = np.sin(2 * X[:, 0]) + X[:, 1] + 0.1 * RNG.normal(size=150)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with intra_op_threads(0):  # tiny networks run fastest (and steadiest) on one thread
        yield


@parametrize_with_checks([BayesianRegressor(method="ivon", **FAST),
                          BayesianClassifier(method="ivon", epochs=100)])
def test_sklearn_compatible_with_ivon(estimator, check) -> None:
    check(estimator)


def test_method_is_checked_at_fit() -> None:
    with pytest.raises(ValueError, match=r"unknown method 'adam'; allowed values are 'bbb', 'iv"):
        BayesianRegressor(method="adam").fit(X, Y)
    with pytest.raises(ValueError, match=r"unknown method 'adam'"):
        BayesianClassifier(method="adam").fit(X, Y > 0)
    with pytest.raises(ValueError, match="weight uncertainty .* not model='mle'"):
        BayesianRegressor("mle", method="ivon").fit(X, Y)
    with pytest.raises(ValueError, match="kl='mc' does not apply to method='ivon'"):
        BayesianRegressor(method="ivon", kl="mc").fit(X, Y)
    assert clone(BayesianRegressor(method="ivon")).method == "ivon"


def _predictions(reg: BayesianRegressor) -> dict[str, np.ndarray]:
    mean, std = reg.predict(X, return_std=True)
    lower, upper = reg.predict_interval(X, 0.8)
    return {"mean": mean, "std": std, "lower": lower, "upper": upper,
            "sample": reg.sample_y(X, 3, random_state=1),
            **{k: v for k, v in reg.predict_uncertainty(X).items()}}


@pytest.mark.parametrize("kw", [{}, {"model": "bbb", "noise": "learned"},
                                {"likelihood": "student_t"}])
def test_regressor_round_trip_is_identical(tmp_path: Path, kw: dict) -> None:
    reg = BayesianRegressor(method="ivon", epochs=200, random_state=0, **kw).fit(X, Y)
    assert posterior_of(reg.model_.model) is not None
    before = _predictions(reg) if not kw.get("likelihood") else {"mean": reg.predict(X)}
    if not kw.get("likelihood"):
        assert bool((before["epistemic_std"] > 0).all())
        assert bool((before["lower"] < before["upper"]).all())
    loaded = BayesianRegressor.load(reg.save(tmp_path / "m"))
    assert loaded.get_params() == reg.get_params()
    after = _predictions(loaded) if not kw.get("likelihood") else {"mean": loaded.predict(X)}
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def test_classifier_round_trip_is_identical(tmp_path: Path) -> None:
    labels = np.where(X[:, 0] + X[:, 1] > 0, "up", "down")
    clf = BayesianClassifier(method="ivon", random_state=0).fit(X, labels)
    assert clf.score(X, labels) > 0.9
    loaded = BayesianClassifier.load(clf.save(tmp_path / "c"))
    assert loaded.method == "ivon"
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    mi = clf.predict_uncertainty(X)["mutual_information"]
    assert bool((mi >= 0).all()) and float(mi.max()) > 0  # weight draws that disagree


def test_cli_fit_predict_evaluate_with_ivon(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    csv = tmp_path / "d.csv"
    np.savetxt(csv, np.c_[X, Y], delimiter=",", header="a,b,c,y", comments="")
    model = tmp_path / "m"
    assert main(["fit", str(csv), "--target", "y", "--method", "ivon", "--epochs", "300",
                 "--out", str(model)]) == 0
    assert main(["predict", str(model), str(csv), "--samples", "50",
                 "--out", str(tmp_path / "p.csv")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(model), str(csv), "--samples", "50"]) == 0
    scores = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert float(scores["rmse"]) < 0.8 * Y.std()
    reg = BayesianRegressor.load(model)  # the CLI's directory as an estimator
    assert reg.method == "ivon" and reg.model == "hetero"
    assert main(["fit", str(csv), "--target", "y", "--method", "ivon", "--model", "mle",
                 "--out", str(tmp_path / "x")]) == 2
    assert "not model='mle'" in capsys.readouterr().err
