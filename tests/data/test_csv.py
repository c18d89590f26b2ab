"""Reading and writing CSV files (``varbayes.data.csv``): ``read_csv`` and ``write_csv``."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from varbayes.data import read_csv, write_csv


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_read_csv_basic(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.csv", "a,b,y\n1,2,3\n4.5, 5e1 ,-6\n\n7,8,9\n")
    t = read_csv(p, target="y")
    np.testing.assert_array_equal(t.x, [[1, 2], [4.5, 50], [7, 8]])
    np.testing.assert_array_equal(t.y, [3, -6, 9])
    assert t.feature_names == ["a", "b"] and t.target_name == "y" and t.path == p
    assert t.x.dtype == np.float64 and t.x.flags.c_contiguous


def test_read_csv_without_target_and_with_features(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.csv", "id,a,b,y\nx1,1,2,3\nx2,4,5,6\n")
    t = read_csv(p, target="y", features=["b", "a"])  # 'id' is not numeric but unused
    np.testing.assert_array_equal(t.x, [[2, 1], [5, 4]])
    assert t.feature_names == ["b", "a"]
    t2 = read_csv(p, features=["a"])
    assert t2.y is None and t2.target_name is None
    with pytest.raises(ValueError, match=r"row 2, column 'id': value 'x1' is not a number"):
        read_csv(p)


def test_read_csv_bom_and_quotes(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_bytes('\ufeff"a","b, c"\n"1","2"\n'.encode())
    t = read_csv(p, target="b, c")
    assert t.feature_names == ["a"] and t.y is not None and t.y[0] == 2.0


def test_read_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"CSV file not found: .*nope\.csv"):
        read_csv(tmp_path / "nope.csv")


def test_read_csv_directory(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="is a directory"):
        read_csv(tmp_path)


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_read_csv_empty(tmp_path: Path, text: str) -> None:
    p = _write(tmp_path / "e.csv", text)
    with pytest.raises(ValueError, match=r"e\.csv is empty; expected a header row"):
        read_csv(p)


def test_read_csv_header_only(tmp_path: Path) -> None:
    p = _write(tmp_path / "h.csv", "a,b,y\n")
    with pytest.raises(ValueError, match="has a header row but no data rows"):
        read_csv(p, target="y")


def test_read_csv_no_header(tmp_path: Path) -> None:
    p = _write(tmp_path / "n.csv", "1,2.5,-3e2\n4,5,6\n")
    with pytest.raises(ValueError, match=r"looks like data.*a header row naming the columns"):
        read_csv(p)


def test_read_csv_duplicate_columns(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.csv", "a,b,a\n1,2,3\n")
    with pytest.raises(ValueError, match=r"duplicate column name 'a' \(columns 1 and 3\)"):
        read_csv(p)


def test_read_csv_empty_header_name(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.csv", "a,,y\n1,2,3\n")
    with pytest.raises(ValueError, match=r"column 2 of the header row \(row 1\) has no name"):
        read_csv(p)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [(f"m{i}.csv", f"a,b,y\n1,2,3\n4,{cell},6\n", rf"m{i}\.csv, row 3, column 'b': missing value")
     for i, cell in enumerate(["", "NA", " n/a ", "?"])]
    + [("m.csv", "a,y\n1,2\n3,\n", r"row 3, column 'y': missing value"),
       ("s.csv", "a,b,y\n1,2,3\n4,abc,6\n", r"row 3, column 'b': value 'abc' is not a number")]
    + [("f.csv", f"a,y\n1,2\n{cell},3\n", rf"row 3, column 'a': value '{cell}' is not finite")
       for cell in ["nan", "inf", "-Infinity", "NaN"]],
)
def test_read_csv_bad_cell_named(tmp_path: Path, name: str, text: str, message: str) -> None:
    """A missing, non-numeric or non-finite cell is named by file, row and column."""
    p = _write(tmp_path / name, text)
    with pytest.raises(ValueError, match=message):
        read_csv(p, target="y")


def test_read_csv_unknown_columns(tmp_path: Path) -> None:
    p = _write(tmp_path / "u.csv", "a,b\n1,2\n")
    with pytest.raises(
        ValueError, match=r"unknown target column 'z'; available columns: \['a', 'b'\]"
    ):
        read_csv(p, target="z")
    with pytest.raises(ValueError, match=r"unknown feature column 'c'; available columns"):
        read_csv(p, target="b", features=["a", "c"])


def test_read_csv_bad_feature_selections(tmp_path: Path) -> None:
    p = _write(tmp_path / "u.csv", "a,b\n1,2\n")
    with pytest.raises(TypeError, match="features must be a list of column names, not the str"):
        read_csv(p, features="a")
    with pytest.raises(ValueError, match="cannot be both the target and a feature"):
        read_csv(p, target="a", features=["a", "b"])
    with pytest.raises(ValueError, match="more than once"):
        read_csv(p, features=["a", "a"])
    with pytest.raises(ValueError, match="no feature columns"):
        read_csv(p, target="a", features=[])
    q = _write(tmp_path / "one.csv", "y\n1\n2\n")
    with pytest.raises(ValueError, match="no feature columns"):
        read_csv(q, target="y")


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_read_csv_wrong_delimiter(tmp_path: Path, sep: str) -> None:
    p = _write(tmp_path / "w.csv", f"a{sep}b{sep}y\n1{sep}2{sep}3\n")
    with pytest.raises(ValueError, match=re.escape(f"seems to use {sep!r} as delimiter")):
        read_csv(p, target="y")
    t = read_csv(p, target="y", delimiter=sep)
    np.testing.assert_array_equal(t.x, [[1, 2]])


def test_read_csv_ragged_rows(tmp_path: Path) -> None:
    p = _write(tmp_path / "r.csv", "a,b,y\n1,2,3\n4,5\n")
    with pytest.raises(ValueError, match=r"r\.csv, row 3: 2 cells but the header has 3 columns"):
        read_csv(p, target="y")
    q = _write(tmp_path / "r2.csv", "a,b,y\n1,2,3\n\n4,5,6,7\n")  # blank line counts as a row
    with pytest.raises(ValueError, match=r"row 4: 4 cells"):
        read_csv(q, target="y")


def test_read_csv_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_bytes(b"a,b\n1,\xff\xfe\n")
    with pytest.raises(ValueError, match="not a UTF-8 text file"):
        read_csv(p)


def test_write_csv_round_trip_full_precision(tmp_path: Path) -> None:
    vals = np.array([0.1 + 0.2, math.pi, 1e-300, -2.5e17, 5e-324])
    p = write_csv(tmp_path / "o.csv", {"x": vals, "n": np.arange(5), "m, y": vals[:, None] * 3})
    assert p == tmp_path / "o.csv"
    t = read_csv(p, target="m, y", features=["x", "n"])
    assert np.array_equal(t.x[:, 0], vals)
    assert np.array_equal(t.x[:, 1], np.arange(5.0))
    assert np.array_equal(t.y, vals * 3)
    assert p.read_text().splitlines()[0] == 'x,n,"m, y"'
    assert sorted(os.listdir(tmp_path)) == ["o.csv"]  # no temp file left


def test_write_csv_overwrites_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write_csv(tmp_path / "o.csv", {"a": np.array([1.0])})
    write_csv(p, {"b": np.array([2.0, 3.0])})
    assert p.read_text() == "b\n2.0\n3.0\n"

    def boom(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_csv(p, {"c": np.array([9.0])})
    assert p.read_text() == "b\n2.0\n3.0\n"  # untouched
    assert sorted(os.listdir(tmp_path)) == ["o.csv"]


def test_write_csv_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one column"):
        write_csv(tmp_path / "o.csv", {})
    with pytest.raises(ValueError, match=r"different lengths: \{'a': 2, 'b': 3\}"):
        write_csv(tmp_path / "o.csv", {"a": np.zeros(2), "b": np.zeros(3)})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_csv(tmp_path / "missing" / "o.csv", {"a": np.zeros(2)})
    with pytest.raises(IsADirectoryError, match="is a directory"):
        write_csv(tmp_path, {"a": np.zeros(2)})
    with pytest.raises(ValueError, match=r"column 'a' must be 1-D, got shape \(2, 2\)"):
        write_csv(tmp_path / "o.csv", {"a": np.zeros((2, 2))})
    with pytest.raises(TypeError, match="column 'a' must be numeric or text"):
        write_csv(tmp_path / "o.csv", {"a": np.array([1 + 2j, 3j])})
    assert not (tmp_path / "o.csv").exists()
    write_csv(tmp_path / "t.csv", {"id": np.array(["x", "y"], dtype=object), "v": [1.5, 2.0]})
    assert (tmp_path / "t.csv").read_text().splitlines() == ["id,v", "x,1.5", "y,2.0"]
