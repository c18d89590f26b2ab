"""Vectorised training of many Bayesian MLPs at once: a leading model dimension.

:func:`train_many` trains ``M`` :class:`~varbayes.models.BayesianMLP` of one architecture
together: the 20 splits of a UCI data set (``x`` of shape ``(M, n, d)``), an ensemble or a seed
sweep (a shared ``x`` of shape ``(n, d)``). The models are independent -- nothing couples their
parameters, noise or optimiser state -- so the result is that of ``M`` separate runs with other
random numbers. For small data this is where throughput is won: one 1-20-20-1 model leaves the
CPU idle between kernel launches, twenty fill it.

The engine is :class:`~varbayes._fast.stack.BayesianMLPStack` (all ``M`` models in one tensor, the
ELBO's gradient derived by hand) with Adam on that flat tensor (elementwise, so every model keeps
its own moments). :func:`varbayes.infer.train`
uses the same loop with ``M = 1`` for a plain :class:`~varbayes.models.BayesianMLP` trained with a
closed-form :class:`~varbayes.ELBO` (see :func:`fast_path_unsupported`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from varbayes._atomic import check_terminated
from varbayes._checks_scalar import check_count, check_positive
from varbayes._fast.stack import BayesianMLPStack, stack_architecture
from varbayes._threads import intra_op_threads
from varbayes.infer.adam import Adam
from varbayes.infer.history import (
    History,
    NonFiniteLossError,
    NonFinitePolicy,
    check_policy,
    nonfinite_message,
)
from varbayes.infer.objectives import ELBO, KL
from varbayes.likelihoods import LIKELIHOODS
from varbayes.models import BayesianMLP

__all__ = [
    "BayesianMLPStack",
    "fast_path_unsupported",
    "train_many",
]


def fast_path_unsupported(model: nn.Module, objective: object, *,
                          frozen: bool = False) -> str | None:
    """Why ``model`` and ``objective`` cannot use the fast engine, or ``None`` if they can.

    Supported: a :class:`~varbayes.models.BayesianMLP` (a head of
    :data:`~varbayes._fast.stack.HEADS`, an estimator of
    :data:`~varbayes._fast.stack.ESTIMATORS`, a :class:`~varbayes.priors.GaussianPrior`, no
    hooks) with an :class:`~varbayes.ELBO` of the Gaussian likelihood, or a
    :class:`~varbayes.models.FamilyMLP` whose likelihood is in
    :data:`~varbayes._fast.classes.CLASS_HEADS` with an ELBO of that same likelihood; the KL in
    closed form. Parameters with ``requires_grad=False`` only with ``frozen=True`` (they are
    then held fixed, as by an optimiser of the trainable ones alone).
    """
    if type(objective) is not ELBO:
        return f"needs varbayes.ELBO, got {type(objective).__name__}"
    if objective.kl is not KL.ANALYTIC:
        return "needs the closed-form KL (kl='analytic')"
    try:
        arch = stack_architecture(model)
    except ValueError as exc:
        return str(exc)
    if any(arch.frozen) and not frozen:
        return "needs every parameter trainable (requires_grad=True)"
    expected = LIKELIHOODS[arch.likelihood]
    if type(objective.likelihood) is not expected:
        return (f"has gradients for the {expected.name} likelihood of this model only, got "
                f"{objective.likelihood!r}")
    return None


def _run(stack: BayesianMLPStack, objective: ELBO, x: Tensor, y: Tensor, *, epochs: int,
         lr: float, batch_size: int, generator: torch.Generator | list[torch.Generator] | None,
         policy: NonFinitePolicy,
         progress: bool, desc: str | None, models: Sequence[BayesianMLP] = (),
         callback: Callable[[int], bool] | None = None, callback_every: int = 1
         ) -> list[History]:
    """The training loop of :func:`train_many` (arguments already checked)."""
    m, n = stack.num_models, x.shape[-2]
    adam = Adam([stack.params], lr)
    histories = [History() for _ in range(m)]
    moments = (stack.params, adam.exp_avg[0], adam.exp_avg_sq[0])
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc=desc, disable=None if progress else True, leave=False,
               unit="epoch", mininterval=0.25)
    index = torch.int32 if n < 2**31 else torch.int64  # the only N-sized tensor besides the data
    batches: tuple[Tensor | None, ...] = (None,)
    for epoch in bar:
        check_terminated()  # a SIGTERM whose exception C code swallowed (CLI only)
        if batch_size < n:
            batches = ()  # free the last epoch's permutation before drawing the next
            batches = (torch.stack([torch.randperm(n, generator=g, dtype=index)
                                    for g in generator]).to(x.device).split(batch_size, 1)
                       if isinstance(generator, list) else
                       torch.randperm(n, generator=generator, device="cpu", dtype=index).to(
                           x.device).split(batch_size))
        sums = [[0.0] * m for _ in range(3)]  # the epoch's sums of (loss, nll, kl)
        taken, partial = 0, None  # steps taken by all models; per-model counts of the others
        for step, idx in enumerate(batches):
            xb, yb = (x, y) if idx is None else _rows(x, y, idx)
            noise = stack.draw_noise(xb.shape[-2], objective.num_particles, generator)
            terms = stack.loss_and_grad(xb, yb, noise, n_data=objective.n_data,
                                        kl_weight=objective.kl_weight,
                                        particles=objective.num_particles)
            values = terms.tolist()  # float32 -> float exactly: the float64 sums of old
            if math.isfinite(sum(map(sum, values))):  # the common case: one check for all models
                adam.step([stack.grad])
                sums = _added(sums, values)
                taken += 1
                continue
            bad = ~torch.isfinite(terms).all(0)
            if policy is NonFinitePolicy.RAISE:
                first = int(bad.nonzero()[0])
                raise NonFiniteLossError(nonfinite_message(
                    terms[0, first].item(), epoch=epoch + 1, step=step + 1, lr=lr,
                    model=first if m > 1 else None))
            for history, skipped in zip(histories, bad.tolist(), strict=True):
                history.skipped_steps += skipped
            if bool(bad.all()):
                continue
            saved = [t[bad].clone() for t in moments]  # skip the step for the bad models only
            adam.step([stack.grad.nan_to_num_()])
            for t, kept in zip(moments, saved, strict=True):
                t[bad] = kept
            sums = _added(sums, torch.where(bad, 0.0, terms).tolist())
            partial = (~bad).double() + (0 if partial is None else partial)
        counts = taken if partial is None else partial + taken
        # counts is a Tensor (one count per model) whenever partial is not None
        empty = taken == 0 if partial is None else bool((cast(Tensor, counts) == 0).any())
        if empty:
            first = 0 if partial is None else int((cast(Tensor, counts) == 0).nonzero()[0])
            raise NonFiniteLossError(nonfinite_message(
                None, epoch=epoch + 1, step=None, lr=lr, model=first if m > 1 else None))
        per_model = [counts] * m if isinstance(counts, int) else counts.tolist()
        for i, (history, count) in enumerate(zip(histories, per_model, strict=True)):
            history.loss.append(sums[0][i] / count)
            history.nll.append(sums[1][i] / count)
            history.kl.append(sums[2][i] / count)
        if progress and (epoch % 25 == 0 or epoch == epochs - 1):
            bar.set_postfix(loss=f"{histories[0].loss[-1]:.4f}", refresh=False)
        done = epoch + 1
        if callback is not None and (done % callback_every == 0 or done == epochs):
            stack.store(models)  # the callback sees the parameters as they are now
            if callback(done):
                break
    bar.close()
    seconds = time.perf_counter() - start
    for history in histories:
        history.seconds = seconds
    return histories


def _added(sums: list[list[float]], terms: list[list[float]]) -> list[list[float]]:
    """``sums + terms``, row by row: the float64 additions of a tensor of sums, in Python.

    ``terms`` holds float32 values as Python floats (exact); adding them to float sums is what
    ``sums += terms`` on a float64 tensor computes, without a tensor operation per step.
    """
    return [[a + b for a, b in zip(row, add, strict=True)]
            for row, add in zip(sums, terms, strict=True)]


def _rows(x: Tensor, y: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """The rows ``idx`` of ``(x, y)``: one index vector for all models, or one (M, B) per model."""
    if idx.dim() == 1:
        return x.index_select(-2, idx), y.index_select(-1, idx)
    if x.dim() == 2:
        return x[idx], y[idx]
    models = torch.arange(idx.shape[0], device=idx.device)[:, None]
    return x[models, idx], y[models, idx]


def train_many(
    models: Sequence[BayesianMLP],
    objective: ELBO,
    x: Tensor,
    y: Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    nonfinite: NonFinitePolicy | str = NonFinitePolicy.RAISE,
    progress: bool = False,
    desc: str | None = None,
    callback: Callable[[int], bool] | None = None,
    callback_every: int = 1,
) -> list[History]:
    """Train ``M`` Bayesian MLPs of one architecture together, in one vectorised pass.

    Each model minimises its own ``objective`` (the negative ELBO, closed-form KL) with its own
    Adam state; the trained parameters are written back into ``models``. The result is that of
    ``M`` independent :func:`~varbayes.infer.train` runs with other random numbers: every
    step draws fresh noise for every model, and all models see the mini-batches in the same order.

    Parameters
    ----------
    models : sequence of BayesianMLP
        ``M`` models with the same sizes, head, estimator, prior, dtype and device (for
        instance built with different generators: an ensemble or a seed sweep).
    objective : ELBO
        With ``kl='analytic'``; ``n_data``, ``num_particles`` and ``kl_weight`` apply to every
        model.
    x : Tensor of shape (n, d) or (M, n, d)
        Inputs shared by all models, or one data set per model (e.g. the splits of a UCI set).
    y : Tensor of shape (n,) or (M, n)
    epochs, lr, batch_size, nonfinite, progress, desc
        As in :func:`~varbayes.infer.train`. With ``nonfinite='skip'`` a step is skipped for
        the models whose loss is not finite (their Adam step count still advances).
    generator : torch.Generator, sequence of M torch.Generator, or None
        One generator for all models, or one per model (``reparam`` and ``local`` estimators):
        then model ``m`` draws its noise and its mini-batch order from ``generator[m]`` exactly
        as a run of that model alone (``M = 1``) does, so its result does not depend on the
        other models beyond floating-point rounding.
    callback, callback_every
        As in :func:`~varbayes.infer.train`: called with every model's parameters up to date
        (one call for all ``M`` models); training of all models ends when it returns True.

    Returns
    -------
    list of History
        One per model.

    Raises
    ------
    ValueError
        For models or an objective the engine does not support (the message says why), or
        inconsistent shapes.
    NonFiniteLossError
        As in :func:`~varbayes.infer.train`, naming the model.

    Examples
    --------
    >>> import torch
    >>> from varbayes import ELBO
    >>> from varbayes.models import BayesianMLP
    >>> models = [BayesianMLP(1, (8,), generator=torch.Generator().manual_seed(s))
    ...           for s in range(4)]
    >>> x = torch.linspace(-2, 2, 32)[:, None]
    >>> histories = train_many(models, ELBO(32), x, torch.sin(x[:, 0]), epochs=5, lr=0.01)
    >>> len(histories), len(histories[0].loss)
    (4, 5)
    """
    models = list(models)
    if not models:
        raise ValueError("train_many needs at least one model")
    for model in models:
        why = fast_path_unsupported(model, objective, frozen=True)
        if why is not None:
            raise ValueError(f"train_many cannot train this model: {why}")
    m = len(models)
    epochs = check_count(epochs, "epochs")
    lr = check_positive(lr, "lr")
    if batch_size is not None:
        batch_size = check_count(batch_size, "batch_size")
    policy = check_policy(nonfinite)
    shared = x.dim() == 2 and y.dim() == 1
    per_model = x.dim() == 3 and y.dim() == 2 and x.shape[0] == m and y.shape[0] == m
    if not (shared or per_model) or x.shape[-2] != y.shape[-1]:
        raise ValueError(
            f"train_many expects x of shape (n, d) and y (n,), or x (M, n, d) and y (M, n) with "
            f"M={m}, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    n = x.shape[-2]
    batch_size = n if batch_size is None else min(batch_size, n)
    if isinstance(generator, Sequence):
        generator = list(generator)
        if len(generator) != m:
            raise ValueError(f"train_many got {len(generator)} generators for {m} models")
    stack = BayesianMLPStack(models)
    x, y = x.to(stack.params), y.to(stack.params)
    for model in models:
        model.train()
    work = batch_size * m * objective.num_particles * stack.params.shape[1]
    try:
        with intra_op_threads(work), torch.no_grad():  # no graph even if x requires grad
            return _run(stack, objective, x, y, epochs=epochs, lr=float(lr),
                        batch_size=batch_size, generator=generator, policy=policy,
                        progress=progress, desc=desc, models=models, callback=callback,
                        callback_every=callback_every)
    finally:
        stack.store(models)
