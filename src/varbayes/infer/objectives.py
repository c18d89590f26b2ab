"""Training objectives: the negative ELBO (and the MLE loss) as small callable objects.

An objective holds hyper-parameters only. Calling it on ``(model, x, y)`` returns
:class:`ELBOTerms` ``(loss, nll, kl)``: ``loss`` is differentiable and ready for
``loss.backward()``; ``nll`` and ``kl`` are diagnostics.

Scaling (the single place where it happens)
-------------------------------------------
For a data set of ``N`` points and a mini-batch ``B`` of size ``|B|``, :class:`ELBO` returns

.. math::
    \\text{loss} = \\frac{1}{N}\\Big(\\frac{N}{|B|} \\sum_{i \\in B} -\\log p(y_i | x_i, w)
                 + \\mathrm{KL}(q(w) \\| p(w))\\Big)
               = \\overline{\\mathrm{nll}}_B + \\frac{\\mathrm{KL}}{N},

an unbiased estimate of the negative full-data ELBO divided by ``N``. The KL is **summed** over
all weights and counted **once** per step. With ``M = N / |B|`` mini-batches per epoch this is
the post's (and Blundell et al.'s) ``KL / M`` re-weighting, up to the overall factor ``1/N`` that
keeps the learning rate independent of the data size. Under ``torch.distributed`` every rank
passes the *global* ``N`` and its own batch: DDP averages the ranks' gradients, so the likelihood
terms average to a batch of ``R |B|`` points and the (identical) KL gradient is counted once.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.distributions import Normal, kl_divergence

from varbayes._checks_scalar import check_count, check_nonnegative, check_positive
from varbayes.infer.generic import model_output
from varbayes.likelihoods import Likelihood, get_likelihood
from varbayes.likelihoods.gaussian import HALF_LOG_2PI, gaussian_log_prob

__all__ = [
    "ELBO",
    "AmortizedELBO",
    "ELBOTerms",
    "KL",
    "SquaredError",
]



class KL(str, Enum):
    """How the KL term is computed."""

    ANALYTIC = "analytic"
    """Closed form from the ``torch.distributions`` registry (lowest variance)."""
    MC = "mc"
    """Single-sample Monte-Carlo estimate ``log q(w) - log p(w)`` (the post's method)."""


class ELBOTerms(NamedTuple):
    """Result of an objective: the loss to minimise and its parts.

    Attributes
    ----------
    loss : Tensor (scalar)
        Differentiable loss: mean negative log-likelihood per point plus ``kl / n_data``.
    nll : Tensor (scalar)
        Mean negative log-likelihood per point of the batch (detached).
    kl : Tensor (scalar)
        Total KL, summed over weights (detached; 0 for models without one).
    """

    loss: Tensor
    nll: Tensor
    kl: Tensor


def _check_kl(kl: KL | str) -> KL:
    try:
        return KL(kl)
    except ValueError:
        raise ValueError(f"unknown kl {kl!r}; expected one of {[k.value for k in KL]}") from None


class ELBO:
    """Negative evidence lower bound for weight-space VI (Bayes by Backprop).

    ``model`` is a varbayes model or any network of variational layers ending in a likelihood
    head (:func:`varbayes.nn.bayesianize`, :class:`varbayes.nn.GaussianHead`); see
    :mod:`varbayes.infer.generic`.

    Parameters
    ----------
    n_data : int
        Number of training points ``N`` in the *whole* data set (all ranks together).
    kl : {'analytic', 'mc'}, default='analytic'
        Closed-form KL, or the post's Monte-Carlo ``log q(w) - log p(w)`` of the drawn weights.
    num_particles : int, default=1
        Weight draws per step; the likelihood is averaged over them.
    kl_weight : float, default=1.0
        Multiplier of the KL (1 is the ELBO; < 1 tempers the posterior).
    likelihood : str or Likelihood, default='gaussian'
        The data term :math:`-\\log p(y \\mid \\theta)` of the model's outputs
        (:mod:`varbayes.likelihoods`); the KL part does not depend on it.

    Examples
    --------
    >>> import torch
    >>> from varbayes.models import BayesianMLP
    >>> model = BayesianMLP(1, (8,), head="heteroscedastic")
    >>> terms = ELBO(n_data=100)(model, torch.randn(10, 1), torch.randn(10))
    >>> terms.loss.shape
    torch.Size([])
    """

    def __init__(
        self, n_data: int, *, kl: KL | str = KL.ANALYTIC, num_particles: int = 1,
        kl_weight: float = 1.0, likelihood: str | Likelihood = "gaussian",
    ) -> None:
        self.n_data = check_count(n_data, "n_data")
        self.likelihood = get_likelihood(likelihood)
        self.kl = _check_kl(kl)
        self.num_particles = check_count(num_particles, "num_particles")
        self.kl_weight = check_nonnegative(kl_weight, "kl_weight")

    def __call__(
        self, model: nn.Module, x: Tensor, y: Tensor, *, generator: torch.Generator | None = None
    ) -> ELBOTerms:
        """Evaluate the objective on a batch ``x`` of shape (B, d), ``y`` of shape (B,)."""
        out = model_output(model, x, self.num_particles, generator=generator, kl=self.kl.value)
        nll = -self.likelihood.log_prob(y, out.params).mean()  # mean over particles and batch
        kl = out.kl.mean() if out.kl is not None else nll.new_zeros(())
        loss = nll + self.kl_weight * kl / self.n_data
        return ELBOTerms(loss, nll.detach(), kl.detach())


class AmortizedELBO:
    """The post's objective for :class:`~varbayes.models.AmortizedVI`.

    The latent variable is ``y`` itself with prior :math:`P(y) = \\mathcal{N}(0, 1)` and
    variational distribution :math:`Q(y|x) = \\mathcal{N}(\\mu(x), \\sigma^2(x))`. Per point,
    with :math:`z = \\mu + \\sigma\\epsilon`:

    * ``kl='mc', reconstruction='gaussian'`` (the post's ``vi``):
      :math:`-[\\log \\mathcal{N}(y; \\mu, \\sigma^2) + \\log P(z) - \\log Q(z|x)]`
    * ``kl='analytic', reconstruction='squared_error'`` (the post's closed-form variant,
      ``vi_analytic``): :math:`\\tfrac12 (y - z)^2 + \\mathrm{KL}(Q(y|x) \\| P(y))`
    * ``kl='analytic', reconstruction='gaussian'``: the first with the KL in closed form.

    averaged over the batch. Known properties (see ``docs/differences.md``): with the Gaussian
    reconstruction the optimum is :math:`\\sigma^2 = \\sqrt{v}` for true noise variance
    :math:`v`, i.e. the predicted std is the *square root* of the true one, and
    :math:`\\mu = m / (1 + \\sigma^2)` is shrunk towards 0 by the prior; with the squared-error
    reconstruction the optimum is :math:`\\sigma^2 = 1/2` everywhere (no heteroscedasticity).

    Parameters
    ----------
    kl : {'mc', 'analytic'}, default='mc'
    reconstruction : {'gaussian', 'squared_error'}, default='gaussian'
    prior_scale : float, default=1.0
        Standard deviation of the prior :math:`P(y)`.
    """

    def __init__(
        self, *, kl: KL | str = KL.MC, reconstruction: str = "gaussian", prior_scale: float = 1.0
    ) -> None:
        self.kl = _check_kl(kl)
        if reconstruction not in ("gaussian", "squared_error"):
            raise ValueError(
                f"unknown reconstruction {reconstruction!r}; expected 'gaussian' or "
                "'squared_error'"
            )
        self.reconstruction = reconstruction
        self.prior_scale = check_positive(prior_scale, "prior_scale")

    def __call__(
        self, model: nn.Module, x: Tensor, y: Tensor, *, generator: torch.Generator | None = None
    ) -> ELBOTerms:
        """Evaluate the objective on a batch ``x`` of shape (B, d), ``y`` of shape (B,)."""
        out = model(x, 1, generator=generator)
        loc, scale = out.loc, out.scale
        eps = torch.randn(loc.shape, generator=generator, dtype=loc.dtype, device=loc.device)
        z = loc + scale * eps
        if self.reconstruction == "gaussian":
            nll = -gaussian_log_prob(y, loc, scale)
        else:
            nll = 0.5 * (y - z) ** 2
        prior_scale = torch.tensor(self.prior_scale, dtype=loc.dtype, device=loc.device)
        if self.kl is KL.ANALYTIC:
            q = Normal(loc, scale, validate_args=False)
            kl = kl_divergence(q, Normal(torch.zeros_like(prior_scale), prior_scale))
        else:
            log_q = -0.5 * eps * eps - scale.log() - HALF_LOG_2PI  # density of z through eps
            log_p = gaussian_log_prob(z, torch.zeros_like(prior_scale), prior_scale)
            kl = log_q - log_p
        loss = (nll + kl).mean()
        return ELBOTerms(loss, nll.mean().detach(), kl.sum().detach())


class SquaredError:
    """The maximum-likelihood loss of the post: ``mean(0.5 * (y - mu(x))^2)``.

    This is the Gaussian negative log-likelihood with unit variance up to a constant; the
    ``nll`` diagnostic reports that quantity.
    """

    def __call__(
        self, model: nn.Module, x: Tensor, y: Tensor, *, generator: torch.Generator | None = None
    ) -> ELBOTerms:
        """Evaluate the loss on a batch ``x`` of shape (B, d), ``y`` of shape (B,)."""
        loc = model(x, 1, generator=generator).loc
        loss = (0.5 * (y - loc) ** 2).mean()
        return ELBOTerms(loss, (loss + HALF_LOG_2PI).detach(), loss.new_zeros(()))
