"""`varbayes benchmark uci`: the protocol, its JSON, data units, and no peeking at test rows."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from _uci_layout import synthetic_uci as _synthetic
from varbayes.benchmarks.uci import (
    METRICS,
    validation_rows,
)
from varbayes.benchmarks.uci_run import run_uci_benchmark
from varbayes.benchmarks.uci_stack import fit_splits
from varbayes.cli import main
from varbayes.data import load_uci

UCI = Path(__file__).resolve().parents[3] / "shared" / "data" / "uci"
needs_uci = pytest.mark.skipif(
    not (UCI / "yacht").is_dir(), reason=f"shared UCI data not found at {UCI}"
)


def _check_result(result: dict, name: str, n_splits: int) -> None:
    assert result["benchmark"] == "uci"
    ds = result["datasets"][name]
    assert ds["n_splits"] == n_splits == len(ds["splits"])
    for record in ds["splits"]:
        for key in METRICS:
            assert math.isfinite(record[key]), (key, record[key])
        assert record["ll"] == pytest.approx(-record["nll"])
        assert 0.0 <= record["coverage_90"] <= 1.0
        assert record["rmse"] > 0 and record["crps"] > 0 and record["train_seconds"] > 0
        assert record["validation_curve"] and record["selected"]["n_validation"] >= 1
    for key in METRICS:
        stats = ds["summary"][key]
        assert math.isfinite(stats["mean"])
        assert n_splits == 1 or math.isfinite(stats["stderr"])


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("uci") / "results.json"
    code = main(["benchmark", "uci", "--data-dir", str(UCI), "--dataset", "yacht", "--quick",
                 "--out", str(out)])
    return code, out


@needs_uci
def test_quick_cli_writes_json(quick_run):
    code, out = quick_run
    assert code == 0
    result = json.loads(out.read_text())
    _check_result(result, "yacht", 2)
    assert result["protocol"]["quick"] is True and result["protocol"]["model"] == "hetero"
    assert [r["split"] for r in result["datasets"]["yacht"]["splits"]] == [0, 1]
    assert not list(out.parent.glob("*.tmp"))  # written atomically


@needs_uci
def test_ll_is_the_mixture_log_density_in_data_units(quick_run):
    data = load_uci("yacht", 0, UCI)
    # the CLI trains the two splits together: so does this (split 0 alone: test_uci_stack.py)
    res = fit_splits([data, load_uci("yacht", 1, UCI)], "hetero", quick=True)[0]
    loc = res.prediction.loc.double().numpy()
    scale = res.prediction.scale.double().numpy()
    y = data.y_test
    # By hand: log (1/S sum_s N(y; loc_s, scale_s^2)), averaged over the test points.
    manual = np.mean(logsumexp(norm.logpdf(y, loc, scale), axis=0) - np.log(loc.shape[0]))
    assert res.record["ll"] == pytest.approx(manual, abs=1e-4)
    assert res.record["rmse"] == pytest.approx(np.sqrt(np.mean((loc.mean(0) - y) ** 2)), rel=1e-5)
    # Data units: the same predictive in standardised units scores log(std_y) higher.
    mu, sd = float(res.fitted.y_scaler.mean), float(res.fitted.y_scaler.std)
    assert sd == pytest.approx(np.std(data.y_train), rel=1e-4)
    z = np.mean(logsumexp(norm.logpdf((y - mu) / sd, (loc - mu) / sd, scale / sd), axis=0)
                - np.log(loc.shape[0]))
    assert manual == pytest.approx(z - np.log(sd), abs=1e-4)
    # The CLI run of the same split and seed reports the same figure.
    code, out = quick_run
    assert code == 0
    first = json.loads(out.read_text())["datasets"]["yacht"]["splits"][0]
    assert first["ll"] == pytest.approx(res.record["ll"], abs=1e-5)


@needs_uci
def test_test_rows_never_influence_the_choice(tmp_path):
    shutil.copytree(UCI / "yacht", tmp_path / "yacht")
    data_file = tmp_path / "yacht" / "data.txt"
    data = np.loadtxt(data_file)
    test_rows = np.loadtxt(tmp_path / "yacht" / "index_test_0.txt", dtype=int)
    target = int((tmp_path / "yacht" / "index_target.txt").read_text())
    clean = run_uci_benchmark(tmp_path, "yacht", splits=1, quick=True, progress=False)
    rng = np.random.default_rng(1)
    data[test_rows, target] = rng.permutation(data[test_rows, target]) * 10 + 100
    np.savetxt(data_file, data)
    dirty = run_uci_benchmark(tmp_path, "yacht", splits=1, quick=True, progress=False)
    a, b = clean["datasets"]["yacht"]["splits"][0], dirty["datasets"]["yacht"]["splits"][0]
    assert a["selected"] == b["selected"]
    assert a["validation_curve"] == b["validation_curve"]
    assert a["ll"] != b["ll"]  # the test figures did see the corruption


def test_validation_rows_split_the_training_rows():
    fit_rows, val_rows = validation_rows(100, split=3, seed=0)
    assert len(val_rows) == 20 and len(fit_rows) == 80
    assert np.array_equal(np.union1d(fit_rows, val_rows), np.arange(100))
    again = validation_rows(100, split=3, seed=0)
    assert np.array_equal(again[1], val_rows)
    assert not np.array_equal(validation_rows(100, split=4, seed=0)[1], val_rows)
    with pytest.raises(ValueError, match="2 training rows or more"):
        validation_rows(1, split=0)


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested-data-dir"])
def test_constant_feature_and_layouts(tmp_path, nested, capsys):
    _synthetic(tmp_path, nested=nested)
    out = tmp_path / "r.json"
    code = main(["benchmark", "uci", "--data-dir", str(tmp_path), "--dataset", "synth",
                 "--quick", "--model", "bbb", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "synth" in stdout and "LL" in stdout
    _check_result(json.loads(out.read_text()), "synth", 2)


def test_dataset_all_runs_every_folder(tmp_path):
    _synthetic(tmp_path, "alpha")
    _synthetic(tmp_path, "beta", nested=True, constant=False)
    (tmp_path / "not-a-dataset").mkdir()
    result = run_uci_benchmark(tmp_path, "all", quick=True, splits=1, model="mle",
                               progress=False)
    assert sorted(result["datasets"]) == ["alpha", "beta"]
    _check_result(result, "alpha", 1)


def test_seeded_runs_are_identical(tmp_path):
    _synthetic(tmp_path)
    kw = dict(splits=1, quick=True, progress=False, model="hetero")
    a = run_uci_benchmark(tmp_path, "synth", seed=5, **kw)["datasets"]["synth"]["splits"][0]
    b = run_uci_benchmark(tmp_path, "synth", seed=5, **kw)["datasets"]["synth"]["splits"][0]
    for key in ("ll", "rmse", "crps", "selected", "validation_curve"):
        assert a[key] == b[key]


def test_missing_data_dir_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    code = main(["benchmark", "uci", "--data-dir", str(missing), "--dataset", "yacht"])
    err = capsys.readouterr().err
    assert code == 2
    assert str(missing) in err and "does not exist" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_dataset_and_bad_splits_are_clear_errors(tmp_path, capsys):
    _synthetic(tmp_path)
    assert main(["benchmark", "uci", "--data-dir", str(tmp_path), "--dataset", "boston"]) == 2
    err = capsys.readouterr().err
    assert "'boston' not found" in err and "synth" in err
    assert main(["benchmark", "uci", "--data-dir", str(tmp_path), "--dataset", "synth",
                 "--splits", "5"]) == 2
    assert "has 2 splits" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["benchmark", "uci", "--data-dir", str(empty), "--dataset", "all"]) == 2
    assert "no UCI data set" in capsys.readouterr().err


def test_out_is_a_directory_is_a_clear_error(tmp_path, capsys):
    _synthetic(tmp_path)
    code = main(["benchmark", "uci", "--data-dir", str(tmp_path), "--dataset", "synth",
                 "--quick", "--splits", "1", "--model", "mle", "--out", str(tmp_path)])
    assert code == 2
    assert "is a directory" in capsys.readouterr().err


def test_unknown_override_names_the_option(tmp_path):
    _synthetic(tmp_path)
    with pytest.raises(ValueError, match="unknown option"):
        run_uci_benchmark(tmp_path, "synth", splits=1, quick=True, progress=False,
                          overrides={"not_an_option": 1})
