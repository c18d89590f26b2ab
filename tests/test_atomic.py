"""Output paths of round two (issue 13, items 1, 7, 8, 11, 14): special files, signals, umask.

Every file and directory varbayes writes goes through ``varbayes._atomic``; these tests drive
that mechanism through the CLI (and ``io.save``) with FIFOs, ``/dev/null``, sockets, symbolic
links, trailing slashes, signals and stale temporary files of dead processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from varbayes import _atomic, io
from varbayes.cli import main
from varbayes.data import write_csv

needs_posix = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error(err: str, excerpt: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("varbayes: error: "), err
    assert excerpt in lines[0], err


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("m") / "model"
    assert main(["fit", "--model", "mle", "--epochs", "2", "--out", str(path)]) == 0
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "x.csv", {"x": np.linspace(-1.0, 1.0, 5)})


def _read_fifo(path: Path, into: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(path, "rb") as fh:
            into.append(fh.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------- item 1


@needs_posix
def test_force_streams_into_fifo_and_device_never_replaces_them(
    model: Path, inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = _read_fifo(fifo, got)
    code, _, err = _run(capsys, "predict", model, inputs, "--out", fifo, "--force")
    reader.join(30)
    assert code == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO
    assert got and got[0].decode().startswith("x,mean,std")
    assert len(got[0].decode().splitlines()) == 6
    if os.path.exists("/dev/null") and stat.S_ISCHR(os.stat("/dev/null").st_mode):
        code, _, err = _run(capsys, "predict", model, inputs, "--out", "/dev/null", "--force")
        assert code == 0, err
        assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    assert _hidden(tmp_path) == []


@needs_posix
def test_force_refuses_other_character_devices(
    model: Path, inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only /dev/null, terminals and FIFOs are streamed into: never /dev/zero, /dev/mem, ..."""
    if not (os.path.exists("/dev/zero") and stat.S_ISCHR(os.stat("/dev/zero").st_mode)):
        pytest.skip("needs the /dev/zero character device")
    code, _, err = _run(capsys, "predict", model, inputs, "--out", "/dev/zero", "--force")
    assert code == 2
    _one_error(err, "/dev/zero is a character device; varbayes writes only into /dev/null")
    assert stat.S_ISCHR(os.lstat("/dev/zero").st_mode)


@needs_posix
def test_force_refuses_sockets_links_and_special_files(
    model: Path, inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        code, _, err = _run(capsys, "predict", model, inputs, "--out", sock_path, "--force")
        assert code == 2
        _one_error(err, "is a socket; varbayes never replaces a special file")
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    target = tmp_path / "precious.csv"
    target.write_text("keep me")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    code, _, err = _run(capsys, "predict", model, inputs, "--out", link, "--force")
    assert code == 2
    _one_error(err, "is a symbolic link")
    assert link.is_symlink() and target.read_text() == "keep me"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, _, err = _run(capsys, "fit", "--epochs", "1", "--out", fifo, "--force")
    assert code == 2
    _one_error(err, "is not a varbayes model directory")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert _hidden(tmp_path) == []


def test_out_dash_streams_to_stdout(
    model: Path, inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, "predict", model, inputs, "--out", "-")
    assert code == 0, err
    assert out.startswith("x,mean,std") and len(out.splitlines()) == 6
    assert "standard output" in err
    assert not (tmp_path / "-").exists() and _hidden(tmp_path) == []


def test_every_output_path_is_checked_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = tmp_path / "demo"
    demo.mkdir()
    (tmp_path / "elsewhere.png").write_bytes(b"precious")
    (demo / "data.png").symlink_to(tmp_path / "elsewhere.png")
    start = time.perf_counter()
    code, _, err = _run(capsys, "demo", "--out", demo)  # no --quick: would take minutes
    assert code == 2 and time.perf_counter() - start < 20
    _one_error(err, "is a symbolic link")
    assert (tmp_path / "elsewhere.png").read_bytes() == b"precious"
    link = tmp_path / "results.json"
    link.symlink_to(tmp_path / "elsewhere.png")
    code, _, err = _run(capsys, "benchmark", "uci", "--data-dir", tmp_path / "nodata",
                        "--dataset", "yacht", "--out", link)
    assert code == 2
    _one_error(err, "is a symbolic link")  # not the missing data set: --out is checked first


# --------------------------------------------------------------------------- item 7

_BIG_ROWS = 600_000  # predict must still be running 0.2 s after it starts writing


@pytest.fixture
def big_inputs(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "big.csv", {"x": np.linspace(-1.0, 1.0, _BIG_ROWS)})


def _wait_for(folder: Path, prefix: str, proc: subprocess.Popen[str], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if any(n.startswith(prefix) for n in _hidden(folder)):
            return
        time.sleep(0.02)
    pytest.fail(f"no temporary file {prefix}* appeared (exit {proc.poll()})")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(("signum", "code"), [(15, 143), (2, 130)])
def test_signal_during_predict_removes_temp_file(
    signum: int, code: int, model: Path, big_inputs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "p.csv"
    with subprocess.Popen(
        [sys.executable, "-m", "varbayes", "predict", str(model), str(big_inputs),
         "--samples", "2000", "--out", str(out)],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:
        _wait_for(tmp_path, ".p.csv.", proc)
        time.sleep(0.2)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    _one_error(err, "temporary files removed")
    assert not out.exists() and _hidden(tmp_path) == []


_SAVE_LOOP = """
import sys, torch
from varbayes import _atomic, io
from varbayes.kinds import FittedModel, build_model, make_config
from varbayes.data.transforms import Standardizer
config = make_config("mle", 1, hidden=[1500, 1500])
fitted = FittedModel(config, build_model(config), Standardizer(1), Standardizer(1))
with _atomic.terminate_on_signals():
    try:
        io.save(fitted, sys.argv[1], force=True)
        print("ready", flush=True)
        while True:
            io.save(fitted, sys.argv[1], force=True)
    except _atomic.Terminated as exc:
        sys.exit(128 + exc.signum)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_while_saving_removes_temp_dir(tmp_path: Path) -> None:
    path = tmp_path / "m"
    with subprocess.Popen([sys.executable, "-c", _SAVE_LOOP, str(path)], env=ENV,
                          stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        _wait_for(tmp_path, ".m.", proc)  # a save in flight
        proc.terminate()
        proc.wait(timeout=60)
    assert proc.returncode == 143
    assert _hidden(tmp_path) == [] and io.is_model_dir(path)


def _wait_for_handler(proc: subprocess.Popen[str], signum: int = 15) -> None:
    """Wait until ``proc`` catches ``signum`` (Linux: SigCgt in /proc; elsewhere: 10 s)."""
    status, deadline = Path(f"/proc/{proc.pid}/status"), time.monotonic() + 60
    if not status.exists():
        time.sleep(10)
        return
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError, StopIteration, ValueError):
            lines = status.read_text().splitlines()
            caught = int(next(ln for ln in lines if ln.startswith("SigCgt:")).split()[1], 16)
            if caught >> (signum - 1) & 1:
                return
        time.sleep(0.05)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_during_fit_exits_with_one_line(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "d.csv", {"x": np.linspace(0, 1, 20_000), "y": np.ones(20_000)})
    with subprocess.Popen(
        [sys.executable, "-m", "varbayes", "fit", str(data), "--target", "y", "--batch-size",
         "8", "--epochs", "1000", "--out", str(tmp_path / "m")],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:
        _wait_for_handler(proc)
        time.sleep(0.5)
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    _one_error(err, "terminated by SIGTERM")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_stale_temp_files_of_dead_processes_are_removed(
    model: Path, inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead, alive = _dead_pid(), os.getpid()
    stale_file = tmp_path / f".p.csv.{dead}.deadbeef.tmp"
    stale_file.write_text("partial")
    live_file = tmp_path / f".p.csv.{alive}.cafef00d.tmp"
    live_file.write_text("being written")
    stale_dir = tmp_path / f".m.{dead}.0123abcd.tmpdir"
    stale_dir.mkdir()
    (stale_dir / io.WEIGHTS_FILE).write_bytes(b"partial")
    foreign = tmp_path / f".m.{dead}.4567abcd.old"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not varbayes's")
    code, _, err = _run(capsys, "predict", model, inputs, "--out", tmp_path / "p.csv")
    assert code == 0, err
    code, _, err = _run(capsys, "fit", "--epochs", "1", "--out", tmp_path / "m")
    assert code == 0, err
    assert not stale_file.exists() and not stale_dir.exists()
    assert live_file.read_text() == "being written"  # its process is running
    assert (foreign / "notes.txt").exists()  # holds a file varbayes does not write
    assert _hidden(tmp_path) == sorted([live_file.name, foreign.name])


# --------------------------------------------------------------------------- item 8


def test_fit_out_problems_are_found_before_reading_data(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.csv"  # reading it would fail: the --out check must come first
    empty = tmp_path / "empty"
    empty.mkdir()
    link = tmp_path / "link"
    link.symlink_to(empty)
    code, _, err = _run(capsys, "fit", missing, "--target", "y", "--out", link)
    assert code == 2
    _one_error(err, "is a symbolic link")
    owned = tmp_path / "owned"
    io.save(io.load(model), owned)
    (owned / "notes.txt").write_text("mine")
    code, _, err = _run(capsys, "fit", missing, "--target", "y", "--out", owned, "--force")
    assert code == 2
    _one_error(err, "did not write (['notes.txt'])")
    assert link.is_symlink() and (owned / "notes.txt").read_text() == "mine"


# --------------------------------------------------------------------------- item 11


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_written_files_honour_the_umask(
    mask: int, model: Path, inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = os.umask(mask)
    try:
        assert _atomic.umask() == mask
        saved = io.save(io.load(model), tmp_path / "m")
        code, _, err = _run(capsys, "predict", model, inputs, "--out", tmp_path / "p.csv")
        assert code == 0, err
    finally:
        os.umask(old)
    file_mode, dir_mode = 0o666 & ~mask, 0o777 & ~mask
    assert stat.S_IMODE(saved.stat().st_mode) == dir_mode
    for name in (io.WEIGHTS_FILE, io.CONFIG_FILE):
        assert stat.S_IMODE((saved / name).stat().st_mode) == file_mode, name
    assert stat.S_IMODE((tmp_path / "p.csv").stat().st_mode) == file_mode


# --------------------------------------------------------------------------- item 14


def test_trailing_slash_means_a_directory(
    model: Path, inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "predict", model, inputs, "--out", f"{tmp_path / 'newdir'}/")
    assert code == 2
    _one_error(err, "it names a directory; give a file name")
    assert not (tmp_path / "newdir").exists()
    code, _, err = _run(capsys, "fit", "--epochs", "1", "--out", f"{tmp_path / 'mdir'}/")
    assert code == 0, err
    assert io.is_model_dir(tmp_path / "mdir")


def _swallowed_sigterm() -> None:
    """Send SIGTERM to this process and lose its exception, as C code that clears errors does."""
    with contextlib.suppress(_atomic.Terminated):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1.0)  # the handler runs (and raises) at the next bytecode
        pytest.fail("the SIGTERM handler did not run")


@pytest.mark.parametrize("fast", [True, False])
def test_a_sigterm_whose_exception_was_lost_still_ends_training(fast: bool) -> None:
    # 1 in 5 `varbayes fit` runs signalled during the torch import kept training to the end:
    # C code swallowed the Terminated, and the handler ignores a second signal.
    import torch

    from varbayes import ELBO
    from varbayes.infer import train
    from varbayes.models import BayesianMLP

    x, y = torch.linspace(-1, 1, 32)[:, None], torch.zeros(32)
    model, objective = BayesianMLP(1, (4,)), ELBO(32)
    with _atomic.terminate_on_signals():
        _swallowed_sigterm()
        with pytest.raises(_atomic.Terminated, match="SIGTERM"):
            train(model, objective, x, y, epochs=3, lr=0.01, fast=fast)
    # Outside the CLI's block nothing is pending: library training runs as usual.
    assert len(train(model, objective, x, y, epochs=3, lr=0.01, fast=fast).loss) == 3


@pytest.mark.parametrize("after", ["returns", "raises ImportError"])
def test_the_cli_reports_a_lost_sigterm_as_termination(
    after: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from varbayes.cli import commands

    def command(args: object) -> int:
        _swallowed_sigterm()
        if after == "returns":
            return 0
        raise ImportError("cannot load module more than once per process")

    monkeypatch.setitem(commands.COMMANDS, "demo", command)
    code, _, err = _run(capsys, "demo", "--out", tmp_path / "d")
    assert code == 128 + signal.SIGTERM, err
    _one_error(err, "terminated by SIGTERM")
