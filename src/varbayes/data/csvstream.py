"""Streaming CSV input and output for ``varbayes predict``: memory bounded by a chunk of rows.

:class:`CSVChunkReader` reads a numeric CSV file with a header row in chunks of rows, with the
checks and error messages of :func:`varbayes.data.read_csv` (the header is checked when the
reader opens; a bad cell is reported when its chunk is read). :class:`CSVChunkWriter` writes
the output chunk by chunk to a temporary file that replaces the target only when every chunk is
written, so a failure half-way leaves no partial file, like :func:`varbayes.data.write_csv`
(whose cell formatting it shares).

:func:`predict_chunk_rows` sizes the chunks so that the posterior samples of one chunk take a
bounded amount of memory, whatever the number of rows and samples.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from varbayes._atomic import OutputFile
from varbayes.data.csv import (
    Source,
    check_header,
    format_column,
    numbered_rows,
    open_text,
    parse_column,
    resolve_names,
)

__all__ = [
    "CSVChunkReader",
    "CSVChunkWriter",
    "predict_chunk_rows",
]

#: Rows of one streamed chunk at most.
MAX_CHUNK_ROWS = 65_536
#: Sample-row cells (samples x rows) of the predictive held at once: 2**20 cells are 8 MB per
#: float64 array (the components' means and scales), which bounds a chunk's memory to a few
#: tens of MB and keeps the per-chunk overhead small. The quantile search works through a
#: chunk in cache-sized pieces of its own (``varbayes.predictive.quantile.CHUNK_CELLS``).
SAMPLE_CELLS = 2**20
#: Sample-row-unit cells (samples x rows x hidden width) of one forward pass (16 MB of float32).
ACTIVATION_CELLS = 2**22


def predict_chunk_rows(num_samples: int, width: int = 1, align: int = 1) -> tuple[int, int]:
    """Rows per streamed chunk and rows per forward pass for ``num_samples`` posterior samples.

    Parameters
    ----------
    num_samples : int
        Posterior samples ``S`` per row.
    width : int, default=1
        Widest hidden layer of the network.
    align : int, default=1
        Round ``chunk_rows`` down to a multiple of this where that leaves at least one
        multiple: a caller that pads each chunk to whole groups of ``align`` rows
        (``varbayes.predictive.columns.ROW_ALIGN``) then stays within ``SAMPLE_CELLS``, and
        its chunk is solved as one piece rather than a full one and a few rows.

    Returns
    -------
    chunk_rows : int
        At most ``MAX_CHUNK_ROWS`` and ``SAMPLE_CELLS / S`` (at least 1).
    forward_rows : int
        At most ``chunk_rows`` and ``ACTIVATION_CELLS / (S * width)`` (at least 1).
    """
    s, w = max(1, int(num_samples)), max(1, int(width))
    chunk = max(1, min(MAX_CHUNK_ROWS, SAMPLE_CELLS // s))
    if chunk >= align > 1:
        chunk -= chunk % align
    forward = max(1, min(chunk, ACTIVATION_CELLS // (s * w)))
    return chunk, forward


class CSVChunkReader:
    """Read the feature columns of a CSV file with a header row, ``chunk_rows`` rows at a time.

    The file is opened once and read front to back, so a FIFO or a pipe works.

    Parameters
    ----------
    path : str, path-like or text stream
        The CSV file, or an open text stream (standard input), which is not closed.
    features : sequence of str
        Columns to parse as numbers (the others are kept as text, for echoing); compared after
        :func:`varbayes.data.csv.normalize_name`, like the header names.
    chunk_rows : int, default=65536
    delimiter : str, default=","

    Attributes
    ----------
    header : list of str
        The column names, normalised (stripped, Unicode NFC) as every reader compares them.
    rows_read : int
        Data rows yielded so far.
    chunk_lines : list of int
        File line numbers of the rows of the last chunk yielded (for error messages).

    Raises
    ------
    FileNotFoundError, IsADirectoryError, ValueError
        As :func:`varbayes.data.read_csv`, with the same messages.
    """

    def __init__(
        self, path: Source, features: Sequence[str], *,
        chunk_rows: int = MAX_CHUNK_ROWS, delimiter: str = ",",
    ) -> None:
        if isinstance(features, str):
            raise TypeError(f"features must be a list of column names, not the str {features!r}")
        if int(chunk_rows) < 1:
            raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
        self.chunk_rows, self.delimiter, self.rows_read = int(chunk_rows), delimiter, 0
        self._stack = ExitStack()
        fh, self.name = self._stack.enter_context(open_text(path))
        self.path = Path(self.name)
        self.chunk_lines: list[int] = []
        try:
            self._rows = numbered_rows(fh, self.name, delimiter)
            first = next(self._rows, None)
            if first is None:
                raise ValueError(
                    f"CSV file {self.name} is empty; expected a header row naming the columns"
                )
            self.header = check_header(self.name, first[1], delimiter, first[0])
            self._first = next(self._rows, None)
            if self._first is None:
                raise ValueError(f"CSV file {self.name} has a header row but no data rows")
            _, self.features = resolve_names(self.name, self.header, None, features)
            self._columns = [self.header.index(c) for c in self.features]
        except BaseException:
            self.close()
            raise

    def chunks(self) -> Iterator[tuple[np.ndarray, list[list[str]]]]:
        """Yield ``(x, rows)``: float64 features of shape (r, d) and the raw cells of the rows.

        Raises
        ------
        ValueError
            For a ragged row, or a missing, non-numeric or non-finite feature value.
        """
        pending: list[tuple[int, list[str]]] = []
        rows: Iterator[tuple[int, list[str]]] = self._rows
        if self._first is not None:
            pending.append(self._first)
            self._first = None
        for item in rows:
            pending.append(item)
            if len(pending) == self.chunk_rows:
                yield self._parse(pending)
                pending = []
        if pending:
            yield self._parse(pending)

    def _parse(self, rows: list[tuple[int, list[str]]]) -> tuple[np.ndarray, list[list[str]]]:
        width = len(self.header)
        for lineno, r in rows:
            if len(r) != width:
                raise ValueError(
                    f"{self.name}, row {lineno}: {len(r)} cells but the header has {width} columns"
                )
        x = np.column_stack([parse_column(self.name, rows, j, c)
                             for j, c in zip(self._columns, self.features, strict=True)])
        self.rows_read += len(rows)
        self.chunk_lines = [lineno for lineno, _ in rows]  # to name a row in later errors
        return np.ascontiguousarray(x), [r for _, r in rows]

    def close(self) -> None:
        """Close the file (idempotent; a stream passed in is left open)."""
        self._stack.close()

    def __enter__(self) -> CSVChunkReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: A row as ``csv.writer`` ends it (the ``excel`` dialect's line terminator).
_LINE = "{}\r\n"
#: The characters for which ``csv.writer`` quotes a cell (``QUOTE_MINIMAL``, the ``excel``
#: dialect: its delimiter, quote character and line terminator).
_SPECIAL = (",", '"', "\r", "\n")


def _plain(text_rows: Sequence[Sequence[str]], text_columns: Sequence[Sequence[str]]) -> bool:
    """Whether no text cell needs quotes: the cells of ``text_rows`` and of ``text_columns``.

    The other cells are numbers (``repr`` of floats, ints), which never need quotes; a row of
    one empty cell, the other case ``csv.writer`` quotes, is not written here (the caller has
    at least one column of values).
    """
    text = "\x1f".join(["\x1f".join(map("\x1f".join, text_rows)), *map("\x1f".join,
                                                                      text_columns)])
    return not any(c in text for c in _SPECIAL)


class CSVChunkWriter:
    """Write a CSV file chunk by chunk, atomically (temporary file, then ``os.replace``).

    Use it as a context manager: the file appears at ``path`` when the block ends without an
    error, and the temporary file is removed otherwise. ``-`` (standard output), a FIFO or a
    character device is streamed into instead (see :mod:`varbayes._atomic`).

    Parameters
    ----------
    path : str or path-like
        Output file; its directory must exist.
    header : sequence of str
        Column names.
    force : bool, default=True
        Replace an existing regular file (never a directory, link or special file).

    Raises
    ------
    IsADirectoryError, FileNotFoundError, FileExistsError
        If ``path`` is a directory (or ends in ``/``), its directory does not exist, or it
        exists and cannot be replaced.
    """

    def __init__(self, path: str | os.PathLike[str], header: Sequence[str], *,
                 force: bool = True) -> None:
        self._out = OutputFile(path, force=force)
        self.path, self._fh = self._out.path, self._out.fh
        self.header = [str(h) for h in header]
        self.rows_written = 0
        self._writer = csv.writer(self._fh)
        self._writer.writerow(self.header)

    def write(self, text_rows: Sequence[Sequence[str]], columns: Mapping[str, Any]) -> None:
        """Append rows: the cells ``text_rows`` (as read) followed by the values of ``columns``.

        ``columns`` maps each remaining header name, in order, to an array of shape (r,).
        """
        cells = [format_column(str(k), v) for k, v in columns.items()]
        if any(len(c) != len(text_rows) for c in cells):
            raise ValueError(
                f"write: {len(text_rows)} rows but columns of lengths {[len(c) for c in cells]}"
            )
        text_columns = [c for c, v in zip(cells, columns.values(), strict=True)
                        if np.asarray(v).dtype.kind not in "biuf"]
        if cells and _plain(text_rows, text_columns):  # csv.writer's output, without its checks
            lines = zip(map(",".join, text_rows), *cells, strict=True) \
                if text_rows and text_rows[0] else zip(*cells, strict=True)
            self._fh.write("".join(map(_LINE.format, map(",".join, lines))))
        else:
            self._writer.writerows(list(r) + list(v)
                                   for r, *v in zip(text_rows, *cells, strict=True))
        self.rows_written += len(text_rows)

    def commit(self) -> Path:
        """Finish the file (move the temporary file to ``path``)."""
        return self._out.commit()

    def abort(self) -> None:
        """Close and remove the temporary file."""
        self._out.abort()

    def __enter__(self) -> CSVChunkWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._out.__exit__(exc_type, exc, tb)
