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
    m = report[1]["models"]["hetero"]
    assert 0.85 <= m["coverage_90"] <= 0.95
    assert m["test_nll"] <= 0.85


def test_the_posts_models_behave_as_documented(report):
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
    for name in (*DEMO_MODELS, "oracle"):
        assert name in table


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hetero_bounds_hold_for_other_seeds(seed):
    m = run_demo(None, seed=seed, models=("hetero",))["models"]["hetero"]
    assert 0.85 <= m["coverage_90"] <= 0.95
    assert m["test_nll"] <= 0.85
