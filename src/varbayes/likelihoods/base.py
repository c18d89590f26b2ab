"""The likelihood interface: from a network's outputs to a distribution of the target.

A :class:`Likelihood` is stateless. It names the parameters that a model's head outputs
(``params``), declares their constraints (``arg_constraints``, as ``torch.distributions`` does),
says whether targets are standardised for training (a Gaussian target is; counts and labels are
not), checks targets against its support, and turns a dictionary of parameter tensors into a
``torch.distributions`` object whose batch shape is that of the tensors, ``(S, n)`` for ``S``
weight draws. Everything downstream asks the likelihood instead of assuming a Gaussian:
the ELBO takes :meth:`Likelihood.log_prob`, and :mod:`varbayes.predictive` builds the mixture
over weight draws from :meth:`Likelihood.distribution`.

To add a likelihood, subclass :class:`Likelihood` in a module of its own and register it in
:data:`varbayes.likelihoods.LIKELIHOODS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution, Exponential, Poisson, constraints

__all__ = ["Likelihood", "RateLikelihood", "raise_at_first"]

_Rate = TypeVar("_Rate", Poisson, Exponential)


def raise_at_first(bad: np.ndarray, y: np.ndarray, name: str, problem: str) -> None:
    """Raise ``ValueError("{name}[row] = value {problem}")`` for the first ``row`` where ``bad``."""
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{row}] = {float(y[row])!r} {problem}")


class Likelihood(ABC):
    """Observation model :math:`p(y \\mid \\theta(x))` of a network's outputs :math:`\\theta`."""

    name: ClassVar[str]
    """The option value that selects this likelihood (``likelihood='gaussian'``)."""
    params: ClassVar[tuple[str, ...]]
    """Names of the parameters a model head outputs, in order."""
    arg_constraints: ClassVar[dict[str, constraints.Constraint]]
    """Constraint of each parameter (checked by :meth:`check_params`)."""
    support: ClassVar[constraints.Constraint]
    """Where the target lives."""
    standardize_target: ClassVar[bool] = False
    """Whether the target is standardised before training (location-scale families only)."""

    @abstractmethod
    def distribution(self, params: Mapping[str, Tensor]) -> Distribution:
        """The distribution of ``y`` given the parameters, batch shape that of the tensors."""

    def log_prob(self, y: Tensor, params: Mapping[str, Tensor]) -> Tensor:
        """Elementwise :math:`\\log p(y \\mid \\theta)`, broadcast over the parameters' shape."""
        return self.distribution(params).log_prob(y)

    def check_params(self, params: Mapping[str, Tensor]) -> None:
        """Raise ``ValueError`` naming the parameter if one is missing or breaks its constraint."""
        missing = [p for p in self.params if p not in params]
        if missing:
            raise ValueError(f"{self.name} likelihood needs parameters {list(self.params)}, "
                             f"missing {missing}")
        for name in self.params:
            ok = self.arg_constraints[name].check(params[name])
            if not bool(ok.all()):
                raise ValueError(f"{self.name} likelihood: parameter {name!r} breaks its "
                                 f"constraint {self.arg_constraints[name]}")

    def check_target(self, y: np.ndarray, name: str = "y") -> None:
        """Raise ``ValueError`` naming the first row of ``y`` outside :attr:`support`."""
        inside = np.asarray(self.support.check(_as_tensor(y)))
        raise_at_first(~inside, y, name, f"is outside the support of the {self.name} likelihood "
                       f"({self.support})")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RateLikelihood(Likelihood, Generic[_Rate]):
    """A likelihood of one ``rate`` (from a log-rate head), a ``torch.distributions`` family.

    A subclass names the :attr:`family`; the rate's constraint and the support are the
    family's unless the subclass declares its own.
    """

    params: ClassVar[tuple[str, ...]] = ("rate",)
    family: type[_Rate]  # a class attribute (ClassVar cannot hold a type variable)
    """The distribution class, called with the rate."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "arg_constraints" not in vars(cls):
            cls.arg_constraints = {"rate": cls.family.arg_constraints["rate"]}
        if "support" not in vars(cls):
            cls.support = cls.family.support

    def distribution(self, params: Mapping[str, Tensor]) -> _Rate:
        """:attr:`family` of the rate."""
        return self.family(params["rate"], validate_args=False)


def _as_tensor(y: np.ndarray) -> Tensor:
    return torch.as_tensor(np.array(y, dtype=np.float64, copy=True))
