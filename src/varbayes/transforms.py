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

import numpy as np
import torch
from torch import Tensor

from varbayes._validation import check_scalar, is_validation_enabled

__all__ = ["Standardizer"]


class Standardizer(torch.nn.Module):
    """Per-feature affine standardisation with a guard against zero scale.

    Parameters
    ----------
    num_features : int
        Number of features ``d`` (use 1 for a scalar regression target).

    Attributes
    ----------
    mean : torch.Tensor of shape (num_features,)
        float32 buffer, 0 until :meth:`fit` is called.
    std : torch.Tensor of shape (num_features,)
        float32 buffer, 1 until :meth:`fit` is called; never 0.

    Notes
    -----
    Every method broadcasts over leading dimensions: inputs of shape (..., d) are accepted, so
    a stack of ``S`` posterior samples of shape (S, n, d) works too. When
    ``num_features == 1`` any shape is accepted (the single mean and std broadcast), which
    makes 1-D tensors of shape (n,) — for example a target vector — natural inputs. When
    ``num_features > 1`` the last dimension must equal ``num_features``.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = check_scalar(num_features, "num_features", kind=int, low=1)
        self.register_buffer("mean", torch.zeros(self.num_features, dtype=torch.float32))
        self.register_buffer("std", torch.ones(self.num_features, dtype=torch.float32))

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

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        return self.mean.to(x.device, dtype), self.std.to(x.device, dtype)

    def fit(self, x: Tensor | np.ndarray) -> Standardizer:
        """Set ``mean`` and the population standard deviation (ddof=0) from data.

        Statistics are computed in float64 and then stored in the float32 buffers. A
        standard deviation that is 0, non-finite or below ``1e-12 * (1 + |mean|)`` is
        replaced by 1.0, so a constant column maps to 0 and never divides by zero.

        Parameters
        ----------
        x : torch.Tensor or ndarray of shape (n, num_features)
            Training data, ``n >= 1``. A 1-D tensor of shape (n,) is accepted when
            ``num_features == 1``.

        Returns
        -------
        Standardizer
            ``self``, fitted in place.

        Raises
        ------
        ValueError
            If the shape does not match, ``n == 0``, the data holds NaN / inf, or the
            statistics do not fit in float32.
        """
        t = torch.as_tensor(x).detach().to("cpu", torch.float64)
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
        degenerate = ~torch.isfinite(std) | (std == 0) | (std < 1e-12 * (1.0 + mean.abs()))
        std = torch.where(degenerate, torch.ones_like(std), std)
        mean32, std32 = mean.to(torch.float32), std.to(torch.float32)
        if not (torch.isfinite(mean32).all() and torch.isfinite(std32).all()):
            raise ValueError(
                "Standardizer.fit: the mean or std of x exceeds the float32 range; rescale the data"
            )
        std32 = torch.where(std32 > 0, std32, torch.ones_like(std32))  # float32 underflow guard
        with torch.no_grad():
            self.mean.copy_(mean32)
            self.std.copy_(std32)
        return self

    def transform(self, x: Tensor) -> Tensor:
        """Standardise: ``(x - mean) / std``.

        Parameters
        ----------
        x : torch.Tensor of shape (..., num_features)
            Data in original units (any shape if ``num_features == 1``).

        Returns
        -------
        torch.Tensor of the same shape
            Standardised data, in ``x``'s floating dtype (the default dtype for integer x).
        """
        self._check_shape(x, "x")
        mean, std = self._params(x)
        z = (x - mean) / std
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
        mean, std = self._params(z)
        return z * std + mean

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
        self._check_shape(s, "s")
        return s * self._params(s)[1]

    def inverse_var(self, v: Tensor) -> Tensor:
        """Map variances back to data units: ``v * std**2``.

        Parameters
        ----------
        v : torch.Tensor of shape (..., num_features)
            Variances in standardised units (any shape if ``num_features == 1``).

        Returns
        -------
        torch.Tensor of the same shape
        """
        self._check_shape(v, "v")
        return v * self._params(v)[1] ** 2
