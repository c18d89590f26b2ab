"""The package type-checks: ``mypy`` with the ``[tool.mypy]`` settings of pyproject.toml."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy is not installed (it is in the 'test' extra)")
@pytest.mark.skipif(not (ROOT / "src" / "varbayes").is_dir(), reason="needs the source tree")
def test_mypy_strict_passes() -> None:
    # The source tree, not the installed copy: mypy reads the files it is given, and the
    # imports between them resolve through MYPYPATH. No cache, so a stale one cannot hide errors.
    env = {**os.environ, "MYPYPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", os.devnull,
         "src/varbayes"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"mypy failed:\n{proc.stdout}{proc.stderr}"
