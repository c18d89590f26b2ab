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
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.pool import ApplyResult
from typing import Any, TypeVar

import torch

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


def forked_ordered_map(fn: Callable[[_T], _R], items: Iterable[_T],
                       workers: int) -> Iterator[_R]:
    """``map(fn, items)`` on ``workers`` forked processes, results in the order of ``items``.

    ``fn`` may be any callable (a closure too); ``items`` and the results must pickle. An
    exception in ``fn`` is raised here when its result is due, and the workers are stopped.
    Use only where :func:`can_fork`, and from one thread at a time.
    """
    global _TASK
    if _TASK is not None:
        raise RuntimeError("forked_ordered_map is already running in this process")
    sys.stdout.flush()  # a child flushes its copy of these buffers when it ends
    sys.stderr.flush()
    _TASK = fn  # the children are forked with it (also any the pool starts to replace one)
    done = False
    try:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # also in the pool's
        try:  # threads, which start here and fork any replacement worker
            pool = multiprocessing.get_context("fork").Pool(workers, initializer=_child_init)
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            raise
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a pending signal raises here
            pending: deque[ApplyResult[_R]] = deque()
            for item in items:
                pending.append(pool.apply_async(_run, (item,)))
                if len(pending) > workers:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()
            done = True
        finally:
            if done:
                pool.close()
            else:  # an error, Ctrl-C, a signal, or the caller stopped early
                pool.terminate()
            pool.join()
    finally:
        _TASK = None
