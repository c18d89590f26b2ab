"""An ordered map over forked worker processes, for ``varbayes predict``'s chunks.

:func:`varbayes._threads.ordered_map` runs chunks on threads, which share the interpreter
lock: on two cores the threads of ``varbayes predict`` gave 1.3-1.5x, the rest lost to the lock
held by the small tensor operations of each chunk and by the main thread's reading and writing.
Worker processes forked from the command share nothing at run time, so the chunks' work runs on
every core while the main process reads and writes (``docs/performance.md``, "Prediction at
scale").

The function is not pickled: the children are forked after it is set, so they hold it (and the
model it closes over) already; only the items and the results travel, through pipes. At most
``workers + 1`` items are in flight, taken from ``items`` in the caller's thread, so memory
stays bounded by a few chunks as with the threads.

Children ignore SIGINT (the command handles Ctrl-C and then stops them), take SIGTERM and SIGHUP
with the default action, and on Linux die with their parent (``PR_SET_PDEATHSIG``), so no worker
outlives a killed command. The parent blocks those signals while it forks: a child inherits the
parent's Python handlers (the command's raise an exception), and a signal that reached it in
the instant after ``fork`` returned, before the worker's own code runs, would raise there and
send the child back up the parent's stack, to go on as a second copy of the command. Blocked,
such a signal waits until the child has set its own handlers. Children never flush or remove
the parent's files: a worker process ends with ``os._exit`` after flushing only the standard
streams, which the parent flushes before it forks.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import torch

from varbayes._threads import in_order

__all__ = ["can_fork", "forked_ordered_map"]

_T = TypeVar("_T")
_R = TypeVar("_R")

#: The function of the running map, set before the children are forked (they inherit it).
_TASK: Callable[[Any], Any] | None = None
_PR_SET_PDEATHSIG = 1
#: The signals held back from a child until its handlers are set (see above).
_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def can_fork() -> bool:
    """Whether :func:`forked_ordered_map` is available: Linux, where ``fork`` is the default.

    (macOS forbids fork after some system frameworks start threads; Windows has no fork.)
    """
    return sys.platform.startswith("linux") and \
        "fork" in multiprocessing.get_all_start_methods()


def _child_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the workers after Ctrl-C
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)  # not the parent's handler: just end
    try:  # end with the parent, even if it is killed (SIGKILL) before it stops the pool
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - not Linux's libc
        pass
    torch.set_num_threads(1)  # one process per core; intra-op threads would compete
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)  # held back since the fork


def _run(item: Any) -> Any:
    assert _TASK is not None  # set by forked_ordered_map before the fork
    return _TASK(item)


def _ready() -> None:
    """The first task: it makes the pool fork its workers (while the signals are held back)."""


def forked_ordered_map(fn: Callable[[_T], _R], items: Iterable[_T],
                       workers: int) -> Iterator[_R]:
    """``map(fn, items)`` on ``workers`` forked processes, results in the order of ``items``.

    ``fn`` may be any callable (a closure too); ``items`` and the results must pickle. An
    exception in ``fn`` is raised here when its result is due; a worker that dies (killed, out
    of memory) raises :class:`~concurrent.futures.process.BrokenProcessPool` instead of leaving
    its chunk waiting forever. Either way, and when the caller stops early, the chunks not
    started are cancelled and the workers end after their current chunk, as with
    :func:`varbayes._threads.ordered_map`. Use only where :func:`can_fork`, and from one thread
    at a time.
    """
    global _TASK
    if _TASK is not None:
        raise RuntimeError("forked_ordered_map is already running in this process")
    sys.stdout.flush()  # a child flushes its copy of these buffers when it ends
    sys.stderr.flush()
    _TASK = fn  # the children are forked with it
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_child_init)
    try:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:  # with fork, the first task starts every worker (and the pool's thread) here
            started = pool.submit(_ready)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a pending signal raises here
        started.result()
        yield from in_order(lambda item: pool.submit(_run, item), items, workers)
    except BrokenProcessPool as exc:
        raise BrokenProcessPool("a worker process ended before its chunk was done (killed, or "
                                "out of memory?)") from exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _TASK = None
