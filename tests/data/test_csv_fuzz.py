"""Fuzz the CSV readers (issue 13): every input gives a table or a ValueError/TypeError.

Small inputs, built from random bytes, random text and random cells (quotes, delimiters, white
space, non-ASCII digits, NaN spellings, NFC/NFD names), go through :func:`read_csv` and the
streaming :class:`CSVChunkReader`. Each outcome must be a parsed result (finite float64 of the
right shape) or a ``ValueError``/``TypeError`` with a message; no other exception, no hang (the
inputs are a few hundred bytes), and at most ``MEMORY_BOUND`` bytes allocated while reading. The
two readers, which share one parser, must accept and refuse the same files.
"""

from __future__ import annotations

import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from varbayes.data import read_csv
from varbayes.data.csvstream import CSVChunkReader

#: Peak bytes that reading one fuzzed file (a few hundred bytes) may allocate.
MEMORY_BOUND = 8 * 2**20
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

_CHARS = st.sampled_from(list(
    "0123456789.eE+-_, \t\"'\r\n;|ayb" "\u00e9\u0301\uff11\u0663\u00b2\u2070\u3000\ufeff\x00"
)) | st.characters(codec="utf-8")
_CELL_WORDS = ["1", "-2.5", "1e400", "1_00", "nan", "-inf", "NA", "", " ", "\uff11", "x",
               "\"1\"", "\"", "\"a,b\"", "1e-400", "0x1", "caf\u00e9", "cafe\u0301", "a", "y"]
_CELLS = st.sampled_from(_CELL_WORDS) | st.text(_CHARS, max_size=6)


_NUMBERS = (st.integers(-10**6, 10**6).map(str)
            | st.floats(allow_nan=False, allow_infinity=False).map(repr))
_NAMES = ["a", "b", "y", " c ", "caf\u00e9", "cafe\u0301", "d"]


def _mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` four times in five, else ``bad``."""
    return st.integers(0, 4).flatmap(lambda k: good if k else bad)


@st.composite
def _tables(draw: st.DrawFn) -> str:
    width = draw(st.integers(1, 4))
    header = draw(_mostly(
        st.lists(st.sampled_from(_NAMES), min_size=width, max_size=width, unique=True),
        st.lists(st.sampled_from(["a", "y", "", "1", "a;b", "caf\u00e9"]) | _CELLS,
                 min_size=width, max_size=width),
    ))
    row = _mostly(st.lists(_mostly(_NUMBERS, _CELLS), min_size=width, max_size=width),
                  st.lists(_CELLS, min_size=max(0, width - 1), max_size=width + 1))
    rows = draw(st.lists(row, min_size=0, max_size=6))
    end = draw(st.sampled_from(["\n", "\r\n", ""]))
    return "\n".join(",".join(r) for r in [header, *rows]) + end


_CONTENTS = (
    st.binary(max_size=200)
    | st.text(_CHARS, max_size=200).map(lambda t: t.encode("utf-8"))
    | _tables().map(lambda t: t.encode("utf-8"))
)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d) / "fuzz.csv"


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", result)`` or ``("error", message)``; any other exception fails the test."""
    tracemalloc.start()
    try:
        return "ok", call()
    except (ValueError, TypeError) as exc:
        message = str(exc).strip()
        assert message, f"{type(exc).__name__} without a message"
        return "error", message
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak <= MEMORY_BOUND, f"reading allocated {peak} bytes"


def _stream(path: Path, features: list[str]) -> np.ndarray:
    with CSVChunkReader(path, features, chunk_rows=2) as reader:
        chunks = [x for x, _ in reader.chunks()]
    return np.concatenate(chunks)


def _check_table(x: np.ndarray, width: int) -> None:
    assert x.dtype == np.float64 and x.ndim == 2 and x.shape[1] == width and x.shape[0] >= 1
    assert np.isfinite(x).all()


@SETTINGS
@given(content=_CONTENTS)
def test_csv_readers_return_a_table_or_a_clear_error(scratch: Path, content: bytes) -> None:
    scratch.write_bytes(content)
    kind, table = _outcome(lambda: read_csv(scratch))
    features = ["a"]
    if kind == "ok":
        _check_table(table.x, len(table.feature_names))
        features = table.feature_names
    stream_kind, x = _outcome(lambda: _stream(scratch, features))
    if stream_kind == "ok":
        _check_table(x, len(features))
    if kind == "ok":  # one parser: the streaming reader reads what read_csv read
        assert stream_kind == "ok", x
        np.testing.assert_array_equal(x, table.x)
    kind, table = _outcome(lambda: read_csv(scratch, target="y", features=features))
    if kind == "ok":
        _check_table(table.x, len(features))
        assert table.y is not None and np.isfinite(table.y).all()


@SETTINGS
@given(cells=st.lists(_mostly(_NUMBERS, _CELLS), min_size=1, max_size=5))
def test_one_column_readers_agree(scratch: Path, cells: list[str]) -> None:
    """A single column of fuzzed cells: both readers accept it, or both refuse it."""
    scratch.write_text("a\n" + "\n".join(cells) + "\n", encoding="utf-8")
    kind, table = _outcome(lambda: read_csv(scratch, features=["a"]))
    stream_kind, x = _outcome(lambda: _stream(scratch, ["a"]))
    assert kind == stream_kind, (table, x)
    if kind == "ok":
        np.testing.assert_array_equal(x, table.x)
