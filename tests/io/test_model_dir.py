from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from varbayes import io
from varbayes.io import model_dir as io_impl
from varbayes.kinds import FittedModel, ModelKind, fit

# family predicts through predict_family: tests/kinds/test_family.py
KINDS = [k.value for k in ModelKind if k is not ModelKind.FAMILY]


def _data(n: int = 40, d: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x, x[:, 0] - 0.5 * x[:, 1] + 0.1 * rng.normal(size=n)


def _fit(kind: str = "mle", **kw: object) -> FittedModel:
    x, y = _data()
    kw.setdefault("epochs", 5)
    fitted, _ = fit(kind, x, y, generator=torch.Generator().manual_seed(0), **kw)
    return fitted


@pytest.fixture(scope="module")
def mle() -> FittedModel:
    return _fit("mle", hidden=[8])


def _predict(fitted: FittedModel, seed: int = 123):
    x, _ = _data(n=15, seed=1)
    return fitted.predict(x, 30, generator=torch.Generator().manual_seed(seed))


def _leftovers(parent: Path, keep: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name != keep)


def _rewrite_config(path: Path, edit) -> None:
    doc = json.loads((path / io.CONFIG_FILE).read_text())
    edit(doc)
    (path / io.CONFIG_FILE).write_text(json.dumps(doc))


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_identical_predictions(kind: str, tmp_path: Path) -> None:
    fitted = _fit(kind)
    out = io.save(fitted, tmp_path / "model")
    assert out == tmp_path / "model"
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]
    assert _leftovers(tmp_path, "model") == []
    loaded = io.load(out)
    assert isinstance(loaded, FittedModel)
    assert not loaded.training and not loaded.model.training
    assert loaded.config == fitted.config
    for name, tensor in fitted.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    a, b = _predict(fitted), _predict(loaded)
    assert torch.equal(a.loc, b.loc)
    assert torch.equal(a.scale, b.scale)


def test_config_json_contents_and_names(mle: FittedModel, tmp_path: Path) -> None:
    io.save(mle, tmp_path / "m", metadata={"note": "hi"}, feature_names=["a", "b"], target_name="y")
    doc = json.loads((tmp_path / "m" / "config.json").read_text())
    assert doc["format"] == "varbayes-model"
    assert doc["format_version"] == 1
    assert isinstance(doc["varbayes_version"], str)
    assert doc["config"] == mle.config
    loaded = io.load(tmp_path / "m")
    assert loaded.feature_names == ["a", "b"]
    assert loaded.target_name == "y"
    assert loaded.metadata == {"note": "hi"}
    # names travel on through a second save without being passed again
    io.save(loaded, tmp_path / "m2")
    assert io.load(tmp_path / "m2").feature_names == ["a", "b"]
    assert io.read_config(tmp_path / "m2")["target_name"] == "y"


def test_save_argument_errors(mle: FittedModel, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="FittedModel"):
        io.save(torch.nn.Linear(2, 1), tmp_path / "m")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="metadata"):
        io.save(mle, tmp_path / "m", metadata={"bad": object()})
    with pytest.raises(ValueError, match="feature_names has 3 names"):
        io.save(mle, tmp_path / "m", feature_names=["a", "b", "c"])
    assert not (tmp_path / "m").exists()


def test_save_refuses_non_finite_model(tmp_path: Path) -> None:
    fitted = _fit("mle", hidden=[4])
    with torch.no_grad():
        fitted.model.net[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"model\.net\.0\.weight"):
        io.save(fitted, tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_load_never_uses_torch_load_or_pickle(
    mle: FittedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io.save(mle, tmp_path / "m")

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(torch, "load", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    io.load(tmp_path / "m")


# --------------------------------------------------------------------------- malicious files


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("fmt", ["pickle", "pickle0", "torch_zip"])
def test_malicious_pickle_refused_without_executing(
    fmt: str, mle: FittedModel, tmp_path: Path
) -> None:
    path = io.save(mle, tmp_path / "m")
    marker = tmp_path / "pwned"
    weights = path / io.WEIGHTS_FILE
    if fmt == "pickle":
        weights.write_bytes(pickle.dumps(_Evil(marker)))
    elif fmt == "pickle0":
        weights.write_bytes(pickle.dumps(_Evil(marker), protocol=0))
    else:
        torch.save({"x": _Evil(marker)}, weights)
    # the payload really is live: unpickling it would create the marker
    with pytest.raises(ValueError, match="model.safetensors") as info:
        io.load(path)
    if fmt != "pickle0":
        assert "never unpickles" in str(info.value)
    assert not marker.exists()


def test_truncated_weights(mle: FittedModel, tmp_path: Path) -> None:
    path = io.save(mle, tmp_path / "m")
    weights = path / io.WEIGHTS_FILE
    data = weights.read_bytes()
    for cut in (len(data) - 7, len(data) // 2, 12, 3, 0):
        weights.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"model\.safetensors.*(truncated|corrupt)"):
            io.load(path)


def test_missing_weights_file(mle: FittedModel, tmp_path: Path) -> None:
    path = io.save(mle, tmp_path / "m")
    (path / io.WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        io.load(path)


# --------------------------------------------------------------------------- tensor checks


def test_missing_and_extra_keys(mle: FittedModel, tmp_path: Path) -> None:
    path = io.save(mle, tmp_path / "m")
    weights = path / io.WEIGHTS_FILE
    state = load_file(weights)
    del state["y_scaler.std"]
    state["model.extra"] = torch.zeros(3)
    save_file(state, weights)
    with pytest.raises(ValueError) as info:
        io.load(path)
    msg = str(info.value)
    assert "missing tensors ['y_scaler.std']" in msg
    assert "unexpected tensors ['model.extra']" in msg
    assert "model.safetensors" in msg


def test_wrong_architecture(tmp_path: Path) -> None:
    small = io.save(_fit("mle", hidden=[4]), tmp_path / "small")
    big = io.save(_fit("mle", hidden=[6]), tmp_path / "big")
    (small / io.WEIGHTS_FILE).write_bytes((big / io.WEIGHTS_FILE).read_bytes())
    with pytest.raises(ValueError, match=r"'model\.net\.0\.weight' has shape \(6, 2\).*\(4, 2\)"):
        io.load(small)


def test_nan_weights(mle: FittedModel, tmp_path: Path) -> None:
    path = io.save(mle, tmp_path / "m")
    state = load_file(path / io.WEIGHTS_FILE)
    state["model.net.0.bias"][1] = float("nan")
    save_file(state, path / io.WEIGHTS_FILE)
    with pytest.raises(ValueError, match=r"'model\.net\.0\.bias' holds NaN or inf"):
        io.load(path)


def test_integer_tensor_refused(mle: FittedModel, tmp_path: Path) -> None:
    path = io.save(mle, tmp_path / "m")
    state = load_file(path / io.WEIGHTS_FILE)
    state["x_scaler.mean"] = state["x_scaler.mean"].to(torch.int64)
    save_file(state, path / io.WEIGHTS_FILE)
    with pytest.raises(ValueError, match="floating dtype"):
        io.load(path)


# --------------------------------------------------------------------------- config checks


def test_unknown_format_version(mle: FittedModel, tmp_path: Path) -> None:
    path = io.save(mle, tmp_path / "m")
    _rewrite_config(path, lambda d: d.update(format_version=2))
    with pytest.raises(
        ValueError, match="unsupported format version 2; this varbayes reads version 1"
    ):
        io.load(path)
    _rewrite_config(path, lambda d: d.update(format_version="1"))
    with pytest.raises(ValueError, match="format_version"):
        io.load(path)


def test_wrong_format_and_bad_json(mle: FittedModel, tmp_path: Path) -> None:
    path = io.save(mle, tmp_path / "m")
    _rewrite_config(path, lambda d: d.update(format="something-else"))
    with pytest.raises(ValueError, match="not a varbayes model"):
        io.load(path)
    (path / io.CONFIG_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        io.load(path)
    (path / io.CONFIG_FILE).write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        io.load(path)


def test_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        io.load(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        io.load(tmp_path / "file")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("hidden", "abc"),
        ("hidden", [8, "x"]),
        ("hidden", []),
        ("epochs", -1),
        ("epochs", 2.5),
        ("lr", "fast"),
        ("lr", 0),
        ("batch_size", True),
        ("kind", "nope"),
        ("in_features", 0),
        ("in_features", "2"),
        ("surprise", 1),
    ],
)
def test_config_bad_values(key: str, value: object, mle: FittedModel, tmp_path: Path) -> None:
    path = io.save(mle, tmp_path / "m")
    _rewrite_config(path, lambda d: d["config"].update({key: value}))
    with pytest.raises(ValueError, match=r"config\.json") as info:
        io.load(path)
    assert key in str(info.value)


def test_config_nan_literal_and_bad_names(mle: FittedModel, tmp_path: Path) -> None:
    path = io.save(mle, tmp_path / "m")
    text = (path / io.CONFIG_FILE).read_text().replace('"lr": 0.01', '"lr": NaN')
    (path / io.CONFIG_FILE).write_text(text)
    with pytest.raises(ValueError, match="NaN"):
        io.load(path)
    path = io.save(mle, tmp_path / "m2")
    _rewrite_config(path, lambda d: d.update(feature_names=["only-one"]))
    with pytest.raises(ValueError, match="feature_names"):
        io.load(path)


def test_bbb_bad_enum_value(tmp_path: Path) -> None:
    path = io.save(_fit("bbb", hidden=[4]), tmp_path / "m")
    _rewrite_config(path, lambda d: d["config"].update(noise="sometimes"))
    with pytest.raises(ValueError, match=r"config\.json.*noise"):
        io.load(path)


# --------------------------------------------------------------------------- overwriting


def test_overwrite_requires_force(mle: FittedModel, tmp_path: Path) -> None:
    path = io.save(mle, tmp_path / "m")
    before = (path / io.WEIGHTS_FILE).read_bytes()
    with pytest.raises(FileExistsError, match=r"force=True.*--force"):
        io.save(_fit("mle", hidden=[3]), path)
    assert (path / io.WEIGHTS_FILE).read_bytes() == before
    assert _leftovers(tmp_path, "m") == []


@pytest.mark.parametrize("exchange", [True, False])
def test_force_replaces(
    exchange: bool, mle: FittedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not exchange:
        monkeypatch.setattr(io_impl, "_exchange", lambda a, b: False)
    path = io.save(mle, tmp_path / "m")
    new = _fit("bbb", hidden=[3])
    io.save(new, path, force=True)
    assert io.load(path).config == new.config
    assert _leftovers(tmp_path, "m") == []


def test_refuses_non_model_paths_even_with_force(mle: FittedModel, tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("precious")
    with pytest.raises(FileExistsError, match="not a directory"):
        io.save(mle, a_file, force=True)
    assert a_file.read_text() == "precious"

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a varbayes model"):
        io.save(mle, other, force=True)
    assert (other / "notes.txt").read_text() == "precious"

    model_dir = io.save(mle, tmp_path / "model")
    (model_dir / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="notes.txt"):
        io.save(mle, model_dir, force=True)
    assert (model_dir / "notes.txt").read_text() == "precious"


def test_empty_directory_is_used(mle: FittedModel, tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    io.save(mle, tmp_path / "m")
    assert io.load(tmp_path / "m").config == mle.config
    io.save(mle, tmp_path / "a" / "b" / "c")  # parents are created
    assert io.is_model_dir(tmp_path / "a" / "b" / "c")


# --------------------------------------------------------------------------- crashes


def _fail(*args: object, **kwargs: object) -> None:
    raise RuntimeError("disk on fire")


def test_failure_mid_save_leaves_nothing(
    mle: FittedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(io_impl, "save_file", _fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        io.save(mle, tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["weights", "config"])
def test_failure_mid_save_keeps_old_model(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _fit("mle", hidden=[4])
    path = io.save(old, tmp_path / "m")
    expected = _predict(old)
    if where == "weights":
        monkeypatch.setattr(io_impl, "save_file", _fail)
    else:
        monkeypatch.setattr(io_impl.json, "dump", _fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        io.save(_fit("vi", hidden=[3]), path, force=True)
    monkeypatch.undo()
    reloaded = io.load(path)
    assert reloaded.config == old.config
    assert torch.equal(_predict(reloaded).loc, expected.loc)
    assert _leftovers(tmp_path, "m") == []


def test_failed_swap_puts_old_model_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = _fit("mle", hidden=[4])
    path = io.save(old, tmp_path / "m")
    monkeypatch.setattr(io_impl, "_exchange", lambda a, b: False)
    real_rename = os.rename
    calls: list[tuple[object, object]] = []

    def flaky_rename(src: object, dst: object) -> None:
        calls.append((src, dst))
        if len(calls) == 2:  # old model moved aside; the new one fails to move in
            raise OSError("rename failed")
        real_rename(src, dst)

    monkeypatch.setattr(io_impl.os, "rename", flaky_rename)
    with pytest.raises(OSError, match="rename failed"):
        io.save(_fit("mle", hidden=[3]), path, force=True)
    monkeypatch.undo()
    assert io.load(path).config == old.config
    assert _leftovers(tmp_path, "m") == []


# --------------------------------------------------------------------------- killed saves


_KILL_SCRIPT = """
import sys, torch
from varbayes import io, metrics, plots
from varbayes.kinds import FittedModel, build_model, make_config
from varbayes.data.transforms import Standardizer
config = make_config("mle", 1, hidden=[1500, 1500])
def model(value):
    fitted = FittedModel(config, build_model(config), Standardizer(1), Standardizer(1))
    with torch.no_grad():
        for p in fitted.parameters():
            p.fill_(value)
    return fitted
a, b = model(1.0), model(2.0)
io.save(a, sys.argv[1], force=True)
print("ready", flush=True)
i = 0
while True:
    io.save(b if i % 2 == 0 else a, sys.argv[1], force=True)
    i += 1
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_while_saving_a_large_model(tmp_path: Path) -> None:
    """A process killed while it writes a 9 MB model: load gives one whole model."""
    path = tmp_path / "big"
    for delay in (0.4,):
        with subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(path)],
                              stdout=subprocess.PIPE, text=True) as proc:  # fmt: skip
            try:
                assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
                time.sleep(delay)
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=60)
        values = {float(t.unique()[0]) for k, t in io.load(path).state_dict().items()
                  if k.startswith("model.net")}  # fmt: skip
        assert values in ({1.0}, {2.0})
