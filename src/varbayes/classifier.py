"""scikit-learn facade for classification: :class:`BayesianClassifier`, over the ``family`` kind.

Labels of any type scikit-learn allows (integers, strings, booleans, floats with whole
classes) are encoded to class indices ``0 .. K-1`` in sorted order (``classes_``); two classes
train a Bernoulli head (one logit), more a categorical head (K logits), both Bayes by Backprop
(:mod:`varbayes.kinds.family`). Every prediction averages the class probabilities over
``num_samples`` weight draws (:class:`~varbayes.predictive.ClassPrediction`).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(60, 2)); y = np.where(X[:, 0] > 0, "right", "left")
>>> clf = BayesianClassifier(epochs=50, random_state=0).fit(X, y)
>>> clf.classes_.tolist(), clf.predict_proba(X[:2]).shape
(['left', 'right'], (2, 2))
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils import assert_all_finite
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from varbayes import io
from varbayes._estimator_base import EstimatorBase
from varbayes._validation import check_array
from varbayes.kinds import fit, make_config, predict_family
from varbayes.models.bayesian import NOISES
from varbayes.predictive import ClassPrediction
from varbayes.predictive.columns import aligned_rows

__all__ = ["BayesianClassifier"]

_OPTIONS = ("hidden", "epochs", "lr", "batch_size", "kl", "prior", "prior_scale", "method",
            "n_members", "map_epochs", "map_scale")
#: Rows above which the default is mini-batches of :data:`DEFAULT_BATCH` rows.
FULL_BATCH_ROWS = 512
DEFAULT_BATCH = 128


class BayesianClassifier(ClassifierMixin, EstimatorBase):
    """Bayesian neural-network classifier with an epistemic / aleatoric entropy split.

    Parameters
    ----------
    hidden : int, sequence of int or None, default=None
        Hidden layer sizes (``None``: one layer of 50).
    epochs : int or None, default=None
        Most training epochs (``None``: 500).
    lr : float or None, default=None
        Adam learning rate (``None``: 0.01).
    batch_size : int or None, default=None
        ``None``: full batch up to 512 rows, else mini-batches of 128.
    num_samples : int, default=1000
        Weight draws averaged by every prediction.
    kl, prior, prior_scale
        As for :class:`~varbayes.BayesianRegressor` (``None``: the kind's defaults).
    random_state : int, numpy / torch generator or None, default=None
    progress : bool, default=False
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows (from 80 rows on), keep the epoch of the
        best validation log-likelihood, and fit a temperature on those rows that calibrates
        the predicted probabilities (``model_.temperature``, see
        :mod:`varbayes.calibration.temperature`; the entropy split stays the posterior's).
    validation_fraction : float in (0, 1), default=0.1
    n_iter_no_change : int, default=20
    method : {'bbb', 'ivon'}, default='bbb'
        ``'ivon'``: train the network by the IVON optimiser and draw from its posterior
        (:mod:`varbayes.kinds.ivon`).
    n_members : int, default=1
        Networks in the model. ``M > 1``: an ensemble of ``M`` Bayes-by-Backprop networks
        trained one after the other (``M`` times the training time), each stopped early on its
        own validation part (disjoint while the rows allow); every prediction is the equal
        mixture of their predictives, the temperature fitted on the union of the parts.
        ``docs/benchmarks.md`` measures 3 against 1 (not the default: no better on all three
        scikit-learn data sets). Not with ``method='ivon'``.
    map_epochs : int, default=0
        Epochs of a first phase that trains the weight means alone, as a point estimate (MAP,
        the prior an L2 penalty), before the variational training starts from those means
        with every posterior standard deviation at ``map_scale``
        (:mod:`varbayes.kinds.warm_start`); ``0``: none. ``docs/benchmarks.md`` measures 200
        (a lower NLL than the defaults on all three scikit-learn data sets on the tuning
        splits, but not the bar against ``MLPClassifier``: not the default). Only 0 with
        ``method='ivon'``.
    map_scale : float, default=0.03
        The posterior standard deviation the variational phase starts from (with
        ``map_epochs > 0``).
    prediction_noise : {'normal', 'sobol'}, default='normal'
        The weight noise of every prediction's draws: independent normals, or the first
        ``num_samples`` points of a scrambled Sobol sequence through the inverse normal CDF
        (:mod:`varbayes.nn.qmc`; independent normals above its 21201 weights), an unbiased
        average with less Monte Carlo error. ``docs/benchmarks.md`` measures it (at 1000
        draws about as steady as 2-4 times as many independent ones; not the default: no
        better on the scikit-learn data sets' bar). The validation score and the
        temperature fit always draw independent normals.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels, sorted; class index ``k`` is ``classes_[k]``.
    model_ : varbayes.kinds.FittedModel
    predict_seed_ : int
        Seed of the weight draws of every prediction (deterministic predictions).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When ``X`` was a DataFrame with string column names.
    """

    def __init__(
        self,
        *,
        hidden: int | list[int] | tuple[int, ...] | None = None,
        epochs: int | None = None,
        lr: float | None = None,
        batch_size: int | None = None,
        num_samples: int = 1000,
        kl: str | None = None, prior: str | None = None, prior_scale: float | None = None,
        random_state: int | np.random.Generator | torch.Generator | None = None,
        progress: bool = False,
        early_stopping: bool = True,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 20,
        method: str = "bbb",
        n_members: int = 1,
        map_epochs: int = 0,
        map_scale: float = 0.03,
        prediction_noise: str = "normal",
    ) -> None:
        self._store(locals())

    def __sklearn_tags__(self) -> Any:
        """Single-output multi-class classifier on dense finite data."""
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags

    def _overrides(self, n_rows: int) -> dict[str, Any]:
        overrides: dict[str, Any] = {}
        for name in _OPTIONS:
            value = getattr(self, name)
            if value is not None:
                overrides[name] = [value] if name == "hidden" and isinstance(
                    value, int | np.integer) else value
        if "batch_size" not in overrides and n_rows > FULL_BATCH_ROWS:
            overrides["batch_size"] = DEFAULT_BATCH
        make_config("family", 1, likelihood="categorical", **overrides)  # the option checks
        self._check_run_options()
        if self.prediction_noise not in NOISES:
            raise ValueError(f"prediction_noise must be one of {list(NOISES)}, got "
                             f"{self.prediction_noise!r}")
        return overrides

    def fit(self, X: Any, y: Any) -> BayesianClassifier:
        """Train on ``X`` of shape (n, d) and labels ``y`` of shape (n,).

        Raises
        ------
        ValueError
            For invalid data, a continuous target ("Unknown label type"), a single class, or
            invalid parameters.
        """
        self._require_y(y)
        X_arr = check_array(X)
        y_raw = np.asarray(y)
        if y_raw.ndim == 2 and y_raw.shape[1] == 1:
            self._warn_column_y()
        y_arr = column_or_1d(y_raw, warn=False)
        if y_arr.shape[0] != X_arr.shape[0]:
            raise ValueError(f"y has {y_arr.shape[0]} samples but X has {X_arr.shape[0]} rows; "
                             "they must match")
        if y_arr.dtype.kind in "fc":
            assert_all_finite(y_arr, input_name="y")
        check_classification_targets(y_arr)
        overrides = self._overrides(X_arr.shape[0])
        validate_data(self, X, skip_check_array=True, reset=True)
        classes, index = np.unique(y_arr, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y holds one class ({classes[0].tolist()!r}); a classifier needs "
                             "at least 2 classes in the training data")
        self.classes_ = classes
        likelihood = "bernoulli" if len(classes) == 2 else "categorical"
        generator = self._fit_generator()
        self.model_, self.history_ = fit(
            "family", X_arr, index.astype(np.float64), generator=generator,
            progress=self.progress, likelihood=likelihood, n_classes=len(classes),
            feature_names=self._feature_names(),
            early_stopping=self.early_stopping, validation_fraction=self.validation_fraction,
            n_iter_no_change=self.n_iter_no_change, classes=list(classes), **overrides)
        return self

    def _summary(self, X: Any) -> dict[str, np.ndarray]:
        """Probabilities, label indices and the entropy split per row of ``X``.

        Through :func:`~varbayes.predictive.columns.aligned_rows`: a row's numbers do not
        depend on the rows predicted with it.
        """
        X_arr, num_samples = self._checked_X(X)

        def summarise(x: np.ndarray) -> dict[str, np.ndarray]:
            pred = cast(ClassPrediction, predict_family(self.model_, x, num_samples,
                                                        generator=self._generator(),
                                                        noise=self.prediction_noise))
            return {"probs": pred.probs.numpy(), "label_index": pred.label_index.numpy(),
                    "entropy": pred.entropy.numpy(),
                    "aleatoric_entropy": pred.aleatoric_entropy.numpy(),
                    "mutual_information": pred.mutual_information.numpy()}

        return aligned_rows(summarise, X_arr)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities averaged over the weight draws, shape (n_samples, n_classes)."""
        return self._summary(X)["probs"]

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return cast(np.ndarray, np.log(self.predict_proba(X)))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable label per row, shape (n_samples,)."""
        index = self._summary(X)["label_index"]  # checks that the model is fitted
        return np.asarray(self.classes_[index])

    def predict_uncertainty(self, X: Any) -> dict[str, np.ndarray]:
        """The entropy split of the predictive per row, in nats.

        Returns
        -------
        dict of str to ndarray of shape (n_samples,)
            ``entropy`` (total) = ``aleatoric_entropy`` (expected entropy of the draws) +
            ``mutual_information`` (epistemic: between the label and the weights).
        """
        summary = self._summary(X)
        return {k: summary[k] for k in ("entropy", "aleatoric_entropy", "mutual_information")}

    def check_labels(self, y: Any, name: str = "y") -> np.ndarray:
        """Class indices of labels ``y``; ``ValueError`` naming a label never seen in fit."""
        check_is_fitted(self)
        y_arr = column_or_1d(np.asarray(y), warn=False)
        known = np.isin(y_arr, self.classes_)
        if not known.all():
            row = int(np.flatnonzero(~known)[0])
            raise ValueError(f"{name}[{row}] = {y_arr[row].tolist()!r} is a class never seen in "
                             f"fit; the classes are {self.classes_.tolist()}")
        return cast(np.ndarray, np.searchsorted(self.classes_, y_arr))

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy on ``(X, y)``; ``ValueError`` for a label never seen in fit."""
        self.check_labels(y)
        return float(super().score(X, y, sample_weight))

    def _json_params(self) -> dict[str, Any]:
        params: dict[str, Any] = self.get_params()
        params["random_state"] = params["random_state"] if isinstance(
            params["random_state"], int) else None
        if params["hidden"] is not None and not isinstance(params["hidden"], int):
            params["hidden"] = [int(h) for h in params["hidden"]]
        return params

    def save(self, path: str | os.PathLike[str], force: bool = False) -> Path:
        """Save as a varbayes model directory (labels in ``config.json``'s ``classes``)."""
        return self._save(path, force)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BayesianClassifier:
        """Load a classifier saved by :meth:`save` or by ``varbayes fit --likelihood``."""
        fitted = io.load(path)
        if fitted.classes is None:
            raise ValueError(f"{path} holds no classifier (no class labels)")
        meta = fitted.metadata.get("estimator")
        params = dict(meta["params"]) if isinstance(meta, dict) and isinstance(
            meta.get("params"), dict) else {}
        seed = meta.get("predict_seed", 0) if isinstance(meta, dict) else 0
        est = cls(**params)
        est._restore(fitted, int(seed))
        est.classes_ = np.asarray(fitted.classes)
        if fitted.feature_names is not None and meta is not None and "feature_names_in" in meta:
            est.feature_names_in_ = np.asarray(fitted.feature_names, dtype=object)
        return est
