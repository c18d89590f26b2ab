"""The one map from an unconstrained parameter to a positive scale, and its inverse.

Every positive scale of varbayes (posterior standard deviations of the weights, learned and
predicted noise) is :math:`\\sigma = \\operatorname{softplus}(\rho) + \\sigma_{\\min}`, never
``log(1 + exp(rho))``, which overflows for ``rho > 88`` in float32 and underflows to 0 (then
``log 0``) for very negative ``rho``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["inverse_softplus", "inverse_softplus_scale", "softplus_scale"]


def softplus_scale(rho: Tensor, floor: float | Tensor) -> Tensor:
    """Map an unconstrained ``rho`` to a positive scale, ``softplus(rho) + floor``.

    Stable for any finite ``rho``: ``softplus`` is evaluated as ``rho`` above 20, and the floor
    keeps the result away from zero where ``softplus`` underflows. ``floor`` may be a 0-dim
    tensor of ``rho``'s dtype: the same values, without converting a Python float per call.
    """
    return F.softplus(rho) + floor


def inverse_softplus(value: float) -> float:
    """Return ``rho`` with ``softplus(rho) == value`` (``value > 0``), stable for large values."""
    return value + math.log(-math.expm1(-value))


def inverse_softplus_scale(scale: Tensor, floor: float) -> Tensor:
    """``rho`` with ``softplus_scale(rho, floor) == scale``, elementwise.

    A scale at or below ``floor`` maps to the ``rho`` whose scale is the floor itself (``softplus``
    of it underflows to 0), never to NaN.
    """
    s = (scale - floor).clamp_min(torch.finfo(scale.dtype).tiny)
    return s + torch.log(-torch.expm1(-s))
