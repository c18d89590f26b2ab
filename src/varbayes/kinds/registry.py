"""Model kinds as records: one :class:`Kind` per kind, in :data:`KINDS`.

A kind bundles what every front door needs to know about a model: how to build it from its
configuration, which objective trains it, its defaults, what to do after training, whether it
has an epistemic part, its title, and whether its noise network can be warmed up. The
estimator, the CLI, ``io``, the demo and the UCI runner look kinds up here instead of
branching on their names, so a new kind is one record.

========  ==================================================  =========================
kind      model and objective                                 defaults (the post's)
========  ==================================================  =========================
mle       MLP, squared error; residual std as its noise       1-20-1, Adam 0.01, 200 ep
vi        two MLPs for mu, log sigma^2; MC ELBO over y        1-20-10-1, Adam 0.005, 1500
vi_analytic  same; squared error + closed-form KL             1-20-10-1, Adam 0.005, 1500
bbb       Bayes by Backprop, fixed noise 0.1 (``noise=``)     1-20-20-1, Adam 0.01, 2000
hetero    Bayes by Backprop + heteroscedastic head            see ``KINDS['hetero']``
family    Bayes by Backprop + a non-Gaussian likelihood head  1-50-out, Adam 0.01, 500 ep
========  ==================================================  =========================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, cast

import torch
from torch import Tensor, nn

from varbayes._names import ModelKind, PriorName
from varbayes.infer import ELBO, AmortizedELBO, SquaredError
from varbayes.models import AmortizedVI, BayesianMLP, Ensemble, FamilyMLP, MLPRegressor
from varbayes.priors import GaussianPrior, Prior, ScaleMixturePrior

__all__ = [
    "FIXED_INIT_RHO",
    "KINDS",
    "LEGACY_HETERO",
    "Kind",
    "ModelKind",
    "PriorName",
    "auto_init_rho",
    "get_kind",
    "hetero_init_rho",
    "make_prior",
]


Config = Mapping[str, Any]


@dataclass(frozen=True)
class Kind:
    """Everything the front doors need to know about one model kind.

    Attributes
    ----------
    name : str
        The option value (``--model``, ``BayesianRegressor(model=...)``).
    title : str
        One line for figures and tables.
    defaults : Mapping
        Every option of the kind and its default (``None`` batch size: full batch).
    build : callable
        ``build(config, generator) -> nn.Module``, the untrained network.
    objective : callable
        ``objective(config, n_data)``, the training objective.
    has_epistemic : bool
        Whether the model has weight uncertainty.
    post_fit : callable or None
        ``post_fit(model, x, y)`` after training on standardised data (the MLE's residual std).
    noise_warmup : bool
        Whether the model has a point-estimate noise network that a schedule may hold
        homoscedastic for a warm-up (the UCI runner does, and :func:`varbayes.kinds.fit` for
        ``warmup_fraction`` of the epochs).
    absent : Mapping
        Options added after a model directory's format: the value a saved configuration
        *without* the key had (``io.load`` fills them in, not today's defaults).
    """

    name: str
    title: str
    defaults: Mapping[str, Any]
    build: Callable[[Config, torch.Generator | None], nn.Module]
    objective: Callable[[Config, int], Any]
    has_epistemic: bool
    post_fit: Callable[[nn.Module, Tensor, Tensor], None] | None = None
    noise_warmup: bool = False
    absent: Mapping[str, Any] = field(default_factory=dict)


#: ``init_rho`` of a model built from a configuration that leaves it ``None`` outside
#: :func:`varbayes.kinds.fit` (the UCI runner; the value every hetero model had before
#: :func:`auto_init_rho`).
FIXED_INIT_RHO = -5.0


def auto_init_rho(n_rows: int) -> float:
    """Initial posterior scale from the data size: ``min(0.3, 1.2 / sqrt(n))``, as a rho.

    A mean-field posterior's scales shrink like ``1 / sqrt(n)``; starting near that size means
    a short training run already has an honest epistemic spread (15 rows: 0.3, rho -1.05),
    while on large data the start is as before (20,000 rows: 0.0085, rho -4.8; measured in
    ``docs/calibration.md``).
    """
    scale = min(0.3, 1.2 / math.sqrt(max(1, n_rows)))
    return float(math.log(math.expm1(scale)))


#: ``hetero`` as one network of 20 units without the noise warm-up: its defaults before the
#: ensemble (issue 11). The demo and the speed, quantile and distributed benchmarks train it, so
#: that their figures (``docs/performance.md``) stay comparable.
LEGACY_HETERO: Mapping[str, Any] = MappingProxyType(
    {"hidden": [20], "n_members": 1, "warmup_fraction": 0.0})


def hetero_init_rho(n_rows: int, config: Config, min_rows: int) -> float:
    """Initial posterior scale of ``hetero``: the prior's below ``min_rows`` rows, else rho -5.

    With fewer than ``min_rows`` rows there is no validation part to stop on, and the user's
    ``epochs`` may be far too few for the posterior scales to grow from a small start: starting
    at the prior's scale, a short run errs on the wide side (15 rows, 50 epochs: covered away
    from the data, ``docs/calibration.md``). With a validation part, training starts at
    ``softplus(-5)``, as the UCI runner does: a broad start slows the fit of the mean (on UCI
    ``energy`` a start at ``1.2 / sqrt(n)`` gave a test RMSE of 1.7 against 0.5).
    """
    if n_rows >= min_rows:
        return FIXED_INIT_RHO
    if PriorName(config.get("prior", PriorName.GAUSSIAN.value)) is PriorName.SCALE_MIXTURE:
        pi, s1, s2 = config["prior_pi"], config["prior_scale"], config["prior_scale2"]
        std = math.sqrt(pi * s1**2 + (1 - pi) * s2**2)
    else:
        std = float(config["prior_scale"])
    return float(math.log(math.expm1(std)))


def make_prior(config: Config) -> Prior:
    """The weight prior that ``config`` names (``gaussian`` when it names none)."""
    name = PriorName(config.get("prior", PriorName.GAUSSIAN.value))
    if name is PriorName.GAUSSIAN:
        return GaussianPrior(0.0, config["prior_scale"])
    if name is PriorName.SCALE_MIXTURE:
        return ScaleMixturePrior(config.get("prior_pi", 0.5), config["prior_scale"],
                                 config.get("prior_scale2", math.exp(-6)))
    raise ValueError(f"unknown prior {name!r}")  # every PriorName member is handled above


def _bayes_common(config: Config, generator: torch.Generator | None) -> dict[str, Any]:
    return dict(prior=make_prior(config), estimator=config["estimator"],
                init_loc_std=config["init_loc_std"],
                init_rho=FIXED_INIT_RHO if config["init_rho"] is None else config["init_rho"],
                init_rho_bias=config["init_rho_bias"], generator=generator)


def _build_bbb(config: Config, generator: torch.Generator | None) -> nn.Module:
    head = "fixed" if config["noise"] == "fixed" else "learned"
    return BayesianMLP(config["in_features"], config["hidden"], head=head,
                       noise_std=config["noise_std"], **_bayes_common(config, generator))


def _build_hetero(config: Config, generator: torch.Generator | None) -> nn.Module:
    noise_hidden = config["noise_hidden"]
    members = [BayesianMLP(config["in_features"], config["hidden"], head="heteroscedastic",
                           min_scale=config["min_scale"],
                           noise_hidden=None if noise_hidden is None else list(noise_hidden),
                           **_bayes_common(config, generator))
               for _ in range(int(config.get("n_members", 1)))]
    return members[0] if len(members) == 1 else Ensemble(members)


def _elbo(config: Config, n_data: int) -> ELBO:
    return ELBO(n_data, kl=config["kl"], num_particles=config["num_particles"])


def _build_family(config: Config, generator: torch.Generator | None) -> nn.Module:
    members = [FamilyMLP(config["in_features"], config["hidden"],
                         likelihood=config["likelihood"], n_classes=config["n_classes"],
                         min_scale=config["min_scale"], **_bayes_common(config, generator))
               for _ in range(int(config.get("n_members", 1)))]
    return members[0] if len(members) == 1 else Ensemble(members)


def _family_elbo(config: Config, n_data: int) -> ELBO:
    return ELBO(n_data, kl=config["kl"], num_particles=config["num_particles"],
                likelihood=config["likelihood"])


def _residual_noise(model: nn.Module, x: Tensor, y: Tensor) -> None:
    """Set the MLE's noise to the residual standard deviation on the training data."""
    with torch.no_grad():
        residual = y - model(x).loc[0]
        cast(Tensor, model.noise_std).fill_(float(residual.pow(2).mean().sqrt().clamp_min(1e-6)))


def _amortized(name: str, title: str, *, kl: str, reconstruction: str) -> Kind:
    """A kind of the post's amortised VI (two MLPs for mu and log sigma^2)."""
    return Kind(
        name, title, {"hidden": [20, 10], "epochs": 1500, "lr": 0.005, "batch_size": None},
        build=lambda c, g: AmortizedVI(c["in_features"], c["hidden"], generator=g),
        objective=lambda c, n: AmortizedELBO(kl=kl, reconstruction=reconstruction),
        has_epistemic=False,
    )


_PRIOR_DEFAULTS = {"prior": "gaussian", "prior_scale": 1.0, "prior_pi": 0.5,
                   "prior_scale2": math.exp(-6)}

#: Every kind by name. Read-only; add a kind by adding a record.
KINDS: Mapping[str, Kind] = MappingProxyType({k.name: k for k in (
    Kind(
        "mle", "Maximum likelihood (point estimate, residual std as noise)",
        {"hidden": [20], "epochs": 200, "lr": 0.01, "batch_size": None},
        build=lambda c, g: MLPRegressor(c["in_features"], c["hidden"], generator=g),
        objective=lambda c, n: SquaredError(), has_epistemic=False, post_fit=_residual_noise,
    ),
    _amortized("vi", "Variational regression of the aleatoric noise (Monte-Carlo ELBO)",
               kl="mc", reconstruction="gaussian"),
    _amortized("vi_analytic", "Variational regression, closed-form KL + squared error",
               kl="analytic", reconstruction="squared_error"),
    Kind(
        "bbb", "Bayes by Backprop, fixed noise 0.1 (epistemic only)",
        {"hidden": [20, 20], "epochs": 2000, "lr": 0.01, "batch_size": None,
         "noise": "fixed", "noise_std": 0.1, "kl": "analytic", **_PRIOR_DEFAULTS,
         "estimator": "reparam", "num_particles": 1,
         # The post's initialisation: weight means N(0, 0.001), rho -2.5, bias rho 0.
         "init_loc_std": 0.001, "init_rho": -2.5, "init_rho_bias": 0.0},
        build=_build_bbb, objective=_elbo, has_epistemic=True,
    ),
    Kind(
        "hetero", "Bayes by Backprop + heteroscedastic head (both uncertainties)",
        {"hidden": [50], "noise_hidden": [20], "epochs": 1500, "lr": 0.01, "batch_size": None,
         "kl": "analytic", **_PRIOR_DEFAULTS, "estimator": "local", "num_particles": 1,
         # init_rho None: kinds.fit sets it from the number of rows (hetero_init_rho).
         "init_loc_std": None, "init_rho": None, "init_rho_bias": None, "min_scale": 1e-3,
         # An ensemble of 3 networks, the noise network held constant for 2/3 of the epochs
         # (docs/calibration.md measures both).
         "n_members": 3, "warmup_fraction": 2 / 3},
        build=_build_hetero, objective=_elbo, has_epistemic=True, noise_warmup=True,
        absent=MappingProxyType({"n_members": 1, "warmup_fraction": 0.0}),
    ),
    Kind(
        "family", "Bayes by Backprop with a non-Gaussian likelihood head",
        {"hidden": [50], "epochs": 500, "lr": 0.01, "batch_size": None,
         "likelihood": "student_t", "n_classes": 2, "kl": "analytic", **_PRIOR_DEFAULTS,
         "estimator": "local", "num_particles": 1, "init_loc_std": None, "init_rho": None,
         "init_rho_bias": None, "min_scale": 1e-3,
         # One network; n_members > 1: an ensemble, each member early-stopped on its own part.
         "n_members": 1,
         # map_epochs > 0: the means first trained as a point, then VI from scales map_scale
         # (kinds.warm_start; BayesianClassifier(map_epochs=...), docs/benchmarks.md).
         "map_epochs": 0, "map_scale": 0.03},
        build=_build_family, objective=_family_elbo, has_epistemic=True,
        absent=MappingProxyType({"n_members": 1, "map_epochs": 0, "map_scale": 0.03}),
    ),
)})


def get_kind(name: ModelKind | str) -> Kind:
    """The :class:`Kind` called ``name``; ``ValueError`` listing the kinds otherwise."""
    key = name.value if isinstance(name, ModelKind) else name
    if not isinstance(key, str) or key not in KINDS:
        raise ValueError(f"unknown model kind {name!r}; expected one of {list(KINDS)}")
    return KINDS[key]
