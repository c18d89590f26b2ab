"""``varbayes._forked.forked_ordered_map``: order, errors, buffered output, and no orphans."""

from __future__ import annotations

import ast
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

from varbayes._forked import can_fork, forked_ordered_map

pytestmark = pytest.mark.skipif(not can_fork(), reason="needs fork (Linux)")


def test_results_come_in_order_from_a_closure() -> None:
    offset = 1000  # a closure: the children inherit it, nothing is pickled but items

    def slow_first(i: int) -> tuple[int, int]:
        time.sleep(0.05 if i == 0 else 0.0)  # the first item finishes last
        return i, os.getpid()

    results = list(forked_ordered_map(lambda i: (slow_first(i), i + offset), range(12), 2))
    assert [r[1] for r in results] == [i + offset for i in range(12)]
    assert [r[0][0] for r in results] == list(range(12))
    assert os.getpid() not in {r[0][1] for r in results}  # the work ran in the children
    assert multiprocessing.active_children() == []


def test_an_error_is_raised_in_order_and_stops_the_workers() -> None:
    def fn(i: int) -> int:
        if i == 3:
            raise ValueError(f"row {i} is not finite")
        return i

    got = []
    with pytest.raises(ValueError, match="row 3 is not finite"):
        for value in forked_ordered_map(fn, range(10), 2):
            got.append(value)
    assert got == [0, 1, 2]
    assert multiprocessing.active_children() == []


def test_stopping_early_stops_the_workers() -> None:
    gen = forked_ordered_map(lambda i: i * i, range(100), 2)
    assert next(gen) == 0
    gen.close()
    assert multiprocessing.active_children() == []


_DIES = """
import os, signal
from concurrent.futures.process import BrokenProcessPool
from varbayes._forked import forked_ordered_map
def fn(i):
    if i == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would
    return i
got = []
try:
    for value in forked_ordered_map(fn, range(8), 2):
        got.append(value)
except BrokenProcessPool as exc:
    assert "worker process ended" in str(exc), exc
    print("broken after", got, flush=True)
"""


def test_a_dead_worker_raises_instead_of_hanging() -> None:
    """A worker killed mid-chunk fails the map with BrokenProcessPool (a multiprocessing.Pool
    would wait for that chunk forever); run in a child so that a regression times out here."""
    proc = subprocess.run([sys.executable, "-c", _DIES], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("broken after "), proc.stdout
    got = ast.literal_eval(proc.stdout.removeprefix("broken after ").strip())
    assert got == list(range(len(got))) and len(got) <= 2  # in order, none past the dead one


_BUFFERED = """
import sys
from varbayes._forked import forked_ordered_map
sys.stdout.write("header\\n")  # still in the buffer when the workers are forked
print(sum(forked_ordered_map(lambda i: i, range(20), 2)))
"""


def test_buffered_output_is_written_once() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.run([sys.executable, "-c", _BUFFERED], capture_output=True, text=True,
                          check=True, env=env, timeout=120)
    assert proc.stdout == "header\n190\n"


_KILLED = """
import os, time
from varbayes._forked import forked_ordered_map
def fn(i):
    os.write(1, f"{os.getpid()}\\n".encode())  # one write: the two children's lines never mix
    time.sleep(600)
for _ in forked_ordered_map(fn, range(4), 2):
    pass
"""


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG")
def test_workers_die_with_a_killed_parent() -> None:
    with subprocess.Popen([sys.executable, "-c", _KILLED], stdout=subprocess.PIPE,
                          text=True) as proc:
        assert proc.stdout is not None
        children = {int(proc.stdout.readline()) for _ in range(2)}
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    alive = children
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _alive(pid)}
        time.sleep(0.05)
    assert not alive


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie waiting for init counts as gone
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[-1].split()[0] != "Z"


def test_the_signals_are_held_back_while_the_workers_fork(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every fork happens with SIGINT, SIGTERM and SIGHUP blocked, and the mask is restored.

    A child starts with the parent's Python handlers (the CLI's raise an exception); a signal in
    the instant after ``fork`` returned would raise in the child before the worker's code runs
    and send it back up the parent's stack as a second copy of the command (CI's test session
    once went on in a worker that way, and hung).
    """
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    masks: list[set[signal.Signals]] = []
    real_fork = os.fork

    def fork() -> int:
        masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))
        return real_fork()

    monkeypatch.setattr(os, "fork", fork)
    assert list(forked_ordered_map(abs, range(-3, 3), 2)) == [3, 2, 1, 0, 1, 2]
    assert len(masks) == 2 and all(held <= mask for mask in masks)
    assert not held & signal.pthread_sigmask(signal.SIG_BLOCK, [])
