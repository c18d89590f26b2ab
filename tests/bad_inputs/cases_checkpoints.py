"""Bad model directories and interrupted saves (rows ``ck-*``)."""

from __future__ import annotations

import json
import os
import signal
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from cases_common import (
    GOOD_CSV,
    CliRun,
    Ctx,
    LibCalls,
    X,
    Y,
    _fn,
    _predict_csv,
)
from safetensors.torch import load_file, save_file

from varbayes import io
from varbayes.io import model_dir as io_impl

#: id, input, library answer, CLI answer (see ``test_bad_inputs.py``).
CASES: list[tuple[str, str, str, str]] = [
    # ---- checkpoints
    ("ck-pickle", "a malicious pickle as weights", 'ValueError: "never unpickles"',
     '2: "never unpickles"'),
    ("ck-truncated", "truncated or corrupted weights", 'ValueError: "truncated or corrupt"',
     '2: "truncated or corrupt"'),
    ("ck-arch", "weights of another architecture", 'ValueError: "has shape"', '2: "has shape"'),
    ("ck-version", "an unknown format version", 'ValueError: "unsupported format version 2"',
     '2: "unsupported format version 2"'),
    ("ck-nan", "NaN weights", 'ValueError: "holds NaN or inf values"', '2: "holds NaN or inf"'),
    ("ck-keys", "missing or extra tensors", 'ValueError: "missing tensors"',
     '2: "missing tensors"'),
    ("ck-json-types", "config JSON of the wrong types", 'ValueError: "has the wrong type"',
     '2: "has the wrong type"'),
    ("ck-killed", "the process killed at each step of a save", "accepted: `load` gives the old "
     "or the new model, never a mix", "n/a"),
]  # fmt: skip


def _edit_weights(path: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> Path:
    state = load_file(path / io.WEIGHTS_FILE)
    edit(state)
    save_file(state, path / io.WEIGHTS_FILE)
    return path


def _edit_config(path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    doc = json.loads((path / io.CONFIG_FILE).read_text())
    edit(doc)
    (path / io.CONFIG_FILE).write_text(json.dumps(doc))
    return path


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _pickled(path: Path) -> Path:
    import pickle

    (path / io.WEIGHTS_FILE).write_bytes(pickle.dumps(_Evil(path.parent / "pwned")))
    return path


def _bigger_arch(c: Ctx, path: Path) -> Path:
    members = io.load(path).config["n_members"]  # the same tensors, of other shapes
    other = io.save(_fn(X, Y, hidden=[6], n_members=members), c.tmp / "other")
    (path / io.WEIGHTS_FILE).write_bytes((other / io.WEIGHTS_FILE).read_bytes())
    return path


CHECKPOINT_EDITS: dict[str, Callable[[Ctx, Path], Path]] = {
    "ck-pickle": lambda c, p: _pickled(p),
    "ck-truncated": lambda c, p: (p / io.WEIGHTS_FILE).write_bytes(
        (p / io.WEIGHTS_FILE).read_bytes()[:100]) and p,
    "ck-arch": _bigger_arch,
    "ck-version": lambda c, p: _edit_config(p, lambda d: d.update(format_version=2)),
    "ck-nan": lambda c, p: _edit_weights(p, lambda s: s["x_scaler.std"].fill_(float("nan"))),
    "ck-keys": lambda c, p: _edit_weights(p, lambda s: s.pop("y_scaler.std")),
    "ck-json-types": lambda c, p: _edit_config(p, lambda d: d["config"].update(lr="fast")),
}  # fmt: skip


def _copy_model(c: Ctx, name: str = "cm") -> Path:
    dst = c.tmp / name
    dst.mkdir()
    for f in c.model.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _instrument(crash_at: int | None, counter: list[int]) -> None:
    """Wrap each step of io.save; the ``crash_at``-th call SIGKILLs the process before it."""

    def wrap(owner: Any, name: str) -> None:
        real = getattr(owner, name)

        def step(*args: Any, **kwargs: Any) -> Any:
            counter[0] += 1
            if counter[0] == crash_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        setattr(owner, name, step)

    wrap(io_impl, "save_file")
    wrap(io_impl, "_fsync_path")
    wrap(io_impl, "_exchange")
    wrap(io_impl._atomic, "fsync_path")
    wrap(io_impl._atomic.shutil, "rmtree")
    wrap(io_impl.os, "fsync")
    wrap(io_impl.os, "rename")
    wrap(Path, "mkdir")


def _kill_at_every_step(tmp: Path) -> None:
    """Fork, SIGKILL the child at each step of ``save(new, force=True)``, load in the parent."""
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    old, new = _fn(X, Y, hidden=[3]), _fn(X, Y, hidden=[5])
    configs = {"old": old.config, "new": new.config}
    step, seen = 0, []
    while True:
        step += 1
        path = tmp / f"k{step}"
        io.save(old, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
            pid = os.fork()
        if pid == 0:  # the child: crash at the step-th step, or finish
            try:
                counter = [0]
                _instrument(step, counter)
                io.save(new, path, force=True)
            finally:
                os._exit(0 if counter[0] < step else 3)
        _, status = os.waitpid(pid, 0)
        loaded = io.load(path)  # never raises here: either model is whole
        which = next(k for k, v in configs.items() if v == loaded.config)
        seen.append(which)
        reference = old if which == "old" else new
        for k, t in reference.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], t), (step, k)
        if os.WIFEXITED(status):  # the save finished before reaching the step: all covered
            assert os.WEXITSTATUS(status) == 0 and which == "new"
            break
        assert os.WTERMSIG(status) == signal.SIGKILL
        io.save(old, path, force=True)  # leftovers of the killed save do not get in the way
        assert io.load(path).config == old.config
    assert step > 8 and seen[0] == "old" and seen[-1] == "new"


def _lib_checkpoint(key: str) -> Callable[[Ctx], list[Callable[[], Any]]]:
    return lambda c: [lambda: io.load(CHECKPOINT_EDITS[key](c, c.saved()))]


def _lib_killed(c: Ctx) -> list[Callable[[], Any]]:
    return [lambda: _kill_at_every_step(c.tmp)]


LIB: dict[str, LibCalls] = {
    **{k: _lib_checkpoint(k) for k in CHECKPOINT_EDITS},
    "ck-killed": _lib_killed,
}  # fmt: skip


def _cli_checkpoint(key: str) -> Callable[[Ctx], tuple[int, str, str]]:
    def run(c: Ctx) -> tuple[int, str, str]:
        model = CHECKPOINT_EDITS[key](c, _copy_model(c))
        return _predict_csv(c, GOOD_CSV, model)

    return run


CLI: dict[str, CliRun] = {
    **{k: _cli_checkpoint(k) for k in CHECKPOINT_EDITS},
}  # fmt: skip
