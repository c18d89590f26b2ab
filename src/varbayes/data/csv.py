"""Reading numeric CSV files: the one parser behind :func:`varbayes.data.read_csv`.

Every CSV reader of varbayes (:func:`read_csv`, the streaming
:class:`varbayes.data.csvstream.CSVChunkReader` and the ``fit`` command) goes through the functions
here, so they accept and refuse the same inputs with the same messages:

* :func:`open_text` opens a path (or takes an open text stream such as standard input) *once*;
  nothing is read twice, so FIFOs and pipes work.
* :func:`numbered_rows` splits it into rows with the :mod:`csv` module in strict mode (an
  unterminated quote or text after a closing quote is an error naming the row).
* :func:`check_header` validates the header and returns its names normalised by
  :func:`normalize_name` (surrounding white space stripped, Unicode NFC); column names given by
  the user go through the same function before they are looked up.
* :func:`parse_number` is the strict number parser: ASCII decimal or scientific notation only
  (no ``1_00``, no full-width or other non-ASCII digits); ``nan``/``inf`` spellings are
  recognised and refused as non-finite, and a number beyond the float64 range as out of range.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import sys
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from varbayes._atomic import OutputFile

__all__ = [
    "RawTable", "Source", "Table", "check_header", "is_number", "normalize_name",
    "numbered_rows", "open_text", "parse_column", "parse_number", "read_csv", "read_rows",
    "resolve_names", "select", "stdin_text", "format_column", "write_csv",
]  # fmt: skip

#: A CSV source: a path, or a text stream that is read from its current position.
Source = str | os.PathLike[str] | IO[str]
Rows = list[tuple[int, list[str]]]

# ASCII only: ``\d`` would match any Unicode digit (full-width, Arabic-Indic, ...).
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NONFINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
MISSING = frozenset({"", "na", "n/a", "null", "none", "?"})
_SYNTAX = "write numbers in ASCII decimal or scientific notation, such as -1.5 or 2e-3"


def normalize_name(name: str) -> str:
    """A column name as varbayes compares it: Unicode NFC, surrounding white space stripped."""
    return unicodedata.normalize("NFC", name).strip()


def is_number(cell: str) -> bool:
    """Whether ``cell`` (stripped) is spelled as a number, including ``nan``/``inf`` spellings."""
    return bool(_FLOAT.fullmatch(cell) or _NONFINITE.fullmatch(cell))


def parse_number(cell: str, where: str) -> float:
    """Parse one stripped cell strictly; ``where`` (file, row, column) prefixes any error.

    Raises
    ------
    ValueError
        For a missing value, text that is not an ASCII decimal/scientific number, a NaN or
        infinity spelling, or a number outside the float64 range; the message quotes the value.
    """
    if _FLOAT.fullmatch(cell):
        value = float(cell)
        if math.isinf(value):
            raise ValueError(
                f"{where}: value {cell!r} is out of range (the largest float64 is about 1.8e308)"
            )
        return value
    if cell.lower() in MISSING:
        raise ValueError(f"{where}: missing value ({cell!r}); fill it in or drop the row")
    if _NONFINITE.fullmatch(cell):
        raise ValueError(f"{where}: value {cell!r} is not finite (NaN or infinity)")
    raise ValueError(f"{where}: value {cell!r} is not a number ({_SYNTAX})")


def parse_column(name: str, rows: Rows, j: int, col: str) -> np.ndarray:
    """Column ``j`` (named ``col``) of ``rows`` as float64, parsed by :func:`parse_number`."""
    out = np.empty(len(rows), dtype=np.float64)
    for i, (lineno, r) in enumerate(rows):
        cell = r[j].strip()
        if _FLOAT.fullmatch(cell) and not math.isinf(v := float(cell)):
            out[i] = v  # the common case, without building the message prefix
        else:
            out[i] = parse_number(cell, f"{name}, row {lineno}, column {col!r}")
    return out


class _StdinText(io.TextIOWrapper):
    """A text view of a byte stream that it does not own: closing it only detaches it."""

    @property
    def name(self) -> str:
        return "<stdin>"

    def close(self) -> None:
        try:
            self.detach()
        except ValueError:  # already detached
            pass


def stdin_text() -> IO[str]:
    """Standard input as UTF-8 text (a BOM is skipped), for a CSV file given as ``-``.

    Closing (or collecting) the returned stream leaves ``sys.stdin`` open.
    """
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # already a text stream without bytes underneath (e.g. io.StringIO)
        return sys.stdin
    return _StdinText(buffer, encoding="utf-8-sig", newline="")


@contextmanager
def open_text(source: Source) -> Iterator[tuple[IO[str], str]]:
    """Yield ``(stream, name)``: a path opened once as UTF-8 text, or an open stream as given.

    A path is closed on exit; a stream is left open. ``name`` is what error messages call the
    source (a stream's ``name``, such as ``<stdin>``).
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"CSV file not found: {path}")
        if path.is_dir():
            raise IsADirectoryError(f"expected a CSV file but {path} is a directory")
        with path.open(newline="", encoding="utf-8-sig") as fh:
            yield fh, str(path)
        return
    name = getattr(source, "name", None)
    yield source, name if isinstance(name, str) else "<stream>"


def _is_row(r: list[str]) -> bool:
    return len(r) > 1 or bool(r and r[0].strip())


def numbered_rows(fh: IO[str], name: str, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """Yield ``(row number, cells)`` for the non-blank rows of ``fh`` (strict CSV quoting).

    Raises
    ------
    ValueError
        For text that is not UTF-8, or a row that is not valid CSV (for example a quote that is
        never closed), naming the row.
    """
    reader = csv.reader(fh, delimiter=delimiter, strict=True)
    start = 1
    try:
        for r in reader:
            if _is_row(r):
                yield start, r
            start = reader.line_num + 1
    except UnicodeDecodeError:
        raise ValueError(f"{name} is not a UTF-8 text file; save it as UTF-8 CSV") from None
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise ValueError(
                f"{name}, row {start}: a quoted cell opened on this row is never closed "
                "(unterminated '\"'); this is not a valid CSV file"
            ) from None
        raise ValueError(
            f"{name}, row {max(start, reader.line_num)}: is not a valid CSV file: {exc}"
        ) from None


def check_header(name: str, raw: list[str], delimiter: str = ",", lineno: int = 1) -> list[str]:
    """Validate a CSV header row; return its names normalised by :func:`normalize_name`.

    Raises
    ------
    ValueError
        For a likely wrong delimiter, a header of numbers only, a column without a name (a
        trailing delimiter included: it is never dropped silently) or a duplicate name.
    """
    header = [normalize_name(c) for c in raw]
    seps = [s for s in (";", "\t", "|") if s in header[0]]
    if len(header) == 1 and seps:
        raise ValueError(
            f"{name} has a single column {header[0]!r}: the file seems to use {seps[0]!r} as "
            f"delimiter, not {delimiter!r}. Save it as comma-separated values or pass "
            f"delimiter={seps[0]!r}."
        )
    if all(_FLOAT.fullmatch(c) for c in header):
        raise ValueError(
            f"the first row of {name} looks like data (all cells are numbers: {header[:5]}); "
            "a header row naming the columns is required"
        )
    for j, c in enumerate(header):
        if not c:
            hint = (f"; the header row ends with a trailing {delimiter!r}: remove it (from the "
                    "data rows too) or name the column") if j == len(header) - 1 else ""
            raise ValueError(
                f"{name}: column {j + 1} of the header row (row {lineno}) has no name{hint}"
            )
        if header.index(c) != j:
            raise ValueError(
                f"{name}: duplicate column name {c!r} (columns {header.index(c) + 1} and {j + 1})"
            )
    return header


def resolve_names(
    name: str, header: Sequence[str], target: str | None, features: Sequence[str] | None
) -> tuple[str | None, list[str]]:
    """Normalise the user's ``target`` and ``features`` names and check them against ``header``.

    Returns
    -------
    target : str or None
    features : list of str
        Default: every column of ``header`` except ``target``.
    """
    if isinstance(features, str):
        raise TypeError(f"features must be a list of column names, not the str {features!r}")
    for label, c in [("target", target), *(("feature", c) for c in features or [])]:
        if c is not None and not isinstance(c, str):
            raise TypeError(f"{label} column names must be str, got {type(c).__name__} {c!r}")
    target = None if target is None else normalize_name(target)
    asked = [("target", target)] if target is not None else []
    feats = None if features is None else [normalize_name(c) for c in features]
    for label, c in asked + [("feature", c) for c in feats or []]:
        if c not in header:
            raise ValueError(
                f"{name}: unknown {label} column {c!r}; available columns: {list(header)}"
            )
    feats = [c for c in header if c != target] if feats is None else feats
    if len(set(feats)) != len(feats):
        raise ValueError(f"features lists a column more than once: {feats}")
    if target is not None and target in feats:
        raise ValueError(f"column {target!r} cannot be both the target and a feature")
    if not feats:
        raise ValueError(
            f"{name}: no feature columns (columns: {list(header)}, target: {target!r})"
        )
    return target, feats


@dataclass(frozen=True, eq=False)
class Table:
    """A numeric table read from a CSV file.

    Attributes
    ----------
    x, y : ndarray of shape (n, d) and (n,)
        Float64 features and target (`y` is ``None`` when no target was asked for).
    feature_names, target_name : list of str, str or None
        Column names of `x` and of `y` (normalised: stripped, Unicode NFC); `path` is the file
        read (for a stream, its name such as ``<stdin>``).
    """

    x: np.ndarray
    y: np.ndarray | None
    feature_names: list[str]
    target_name: str | None
    path: Path


@dataclass(frozen=True, eq=False)
class RawTable:
    """The cells of a CSV file, read once: normalised header names and the numbered data rows."""

    name: str
    header: list[str]
    rows: Rows


def read_rows(source: Source, delimiter: str = ",") -> RawTable:
    """Read ``source`` once into a :class:`RawTable` (header checked, rows as wide as it)."""
    with open_text(source) as (fh, name):
        rows = list(numbered_rows(fh, name, delimiter))
    if not rows:
        raise ValueError(f"CSV file {name} is empty; expected a header row naming the columns")
    header = check_header(name, rows[0][1], delimiter, rows[0][0])
    if len(rows) == 1:
        raise ValueError(f"CSV file {name} has a header row but no data rows")
    for lineno, r in rows[1:]:
        if len(r) != len(header):
            raise ValueError(
                f"{name}, row {lineno}: {len(r)} cells but the header has {len(header)} columns"
            )
    return RawTable(name, header, rows[1:])


def select(raw: RawTable, target: str | None, features: Sequence[str] | None) -> Table:
    """Parse the ``target`` and ``features`` columns of ``raw`` (see :func:`read_csv`)."""
    target, feats = resolve_names(raw.name, raw.header, target, features)
    x = np.column_stack([parse_column(raw.name, raw.rows, raw.header.index(c), c)
                         for c in feats])
    y = None if target is None else parse_column(raw.name, raw.rows,
                                                 raw.header.index(target), target)
    return Table(x=np.ascontiguousarray(x), y=y, feature_names=feats, target_name=target,
                 path=Path(raw.name))


def read_csv(
    path: Source,
    *,
    target: str | None = None,
    features: Sequence[str] | None = None,
    delimiter: str = ",",
) -> Table:
    """Read a numeric CSV file with a header row (stdlib :mod:`csv`, UTF-8).

    Parameters
    ----------
    path : str, path-like or text stream
        The CSV file (read once, so a FIFO works), or an open text stream such as standard
        input; the header row is required and blank lines are ignored.
    target : str, optional
        Name of the target column; ``None`` reads features only.
    features : sequence of str, optional
        Names of the feature columns; default all columns except `target`. Columns that are
        not used may hold non-numeric values. Names are compared after stripping white space
        and Unicode NFC normalisation, on both sides.
    delimiter : str, default=","
        Field separator.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        If `path` does not exist or is a directory.
    ValueError
        For an empty file, no header, a header only, duplicate, unnamed or unknown column
        names, a likely wrong delimiter, invalid CSV quoting, ragged rows, or missing /
        non-numeric / non-finite / out-of-range values in a used column. Numbers are ASCII
        decimal or scientific notation only. Row numbers are those of a spreadsheet (header =
        row 1); messages name the file, row, column and value.
    """
    return select(read_rows(path, delimiter), target, features)


def format_column(name: str, values: Any) -> list[str]:
    """The cells of one column as text: integers as such, floats with ``repr`` (round trip)."""
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"column {name!r} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind in "biu":  # tolist(): Python ints and floats, the same text, faster
        return list(map(str, (arr.astype(np.uint8) if arr.dtype.kind == "b" else arr).tolist()))
    if arr.dtype.kind == "f":
        return list(map(repr, arr.tolist()))
    if arr.dtype.kind in "OUS":  # text cells (e.g. input columns echoed by predict)
        return [v.decode() if isinstance(v, bytes) else str(v) for v in arr]
    raise TypeError(f"column {name!r} must be numeric or text, got dtype {arr.dtype}")


def write_csv(path: str | os.PathLike[str], columns: Mapping[str, Any]) -> Path:
    """Write numeric columns to a CSV file atomically, with full float precision.

    Floats are written with ``repr`` (shortest round-tripping form) to a temporary file in the
    same directory, which then replaces `path` via ``os.replace``.

    Parameters
    ----------
    path : str or path-like
        Output file; its directory must exist. An existing regular file is replaced; a FIFO,
        a character device or ``-`` (standard output) is streamed into; a symbolic link or
        other special file is refused (see :mod:`varbayes._atomic`).
    columns : mapping of str to array-like of shape (n,)
        Column name -> values, all of the same length. Returns the path written.
    """
    p = Path(path)
    if not columns:
        raise ValueError("write_csv needs at least one column")
    if p.is_dir():
        raise IsADirectoryError(f"cannot write CSV to {p}: it is a directory")
    if not p.parent.is_dir():
        raise FileNotFoundError(f"cannot write CSV to {p}: directory {p.parent} does not exist")
    cells = {str(k): format_column(str(k), v) for k, v in columns.items()}
    lengths = {k: len(v) for k, v in cells.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"write_csv: columns have different lengths: {lengths}")
    with OutputFile(path) as out:  # atomic, within the umask; streams into a FIFO or "-"
        writer = csv.writer(out.fh)
        writer.writerow(list(cells))
        writer.writerows(zip(*cells.values(), strict=True))
    return p
