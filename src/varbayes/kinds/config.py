"""A kind's configuration: its defaults, every option checked, and the model it builds.

A configuration is a JSON-ready dict (``kind``, ``in_features`` and every option of the kind),
so that a saved model is rebuilt from its ``config.json`` alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from varbayes._names import LIKELIHOOD_NAMES
from varbayes._validation import check_choice, check_enum, check_scalar, check_sizes
from varbayes.infer import KL
from varbayes.kinds.ivon import attach_posterior, method_options
from varbayes.kinds.registry import KINDS, ModelKind, PriorName, get_kind
from varbayes.nn.layers import Estimator

__all__ = [
    "DEFAULTS",
    "build_model",
    "make_config",
]


#: Default configuration of each kind (a copy of the registry's, by kind name).
DEFAULTS: dict[str, dict[str, Any]] = {name: dict(kind.defaults) for name, kind in KINDS.items()}


def _positive(value: Any, name: str) -> float:
    return float(check_scalar(value, name, low=0.0, low_inclusive=False))


def _count(value: Any, name: str) -> int:
    return int(check_scalar(value, name, kind=int, low=1))


#: ``check(value, name) -> value`` of every option of :data:`DEFAULTS`.
_OPTION_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "hidden": check_sizes, "noise_hidden": check_sizes, "epochs": _count, "batch_size": _count,
    "num_particles": _count, "lr": _positive, "prior_scale": _positive, "noise_std": _positive,
    "min_scale": _positive,
    "init_loc_std": lambda v, name: float(check_scalar(v, name, low=0.0)),
    "init_rho": lambda v, name: float(check_scalar(v, name)),
    "init_rho_bias": lambda v, name: float(check_scalar(v, name)),
    "noise": lambda v, name: check_choice(v, ("fixed", "learned"), name),
    "kl": lambda v, name: check_enum(v, KL, name).value,
    "estimator": lambda v, name: check_enum(v, Estimator, name).value,
    "prior": lambda v, name: check_enum(v, PriorName, name).value,
    "prior_scale2": _positive,
    "n_members": _count,
    "map_epochs": lambda v, name: int(check_scalar(v, name, kind=int, low=0)),
    "map_scale": _positive,
    "warmup_fraction": lambda v, name: float(check_scalar(v, name, low=0.0, high=1.0,
                                                         high_inclusive=False)),
    "likelihood": lambda v, name: check_choice(v, LIKELIHOOD_NAMES[1:], name),
    "n_classes": lambda v, name: int(check_scalar(v, name, kind=int, low=2)),
    "prior_pi": lambda v, name: float(check_scalar(v, name, low=0.0, high=1.0,
                                                   low_inclusive=False, high_inclusive=False)),
}  # fmt: skip


def make_config(kind: ModelKind | str, in_features: int, **overrides: Any) -> dict[str, Any]:
    """Full configuration of ``kind`` for ``in_features`` inputs, with ``overrides`` applied.

    ``None`` values in ``overrides`` mean "use the default". Every option is type-checked
    and range-checked (see ``_OPTION_CHECKS``), and the error names the option.

    Raises
    ------
    TypeError
        For an option of the wrong type (e.g. ``lr="x"``, ``hidden="12"``, ``epochs=2.5``).
    ValueError
        For an unknown kind, an unknown option name, or a value out of range or not among
        the allowed strings (the message lists them).
    """
    kind = check_enum(kind, ModelKind, "model kind")
    config = copy.deepcopy(DEFAULTS[kind.value])
    overrides = dict(overrides)
    config.update(method_options(kind.value, overrides))  # method='ivon': its options
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for model {kind.value!r}; valid: {sorted(config)}"
        )
    for key, value in overrides.items():
        if value is not None:
            config[key] = _OPTION_CHECKS[key](value, key)
    if config.get("prior") == PriorName.SCALE_MIXTURE.value:
        _monte_carlo_kl(config, overrides)
    in_features = check_scalar(in_features, "in_features", kind=int, low=1)
    return {"kind": kind.value, "in_features": in_features, **config}


def _monte_carlo_kl(config: dict[str, Any], overrides: dict[str, Any]) -> None:
    """The scale-mixture prior has no closed-form KL: use the MC KL and sampled weights.

    Options left at their defaults follow; options set otherwise raise ``ValueError``.
    """
    for key, value in (("kl", KL.MC.value), ("estimator", Estimator.REPARAM.value)):
        if overrides.get(key) not in (None, value):
            raise ValueError(
                f"prior='scale_mixture' has no closed-form KL, so it needs kl='mc' and "
                f"estimator='reparam'; got {key}={overrides[key]!r}"
            )
        config[key] = value


def build_model(config: dict[str, Any], generator: torch.Generator | None = None) -> nn.Module:
    """Instantiate the (untrained) model that ``config`` describes."""
    return attach_posterior(get_kind(config["kind"]).build(config, generator), config)
