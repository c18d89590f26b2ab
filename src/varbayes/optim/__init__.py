"""Variational optimisers: a posterior over the parameters of an unmodified network.

:class:`IVON` (Shen et al. 2024) trains any network at about Adam's cost and keeps a mean-field
Gaussian posterior over its parameters; :func:`varbayes.predictive` draws from it
(``predictive(net, x, S, posterior=opt)``).
"""

from __future__ import annotations

from varbayes.optim.ivon import IVON

__all__ = ["IVON"]
