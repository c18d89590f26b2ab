"""Fuzz the model loader: a tampered model directory loads, or fails with a ValueError/TypeError.

Each example copies a valid saved model and applies one to three mutations: a config value of a
random type or size (up to 10**12), a top-level or metadata key, a weights tensor of another
shape, dtype or value (NaN, inf, 1e300, negative), a dropped or extra tensor, a header that
declares other shapes, truncated or flipped bytes, deeply nested JSON, a deleted file. Every
outcome must be a loaded model or a ValueError / TypeError with a message (FileNotFoundError for
a deleted file), and the load runs under an address-space limit, so an allocation sized by the
config instead of by the weights file fails the test instead of exhausting the machine. A loaded
model's tensors never take more than twice the weights file.
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from _memguard import address_space_limit
from varbayes import io
from varbayes.kinds import FittedModel, fit

X = np.linspace(-1.0, 1.0, 16)[:, None]
Y = np.cos(3 * X[:, 0])
STATE_KEYS: dict[str, list[str]] = {}
CONFIG_KEYS = ["kind", "in_features", "hidden", "noise_hidden", "epochs", "lr", "batch_size",
               "kl", "prior_scale", "estimator", "num_particles", "init_loc_std", "init_rho",
               "init_rho_bias", "min_scale", "noise", "noise_std", "unknown"]
TOP_KEYS = ["format", "format_version", "config", "feature_names", "target_name", "metadata"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzz")
    out = {}
    for kind, kw in (("hetero", {"hidden": [5], "noise_hidden": [3]}), ("bbb", {"hidden": [4]}),
                     ("mle", {"hidden": [4, 3]})):
        fitted, _ = fit(kind, X, Y, epochs=2, generator=torch.Generator().manual_seed(0),
                        feature_names=["x"], target_name="y", **kw)
        out[kind] = io.save(fitted, root / kind, metadata={"num_samples": 10})
        STATE_KEYS[kind] = sorted(load_file(out[kind] / io.WEIGHTS_FILE))
    return out


sizes = st.one_of(st.integers(-2, 8), st.integers(9, 10**12), st.just(2**63), st.just(10**30))
json_leaf = st.one_of(
    st.none(), st.booleans(), sizes, st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6), st.sampled_from(["fixed", "learned", "analytic", "mc", "local", "mle"]),
)
json_value = st.one_of(
    st.lists(sizes, max_size=4),
    st.recursive(json_leaf, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
        max_leaves=6),
)
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64, torch.uint8]
fill = st.one_of(st.floats(-1e3, 1e3), st.sampled_from([float("nan"), float("inf"), -float("inf"),
                                                        1e300, -1.0, 0.0, 1e-45]))

mutation = st.one_of(
    st.tuples(st.just("config"), st.sampled_from(CONFIG_KEYS), json_value),
    st.tuples(st.just("top"), st.sampled_from(TOP_KEYS), json_value),
    st.tuples(st.just("num_samples"), st.just(""), json_value),
    st.tuples(st.just("tensor"), st.integers(0, 99),
              st.tuples(st.lists(st.integers(0, 6), max_size=3), st.sampled_from(DTYPES), fill)),
    st.tuples(st.just("value"), st.integers(0, 99), fill),
    st.tuples(st.just("drop"), st.integers(0, 99), st.none()),
    st.tuples(st.just("extra"), st.text(min_size=1, max_size=8), st.none()),
    st.tuples(st.just("header"), st.integers(0, 99), st.lists(sizes, max_size=3)),
    st.tuples(st.just("truncate"), st.sampled_from([io.CONFIG_FILE, io.WEIGHTS_FILE]),
              st.floats(0, 1)),
    st.tuples(st.just("flip"), st.sampled_from([io.CONFIG_FILE, io.WEIGHTS_FILE]),
              st.tuples(st.floats(0, 1), st.integers(1, 255))),
    st.tuples(st.just("nest"), st.sampled_from(["root", "config", "metadata"]),
              st.integers(1, 50_000)),
    st.tuples(st.just("delete"), st.sampled_from([io.CONFIG_FILE, io.WEIGHTS_FILE]), st.none()),
)


def _edit_json(path: Path, edit: Any) -> None:
    file = path / io.CONFIG_FILE
    try:
        doc = json.loads(file.read_text())
    except (ValueError, OSError, RecursionError):
        return  # already broken by an earlier mutation
    if isinstance(doc, dict):
        edit(doc)
        file.write_text(json.dumps(doc))


def _set(doc: dict[str, Any], section: str, key: str, value: Any) -> None:
    if isinstance(doc.get(section), dict):
        doc[section][key] = value


def _rewrite_header(file: Path, index: int, shape: list[int]) -> None:
    """Declare another shape for one tensor in the safetensors header (data unchanged)."""
    data = file.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    keys = sorted(k for k in header if k != "__metadata__")
    header[keys[index % len(keys)]]["shape"] = shape
    raw = json.dumps(header).encode()
    file.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


def _mutate(path: Path, kind: str, what: str, key: Any, value: Any) -> None:
    weights, keys = path / io.WEIGHTS_FILE, STATE_KEYS[kind]
    if what == "config":
        _edit_json(path, lambda d: _set(d, "config", key, value))
    elif what == "top":
        _edit_json(path, lambda d: d.update({key: value}))
    elif what == "num_samples":
        _edit_json(path, lambda d: _set(d, "metadata", "num_samples", value))
    elif what in ("tensor", "value", "drop", "extra"):
        try:
            state = load_file(weights)
        except Exception:  # noqa: BLE001 - already broken by an earlier mutation
            return
        name = keys[key % len(keys)] if isinstance(key, int) else key
        if what == "tensor":
            shape, dtype, number = value
            state[name] = torch.full(shape, number, dtype=torch.float64).to(dtype)
        elif what == "value" and name in state and state[name].numel():
            state[name] = state[name].double()  # holds any float, 1e300 included
            state[name].view(-1)[0] = value
        elif what == "drop":
            state.pop(name, None)
        elif what == "extra":
            state[name] = torch.zeros(2)
        save_file(state, weights)
    elif what == "header":
        try:
            _rewrite_header(weights, key, value)
        except (ValueError, OSError, struct.error, KeyError, TypeError):
            return
    elif what in ("truncate", "flip"):
        file = path / key
        if file.exists():
            data = bytearray(file.read_bytes())
            if what == "truncate":
                file.write_bytes(bytes(data[: int(len(data) * value)]))
            elif data:
                at = min(len(data) - 1, int(len(data) * value[0]))
                data[at] ^= value[1]
                file.write_bytes(bytes(data))
    elif what == "nest":
        nested = "[" * value + "]" * value
        if key == "root":
            (path / io.CONFIG_FILE).write_text(nested)
        else:
            _edit_json(path, lambda d: d.update({key: "@NEST@"}))
            file = path / io.CONFIG_FILE
            if file.exists():
                file.write_text(file.read_text().replace('"@NEST@"', nested))
    elif what == "delete":
        (path / key).unlink(missing_ok=True)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(["hetero", "bbb", "mle"]),
       mutations=st.lists(mutation, min_size=1, max_size=3))
def test_tampered_model_directory_loads_or_fails_cleanly(
    models: dict[str, Path], kind: str, mutations: list[tuple[str, Any, Any]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(shutil.copytree(models[kind], Path(tmp) / "m"))
        for what, key, value in mutations:
            _mutate(path, kind, what, key, value)
        weights = path / io.WEIGHTS_FILE
        size = weights.stat().st_size if weights.exists() else 0
        try:
            with address_space_limit(1 << 30):
                fitted = io.load(path)
        except FileNotFoundError as exc:
            assert any(m[0] == "delete" for m in mutations), exc
            assert str(exc)
            return
        except (ValueError, TypeError) as exc:
            message = str(exc).strip()
            assert message, f"{type(exc).__name__} without a message"
            assert str(path) in message, message  # names the file
            return
        assert isinstance(fitted, FittedModel)
        held = sum(t.numel() * t.element_size() for t in fitted.state_dict().values())
        assert held <= 2 * size, (held, size)
