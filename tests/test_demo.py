"""The demo reproduces the post and meets the acceptance bounds on the held-out draw."""

import json

import pytest

from varbayes.demo import DEMO_MODELS, format_table, run_demo

KEYS = {"test_rmse", "test_nll", "coverage_90", "train_seconds", "predict_seconds"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, seed=0)


def test_metrics_json_has_the_contract(report):
    """metrics.json holds every model's scores, the figures exist, the oracle NLL is 0.35 +- 0.05.

    The oracle's NLL on 150 held-out points is deterministic under the demo's seed (0); with a
    fresh test draw it spreads by 0.073 (standard deviation over 2000 draws of ``load_toy``) around
    0.339, so the +- 0.05 window would fail about half the time (rate 0.5): the bound pins the
    seeded draw, not the estimator.
    """
    out, rep = report
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved["models"]) >= {"mle", "vi", "vi_analytic", "bbb", "hetero"}
    for name, metrics in saved["models"].items():
        assert KEYS <= set(metrics), name
        assert all(isinstance(metrics[k], float) for k in KEYS)
    for name in DEMO_MODELS:
        assert (out / f"{name}.png").stat().st_size > 10_000
    assert (out / "data.png").exists() and (out / "hetero_uncertainty.png").exists()
    assert saved["oracle"]["test_nll"] == pytest.approx(0.35, abs=0.05)


def test_hetero_meets_the_acceptance_bounds(report):
    """hetero: coverage_90 in [0.85, 0.95] and test NLL <= 0.85 on the 150 held-out points.

    Deterministic under the seed (0). With a fresh seed, for a calibrated model coverage is
    Binomial(150, 0.9) / 150 and leaves [0.85, 0.95] with rate 0.040; the NLL bound is 7 sampling
    standard deviations (0.073 for 150 points) above the oracle's 0.34, so its rate is the fit's.
    """
    m = report[1]["models"]["hetero"]
    assert 0.85 <= m["coverage_90"] <= 0.95
    assert m["test_nll"] <= 0.85


def test_the_posts_models_behave_as_documented(report):
    """The post's models score as docs/differences.md says (bbb covers a third, mle and vi NLL).

    Deterministic under the seed (0). With a fresh seed the bbb coverage window [0.2, 0.5] fails
    with rate 1.1e-4 if its true coverage is 1/3 (Binomial(150, 1/3)), but the NLL windows are
    narrow for 150 points (sampling sd about 0.073): mle [0.95, 1.2] around 1.07 fails with rate
    about 0.09 and vi [0.85, 1.05] around 0.93 about 0.19 (normal approximation): about 0.26 in
    all. The windows pin the seeded demo, not the models.
    """
    models = report[1]["models"]
    # the post's bbb with its fixed noise of 0.1 covers only about a third of the test points
    assert 0.2 <= models["bbb"]["coverage_90"] <= 0.5
    assert models["bbb"]["test_nll"] > 3
    # the MLE with its residual variance and the post's vi sit around 1.07 and 0.93
    assert 0.95 <= models["mle"]["test_nll"] <= 1.2
    assert 0.85 <= models["vi"]["test_nll"] <= 1.05
    # hetero is the best-scoring model, the oracle better still
    best = min(models, key=lambda k: models[k]["test_nll"])
    assert best == "hetero"
    assert report[1]["oracle"]["test_nll"] < models["hetero"]["test_nll"]


def test_table_prints_every_model_and_the_oracle(report):
    table = format_table(report[1])
    for name in (*DEMO_MODELS, "oracle", "classification"):
        assert name in table


def test_classification_part_shows_epistemic_uncertainty(report):
    """The classifier on the 2-D toy: near the generator, and MI far away > 2x MI at the data.

    Deterministic under the seed (0). On 2000 test rows the NLL's sampling sd is about 0.01,
    so a fresh seed leaves the 0.1-nat window only when the fit itself is off; the mutual
    information far away (radius 4.5, no training inputs) measured 3.0x that at the data.
    """
    out, rep = report
    c = json.loads((out / "metrics.json").read_text())["classification"]
    assert set(c) == {"accuracy", "nll", "brier", "ece", "oracle_nll", "prob_mae", "mi_near",
                      "mi_far", "train_seconds", "predict_seconds"}
    assert c["nll"] - c["oracle_nll"] < 0.1 and c["accuracy"] > 0.8
    assert c["mi_far"] > 2 * c["mi_near"] > 0
    assert (out / "classification.png").stat().st_size > 10_000
    assert c == rep["classification"]


def test_classification_part_leaves_the_regression_metrics_alone():
    """The regression models score the same with and without the classification part."""
    with_part = run_demo(None, quick=True, models=("mle", "hetero"))
    without = run_demo(None, quick=True, models=("mle", "hetero"), classification=False)
    assert "classification" not in without and "classification" in with_part
    for name in ("mle", "hetero"):
        for key in ("test_rmse", "test_nll", "coverage_90", "test_crps"):
            assert with_part["models"][name][key] == without["models"][name][key]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hetero_bounds_hold_for_other_seeds(seed):
    """The acceptance bounds of hetero hold for seeds 1, 2 and 3 too (slow).

    Each seed is deterministic. For a calibrated model, coverage_90 leaves [0.85, 0.95] with rate
    0.040 per seed (Binomial(150, 0.9)), 0.11 for the three seeds together; the NLL bound's rate
    is the fit's (see ``test_hetero_meets_the_acceptance_bounds``).
    """
    m = run_demo(None, seed=seed, models=("hetero",))["models"]["hetero"]
    assert 0.85 <= m["coverage_90"] <= 0.95
    assert m["test_nll"] <= 0.85
