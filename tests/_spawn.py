"""Run a function on two ``torch.distributed`` ranks (gloo, a free local port) and collect it."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _rank(rank: int, body: Callable[[int], Any], path: str, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.save(body(rank), f"{path}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()
    # The results are on disk: leave without finalising the interpreter. A gloo run-loop thread
    # can still be releasing the last collective's tensors (it needs the GIL to drop their
    # Python objects); if the interpreter finalises meanwhile, that thread is ended inside a C++
    # destructor and the rank aborts with "terminate called without an active exception" (about
    # 1 in 10 runs of an IVON step here; pytorch/pytorch#179291 describes it).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def on_two_ranks(body: Callable[[int], Any]) -> list[Any]:
    """``body(rank)`` on ranks 0 and 1 of a gloo process group; its two results (tensors)."""
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in range(3):  # a free port can be taken between probing and binding it
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            try:
                mp.spawn(_rank, args=(body, tmp, port), nprocs=2, join=True)
                break
            except mp.ProcessRaisedException:
                if attempt == 2:
                    raise
        return [torch.load(f"{tmp}/rank{r}.pt") for r in range(2)]
