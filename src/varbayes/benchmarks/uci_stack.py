"""The UCI protocol for many splits at once, on the vectorised engine.

:func:`fit_splits` runs steps 2-4 of the protocol of :mod:`varbayes.benchmarks.uci` for several
splits of one data set together: the validation runs of all splits are one
:func:`varbayes.train_many` stack and their refits on all training rows another, stepped
checkpoint by checkpoint side by side. At every checkpoint each split's validation model is
scored (exactly as :func:`~varbayes.benchmarks.uci.select_checkpoint` does) and, when the score
is that split's best so far, a copy of its refit model at the same checkpoint is kept: the refit
"up to the chosen checkpoint" is that copy, without a second pass over the schedule.

Each model draws its weight noise and its mini-batch order from its own generator, seeded as in
the one-split runner (``tests/benchmarks/test_uci_stack.py``), so a split's result is that of
:func:`~varbayes.benchmarks.uci.fit_split` up to floating-point rounding: what it gets does not
depend on which splits are trained beside it. Rounding differs because the batched products sum
in another order; over a 1800-epoch run that grows to differences of about 1e-3 in a split's
test LL (training is chaotic at that level), with no sign in either direction. The test rows are
only read after training, to score the chosen models.

Above :data:`FULL_BATCH_ROWS` training rows a schedule's stage of ``E`` epochs at learning rate
``lr`` becomes ``STEP_FACTOR * E`` Adam steps at ``STEP_FACTOR * lr`` on mini-batches of
:data:`MINI_BATCH` rows (checkpoints as many steps apart, times the factor): each update at a
fixed cost instead of one growing with ``N``. With the full-batch schedule's own number of
steps and rates (factor 1) the test LL fell about 0.015 short of full batch; with twice both it
is level (``docs/performance.md``, "UCI training").
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from typing import Any, cast

import torch

from varbayes._fast import unsupported
from varbayes._fast.engine import train_many
from varbayes.benchmarks.uci import (
    _VALIDATION,
    SCHEDULES,
    VALIDATION_SAMPLES,
    SplitResult,
    Stage,
    _checkpoints,
    _config,
    _Run,
    _scaled,
    _seed,
    chosen,
    score_checkpoint,
    test_split,
    validation_rows,
)
from varbayes.data import UCISplit
from varbayes.infer.early_stopping import BestCheckpoint
from varbayes.models import BayesianMLP

__all__ = ["FULL_BATCH_ROWS", "MINI_BATCH", "STEP_FACTOR", "fit_splits", "stackable",
           "step_schedule"]

#: Up to this many training rows a stage's epochs are full-batch Adam steps (as in the
#: one-split runner); above it they are steps on mini-batches of :data:`MINI_BATCH` rows.
FULL_BATCH_ROWS = 4096
MINI_BATCH = 1024
#: Above :data:`FULL_BATCH_ROWS`: a stage's Adam steps and learning rate, as multiples of its
#: full-batch epochs and rate.
STEP_FACTOR = 2


def stackable(kind: str, in_features: int, hidden: int,
              overrides: dict[str, Any] | None = None) -> bool:
    """Whether the models of ``kind`` train on the vectorised engine (``hetero``, ``bbb``)."""
    config = _config(kind, in_features, hidden, overrides)
    if config.get("batch_size") is not None:  # a user's batch size: keep its epochs as epochs
        return False
    probe = _Run(config, torch.zeros(2, in_features).numpy(), torch.arange(2.0).numpy(), 0)
    return unsupported(probe.model, probe.objective, frozen=True) is None


def step_schedule(schedule: Sequence[Stage], n_rows: int) -> tuple[tuple[Stage, ...], int]:
    """``schedule`` for ``n_rows`` rows of the validation run, and its steps per epoch.

    Up to :data:`FULL_BATCH_ROWS` rows: unchanged, one full-batch step per epoch. Above, each
    stage takes :data:`STEP_FACTOR` times its epochs in Adam steps at :data:`STEP_FACTOR`
    times its learning rate, with checkpoints :data:`STEP_FACTOR` times its spacing in steps
    apart (each count rounded up to whole epochs, then multiplied), on mini-batches of about
    :data:`MINI_BATCH` rows.
    The refit takes as many steps per epoch on all training rows (batches of
    ``ceil(N / steps)`` rows), so both runs reach every checkpoint after the same number of
    steps.
    """
    if n_rows <= FULL_BATCH_ROWS:
        return tuple(schedule), 1
    steps = math.ceil(n_rows / MINI_BATCH)

    def epochs(n_steps: int) -> int:
        return STEP_FACTOR * max(1, math.ceil(n_steps / steps))

    return tuple(Stage(epochs(s.epochs), STEP_FACTOR * s.lr, epochs(s.check_every),
                       s.heteroscedastic) for s in schedule), steps


def _train(runs: Sequence[_Run], stage: Stage, epochs: int, batch_size: int | None) -> None:
    """``epochs`` epochs of ``stage`` for all ``runs`` (one Adam run each, as ``_Run.step``)."""
    for run in runs:
        run._set_heteroscedastic(stage.heteroscedastic)
    x = torch.stack([run.x for run in runs])
    y = torch.stack([run.y for run in runs])
    models = [cast(BayesianMLP, run.model) for run in runs]  # stackable() checked the type
    train_many(models, runs[0].objective, x, y, epochs=epochs, lr=stage.lr,
               batch_size=batch_size, generator=[run.generator for run in runs])


def _score(run: _Run, x_val: Any, y_val: torch.Tensor, seed: int) -> tuple[float, float]:
    """Validation LL and RMSE (data units), as :func:`select_checkpoint` scores a checkpoint."""
    return score_checkpoint(run.fitted().predict(
        x_val, VALIDATION_SAMPLES, generator=torch.Generator().manual_seed(seed)), y_val)


def fit_splits(splits: Sequence[UCISplit], kind: str = "hetero", *, seed: int = 0,
               quick: bool = False, overrides: dict[str, Any] | None = None,
               refit: bool = True, n_iter_no_change: int | None = None) -> list[SplitResult]:
    """Run the protocol on ``splits`` of one data set together (module docstring).

    The splits must have the same numbers of training rows and features (the standard splits
    of a data set have). Each record's ``train_seconds`` is the wall-clock time of the whole
    group divided by the number of splits; ``stacked`` gives that number. ``refit=False``
    tests each split's best validation checkpoint itself (trained on 80 % of the training
    rows, standardised with their statistics) and trains no refit: half the work.
    ``n_iter_no_change``: as in :func:`select_checkpoint`, per split; a split whose patience
    has run out keeps its choice (its later checkpoints are not scored) and the group stops
    when every split's has.
    """
    first = splits[0]
    shape = (len(first.y_train), first.x_train.shape[1])
    if any((len(d.y_train), d.x_train.shape[1]) != shape for d in splits):
        raise ValueError("fit_splits needs splits with the same numbers of training rows and "
                         "features")
    start = time.perf_counter()
    config = _config(kind, shape[1], first.n_hidden, overrides)
    val_runs, full_runs, held_out = [], [], []
    for data in splits:
        fit_rows, val_rows = validation_rows(shape[0], data.split, seed)
        train_seed = _seed(seed, data.split)
        val_runs.append(_Run(config, data.x_train[fit_rows], data.y_train[fit_rows], train_seed))
        if refit:
            full_runs.append(_Run(config, data.x_train, data.y_train, train_seed))
        held_out.append((data.x_train[val_rows],
                         torch.as_tensor(data.y_train[val_rows], dtype=torch.float32),
                         _seed(seed, data.split, _VALIDATION)))
    schedule, steps = step_schedule(_scaled(SCHEDULES[kind], quick), len(val_runs[0].y))
    groups = (val_runs, full_runs) if refit else (val_runs,)
    batches = [None if steps == 1 else math.ceil(len(runs[0].y) / steps) for runs in groups]
    tested = full_runs if refit else val_runs
    curves: list[list[dict[str, Any]]] = [[] for _ in splits]
    best = [BestCheckpoint(n_iter_no_change) for _ in splits]
    kept: list[dict[str, torch.Tensor] | None] = [None] * len(splits)
    previous: dict[int, int] = {}
    for k, done, total in _checkpoints(schedule):
        for runs, batch in zip(groups, batches, strict=True):
            _train(runs, schedule[k], done - previous.get(k, 0), batch)
        previous[k] = done
        for i, (run, (x_val, y_val, val_seed)) in enumerate(zip(val_runs, held_out, strict=True)):
            if best[i].exhausted:
                continue
            ll, rmse = _score(run, x_val, y_val, val_seed)
            curves[i].append({"epochs": total, "ll": ll if math.isfinite(ll) else None,
                              "rmse": rmse})
            if best[i].offer(ll, {"stage": k, "stage_epochs": done, "epochs": total, "ll": ll}):
                kept[i] = copy.deepcopy(tested[i].model.state_dict())
        if all(b.exhausted for b in best):
            break
    seconds = (time.perf_counter() - start) / len(splits)
    results = []
    for data, run, tracker, curve, state in zip(splits, tested, best, curves, kept,
                                                strict=True):
        choice = chosen(kind, tracker, curve, len(held_out[0][1]), f" of split {data.split}")
        run.model.load_state_dict(cast(dict[str, torch.Tensor], state))
        results.append(test_split(data, run.fitted(), choice, seed=seed, quick=quick,
                                  seconds=(seconds, None, None),
                                  extra={"stacked": len(splits), "refit": refit,
                                         "batch_size": batches[-1],
                                         "validation_batch_size": batches[0]}))
    return results
