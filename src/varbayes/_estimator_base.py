"""What the two scikit-learn front doors share: stored parameters, checks, seeds and saving.

:class:`~varbayes.BayesianRegressor` and :class:`~varbayes.BayesianClassifier` each keep their
own ``__init__`` signature (scikit-learn reads the parameters from it), their own option
resolution and their own predictions; :class:`EstimatorBase` holds the steps that are the same
in both, so the two cannot drift apart.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from varbayes import io
from varbayes._validation import as_generator, check_array, check_scalar

if TYPE_CHECKING:
    from varbayes.infer import History
    from varbayes.kinds import FittedModel

__all__ = ["EstimatorBase"]


class EstimatorBase(BaseEstimator):
    """Base of the varbayes estimators; not an estimator of its own (it has no ``fit``).

    ``__init__`` of a subclass only stores its arguments (:meth:`_store`); the parameters both
    front doors take are declared here for type checkers.
    """

    hidden: int | list[int] | tuple[int, ...] | None
    epochs: int | None
    lr: float | None
    batch_size: int | None
    num_samples: int
    kl: str | None
    prior: str | None
    prior_scale: float | None
    random_state: int | np.random.Generator | torch.Generator | None
    progress: bool
    early_stopping: bool
    validation_fraction: float
    n_iter_no_change: int

    model_: FittedModel
    history_: History | None  # fitted attributes, declared for type checkers only
    predict_seed_: int

    def _store(self, args: dict[str, Any]) -> None:
        """Keep each ``__init__`` argument (its ``locals()``) as the attribute of its name."""
        for name, value in args.items():
            if name != "self":
                setattr(self, name, value)

    def __sklearn_tags__(self) -> Any:
        """Dense finite input, deterministic given a seed."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.non_deterministic = False
        return tags

    def _check_run_options(self) -> None:
        """Check ``num_samples`` and ``progress``, the options no kind's config holds."""
        check_scalar(self.num_samples, "num_samples", kind=int, low=1)
        if not isinstance(self.progress, bool):
            raise TypeError(f"progress must be a bool, got {self.progress!r}")

    def _require_y(self, y: Any) -> None:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )

    @staticmethod
    def _warn_column_y() -> None:
        """scikit-learn's warning for a y of shape (n, 1), pointing at the caller of ``fit``."""
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change the "
            "shape of y to (n_samples,), for example using ravel().",
            DataConversionWarning,
            stacklevel=3,
        )

    def _fit_generator(self) -> torch.Generator:
        """The generator of ``fit`` from ``random_state``, after drawing ``predict_seed_``."""
        generator = as_generator(self.random_state)
        self.predict_seed_ = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        return generator

    def _feature_names(self) -> list[str] | None:
        names = getattr(self, "feature_names_in_", None)
        return None if names is None else [str(n) for n in names]

    def _checked_X(self, X: Any) -> tuple[np.ndarray, int]:
        """``X`` of a fitted estimator as an array, checked against fit; and ``num_samples``."""
        check_is_fitted(self)
        num_samples = check_scalar(self.num_samples, "num_samples", kind=int, low=1)
        X_arr = check_array(X)
        validate_data(self, X, skip_check_array=True, reset=False)
        return X_arr, num_samples

    def _generator(self) -> torch.Generator:
        """The prediction generator, on the model's device."""
        return torch.Generator(self.model_.device).manual_seed(self.predict_seed_)

    def _json_params(self) -> dict[str, Any]:
        """The parameters as ``config.json`` stores them."""
        raise NotImplementedError

    def _save(self, path: str | os.PathLike[str], force: bool) -> Path:
        """:func:`varbayes.io.save` with the class, :meth:`_json_params` and seed in metadata."""
        check_is_fitted(self)
        metadata = {
            "estimator": {
                "class": type(self).__name__,
                "params": self._json_params(),
                "predict_seed": self.predict_seed_,
            }
        }
        return io.save(self.model_, path, force=force, metadata=metadata)

    def _restore(self, fitted: FittedModel, seed: int) -> None:
        """The fitted attributes of a loaded model (``history_`` is not saved)."""
        self.model_, self.history_, self.predict_seed_ = fitted, None, seed
        self.n_features_in_ = fitted.in_features
