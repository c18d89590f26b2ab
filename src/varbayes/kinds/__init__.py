"""Model kinds: the registry of what each kind builds, trains and reports."""

from __future__ import annotations

from varbayes.kinds.registry import KINDS, Kind, ModelKind, PriorName, get_kind, make_prior

__all__ = [
    "KINDS",
    "Kind",
    "ModelKind",
    "PriorName",
    "get_kind",
    "make_prior",
]
