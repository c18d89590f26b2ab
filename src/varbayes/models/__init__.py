"""The regression networks: the post's three models and the combined ``hetero`` model.

Every model maps standardised inputs ``x`` of shape ``(n, d)`` to a Gaussian predictive
*component* per sample index, through one call signature::

    out = model(x, num_samples=S, generator=g, sample=True, kl=None)
    out.loc, out.scale   # shape (S, n) or (1, n) where the model has no weight uncertainty
    out.kl               # KL(q || prior) of the weights, or None

so that the predictive of ``y`` is the mixture
:math:`\\frac1S \\sum_s \\mathcal{N}(loc_s, scale_s^2)`.

* :class:`MLPRegressor` -- the maximum-likelihood baseline (point estimate). Its ``scale`` is a
  buffer holding the residual standard deviation measured after training, so its NLL can be
  compared with the probabilistic models.
* :class:`AmortizedVI` -- the post's "variational regression": two MLPs map ``x`` to
  :math:`\\mu(x)` and :math:`\\log\\sigma^2(x)` of :math:`Q(y|x)`.
* :class:`BayesianMLP` -- Bayes by Backprop with :class:`~varbayes.nn.layers.BayesLinear` layers and
  an output :class:`Head`: fixed noise (the post's 0.1), learned homoscedastic noise, or a
  heteroscedastic head that predicts :math:`\\sigma(x)` as well (both uncertainties in one model).
* :class:`Ensemble` -- ``M`` of these networks; the predictive is the mixture of theirs.
* :class:`FamilyMLP` -- the same network with the head of another likelihood (Student-t,
  Poisson, exponential, Bernoulli, categorical), its parameters in ``ModelOutput.family``.
"""

from __future__ import annotations

from varbayes.models.amortized import AmortizedVI
from varbayes.models.base import Head, Model, ModelOutput
from varbayes.models.bayesian import BayesianMLP
from varbayes.models.ensemble import Ensemble
from varbayes.models.family import FamilyMLP
from varbayes.models.mle import MLPRegressor

__all__ = [
    "AmortizedVI",
    "BayesianMLP",
    "Ensemble",
    "FamilyMLP",
    "Head",
    "MLPRegressor",
    "Model",
    "ModelOutput",
]
