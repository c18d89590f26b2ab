"""Saving and loading fitted models: safetensors + JSON, atomic, never unpickled.

:mod:`varbayes.io.model_dir` writes and reads a model directory; :mod:`varbayes.io.checks`
validates an untrusted one (sizes against the weights file's own header, before anything is
allocated; values, scalers, metadata and JSON depth).
"""

from __future__ import annotations

from varbayes.io import model_dir as _model_dir
from varbayes.io.model_dir import *  # noqa: F403 - the public names of model_dir, listed there

__all__ = list(_model_dir.__all__)
