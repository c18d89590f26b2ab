"""The UCI regression benchmark of Hernández-Lobato & Adams (2015), run by varbayes.

Protocol (per data set, per split ``i`` of its ``n_splits.txt``)
-----------------------------------------------------------------
1. Load split ``i`` with :func:`varbayes.data.load_uci`: the fixed 90 % / 10 % train/test
   rows of the standard split files. One hidden layer whose width is the data set's
   ``n_hidden.txt`` (50 for the five classic data sets).
2. **Hyper-parameter selection on the training rows only.** The training rows are shuffled with
   ``numpy.random.default_rng([seed, i])``; the last 20 % form a validation part, the rest a
   sub-training part. A model is trained on the sub-training part (its inputs and targets
   standardised with *that part's* mean and std) along a fixed schedule of stages
   (:data:`SCHEDULES`: epochs, Adam learning rate), and scored on the validation part every
   ``check_every`` epochs by the mean log predictive density in the data's units. The
   checkpoint with the highest validation score (the earliest on ties) is the choice: it fixes
   the number of epochs of each stage, i.e. early stopping, and for ``hetero`` also whether and
   how long the heteroscedastic noise network is trained (see below). The test rows are never
   passed to this step.
3. **Refit** a fresh model (same seed) on all training rows, standardised with the training
   split's statistics, along the same schedule up to the chosen checkpoint.
4. **Test**: the posterior predictive on the test rows (a mixture over ``S`` weight draws,
   ``S = 200``), mapped back to data units. Reported: RMSE of the predictive mean, ``ll`` = mean
   per-point log predictive density of the mixture (``-mixture NLL``), CRPS, coverage and mean
   width of the central 90 % interval, calibration error, and the wall-clock seconds.
5. Summary over splits: mean and standard error (``std(ddof=1) / sqrt(n_splits)``).

Training is full-batch Adam (one step per epoch; every ``train()`` call, i.e. every checkpoint,
starts a new Adam state, identically in the validation run and the refit). ``hetero`` starts
with a homoscedastic warm-up: the output weights of its noise network are zeroed and frozen, so
it is Bayes by Backprop with one learned noise level; then every parameter is trained. Without
it the noise network learns large noise where the mean has not fitted yet and the mean gives up
there (on ``energy`` the RMSE is 5x worse). ``quick=True`` runs 2 splits with a tenth of the
epochs and ``S = 50``: a smoke test, not a result.

This module runs one split (:func:`fit_split`); :mod:`varbayes.benchmarks.uci_stack` runs the
splits of a data set together on the vectorised engine with the same result up to rounding, and
:mod:`varbayes.benchmarks.uci_run` is the runner of ``varbayes benchmark uci``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from varbayes.data import UCISplit
from varbayes.data.transforms import Standardizer
from varbayes.infer import train
from varbayes.infer.early_stopping import BestCheckpoint
from varbayes.kinds import FittedModel, ModelKind, get_kind, make_config
from varbayes.metrics import evaluate
from varbayes.predictive import Prediction

__all__ = [
    "METRICS",
    "MODEL_OVERRIDES",
    "SCHEDULES",
    "SplitResult",
    "Stage",
    "chosen",
    "fit_split",
    "score_checkpoint",
    "select_checkpoint",
    "test_split",
    "validation_rows",
]

#: Fraction of the training rows held out for hyper-parameter selection.
VALIDATION_FRACTION = 0.2
#: Weight draws ``S`` of the test predictive (normal, quick) and of the validation scores.
TEST_SAMPLES, QUICK_SAMPLES, VALIDATION_SAMPLES = 200, 50, 100
#: Splits of a ``quick`` run (unless ``splits`` is given).
QUICK_SPLITS = 2
#: Per-split figures summarised over splits (mean, standard error).
METRICS: tuple[str, ...] = (
    "rmse", "ll", "nll", "crps", "coverage_90", "interval_width_90", "calibration_error",
    "train_seconds", "selected_epochs",
)  # fmt: skip


@dataclass(frozen=True)
class Stage:
    """One stage of a training schedule.

    Attributes
    ----------
    epochs : int
        Full-batch Adam steps of the stage.
    lr : float
        Adam learning rate.
    check_every : int
        Validation checkpoint spacing in epochs (each checkpoint is a candidate stopping point).
    heteroscedastic : bool, default=True
        ``hetero`` only: ``False`` freezes the noise network at one learned constant.
    """

    epochs: int
    lr: float
    check_every: int
    heteroscedastic: bool = True


#: Training schedules. ``hetero`` = BBB with learned constant noise (the same stages as ``bbb``)
#: followed by heteroscedastic stages; ``mle`` and the amortised ``vi`` models are cheaper.
SCHEDULES: dict[str, tuple[Stage, ...]] = {
    "hetero": (
        Stage(600, 0.01, 150, False), Stage(300, 0.003, 150, False),
        Stage(300, 0.001, 150, False), Stage(600, 0.003, 75, True),
    ),
    "bbb": (Stage(600, 0.01, 150), Stage(300, 0.003, 150), Stage(300, 0.001, 150)),
    "mle": (Stage(600, 0.01, 50), Stage(600, 0.001, 50)),
    "vi": (Stage(600, 0.01, 50), Stage(600, 0.001, 50)),
    "vi_analytic": (Stage(600, 0.01, 50), Stage(600, 0.001, 50)),
}  # fmt: skip

#: UCI settings of each kind, applied over :data:`varbayes.kinds.DEFAULTS` (``hidden`` is set
#: from the data set's ``n_hidden.txt``). ``None`` values are set after :func:`make_config`,
#: which reads ``None`` as "the default": for ``bbb`` they replace the post's initialisation by
#: the one of ``hetero`` (means ~ N(0, 1/fan_in), every rho -5).
MODEL_OVERRIDES: dict[str, dict[str, Any]] = {
    "hetero": {"batch_size": None, "n_members": 1, "warmup_fraction": 0.0},  # own schedule
    "bbb": {"noise": "learned", "noise_std": 1.0, "estimator": "local", "init_rho": -5.0,
            "init_loc_std": None, "init_rho_bias": None},
    "mle": {"batch_size": None},
    "vi": {"batch_size": None},
    "vi_analytic": {"batch_size": None},
}


def _scaled(schedule: Sequence[Stage], quick: bool) -> tuple[Stage, ...]:
    if not quick:
        return tuple(schedule)
    return tuple(
        Stage(max(1, s.epochs // 10), s.lr, max(1, s.check_every // 10), s.heteroscedastic)
        for s in schedule
    )


def _checkpoints(schedule: Sequence[Stage]) -> list[tuple[int, int, int]]:
    """``(stage, epochs in the stage, total epochs)`` of every checkpoint of ``schedule``."""
    out, total = [], 0
    for k, stage in enumerate(schedule):
        done = 0
        while done < stage.epochs:
            step = min(stage.check_every, stage.epochs - done)
            done += step
            total += step
            out.append((k, done, total))
    return out


def _config(kind: str, in_features: int, hidden: int, overrides: dict[str, Any] | None
            ) -> dict[str, Any]:
    """``make_config`` with the UCI settings; ``overrides`` win over :data:`MODEL_OVERRIDES`."""
    user = dict(overrides or {})
    settings = {"hidden": [hidden], **MODEL_OVERRIDES[kind], **user}
    literal_none = [k for k, v in MODEL_OVERRIDES[kind].items() if v is None and k not in user]
    config = make_config(kind, in_features, **settings)
    config.update(dict.fromkeys(literal_none))
    return config


class _Run:
    """A model of ``config`` being trained on standardised ``(x, y)`` along a schedule."""

    def __init__(self, config: dict[str, Any], x: np.ndarray, y: np.ndarray, seed: int) -> None:
        xt = torch.as_tensor(x, dtype=torch.float32)
        yt = torch.as_tensor(y, dtype=torch.float32)
        self.config = config
        self.generator = torch.Generator().manual_seed(seed)
        self.x_scaler = Standardizer(xt.shape[1]).fit(xt)
        self.y_scaler = Standardizer(1).fit(yt[:, None])
        self.x = self.x_scaler.transform(xt)
        self.y = self.y_scaler.transform(yt[:, None])[:, 0]
        self.kind = get_kind(config["kind"])
        self.model = self.kind.build(config, self.generator)
        self.objective = self.kind.objective(config, len(y))
        self.noise_net: nn.Sequential | None = (getattr(self.model, "noise_net", None)
                                                if self.kind.noise_warmup else None)
        if self.noise_net is not None:  # warm-up: constant noise = softplus(output bias)
            with torch.no_grad():
                self.noise_net[-1].weight.zero_()

    def _set_heteroscedastic(self, on: bool) -> None:
        if self.noise_net is None:
            return
        for p in self.noise_net.parameters():
            p.requires_grad_(on)
        self.noise_net[-1].bias.requires_grad_(True)

    def step(self, stage: Stage, epochs: int) -> None:
        """Train ``epochs`` epochs of ``stage`` (one Adam run)."""
        self._set_heteroscedastic(stage.heteroscedastic)
        train(self.model, self.objective, self.x, self.y, epochs=epochs, lr=stage.lr,
              batch_size=self.config["batch_size"], generator=self.generator)
        if self.kind.post_fit is not None:  # the MLE's residual std, as recipes.fit does
            self.kind.post_fit(self.model, self.x, self.y)

    def fitted(self) -> FittedModel:
        """The model as it is now, with its standardisers (predicts in data units)."""
        self._set_heteroscedastic(True)
        self.model.eval()
        return FittedModel(self.config, self.model, self.x_scaler, self.y_scaler)


def _follow(run: _Run, schedule: Sequence[Stage]) -> Iterator[tuple[int, int, int]]:
    previous: dict[int, int] = {}
    for k, done, total in _checkpoints(schedule):
        run.step(schedule[k], done - previous.get(k, 0))
        previous[k] = done
        yield k, done, total


def validation_rows(n_train: int, split: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into the training rows) of the sub-training and the validation part.

    The training rows are permuted with ``numpy.random.default_rng([seed, split])``; the last
    ``round(0.2 * n_train)`` (at least 1) are the validation part.
    """
    if n_train < 2:
        raise ValueError(f"need 2 training rows or more for a validation part, not {n_train}")
    order = np.random.default_rng([seed, split]).permutation(n_train)
    n_val = min(n_train - 1, max(1, round(VALIDATION_FRACTION * n_train)))
    return np.sort(order[:-n_val]), np.sort(order[-n_val:])


_TRAIN, _VALIDATION, _TEST = 0, 1, 2


def _seed(seed: int, split: int, purpose: int = _TRAIN) -> int:
    """Seed of a torch generator for ``purpose`` (training, validation or test draws)."""
    return int(np.random.default_rng([seed, split, purpose]).integers(2**62))


def select_checkpoint(
    kind: str, x_train: np.ndarray, y_train: np.ndarray, *, split: int = 0, seed: int = 0,
    quick: bool = False, hidden: int = 50, overrides: dict[str, Any] | None = None,
    n_iter_no_change: int | None = None,
) -> dict[str, Any]:
    """Choose the stopping point of the schedule of ``kind`` on a validation part.

    Only the training rows are passed in: the test rows cannot influence the choice. The rule
    is the library's early stopping (:class:`~varbayes.infer.early_stopping.BestCheckpoint`):
    the checkpoint with the best finite validation LL, the earliest on ties; with
    ``n_iter_no_change`` the run stops after that many checkpoints without a new best (``None``:
    the whole schedule).

    Returns
    -------
    dict with ``stage``, ``stage_epochs``, ``epochs`` (of the chosen checkpoint), ``curve``
    (one ``{"epochs", "ll", "rmse"}`` per checkpoint, on the validation part, data units) and
    ``n_validation``.
    """
    kind = ModelKind(kind).value
    fit_rows, val_rows = validation_rows(len(y_train), split, seed)
    schedule = _scaled(SCHEDULES[kind], quick)
    config = _config(kind, x_train.shape[1], hidden, overrides)
    run = _Run(config, x_train[fit_rows], y_train[fit_rows], _seed(seed, split))
    y_val = torch.as_tensor(y_train[val_rows], dtype=torch.float32)
    val_seed = _seed(seed, split, _VALIDATION)
    curve: list[dict[str, Any]] = []
    best = BestCheckpoint(n_iter_no_change)
    for k, done, total in _follow(run, schedule):
        pred = run.fitted().predict(x_train[val_rows], VALIDATION_SAMPLES,
                                    generator=torch.Generator().manual_seed(val_seed))
        ll, rmse = score_checkpoint(pred, y_val)
        curve.append({"epochs": total, "ll": ll if math.isfinite(ll) else None, "rmse": rmse})
        best.offer(ll, {"stage": k, "stage_epochs": done, "epochs": total, "ll": ll})
        if best.exhausted:
            break
    return chosen(kind, best, curve, len(val_rows))


def score_checkpoint(pred: Prediction, y_val: torch.Tensor) -> tuple[float, float]:
    """A checkpoint's validation score: mean log predictive density and RMSE, data units."""
    return (float(pred.log_prob(y_val).mean()),
            float((pred.mean - y_val).pow(2).mean().sqrt()))


def chosen(kind: str, best: BestCheckpoint, curve: list[dict[str, Any]], n_validation: int,
           what: str = "") -> dict[str, Any]:
    """The selected checkpoint's record; an error when no checkpoint had a finite score."""
    if best.best is None:
        raise RuntimeError(f"{kind}: the validation log-likelihood was not finite at any "
                           f"checkpoint{what}; the training diverged")
    return {**best.best, "curve": curve, "n_validation": int(n_validation)}


def _truncate(schedule: Sequence[Stage], stage: int, stage_epochs: int) -> tuple[Stage, ...]:
    last = schedule[stage]
    return (*schedule[:stage], Stage(stage_epochs, last.lr, last.check_every, last.heteroscedastic))


@dataclass(frozen=True, eq=False)
class SplitResult:
    """Outcome of one split: the JSON ``record``, the refitted model and its test predictive."""

    record: dict[str, Any]
    fitted: FittedModel
    prediction: Prediction = field(repr=False)


def fit_split(
    data: UCISplit, kind: str = "hetero", *, seed: int = 0, quick: bool = False,
    overrides: dict[str, Any] | None = None, n_iter_no_change: int | None = None,
) -> SplitResult:
    """Run the protocol on one split: select on validation, refit on train, score on test."""
    kind = ModelKind(kind).value
    start = time.perf_counter()
    choice = select_checkpoint(kind, data.x_train, data.y_train, split=data.split, seed=seed,
                               quick=quick, hidden=data.n_hidden, overrides=overrides,
                               n_iter_no_change=n_iter_no_change)
    selected = time.perf_counter()
    schedule = _truncate(_scaled(SCHEDULES[kind], quick), choice["stage"], choice["stage_epochs"])
    config = _config(kind, data.x_train.shape[1], data.n_hidden, overrides)
    run = _Run(config, data.x_train, data.y_train, _seed(seed, data.split))
    for _ in _follow(run, schedule):
        pass
    fitted = run.fitted()
    end = time.perf_counter()
    return test_split(data, fitted, choice, seed=seed, quick=quick,
                      seconds=(end - start, selected - start, end - selected))


def test_split(data: UCISplit, fitted: FittedModel, choice: dict[str, Any], *, seed: int,
               quick: bool, seconds: tuple[float, float | None, float | None],
               extra: dict[str, Any] | None = None) -> SplitResult:
    """Score ``fitted`` on the test rows of ``data``: the record of one split.

    ``choice`` is what :func:`select_checkpoint` returns; ``seconds`` are the training, the
    selection and the refit seconds of this split (``None`` where they are not apart);
    ``extra`` is added to the record.
    """
    samples = QUICK_SAMPLES if quick else TEST_SAMPLES
    pred = fitted.predict(data.x_test, samples,
                          generator=torch.Generator().manual_seed(_seed(seed, data.split, _TEST)))
    scores = evaluate(data.y_test, pred, level=0.9)
    record = {
        "split": data.split, "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test)),
        "rmse": scores["rmse"], "ll": -scores["nll"], "nll": scores["nll"],
        "crps": scores["crps"], "coverage_90": scores["coverage_90"],
        "interval_width_90": scores["interval_width_90"],
        "calibration_error": scores["calibration_error"],
        "train_seconds": seconds[0], "select_seconds": seconds[1],
        "refit_seconds": seconds[2], "selected_epochs": choice["epochs"],
        "selected": {"stage": choice["stage"], "stage_epochs": choice["stage_epochs"],
                     "validation_ll": choice["ll"], "n_validation": choice["n_validation"]},
        "validation_curve": choice["curve"], **(extra or {}),
    }  # fmt: skip
    return SplitResult(record, fitted, pred)
