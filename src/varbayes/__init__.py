"""varbayes: variational inference for neural-network regression with honest uncertainty.

A short tour::

    import torch
    from varbayes import BayesianRegressor, load_toy

    data = load_toy()                                  # the blog post's toy data + test draw
    reg = BayesianRegressor("hetero", random_state=0).fit(data.x_train, data.y_train[:, 0])
    mean, std = reg.predict(data.x_test, return_std=True)
    lower, upper = reg.predict_interval(data.x_test, level=0.9)
    parts = reg.predict_uncertainty(data.x_test)       # aleatoric_std, epistemic_std

The building blocks, for your own PyTorch models: :class:`BayesLinear` (mean-field Gaussian
layer), :class:`ELBO` (the objective, KL scaled once), :func:`train`, :func:`predictive`
(S weight draws in one batched pass, a Gaussian-mixture :class:`Prediction`), and the scores in
:mod:`varbayes.metrics`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Where each public name lives. Imported on first use (PEP 562), so ``import varbayes`` and
#: ``varbayes --help`` do not pay for torch, scikit-learn and matplotlib up front.
_EXPORTS: dict[str, str] = {
    "train_many": "varbayes._fast:run",
    "load_toy": "varbayes.data", "load_uci": "varbayes.data", "read_csv": "varbayes.data",
    "Standardizer": "varbayes.data.transforms",
    "BayesianRegressor": "varbayes.estimator", "BayesianClassifier": "varbayes.classifier",
    "FamilyMLP": "varbayes.models", "get_likelihood": "varbayes.likelihoods",
    "ELBO": "varbayes.infer", "KL": "varbayes.infer", "AmortizedELBO": "varbayes.infer",
    "ELBOTerms": "varbayes.infer", "History": "varbayes.infer",
    "NonFiniteLossError": "varbayes.infer", "SquaredError": "varbayes.infer",
    "train": "varbayes.infer",
    "load": "varbayes.io", "save": "varbayes.io",
    "FittedModel": "varbayes.kinds", "ModelKind": "varbayes.kinds", "fit": "varbayes.kinds",
    "evaluate": "varbayes.metrics",
    "AmortizedVI": "varbayes.models", "BayesianMLP": "varbayes.models", "Head": "varbayes.models",
    "MLPRegressor": "varbayes.models",
    "BayesLinear": "varbayes.nn", "Estimator": "varbayes.nn",
    "Prediction": "varbayes.predictive", "predictive": "varbayes.predictive",
    "GaussianPrior": "varbayes.priors", "ScaleMixturePrior": "varbayes.priors",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    """Import a public name on first use."""
    try:
        where = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'varbayes' has no attribute {name!r}") from None
    module, _, attr = where.partition(":")
    value = getattr(importlib.import_module(module), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # the names as static imports, for type checkers and IDEs
    from varbayes._fast import run as train_many
    from varbayes.classifier import BayesianClassifier
    from varbayes.data import load_toy, load_uci, read_csv
    from varbayes.data.transforms import Standardizer
    from varbayes.estimator import BayesianRegressor
    from varbayes.infer import (
        ELBO,
        KL,
        AmortizedELBO,
        ELBOTerms,
        History,
        NonFiniteLossError,
        SquaredError,
    )
    from varbayes.infer.train import train  # the function; via varbayes.infer mypy sees the module
    from varbayes.io import load, save
    from varbayes.kinds import FittedModel, ModelKind, fit
    from varbayes.likelihoods import get_likelihood
    from varbayes.metrics import evaluate
    from varbayes.models import AmortizedVI, BayesianMLP, FamilyMLP, Head, MLPRegressor
    from varbayes.nn import BayesLinear, Estimator
    from varbayes.predictive import Prediction, predictive
    from varbayes.priors import GaussianPrior, ScaleMixturePrior

__all__ = [
    "ELBO",
    "KL",
    "AmortizedELBO",
    "AmortizedVI",
    "BayesLinear",
    "BayesianClassifier",
    "BayesianMLP",
    "BayesianRegressor",
    "ELBOTerms",
    "Estimator",
    "FamilyMLP",
    "FittedModel",
    "GaussianPrior",
    "Head",
    "History",
    "MLPRegressor",
    "ModelKind",
    "NonFiniteLossError",
    "Prediction",
    "ScaleMixturePrior",
    "SquaredError",
    "Standardizer",
    "__version__",
    "evaluate",
    "fit",
    "get_likelihood",
    "load",
    "load_toy",
    "load_uci",
    "predictive",
    "read_csv",
    "save",
    "train",
    "train_many",
]
