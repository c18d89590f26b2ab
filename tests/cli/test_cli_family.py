"""The CLI with --likelihood: classes and counts end to end, and the bad targets (exit 2)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from varbayes.cli import main


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    path = tmp_path_factory.mktemp("family") / "d.csv"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "count": rng.poisson(np.exp(1 + 0.5 * x[:, 0])),
                  "kind": np.array(["ant", "bee", "cow"])[np.digitize(x[:, 0], [-0.4, 0.4])],
                  "wait": rng.exponential(np.exp(0.4 * x[:, 1]))}).to_csv(path, index=False)
    return path


def _fit(data: Path, out: Path, target: str, likelihood: str) -> int:
    return main(["fit", str(data), "--target", target, "--features", "a,b", "--likelihood",
                 likelihood, "--epochs", "60", "--out", str(out)])


def test_classifier_fit_predict_evaluate(data: Path, tmp_path: Path, capsys) -> None:
    assert _fit(data, tmp_path / "m", "kind", "categorical") == 0
    assert main(["predict", str(tmp_path / "m"), str(data), "--samples", "30",
                 "--out", str(tmp_path / "p.csv")]) == 0
    with open(tmp_path / "p.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[-7:] == ["p_ant", "p_bee", "p_cow", "label", "entropy",
                                  "aleatoric_entropy", "mutual_information"]
    for r in rows:
        total = sum(float(r[f"p_{c}"]) for c in ("ant", "bee", "cow"))
        assert abs(total - 1) < 1e-9 and r["label"] in ("ant", "bee", "cow")
        assert abs(float(r["entropy"]) - float(r["aleatoric_entropy"])
                   - float(r["mutual_information"])) < 1e-9
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "m"), str(data), "--samples", "30"]) == 0
    out = capsys.readouterr().out
    for key in ("accuracy", "nll", "brier", "ece"):
        assert key in out


def test_count_predictions_have_integer_bounds(data: Path, tmp_path: Path) -> None:
    assert _fit(data, tmp_path / "m", "count", "poisson") == 0
    assert main(["predict", str(tmp_path / "m"), str(data), "--samples", "30",
                 "--out", str(tmp_path / "p.csv")]) == 0
    with open(tmp_path / "p.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for key in ("lower", "median", "upper"):
            assert r[key].isdigit(), r[key]


def test_bad_count_targets_exit_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,count\n0.1,3\n0.2,-1\n0.3,2\n")
    assert _fit_one(path, tmp_path / "m", "poisson") == 2
    assert "bad.csv, row 3, column 'count': -1.0 is a negative count" in capsys.readouterr().err
    path.write_text("a,count\n0.1,3\n0.2,1.5\n")
    assert _fit_one(path, tmp_path / "m", "poisson") == 2
    assert "row 3, column 'count': 1.5 is not an integer count" in capsys.readouterr().err
    path.write_text("a,count\n0.1,3\n0.2,0\n")
    assert _fit_one(path, tmp_path / "m", "exponential") == 2
    assert "row 3, column 'count': 0.0 is not positive" in capsys.readouterr().err


def _fit_one(path: Path, out: Path, likelihood: str) -> int:
    return main(["fit", str(path), "--target", "count", "--likelihood", likelihood,
                 "--epochs", "2", "--out", str(out)])


def test_single_class_and_unseen_class_exit_2(data: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "one.csv"
    path.write_text("a,kind\n0.1,x\n0.2,x\n")
    assert main(["fit", str(path), "--target", "kind", "--likelihood", "categorical",
                 "--out", str(tmp_path / "m1")]) == 2
    assert "holds one class ('x')" in capsys.readouterr().err
    assert _fit(data, tmp_path / "m", "kind", "categorical") == 0
    new = tmp_path / "new.csv"
    new.write_text("a,b,kind\n0.1,0.2,ant\n0.3,0.1,yak\n")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "m"), str(new), "--samples", "10"]) == 2
    assert "row 3, column 'kind': class 'yak' was never seen in fit" in capsys.readouterr().err
