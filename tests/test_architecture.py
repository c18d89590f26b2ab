"""The shape of the package: no import cycles, small modules, a light command line."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "varbayes"
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module-level imports between varbayes modules (imports inside functions are lazy)."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        body = list(tree.body)
        for node in body:  # also the bodies of module-level if-blocks, except TYPE_CHECKING
            if isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.dump(node.test):
                body.extend(node.body)
        for node in body:
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def test_no_import_cycles() -> None:
    graph = _import_graph()
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_modules_are_small() -> None:
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_fast_engine_is_no_import_of_the_training_loop() -> None:
    graph = _import_graph()
    assert not any(t.startswith("varbayes._fast") for t in graph["varbayes.infer.train"])


def test_command_line_help_imports_nothing_heavy() -> None:
    code = ("import contextlib, io, sys; from varbayes.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
            "heavy = [m for m in ('torch', 'sklearn', 'matplotlib', 'numpy') if m in sys.modules]\n"
            "print('heavy:' + ','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "heavy:"


def test_version_flag() -> None:
    import varbayes

    out = subprocess.run([sys.executable, "-m", "varbayes", "--version"], capture_output=True,
                         text=True, check=True, timeout=120)
    assert out.stdout.strip() == f"varbayes {varbayes.__version__}"


TESTS = Path(__file__).resolve().parent
#: Test folders that are not named after a subpackage (``fast`` mirrors ``_fast``).
EXTRA_TEST_DIRS = {"bad_inputs", "golden", "fast"}


def test_tests_mirror_the_package() -> None:
    """Test folders name subpackages; no ``__init__.py``, so basenames are unique; <= 600 lines."""
    subpackages = {p.parent.name for p in SRC.glob("*/__init__.py")}
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders - subpackages <= EXTRA_TEST_DIRS, folders - subpackages - EXTRA_TEST_DIRS
    files = [p for p in TESTS.rglob("*.py") if "golden" not in p.parts]
    assert not [p for p in files if p.name == "__init__.py"]
    names = [p.name for p in files if p.name != "conftest.py"]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    sizes = {str(p.relative_to(TESTS)): len(p.read_text().splitlines()) for p in files}
    long = {name: n for name, n in sizes.items() if n > 600}
    assert not long, f"test modules over 600 lines: {long}"
