"""The option names that the command line needs before anything heavy is imported."""

from __future__ import annotations

from enum import Enum

__all__ = ["DEVICE_NAMES", "LIKELIHOOD_NAMES", "METHOD_NAMES", "ModelKind", "PriorName"]

#: The likelihoods the front doors offer (``--likelihood``); all but ``gaussian`` train the
#: ``family`` kind.
LIKELIHOOD_NAMES = ("gaussian", "student_t", "poisson", "exponential", "bernoulli",
                    "categorical")

#: Values of the ``device`` option (``--device`` on the command line).
DEVICE_NAMES = ("auto", "cpu", "cuda")

#: Training methods of the Bayesian kinds (``method=``, ``--method``): Bayes by Backprop, or the
#: kind's network at its means trained by the IVON optimiser (:mod:`varbayes.kinds.ivon`).
METHOD_NAMES = ("bbb", "ivon")


class ModelKind(str, Enum):
    """The model kinds of varbayes (the keys of :data:`varbayes.kinds.KINDS`)."""

    MLE = "mle"
    """Maximum-likelihood MLP (point estimate), residual variance as its noise."""
    VI = "vi"
    """The post's amortised variational regression of the aleatoric noise (MC ELBO)."""
    VI_ANALYTIC = "vi_analytic"
    """The post's closed-form-KL variant (squared error + analytic KL)."""
    BBB = "bbb"
    """Bayes by Backprop with a fixed (the post's 0.1) or learned homoscedastic noise."""
    HETERO = "hetero"
    """Bayes by Backprop with a heteroscedastic head: both uncertainties in one model."""
    FAMILY = "family"
    """Bayes by Backprop with a non-Gaussian likelihood head (Student-t, Poisson, exponential,
    Bernoulli, categorical): option ``likelihood``; see :mod:`varbayes.kinds.family`."""


class PriorName(str, Enum):
    """Weight prior of the Bayesian kinds (option ``prior``)."""

    GAUSSIAN = "gaussian"
    """:math:`\\mathcal{N}(0, prior\\_scale^2)`, closed-form KL."""
    SCALE_MIXTURE = "scale_mixture"
    """Blundell et al.'s mixture :math:`\\pi \\mathcal{N}(0, prior\\_scale^2) + (1-\\pi)
    \\mathcal{N}(0, prior\\_scale2^2)`; Monte-Carlo KL, so ``kl='mc'`` and
    ``estimator='reparam'``."""
