"""Loading a tampered model directory: validate before allocating (issue 13, items 2, 5 and 9).

Every size in ``config.json`` is checked against the weights file's own tensor shapes before
anything is built, so a load allocates at most twice what the weights file holds;
``metadata.num_samples`` is an integer within a bound; the standardisers' ``std`` are positive;
deeply nested JSON is a ValueError naming the file; a prediction refuses a number of samples whose
draws for one row exceed a stated budget.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import varbayes
from _memguard import SUPPORTED, address_space_limit
from varbayes import io
from varbayes.cli import main
from varbayes.io.checks import MAX_JSON_DEPTH, MAX_NUM_SAMPLES
from varbayes.kinds import FittedModel, fit
from varbayes.predictive import MAX_DRAW_BYTES

X = np.linspace(-1.0, 1.0, 24)[:, None]
Y = 2.0 * X[:, 0] + 0.1 * np.sin(7 * X[:, 0])


def _fit(kind: str, **kw: Any) -> FittedModel:
    fitted, _ = fit(kind, X, Y, epochs=3, generator=torch.Generator().manual_seed(0),
                    feature_names=["x"], target_name="y", **kw)
    return fitted


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("saved")
    out = {}
    for kind, kw in (("hetero", {"hidden": [6], "noise_hidden": [4]}), ("mle", {"hidden": [5]})):
        out[kind] = io.save(_fit(kind, **kw), root / kind, metadata={"num_samples": 20})
    csv = root / "in.csv"
    csv.write_text("x\n0.1\n-0.3\n")
    out["csv"] = csv
    return out


def _copy(src: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(src, tmp_path / "model"))


def _edit(path: Path, edit: Any) -> None:
    doc = json.loads((path / io.CONFIG_FILE).read_text())
    edit(doc)
    (path / io.CONFIG_FILE).write_text(json.dumps(doc))


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("varbayes: error: "), err
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- item 2: sizes

HUGE_CASES = {
    "hidden-5e7": ("config", "hidden", [50_000_000]),
    "hidden-1e9": ("config", "hidden", [1_000_000_000]),
    "noise_hidden-1e9": ("config", "noise_hidden", [1_000_000_000]),
    "in_features-1e9": ("config", "in_features", 1_000_000_000),
}

_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from varbayes import io

    path, cases = Path(sys.argv[1]), json.loads(sys.argv[2])
    original = (path / "config.json").read_text()
    io.load(path)  # warm up: the first-call costs of torch and safetensors are not the load's
    with open("/proc/self/status") as fh:
        mapped = next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (mapped + (1 << 30), hard))  # a safety net
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    results = []
    for section, key, value in cases:
        doc = json.loads(original)
        doc[section][key] = value
        doc["feature_names"] = None  # so that in_features is checked against the weights
        (path / "config.json").write_text(json.dumps(doc))
        try:
            io.load(path)
            outcome = ["loaded", ""]
        except Exception as exc:
            outcome = [type(exc).__name__, str(exc)]
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
        results.append([*outcome, grown])
    print(json.dumps(results))
    """
)


@pytest.mark.skipif(not SUPPORTED, reason="measures RLIMIT_AS and ru_maxrss (Linux)")
def test_huge_config_sizes_allocate_nothing(saved: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(saved["hetero"], tmp_path)
    weights = (path / io.WEIGHTS_FILE).stat().st_size
    env = dict(os.environ)
    src = str(Path(varbayes.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    cases = json.dumps(list(HUGE_CASES.values()))
    run = subprocess.run([sys.executable, "-c", _CHILD, str(path), cases], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout.strip().splitlines()[-1])
    for name, (kind, message, grown) in zip(HUGE_CASES, results, strict=True):
        assert kind == "ValueError", (name, kind, message)
        assert "model.safetensors does not match" in message and "needs" in message, message
        # The documented bound: twice the weights file (plus a little interpreter slack).
        assert grown <= 2 * weights + (16 << 20), (name, grown)


@pytest.mark.parametrize("name", sorted(HUGE_CASES))
def test_huge_config_sizes_named_against_the_weights(
    name: str, saved: dict[str, Path], tmp_path: Path
) -> None:
    section, key, value = HUGE_CASES[name]
    path = _copy(saved["hetero"], tmp_path)
    _edit(path, lambda d: d[section].update({key: value}) or d.update(feature_names=None))
    with address_space_limit(1 << 30), pytest.raises(ValueError) as info:
        io.load(path)
    msg = str(info.value)
    assert str(path / io.WEIGHTS_FILE) in msg and str(path / io.CONFIG_FILE) in msg
    assert "has shape" in msg and str(value if key == "in_features" else value[0]) in msg


def test_sizes_beyond_int32_and_too_many_layers(saved: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(saved["mle"], tmp_path)
    _edit(path, lambda d: d["config"].update(hidden=[10**30]))
    with pytest.raises(ValueError, match=r"config\.json.*'hidden' holds the size 10{30}"):
        io.load(path)
    _edit(path, lambda d: d["config"].update(hidden=[1] * 5000))
    with pytest.raises(ValueError, match="'hidden' lists 5000 layers; at most 1024"):
        io.load(path)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10**9, f"must be between 1 and {MAX_NUM_SAMPLES}, got 1000000000"),
        (0, "must be between 1"),
        (1.5, r"must be an integer, got 1\.5 \(float\)"),
        (True, r"must be an integer, got True \(bool\)"),
        ("abc", r"must be an integer, got 'abc' \(str\)"),
        (None, r"must be an integer, got None"),
    ],
)
def test_metadata_num_samples_strict(
    value: Any, expected: str, saved: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _copy(saved["hetero"], tmp_path)
    _edit(path, lambda d: d["metadata"].update(num_samples=value))
    with pytest.raises(ValueError, match=r"config\.json: 'metadata\.num_samples' " + expected):
        io.load(path)
    code, err = _cli(capsys, "predict", str(path), str(saved["csv"]), "--out",
                     str(tmp_path / "p.csv"))
    assert code == 2
    assert "metadata.num_samples" in _one_error_line(err)
    assert not (tmp_path / "p.csv").exists()


def test_metadata_num_samples_used_when_valid(
    saved: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from varbayes.cli.commands import _model_samples

    path = _copy(saved["hetero"], tmp_path)
    assert _model_samples(path, None) == 20 and _model_samples(path, 7) == 7
    _edit(path, lambda d: d.update(metadata={}))
    assert _model_samples(path, None) == 1000


def test_predict_samples_beyond_the_draw_budget(
    saved: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fitted = io.load(saved["hetero"])
    with address_space_limit(1 << 30), pytest.raises(ValueError) as info:
        fitted.predict(X[:1], 10**9)
    msg = str(info.value)
    assert "num_samples=1000000000" in msg and "single row" in msg and "use at most" in msg
    most = int(msg.rsplit("use at most ", 1)[1].split()[0])
    assert 1000 < most < 10**9
    assert fitted.predict(X[:2], most // 1000).mean.shape == (2,)  # well within: fine
    code, err = _cli(capsys, "predict", str(saved["hetero"]), str(saved["csv"]), "--samples",
                     "1000000000", "--out", str(tmp_path / "p.csv"))
    assert code == 2 and "use at most" in _one_error_line(err)
    # A point-estimate model draws one component whatever the number of samples.
    assert io.load(saved["mle"]).predict(X[:2], 10**9).num_samples == 1
    assert MAX_DRAW_BYTES == 2 << 30


def test_weights_dtype_and_float32_range(saved: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(saved["mle"], tmp_path)
    weights = path / io.WEIGHTS_FILE
    state = load_file(weights)
    save_file({k: v.double() for k, v in state.items()}, weights)
    assert io.load(path).config["hidden"] == [5]  # F64 weights are read into float32
    big = {k: v.double() for k, v in state.items()}
    big["model.net.0.weight"][0, 0] = 1e300  # finite in F64, inf in float32
    save_file(big, weights)
    beyond = r"'model\.net\.0\.weight' holds values beyond the range of torch\.float32"
    with pytest.raises(ValueError, match=beyond):
        io.load(path)
    save_file({k: v.half() for k, v in state.items()}, weights)
    with pytest.raises(ValueError, match=r"has dtype F16, expected a floating dtype \(F32 or F64"):
        io.load(path)


# --------------------------------------------------------------------------- item 5: scalers


@pytest.mark.parametrize("key", ["x_scaler.std", "y_scaler.std", "model.noise_std"])
@pytest.mark.parametrize("value", [-1.0, 0.0, -0.0])
def test_scaler_std_must_be_positive(
    key: str, value: float, saved: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _copy(saved["mle"], tmp_path)
    state = load_file(path / io.WEIGHTS_FILE)
    state[key] = torch.full_like(state[key], value)
    save_file(state, path / io.WEIGHTS_FILE)
    with pytest.raises(ValueError) as info:
        io.load(path)
    msg = str(info.value)
    assert str(path / io.WEIGHTS_FILE) in msg
    assert f"tensor {key!r} is a standard deviation and must be > 0" in msg
    code, err = _cli(capsys, "predict", str(path), str(saved["csv"]), "--out",
                     str(tmp_path / "p.csv"))
    assert code == 2 and key in _one_error_line(err)


def test_scaler_mean_must_be_finite(saved: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(saved["mle"], tmp_path)
    state = load_file(path / io.WEIGHTS_FILE)
    state["y_scaler.mean"] = torch.full_like(state["y_scaler.mean"], float("inf"))
    save_file(state, path / io.WEIGHTS_FILE)
    with pytest.raises(ValueError, match=r"'y_scaler\.mean' holds NaN or inf"):
        io.load(path)


# --------------------------------------------------------------------------- item 9: nesting


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5000, 200_000])
def test_deeply_nested_config_is_a_value_error(
    depth: int, saved: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _copy(saved["mle"], tmp_path)
    config = path / io.CONFIG_FILE
    config.write_text('{"format": "varbayes-model", "metadata": ' + "[" * depth + "]" * depth
                      + "}")
    with pytest.raises(ValueError, match=rf"config\.json: JSON nested more than {MAX_JSON_DEPTH}"):
        io.load(path)
    assert io.is_model_dir(path) is False
    code, err = _cli(capsys, "predict", str(path), str(saved["csv"]), "--out",
                     str(tmp_path / "p.csv"))
    assert code == 2 and str(config) in _one_error_line(err)
    code, err = _cli(capsys, "fit", "--epochs", "1", "--out", str(path))  # fit --out checks it
    assert code == 2 and "not a varbayes model" in _one_error_line(err)


def test_json_numbers_out_of_range(saved: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(saved["mle"], tmp_path)
    config = path / io.CONFIG_FILE
    text = config.read_text()
    config.write_text(text.replace('"lr": 0.01', '"lr": 1e400'))
    with pytest.raises(ValueError, match=r"config\.json: JSON number 1e400 is out of range"):
        io.load(path)
    config.write_text(text.replace('"epochs": 3', '"epochs": ' + "9" * 5000))
    with pytest.raises(ValueError, match=r"config\.json: .*digits"):
        io.load(path)
