"""Every bad input of STYLE.md part B, as listed in ``docs/bad-inputs.md``, and its answer.

``CASES`` is the single source of the table: ``test_docs_table_matches_cases`` fails if
``docs/bad-inputs.md`` and ``CASES`` differ (regenerate the table with
``python tests/bad_inputs/test_bad_inputs.py``), and ``test_every_case_is_exercised`` fails if a
case has no test or a test no case. ``test_library`` runs each row's library calls (the
estimator and the functional API alike where both apply) and ``test_cli`` its ``varbayes``
command.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file
from sklearn.base import clone
from sklearn.exceptions import DataConversionWarning, NotFittedError

from varbayes import io, metrics, plots
from varbayes.cli import main
from varbayes.data import read_csv
from varbayes.estimator import BayesianRegressor
from varbayes.infer import ELBO, ELBOTerms, NonFiniteLossError, SquaredError, train
from varbayes.io import model_dir as io_impl
from varbayes.kinds import FittedModel, build_model, fit
from varbayes.predictive import predictive
from varbayes.priors import GaussianPrior

DOC = Path(__file__).resolve().parents[2] / "docs" / "bad-inputs.md"
HEADER = (
    "| id | input | library answer (exception: message excerpt) | "
    "CLI answer (exit code: message excerpt) |"
)

# id, input, library answer, CLI answer. An answer is `Type: "excerpt"` (the message contains
# the excerpt, case-insensitively), `accepted: note` / `0: note`, or `n/a`.
CASES: list[tuple[str, str, str, str]] = [
    # ---- features X
    ("X-nan", "NaN in `X`", 'ValueError: "non-finite value(s) (NaN: 1, +inf: 0, -inf: 0)"',
     '2: "is not finite (NaN or infinity)"'),
    ("X-posinf", "+inf in `X`", 'ValueError: "(NaN: 0, +inf: 1, -inf: 0)"',
     '2: "is not finite (NaN or infinity)"'),
    ("X-neginf", "-inf in `X`", 'ValueError: "(NaN: 0, +inf: 0, -inf: 1)"',
     '2: "is not finite (NaN or infinity)"'),
    ("X-huge", "1e308 in `X` (overflows float32)", 'ValueError: "exceeds the float32 maximum"',
     '2: "exceeds the float32 maximum"'),
    ("X-subnormal", "subnormal values (1e-310) in `X`", "accepted: finite predictions",
     "0: finite predictions"),
    ("X-0rows", "0 rows", 'ValueError: "has 0 rows"', '2: "has a header row but no data rows"'),
    ("X-0cols", "0 columns", 'ValueError: "0 feature(s) (shape=(20, 0)) while a minimum of 1 '
     'is required"', '2: "no feature columns"'),
    ("X-1row", "exactly 1 row", "accepted: the standardiser uses std 1, predictions are finite",
     '2: "need at least 2 data rows"'),
    ("X-1col", "exactly 1 column", "accepted: trains", "0: trains"),
    ("X-1d", "1-D `X`", 'ValueError: "Reshape your data"', "n/a"),
    ("X-3d", "3-D `X`", 'ValueError: "got 3-D shape (20, 2, 2)"', "n/a"),
    ("X-scalar", "a scalar `X`", 'ValueError: "got a scalar"', "n/a"),
    ("X-ragged", "ragged list of lists", 'ValueError: "ragged nested sequence"', '2: "cells but '
     'the header has"'),
    ("X-list", "a list of lists", "accepted: same predictions as the array", "n/a"),
    ("X-dataframe", "a pandas DataFrame", "accepted: feature names kept (`feature_names_in_`)",
     "n/a"),
    ("X-names", "DataFrame with other column names at predict", 'ValueError: "feature names"',
     '2: "unknown feature column"'),
    ("X-string", "a column of non-numeric strings", 'ValueError: "column 1 is not numeric: it '
     "contains 'a' at row 3\"", '2: "is not a number"'),
    ("X-numeric-string", "numeric strings (`'1.5'`)", "accepted: parsed as numbers", "n/a"),
    ("X-object-dict", "an object cell holding a dict", 'TypeError: "float() argument must be a '
     'string or a real number"', "n/a"),
    ("X-complex", "complex `X`", 'ValueError: "Complex data not supported"', "n/a"),
    ("X-dtypes", "bool, int, float16, float32 `X`", "accepted: cast to float64, then float32 for "
     "the network", "n/a"),
    ("X-readonly", "read-only, memory-mapped, non-contiguous arrays", "accepted: copied", "n/a"),
    ("X-sparse", "a scipy sparse matrix", 'TypeError: "sparse"', "n/a"),
    ("X-sparse-torch", "a sparse torch tensor", 'TypeError: "to_dense()"', "n/a"),
    ("X-grad", "a tensor with `requires_grad=True`, non-contiguous", "accepted: detached",
     "n/a"),
    ("X-cuda", "a CUDA tensor for a CPU model", "accepted: copied to the model's device "
     "(tested where CUDA exists)", "n/a"),
    ("X-constant", "a constant column; duplicate rows", "accepted: std replaced by 1, finite",
     "0: trains"),
    ("X-scale", "feature scales 1e6 and 1e-6", "accepted: standardised", "n/a"),
    ("X-features", "a different feature count at predict", 'ValueError: "3 features"',
     '2: "unknown feature column"'),
    # ---- targets y
    ("y-nan", "NaN or inf in `y`", 'ValueError: "y contains 1 non-finite value(s)"',
     '2: "is not finite (NaN or infinity)"'),
    ("y-column", "`y` of shape (n, 1)", "accepted: raveled (the estimator warns "
     "`DataConversionWarning`, as scikit-learn)", "n/a"),
    ("y-multi", "multi-output `y` (n, 2)", 'ValueError: "multi-output targets are not '
     'supported"', "n/a"),
    ("y-constant", "constant `y`", "accepted: std replaced by 1, finite predictions", "n/a"),
    ("y-length", "`y` longer than `X`", 'ValueError: "y has 21 samples but X has 20 rows"',
     "n/a"),
    ("y-int-scale", "int `y`; `y` at scale 1e9; heavy outliers", "accepted: predictions in the "
     "data's units", "n/a"),
    ("y-string", "a non-numeric target column", 'ValueError: "y is not numeric"',
     '2: "is not a number"'),
    # ---- hyperparameters and call arguments
    ("hp-prior-scale", "`prior_scale <= 0`", 'ValueError: "prior_scale must be in '
     'the range (0.0, inf)"', "n/a"),
    ("hp-init-rho", "`init_rho` of -50 or +100", "accepted: sigma = softplus(rho) + floor stays "
     "finite", "n/a"),
    ("hp-lr", "`lr <= 0`", 'ValueError: "lr must be in the range (0.0, inf)"',
     '2: "expected a positive"'),
    ("hp-lr-type", '`lr="x"`', 'TypeError: "lr must be a float, got str"',
     '2: "expected a positive finite number"'),
    ("hp-epochs", "negative epochs", 'ValueError: "epochs must be in the range [1, inf)"',
     '2: "expected a positive integer"'),
    ("hp-epochs-float", "`epochs=2.5`", 'TypeError: "epochs must be an int, got float 2.5"',
     '2: "expected a positive integer"'),
    ("hp-batch", "`batch_size <= 0`", 'ValueError: "batch_size must be in the range [1, inf)"',
     '2: "expected a positive integer"'),
    ("hp-batch-large", "`batch_size > n`", "accepted: full batch", "0: trains"),
    ("hp-hidden", '`hidden="12"` (a string, not `[1, 2]`)', 'TypeError: "hidden must be an '
     'int or a sequence of ints"', '2: "layer sizes"'),
    ("hp-particles", "`num_particles = 0`", 'ValueError: "num_particles must be in the range '
     '[1, inf)"', "n/a"),
    ("hp-kl-weight", "`kl_weight < 0`", 'ValueError: "kl_weight must be a finite number >= 0"',
     "n/a"),
    ("hp-min-scale", "`min_scale <= 0`", 'ValueError: "min_scale must be in the range (0.0, '
     'inf)"', "n/a"),
    ("hp-kind", "unknown model kind", "ValueError: \"allowed values are 'mle', 'vi'\"",
     '2: "invalid choice"'),
    ("hp-enums", "unknown `kl` / `estimator` / `noise` strings", 'ValueError: "allowed values '
     'are"', '2: "invalid choice"'),
    ("hp-random-state", "`random_state` that is not an int, generator or None", 'TypeError: '
     '"random_state must be None, a non-negative int"', '2: "expected an integer >= 0"'),
    ("hp-samples-0", "`num_samples = 0`", 'ValueError: "num_samples must be"',
     '2: "expected a positive integer"'),
    ("hp-samples-1", "`num_samples = 1`", "accepted: epistemic variance 0, never NaN",
     "0: finite std"),
    ("hp-generator", "a `generator` on another device than the model", 'ValueError: '
     '"generator is on device"', "n/a"),
    # ---- lifecycle
    ("lc-not-fitted", "`predict`, `sample_y`, `save` before `fit`", 'NotFittedError: "is not '
     'fitted yet"', '2: "does not exist"'),
    ("lc-refit", "`fit` twice; `set_params` then `fit`; `clone`", "accepted: identical results "
     "with the same `random_state`", "n/a"),
    ("lc-nan-loss", "a NaN loss partway through training", 'NonFiniteLossError: "lower the '
     'learning rate"', '1: "lower the learning rate (--lr 1e+06)"'),
    ("lc-nan-skip", "the same with `nonfinite='skip'`", "accepted: the step is skipped and "
     "counted in `history.skipped_steps`", '1: "every step of epoch"'),
    ("lc-warm-start", "a refit with another input dimension (no warm start)", "accepted: every "
     "fit starts afresh", "n/a"),
    # ---- numerics inside the model
    ("num-scale-floor", "predicted scale -> 0", "accepted: floored at `min_scale`", "n/a"),
    ("num-scale-inf", "predicted scale -> inf", "accepted: softplus is linear, no overflow",
     "n/a"),
    ("num-rho", "`rho` very negative / very positive", "accepted: sigma >= floor, finite KL",
     "n/a"),
    ("num-kl-zero", "posterior equal to the prior", "accepted: KL is exactly 0", "n/a"),
    ("num-zero-grad", "all-zero gradients", "accepted: parameters unchanged, finite history",
     "n/a"),
    ("num-mean-mode", "eval versus train mode, `sample=False`", "accepted: one deterministic "
     "component; the training mode is restored", "n/a"),
    # ---- metrics and plots
    ("met-std", "`std <= 0`", 'ValueError: "std must be > 0 everywhere"', "n/a"),
    ("met-nan", "NaN predictions", 'ValueError: "non-finite value(s)"', "n/a"),
    ("met-shape", "mismatched lengths of `y_true`, `mean`, `std`", 'ValueError: "length '
     'mismatch"', "n/a"),
    ("met-empty", "empty arrays", 'ValueError: "is empty"', "n/a"),
    ("met-single", "a single point", "accepted: finite scores", "n/a"),
    ("met-level", "coverage level outside (0, 1)", 'ValueError: "level must lie in (0, 1)"',
     '2: "expected a number in (0, 1)"'),
    ("met-bins", "number of bins < 1", 'ValueError: "num_levels must be"', "n/a"),
    ("plot-ax", "plotting with `ax=None` or a given `ax`, headless", "accepted: no pyplot, no "
     "`plt.show()`", "n/a"),
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
    # ---- CLI and files
    ("cli-missing", "a missing file", 'FileNotFoundError: "CSV file not found"',
     '2: "CSV file not found"'),
    ("cli-dir", "a directory where a file is expected", 'IsADirectoryError: "is a directory"',
     '2: "is a directory"'),
    ("cli-empty", "an empty CSV", 'ValueError: "is empty"', '2: "is empty"'),
    ("cli-header", "a CSV with a header only", 'ValueError: "has a header row but no data '
     'rows"', '2: "has a header row but no data rows"'),
    ("cli-no-header", "a CSV without a header", 'ValueError: "looks like data"',
     '2: "looks like data"'),
    ("cli-delimiter", "a wrong delimiter (`;`)", "ValueError: \"seems to use ';' as "
     'delimiter"', "2: \"seems to use ';' as delimiter\""),
    ("cli-missing-cell", "missing cells", 'ValueError: "missing value"', '2: "missing value"'),
    ("cli-text-column", "a text column among the features (no `--features`)", 'ValueError: '
     '"is not a number"', "0: the text column is ignored, with a note"),
    ("cli-target", "a target column that is not there", "ValueError: \"unknown target column "
     "'zz'\"", "2: \"unknown target column 'zz'\""),
    ("cli-unwritable", "an unwritable output path (under a regular file)", 'NotADirectoryError: '
     '"cannot create model directory"', '2: "is not a directory"'),
    ("cli-force", "overwriting without `--force` / `force=True`", 'FileExistsError: "pass '
     'force=True"', '2: "pass --force to overwrite"'),
    ("cli-not-model", "a model path that is not a varbayes model", 'FileExistsError: "not a '
     'varbayes model"', '2: "is not a varbayes model directory"'),
    ("cli-seed", "the same `--seed` twice", "accepted: same `random_state`, identical "
     "predictions", "0: byte-identical model files, predictions and scores"),
    ("cli-debug", "any error, with and without `--debug`", "n/a", '2: "CSV file not found" in '
     "one line; a traceback only with `--debug`"),
]  # fmt: skip

ERRORS = {
    e.__name__: e
    for e in (
        ValueError, TypeError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
        FileExistsError, NotFittedError, NonFiniteLossError,
    )
}  # fmt: skip


def render_table() -> str:
    """The markdown table of ``CASES`` (as it appears in docs/bad-inputs.md)."""
    lines = [HEADER, "|---|---|---|---|"]
    lines += [f"| `{i}` | {what} | {lib} | {cli} |" for i, what, lib, cli in CASES]
    return "\n".join(lines)


def _answer(text: str) -> tuple[str, str | None]:
    """Split an answer into (kind, excerpt): kind is an exception name, an exit code, etc."""
    if text == "n/a":
        return "n/a", None
    m = re.fullmatch(r'(\w+): (?:"([^"]*)"(.*)|(.*))', text)
    assert m, f"malformed answer {text!r}"
    return m.group(1), m.group(2)


# --------------------------------------------------------------------------- data helpers

RNG = np.random.default_rng(0)
X = RNG.normal(size=(20, 2))
Y = X[:, 0] - X[:, 1] + 0.1 * RNG.normal(size=20)
FAST: dict[str, Any] = dict(epochs=2, hidden=4, num_samples=5, random_state=0)


def _est(**kw: Any) -> BayesianRegressor:
    return BayesianRegressor(**{**FAST, **kw})


def _g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _fn(X: Any, y: Any = Y, kind: str = "hetero", **kw: Any) -> FittedModel:
    kw = {"epochs": 2, "hidden": [4], **kw}
    return fit(kind, X, y, generator=_g(), **kw)[0]


def _with(value: float, where: tuple[int, int] = (3, 1)) -> np.ndarray:
    bad = X.copy()
    bad[where] = value
    return bad


def _finite(*arrays: Any) -> None:
    for a in arrays:
        assert np.isfinite(np.asarray(a.detach() if isinstance(a, torch.Tensor) else a)).all()


def _fits(X: Any, y: Any = Y, **kw: Any) -> list[Callable[[], Any]]:
    """Both front doors: the estimator and the functional API."""
    return [lambda: _est(**kw).fit(X, y), lambda: _fn(X, y, **kw)]


def _ok(X: Any, y: Any = Y) -> list[Callable[[], Any]]:
    def est() -> None:
        _finite(*_est().fit(X, y).predict(X, return_std=True))

    def fn() -> None:
        pred = _fn(X, y).predict(X, 5, generator=_g())
        _finite(pred.mean, pred.std)

    return [est, fn]


@dataclass
class Ctx:
    tmp: Path
    est: BayesianRegressor
    fm: FittedModel
    model: Path
    capsys: Any

    def csv(self, text: str, name: str = "d.csv") -> Path:
        path = self.tmp / name
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    def run(self, *argv: object) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's own errors
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def saved(self, name: str = "m") -> Path:
        return io.save(self.fm, self.tmp / name)


def _rows(x: np.ndarray, y: np.ndarray) -> str:
    lines = (",".join(repr(float(v)) for v in (*a, b)) for a, b in zip(x, y, strict=True))
    return "".join(line + "\n" for line in lines)


GOOD_CSV = "a,b,y\n" + _rows(X, Y)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[BayesianRegressor, FittedModel, Path]:
    root = tmp_path_factory.mktemp("shared")
    (root / "d.csv").write_text(GOOD_CSV)
    model = root / "model"
    argv = ["fit", root / "d.csv", "--target", "y", "--epochs", 2, "--hidden", 4, "--samples", 5]
    assert main([str(a) for a in [*argv, "--out", model]]) == 0
    return _est().fit(X, Y), _fn(X, Y), model


@pytest.fixture
def ctx(shared: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Ctx:
    capsys.readouterr()
    return Ctx(tmp_path, shared[0], shared[1], shared[2], capsys)


def _fit_csv(c: Ctx, text: str, *extra: object) -> tuple[int, str, str]:
    data = c.csv(text)
    return c.run("fit", data, "--target", "y", "--epochs", 2, "--hidden", 4, *extra,
                 "--out", c.tmp / "m")  # fmt: skip


def _predict_csv(c: Ctx, text: str, model: Path | None = None) -> tuple[int, str, str]:
    return c.run("predict", model or c.model, c.csv(text, "in.csv"), "--samples", 5,
                 "--out", c.tmp / "p.csv")  # fmt: skip


def _fit_flags(c: Ctx, *flags: object) -> tuple[int, str, str]:
    return c.run("fit", c.csv(GOOD_CSV), "--target", "y", "--epochs", 2, "--hidden", 4, *flags,
                 "--out", c.tmp / "m")  # fmt: skip


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
    other = io.save(_fn(X, Y, hidden=[6]), c.tmp / "other")
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


# --------------------------------------------------------------------------- library calls


def _nan_objective(at_step: int) -> Callable[..., ELBOTerms]:
    base, calls = SquaredError(), [0]

    def objective(model: Any, x: Any, y: Any, *, generator: Any = None) -> ELBOTerms:
        calls[0] += 1
        terms = base(model, x, y, generator=generator)
        return terms._replace(loss=terms.loss * float("nan")) if calls[0] == at_step else terms

    return objective


def _train_with_nan(policy: str) -> None:
    x, y = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(Y, dtype=torch.float32)
    model = build_model({"kind": "mle", "in_features": 2, "hidden": [4]}, _g())
    history = train(
        model, _nan_objective(3), x, y, epochs=5, lr=0.01, batch_size=5, nonfinite=policy
    )
    assert history.skipped_steps == 1 and len(history.loss) == 5
    _finite(history.loss)


def _lib_nan_skip(c: Ctx) -> list[Callable[[], Any]]:
    return [lambda: _train_with_nan("skip")]


def _lib_refit(c: Ctx) -> list[Callable[[], Any]]:
    def same() -> None:
        est = _est()
        a = est.fit(X, Y).predict(X)
        np.testing.assert_array_equal(a, est.fit(X, Y).predict(X))
        np.testing.assert_array_equal(a, clone(est).fit(X, Y).predict(X))
        b = _est(epochs=1).set_params(epochs=2).fit(X, Y).predict(X)
        np.testing.assert_array_equal(a, b)

    return [same]


def _lib_dtypes(c: Ctx) -> list[Callable[[], Any]]:
    out = []
    for dtype in (np.bool_, np.int64, np.float16, np.float32):
        Xd = (X > 0) if dtype is np.bool_ else (X * 10).astype(dtype)
        out += _ok(Xd)
    return out


def _lib_readonly(c: Ctx) -> list[Callable[[], Any]]:
    ro = X.copy()
    ro.setflags(write=False)
    mm = np.memmap(c.tmp / "x.dat", dtype=np.float64, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    mm_ro = np.memmap(c.tmp / "x.dat", dtype=np.float64, mode="r", shape=X.shape)
    wide = np.zeros((20, 4))
    wide[:, ::2] = X
    return [*_ok(ro), *_ok(mm_ro), *_ok(wide[:, ::2]), *_ok(np.asfortranarray(X))]


def _lib_names(c: Ctx) -> list[Callable[[], Any]]:
    est = _est().fit(pd.DataFrame(X, columns=["a", "b"]), Y)
    return [lambda: est.predict(pd.DataFrame(X, columns=["a", "c"]))]


def _lib_dataframe(c: Ctx) -> list[Callable[[], Any]]:
    def names_kept() -> None:
        df = pd.DataFrame(X, columns=["a", "b"])
        est = _est().fit(df, pd.Series(Y, name="t"))
        assert list(est.feature_names_in_) == ["a", "b"]
        np.testing.assert_array_equal(est.predict(df), _est().fit(X, Y).predict(X))

    return [names_kept, *_ok(pd.DataFrame(X, columns=["a", "b"]))]


def _lib_y_column(c: Ctx) -> list[Callable[[], Any]]:
    def est() -> None:
        with pytest.warns(DataConversionWarning):
            a = _est().fit(X, Y[:, None]).predict(X)
        np.testing.assert_array_equal(a, c.est.predict(X))

    def fn() -> None:
        np.testing.assert_array_equal(
            _fn(X, Y[:, None]).predict(X, 5, generator=_g()).mean,
            c.fm.predict(X, 5, generator=_g()).mean,
        )

    return [est, fn]


def _lib_samples_1(c: Ctx) -> list[Callable[[], Any]]:
    def check() -> None:
        pred = c.fm.predict(X, 1)
        assert (pred.epistemic_var == 0).all()
        _finite(pred.std)
        _finite(*_est(num_samples=1).fit(X, Y).predict(X, return_std=True))

    return [check]


class _CudaGenerator:
    device = torch.device("cuda", 0)


def _lib_generator(c: Ctx) -> list[Callable[[], Any]]:
    gen: Any = torch.Generator("cuda") if torch.cuda.is_available() else _CudaGenerator()
    return [lambda: c.fm.predict(X, 5, generator=gen)]


def _lib_cuda(c: Ctx) -> list[Callable[[], Any]]:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    xc = torch.as_tensor(X, device="cuda")
    return [lambda: _finite(c.fm.predict(xc, 5).mean), lambda: _finite(c.est.predict(xc))]


def _lib_scale_floor(c: Ctx) -> list[Callable[[], Any]]:
    def check() -> None:
        scale = _scale_at(c, -1e4)
        assert (scale == c.fm.config["min_scale"]).all()

    return [check]


def _lib_rho(c: Ctx) -> list[Callable[[], Any]]:
    from varbayes.nn.layers import BayesLinear

    def check(rho: float) -> None:
        layer = BayesLinear(3, 2, init_rho=rho, generator=_g())
        assert (layer.weight_scale >= layer.min_scale).all()
        _finite(layer.kl_divergence(), layer(torch.ones(4, 3), generator=_g()))

    return [lambda: check(-50.0), lambda: check(100.0)]


def _lib_zero_grad(c: Ctx) -> list[Callable[[], Any]]:
    def check() -> None:
        model = build_model({"kind": "mle", "in_features": 2, "hidden": [4]}, _g())
        before = [p.detach().clone() for p in model.parameters()]

        def zero(m: Any, x: Any, y: Any, *, generator: Any = None) -> ELBOTerms:
            loss = sum((p * 0).sum() for p in m.parameters())
            return ELBOTerms(loss, loss.detach(), loss.detach())

        history = train(model, zero, torch.ones(5, 2), torch.ones(5), epochs=3, lr=0.1)
        assert history.loss == [0.0, 0.0, 0.0]
        for a, b in zip(before, model.parameters(), strict=True):
            assert torch.equal(a, b)

    return [check]


def _lib_mean_mode(c: Ctx) -> list[Callable[[], Any]]:
    def check() -> None:
        model = c.fm.model
        model.train()
        xt = torch.as_tensor(X, dtype=torch.float32)
        a = predictive(model, xt, 7, sample=False, generator=_g())
        b = predictive(model, xt, 7, sample=False, generator=torch.Generator().manual_seed(9))
        assert a.num_samples == 1 and torch.equal(a.loc, b.loc)
        assert model.training  # restored
        model.eval()
        sampled = predictive(model, xt, 7, generator=_g())
        assert sampled.num_samples == 7 and (sampled.epistemic_var > 0).all()

    return [check]


def _lib_checkpoint(key: str) -> Callable[[Ctx], list[Callable[[], Any]]]:
    return lambda c: [lambda: io.load(CHECKPOINT_EDITS[key](c, c.saved()))]


def _lib_killed(c: Ctx) -> list[Callable[[], Any]]:
    return [lambda: _kill_at_every_step(c.tmp)]


def _lib_plot(c: Ctx) -> list[Callable[[], Any]]:
    def check() -> None:
        from matplotlib.figure import Figure

        pred = c.fm.predict(X, 5)
        ax = plots.plot_calibration(Y, pred)
        assert isinstance(ax.figure, Figure)
        fig, given = plots.new_figure()
        assert plots.plot_calibration(Y, pred, ax=given) is given
        tree = ast.parse(Path(plots.__file__).read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)
                 for a in n.names] + [n.module or "" for n in ast.walk(tree)
                                      if isinstance(n, ast.ImportFrom)]  # fmt: skip
        assert not any("pyplot" in name for name in names)
        calls = [n.func for n in ast.walk(tree) if isinstance(n, ast.Call)]
        assert not any(isinstance(f, ast.Attribute) and f.attr == "show" for f in calls)

    return [check]


def _lib_seed(c: Ctx) -> list[Callable[[], Any]]:
    def check() -> None:
        a = _est(random_state=3).fit(X, Y).predict(X, return_std=True)
        b = _est(random_state=3).fit(X, Y).predict(X, return_std=True)
        for u, v in zip(a, b, strict=True):
            np.testing.assert_array_equal(u, v)

    return [check]


LIB: dict[str, Callable[[Ctx], list[Callable[[], Any]]]] = {
    "X-nan": lambda c: [*_fits(_with(np.nan)), lambda: c.est.predict(_with(np.nan)),
                        lambda: c.fm.predict(_with(np.nan))],
    "X-posinf": lambda c: [*_fits(_with(np.inf)), lambda: c.fm.predict(_with(np.inf))],
    "X-neginf": lambda c: [*_fits(_with(-np.inf)), lambda: c.est.predict(_with(-np.inf))],
    "X-huge": lambda c: [*_fits(_with(1e308)), lambda: c.fm.predict(_with(1e308))],
    "X-subnormal": lambda c: _ok(_with(1e-310)),
    "X-0rows": lambda c: [*_fits(np.zeros((0, 2)), np.zeros(0)),
                          lambda: c.fm.predict(np.zeros((0, 2)))],
    "X-0cols": lambda c: _fits(np.zeros((20, 0))),
    "X-1row": lambda c: _ok(X[:1], Y[:1]),
    "X-1col": lambda c: _ok(X[:, :1]),
    "X-1d": lambda c: [*_fits(X[:, 0]), lambda: c.est.predict(X[0]), lambda: c.fm.predict(X[0])],
    "X-3d": lambda c: [*_fits(np.zeros((20, 2, 2))), lambda: c.fm.predict(np.zeros((20, 2, 2)))],
    "X-scalar": lambda c: [*_fits(3.0), lambda: c.est.predict(3.0)],
    "X-ragged": lambda c: _fits([[1.0, 2.0], [3.0]], [1.0, 2.0]),
    "X-list": lambda c: [*_ok(X.tolist()), lambda: np.testing.assert_array_equal(
        c.est.predict(X.tolist()), c.est.predict(X))],
    "X-dataframe": _lib_dataframe,
    "X-names": _lib_names,
    "X-string": lambda c: [*_fits(np.where(np.arange(40).reshape(20, 2) == 7, "a", X)
                                  .astype(object))],
    "X-numeric-string": lambda c: _ok(X.astype(str)),
    "X-object-dict": lambda c: _fits(np.array([[1.0, {"a": 1}]] * 20, dtype=object)),
    "X-complex": lambda c: [*_fits(X + 1j), lambda: c.est.predict(X + 1j)],
    "X-dtypes": _lib_dtypes,
    "X-readonly": _lib_readonly,
    "X-sparse": lambda c: [*_fits(sp.csr_matrix(X)), lambda: c.est.predict(sp.csr_matrix(X))],
    "X-sparse-torch": lambda c: [*_fits(torch.as_tensor(X).to_sparse()),
                                 lambda: c.fm.predict(torch.as_tensor(X).to_sparse())],
    "X-grad": lambda c: _ok(torch.as_tensor(X.T.copy()).requires_grad_(True).T),
    "X-cuda": _lib_cuda,
    "X-constant": lambda c: _ok(np.column_stack([X[:, 0], np.full(20, 7.0)]))
    + _ok(np.vstack([X, X]), np.concatenate([Y, Y])),
    "X-scale": lambda c: _ok(X * [1e6, 1e-6]),
    "X-features": lambda c: [lambda: c.est.predict(np.zeros((4, 3))),
                             lambda: c.fm.predict(np.zeros((4, 3)))],
    "y-nan": lambda c: _fits(X, np.where(np.arange(20) == 5, np.nan, Y)),
    "y-column": _lib_y_column,
    "y-multi": lambda c: _fits(X, np.column_stack([Y, Y])),
    "y-constant": lambda c: _ok(X, np.full(20, 3.0)),
    "y-length": lambda c: _fits(X, np.append(Y, 1.0)),
    "y-int-scale": lambda c: [*_ok(X, (Y * 10).astype(int)), *_ok(X, Y * 1e9),
                              *_ok(X, np.where(np.arange(20) == 4, 1e6, Y))],
    "y-string": lambda c: _fits(X, np.where(np.arange(20) == 2, "b", Y.astype(str))),
    "hp-prior-scale": lambda c: [*_fits(X, prior_scale=0.0), *_fits(X, prior_scale=-1.0)],
    "hp-init-rho": lambda c: [lambda rho=rho: _finite(
        _fn(X, kind="bbb", init_rho=rho).predict(X, 5).std) for rho in (-50.0, 100.0)],
    "hp-lr": lambda c: [*_fits(X, lr=0.0), *_fits(X, lr=-1.0)],
    "hp-lr-type": lambda c: _fits(X, lr="x"),
    "hp-epochs": lambda c: [lambda: _est(epochs=-1).fit(X, Y),
                            lambda: fit("mle", X, Y, epochs=-1)],
    "hp-epochs-float": lambda c: [lambda: _est(epochs=2.5).fit(X, Y),
                                  lambda: fit("mle", X, Y, epochs=2.5)],
    "hp-batch": lambda c: _fits(X, batch_size=0),
    "hp-batch-large": lambda c: [lambda: _finite(_est(batch_size=500).fit(X, Y).predict(X))],
    "hp-hidden": lambda c: [lambda: _est(hidden="12").fit(X, Y),
                            lambda: fit("mle", X, Y, hidden="12")],
    "hp-particles": lambda c: [lambda: _fn(X, num_particles=0)],
    "hp-kl-weight": lambda c: [lambda: ELBO(10, kl_weight=-1.0)],
    "hp-min-scale": lambda c: [lambda: _fn(X, min_scale=0.0)],
    "hp-kind": lambda c: [lambda: _est(model="gp").fit(X, Y), lambda: _fn(X, kind="gp")],
    "hp-enums": lambda c: [*_fits(X, kl="foo"), lambda: _fn(X, estimator="foo"),
                           lambda: _fn(X, kind="bbb", noise="loud")],
    "hp-random-state": lambda c: [lambda: _est(random_state="seed").fit(X, Y),
                                  lambda: _est(random_state=0.5).fit(X, Y)],
    "hp-samples-0": lambda c: [lambda: _est(num_samples=0).fit(X, Y),
                               lambda: c.fm.predict(X, 0)],
    "hp-samples-1": _lib_samples_1,
    "hp-generator": _lib_generator,
    "lc-not-fitted": lambda c: [lambda: _est().predict(X), lambda: _est().sample_y(X),
                                lambda: _est().save(c.tmp / "m")],
    "lc-refit": _lib_refit,
    "lc-nan-loss": lambda c: [lambda: _train_with_nan("raise"),
                              lambda: fit("bbb", X, Y, epochs=20, lr=1e6, generator=_g())],
    "lc-nan-skip": _lib_nan_skip,
    "lc-warm-start": lambda c: [lambda: _finite(
        _est().fit(X, Y).fit(X[:, :1], Y).predict(X[:, :1]))],
    "num-scale-floor": _lib_scale_floor,
    "num-scale-inf": lambda c: [lambda: _finite(_scale_at(c, 1e30))],
    "num-rho": _lib_rho,
    "num-kl-zero": lambda c: [lambda: _assert_zero(
        GaussianPrior(0.5, 2.0).kl(torch.full((3,), 0.5), torch.full((3,), 2.0)))],
    "num-zero-grad": _lib_zero_grad,
    "num-mean-mode": _lib_mean_mode,
    "met-std": lambda c: [lambda: metrics.gaussian_nll(Y, Y, np.zeros(20)),
                          lambda: metrics.crps_gaussian(Y, Y, -np.ones(20))],
    "met-nan": lambda c: [lambda: metrics.rmse(Y, np.where(np.arange(20) == 1, np.nan, Y))],
    "met-shape": lambda c: [lambda: metrics.rmse(Y, Y[:5]),
                            lambda: metrics.gaussian_nll(Y, Y, np.ones(19))],
    "met-empty": lambda c: [lambda: metrics.rmse([], [])],
    "met-single": lambda c: [lambda: _finite(metrics.gaussian_nll([1.0], [0.0], [1.0]),
                                             metrics.crps_gaussian([1.0], [0.0], [1.0]))],
    "met-level": lambda c: [lambda: metrics.evaluate(Y, c.fm.predict(X, 5), level=1.5),
                            lambda: metrics.evaluate(Y, c.fm.predict(X, 5), level=0.0)],
    "met-bins": lambda c: [lambda: metrics.calibration_error(Y, c.fm.predict(X, 5), num_levels=0),
                           lambda: plots.plot_calibration(Y, c.fm.predict(X, 5), num_levels=0)],
    "plot-ax": _lib_plot,
    **{k: _lib_checkpoint(k) for k in CHECKPOINT_EDITS},
    "ck-killed": _lib_killed,
    "cli-missing": lambda c: [lambda: read_csv(c.tmp / "missing.csv", target="y")],
    "cli-dir": lambda c: [lambda: read_csv(c.tmp, target="y")],
    "cli-empty": lambda c: [lambda: read_csv(c.csv(""), target="y")],
    "cli-header": lambda c: [lambda: read_csv(c.csv("a,b,y\n"), target="y")],
    "cli-no-header": lambda c: [lambda: read_csv(c.csv("1,2,3\n4,5,6\n"), target="y")],
    "cli-delimiter": lambda c: [lambda: read_csv(c.csv("a;b;y\n1;2;3\n"), target="y")],
    "cli-missing-cell": lambda c: [lambda: read_csv(c.csv("a,b,y\n1,,3\n"), target="y")],
    "cli-text-column": lambda c: [lambda: read_csv(c.csv("a,id,y\n1,x,3\n"), target="y")],
    "cli-target": lambda c: [lambda: read_csv(c.csv(GOOD_CSV), target="zz")],
    "cli-unwritable": lambda c: [lambda: io.save(c.fm, c.csv("x", "f.txt") / "sub" / "m")],
    "cli-force": lambda c: [lambda: io.save(c.fm, c.saved())],
    "cli-not-model": lambda c: [lambda: io.save(c.fm, c.csv("x", "notes.txt").parent,
                                                force=True)],
    "cli-seed": _lib_seed,
}  # fmt: skip


def _scale_at(c: Ctx, value: float) -> torch.Tensor:
    """The predicted noise scale of a hetero model whose raw noise output is ``value``."""
    model = build_model(c.fm.config, _g())
    with torch.no_grad():
        model.noise_net[-1].weight.zero_()
        model.noise_net[-1].bias.fill_(value)
    scale = model(torch.as_tensor(X, dtype=torch.float32), 2, generator=_g()).scale
    _finite(scale)
    return scale


def _assert_zero(t: torch.Tensor) -> None:
    assert (t == 0).all()


# --------------------------------------------------------------------------- CLI runs


def _cli_seed(c: Ctx) -> tuple[int, str, str]:
    data = c.csv(GOOD_CSV)
    for name in ("m1", "m2"):
        code, _, err = c.run("fit", data, "--target", "y", "--epochs", 3, "--hidden", 4,
                             "--seed", 3, "--out", c.tmp / name)  # fmt: skip
        assert code == 0, err
    for f in (io.WEIGHTS_FILE, io.CONFIG_FILE):
        assert (c.tmp / "m1" / f).read_bytes() == (c.tmp / "m2" / f).read_bytes(), f
    outs = []
    for name in ("p1.csv", "p2.csv"):
        assert c.run("predict", c.tmp / "m1", data, "--seed", 4, "--samples", 20,
                     "--out", c.tmp / name)[0] == 0  # fmt: skip
        code, out, err = c.run("evaluate", c.tmp / "m1", data, "--seed", 4, "--json")
        outs.append(out)
    assert (c.tmp / "p1.csv").read_bytes() == (c.tmp / "p2.csv").read_bytes()
    assert outs[0] == outs[1] and json.loads(outs[0])["rmse"] > 0
    return code, out, err


def _cli_debug(c: Ctx) -> tuple[int, str, str]:
    argv = ("fit", c.tmp / "none.csv", "--target", "y", "--out", c.tmp / "m")
    with pytest.raises(FileNotFoundError, match="CSV file not found"):  # --debug: the traceback
        main([str(a) for a in ("--debug", *argv)])
    return c.run(*argv)


def _cli_not_fitted(c: Ctx) -> tuple[int, str, str]:
    return c.run("predict", c.tmp / "nomodel", c.csv(GOOD_CSV), "--out", c.tmp / "p.csv")


def _cli_text_column(c: Ctx) -> tuple[int, str, str]:
    rows = enumerate(zip(X[:, 0], Y, strict=True))
    text = "a,id,y\n" + "".join(f"{float(p)!r},row{i},{float(r)!r}\n" for i, (p, r) in rows)
    code, out, err = _fit_csv(c, text)
    assert "ignoring non-numeric column(s) ['id']" in err
    assert io.load(c.tmp / "m").feature_names == ["a"]
    return code, out, "the text column is ignored, with a note"


def _cli_checkpoint(key: str) -> Callable[[Ctx], tuple[int, str, str]]:
    def run(c: Ctx) -> tuple[int, str, str]:
        model = CHECKPOINT_EDITS[key](c, _copy_model(c))
        return _predict_csv(c, GOOD_CSV, model)

    return run


def _cli_force(c: Ctx) -> tuple[int, str, str]:
    out = c.csv("keep me", "p.csv")
    code, _, err = c.run("predict", c.model, c.csv(GOOD_CSV), "--out", out)
    assert out.read_text() == "keep me"
    assert _fit_flags(c)[0] == 0
    before = (c.tmp / "m" / io.WEIGHTS_FILE).read_bytes()
    code2, _, err2 = _fit_flags(c, "--seed", 5)
    assert code2 == 2 and "--force" in err2
    assert (c.tmp / "m" / io.WEIGHTS_FILE).read_bytes() == before
    assert _fit_flags(c, "--seed", 5, "--force")[0] == 0
    return code, "", err


def _ok_run(result: tuple[int, str, str], note: str) -> tuple[int, str, str]:
    assert result[0] == 0, result[2]
    return 0, result[1], note


def _cli_samples_1(c: Ctx) -> tuple[int, str, str]:
    result = c.run("predict", c.model, c.csv(GOOD_CSV), "--samples", 1, "--out", c.tmp / "p.csv")
    std = read_csv(c.tmp / "p.csv", target="std", features=["a"]).y
    assert np.isfinite(std).all() and (std > 0).all()
    return _ok_run(result, "finite std")


ROWS = _rows(X[1:], Y[1:])
CLI: dict[str, Callable[[Ctx], tuple[int, str, str]]] = {
    "X-nan": lambda c: _fit_csv(c, "a,b,y\nnan,1,2\n" + ROWS),
    "X-posinf": lambda c: _fit_csv(c, "a,b,y\ninf,1,2\n" + ROWS),
    "X-neginf": lambda c: _predict_csv(c, "a,b\n-inf,1\n"),
    "X-huge": lambda c: _fit_csv(c, "a,b,y\n1e308,1,2\n" + ROWS),
    "X-subnormal": lambda c: _ok_run(_fit_csv(c, "a,b,y\n1e-310,1,2\n" + ROWS),
                                     "finite predictions"),
    "X-0rows": lambda c: _fit_csv(c, "a,b,y\n"),
    "X-0cols": lambda c: _fit_csv(c, "y\n1\n2\n"),
    "X-1row": lambda c: _fit_csv(c, "a,b,y\n1,2,3\n"),
    "X-1col": lambda c: _ok_run(_fit_csv(c, GOOD_CSV, "--features", "a"), "trains"),
    "X-ragged": lambda c: _fit_csv(c, "a,b,y\n1,2\n" + ROWS),
    "X-names": lambda c: _predict_csv(c, "a,c\n1,2\n"),
    "X-string": lambda c: _fit_csv(c, "a,b,y\n1,two,3\n" + ROWS, "--features", "a,b"),
    "X-constant": lambda c: _ok_run(_fit_csv(c, "a,b,y\n" + "1,2,3\n1,2,4\n" * 3), "trains"),
    "X-features": lambda c: _predict_csv(c, "a\n1\n"),
    "y-nan": lambda c: _fit_csv(c, "a,b,y\n1,2,inf\n" + ROWS),
    "y-string": lambda c: _fit_csv(c, "a,b,y\n1,2,three\n" + ROWS),
    "hp-lr": lambda c: _fit_flags(c, "--lr", 0),
    "hp-lr-type": lambda c: _fit_flags(c, "--lr", "x"),
    "hp-epochs": lambda c: _fit_flags(c, "--epochs", -3),
    "hp-epochs-float": lambda c: _fit_flags(c, "--epochs", 2.5),
    "hp-batch": lambda c: _fit_flags(c, "--batch-size", 0),
    "hp-batch-large": lambda c: _ok_run(_fit_flags(c, "--batch-size", 1000), "trains"),
    "hp-hidden": lambda c: _fit_flags(c, "--hidden", "5,x"),
    "hp-kind": lambda c: _fit_flags(c, "--model", "gp"),
    "hp-enums": lambda c: _fit_flags(c, "--model", "bbb", "--noise", "loud"),
    "hp-random-state": lambda c: _fit_flags(c, "--seed", "x"),
    "hp-samples-0": lambda c: c.run("predict", c.model, c.csv(GOOD_CSV), "--samples", 0,
                                    "--out", c.tmp / "p.csv"),
    "hp-samples-1": _cli_samples_1,
    "lc-not-fitted": _cli_not_fitted,
    "lc-nan-loss": lambda c: c.run("fit", "--model", "bbb", "--lr", "1e6", "--epochs", 20,
                                   "--out", c.tmp / "m"),
    "lc-nan-skip": lambda c: c.run("fit", "--model", "bbb", "--lr", "1e6", "--epochs", 20,
                                   "--nonfinite", "skip", "--out", c.tmp / "m"),
    "met-level": lambda c: c.run("evaluate", c.model, c.csv(GOOD_CSV), "--level", 1.5),
    **{k: _cli_checkpoint(k) for k in CHECKPOINT_EDITS},
    "cli-missing": lambda c: c.run("fit", c.tmp / "missing.csv", "--target", "y",
                                   "--out", c.tmp / "m"),
    "cli-dir": lambda c: c.run("evaluate", c.model, c.tmp),
    "cli-empty": lambda c: _fit_csv(c, ""),
    "cli-header": lambda c: _predict_csv(c, "a,b\n"),
    "cli-no-header": lambda c: _fit_csv(c, "1,2,3\n4,5,6\n"),
    "cli-delimiter": lambda c: _fit_csv(c, "a;b;y\n1;2;3\n4;5;6\n"),
    "cli-missing-cell": lambda c: _fit_csv(c, "a,b,y\n1,,3\n" + ROWS),
    "cli-text-column": _cli_text_column,
    "cli-target": lambda c: c.run("fit", c.csv(GOOD_CSV), "--target", "zz", "--out", c.tmp / "m"),
    "cli-unwritable": lambda c: c.run("predict", c.model, c.csv(GOOD_CSV),
                                      "--out", c.csv("x", "f.txt") / "p.csv"),
    "cli-force": _cli_force,
    "cli-not-model": lambda c: c.run("fit", "--epochs", 2, "--out", c.csv("x", "f.txt")),
    "cli-seed": lambda c: _ok_run(_cli_seed(c), "byte-identical model files, predictions and "
                                  "scores"),
    "cli-debug": _cli_debug,
}  # fmt: skip


# --------------------------------------------------------------------------- killed saves


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


# --------------------------------------------------------------------------- the tests


def test_docs_table_matches_cases() -> None:
    text = DOC.read_text()
    assert render_table() in text, (
        "docs/bad-inputs.md is out of date: regenerate its table with "
        "`python tests/bad_inputs/test_bad_inputs.py`"
    )
    first_table = text[: text.index("## Round two")]  # round two has its own drift check
    rows = [line for line in first_table.splitlines() if line.startswith("| `")]
    assert len(rows) == len(CASES)


def test_every_case_is_exercised() -> None:
    ids = [c[0] for c in CASES]
    assert len(set(ids)) == len(ids)
    assert set(LIB) == {i for i, _, lib, _ in CASES if lib != "n/a"}
    assert set(CLI) == {i for i, _, _, cli in CASES if cli != "n/a"}
    for _, _, lib, cli in CASES:
        kind, excerpt = _answer(lib)
        assert kind in ("n/a", "accepted") or (kind in ERRORS and excerpt)
        code, excerpt = _answer(cli)
        assert code == "n/a" or code == "0" or (code in ("1", "2") and excerpt)


@pytest.mark.parametrize("case", [c for c in CASES if c[2] != "n/a"], ids=lambda c: c[0])
def test_library(case: tuple[str, str, str, str], ctx: Ctx) -> None:
    kind, excerpt = _answer(case[2])
    calls = LIB[case[0]](ctx)
    assert calls
    for call in calls:
        if kind == "accepted":
            call()
            continue
        with pytest.raises(ERRORS[kind]) as info:
            call()
        assert excerpt is not None and excerpt.lower() in str(info.value).lower()


@pytest.mark.parametrize("case", [c for c in CASES if c[3] != "n/a"], ids=lambda c: c[0])
def test_cli(case: tuple[str, str, str, str], ctx: Ctx) -> None:
    code, excerpt = _answer(case[3])
    got, _, err = CLI[case[0]](ctx)
    assert got == int(code), err
    assert "Traceback" not in err
    if got != 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("varbayes: error: ")
        assert excerpt is not None and excerpt in lines[0]
        if case[0] != "cli-force":  # nothing (half-)written at the output paths, no temp files
            assert not (ctx.tmp / "m").exists() and not (ctx.tmp / "p.csv").exists()
            assert not [f.name for f in ctx.tmp.iterdir() if f.name.startswith(".")]


if __name__ == "__main__":  # print the table of docs/bad-inputs.md
    print(render_table())
