"""Bayes by Backprop with the head of another likelihood: Student-t, Poisson, exponential, classes.

:class:`FamilyMLP` is a :class:`~varbayes.models.BayesianMLP` whose last layer has as many
outputs as the likelihood's head needs, and whose head maps them to that likelihood's
parameters (``ModelOutput.family``):

===========  =======  ============================================================
likelihood   outputs  parameters
===========  =======  ============================================================
student_t    2        ``loc``, ``scale = softplus(raw) + min_scale``, and ``df``, one
                      learned parameter of the model, ``df = 2 + softplus(df_rho)``
poisson      1        ``rate = exp(log_rate)``
exponential  1        ``rate = exp(log_rate)``
bernoulli    1        ``logits = (0, f)``: class 1 has log-odds ``f``
categorical  K        ``logits``
===========  =======  ============================================================

Log-rates are clipped to [-40, 40] before the exponential, so a rate never overflows float32.
``ModelOutput.loc`` and ``scale`` are each component's mean and standard deviation (NaN for a
categorical head). The fast engine (:mod:`varbayes._fast`) trains the Bernoulli and
categorical heads (its whitelist ``CLASS_HEADS``); it refuses the others, which train on
autograd.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from varbayes._checks_scalar import check_count
from varbayes.likelihoods import get_likelihood
from varbayes.models.base import ModelOutput
from varbayes.models.bayesian import BayesianMLP
from varbayes.nn.layers import BayesLinear, Estimator
from varbayes.nn.parametrization import inverse_softplus, softplus_scale
from varbayes.priors import Prior

__all__ = ["FAMILY_LIKELIHOODS", "FamilyMLP", "head_outputs"]

#: The likelihoods a :class:`FamilyMLP` has a head for.
FAMILY_LIKELIHOODS = ("student_t", "poisson", "exponential", "bernoulli", "categorical")
#: Bound of the log-rate heads.
MAX_LOG_RATE = 40.0


def head_outputs(likelihood: str, n_classes: int = 2) -> int:
    """Network outputs of the head of ``likelihood`` (``n_classes`` for a categorical one)."""
    if likelihood == "categorical":
        return check_count(n_classes, "n_classes")
    return 2 if likelihood == "student_t" else 1


class FamilyMLP(BayesianMLP):
    """Mean-field Gaussian MLP with a non-Gaussian likelihood head.

    Parameters
    ----------
    in_features : int
    hidden : sequence of int, default=(50,)
    likelihood : {'student_t', 'poisson', 'exponential', 'bernoulli', 'categorical'}
    n_classes : int, default=2
        Number of classes (``categorical`` only; at least 2).
    min_scale : float, default=1e-3
        Floor of the Student-t scale.
    init_df : float, default=10.0
        Initial degrees of freedom (``student_t``), > 2.
    prior, estimator, init_loc_std, init_rho, init_rho_bias, generator
        As for :class:`~varbayes.models.BayesianMLP`.
    """

    df_rho: nn.Parameter  # student_t only

    def __init__(
        self, in_features: int, hidden: Sequence[int] = (50,), *, likelihood: str = "student_t",
        n_classes: int = 2, min_scale: float = 1e-3, init_df: float = 10.0,
        prior: Prior | None = None, estimator: Estimator | str = Estimator.REPARAM,
        init_loc_std: float | None = None, init_rho: float = -5.0,
        init_rho_bias: float | None = None, generator: torch.Generator | None = None,
    ) -> None:
        name = get_likelihood(likelihood).name
        if name not in FAMILY_LIKELIHOODS:
            raise ValueError(f"FamilyMLP has no head for the {name!r} likelihood; expected one "
                             f"of {list(FAMILY_LIKELIHOODS)} (a Gaussian one is a BayesianMLP)")
        if name == "categorical" and int(n_classes) < 2:
            raise ValueError(f"a categorical head needs n_classes >= 2, got {n_classes}")
        super().__init__(in_features, hidden, head="fixed", noise_std=1.0, min_scale=min_scale,
                         prior=prior, estimator=estimator, init_loc_std=init_loc_std,
                         init_rho=init_rho, init_rho_bias=init_rho_bias, generator=generator)
        self.likelihood = name
        self.n_classes = int(n_classes) if name == "categorical" else (
            2 if name == "bernoulli" else 0)
        outputs = head_outputs(name, n_classes)
        if outputs != 1:
            last = self.layers[-1]
            cast(nn.ModuleList, self.layers)[-1] = BayesLinear(
                last.in_features, outputs, prior=prior, estimator=estimator,
                init_loc_std=init_loc_std, init_rho=init_rho, init_rho_bias=init_rho_bias,
                generator=generator)
        if name == "student_t":
            if not float(init_df) > 2.0:
                raise ValueError(f"init_df must be > 2, got {init_df}")
            self.df_rho = nn.Parameter(torch.tensor(inverse_softplus(float(init_df) - 2.0)))
            with torch.no_grad():  # start the scale near 1 (standardised targets)
                cast(nn.Parameter, self.layers[-1].bias_loc)[1] = inverse_softplus(1.0)

    def set_output_bias(self, values: Sequence[float]) -> None:
        """Set the posterior mean of the output biases (e.g. to the marginal log-rate)."""
        bias = cast(nn.Parameter, self.layers[-1].bias_loc)
        with torch.no_grad():
            bias.copy_(torch.as_tensor(list(values), dtype=bias.dtype))

    def _head(self, x: Tensor, h: Tensor, total_kl: Tensor | None) -> ModelOutput:
        """The likelihood's parameters from the raw outputs ``h`` of shape (S, n, out)."""
        name = self.likelihood
        if name == "student_t":
            loc = h[..., 0]
            scale = softplus_scale(h[..., 1], self.min_scale)
            df = (2.0 + F.softplus(self.df_rho)).to(loc.dtype).expand_as(loc)
            std = scale * (df / (df - 2.0)).sqrt()
            return ModelOutput(loc, std, total_kl, {"loc": loc, "scale": scale, "df": df})
        if name in ("poisson", "exponential"):
            log_rate = h[..., 0].clamp(-MAX_LOG_RATE, MAX_LOG_RATE)
            rate = log_rate.exp()
            if name == "poisson":
                return ModelOutput(rate, rate.sqrt(), total_kl, {"rate": rate})
            mean = (-log_rate).exp()
            return ModelOutput(mean, mean, total_kl, {"rate": rate})
        if name == "bernoulli":
            f = h[..., 0]
            p = torch.sigmoid(f)
            logits = torch.stack([torch.zeros_like(f), f], -1)
            return ModelOutput(p, (p * (1 - p)).sqrt(), total_kl, {"logits": logits})
        if name == "categorical":
            nan = torch.full(h.shape[:-1], math.nan, dtype=h.dtype, device=h.device)
            return ModelOutput(nan, nan, total_kl, {"logits": h})
        raise ValueError(f"FamilyMLP has no head for {name!r}")  # checked in __init__
