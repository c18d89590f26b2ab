"""Model kinds: the registry, their configuration, and fitting one end to end.

A kind's record says what it builds and trains; :func:`fit` standardises, trains and returns a
model that predicts in data units.

>>> import numpy as np
>>> from varbayes.kinds import fit
>>> x = np.linspace(-1, 1, 40)[:, None]
>>> fitted, history = fit("hetero", x, np.sin(3 * x[:, 0]), epochs=5)
>>> fitted.predict(x[:3], num_samples=10).mean.shape
torch.Size([3])
"""

from __future__ import annotations

from varbayes.kinds.calibrated import calibrate
from varbayes.kinds.config import DEFAULTS, build_model, make_config
from varbayes.kinds.family import fit_family, is_family, predict_family
from varbayes.kinds.fitted import WORKING_DTYPE, FittedModel, fit
from varbayes.kinds.registry import KINDS, Kind, ModelKind, PriorName, get_kind, make_prior

__all__ = [
    "DEFAULTS",
    "KINDS",
    "WORKING_DTYPE",
    "FittedModel",
    "Kind",
    "ModelKind",
    "PriorName",
    "build_model",
    "calibrate",
    "fit",
    "fit_family",
    "get_kind",
    "is_family",
    "make_config",
    "make_prior",
    "predict_family",
]
