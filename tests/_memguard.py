"""An address-space guard for tests that must not allocate much (Linux only).

torch's CPU allocations are invisible to ``tracemalloc``; ``RLIMIT_AS`` sees them all. Inside
:func:`address_space_limit`, any allocation beyond ``extra`` bytes more than the process maps on
entry fails at once (torch raises ``RuntimeError``, Python ``MemoryError``) instead of paging
a shared machine to death, and the soft limit is restored on exit.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

SUPPORTED = sys.platform.startswith("linux") and resource is not None


def mapped_bytes() -> int:
    """Virtual memory the process maps now (``VmSize``), in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")  # pragma: no cover


@contextlib.contextmanager
def address_space_limit(extra: int) -> Iterator[None]:
    """Cap the address space at what is mapped now plus ``extra`` bytes (no-op off Linux)."""
    if not SUPPORTED:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = mapped_bytes() + int(extra)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
