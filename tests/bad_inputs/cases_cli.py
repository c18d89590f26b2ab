"""Bad files and command lines, shared by the CLI and the functions behind it (rows ``cli-*``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from cases_common import (
    GOOD_CSV,
    ROWS,
    CliRun,
    Ctx,
    LibCalls,
    X,
    Y,
    _est,
    _fit_csv,
    _fit_flags,
    _ok_run,
    _predict_csv,
)

from varbayes import io
from varbayes.cli import main
from varbayes.data import read_csv

#: id, input, library answer, CLI answer (see ``test_bad_inputs.py``).
CASES: list[tuple[str, str, str, str]] = [
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


def _lib_seed(c: Ctx) -> list[Callable[[], Any]]:
    def check() -> None:
        a = _est(random_state=3).fit(X, Y).predict(X, return_std=True)
        b = _est(random_state=3).fit(X, Y).predict(X, return_std=True)
        for u, v in zip(a, b, strict=True):
            np.testing.assert_array_equal(u, v)

    return [check]


LIB: dict[str, LibCalls] = {
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


def _cli_text_column(c: Ctx) -> tuple[int, str, str]:
    rows = enumerate(zip(X[:, 0], Y, strict=True))
    text = "a,id,y\n" + "".join(f"{float(p)!r},row{i},{float(r)!r}\n" for i, (p, r) in rows)
    code, out, err = _fit_csv(c, text)
    assert "ignoring non-numeric column(s) ['id']" in err
    assert io.load(c.tmp / "m").feature_names == ["a"]
    return code, out, "the text column is ignored, with a note"


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


CLI: dict[str, CliRun] = {
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
