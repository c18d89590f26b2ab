"""The streamed output of ``varbayes predict``: chunk sizes, and ``CSVChunkWriter``'s bytes.

The writer joins the cells itself when no text cell needs quotes; property-based tests compare
its bytes with ``csv.writer``'s on text that does and does not need quotes.
"""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from varbayes.data.csv import format_column
from varbayes.data.csvstream import SAMPLE_CELLS, CSVChunkWriter, predict_chunk_rows

_TEXT = st.text(alphabet=st.sampled_from(list('ab 1.-,"\r\n\t;x')), max_size=6)
_FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


def _reference(header: list[str], chunks: list[tuple[list[list[str]], dict[str, object]]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    for text_rows, columns in chunks:
        cells = [format_column(k, v) for k, v in columns.items()]
        writer.writerows(list(r) + list(v) for r, *v in zip(text_rows, *cells, strict=True))
    return out.getvalue().encode()


@st.composite
def _chunks(draw: st.DrawFn) -> tuple[list[str], list[tuple[list[list[str]], dict[str, object]]]]:
    echoed = draw(st.integers(0, 2))
    labels = draw(st.booleans())  # a text column among the values (a classifier's label)
    chunks = []
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(0, 5))
        text_rows = [[draw(_TEXT) for _ in range(echoed)] for _ in range(n)]
        columns: dict[str, object] = {
            "mean": np.array(draw(st.lists(_FLOATS, min_size=n, max_size=n)), dtype=float),
            "count": np.array(draw(st.lists(st.integers(-5, 10**12), min_size=n, max_size=n)),
                              dtype=np.int64),
            "flag": np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool),
        }
        if labels:
            columns["label"] = np.array(draw(st.lists(_TEXT, min_size=n, max_size=n)),
                                        dtype=object)
        chunks.append((text_rows, columns))
    header = [f"x{i}" for i in range(echoed)] + list(chunks[0][1])
    return header, chunks


@settings(max_examples=150, deadline=None)
@given(data=_chunks())
def test_chunk_writer_bytes_equal_csv_writer(
    data: tuple[list[str], list[tuple[list[list[str]], dict[str, object]]]],
) -> None:
    header, chunks = data
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.csv"
        with CSVChunkWriter(path, header) as writer:
            for text_rows, columns in chunks:
                writer.write(text_rows, columns)
        assert path.read_bytes() == _reference(header, chunks)


def test_quoted_cells_round_trip(tmp_path: Path) -> None:
    """Cells with a comma, a quote or a line break are quoted and read back as written."""
    text_rows = [["a,b"], ['say "hi"'], ["two\nlines"], ["plain"]]
    values = np.array([1.5, -2.0, np.nan, 1e-300])
    path = tmp_path / "q.csv"
    with CSVChunkWriter(path, ["x", "mean"]) as writer:
        writer.write(text_rows, {"mean": values})
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["x", "mean"]
    assert [r[0] for r in rows[1:]] == [r[0] for r in text_rows]
    np.testing.assert_array_equal(np.array([float(r[1]) for r in rows[1:]]), values)


@given(samples=st.integers(1, 5000), width=st.integers(1, 500), align=st.sampled_from([1, 32]))
def test_chunk_rows_are_aligned_and_within_the_cell_budget(samples: int, width: int,
                                                           align: int) -> None:
    chunk, forward = predict_chunk_rows(samples, width, align)
    plain, _ = predict_chunk_rows(samples, width)
    assert 1 <= forward <= chunk <= plain
    assert chunk * samples <= max(SAMPLE_CELLS, samples)
    if plain >= align:  # a whole number of groups, the most that fit
        assert chunk % align == 0 and chunk > plain - align
    else:
        assert chunk == plain
