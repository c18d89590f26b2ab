"""Every bad input of STYLE.md part B, as listed in ``docs/bad-inputs.md``, and its answer.

``CASES`` is the single source of the table, gathered from the per-area lists of this folder in
the table's order: ``cases_data`` (``X-*``, ``y-*``), ``cases_library`` (``hp-*``, ``lc-*``,
``num-*``, ``met-*``, ``plot-*``), ``cases_checkpoints`` (``ck-*``) and ``cases_cli``
(``cli-*``); each area module also holds its rows' library calls (``LIB``) and CLI runs
(``CLI``). ``test_docs_table_matches_cases`` fails if ``docs/bad-inputs.md`` and ``CASES`` differ
(regenerate the table with ``python tests/bad_inputs/test_bad_inputs.py``), and
``test_every_case_is_exercised`` fails if a case has no test or a test no case. ``test_library``
runs each row's library calls (the estimator and the functional API alike where both apply) and
``test_cli`` its ``varbayes`` command.
"""

from __future__ import annotations

import re
from pathlib import Path

import cases_checkpoints
import cases_cli
import cases_data
import cases_library
import pytest
from cases_common import GOOD_CSV, CliRun, Ctx, LibCalls, X, Y, _est, _fn
from sklearn.exceptions import NotFittedError

from varbayes.cli import main
from varbayes.estimator import BayesianRegressor
from varbayes.infer import NonFiniteLossError
from varbayes.kinds import FittedModel

DOC = Path(__file__).resolve().parents[2] / "docs" / "bad-inputs.md"
HEADER = (
    "| id | input | library answer (exception: message excerpt) | "
    "CLI answer (exit code: message excerpt) |"
)

AREAS = (cases_data, cases_library, cases_checkpoints, cases_cli)  # the table's order
CASES: list[tuple[str, str, str, str]] = [case for area in AREAS for case in area.CASES]
LIB: dict[str, LibCalls] = {k: v for area in AREAS for k, v in area.LIB.items()}
CLI: dict[str, CliRun] = {k: v for area in AREAS for k, v in area.CLI.items()}

ERRORS = {
    e.__name__: e
    for e in (
        ValueError, TypeError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
        FileExistsError, NotFittedError, NonFiniteLossError,
    )
}  # fmt: skip


def render_table() -> str:
    """The markdown table of ``CASES`` (as it appears in docs/bad-inputs.md)."""
    lines = [HEADER, "|---|---|---|---|"]
    lines += [f"| `{i}` | {what} | {lib} | {cli} |" for i, what, lib, cli in CASES]
    return "\n".join(lines)


def _answer(text: str) -> tuple[str, str | None]:
    """Split an answer into (kind, excerpt): kind is an exception name, an exit code, etc."""
    if text == "n/a":
        return "n/a", None
    m = re.fullmatch(r'(\w+): (?:"([^"]*)"(.*)|(.*))', text)
    assert m, f"malformed answer {text!r}"
    return m.group(1), m.group(2)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[BayesianRegressor, FittedModel, Path]:
    root = tmp_path_factory.mktemp("shared")
    (root / "d.csv").write_text(GOOD_CSV)
    model = root / "model"
    argv = ["fit", root / "d.csv", "--target", "y", "--epochs", 2, "--hidden", 4, "--samples", 5]
    assert main([str(a) for a in [*argv, "--out", model]]) == 0
    return _est().fit(X, Y), _fn(X, Y), model


@pytest.fixture
def ctx(shared: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Ctx:
    capsys.readouterr()
    return Ctx(tmp_path, shared[0], shared[1], shared[2], capsys)


def test_docs_table_matches_cases() -> None:
    text = DOC.read_text()
    assert render_table() in text, (
        "docs/bad-inputs.md is out of date: regenerate its table with "
        "`python tests/bad_inputs/test_bad_inputs.py`"
    )
    first_table = text[: text.index("## Round two")]  # round two has its own drift check
    rows = [line for line in first_table.splitlines() if line.startswith("| `")]
    assert len(rows) == len(CASES)


def test_every_case_is_exercised() -> None:
    ids = [c[0] for c in CASES]
    assert len(set(ids)) == len(ids)
    assert set(LIB) == {i for i, _, lib, _ in CASES if lib != "n/a"}
    assert set(CLI) == {i for i, _, _, cli in CASES if cli != "n/a"}
    for _, _, lib, cli in CASES:
        kind, excerpt = _answer(lib)
        assert kind in ("n/a", "accepted") or (kind in ERRORS and excerpt)
        code, excerpt = _answer(cli)
        assert code == "n/a" or code == "0" or (code in ("1", "2") and excerpt)


@pytest.mark.parametrize("case", [c for c in CASES if c[2] != "n/a"], ids=lambda c: c[0])
def test_library(case: tuple[str, str, str, str], ctx: Ctx) -> None:
    kind, excerpt = _answer(case[2])
    calls = LIB[case[0]](ctx)
    assert calls
    for call in calls:
        if kind == "accepted":
            call()
            continue
        with pytest.raises(ERRORS[kind]) as info:
            call()
        assert excerpt is not None and excerpt.lower() in str(info.value).lower()


@pytest.mark.parametrize("case", [c for c in CASES if c[3] != "n/a"], ids=lambda c: c[0])
def test_cli(case: tuple[str, str, str, str], ctx: Ctx) -> None:
    code, excerpt = _answer(case[3])
    got, _, err = CLI[case[0]](ctx)
    assert got == int(code), err
    assert "Traceback" not in err
    if got != 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("varbayes: error: ")
        assert excerpt is not None and excerpt in lines[0]
        if case[0] != "cli-force":  # nothing (half-)written at the output paths, no temp files
            assert not (ctx.tmp / "m").exists() and not (ctx.tmp / "p.csv").exists()
            assert not [f.name for f in ctx.tmp.iterdir() if f.name.startswith(".")]


if __name__ == "__main__":  # print the table of docs/bad-inputs.md
    print(render_table())
