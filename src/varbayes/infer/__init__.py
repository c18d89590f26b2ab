"""Inference: objectives, the training loop, data-parallel training, the optimiser.

The ELBO is the one place where the KL is scaled.

>>> import torch
>>> from varbayes.infer import ELBO, train
>>> from varbayes.models import BayesianMLP
>>> x = torch.linspace(-2, 2, 64)[:, None]
>>> history = train(BayesianMLP(1, (8,)), ELBO(64), x, torch.sin(x[:, 0]), epochs=3, lr=0.01)
>>> len(history.loss)
3
"""

from __future__ import annotations

from varbayes.infer.adam import Adam
from varbayes.infer.history import History, NonFiniteLossError, NonFinitePolicy
from varbayes.infer.objectives import ELBO, KL, AmortizedELBO, ELBOTerms, SquaredError
from varbayes.infer.train import train

__all__ = [
    "ELBO",
    "KL",
    "Adam",
    "AmortizedELBO",
    "ELBOTerms",
    "History",
    "NonFiniteLossError",
    "NonFinitePolicy",
    "SquaredError",
    "train",
]
