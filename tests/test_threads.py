"""varbayes._threads: the coarse-grained ordered map the streaming CLI uses."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from varbayes._threads import ordered_map


def test_ordered_map_keeps_the_order_and_bounds_what_is_in_flight() -> None:
    taken: list[int] = []
    returned: list[int] = []

    def items():
        for i in range(12):
            taken.append(i)
            assert len(taken) - len(returned) <= 3 + 1  # workers + 1, and the one being made
            yield i

    def slow_square(i: int) -> tuple[int, int, str]:
        time.sleep(0.002 * (i % 3))  # finishing out of order
        return i * i, torch.get_num_threads(), threading.current_thread().name

    before = torch.get_num_threads()
    for value, threads, name in ordered_map(slow_square, items(), 3):
        returned.append(value)
        assert threads == 1 and name.startswith("varbayes-map")
    assert returned == [i * i for i in range(12)]
    assert torch.get_num_threads() == before


def test_ordered_map_raises_where_the_item_failed_and_restores_threads() -> None:
    before = torch.get_num_threads()

    def fails_at_five(i: int) -> int:
        if i == 5:
            raise ValueError("row 5 is not finite")
        return i

    got = []
    with pytest.raises(ValueError, match="row 5"):
        for value in ordered_map(fails_at_five, range(20), 2):
            got.append(value)
    assert got == [0, 1, 2, 3, 4] and torch.get_num_threads() == before
    assert list(ordered_map(fails_at_five, range(3), 1)) == [0, 1, 2]  # one worker: inline
