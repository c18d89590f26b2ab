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
later, sharper epochs look worse than they are). With ``n_members > 1`` the networks of an
:class:`~varbayes.models.Ensemble` train one after the other, each stopped on its own part. A
classifier then fits a temperature on the validation part, or the union of the parts
(:mod:`varbayes.calibration.temperature`, ``rescale=True``), kept as ``fitted.temperature``
and applied by :func:`predict_family`.

:func:`predict_family` is the family's :meth:`FittedModel.predict`: a
:class:`~varbayes.predictive.FamilyPrediction` (Student-t, Poisson, exponential; in data
units) or a :class:`~varbayes.predictive.ClassPrediction` (Bernoulli, categorical).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
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
from varbayes.kinds.ivon import is_ivon
from varbayes.kinds.members import members_of
from varbayes.kinds.registry import auto_init_rho, get_kind
from varbayes.kinds.stopping import VALIDATION_DRAWS, plan_validation
from varbayes.kinds.warm_start import check_map_scale, train_from_map
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


@dataclass(frozen=True)
class _Validation:
    """A network's validation part (standardised rows) and its fixed weight draws."""

    net: FamilyMLP
    x: Tensor
    y: Tensor
    draws: int
    seed: int

    def predictive(self) -> FamilyPrediction | ClassPrediction:
        """The network's predictive there (the same draws at every call)."""
        return family_predictive(self.net, self.x, self.draws,
                                 generator=torch.Generator().manual_seed(self.seed))

    def score(self, jacobian: float) -> float:
        """Mean log predictive density in data units (``jacobian``: log of the target scale)."""
        return float(self.predictive().log_prob(self.y).mean()) - jacobian


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
    ``n_members=M > 1`` trains an :class:`~varbayes.models.Ensemble` of ``M`` networks, one
    after the other, each stopped on its own validation part (disjoint while the rows allow,
    :func:`~varbayes.kinds.stopping.plan_validation`); the temperature is then fitted on the
    union of the parts, each predicted by the network that did not train on it.
    ``map_epochs > 0`` first trains each network's means as a point for that many epochs and
    starts the variational training from them, every scale at ``map_scale``
    (:mod:`varbayes.kinds.warm_start`).

    Raises
    ------
    ValueError
        For targets outside the likelihood's support (naming the row), class indices beyond
        ``n_classes``, a single class, invalid options, ``n_members > 1`` or
        ``map_epochs > 0`` with ``method='ivon'``, or ``map_scale`` not above the layers'
        scale floor.
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
    members = int(config["n_members"])
    if members > 1 and is_ivon(config):
        raise ValueError("n_members > 1 trains an ensemble by Bayes by Backprop; "
                         "method='ivon' trains one network (n_members=1)")
    if config["map_epochs"] and is_ivon(config):
        raise ValueError("map_epochs > 0 starts Bayes by Backprop from a MAP fit; "
                         "method='ivon' takes map_epochs=0")
    plan = plan_validation(xs.shape[0], early_stopping, validation_fraction, n_iter_no_change,
                           int(config["epochs"]), generator, members)
    folds: list[tuple[Tensor | None, Tensor | None]] = list(plan.folds) or [(None, None)]
    if config["init_rho"] is None:
        rows = folds[0][0]
        config["init_rho"] = auto_init_rho(xs.shape[0] if rows is None else rows.numel())
    model = build_model(config, generator)
    if config["map_epochs"]:
        check_map_scale(model, float(config["map_scale"]))
    draws = CLASS_VALIDATION_DRAWS if lik.name in CLASSIFICATION else VALIDATION_DRAWS
    jacobian = float(y_scaler.std.double().log()[0])
    runs = []
    for m, net in enumerate(members_of(model)):
        fit_rows, val_rows = folds[m % len(folds)]
        fit_x, fit_y = (xs, ys) if fit_rows is None else (xs[fit_rows], ys[fit_rows])
        val = None if val_rows is None else _Validation(
            cast(FamilyMLP, net), xs[val_rows], ys[val_rows].double(), draws, plan.seed)
        if lik.name != "student_t":
            cast(FamilyMLP, net).set_output_bias(
                _output_bias(lik.name, fit_y, int(config["n_classes"])))
        monitor = None if val is None else EarlyStopping(
            net, functools.partial(val.score, jacobian), check_every=plan.check_every,
            n_iter_no_change=plan.n_iter_no_change)
        def run(epochs: int | None, net: torch.nn.Module = net, fit_x: Tensor = fit_x,
                fit_y: Tensor = fit_y, monitor: EarlyStopping | None = monitor,
                m: int = m) -> History:
            """``epochs`` of MAP (:mod:`~varbayes.kinds.warm_start`), or ``None``: the VI."""
            return train(
                net, kind.objective(config, fit_x.shape[0]), fit_x, fit_y,
                epochs=int(config["epochs"] if epochs is None else epochs),
                lr=float(config["lr"]), batch_size=config["batch_size"], generator=generator,
                nonfinite=nonfinite, progress=progress, distributed=distributed,
                callback=monitor if epochs is None else None, callback_every=plan.check_every,
                desc=f"family/{lik.name}" + (f" {m + 1}/{members}" if members > 1 else "")
                + ("" if epochs is None else " MAP"))

        history = train_from_map(net, run, map_epochs=int(config["map_epochs"]),
                                 scale=float(config["map_scale"])) if config["map_epochs"] \
            else run(None)
        if monitor is not None:
            monitor.restore()
        runs.append((history, monitor, val))
    model.eval()
    fitted = FittedModel(config, model, x_scaler, y_scaler, feature_names=feature_names,
                         target_name=target_name)
    fitted.classes = None if classes is None else list(classes)
    history, monitor, _ = runs[0]
    fitted.fit_info = plan.info(monitor)
    if members > 1 and monitor is not None:
        fitted.fit_info["members"] = [m.summary() for _, m, _ in runs if m is not None]
    if monitor is not None and rescale and lik.name in CLASSIFICATION:
        parts = [cast(ClassPrediction, v.predictive()) for _, _, v in runs if v is not None]
        fitted.temperature = fit_temperature(
            ClassPrediction(torch.cat([p.logits for p in parts], 1)),
            torch.cat([v.y for _, _, v in runs if v is not None]))
        fitted.fit_info["temperature"] = fitted.temperature
    fitted.validation_rows = plan.val_rows
    return fitted, history


def predict_family(
    fitted: FittedModel, x: Any, num_samples: int = 1000, *,
    generator: torch.Generator | None = None, chunk_size: int | None = None,
    noise: str = "normal",
) -> FamilyPrediction | ClassPrediction:
    """The predictive of a ``family`` model at raw inputs ``x`` (n, d), in data units.

    ``noise``: the weight noise, ``'normal'`` or ``'sobol'`` (scrambled Sobol normals, less
    Monte Carlo error; :func:`~varbayes.predictive.family_predictive`).

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
                             chunk_size=chunk_size, noise=noise)
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
