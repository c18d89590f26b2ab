"""``method='ivon'``: a Bayesian kind's network trained by the IVON optimiser.

``method='bbb'`` (the default) trains the ``bbb``, ``hetero`` and ``family`` kinds by Bayes by
Backprop. ``method='ivon'`` builds the same network (hidden sizes, head), evaluates it at its
weight means, a deterministic MLP, and trains it with :class:`varbayes.optim.IVON`
(:func:`varbayes.infer.ivon_train.train_ivon`); the predictive draws the weights from IVON's
posterior, kept in the model (:mod:`varbayes.optim.posterior`), so predict, intervals,
calibration, early stopping, save and load are those of the kind.

The configuration gets ``"method": "ivon"`` and the ``ivon_*`` options (:data:`IVON_OPTIONS`);
a configuration without ``method`` is Bayes by Backprop, as every model saved before. Options of
the kind keep their meaning: ``lr`` and ``epochs`` are IVON's (other defaults,
:data:`IVON_DEFAULTS`), ``prior_scale`` is the standard deviation of the Gaussian prior, i.e. the
weight decay :math:`\\delta = 1/(ess \\cdot prior\\_scale^2)`. ``kl='mc'`` and
``prior='scale_mixture'`` have no IVON counterpart and raise ``ValueError``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from torch import nn

from varbayes._checks_scalar import check_choice, check_scalar
from varbayes._names import METHOD_NAMES
from varbayes.kinds.registry import LEGACY_HETERO
from varbayes.optim.posterior import IVONPosterior, held_parameters

__all__ = [
    "IVON_DEFAULTS",
    "IVON_KINDS",
    "IVON_OPTIONS",
    "METHOD_NAMES",
    "attach_posterior",
    "is_ivon",
    "method_options",
]

#: The kinds with weight uncertainty, which ``method='ivon'`` can train.
IVON_KINDS = ("bbb", "hetero", "family")
#: IVON's own options and their defaults (chosen on split 0 of yacht and boston,
#: ``docs/benchmarks.md``).
IVON_OPTIONS: dict[str, Any] = {
    "ivon_hess_init": 1.0,  # the Hessian estimate before training, h0
    "ivon_beta2": 0.999,  # decay of the Hessian estimate
    "ivon_mc_samples": 1,  # weight draws per step
    "ivon_clip_radius": 0.03,  # elementwise bound of the preconditioned update
    "ivon_ess": None,  # effective sample size; None: the number of training rows
}

#: Options of the kinds whose default differs under IVON, by kind (``family`` keeps its 500
#: epochs: it is the classifier's kind, whose large data sets train in mini-batches).
IVON_DEFAULTS: dict[str, dict[str, Any]] = {
    "bbb": {"lr": 0.2, "epochs": 3000},
    # One network of 20 units without the noise warm-up: hetero's defaults when IVON was measured
    # (the ensemble and the warm-up of the Bayes-by-Backprop defaults are untested with IVON).
    "hetero": {"lr": 0.2, "epochs": 3000, **LEGACY_HETERO},
    "family": {"lr": 0.2},
}

_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "ivon_hess_init": lambda v, k: float(check_scalar(v, k, low=0.0, low_inclusive=False)),
    "ivon_beta2": lambda v, k: float(check_scalar(v, k, low=0.0, high=1.0,
                                                  high_inclusive=False)),
    "ivon_mc_samples": lambda v, k: int(check_scalar(v, k, kind=int, low=1)),
    "ivon_ess": lambda v, k: float(check_scalar(v, k, low=0.0, low_inclusive=False)),
    "ivon_clip_radius": lambda v, k: float(check_scalar(v, k, low=0.0, low_inclusive=False)),
}


def is_ivon(config: dict[str, Any]) -> bool:
    """Whether ``config`` describes a model trained with ``method='ivon'``."""
    return config.get("method") == "ivon"


def method_options(kind: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Take ``method`` and the ``ivon_*`` options out of ``overrides``; what they add to a config.

    ``method`` ``None`` or ``'bbb'`` adds nothing; ``'ivon'`` adds ``method``, the IVON
    defaults of :data:`IVON_DEFAULTS` (which ``overrides`` may still set) and every ``ivon_*``
    option, checked.

    Raises
    ------
    ValueError
        For an unknown method, ``method='ivon'`` with a kind without weight uncertainty or with
        ``kl='mc'`` / ``prior='scale_mixture'``, or ``ivon_*`` options without it.
    TypeError
        For an option of the wrong type.
    """
    method = overrides.pop("method", None)
    given = {k: overrides.pop(k) for k in list(overrides) if k in IVON_OPTIONS}
    method = "bbb" if method is None else check_choice(method, METHOD_NAMES, "method")
    if method == "bbb":
        if set_options := sorted(k for k, v in given.items() if v is not None):
            raise ValueError(f"option(s) {set_options} apply to method='ivon' only")
        return {}
    if kind not in IVON_KINDS:
        raise ValueError(f"method='ivon' trains a model with weight uncertainty (model "
                         f"{' / '.join(IVON_KINDS[:2])}, or a likelihood), not model={kind!r}")
    for key, allowed in (("kl", "analytic"), ("prior", "gaussian")):
        if overrides.get(key) not in (None, allowed):
            raise ValueError(f"{key}={overrides[key]!r} does not apply to method='ivon': IVON's "
                             f"prior is Gaussian (prior_scale) and it has no KL estimator")
    for key, trains in (("n_members", "one network"), ("warmup_fraction", "without the noise "
                                                                          "warm-up")):
        allowed = LEGACY_HETERO[key]  # trained by IVON throughout: no ensemble, no twin
        if overrides.get(key) not in (None, allowed):
            raise ValueError(f"{key}={overrides[key]!r}: method='ivon' trains {trains} "
                             f"({key}={allowed!r})")
    options = {**IVON_OPTIONS, **{k: _CHECKS[k](v, k) for k, v in given.items()
                                  if v is not None}}
    return {"method": "ivon", **copy.deepcopy(IVON_DEFAULTS[kind]), **options}


def attach_posterior(model: nn.Module, config: dict[str, Any]) -> nn.Module:
    """Give ``model`` its IVON posterior (``model.ivon``) when ``config`` says ``method='ivon'``."""
    if not is_ivon(config):
        return model
    shapes = {name: tuple(p.shape) for name, p in held_parameters(model)}
    model.add_module("ivon", IVONPosterior(
        shapes, hess_init=config["ivon_hess_init"], prior_scale=config["prior_scale"],
        ess=config["ivon_ess"], beta2=config["ivon_beta2"],
        mc_samples=config["ivon_mc_samples"], clip_radius=config["ivon_clip_radius"]))
    return model
