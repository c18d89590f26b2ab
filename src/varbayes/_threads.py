"""How many intra-op threads a problem of a given size should use."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["PARALLEL_WORK", "intra_op_threads"]


#: Below this much work per step (rows x parameters, about the multiply-adds of one forward
#: pass) a second intra-op thread costs more in synchronisation than it computes; on a loaded
#: machine a descheduled worker thread can stall every operation for milliseconds.
PARALLEL_WORK = 1 << 22


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
    try:
        yield
    finally:
        torch.set_num_threads(previous)
