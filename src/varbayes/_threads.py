"""How many intra-op threads a problem of a given size should use."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["PARALLEL_WORK", "available_threads", "intra_op_threads"]


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
