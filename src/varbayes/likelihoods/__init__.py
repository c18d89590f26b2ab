"""Likelihoods: what a network's outputs say about the target.

>>> import torch
>>> from varbayes.likelihoods import get_likelihood
>>> lik = get_likelihood("gaussian")
>>> lik.params
('loc', 'scale')
>>> lik.log_prob(torch.tensor(0.0), {"loc": torch.tensor(0.0), "scale": torch.tensor(1.0)})
tensor(-0.9189)
"""

from __future__ import annotations

from varbayes.likelihoods.base import Likelihood
from varbayes.likelihoods.classes import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    ClassLikelihood,
)
from varbayes.likelihoods.exponential import ExponentialLikelihood
from varbayes.likelihoods.gaussian import Gaussian, gaussian_log_prob
from varbayes.likelihoods.poisson import PoissonLikelihood
from varbayes.likelihoods.student_t import StudentTLikelihood, student_t_cdf

__all__ = [
    "CLASSIFICATION",
    "LIKELIHOODS",
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "ClassLikelihood",
    "ExponentialLikelihood",
    "Gaussian",
    "Likelihood",
    "PoissonLikelihood",
    "StudentTLikelihood",
    "gaussian_log_prob",
    "get_likelihood",
    "student_t_cdf",
]

#: Every likelihood by its option name.
LIKELIHOODS: dict[str, type[Likelihood]] = {cls.name: cls for cls in (
    Gaussian, StudentTLikelihood, PoissonLikelihood, ExponentialLikelihood, BernoulliLikelihood,
    CategoricalLikelihood)}
#: The likelihoods of class labels (a classifier's).
CLASSIFICATION = frozenset({"bernoulli", "categorical"})


def get_likelihood(name: str | Likelihood) -> Likelihood:
    """The likelihood called ``name`` (an instance passes through).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    if isinstance(name, Likelihood):
        return name
    try:
        return LIKELIHOODS[str(name)]()
    except KeyError:
        raise ValueError(
            f"unknown likelihood {name!r}; expected one of {sorted(LIKELIHOODS)}"
        ) from None
