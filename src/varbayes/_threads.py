"""How many intra-op threads a problem of a given size should use."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

__all__ = ["PARALLEL_WORK", "available_threads", "in_order", "intra_op_threads",
           "ordered_map"]

_T = TypeVar("_T")
_R = TypeVar("_R")


#: Below this much work per step (rows x parameters, about the multiply-adds of one forward
#: pass) a second intra-op thread costs more in synchronisation than it computes; on a loaded
#: machine a descheduled worker thread can stall every operation for milliseconds.
PARALLEL_WORK = 1 << 22

#: Thread counts in force when the enclosing ``intra_op_threads`` blocks went single-threaded.
_OUTER: list[int] = []


def available_threads() -> int:
    """Threads the process may use: ``torch.get_num_threads()`` outside any single-threaded block.

    Code that parallelises coarsely (whole chunks per thread, each running single-threaded
    operations, as the mixture quantiles do) asks this rather than the current intra-op count.
    """
    return _OUTER[0] if _OUTER else torch.get_num_threads()


@contextlib.contextmanager
def intra_op_threads(work: int) -> Iterator[None]:
    """Run the block single-threaded if ``work`` (rows x parameters per step) is small.

    Small models (the post's 1-20-20-1 on 150 points) are bound by per-operation overhead, not
    arithmetic; intra-op threads only add synchronisation. The previous thread count is restored
    on exit. Larger problems keep ``torch.get_num_threads()`` threads.
    """
    previous = torch.get_num_threads()
    if work >= PARALLEL_WORK or previous == 1:
        yield
        return
    torch.set_num_threads(1)
    _OUTER.append(previous)
    try:
        yield
    finally:
        _OUTER.pop()
        torch.set_num_threads(previous)


def in_order(submit: Callable[[_T], Future[_R]], items: Iterable[_T],
             workers: int) -> Iterator[_R]:
    """The results of ``submit(item)`` for ``items``, in order, at most ``workers + 1`` pending.

    The window that :func:`ordered_map` and :func:`varbayes._forked.forked_ordered_map` keep
    over their pools: an exception is raised when its result is due.
    """
    pending: deque[Future[_R]] = deque()
    for item in items:
        pending.append(submit(item))
        if len(pending) > workers:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def ordered_map(fn: Callable[[_T], _R], items: Iterable[_T], workers: int) -> Iterator[_R]:
    """``map(fn, items)`` on ``workers`` threads, each running single-threaded operations.

    Results come in the order of ``items``, with at most ``workers + 1`` items taken and not
    yet returned (memory bounded by a few items). The intra-op thread count is 1 while it
    runs (coarse-grained work, as for the quantiles: a descheduled thread stalls nothing but
    its own item) and is restored afterwards. ``items`` is consumed in the caller's thread.
    An exception in ``fn`` is raised when its result is due; later items are cancelled.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="varbayes-map")
    try:
        yield from in_order(lambda item: pool.submit(fn, item), items, workers)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(previous)
