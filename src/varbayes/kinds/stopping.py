"""The validation part of :func:`varbayes.kinds.fit`: which rows, how often, how scored.

With ``early_stopping=True`` the training rows are split at random into a fitting part and a
validation part of ``validation_fraction`` of the rows (at least :data:`MIN_VALIDATION`). The
model trains on the fitting part; every ``check_every`` epochs it is scored on the validation
part by the mean log predictive density in data units (a mixture of :data:`VALIDATION_DRAWS`
weight draws, the same draws at every check so that checks compare the model, not the noise);
training stops after ``n_iter_no_change`` checks without a new best, and the best checkpoint is
kept (``docs/calibration.md`` measures keeping it against refitting on all rows).

The members of a regressor's ensemble (``n_members``, :func:`varbayes.kinds.fit`) share one
validation part that no member trains on (``layout="shared"``, :data:`DEFAULT_MEMBER_LAYOUT`):
each stops on it, and the spread factor (:func:`varbayes.kinds.members.spread_factor`) is
fitted there on the *mixture's* predictive, so that it calibrates the ensemble as new rows see
it. :func:`~varbayes.kinds.fit`'s ``member_layout`` chooses another of :data:`LAYOUTS` (the
benchmarks compare them).
The classifier's members (``layout="members"``) each get their own validation part
instead: the parts are disjoint while the rows allow (``n_members * n_val <= n``), so every row
trains all members but one. ``docs/calibration.md`` measures both, and a third layout
(``"separate"``: disjoint member parts plus a part no member trains on or stops on).

With fewer than :data:`MIN_ROWS` rows there is no validation part worth the name: the model
trains on every row for the configured ``epochs``, and ``fit_info`` says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from varbayes._validation import check_scalar
from varbayes.infer.early_stopping import EarlyStopping, default_check_every
from varbayes.predictive import predictive

__all__ = ["DEFAULT_MEMBER_LAYOUT", "LAYOUTS", "MIN_ROWS", "MIN_VALIDATION",
           "VALIDATION_DRAWS", "ValidationPlan", "plan_validation"]

#: Smallest validation part, in rows.
MIN_VALIDATION = 20
#: Fewest rows for which early stopping holds a validation part out.
MIN_ROWS = 4 * MIN_VALIDATION
#: Weight draws of each validation score.
VALIDATION_DRAWS = 32
#: The validation layout of the regressor's members (:func:`plan_validation`'s ``layout``)
#: when :func:`~varbayes.kinds.fit`'s ``member_layout`` is None: ``"shared"``, one part no
#: member trains on, where every member stops and the spread factor is fitted on the mixture;
#: the others, ``"members"`` (each member's own part, disjoint, the factor fitted on each part
#: as predicted by its member; the default before, over-covering: ``docs/calibration.md``)
#: and ``"separate"`` (disjoint member parts for stopping plus a part that nothing else uses,
#: for the factor), are the benchmarks' ``member_layout``.
DEFAULT_MEMBER_LAYOUT = "shared"
#: The layouts :func:`plan_validation` knows.
LAYOUTS = ("members", "shared", "separate")


@dataclass
class ValidationPlan:
    """Rows and schedule of the validation checks (``fit_rows`` None: no early stopping).

    ``fit_rows`` and ``val_rows`` are the first member's; ``folds`` holds the ``(fit rows,
    validation rows)`` of every member (member ``m`` has ``folds[m % len(folds)]``: one fold
    when the members share it). ``factor_rows``: rows no member trains on, where
    :func:`~varbayes.kinds.members.spread_factor` scores the mixture (None: the members' own
    parts).
    """

    fit_rows: Tensor | None
    val_rows: Tensor | None
    check_every: int
    n_iter_no_change: int
    reason: str
    seed: int = 0
    folds: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    factor_rows: Tensor | None = None

    def monitor(self, model: nn.Module, x_val: Tensor, y_val: Tensor, log_y_std: float,
                refresh: Callable[[], None] | None = None) -> EarlyStopping:
        """The callback scoring its model on standardised validation rows, in data units.

        It scores the model it holds at each check (``model`` until a caller sets
        ``stopper.model``, as the ``hetero`` warm-up does for its twin). ``refresh()``, when
        given, runs before each score (the MLE sets its residual noise).
        """
        seed = self.seed

        def score() -> float:
            if refresh is not None:
                refresh()
            pred = predictive(stopper.model, x_val, VALIDATION_DRAWS,
                              generator=torch.Generator(x_val.device).manual_seed(seed))
            return float(pred.log_prob(y_val).double().mean()) - log_y_std

        stopper = EarlyStopping(model, score, check_every=self.check_every,
                                n_iter_no_change=self.n_iter_no_change)
        return stopper

    def info(self, monitor: EarlyStopping | None) -> dict[str, Any]:
        """JSON record of what was done, for ``FittedModel.fit_info``."""
        if monitor is None or self.val_rows is None:  # nothing to record unless it was asked for
            return {"early_stopping": False, "reason": self.reason} if self.reason else {}
        return {"early_stopping": True, "n_validation": int(self.val_rows.numel()),
                "validation_ll": monitor.best_score if math.isfinite(monitor.best_score)
                else None, **monitor.summary()}


def plan_validation(
    n: int, early_stopping: bool, validation_fraction: float, n_iter_no_change: int,
    epochs: int, generator: torch.Generator | None, members: int = 1,
    layout: str = "members",
) -> ValidationPlan:
    """Check the early-stopping options and choose the validation rows of ``n`` rows.

    ``layout="members"``: ``members`` networks get validation parts that are disjoint
    while the rows allow (member ``m``'s part starts ``m * n_val`` places further along one
    random order, wrapping round). ``"shared"``: one part for every member (the first
    member's part of ``"members"``, the same rows), which is also ``factor_rows``.
    ``"separate"``: the last ``validation_fraction`` of the order (at least
    :data:`MIN_VALIDATION` rows) is ``factor_rows``, and the rest is split as ``"members"``
    does; ``"shared"`` when that would leave fewer than :data:`MIN_ROWS` rows.
    """
    if not isinstance(early_stopping, bool):
        raise TypeError(f"early_stopping must be a bool, got {early_stopping!r}")
    fraction = float(check_scalar(validation_fraction, "validation_fraction", low=0.0,
                                  high=1.0, low_inclusive=False, high_inclusive=False))
    patience = int(check_scalar(n_iter_no_change, "n_iter_no_change", kind=int, low=1))
    every = default_check_every(epochs)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not early_stopping:
        return ValidationPlan(None, None, every, patience, "")
    if n < MIN_ROWS:
        return ValidationPlan(None, None, every, patience,
                              f"{n} rows: fewer than {MIN_ROWS}, trained on all rows for "
                              "the configured epochs")
    order = torch.randperm(n, generator=generator)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    held = None
    if layout == "separate":
        n_held = max(MIN_VALIDATION, round(fraction * n))
        if n - n_held >= MIN_ROWS:
            held, order = order[n - n_held:].sort().values, order[:n - n_held]
        else:
            layout = "shared"
    m_rows = order.numel()
    n_val = max(MIN_VALIDATION, round(fraction * m_rows))
    n_val = min(n_val, m_rows - MIN_VALIDATION)
    folds = []
    for m in range(1 if layout == "shared" else members):
        turned = order.roll(-m * n_val)
        folds.append((turned[n_val:].sort().values, turned[:n_val].sort().values))
    if layout == "shared":
        held = folds[0][1]
    return ValidationPlan(*folds[0], every, patience, "", seed, folds, held)
