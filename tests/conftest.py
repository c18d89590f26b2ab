"""Shared fixtures: deterministic seeds, few threads, validation on.

The tests mirror the package (``tests/data/`` for ``varbayes.data`` and so on) in folders without
``__init__.py``, so every test file has a unique basename (pytest's default ``prepend`` import
mode imports each one as a top-level module). The helpers at this level (``_reference``,
``_memguard``) are imported by their bare names from any folder: this folder is put on
``sys.path`` here, whatever the import mode.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from varbayes._validation import set_validation

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed_and_validate():
    torch.manual_seed(0)
    set_validation(True)
    yield


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
