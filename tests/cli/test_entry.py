"""The process entry point ``varbayes.cli.run``: exit status, output and ``atexit`` handlers.

``run`` ends the process with ``os._exit`` after :func:`varbayes.cli.main` returns (it skips
the interpreter's teardown), so these tests run it in child processes and check that nothing a
normal exit gives is lost.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from varbayes import io

_SCRIPT = """
import atexit, sys
from varbayes.cli import run
atexit.register(lambda: print("atexit ran", file=sys.stderr))
sys.argv = ["varbayes", *sys.argv[1:]]
print("before run", end="")  # left in the buffer: run must flush it
run()
"""


def _child(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered stdout
    return subprocess.run([sys.executable, "-c", _SCRIPT, *args], capture_output=True,
                          text=True, check=False, timeout=300, env=env)


def test_run_saves_a_complete_model_and_runs_atexit(tmp_path: Path) -> None:
    out = tmp_path / "bbb"
    proc = _child("fit", "--model", "bbb", "--epochs", "20", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("before run")
    assert "saved to" in proc.stdout
    assert proc.stderr.rstrip().endswith("atexit ran")
    fitted = io.load(out)  # the files are complete: the model loads and predicts
    pred = fitted.predict(np.linspace(-1, 1, 7)[:, None], num_samples=50)
    assert torch.isfinite(pred.mean).all()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporaries


def test_run_keeps_the_exit_status_of_a_user_error(tmp_path: Path) -> None:
    proc = _child("predict", str(tmp_path / "missing"), str(tmp_path / "x.csv"), "--out",
                  str(tmp_path / "p.csv"))
    assert proc.returncode == 2
    assert "varbayes: error:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.rstrip().endswith("atexit ran")
    assert not (tmp_path / "p.csv").exists()


def test_python_dash_m_uses_the_same_entry(tmp_path: Path) -> None:
    out = tmp_path / "m"
    proc = subprocess.run([sys.executable, "-m", "varbayes", "fit", "--model", "bbb",
                           "--epochs", "5", "--out", str(out)], capture_output=True, text=True,
                          check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / "model.safetensors").is_file()
