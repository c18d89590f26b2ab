r"""Feature / target standardisation kept with the model.

:class:`Standardizer` is a :class:`torch.nn.Module` whose only state is two buffers, ``mean``
and ``std``, so it travels inside ``state_dict()`` (and therefore inside a safetensors file)
together with the network that uses it, and predictions can be mapped back to data units.

.. math::

    z = (x - \mu) / s, \qquad x = z s + \mu, \qquad
    \operatorname{sd}(x) = s \operatorname{sd}(z), \qquad
    \operatorname{Var}(x) = s^2 \operatorname{Var}(z).

Examples
--------
>>> import torch
>>> st = Standardizer(2).fit(torch.tensor([[0.0, 5.0], [2.0, 5.0]]))
>>> st.transform(torch.tensor([[2.0, 5.0]]))
tensor([[1., 0.]])
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from torch import Tensor

from varbayes._validation import check_scalar, is_validation_enabled, to_tensor

__all__ = ["PrecisionWarning", "Standardizer"]

#: A column whose std is below this fraction of its mean's magnitude is treated as constant:
#: its variation is at the level of float64 rounding, not data.
_RELATIVE_FLOOR = 1e-12


class PrecisionWarning(UserWarning):
    """A column's variation is (partly) below the resolution of the dtype the model works in."""


def _distinct(col: Tensor) -> int:
    return int(torch.unique(col).numel())


class Standardizer(torch.nn.Module):
    """Per-feature affine standardisation with a guard against zero scale.

    Parameters
    ----------
    num_features : int
        Number of features ``d`` (use 1 for a scalar regression target).

    Attributes
    ----------
    mean : torch.Tensor of shape (num_features,)
        float64 buffer, 0 until :meth:`fit` is called.
    std : torch.Tensor of shape (num_features,)
        float64 buffer, 1 until :meth:`fit` is called; never 0.

    Notes
    -----
    Every method broadcasts over leading dimensions: inputs of shape (..., d) are accepted, so
    a stack of ``S`` posterior samples of shape (S, n, d) works too. When
    ``num_features == 1`` any shape is accepted (the single mean and std broadcast), which
    makes 1-D tensors of shape (n,) — for example a target vector — natural inputs. When
    ``num_features > 1`` the last dimension must equal ``num_features``.

    The statistics are float64 and every map computes in float64 before it casts to its
    input's dtype: a column such as ``1e9 + k`` (integers ``k``) or ``1e-13 * x`` keeps its
    variation when the *standardised* values are cast to the float32 of the networks, which
    it would lose if the raw values were cast first.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = check_scalar(num_features, "num_features", kind=int, low=1)
        self.register_buffer("mean", torch.zeros(self.num_features, dtype=torch.float64))
        self.register_buffer("std", torch.ones(self.num_features, dtype=torch.float64))

    def extra_repr(self) -> str:
        """Return the constructor argument for ``repr``."""
        return f"num_features={self.num_features}"

    def _check_shape(self, x: Tensor, name: str) -> None:
        if self.num_features == 1:
            return
        if x.ndim == 0 or x.shape[-1] != self.num_features:
            raise ValueError(
                f"{name} must have shape (..., {self.num_features}) to match num_features="
                f"{self.num_features}, got shape {tuple(x.shape)}"
            )

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor, torch.dtype]:
        """float64 mean and std on ``x``'s device, and the dtype of the result."""
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        wide = torch.promote_types(dtype, torch.float64)
        return self.mean.to(x.device, wide), self.std.to(x.device, wide), dtype

    def fit(
        self, x: Tensor | np.ndarray, *, dtype: torch.dtype = torch.float32,
        names: Sequence[str] | None = None,
    ) -> Standardizer:
        """Set ``mean`` and the population standard deviation (ddof=0) from data, in float64.

        A standard deviation that is 0, non-finite or below ``1e-12 * |mean|`` (variation at
        the level of float64 rounding) is replaced by 1.0, so a constant column maps to 0 and
        never divides by zero.

        Parameters
        ----------
        x : torch.Tensor or ndarray of shape (n, num_features)
            Training data, ``n >= 1``. A 1-D tensor of shape (n,) is accepted when
            ``num_features == 1``. Pass float64 data: statistics of values already rounded to
            float32 cannot recover what the rounding lost.
        dtype : torch.dtype, default=torch.float32
            The working dtype the standardised values will be cast to, for the warning below.
        names : sequence of str or None
            Column names for the warning (default: ``column j``).

        Returns
        -------
        Standardizer
            ``self``, fitted in place.

        Raises
        ------
        ValueError
            If the shape does not match, ``n == 0``, the data holds NaN / inf, or the
            statistics do not fit in float32.

        Warns
        -----
        PrecisionWarning
            Naming the column, when a column that varies is treated as constant (its variation
            is below 1e-12 of its magnitude), or when its standardised values cast to ``dtype``
            keep fewer than half of its distinct values (e.g. one huge outlier squeezes the
            other rows together below ``dtype``'s resolution, even after centring).
        """
        t = to_tensor(x).to("cpu", torch.float64)
        if t.ndim == 1 and self.num_features == 1:
            t = t.reshape(-1, 1)
        if t.ndim != 2 or t.shape[1] != self.num_features:
            raise ValueError(
                f"Standardizer.fit expects x of shape (n, {self.num_features}), got shape "
                f"{tuple(t.shape)}"
            )
        if t.shape[0] == 0:
            raise ValueError("Standardizer.fit got x with 0 rows; at least one row is required")
        if not torch.isfinite(t).all():
            bad = torch.nonzero(~torch.isfinite(t))[0].tolist()
            raise ValueError(
                f"Standardizer.fit got non-finite data, first at row {bad[0]}, column {bad[1]}"
            )
        mean = t.mean(dim=0)
        dev = t - mean
        peak = dev.abs().amax(dim=0).clamp_min(torch.finfo(torch.float64).tiny)
        std = peak * ((dev / peak) ** 2).mean(dim=0).sqrt()  # scaled: no overflow of dev**2
        degenerate = ~torch.isfinite(std) | (std == 0) | (std < _RELATIVE_FLOOR * mean.abs())
        std = torch.where(degenerate, torch.ones_like(std), std)
        if not (torch.isfinite(mean.float()).all() and torch.isfinite(std.float()).all()):
            raise ValueError(
                "Standardizer.fit: the mean or std of x exceeds the float32 range; rescale the data"
            )
        self._warn_resolution(t, (t - mean) / std, degenerate, dtype, names)
        with torch.no_grad():
            self.mean.copy_(mean)
            self.std.copy_(std)
        return self

    def _warn_resolution(
        self, t: Tensor, z: Tensor, degenerate: Tensor, dtype: torch.dtype,
        names: Sequence[str] | None,
    ) -> None:
        """Warn for each column whose variation the working ``dtype`` cannot hold."""
        varies = (t != t[:1]).any(dim=0)
        for j in torch.nonzero(varies).flatten().tolist():
            named = names is not None and j < len(names)
            label = f"column {j}" + (f" ({cast('Sequence[str]', names)[j]!r})" if named else "")
            if bool(degenerate[j]):
                warnings.warn(
                    f"{label} varies by less than {_RELATIVE_FLOOR:g} of its magnitude "
                    f"(mean {float(t[:, j].mean()):.17g}); treated as constant",
                    PrecisionWarning, stacklevel=3,
                )
                continue
            kept, had = _distinct(z[:, j].to(dtype)), _distinct(t[:, j])
            if 2 * kept < had:
                warnings.warn(
                    f"{label}: after standardising, only {kept} of its {had} distinct values "
                    f"remain distinct in {str(dtype).replace('torch.', '')} (its variation is "
                    "below that dtype's resolution relative to its spread, e.g. an outlier); "
                    "rescale or clip the column",
                    PrecisionWarning, stacklevel=3,
                )

    def transform(self, x: Tensor) -> Tensor:
        """Standardise: ``(x - mean) / std``.

        Parameters
        ----------
        x : torch.Tensor of shape (..., num_features)
            Data in original units (any shape if ``num_features == 1``).

        Returns
        -------
        torch.Tensor of the same shape
            Standardised data, computed in float64 and returned in ``x``'s floating dtype (the
            default dtype for integer x).
        """
        self._check_shape(x, "x")
        mean, std, dtype = self._params(x)
        z = ((x.to(mean.dtype) - mean) / std).to(dtype)
        if is_validation_enabled() and not torch.isfinite(z).all():
            raise ValueError("Standardizer.transform produced non-finite values; check x")
        return z

    def forward(self, x: Tensor) -> Tensor:
        """Alias of :meth:`transform`, so the module can sit in a ``Sequential``."""
        return self.transform(x)

    def inverse_transform(self, z: Tensor) -> Tensor:
        """Map standardised values back to data units: ``z * std + mean``.

        Parameters
        ----------
        z : torch.Tensor of shape (..., num_features)
            Standardised values (any shape if ``num_features == 1``).

        Returns
        -------
        torch.Tensor of the same shape
        """
        self._check_shape(z, "z")
        mean, std, dtype = self._params(z)
        return (z.to(mean.dtype) * std + mean).to(dtype)

    def inverse_scale(self, s: Tensor) -> Tensor:
        """Map standard deviations back to data units: ``s * std``.

        Parameters
        ----------
        s : torch.Tensor of shape (..., num_features)
            Standard deviations in standardised units (any shape if ``num_features == 1``).

        Returns
        -------
        torch.Tensor of the same shape
        """
        return self._rescale(s, "s", squared=False)

    def inverse_var(self, v: Tensor) -> Tensor:
        """Map variances back to data units: ``v * std**2`` (shapes as :meth:`inverse_scale`)."""
        return self._rescale(v, "v", squared=True)

    def _rescale(self, t: Tensor, name: str, *, squared: bool) -> Tensor:
        self._check_shape(t, name)
        _, std, dtype = self._params(t)
        return (t.to(std.dtype) * (std**2 if squared else std)).to(dtype)
