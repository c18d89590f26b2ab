"""CSV input, round two (issue 13, items 6, 10, 12, 13, 15): read once, strict, normalised names.

Each test failed on 0.1.0. The readers share one parser (``varbayes.data.csv``), so most checks run
against both :func:`read_csv` and the streaming :class:`CSVChunkReader` of ``predict``.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from varbayes.cli import main
from varbayes.data import read_csv
from varbayes.data.csvstream import CSVChunkReader

ROOT = Path(__file__).resolve().parents[2]
ROWS = "".join(f"{i % 7 - 3},{(i * 5) % 11 / 4},{i % 5 + 0.5 * i}\n" for i in range(20))
GOOD = "a,b,y\n" + ROWS
FIT = ["--target", "y", "--epochs", "2", "--hidden", "4", "--samples", "5"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _stream_read(path: Path, features: list[str]) -> np.ndarray:
    with CSVChunkReader(path, features, chunk_rows=4) as reader:
        return np.concatenate([x for x, _ in reader.chunks()])


READERS: dict[str, Callable[[Path, list[str]], Any]] = {
    "read_csv": lambda p, f: read_csv(p, features=f).x,
    "stream": _stream_read,
}


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("varbayes: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _subprocess(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.run([sys.executable, "-m", "varbayes", *argv], capture_output=True,
                          text=True, env=env, cwd=ROOT, **kw)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("csvmodel")
    data = _write(root / "d.csv", GOOD)
    assert main(["fit", str(data), *FIT, "--out", str(root / "m")]) == 0
    return root / "m"


# --------------------------------------------------------------------------- item 6: read once


def test_fit_reads_a_fifo_once(tmp_path: Path) -> None:
    """0.1.0 read a FIFO to sniff the numeric columns, then waited forever to read it again."""
    fifo = tmp_path / "data.csv"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w", encoding="utf-8") as fh:  # blocks until fit opens the FIFO
            fh.write("a,b,y,id\n" + "".join(f"{r.strip()},r{i}\n"
                                             for i, r in enumerate(ROWS.splitlines())))

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        done = _subprocess(["fit", str(fifo), *FIT, "--out", str(tmp_path / "m")], timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("fit hung on a FIFO (it reads its input more than once)")
    finally:
        if writer.is_alive():  # fit never opened the FIFO: release the writer
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(5)
    assert done.returncode == 0, done.stderr
    assert "ignoring non-numeric column(s) ['id']" in done.stderr
    assert (tmp_path / "m" / "config.json").is_file()


@pytest.mark.parametrize("name", ["-", "/dev/stdin"])
def test_fit_reads_standard_input(tmp_path: Path, name: str) -> None:
    """0.1.0: ``/dev/stdin`` was "empty" on the second read and ``-`` was "not found"."""
    if name == "/dev/stdin" and not Path(name).exists():
        pytest.skip("no /dev/stdin")
    done = _subprocess(["fit", name, *FIT, "--out", str(tmp_path / "m")], input=GOOD,
                       timeout=120)
    assert done.returncode == 0, done.stderr
    assert "trained hetero on 20 rows x 2 features" in done.stdout


def test_predict_and_evaluate_read_dash_as_stdin(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(GOOD.encode())))
    code, _, err = _run(capsys, "predict", model, "-", "--out", tmp_path / "p.csv")
    assert code == 0, err
    assert read_csv(tmp_path / "p.csv", target="mean").x.shape == (20, 9)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(GOOD.encode())))
    code, out, err = _run(capsys, "evaluate", model, "-", "--json")
    assert code == 0, err
    assert '"n": 20' in out
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a,b\n1,1e400\n")))
    code, _, err = _run(capsys, "predict", model, "-", "--out", tmp_path / "q.csv")
    assert code == 2
    assert "<stdin>, row 2, column 'b': value '1e400' is out of range" in _one_error_line(err)


# --------------------------------------------------------------------------- item 10: clash


@pytest.mark.parametrize("name", [" mean", "std ", "\tlower", "me\u0301dian"])
def test_predict_output_clash_is_checked_on_normalised_names(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """0.1.0 wrote ``' mean'`` and ``mean`` side by side, a file varbayes then refused to read."""
    data = _write(tmp_path / "in.csv", f"a,b,{name}\n1,2,3\n4,5,6\n")
    code, _, err = _run(capsys, "predict", model, data, "--out", tmp_path / "p.csv")
    if name == "me\u0301dian":  # NFD of "médian" is not "median": no clash, output readable
        assert code == 0, err
        assert "médian" in read_csv(tmp_path / "p.csv", target="mean").feature_names
        return
    assert code == 2
    line = _one_error_line(err)
    assert f"already has column(s) ['{name.strip()}']; rename them first" in line
    assert not (tmp_path / "p.csv").exists()


def test_predict_output_header_is_normalised_and_reads_back(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write(tmp_path / "in.csv", " a , b ,note\n1,2,x\n4,5,y\n")
    code, _, err = _run(capsys, "predict", model, data, "--out", tmp_path / "p.csv")
    assert code == 0, err
    header = (tmp_path / "p.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["a", "b", "note"] and "mean" in header
    assert read_csv(tmp_path / "p.csv", target="mean", features=["a", "b"]).x.shape == (2, 2)


# --------------------------------------------------------------------------- item 12: numbers


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("cell", ["1_00", "\uff11\uff12", "\u0663", "1e5\u2070", "0x10", "1e",
                                  "--1", "1.2.3", "1 000", "\u00b2"])
def test_only_ascii_decimal_numbers_are_numbers(tmp_path: Path, reader: str, cell: str) -> None:
    """0.1.0 read ``1_00`` as 100 and full-width or Arabic-Indic digits as numbers."""
    p = _write(tmp_path / "n.csv", f"a,b\n1,2\n3,{cell}\n")
    with pytest.raises(ValueError, match=r"n\.csv, row 3, column 'b': value .* is not a number"):
        READERS[reader](p, ["a", "b"])


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("cell", ["1e400", "-1e400", "2e308", "1" + "0" * 400])
def test_overflow_is_out_of_range_not_infinity(tmp_path: Path, reader: str, cell: str) -> None:
    """0.1.0 reported ``1e400`` as "not finite (NaN or infinity)"."""
    p = _write(tmp_path / "o.csv", f"a,b\n1,2\n3,{cell}\n")
    with pytest.raises(ValueError) as info:
        READERS[reader](p, ["a", "b"])
    assert f"o.csv, row 3, column 'b': value {cell!r} is out of range" in str(info.value)
    assert "NaN" not in str(info.value)


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("cell", ["nan", "-Infinity", "+inf", "NaN"])
def test_nan_and_inf_spellings_are_non_finite(tmp_path: Path, reader: str, cell: str) -> None:
    p = _write(tmp_path / "f.csv", f"a,b\n1,2\n3,{cell}\n")
    with pytest.raises(ValueError, match=rf"row 3, column 'b': value '\{cell}' is not finite"
                       if cell[0] == "+" else rf"row 3, column 'b': value '{cell}' is not finite"):
        READERS[reader](p, ["a", "b"])


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("text", ['a,b\n1,2\n3,"4\n', 'a,b\n1,2\n3,"4\n5,6\n7,8\n',
                                  'a,b\n1,2\n3,"4"5\n'])
def test_bad_quoting_is_an_error_naming_the_row(tmp_path: Path, reader: str, text: str) -> None:
    """0.1.0 accepted an unterminated quote (swallowing the rest of the file into one cell)."""
    p = _write(tmp_path / "q.csv", text)
    with pytest.raises(ValueError, match=r"q\.csv, row 3: .*(never closed|not a valid CSV)"):
        READERS[reader](p, ["a", "b"])


def test_plain_numbers_still_read(tmp_path: Path) -> None:
    cells = ["1", "-2.5", "+.5", "3.", "1e-3", "-1E+2", " 7 ", "1e-400", "0001"]
    p = _write(tmp_path / "ok.csv", "a\n" + "\n".join(cells) + "\n")
    want = [1, -2.5, 0.5, 3, 1e-3, -100, 7, 0, 1]
    for read in READERS.values():
        np.testing.assert_array_equal(read(p, ["a"])[:, 0], want)


# --------------------------------------------------------------------------- item 13: NFC names

NFC, NFD = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")


@pytest.mark.parametrize(("in_file", "asked"), [(NFD, NFC), (NFC, NFD)])
def test_column_names_are_compared_in_nfc(tmp_path: Path, in_file: str, asked: str) -> None:
    """0.1.0: "unknown feature column 'café'; available columns: ['café']"."""
    p = _write(tmp_path / "u.csv", f"{in_file},y\n1,2\n3,4\n")
    table = read_csv(p, target="y", features=[asked])
    assert table.feature_names == [NFC]
    assert read_csv(p, target=asked).target_name == NFC
    np.testing.assert_array_equal(_stream_read(p, [asked])[:, 0], [1, 3])


def test_nfc_and_nfd_of_one_name_are_duplicates(tmp_path: Path) -> None:
    p = _write(tmp_path / "u.csv", f"{NFC},{NFD}\n1,2\n")
    with pytest.raises(ValueError, match=r"duplicate column name 'café' \(columns 1 and 2\)"):
        read_csv(p)


def test_fit_and_predict_match_names_in_nfc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write(tmp_path / "d.csv", GOOD.replace("a,b,y", f"{NFD},b,y"))
    code, _, err = _run(capsys, "fit", data, "--target", "y", "--features", f"{NFC},b",
                        "--epochs", 2, "--hidden", 4, "--samples", 5, "--out", tmp_path / "m")
    assert code == 0, err
    code, _, err = _run(capsys, "predict", tmp_path / "m", _write(tmp_path / "x.csv",
                        f"{NFC},b\n1,2\n"), "--out", tmp_path / "p.csv")  # fmt: skip
    assert code == 0, err


# --------------------------------------------------------------------------- item 15: header


@pytest.mark.parametrize("reader", list(READERS))
def test_trailing_comma_in_header_is_one_clear_error(tmp_path: Path, reader: str) -> None:
    """0.1.0's fit printed "ignoring column ''", then failed on "column 3 has no name"."""
    p = _write(tmp_path / "t.csv", "a,b,\n1,2,\n3,4,\n")
    with pytest.raises(ValueError, match=r"t\.csv: column 3 of the header row \(row 1\) has no "
                                         r"name; the header row ends with a trailing ','"):
        READERS[reader](p, ["a", "b"])


def test_fit_trailing_comma_in_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write(tmp_path / "d.csv", "a,b,y,\n" + ROWS.replace("\n", ",\n"))
    code, _, err = _run(capsys, "fit", data, *FIT, "--out", tmp_path / "m")
    assert code == 2
    line = _one_error_line(err)  # no "note: ignoring column ''" before it
    assert "d.csv: column 4 of the header row (row 1) has no name" in line
    assert "trailing ','" in line
