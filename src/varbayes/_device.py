"""Where a model computes: the ``device`` option (``'auto'``, ``'cpu'``, ``'cuda'``).

:func:`varbayes.kinds.fit`, :class:`varbayes.BayesianRegressor` and the command line
(``--device``) take it. Models are saved device-independent (every tensor is copied to the CPU)
and load to the CPU unless ``map_location`` says otherwise.
"""

from __future__ import annotations

import os

import torch

from varbayes._names import DEVICE_NAMES

__all__ = ["DEVICE_NAMES", "generator_on", "resolve_device"]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The :class:`torch.device` for ``device``.

    ``'auto'`` is CUDA where it is available, else the CPU; ``'cuda'`` is the process's own GPU
    under ``torchrun`` (``LOCAL_RANK``), else the current one; ``None`` is the CPU. A
    ``torch.device`` or a string such as ``'cuda:1'`` is used as given.

    Raises
    ------
    ValueError
        For an unknown name, or CUDA asked for where there is none.
    """
    if device is None:
        return torch.device("cpu")
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        name = device.strip().lower()
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        if name == "cuda" and torch.cuda.is_available():
            rank = int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))
            name = f"cuda:{rank % max(1, torch.cuda.device_count())}"
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ValueError(
                f"device must be one of {list(DEVICE_NAMES)} or a torch device, got {device!r}"
            ) from None
    else:
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: CUDA is not available on this machine "
                         "(use device='auto' to fall back to the CPU)")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be a CPU or CUDA device, got {device!r}")
    return dev


def generator_on(device: torch.device, seed: int) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed`` (CUDA draws need a CUDA generator)."""
    return torch.Generator(device=device).manual_seed(int(seed))
