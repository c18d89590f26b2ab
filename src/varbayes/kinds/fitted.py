"""Model kinds end to end: standardise, train on arrays, predict in data units.

:func:`fit` standardises ``x`` and ``y`` with the training statistics (in float64), trains, and
returns a :class:`FittedModel` that keeps the standardisers, so :meth:`FittedModel.predict`
takes and returns data in the user's units. Everything a fitted model needs is in its
``config`` (JSON) and ``state_dict`` (tensors), which is what :mod:`varbayes.io` saves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import varbayes.kinds.stopping as stopping
from varbayes._device import generator_on, resolve_device
from varbayes._threads import intra_op_threads
from varbayes._validation import (
    as_generator,
    check_array,
    check_choice,
    check_count,
    check_enum,
    check_X_y,
    to_tensor,
)
from varbayes.calibration import (
    CalibratedPrediction,
    CalibrationMap,
    check_method,
    coverage_sd,
)
from varbayes.data.transforms import Standardizer
from varbayes.infer import History, NonFinitePolicy
from varbayes.kinds.calibrated import calibrate, calibration_rows
from varbayes.kinds.config import make_config
from varbayes.kinds.members import SPREAD_LEVEL, spread_factor, spread_rows, train_networks
from varbayes.kinds.registry import ModelKind, get_kind, hetero_init_rho
from varbayes.kinds.stopping import MIN_ROWS, plan_validation
from varbayes.predictive import Prediction, predictive

__all__ = [
    "WORKING_DTYPE",
    "FittedModel",
    "fit",
]


class FittedModel(nn.Module):
    """A trained model with its input and target standardisers.

    Parameters
    ----------
    config : dict
        From :func:`make_config` (JSON-serialisable).
    model : nn.Module
        The network, working in standardised units.
    x_scaler, y_scaler : Standardizer
    feature_names : list of str or None
        Names of the input columns (kept for CSV prediction and saved with the model).
    target_name : str or None
        Name of the target column.
    """

    metadata: dict[str, Any]  # set by varbayes.io.load, from config.json
    validation_rows: Tensor | None  # set by fit: the rows held out for early stopping

    def __init__(
        self, config: dict[str, Any], model: nn.Module, x_scaler: Standardizer,
        y_scaler: Standardizer, *, feature_names: list[str] | None = None,
        target_name: str | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.model = model
        self.x_scaler = x_scaler
        self.y_scaler = y_scaler
        if feature_names is not None and len(feature_names) != int(config["in_features"]):
            raise ValueError(
                f"{len(feature_names)} feature names for {config['in_features']} input features"
            )
        self.feature_names = None if feature_names is None else [str(f) for f in feature_names]
        self.target_name = None if target_name is None else str(target_name)
        #: How training went (early stopping: the chosen epochs, the validation curve); saved
        #: under ``metadata.fit`` by :func:`varbayes.io.save`. Empty after loading a model
        #: saved without it.
        self.fit_info: dict[str, Any] = {}
        #: The calibration map (:mod:`varbayes.calibration`) applied by
        #: :meth:`predict_calibrated`, or ``None``. Saved with the model.
        self.calibration: CalibrationMap | None = None
        #: Factor on the predictive spread fitted on the early-stopping validation part (1: none),
        #: applied by :meth:`predict`; saved with the model.
        self.spread_factor = 1.0
        #: Temperature of a classifier's predictive fitted on the early-stopping validation part
        #: (1: none), applied by :func:`~varbayes.kinds.predict_family`; saved with the model.
        self.temperature = 1.0
        #: Labels of the class indices of a classifier (``family`` kind), saved with the model.
        self.classes: list[Any] | None = None

    @property
    def kind(self) -> ModelKind:
        """The model kind."""
        return ModelKind(self.config["kind"])

    @property
    def in_features(self) -> int:
        """Number of input features."""
        return int(self.config["in_features"])

    @property
    def device(self) -> torch.device:
        """Where the model computes (its inputs and generators must be there too)."""
        return self.x_scaler.mean.device

    @property
    def has_epistemic(self) -> bool:
        """Whether the model has weight uncertainty (an epistemic part)."""
        return get_kind(self.kind).has_epistemic

    def predict(
        self, x: np.ndarray | Tensor, num_samples: int = 1000, *,
        generator: torch.Generator | None = None, chunk_size: int | None = None,
    ) -> Prediction:
        """Posterior predictive at raw inputs ``x`` of shape (n, d), in the target's units.

        ``x`` is validated like the training inputs (:func:`varbayes._validation.check_array`:
        NaN / inf, strings, sparse, 1-D, ... raise ``ValueError`` / ``TypeError``) and moved to
        the model's device, so a tensor on another device is accepted. A ``family`` model
        raises ``TypeError``: its predictive is :func:`varbayes.kinds.predict_family`'s.
        """
        if self.config["kind"] == "family":
            raise TypeError("a 'family' model has no Gaussian-mixture predictive; use "
                            "varbayes.kinds.predict_family")
        xa = check_array(x, "x")
        if xa.shape[1] != self.in_features:
            raise ValueError(
                f"x has {xa.shape[1]} features, but the model was fitted with "
                f"{self.in_features}; expected x of shape (n, {self.in_features})"
            )
        device = self.x_scaler.mean.device
        if generator is not None and torch.device(generator.device) != device:
            raise ValueError(
                f"generator is on device {generator.device} but the model is on {device}; "
                f"pass torch.Generator(device={str(device)!r})"
            )
        z = _standardised(self.x_scaler, to_tensor(xa, torch.float64, device), "x")
        pred = predictive(self.model, z, num_samples, generator=generator, chunk_size=chunk_size)
        # Back to data units in float64: a target of 1e9 + k, or a std of 1e30 (variance 1e60),
        # is held exactly where float32 would round it away or overflow.
        # Quantiles are resolved to the working dtype's precision, that of the inputs and weights.
        # The spread factor stretches every component about the mean (calibration.stretch),
        # then y = mean_y + std_y * z, in one pass: shift + gain * loc.
        # Widening to float64 first, then mapping in place, gives the same values as letting
        # a float64 gain promote the float32 outputs, in a quarter of the time (the promoting
        # kernels convert element by element).
        with intra_op_threads(pred.loc.numel()):  # small chunks: one thread, no stalls
            mean_y, std_y = self.y_scaler.mean.double(), self.y_scaler.std.double()
            gain = (std_y * self.spread_factor).reshape(1)
            wide = pred.loc.double()
            shift = mean_y if self.spread_factor == 1.0 else \
                mean_y + (std_y - gain) * wide.mean(0, keepdim=True)  # the centre, in float64
            loc = torch.addcmul(shift, wide, gain, out=wide if wide is not pred.loc else None)
            scale = pred.scale
            if scale.shape[0] > 1 and scale.stride(0) == 0:  # one scale for every draw
                scale = _times(scale[:1], gain).expand_as(scale)
            else:
                scale = _times(scale, gain)
            return Prediction(loc, scale, working_dtype=WORKING_DTYPE)


    def predict_calibrated(
        self, x: np.ndarray | Tensor, num_samples: int = 1000, *,
        generator: torch.Generator | None = None, chunk_size: int | None = None,
    ) -> Prediction | CalibratedPrediction:
        """:meth:`predict` with :attr:`calibration` applied (the same when there is none)."""
        pred = self.predict(x, num_samples, generator=generator, chunk_size=chunk_size)
        return pred if self.calibration is None else self.calibration.apply(pred)


def _times(t: Tensor, gain: Tensor) -> Tensor:
    """``t * gain`` in float64, a new tensor (widened first, then multiplied in place)."""
    wide = t.double()
    return wide.mul_(gain) if wide is not t else torch.mul(t, gain)


#: The dtype the networks compute in; data are standardised in float64, then cast to it.
WORKING_DTYPE = torch.float32


def _on(device: torch.device, generator: torch.Generator | None) -> torch.Generator | None:
    """``generator`` itself on the CPU; elsewhere a generator there, seeded from it."""
    if device.type == "cpu" or generator is None:
        return generator
    return generator_on(device, int(torch.randint(0, 2**62, (1,), generator=generator)))


def _standardised(scaler: Standardizer, t: Tensor, name: str) -> Tensor:
    """``scaler.transform(t)`` (float64 ``t``) cast to the working dtype, refusing overflow."""
    z = scaler.transform(t)
    zw = z.to(WORKING_DTYPE)
    if not bool(torch.isfinite(zw).all()):
        i, j = (int(k) for k in torch.nonzero(~torch.isfinite(zw))[0])
        raise ValueError(
            f"{name} row {i}, column {j}: {float(t[i, j]):g} lies "
            f"{float(z[i, j]):g} training standard deviations from the training mean, beyond "
            f"the {str(WORKING_DTYPE).replace('torch.', '')} range of the network"
        )
    return zw


def fit(
    kind: ModelKind | str,
    x: np.ndarray | Tensor,
    y: np.ndarray | Tensor,
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
    nonfinite: str = "raise",
    feature_names: list[str] | None = None,
    target_name: str | None = None,
    distributed: str = "auto",
    early_stopping: bool = False,
    validation_fraction: float = 0.1,
    n_iter_no_change: int = 20,
    rescale: bool = True,
    calibration: str | None = None,
    calibration_samples: int = 200,
    device: str | torch.device | None = "cpu",
    member_layout: str | None = None,
    conformal_step: int | None = None,
    **overrides: Any,
) -> tuple[FittedModel, History]:
    """Standardise, build and train a model of ``kind`` on ``x`` (n, d) and ``y`` (n,).

    Parameters
    ----------
    kind : {'mle', 'vi', 'vi_analytic', 'bbb', 'hetero', 'family'}
        ``family``: a non-Gaussian likelihood (option ``likelihood``), fitted by
        :func:`varbayes.kinds.family.fit_family` (``classes=`` names the class labels).
    x : array-like of shape (n, d)
    y : array-like of shape (n,)
    generator : torch.Generator or None
        Source of all randomness (initialisation, batches, noise).
    progress : bool, default=False
        Show a progress bar.
    nonfinite : {'raise', 'skip'}, default='raise'
    feature_names, target_name
        Column names kept with the model (see :class:`FittedModel`).
    distributed : {'auto', 'on', 'off'}, default='auto'
        Data-parallel training under torchrun, see :func:`~varbayes.infer.train`. Every
        rank passes the whole data set; the rows are sharded inside the training loop.
    early_stopping : bool, default=False
        Hold out a validation part of the rows and stop at the best validation log predictive
        density (see :mod:`varbayes.kinds.stopping`); ``epochs`` becomes the most epochs. The
        estimator and the CLI turn it on by default. Skipped (recorded in
        ``fitted.fit_info``) when there are too few rows for a validation part. The members
        of a ``hetero`` ensemble (``n_members``) share one validation part that none of them
        trains on (``member_layout``) and keep their best checkpoints; their noise warm-up
        (``warmup_fraction``) and training are :mod:`varbayes.kinds.members`'s.
    validation_fraction : float in (0, 1), default=0.1
        Share of the rows in the validation part (at least
        :data:`~varbayes.kinds.stopping.MIN_VALIDATION` rows).
    n_iter_no_change : int, default=20
        Validation checks without improvement before training stops.
    rescale : bool, default=True
        With early stopping: after restoring the best checkpoints, fit one factor on the
        predictive spread so that the model's 90 % intervals cover 90 % of the validation rows
        in expectation (:func:`varbayes.kinds.members.spread_factor`), kept as
        ``fitted.spread_factor``;
        a classifier (``family`` kind) fits its temperature there instead
        (:mod:`varbayes.calibration.temperature`).
    calibration : {None, 'scale', 'isotonic', 'conformal'}, default=None
        Hold out a calibration part (``validation_fraction`` of the rows, apart from the
        validation part) and fit this map of :mod:`varbayes.calibration` on it, see
        :mod:`varbayes.kinds.calibrated`; :meth:`FittedModel.predict_calibrated` applies it.
    calibration_samples : int, default=200
        Weight draws of the predictive the map is fitted on.
    device : {'cpu', 'auto', 'cuda'} or torch.device, default='cpu'
        Where to train (see :func:`varbayes._device.resolve_device`); the fitted model stays
        there. The initialisation is drawn on the CPU from ``generator``; on a GPU the training
        noise comes from a CUDA generator seeded from it, so a GPU fit is reproducible on the
        same GPU but not equal to the CPU fit.
    member_layout : {None, 'shared', 'members', 'separate'}, default=None
        With early stopping, the validation parts of the members and where the spread factor
        is fitted (:func:`~varbayes.kinds.stopping.plan_validation`'s ``layout``); None:
        :data:`~varbayes.kinds.stopping.DEFAULT_MEMBER_LAYOUT` (``'shared'``). The benchmarks
        compare the layouts; ``kind='family'`` takes None (its members have their own parts).
    conformal_step : int >= 1 or None, default=None
        With ``calibration``, the calibration part's count ``m`` is rounded up so that ``m + 1``
        is a multiple of this where the rows allow
        (:func:`~varbayes.kinds.calibrated.calibration_rows`); None:
        :data:`~varbayes.kinds.calibrated.DEFAULT_CONFORMAL_STEP` (10); 1: no rounding. The
        benchmarks study the rounding; without ``calibration`` it changes nothing.
    **overrides
        Any key of ``DEFAULTS[kind]`` (e.g. ``epochs=500``, ``hidden=[50]``).

    Returns
    -------
    fitted : FittedModel
    history : History

    Raises
    ------
    ValueError, TypeError
        For invalid data (checked by :func:`varbayes._validation.check_X_y`, like the
        estimator's) or options (:func:`make_config`), before any training.
    NonFiniteLossError
        If the loss becomes NaN / inf and ``nonfinite='raise'``.
    """
    if member_layout is not None:
        member_layout = check_choice(member_layout, stopping.LAYOUTS, "member_layout")
    if conformal_step is not None:
        conformal_step = check_count(conformal_step, "conformal_step")
    if str(getattr(kind, "value", kind)) == "family":  # non-Gaussian likelihoods
        if calibration is not None:
            raise ValueError("calibration applies to Gaussian models only, not kind='family'")
        if member_layout is not None:
            raise ValueError(f"member_layout={member_layout!r} applies to Gaussian models "
                             "only; kind='family' stops each member on its own part")
        from varbayes.kinds.family import fit_family

        return fit_family(x, y, generator=generator, progress=progress, nonfinite=nonfinite,
                          feature_names=feature_names, target_name=target_name,
                          distributed=distributed, early_stopping=early_stopping,
                          validation_fraction=validation_fraction,
                          n_iter_no_change=n_iter_no_change, rescale=rescale, **overrides)
    xa, ya = check_X_y(x, y, names=("x", "y"))
    nonfinite = check_enum(nonfinite, NonFinitePolicy, "nonfinite").value
    dev = resolve_device(device)
    if generator is not None:
        generator = as_generator(generator, "generator")
    if check_method(calibration, allow_none=True) is not None:
        keep, held = calibration_rows(len(ya), validation_fraction, generator, conformal_step)
        fitted, history = fit(
            kind, xa[keep.numpy()], ya[keep.numpy()], generator=generator, progress=progress,
            nonfinite=nonfinite, feature_names=feature_names, target_name=target_name,
            distributed=distributed, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            rescale=rescale, device=dev, member_layout=member_layout, **overrides)
        calibrate(fitted, xa[held.numpy()], ya[held.numpy()], calibration,
                  num_samples=calibration_samples, generator=_on(dev, generator))
        return fitted, history
    # Standardise in float64, then cast the standardised values to the working dtype.
    xt, yt = to_tensor(xa, torch.float64), to_tensor(ya, torch.float64)
    config = make_config(kind, xt.shape[1], **overrides)
    x_scaler = Standardizer(xt.shape[1]).fit(xt, dtype=WORKING_DTYPE, names=feature_names)
    y_scaler = Standardizer(1).fit(yt[:, None], dtype=WORKING_DTYPE,
                                   names=None if target_name is None else [target_name])
    xs = _standardised(x_scaler, xt, "x")
    ys = _standardised(y_scaler, yt[:, None], "y")[:, 0]
    xs, ys = xs.to(dev), ys.to(dev)
    kind_spec = get_kind(config["kind"])
    members = int(config.get("n_members", 1))
    plan = plan_validation(xs.shape[0], early_stopping, validation_fraction, n_iter_no_change,
                           int(config["epochs"]), generator, members,
                           layout=member_layout or stopping.DEFAULT_MEMBER_LAYOUT)
    if "init_rho" in config and config["init_rho"] is None:
        config["init_rho"] = hetero_init_rho(xs.shape[0], config, MIN_ROWS)
    model, history, info = train_networks(
        kind_spec, config, xs, ys, plan, generator=generator,  # initialised on the CPU
        train_generator=_on(dev, generator), log_y_std=float(y_scaler.std.double().log()),
        nonfinite=nonfinite, progress=progress, distributed=distributed)
    fitted = FittedModel(config, model, x_scaler, y_scaler, feature_names=feature_names,
                         target_name=target_name).to(dev)
    fitted.fit_info = info
    if plan.val_rows is not None:
        if rescale:
            fitted.spread_factor = spread_factor(model, xs, ys, plan)
            rows = spread_rows(model, plan)  # what one fit's coverage rests on
            fitted.fit_info.update(factor_rows=rows, coverage_sd=coverage_sd(rows, SPREAD_LEVEL))
        fitted.fit_info["spread_factor"] = fitted.spread_factor
    fitted.validation_rows = plan.val_rows  # not saved: which rows the callers may reuse
    return fitted, history
