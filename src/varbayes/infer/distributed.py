"""Data-parallel training with PyTorch's own engine: ``torch.distributed`` + DDP under torchrun.

Launch any varbayes training (the ``varbayes fit`` command, :func:`varbayes.fit`, or your own
script calling :func:`varbayes.train`) with ``torchrun --nproc_per_node=R ...`` and the same
call trains on ``R`` processes, unchanged:

* the launch is detected from the ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` variables that
  torchrun sets (:func:`launch_info`), and the process group is initialised with ``gloo`` for CPU
  tensors and ``nccl`` for CUDA tensors (:func:`init_process_group`, :func:`process_group`);
* each epoch the rows are shuffled identically on every rank and dealt out by
  :class:`torch.utils.data.DistributedSampler` (:class:`ShardedBatches`), padded so that every
  rank takes the same number of equally sized batches; ``batch_size`` stays the *global* batch,
  so one epoch takes the same number of optimiser steps as on one process;
* the model is wrapped in DDP (:func:`wrap_model`): rank 0's parameters to every rank, the
  gradients averaged after each backward pass;
* each rank's weight noise comes from a generator of ``(seed, rank)`` (:func:`rank_generator`).

Why the ELBO needs no change
----------------------------
:class:`~varbayes.ELBO` returns :math:`\\overline{\\mathrm{nll}}_{B_r} + \\mathrm{KL}/N` on rank
``r``, with ``N`` the *global* number of training points (every rank holds the whole data set
and shards indices only, so ``N`` is the global size by construction). DDP averages the
gradients over the ``R`` ranks, whose batches have the same size:

.. math::
    \\frac1R \\sum_{r=1}^R \\nabla\\Big(\\overline{\\mathrm{nll}}_{B_r}
        + \\frac{\\mathrm{KL}}{N}\\Big)
    = \\nabla\\,\\overline{\\mathrm{nll}}_{B_1 \\cup \\dots \\cup B_R}
        + \\frac{\\nabla\\mathrm{KL}}{N},

the gradient of the same objective on one process over the global batch: the likelihood is
scaled by the global ``N`` and the KL is counted once, not once per rank.

Examples
--------
>>> from varbayes.infer.distributed import ShardedBatches
>>> shards = [ShardedBatches(10, 4, rank=r, world_size=2, seed=0) for r in range(2)]
>>> [len(s.epoch(0)) for s in shards], shards[0].local_batch_size
([3, 3], 2)
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from enum import Enum
from typing import Any, NamedTuple, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler

__all__ = [
    "DDPTraining",
    "DistributedMode",
    "LaunchInfo",
    "ShardedBatches",
    "ddp_training",
    "default_backend",
    "destroy_process_group",
    "get_rank",
    "get_world_size",
    "init_process_group",
    "is_distributed",
    "is_main_process",
    "launch_info",
    "process_group",
    "rank_generator",
    "rank_seed",
    "wrap_model",
]

_SEED_BOUND = 2**62


class DistributedMode(str, Enum):
    """Whether training runs data-parallel over the processes of a torchrun launch."""

    AUTO = "auto"
    """Data-parallel when launched by torchrun with more than one process (or when a process
    group of more than one rank is already initialised); one process otherwise."""
    ON = "on"
    """Always data-parallel (even with one process); an error when not launched by torchrun."""
    OFF = "off"
    """Never: every process trains on its own, on all the data."""


def _check_mode(mode: DistributedMode | str) -> DistributedMode:
    try:
        return DistributedMode(mode)
    except ValueError:
        allowed = [m.value for m in DistributedMode]
        raise ValueError(f"unknown distributed mode {mode!r}; expected one of {allowed}") from None


class LaunchInfo(NamedTuple):
    """Where this process sits in a torchrun launch.

    Attributes
    ----------
    rank : int
        Global rank, in ``range(world_size)``.
    world_size : int
        Number of processes over all nodes.
    local_rank : int
        Rank on this node (selects the GPU).
    """

    rank: int
    world_size: int
    local_rank: int


def _env_int(name: str) -> int | None:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} is not an integer") from None


def launch_info() -> LaunchInfo | None:
    """Read the launch from ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (set by torchrun).

    Returns
    -------
    LaunchInfo or None
        ``None`` when ``RANK`` or ``WORLD_SIZE`` is not set (not launched by torchrun).

    Raises
    ------
    ValueError
        If the variables are not integers or are inconsistent.
    """
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    if rank is None or world is None:
        return None
    local = _env_int("LOCAL_RANK")
    local = rank if local is None else local
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(
            f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}, "
            f"LOCAL_RANK={local}; expected 0 <= RANK < WORLD_SIZE"
        )
    return LaunchInfo(rank, world, local)


def is_distributed() -> bool:
    """Whether a process group is initialised in this process."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Global rank of this process: from the process group, else ``RANK``, else 0."""
    if is_distributed():
        return dist.get_rank()
    info = launch_info()
    return 0 if info is None else info.rank


def get_world_size() -> int:
    """Number of processes: from the process group, else ``WORLD_SIZE``, else 1."""
    if is_distributed():
        return dist.get_world_size()
    info = launch_info()
    return 1 if info is None else info.world_size


def is_main_process() -> bool:
    """Whether this process is rank 0, the one that writes files and prints (True if alone)."""
    return get_rank() == 0


def default_backend() -> str:
    """``'cpu:gloo,cuda:nccl'`` where CUDA and NCCL are available, else ``'gloo'``.

    The combined backend all-reduces CPU tensors with gloo and CUDA tensors with NCCL, so the
    same launch serves CPU and GPU models.
    """
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def init_process_group(backend: str | None = None, *, timeout: float | None = None) -> bool:
    """Initialise the default process group of a torchrun launch (``env://``).

    Parameters
    ----------
    backend : str or None, default=None
        ``None`` picks :func:`default_backend` (gloo on CPU, nccl for CUDA tensors).
    timeout : float or None, default=None
        Seconds a collective may wait for the other ranks (``None``: PyTorch's default).

    Returns
    -------
    bool
        True if this call initialised the group, False if one already existed.

    Raises
    ------
    RuntimeError
        If ``torch.distributed`` is unavailable, or the process was not launched by torchrun.
    """
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this PyTorch build")
    if dist.is_initialized():
        return False
    info = launch_info()
    if info is None:
        raise RuntimeError(
            "distributed training needs a torchrun launch (RANK and WORLD_SIZE are not set): "
            "run e.g. 'torchrun --nproc_per_node=2 -m varbayes fit ...', or use "
            "distributed='auto'/'off'"
        )
    if torch.cuda.is_available() and info.local_rank < torch.cuda.device_count():
        torch.cuda.set_device(info.local_rank)
    kwargs: dict[str, Any] = (
        {} if timeout is None else {"timeout": timedelta(seconds=float(timeout))})
    dist.init_process_group(
        backend or default_backend(), init_method="env://", rank=info.rank,
        world_size=info.world_size, **kwargs,
    )
    return True


def destroy_process_group() -> None:
    """Destroy the default process group if there is one (idempotent).

    The GIL is released for 20 ms first: gloo's run-loop threads drop a collective's tensors
    after its caller resumes, and need the GIL for those made in Python. One still waiting at
    interpreter finalisation aborts the process (see docs/distributed.md).
    """
    if is_distributed():
        time.sleep(0.02)
        dist.destroy_process_group()


def _wants_ddp(mode: DistributedMode) -> bool:
    """Whether ``mode`` asks for data-parallel training in this process."""
    if mode is DistributedMode.OFF:
        return False
    if mode is DistributedMode.ON:
        return True
    return get_world_size() > 1


@contextlib.contextmanager
def process_group(
    mode: DistributedMode | str = DistributedMode.AUTO, *, backend: str | None = None,
    timeout: float | None = None,
) -> Iterator[bool]:
    """Run a block inside the process group of a torchrun launch, then tear it down.

    Yields whether training will be data-parallel. A group this context created is destroyed on
    exit (also on errors); an existing one is left alone.

    Examples
    --------
    >>> with process_group("auto") as parallel:   # outside torchrun: nothing to do
    ...     parallel
    False
    """
    mode = _check_mode(mode)
    wanted = _wants_ddp(mode)
    created = init_process_group(backend, timeout=timeout) if wanted else False
    try:
        yield wanted
    finally:
        if created:
            destroy_process_group()


def rank_seed(seed: int, rank: int) -> int:
    """A seed for ``rank`` derived from the shared ``seed`` with :class:`numpy.random.SeedSequence`.

    Distinct ranks get statistically independent streams; the same ``(seed, rank)`` always gives
    the same seed, in ``[0, 2**63)``.
    """
    if int(seed) < 0 or int(rank) < 0:
        raise ValueError(f"seed and rank must be >= 0, got seed={seed!r}, rank={rank!r}")
    state = np.random.SeedSequence([int(seed), int(rank)]).generate_state(1, dtype=np.uint64)
    return int(state[0]) & (2**63 - 1)


def rank_generator(
    seed: int, rank: int, device: torch.device | str | None = None
) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`rank_seed` ``(seed, rank)``."""
    return torch.Generator(device=device or "cpu").manual_seed(rank_seed(seed, rank))


class ShardedBatches:
    """Mini-batches of one rank in each epoch, dealt by :class:`DistributedSampler`.

    Every epoch the ``n`` row indices are shuffled with the same seed on every rank
    (``sampler.set_epoch``), padded by repeating a few rows (at most ``world_size - 1``) so that
    they divide evenly, and dealt out round-robin; each rank then cuts its ``ceil(n / R)`` rows
    into batches of ``ceil(batch_size / R)``. All ranks thus take the same number of steps with
    batches of the same size, and one step covers about ``batch_size`` rows over all ranks.

    Parameters
    ----------
    n : int
        Number of rows of the (global) data set.
    batch_size : int or None
        Global batch size; ``None`` or ``>= n`` means full batch (the shard of each rank).
    rank, world_size : int
        This rank and the number of ranks.
    seed : int
        Shuffling seed, the same on every rank.
    """

    def __init__(
        self, n: int, batch_size: int | None, *, rank: int, world_size: int, seed: int
    ) -> None:
        if int(n) < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        if int(world_size) < 1 or not 0 <= int(rank) < int(world_size):
            raise ValueError(
                f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
            )
        self.n, self.world_size = int(n), int(world_size)
        global_batch = self.n if batch_size is None else min(int(batch_size), self.n)
        self.shard_size: int = math.ceil(self.n / self.world_size)  # DistributedSampler's
        self.local_batch_size: int = min(self.shard_size, math.ceil(global_batch / self.world_size))
        self.steps: int = math.ceil(self.shard_size / self.local_batch_size)
        # Full batch: a fixed shard (shuffling would only reorder it).
        self.sampler: DistributedSampler[int] = DistributedSampler(
            cast("Dataset[int]", range(self.n)),  # it only takes len() of its data set
            num_replicas=self.world_size, rank=int(rank), shuffle=self.steps > 1,
            seed=int(seed), drop_last=False,
        )

    def epoch(self, epoch: int, device: torch.device | str | None = None) -> list[Tensor]:
        """Index tensors of this rank's batches in ``epoch`` (``steps`` of them)."""
        self.sampler.set_epoch(int(epoch))
        return list(self.indices().to(device).split(self.local_batch_size))

    def indices(self) -> Tensor:
        """Indices of this rank in the current epoch: ``list(self.sampler)`` as a tensor.

        The sampler's own algorithm (seeded permutation, padding by repetition, stride
        ``world_size`` from ``rank``), vectorised: ``list(sampler)`` builds Python lists, which
        costs a fifth of an epoch at a million rows.
        """
        sampler = self.sampler
        if sampler.shuffle:
            g = torch.Generator().manual_seed(sampler.seed + sampler.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        pad = sampler.total_size - self.n
        if pad > 0:
            order = torch.cat([order, order.repeat(math.ceil(pad / self.n))[:pad]])
        return order[sampler.rank : sampler.total_size : sampler.num_replicas]


def wrap_model(model: nn.Module, device: torch.device | str | None = None) -> nn.Module:
    """Wrap ``model`` in :class:`DistributedDataParallel` (the process group must exist).

    DDP copies rank 0's parameters and buffers to every rank at construction and averages the
    gradients in the backward pass. Buffers are not re-sent at every step: varbayes models do not
    change them while training.
    """
    if not is_distributed():
        raise RuntimeError("wrap_model needs an initialised process group; see process_group()")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    ids = [dev.index if dev.index is not None else torch.cuda.current_device()] \
        if dev.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)


def _comm_device(device: torch.device) -> torch.device:
    """Device of the small tensors sent in collectives (CPU unless the backend is NCCL only)."""
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


class DDPTraining:
    """What :func:`varbayes.train` needs under DDP: wrapped model, rank noise, batches, reductions.

    Build it with :func:`ddp_training`.

    Attributes
    ----------
    model : nn.Module
        The DDP-wrapped model to call in the objective (trains the original in place).
    generator : torch.Generator
        This rank's noise generator, from :func:`rank_generator` ``(seed, rank)``.
    batches : ShardedBatches
    rank, world_size : int
    """

    def __init__(
        self, model: nn.Module, n: int, batch_size: int | None, *, seed: int,
        device: torch.device,
    ) -> None:
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.device = device
        self.model = wrap_model(model, device)
        self.generator = rank_generator(seed, self.rank, device)
        self.batches = ShardedBatches(n, batch_size, rank=self.rank, world_size=self.world_size,
                                      seed=seed)

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (shows the progress bar)."""
        return self.rank == 0

    def epoch_batches(self, epoch: int) -> list[Tensor]:
        """Batch indices of this rank for ``epoch``, on the data's device."""
        return self.batches.epoch(epoch, self.device)

    def global_loss(self, loss: Tensor) -> Tensor:
        """Mean of the ranks' losses (a float64 scalar); non-finite if any rank's is.

        Every rank gets the same value, so all of them take the same decision on a non-finite
        loss (raise, or skip the step before its backward pass).
        """
        value = loss.detach().reshape(1).to(_comm_device(self.device), torch.float64)
        dist.all_reduce(value)
        return value[0] / self.world_size

    def reduce_epoch(self, sums: Tensor, taken: int) -> tuple[Tensor, int]:
        """Sum the per-rank sums of the epoch's diagnostics and step counts over the ranks."""
        packed = torch.cat([sums.double().reshape(-1), sums.new_tensor([taken]).double()])
        packed = packed.to(_comm_device(self.device))
        dist.all_reduce(packed)
        packed = packed.cpu()
        return packed[:-1], int(packed[-1].item())


def _shared_seed(generator: torch.Generator | None, device: torch.device) -> int:
    """Draw a seed from ``generator`` (or the global RNG) and broadcast rank 0's value."""
    if generator is not None:
        seed = torch.randint(0, _SEED_BOUND, (1,), generator=generator,
                             device=generator.device).cpu()
    else:
        seed = torch.randint(0, _SEED_BOUND, (1,))
    seed = seed.to(_comm_device(device))
    dist.broadcast(seed, src=0)
    return int(seed.item())


_REGISTERED_EXIT = False


def ddp_training(
    model: nn.Module, *, n: int, batch_size: int | None, generator: torch.Generator | None,
    device: torch.device | str, mode: DistributedMode | str = DistributedMode.AUTO,
) -> DDPTraining | None:
    """Set up data-parallel training, or return ``None`` to train on this process alone.

    With ``mode='auto'`` this is DDP exactly when the process runs under torchrun with more
    than one process (or in an initialised group of more than one rank). A process group that
    does not exist yet is initialised here and destroyed when the interpreter exits; use
    :func:`process_group` to control its lifetime yourself. All ranks must call this (it holds
    collectives): one shared seed is drawn from ``generator`` and broadcast from rank 0, and
    seeds the shuffling (the same on all ranks) and each rank's noise (:func:`rank_generator`).

    Parameters
    ----------
    model : nn.Module
        The model to train; DDP wraps it, and it is updated in place.
    n : int
        Global number of training rows.
    batch_size : int or None
        Global batch size (``None``: full batch).
    generator : torch.Generator or None
        The caller's generator (one draw is taken from it).
    device : torch.device or str
        Device of the data and the model.
    mode : {'auto', 'on', 'off'}, default='auto'

    Returns
    -------
    DDPTraining or None
    """
    global _REGISTERED_EXIT
    mode = _check_mode(mode)
    if not _wants_ddp(mode):
        return None
    if init_process_group() and not _REGISTERED_EXIT:
        atexit.register(destroy_process_group)
        _REGISTERED_EXIT = True
    device = torch.device(device)
    seed = _shared_seed(generator, device)
    return DDPTraining(model, n, batch_size, seed=seed, device=device)
