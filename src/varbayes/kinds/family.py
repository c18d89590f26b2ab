"""The ``family`` kind end to end: non-Gaussian likelihoods on arrays, predicted in data units.

:func:`fit_family` is what :func:`varbayes.kinds.fit` runs for ``kind='family'``. It checks the
targets against the likelihood's support (a negative or fractional count, a non-positive
waiting time, a class index out of range: ``ValueError`` naming the row), standardises the
inputs, and the targets only for a location-scale likelihood (``student_t``); counts, waiting
times and class indices are used as they are. The output biases start at the training rows'
marginal (log mean rate, log class frequencies), so training starts from the best constant
model. With early stopping the validation score is the mean log predictive density of the
family's own mixture (:func:`~varbayes.predictive.family_predictive`), over
:data:`VALIDATION_DRAWS` weight draws, or :data:`CLASS_VALIDATION_DRAWS` for a classifier (a
class probability near 0 of a hard row needs many draws to be estimated; few draws make the
later, sharper epochs look worse than they are). A classifier then fits a temperature on the
validation part (:mod:`varbayes.calibration.temperature`, ``rescale=True``), kept as
``fitted.temperature`` and applied by :func:`predict_family`.

:func:`predict_family` is the family's :meth:`FittedModel.predict`: a
:class:`~varbayes.predictive.FamilyPrediction` (Student-t, Poisson, exponential; in data
units) or a :class:`~varbayes.predictive.ClassPrediction` (Bernoulli, categorical).
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from varbayes._validation import as_generator, check_array, check_X_y, to_tensor
from varbayes.calibration.temperature import TemperedClassPrediction, fit_temperature
from varbayes.data.transforms import Standardizer
from varbayes.infer import History, train
from varbayes.infer.early_stopping import EarlyStopping
from varbayes.kinds.config import build_model, make_config
from varbayes.kinds.fitted import WORKING_DTYPE, FittedModel, _standardised
from varbayes.kinds.registry import auto_init_rho, get_kind
from varbayes.kinds.stopping import VALIDATION_DRAWS, plan_validation
from varbayes.likelihoods import CLASSIFICATION, get_likelihood
from varbayes.models import FamilyMLP
from varbayes.predictive import ClassPrediction, FamilyPrediction, family_predictive

__all__ = ["CLASS_VALIDATION_DRAWS", "fit_family", "is_family", "predict_family",
           "resolve_likelihood"]

#: Weight draws of a classifier's validation score and of its temperature fit.
CLASS_VALIDATION_DRAWS = 500


def is_family(fitted: FittedModel) -> bool:
    """Whether ``fitted`` is of the ``family`` kind (predicted by :func:`predict_family`)."""
    return bool(fitted.config["kind"] == "family")


def _check_classes(y: np.ndarray, n_classes: int) -> None:
    bad = y >= n_classes
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"y[{row}] = {float(y[row])!r} is not a class index of the "
                         f"{n_classes} classes (0 .. {n_classes - 1})")


def _output_bias(likelihood: str, y: Tensor, n_classes: int) -> list[float]:
    """The output biases of the best constant model on the training targets ``y``."""
    y = y.double()
    if likelihood == "poisson":
        return [math.log(max(float(y.mean()), 1e-3))]
    if likelihood == "exponential":
        return [-math.log(float(y.mean()))]
    counts = torch.bincount(y.long(), minlength=n_classes).double() + 0.5
    log_freq = (counts / counts.sum()).log()
    if likelihood == "bernoulli":
        return [float(log_freq[1] - log_freq[0])]
    return (log_freq - log_freq.mean()).tolist()


def fit_family(
    x: Any, y: Any, *, generator: torch.Generator | None = None, progress: bool = False,
    nonfinite: str = "raise", feature_names: list[str] | None = None,
    target_name: str | None = None, distributed: str = "auto", early_stopping: bool = False,
    validation_fraction: float = 0.1, n_iter_no_change: int = 20,
    classes: list[Any] | None = None, rescale: bool = True, **overrides: Any,
) -> tuple[FittedModel, History]:
    """Fit the ``family`` kind on ``x`` (n, d) and ``y`` (n,); see :func:`varbayes.kinds.fit`.

    ``classes`` (optional) are the labels of the class indices ``0 .. K-1``, kept with the
    model (``fitted.classes``) and saved with it. With early stopping and ``rescale``, a
    classifier's temperature is fitted on the validation part (``fitted.temperature``).

    Raises
    ------
    ValueError
        For targets outside the likelihood's support (naming the row), class indices beyond
        ``n_classes``, a single class, or invalid options.
    """
    xa, ya = check_X_y(x, y, names=("x", "y"))
    if generator is not None:
        generator = as_generator(generator, "generator")
    config = make_config("family", xa.shape[1], **overrides)
    lik = get_likelihood(config["likelihood"])
    lik.check_target(ya, "y")
    if lik.name in CLASSIFICATION:
        if lik.name == "bernoulli":
            config["n_classes"] = 2
        _check_classes(ya, int(config["n_classes"]))
        if len(np.unique(ya)) < 2:
            raise ValueError(f"y holds one class ({ya[0]:g}); a classifier needs at "
                             "least 2 classes in the training data")
    if classes is not None and len(classes) != config["n_classes"]:
        raise ValueError(f"{len(classes)} class labels for {config['n_classes']} classes")
    xt, yt = to_tensor(xa, torch.float64), to_tensor(ya, torch.float64)
    x_scaler = Standardizer(xt.shape[1]).fit(xt, dtype=WORKING_DTYPE, names=feature_names)
    y_scaler = Standardizer(1)
    if lik.standardize_target:
        y_scaler.fit(yt[:, None], dtype=WORKING_DTYPE,
                     names=None if target_name is None else [target_name])
    xs = _standardised(x_scaler, xt, "x")
    ys = _standardised(y_scaler, yt[:, None], "y")[:, 0]
    kind = get_kind("family")
    plan = plan_validation(xs.shape[0], early_stopping, validation_fraction, n_iter_no_change,
                           int(config["epochs"]), generator)
    fit_x, fit_y = xs, ys
    if plan.fit_rows is not None and plan.val_rows is not None:
        fit_x, fit_y = xs[plan.fit_rows], ys[plan.fit_rows]
    if config["init_rho"] is None:
        config["init_rho"] = auto_init_rho(fit_x.shape[0])
    model = cast(FamilyMLP, build_model(config, generator))
    if lik.name != "student_t":
        model.set_output_bias(_output_bias(lik.name, fit_y, int(config["n_classes"])))
    monitor = None
    draws = CLASS_VALIDATION_DRAWS if lik.name in CLASSIFICATION else VALIDATION_DRAWS
    if plan.val_rows is not None:
        x_val, y_val = xs[plan.val_rows], ys[plan.val_rows].double()
        jacobian = float(y_scaler.std.double().log()[0])

        def validation() -> FamilyPrediction | ClassPrediction:
            return family_predictive(model, x_val, draws,
                                     generator=torch.Generator().manual_seed(plan.seed))

        def score() -> float:
            return float(validation().log_prob(y_val).mean()) - jacobian

        monitor = EarlyStopping(model, score, check_every=plan.check_every,
                                n_iter_no_change=plan.n_iter_no_change)
    history = train(
        model, kind.objective(config, fit_x.shape[0]), fit_x, fit_y,
        epochs=int(config["epochs"]), lr=float(config["lr"]), batch_size=config["batch_size"],
        generator=generator, nonfinite=nonfinite, progress=progress,
        desc=f"family/{lik.name}", distributed=distributed, callback=monitor,
        callback_every=plan.check_every,
    )
    if monitor is not None:
        monitor.restore()
    model.eval()
    fitted = FittedModel(config, model, x_scaler, y_scaler, feature_names=feature_names,
                         target_name=target_name)
    fitted.classes = None if classes is None else list(classes)
    fitted.fit_info = plan.info(monitor)
    if monitor is not None and rescale and lik.name in CLASSIFICATION:
        fitted.temperature = fit_temperature(cast(ClassPrediction, validation()), y_val)
        fitted.fit_info["temperature"] = fitted.temperature
    fitted.validation_rows = plan.val_rows
    return fitted, history


def predict_family(
    fitted: FittedModel, x: Any, num_samples: int = 1000, *,
    generator: torch.Generator | None = None, chunk_size: int | None = None,
) -> FamilyPrediction | ClassPrediction:
    """The predictive of a ``family`` model at raw inputs ``x`` (n, d), in data units.

    Raises
    ------
    TypeError
        If ``fitted`` is not of the ``family`` kind.
    ValueError
        For invalid ``x`` or a different number of features than at fit.
    """
    if not is_family(fitted):
        raise TypeError(f"predict_family needs a model of kind 'family', got "
                        f"{fitted.config['kind']!r}; use FittedModel.predict")
    xa = check_array(x, "x")
    if xa.shape[1] != fitted.in_features:
        raise ValueError(f"x has {xa.shape[1]} features, but the model was fitted with "
                         f"{fitted.in_features}; expected x of shape (n, {fitted.in_features})")
    device = fitted.x_scaler.mean.device
    z = _standardised(fitted.x_scaler, to_tensor(xa, torch.float64, device), "x")
    pred = family_predictive(fitted.model, z, num_samples, generator=generator,
                             chunk_size=chunk_size)
    if isinstance(pred, FamilyPrediction) and pred.likelihood == "student_t":
        return pred.affine(fitted.y_scaler.mean.double(), fitted.y_scaler.std.double())
    if isinstance(pred, ClassPrediction) and fitted.temperature != 1.0:
        return TemperedClassPrediction(pred.logits, float(fitted.temperature))
    return pred


def resolve_likelihood(model: str, likelihood: Any) -> tuple[str, dict[str, Any]]:
    """The kind and options of a regressor's ``model`` and ``likelihood`` parameters.

    ``gaussian`` keeps ``model``; the others train ``family`` (``model`` must be left at
    ``'hetero'`` or be ``'family'``). Classification likelihoods belong to
    :class:`~varbayes.classifier.BayesianClassifier`.
    """
    from varbayes._validation import check_choice

    name = check_choice(likelihood, ("gaussian", "student_t", "poisson", "exponential"),
                        "likelihood")
    if name == "gaussian":
        return model, {}
    if model not in ("hetero", "family"):
        raise ValueError(f"likelihood={name!r} trains Bayes by Backprop with a {name} head "
                         f"(model 'family'); model={model!r} applies to likelihood='gaussian' "
                         "only: leave model at its default")
    return "family", {"likelihood": name}
