"""Saving and loading fitted models: safetensors + JSON, atomic, never unpickled.

:mod:`varbayes.io.model_dir` writes and reads a model directory; :mod:`varbayes.io.checks`
validates an untrusted one (sizes against the weights file's own header, before anything is
allocated; values, scalers, metadata and JSON depth).
"""

from __future__ import annotations

from varbayes.io.model_dir import (
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    check_overwrite,
    is_model_dir,
    load,
    read_config,
    save,
)

__all__ = [
    "CONFIG_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "WEIGHTS_FILE",
    "check_overwrite",
    "is_model_dir",
    "load",
    "read_config",
    "save",
]
