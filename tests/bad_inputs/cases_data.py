"""Bad inputs of the data: features ``X`` and targets ``y`` (rows ``X-*`` and ``y-*``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from cases_common import (
    GOOD_CSV,
    ROWS,
    CliRun,
    Ctx,
    LibCalls,
    X,
    Y,
    _est,
    _finite,
    _fit_csv,
    _fits,
    _fn,
    _g,
    _ok,
    _ok_run,
    _predict_csv,
)
from sklearn.exceptions import DataConversionWarning

#: id, input, library answer, CLI answer (see ``test_bad_inputs.py``).
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
]  # fmt: skip


def _with(value: float, where: tuple[int, int] = (3, 1)) -> np.ndarray:
    bad = X.copy()
    bad[where] = value
    return bad


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


def _lib_cuda(c: Ctx) -> list[Callable[[], Any]]:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    xc = torch.as_tensor(X, device="cuda")
    return [lambda: _finite(c.fm.predict(xc, 5).mean), lambda: _finite(c.est.predict(xc))]


LIB: dict[str, LibCalls] = {
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
}  # fmt: skip


CLI: dict[str, CliRun] = {
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
}  # fmt: skip
