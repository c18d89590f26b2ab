"""The drift check of the "Round two" table of ``docs/bad-inputs.md``.

Every row names the test that exercises it as ``tests/PATH.py::TEST`` (the path may name a folder
of the mirrored layout, ``tests/io/test_load_safety.py::...``); this fails if a named test does not
exist, if an id repeats, or if a row is malformed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "bad-inputs.md"
ROW = re.compile(r"^\| `([\w-]+)` \| (.+) \| (.+) \| `(tests/[\w/]+\.py)::(\w+)` \|$")


def _section() -> list[str]:
    text = DOC.read_text()
    start = text.index("## Round two")
    end = text.index("\n## ", start + 1)
    return [ln for ln in text[start:end].splitlines() if ln.startswith("| `")]


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)}


def test_round_two_rows_name_real_tests() -> None:
    rows = _section()
    assert len(rows) >= 38, "the round-two table lost rows"
    ids = []
    for line in rows:
        m = ROW.match(line)
        assert m, f"malformed row in docs/bad-inputs.md: {line}"
        ids.append(m.group(1))
        file = ROOT / m.group(4)
        assert file.is_file(), f"{m.group(4)} (row {m.group(1)}) does not exist"
        assert m.group(5) in _test_names(file), f"{m.group(4)}::{m.group(5)} does not exist"
    assert len(ids) == len(set(ids)), "duplicate ids in the round-two table"
