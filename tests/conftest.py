"""Shared fixtures: deterministic seeds, few threads, validation on."""

from __future__ import annotations

import os

import pytest
import torch

from varbayes._validation import set_validation

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
