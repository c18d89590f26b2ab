"""Training the networks of :func:`varbayes.kinds.fit`: ensemble members, noise warm-up, stopping.

:func:`train_networks` builds the kind's model and trains it on standardised rows:

* **Members.** A ``hetero`` configuration with ``n_members = M > 1`` builds an
  :class:`~varbayes.models.Ensemble`; its members train one after the other, each with its own
  initialisation and noise, on the rows of the plan's folds
  (:func:`varbayes.kinds.stopping.plan_validation`: by default one validation part that every
  member stops on and none trains on). The best checkpoints are kept as they are: no refit on
  all rows.
* **Noise warm-up.** For ``warmup_fraction = f > 0`` (kinds whose record allows it), a member
  first trains for up to ``round(f * epochs)`` epochs as its *homoscedastic twin*: a
  :class:`~varbayes.models.BayesianMLP` with one learned noise level that shares the member's
  Bayesian layers, so the noise cannot explain what the mean has not fitted yet (the UCI
  runner's warm-up, ``docs/benchmarks.md``). The twin's best checkpoint is then handed over: the
  noise network's output weights are zero and its bias is the learned level, the same
  predictive; the heteroscedastic phase trains every parameter for the remaining epochs.
* **Early stopping.** With a validation part, each phase stops after ``n_iter_no_change``
  checks without a new best; the second phase starts from the first phase's best, which stays
  the checkpoint to beat, so the final network is the best of both phases.

:func:`spread_factor` fits one factor on the predictive spread on rows no member trained on:
the shared validation part, predicted by the mixture (or, with the members' own parts, each
part predicted by the member that did not train on it).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from varbayes._device import generator_on
from varbayes.infer import History, train
from varbayes.infer.early_stopping import EarlyStopping
from varbayes.kinds.config import build_model
from varbayes.kinds.registry import Kind
from varbayes.kinds.stopping import ValidationPlan
from varbayes.models import BayesianMLP, Ensemble
from varbayes.predictive import Prediction, predictive

__all__ = ["RESCALE_DRAWS", "SPREAD_LEVEL", "members_of", "spread_factor", "spread_rows",
           "train_networks"]

#: Weight draws of the validation predictive that :func:`spread_factor` fits its factor on.
RESCALE_DRAWS = 100
#: The level whose held-out coverage :func:`spread_factor` sets: the interval users read most.
SPREAD_LEVEL = 0.9


def members_of(model: nn.Module) -> list[nn.Module]:
    """The networks of ``model``: an ensemble's members, or ``model`` itself."""
    return list(model.members) if isinstance(model, Ensemble) else [model]


def _twin(member: BayesianMLP) -> BayesianMLP:
    """A homoscedastic :class:`BayesianMLP` sharing ``member``'s Bayesian layers.

    Built on the meta device (no memory, no random numbers), then given the member's layers and
    a learned noise level starting where the member's noise network starts.
    """
    with torch.device("meta"):
        twin = BayesianMLP(member.in_features, member.hidden, head="learned",
                           min_scale=member.min_scale, prior=member.prior,
                           estimator=member.layers[0].estimator)
    twin.layers = member.layers
    bias = cast(nn.Linear, member.noise_net[-1]).bias
    twin.noise_rho = nn.Parameter(bias.detach().mean().clone())
    return twin


def _hand_over(twin: BayesianMLP, member: BayesianMLP) -> None:
    """Give ``member`` the twin's noise: output weights zero, bias the twin's level."""
    last = cast(nn.Linear, member.noise_net[-1])
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(float(twin.noise_rho))


def _warmup_epochs(kind: Kind, config: dict[str, Any], member: nn.Module) -> int:
    fraction = float(config.get("warmup_fraction", 0.0))
    if not kind.noise_warmup or fraction <= 0 or not isinstance(member, BayesianMLP) \
            or member.noise_hidden is None:
        return 0
    return round(fraction * int(config["epochs"]))


def _join(histories: list[History]) -> History:
    out = History()
    for h in histories:
        out.loss += h.loss
        out.nll += h.nll
        out.kl += h.kl
        out.skipped_steps += h.skipped_steps
        out.seconds += h.seconds
    return out


def _train_member(
    kind: Kind, config: dict[str, Any], member: nn.Module, x: Tensor, y: Tensor,
    monitor: EarlyStopping | None, run: Callable[..., History], desc: str,
) -> tuple[History, dict[str, Any]]:
    """Train one network (warm-up, then every parameter); returns its history and epochs."""
    epochs, warm = int(config["epochs"]), _warmup_epochs(kind, config, member)
    objective = kind.objective(config, x.shape[0])
    histories, done, kept = [], 0, 0
    if warm:
        twin = _twin(cast(BayesianMLP, member))
        if monitor is not None:
            monitor.model = twin
        histories.append(run(twin, objective, x, y, epochs=warm, callback=monitor,
                             desc=f"{desc} warm-up"))
        done = len(histories[-1].loss)
        if monitor is not None:
            monitor.restore()
        kept = monitor.best_epoch if monitor is not None and monitor.best_state else done
        _hand_over(twin, cast(BayesianMLP, member))
        if monitor is not None:
            monitor.rebase(member)
    rest, offset = epochs - done, done
    if rest > 0:
        callback = None if monitor is None else (lambda d: monitor(offset + d))
        histories.append(run(member, objective, x, y, epochs=rest, callback=callback, desc=desc))
        done += len(histories[-1].loss)
        if monitor is not None:
            monitor.restore()
    if monitor is None:
        best = done
    else:
        best = kept + max(0, monitor.best_epoch - offset) if warm else monitor.best_epoch
    return _join(histories), {"best_epoch": best, "warmup_epochs": kept, "stopped_epoch": done}


def train_networks(
    kind: Kind, config: dict[str, Any], xs: Tensor, ys: Tensor, plan: ValidationPlan, *,
    generator: torch.Generator | None, train_generator: torch.Generator | None,
    log_y_std: float, **options: Any,
) -> tuple[nn.Module, History, dict[str, Any]]:
    """Build ``kind``'s model from ``config`` and train it on standardised ``(xs, ys)``.

    ``options`` go to :func:`varbayes.infer.train` (``nonfinite``, ``progress``,
    ``distributed``); ``generator`` draws the initialisation (on the CPU), ``train_generator``
    the training noise. Returns the model (in eval mode), the first member's history and the
    ``fit_info`` record.
    """
    model = build_model(config, generator).to(xs.device)
    members = members_of(model)
    folds: list[tuple[Tensor | None, Tensor | None]] = list(plan.folds) or [(None, None)]

    def run(net: nn.Module, objective: Any, x: Tensor, y: Tensor, *, epochs: int,
            callback: Callable[[int], bool] | None, desc: str) -> History:
        return train(net, objective, x, y, epochs=epochs, lr=float(config["lr"]),
                     batch_size=config["batch_size"], generator=train_generator, desc=desc,
                     callback=callback, callback_every=plan.check_every, **options)

    histories: list[History] = []
    records: list[tuple[dict[str, Any], EarlyStopping | None]] = []
    for m, member in enumerate(members):
        fit_rows, val_rows = folds[m % len(folds)]
        x, y = (xs, ys) if fit_rows is None else (xs[fit_rows], ys[fit_rows])
        monitor = None
        if val_rows is not None:
            refresh = None if kind.post_fit is None else (  # e.g. the MLE's residual std
                functools.partial(kind.post_fit, member, x, y))
            monitor = plan.monitor(member, xs[val_rows], ys[val_rows], log_y_std, refresh)
        desc = config["kind"] + (f" {m + 1}/{len(members)}" if len(members) > 1 else "")
        history, record = _train_member(kind, config, member, x, y, monitor, run, desc)
        if kind.post_fit is not None:
            kind.post_fit(member, x, y)
        histories.append(history)
        records.append((record, monitor))
    model.eval()
    return model, histories[0], _info(plan, records)


def _info(plan: ValidationPlan, records: list[tuple[dict[str, Any], EarlyStopping | None]]
          ) -> dict[str, Any]:
    """``fit_info``: the first member's record at the top, every member's under ``members``."""
    first, monitor = records[0]
    info = plan.info(monitor)
    if monitor is None or plan.val_rows is None:
        return info
    info.update(first)
    if len(records) > 1:
        info["members"] = [{**r, "validation_ll": m.best_score if m is not None else None}
                           for r, m in records]
    return info


def spread_rows(model: nn.Module, plan: ValidationPlan) -> int:
    """How many held-out rows :func:`spread_factor` scores.

    ``plan.factor_rows``, else the members' own validation parts together.
    """
    if plan.factor_rows is not None:
        return int(plan.factor_rows.numel())
    return sum(int(rows.numel()) for _, (_, rows) in zip(members_of(model), plan.folds,
                                                          strict=False))


def spread_factor(model: nn.Module, xs: Tensor, ys: Tensor, plan: ValidationPlan) -> float:
    """One factor on the predictive spread: the held-out 90 % intervals cover 90 %.

    With ``plan.factor_rows`` (the default layout) the model, the mixture of its members,
    predicts those rows, which no member trained on; the factor ``s`` stretches the predictive
    (:func:`~varbayes.calibration.stretch`, every quantile ``s`` times further from the mean)
    so that its central :data:`SPREAD_LEVEL` interval covers :data:`SPREAD_LEVEL` of them in
    expectation: of the scores ``(y - mean) / (upper - mean)`` (``(mean - y) / (mean - lower)``
    below the mean) of ``n`` rows, the one of rank ``(n + 1) * SPREAD_LEVEL``, interpolated
    (``numpy.quantile(..., method="weibull")``; for exchangeable rows the ``k``-th smallest
    score covers a new row with probability ``k / (n + 1)``). Without ``factor_rows`` each
    member predicts its own validation part, and the factor is the plain empirical quantile of
    the pooled scores (this calibrates the members, not their mixture:
    ``docs/calibration.md``). Chosen by coverage rather than by the NLL, whose optimum over-
    or under-covers where the shape of the predictive is off. ``1`` when the quantile is not a
    positive finite number.
    """
    if plan.factor_rows is not None:
        rows = plan.factor_rows
        pooled = predictive(model, xs[rows], RESCALE_DRAWS,
                            generator=generator_on(xs.device, plan.seed))
        targets = [ys[rows]]
    else:
        locs, scales, targets = [], [], []
        for member, (_, val_rows) in zip(members_of(model), plan.folds, strict=False):
            pred = predictive(member, xs[val_rows], RESCALE_DRAWS,
                              generator=generator_on(xs.device, plan.seed))
            locs.append(pred.loc)
            scales.append(pred.scale)
            targets.append(ys[val_rows])
        pooled = Prediction(torch.cat(locs, 1), torch.cat(scales, 1))
    lower, upper = (b.double() for b in pooled.interval(SPREAD_LEVEL))
    mean, y = pooled.mean.double(), torch.cat(targets).double()
    tiny = torch.finfo(torch.float64).tiny
    ratio = torch.where(y >= mean, (y - mean) / (upper - mean).clamp_min(tiny),
                        (mean - y) / (mean - lower).clamp_min(tiny))
    if plan.factor_rows is None:
        factor = float(torch.quantile(ratio, SPREAD_LEVEL))
    else:  # rank (n + 1) * level, interpolated: expected coverage of a new row = level
        factor = float(np.quantile(ratio.cpu().numpy(), SPREAD_LEVEL, method="weibull"))
    return factor if math.isfinite(factor) and factor > 0 else 1.0
