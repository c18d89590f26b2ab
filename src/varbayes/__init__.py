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

__version__ = "0.1.0"

from varbayes._fast import run as train_many
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
    train,
)
from varbayes.io import load, save
from varbayes.kinds import FittedModel, ModelKind, fit
from varbayes.metrics import evaluate
from varbayes.models import AmortizedVI, BayesianMLP, Head, MLPRegressor
from varbayes.nn.layers import BayesLinear, Estimator
from varbayes.predictive import Prediction, predictive
from varbayes.priors import GaussianPrior, ScaleMixturePrior

__all__ = [
    "ELBO",
    "KL",
    "AmortizedELBO",
    "AmortizedVI",
    "BayesLinear",
    "BayesianMLP",
    "BayesianRegressor",
    "ELBOTerms",
    "Estimator",
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
    "load",
    "load_toy",
    "load_uci",
    "predictive",
    "read_csv",
    "save",
    "train",
    "train_many",
]
