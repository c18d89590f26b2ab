"""scikit-learn facade: :class:`BayesianRegressor`, over :func:`varbayes.kinds.fit`.

The estimator has no mathematics of its own: :meth:`BayesianRegressor.fit` validates its
inputs and calls :func:`varbayes.kinds.fit`; every prediction method summarises the
:class:`~varbayes.predictive.Prediction` of :meth:`varbayes.kinds.FittedModel.predict`.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.uniform(-1, 1, size=(50, 1)); y = X[:, 0] + 0.1 * rng.normal(size=50)
>>> reg = BayesianRegressor("mle", epochs=20, random_state=0).fit(X, y)
>>> mean, std = reg.predict(X[:3], return_std=True)
>>> mean.shape, std.shape
((3,), (3,))
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from varbayes import io
from varbayes._estimator_base import EstimatorBase
from varbayes._validation import (
    as_generator,
    check_enum,
    check_probability_level,
    check_scalar,
    check_X_y,
)
from varbayes.calibration import CalibratedPrediction
from varbayes.kinds import DEFAULTS, ModelKind, calibrate, fit, make_config
from varbayes.kinds.family import is_family, predict_family, resolve_likelihood
from varbayes.predictive import FamilyPrediction, Prediction
from varbayes.predictive.columns import aligned_columns

__all__ = ["BayesianRegressor"]

_OPTIONS = ("hidden", "epochs", "lr", "batch_size", "kl", "prior", "prior_scale", "noise",
            "n_members", "warmup_fraction")


def _ndim(a: Any) -> int:
    ndim = getattr(a, "ndim", None)
    if ndim is None:
        try:
            ndim = np.ndim(a)
        except (TypeError, ValueError):
            return -1
    return int(ndim)


class BayesianRegressor(RegressorMixin, EstimatorBase):
    """Neural-network regression with predictive uncertainty, as a scikit-learn estimator.

    Parameters
    ----------
    model : {'hetero', 'bbb', 'vi', 'vi_analytic', 'mle'}, default='hetero'
        Model kind, see :mod:`varbayes.kinds`. ``'hetero'`` (three Bayes-by-Backprop networks
        with a heteroscedastic head) gives both aleatoric and epistemic uncertainty.
    hidden : int, sequence of int or None, default=None
        Hidden layer sizes (an int means one layer). ``None``: the kind's default.
    epochs : int or None, default=None
        Training epochs. ``None``: the kind's default (``recipes.DEFAULTS``).
    lr : float or None, default=None
        Adam learning rate. ``None``: the kind's default.
    batch_size : int or None, default=None
        Mini-batch size. ``None``: the kind's default (full batch).
    num_samples : int, default=200
        Posterior draws ``S`` used by every prediction method.
    kl : {'analytic', 'mc'} or None, default=None
        KL estimator of the ELBO; only for ``'bbb'`` and ``'hetero'``.
    prior : {'gaussian', 'scale_mixture'} or None, default=None
        Weight prior of ``'bbb'`` and ``'hetero'`` (``None``: ``'gaussian'``). The scale
        mixture (Blundell et al. 2015) has no closed-form KL, so it trains with ``kl='mc'``.
    prior_scale : float or None, default=None
        Standard deviation of the Gaussian weight prior (of the wide component of the scale
        mixture); only for ``'bbb'`` and ``'hetero'``.
    noise : {'fixed', 'learned'}, float or None, default=None
        Observation noise of ``'bbb'``: ``'fixed'`` (the post's 0.1 in standardised units),
        ``'learned'``, or a float: fixed at that standard deviation (standardised units).
    n_members : int or None, default=None
        Networks in the ensemble, all stopped on one validation part that none trains on
        (``likelihood`` models: each on its own part; ``None``: the kind's
        default, 3 for ``'hetero'``, 1 for a non-Gaussian ``likelihood``; ``1``: one network).
        ``'hetero'`` and the ``likelihood`` models only, and ``1`` with ``method='ivon'``.
    warmup_fraction : float in [0, 1) or None, default=None
        Share of ``epochs`` for which each ``'hetero'`` network first trains with one learned
        noise level (``None``: the kind's default, 2/3; ``0``: no warm-up). ``'hetero'`` only,
        and ``0`` with ``method='ivon'``. See ``docs/calibration.md``.
    random_state : int, numpy / torch generator or None, default=None
        Seeds initialisation, mini-batches and the weight noise of training, and the weight
        draws of prediction, so an int gives reproducible fits and predictions.
    progress : bool, default=False
        Show a training progress bar.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows, score the model on them every few epochs
        and keep the checkpoint with the best log predictive density (``epochs`` becomes the
        most epochs); with fewer than 80 rows every row trains for ``epochs``. See
        ``docs/calibration.md``.
    validation_fraction : float in (0, 1), default=0.1
        Share of the rows (at least 20) in the validation part, and in the calibration part.
    n_iter_no_change : int, default=20
        Validation checks without improvement before training stops.
    calibration : {None, 'scale', 'isotonic', 'conformal'}, default=None
        Fit this map (:mod:`varbayes.calibration`) on a calibration part of the rows, apart
        from the training and validation rows; every prediction method applies it.
        ``'conformal'`` gives intervals with marginal coverage >= level for exchangeable data.
    likelihood : {'gaussian', 'student_t', 'poisson', 'exponential'}, default='gaussian'
        Any but ``'gaussian'`` trains the ``family`` kind (:mod:`varbayes.kinds.family`) with
        that head; counts get integer interval bounds. ``calibration`` is Gaussian only.
    device : {'cpu', 'auto', 'cuda'}, default='cpu'
        Where to train and predict, resolved at :meth:`fit` (``'auto'``: CUDA where available).
        :meth:`save` writes device-independent files; :meth:`load` restores to the CPU.
    method : {'bbb', 'ivon'}, default='bbb'
        ``'ivon'``: the kind's network trained at its weight means by the IVON optimiser,
        predicting from IVON's posterior (:mod:`varbayes.kinds.ivon`; other defaults for
        ``lr`` and ``epochs``). Not for ``mle``, ``vi`` and ``vi_analytic``.

    Options that do not apply to the chosen ``model`` must be left ``None``; otherwise
    :meth:`fit` raises ``ValueError`` naming them.

    Attributes
    ----------
    model_ : varbayes.kinds.FittedModel
        The trained model (with its standardisers).
    history_ : varbayes.infer.train.History or None
        Per-epoch training losses (``None`` after :meth:`load`).
    predict_seed_ : int
        Seed of the generator of every prediction, drawn from ``random_state`` at fit:
        predictions of a fitted estimator are deterministic.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of str of shape (n_features_in_,)
        Column names, when ``X`` was a DataFrame with string column names.

    Notes
    -----
    scikit-learn's ``parametrize_with_checks`` passes (``tests/test_estimator.py``), including
    ``check_methods_subset_invariance``: Bayesian networks predict in fixed float32 row blocks
    checked to be batch-invariant (:mod:`varbayes.nn.rowblocks`), other networks in float64
    (:data:`varbayes.models.PREDICT_DTYPE`), the summaries and data units in float64, so a row
    predicted alone and in a batch agree to ~1e-15 (batch-size-dependent BLAS kernels did not).

    The checks that pin scikit-learn's error wording pass because varbayes's shared input
    validation (:mod:`varbayes._validation`) includes that wording next to its own (the row,
    column or argument at fault): complex data raises ``ValueError('Complex data not
    supported: ...')``, a 1-D ``X`` asks to "Reshape your data", 0 columns reports "0
    feature(s) ... while a minimum of 1 is required", and an object cell that is not a number
    or string raises float()'s ``TypeError``.

    ``check_array_api_input`` is skipped by scikit-learn unless ``SCIPY_ARRAY_API=1``; the
    estimator takes NumPy, pandas or torch input and does not claim array-API support.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.linspace(-1, 1, 40)[:, None]; y = np.sin(3 * X[:, 0])
    >>> reg = BayesianRegressor(epochs=10, hidden=8, num_samples=20, random_state=0)
    >>> lower, upper = reg.fit(X, y).predict_interval(X, level=0.9)
    >>> bool((lower <= upper).all())
    True
    """

    model: str
    noise: str | float | None
    n_members: int | None
    warmup_fraction: float | None
    calibration: str | None
    likelihood: str
    device: str | torch.device
    #: :func:`varbayes.kinds.fit`'s ``member_layout`` (None: its default). Not a parameter
    #: (neither in ``get_params`` nor saved): ``benchmarks/calibration.py`` sets it on an
    #: instance to compare the members' validation layouts.
    _member_layout: str | None = None
    #: :func:`varbayes.kinds.fit`'s ``conformal_step`` (None: its default), a hook like
    #: ``_member_layout``: ``benchmarks/calibration.py`` sets it to study the rounding of the
    #: calibration part.
    _conformal_step: int | None = None

    def __init__(
        self,
        model: str = "hetero",
        *,
        hidden: int | list[int] | tuple[int, ...] | None = None,
        epochs: int | None = None,
        lr: float | None = None,
        batch_size: int | None = None,
        num_samples: int = 200,
        kl: str | None = None,
        prior: str | None = None,
        prior_scale: float | None = None,
        noise: str | float | None = None,
        n_members: int | None = None,
        warmup_fraction: float | None = None,
        random_state: int | np.random.Generator | torch.Generator | None = None,
        progress: bool = False,
        early_stopping: bool = True,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 20,
        calibration: str | None = None,
        likelihood: str = "gaussian",
        device: str | torch.device = "cpu",
        method: str = "bbb",
    ) -> None:
        self._store(locals())

    # ------------------------------------------------------------------ params

    def _recipe(self) -> tuple[str, dict[str, Any]]:
        """Resolve the parameters into a model kind and ``recipes.fit`` overrides."""
        kind, overrides = resolve_likelihood(check_enum(self.model, ModelKind, "model").value,
                                             self.likelihood)
        overrides["method"] = self.method
        for name in _OPTIONS:
            value = getattr(self, name)
            if value is None:
                continue
            if name not in DEFAULTS[kind]:
                kinds = [k for k, d in DEFAULTS.items() if name in d]
                raise ValueError(
                    f"option {name}={value!r} does not apply to model={kind!r} (only to "
                    f"{kinds}); leave it None"
                )
            overrides[name] = value
        noise = overrides.get("noise")
        if noise is not None and not isinstance(noise, str):
            overrides["noise"] = "fixed"
            overrides["noise_std"] = check_scalar(noise, "noise", low=0.0, low_inclusive=False)
        # The shared option checks (types, ranges, allowed strings), before any data is read.
        config = make_config(kind, 1, **overrides)
        overrides = {key: config.get(key, value) for key, value in overrides.items()}
        self._check_run_options()
        return kind, overrides

    def __sklearn_tags__(self) -> Any:
        """Single-output regressor on dense finite float data, deterministic given a seed."""
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False
        return tags

    # ------------------------------------------------------------------ fit

    def fit(self, X: Any, y: Any) -> BayesianRegressor:
        """Train on ``X`` of shape (n, d) and ``y`` of shape (n,).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NumPy array, DataFrame (column names are kept), list of lists or tensor.
        y : array-like of shape (n_samples,)
            A column vector of shape (n_samples, 1) is accepted with a
            ``DataConversionWarning``, as in scikit-learn.

        Returns
        -------
        BayesianRegressor
            ``self``, fitted.

        Raises
        ------
        ValueError
            For invalid data (NaN, inf, wrong shapes, ...) or parameters.
        TypeError
            For parameters or data of the wrong type (sparse matrices included).
        """
        kind, overrides = self._recipe()
        self._require_y(y)
        X_arr, y_arr = check_X_y(X, y)
        if _ndim(y) == 2:
            self._warn_column_y()
        validate_data(self, X, skip_check_array=True, reset=True)
        generator = self._fit_generator()
        target = getattr(y, "name", None)
        self.model_, self.history_ = fit(
            kind,
            X_arr,
            y_arr,
            generator=generator,
            progress=self.progress,
            feature_names=self._feature_names(),
            target_name=None if target is None else str(target),
            early_stopping=self.early_stopping, validation_fraction=self.validation_fraction,
            n_iter_no_change=self.n_iter_no_change, calibration=self.calibration,
            calibration_samples=self.num_samples, device=self.device,
            member_layout=self._member_layout, conformal_step=self._conformal_step,
            **overrides,
        )
        return self

    def calibrate(self, X: Any, y: Any, method: str | None = "conformal") -> BayesianRegressor:
        """Fit the calibration map ``method`` on rows ``(X, y)`` that training did not see.

        Replaces any map from :meth:`fit` (the ``calibration`` parameter is left as it is);
        ``method=None`` removes it. ``'conformal'`` covers at least ``level`` of new rows
        exchangeable with ``(X, y)``. Returns ``self``.
        """
        check_is_fitted(self)
        validate_data(self, X, skip_check_array=True, reset=False)
        calibrate(self.model_, X, y, method, num_samples=self.num_samples,
                  generator=self._generator())
        return self

    # ------------------------------------------------------------------ predict

    def _prediction(self, X: Any) -> Prediction | CalibratedPrediction | FamilyPrediction:
        X_arr, num_samples = self._checked_X(X)
        return self._predict_checked(X_arr, num_samples)

    def _predict_checked(self, X_arr: np.ndarray, num_samples: int
                         ) -> Prediction | CalibratedPrediction | FamilyPrediction:
        generator = self._generator()
        if is_family(self.model_):  # a regressor's family is never a classifier's
            return cast(FamilyPrediction, predict_family(self.model_, X_arr, num_samples,
                                                         generator=generator))
        return self.model_.predict_calibrated(X_arr, num_samples, generator=generator)

    def _columns(self, X: Any, level: float = 0.9, *,
                 columns: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The prediction's ``columns`` for ``X``, each row's bits independent of the others."""
        X_arr, num_samples = self._checked_X(X)
        return aligned_columns(lambda x: self._predict_checked(x, num_samples), X_arr, level,
                               columns=columns)

    def predict(
        self, X: Any, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predictive mean (and standard deviation) of ``y``, like ``GaussianProcessRegressor``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return the total predictive standard deviation (aleatoric + epistemic).

        Returns
        -------
        mean : ndarray of shape (n_samples,)
        std : ndarray of shape (n_samples,)
            Only when ``return_std`` is True.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            For invalid ``X``, a different number of features or different feature names
            than at fit.
        """
        cols = self._columns(X, columns=("mean", "std"))
        return (cols["mean"], cols["std"]) if return_std else cols["mean"]

    def predict_interval(self, X: Any, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central predictive interval of probability ``level`` for ``y``.

        The bounds are the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
        predictive mixture (see :meth:`varbayes.predictive.Prediction.interval`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        level : float in (0, 1), default=0.9

        Returns
        -------
        lower, upper : ndarray of shape (n_samples,)
        """
        level = check_probability_level(level)
        cols = self._columns(X, level, columns=("lower", "upper"))
        return cols["lower"], cols["upper"]

    def predict_uncertainty(self, X: Any) -> dict[str, np.ndarray]:
        r"""Predictive mean and standard deviations, split into their two sources.

        .. math:: \mathrm{std}^2 = \mathrm{aleatoric\_std}^2 + \mathrm{epistemic\_std}^2

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        dict of str to ndarray of shape (n_samples,)
            ``mean``, ``std`` (total), ``aleatoric_std`` (noise in the data) and
            ``epistemic_std`` (spread of the model's mean; 0 for ``mle``, ``vi`` and
            ``vi_analytic``, which have no weight uncertainty).
        """
        return self._columns(X, columns=("mean", "std", "aleatoric_std", "epistemic_std"))

    def sample_y(self, X: Any, n_samples: int = 1, random_state: Any = 0) -> np.ndarray:
        """Draw values of ``y`` from the predictive, like ``GaussianProcessRegressor.sample_y``.

        Parameters
        ----------
        X : array-like of shape (n_samples_X, n_features)
        n_samples : int, default=1
            Draws per input.
        random_state : int, generator or None, default=0
            Seeds the draws of ``y`` (the weight draws use ``predict_seed_``).

        Returns
        -------
        ndarray of shape (n_samples_X, n_samples)
        """
        n_samples = check_scalar(n_samples, "n_samples", kind=int, low=1)
        pred = self._prediction(X)
        draws = pred.sample(n_samples, generator=as_generator(random_state))
        return draws.T.detach().cpu().numpy().astype(np.float64)

    # ------------------------------------------------------------------ persistence

    def _json_params(self) -> dict[str, Any]:
        params: dict[str, Any] = self.get_params()
        if params["hidden"] is not None and not isinstance(params["hidden"], int | np.integer):
            params["hidden"] = [int(h) for h in params["hidden"]]
        for key in ("hidden", "epochs", "batch_size", "num_samples", "n_members"):
            if isinstance(params[key], np.integer):
                params[key] = int(params[key])
        if isinstance(params["warmup_fraction"], np.floating):
            params["warmup_fraction"] = float(params["warmup_fraction"])
        params["device"] = str(params["device"])
        rs = params["random_state"]
        params["random_state"] = int(rs) if isinstance(rs, int | np.integer) else None
        return params

    def save(self, path: str | os.PathLike[str], force: bool = False) -> Path:
        """Save the fitted estimator as a varbayes model directory (see :func:`varbayes.io.save`).

        The estimator's parameters, ``predict_seed_`` and feature names are stored in
        ``config.json``, so :meth:`load` restores an estimator with identical predictions.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        FileExistsError
            If ``path`` holds a model and ``force`` is False, or holds anything else.
        """
        return self._save(path, force)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BayesianRegressor:
        """Load an estimator saved by :meth:`save` (or any model directory, e.g. from the CLI).

        Raises
        ------
        FileNotFoundError, ValueError
            See :func:`varbayes.io.load`.
        """
        fitted = io.load(path)
        meta = fitted.metadata.get("estimator")
        where = Path(path) / io.CONFIG_FILE
        if meta is None:  # written by the CLI / io.save: rebuild the parameters from the config
            config = fitted.config
            params = {k: config[k] for k in ("hidden", "epochs", "lr", "batch_size")}
            params.update({k: config[k] for k in ("kl", "prior", "prior_scale", "n_members",
                                                  "warmup_fraction") if k in config})
            if "noise" in config:
                params["noise"] = config["noise_std"] if config["noise"] == "fixed" else "learned"
            params["model"], seed = config["kind"], 0
            params["method"] = config.get("method", "bbb")
            if config["kind"] == "family":
                params["model"], params["likelihood"] = "hetero", config["likelihood"]
        elif isinstance(meta, dict) and isinstance(meta.get("params"), dict):
            params, seed = dict(meta["params"]), meta.get("predict_seed", 0)
        else:
            raise ValueError(f"{where}: 'metadata.estimator' must be an object with 'params'")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"{where}: 'predict_seed' must be a non-negative int, got {seed!r}")
        try:
            est = cls(**params)
            kind, _ = est._recipe()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: invalid estimator parameters: {exc}") from None
        if kind != fitted.kind.value:
            raise ValueError(
                f"{where}: estimator model {params.get('model')!r} does not match the saved "
                f"model kind {fitted.kind.value!r}"
            )
        est._restore(fitted, seed)
        if fitted.feature_names is not None:
            est.feature_names_in_ = np.asarray(fitted.feature_names, dtype=object)
        return est
