"""Numerics of issue 13: float64 standardisation (item 3), finite predictions (item 4),
read-only arrays (item 16) and batch-invariant predictions (item 17)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from sklearn.utils.estimator_checks import check_methods_subset_invariance

from varbayes import io, metrics
from varbayes.cli import main
from varbayes.data.transforms import PrecisionWarning, Standardizer
from varbayes.estimator import BayesianRegressor
from varbayes.kinds import fit
from varbayes.predictive import Prediction, prediction_columns

KINDS = ["hetero", "mle", "bbb", "vi", "vi_analytic"]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _line() -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(-1.0, 1.0, 11)[:, None]
    return x, np.sin(3 * x[:, 0])


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --------------------------------------------------------------------------- item 3


def test_large_offset_target_keeps_its_variation() -> None:
    x, _ = _line()
    y = 1e9 + np.arange(11.0)
    fitted, _ = fit("mle", x, y, epochs=300, generator=_gen())
    pred = fitted.predict(x, 10)
    mean = pred.mean.numpy()
    lower, upper = (t.numpy() for t in pred.interval(0.9))
    assert np.ptp(mean) > 5  # float32 standardisation predicted 1e9 on every row
    assert np.abs(mean - y).max() < 2
    assert (lower < mean).all() and (mean < upper).all()  # float32: lower = upper = 1e9


@pytest.mark.parametrize("transform", [lambda x: 1e-13 * x, lambda x: 1e9 + 5 * x],
                         ids=["times-1e-13", "1e9-plus-5x"])
def test_tiny_and_offset_features_keep_their_variation(transform) -> None:
    x, y = _line()
    plain, _ = fit("mle", x, y, epochs=200, generator=_gen())
    moved, _ = fit("mle", transform(x), y, epochs=200, generator=_gen())
    got = moved.predict(transform(x), 1).mean.numpy()
    assert len(np.unique(got)) == len(x)  # float32 standardisation gave one value for all rows
    np.testing.assert_allclose(got, plain.predict(x, 1).mean.numpy(), atol=1e-4)


def test_precision_warning_names_the_column() -> None:
    x = np.column_stack([np.linspace(0, 1, 11), np.r_[np.arange(10.0), 1e12]])
    y = x[:, 0]
    with pytest.warns(PrecisionWarning, match=r"column 1 \('spike'\).*distinct values"):
        fit("mle", x, y, epochs=1, generator=_gen(), feature_names=["ok", "spike"])
    Standardizer(2).fit(x[:10])  # the same column without the outlier: no warning


# --------------------------------------------------------------------------- item 4


@pytest.mark.parametrize("kind", ["hetero", "bbb"])
def test_huge_target_scale_gives_finite_std(kind: str) -> None:
    x, y = _line()
    fitted, _ = fit(kind, x, y * 1e30, epochs=20, generator=_gen())
    columns = prediction_columns(fitted.predict(x, 20, generator=_gen()), 0.9)
    for name in ("std", "aleatoric_std", "epistemic_std"):
        assert np.isfinite(columns[name]).all() and (columns[name] > 1e27).all(), name


def test_far_input_gives_finite_std_or_names_the_row() -> None:
    x, y = _line()
    fitted, _ = fit("hetero", x, y, epochs=20, generator=_gen())
    columns = prediction_columns(fitted.predict(np.array([[0.0], [1e25]]), 20), 0.9)
    assert all(np.isfinite(v).all() for v in columns.values())
    tiny, _ = fit("mle", 1e-13 * x, y, epochs=5, generator=_gen())
    with pytest.raises(ValueError, match=r"x row 1, column 0: 1e\+30 lies .* float32 range"):
        tiny.predict(np.array([[0.0], [1e30]]))


def test_prediction_columns_names_the_first_bad_row() -> None:
    loc = torch.zeros(3, 4)
    loc[1, 2] = float("nan")
    loc[0, 3] = float("inf")
    with pytest.raises(ValueError, match=r"^row 2: the prediction is not finite \(mean = nan\)"):
        prediction_columns(Prediction(loc, torch.ones(3, 4)))
    with pytest.raises(ValueError, match=r"^in\.csv, row 9: .*\(std = inf\)"):
        prediction_columns(Prediction(torch.zeros(1, 2), torch.tensor([[1.0, float("inf")]])),
                           row_names=["in.csv, row 8", "in.csv, row 9"])


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("num") / "model"
    assert main(["fit", "--epochs", "20", "--samples", "20", "--out", str(path)]) == 0
    return path


def _tampered(model: Path, tmp_path: Path, key: str, value: torch.Tensor) -> Path:
    out = tmp_path / "tampered"
    out.mkdir()
    (out / io.CONFIG_FILE).write_text((model / io.CONFIG_FILE).read_text())
    state = load_file(str(model / io.WEIGHTS_FILE))
    state[key] = value
    save_file(state, str(out / io.WEIGHTS_FILE))
    return out


def test_cli_predict_refuses_nan_and_leaves_nothing(small_model: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # rho = 3e38: weight draws overflow float32 to +-inf, and inf - inf gives NaN.
    key = "model.members.0.layers.1.weight_rho"  # the CLI's default model is an ensemble
    rho = load_file(str(small_model / io.WEIGHTS_FILE))[key]
    bad = _tampered(small_model, tmp_path, key, torch.full_like(rho, 3e38))
    inp = _write(tmp_path / "in.csv", ["x"], [[0.5], [1.0]])
    out = tmp_path / "sub" / "pred.csv"
    out.parent.mkdir()
    assert main(["predict", str(bad), str(inp), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"varbayes: error: {inp}, row 2: the prediction is not finite")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert list(out.parent.iterdir()) == []  # no output, no temporary file


def test_weights_beyond_float32_are_rejected_on_load(small_model: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    loc = load_file(str(small_model / io.WEIGHTS_FILE))["model.members.0.layers.0.weight_loc"]
    big = torch.full(loc.shape, 1e300, dtype=torch.float64)
    bad = _tampered(small_model, tmp_path, "model.members.0.layers.0.weight_loc", big)
    with pytest.raises(ValueError, match=r"'model.members.0.layers.0.weight_loc' holds values"):
        io.load(bad)
    inp = _write(tmp_path / "in.csv", ["x"], [[0.5]])
    assert main(["predict", str(bad), str(inp), "--out", str(tmp_path / "p.csv")]) == 2
    assert "beyond the range of torch.float32" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_cli_huge_target_scale_writes_finite_std(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    x, y = _line()
    rows = [[a, b * 1e30] for a, b in zip(x[:, 0], y, strict=True)]
    data = _write(tmp_path / "d.csv", ["x", "y"], rows)
    model, out = tmp_path / "m", tmp_path / "p.csv"
    assert main(["fit", str(data), "--target", "y", "--epochs", "20", "--samples", "20",
                 "--out", str(model)]) == 0
    inp = _write(tmp_path / "in.csv", ["x"], [[0.0], [0.5]])
    assert main(["predict", str(model), str(inp), "--out", str(out)]) == 0
    capsys.readouterr()
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for name in ("std", "aleatoric_std", "epistemic_std", "lower", "upper"):
        values = np.array([float(r[name]) for r in rows])
        assert np.isfinite(values).all(), name


# --------------------------------------------------------------------------- item 16


def _read_only(*arrays: np.ndarray) -> list[np.ndarray]:
    out = []
    for a in arrays:
        a = np.array(a, dtype=np.float64)
        a.setflags(write=False)
        out.append(a)
    return out


def test_read_only_arrays_give_no_warning() -> None:
    # pytest turns warnings into errors: "The given NumPy array is not writable" would fail.
    y, mean, std, lo, hi = _read_only([0.0, 1.0, 2.0], [0.1, 1.1, 1.9], [1.0, 1.0, 2.0],
                                      [-1.0, 0.0, 1.0], [1.0, 2.0, 3.0])
    loc, scale = _read_only(np.stack([mean, mean + 0.1]), np.stack([std, std]))
    assert metrics.rmse(y, mean) > 0 and metrics.gaussian_nll(y, mean, std) > 0
    assert metrics.crps_gaussian(y, mean, std) > 0 and metrics.coverage(y, lo, hi) == 1.0
    assert metrics.mixture_nll(y, loc, scale) > 0 and metrics.crps_mixture(y, loc, scale) > 0
    assert metrics.interval_width(lo, hi) == 2.0
    (q,) = _read_only([0.1, 0.9])
    assert Prediction(torch.zeros(2, 3), torch.ones(2, 3)).quantile(q).shape == (2, 3)
    X, t = _read_only(np.linspace(0, 1, 12)[:, None], np.linspace(0, 1, 12))
    Standardizer(1).fit(X)
    reg = BayesianRegressor("mle", epochs=2, num_samples=2, random_state=0).fit(X, t)
    assert reg.predict(X).shape == (12,)


# --------------------------------------------------------------------------- item 17


@pytest.mark.parametrize("kind", KINDS)
def test_predictions_are_batch_invariant(kind: str) -> None:
    check_methods_subset_invariance("BayesianRegressor", BayesianRegressor(kind))
    rng = np.random.default_rng(1)
    X = 3 * rng.uniform(size=(23, 3))
    reg = BayesianRegressor(kind, epochs=20, num_samples=30, random_state=0)
    reg.fit(X, X[:, 0] + rng.normal(size=23))
    full = reg.predict_uncertainty(X)
    lower, upper = reg.predict_interval(X)
    for i in range(len(X)):
        one = reg.predict_uncertainty(X[i : i + 1])
        for name, values in full.items():
            np.testing.assert_array_equal(one[name], values[i : i + 1])  # bit for bit
        lo, hi = reg.predict_interval(X[i : i + 1])
        np.testing.assert_array_equal([lo[0], hi[0]], [lower[i], upper[i]])
