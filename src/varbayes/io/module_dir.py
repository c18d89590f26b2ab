"""Save and load any network (converted or built of :mod:`varbayes.nn` layers): never unpickled.

An arbitrary class cannot be rebuilt from JSON, so the user builds the instance and
:func:`load_module` fills it::

    varbayes.io.save(net, "model_dir")                   # any nn.Module
    net = varbayes.io.load("model_dir", module=MyNet())  # bayesianize(MyNet()) if converted

The directory holds ``model.safetensors`` (the module's ``state_dict``: parameters and buffers)
and ``config.json`` (``{"format": "varbayes-module", "format_version": 1, "module_class": ...,
"metadata": {...}}``), written atomically like a fitted model's (:mod:`varbayes._atomic`).
Loading checks everything before it copies a value: the JSON format and class name, then every
tensor name, shape and dtype against the safetensors header (a pickle or ``torch.save`` zip is
refused without being opened as one), then each value (finite floats) as it is read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from varbayes.io.checks import read_header, read_json, read_tensors_into
from varbayes.nn.heads import GaussianHead
from varbayes.nn.sampling import variational_layers

__all__ = ["MODULE_FORMAT", "is_variational", "load_module", "read_module_config", "save_module"]

MODULE_FORMAT = "varbayes-module"
"""Value of the ``format`` key of a saved module's ``config.json``."""
_VERSION = 1
_CONFIG, _WEIGHTS = "config.json", "model.safetensors"
_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
           torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32", torch.bool: "BOOL"}


def is_variational(module: object) -> bool:
    """Whether ``module`` is a network with variational layers or a varbayes head."""
    return isinstance(module, nn.Module) and (bool(variational_layers(module)) or any(
        isinstance(m, GaussianHead) for m in module.modules()))


def _class_name(module: nn.Module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def save_module(module: nn.Module, path: str | os.PathLike[str], *, force: bool = False,
                metadata: dict[str, Any] | None = None) -> Path:
    """Write ``module``'s state dict and a JSON description to the directory ``path``.

    Raises
    ------
    TypeError
        If ``module`` is not an ``nn.Module`` or ``metadata`` is not JSON-serialisable.
    ValueError
        If a floating tensor is not finite, or has a dtype safetensors cannot hold.
    FileExistsError
        As :func:`varbayes.io.save`.
    """
    from varbayes.io.model_dir import _write_dir, check_overwrite  # the one overwrite rule

    if not isinstance(module, nn.Module):
        raise TypeError(f"save expects an nn.Module or a FittedModel, got {type(module).__name__}")
    import varbayes

    doc = {"format": MODULE_FORMAT, "format_version": _VERSION,
           "varbayes_version": varbayes.__version__, "module_class": _class_name(module),
           "metadata": dict(metadata or {})}
    try:
        json.dumps(doc, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must be JSON-serialisable with finite numbers: {exc}") from None
    tensors = {}
    for key, value in module.state_dict().items():
        t = value.detach().to("cpu").contiguous().clone()
        if t.dtype not in _DTYPES:
            raise ValueError(f"tensor {key!r} has dtype {t.dtype}, which is not saved")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"refusing to save: tensor {key!r} holds NaN or inf values")
        tensors[key] = t
    path = Path(path)
    replace = check_overwrite(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _write_dir(path, tensors, doc, replace)


def read_module_config(path: Path) -> dict[str, Any]:
    """The validated ``config.json`` of a saved module, or ``ValueError`` naming the problem."""
    where = path / _CONFIG
    if not where.is_file():
        raise FileNotFoundError(f"{path} is not a varbayes model directory: {where} is missing")
    doc = read_json(where)
    if not isinstance(doc, dict) or doc.get("format") != MODULE_FORMAT:
        raise ValueError(f"{where}: 'format' is not {MODULE_FORMAT!r}; this directory does not "
                         "hold a saved module (a fitted model loads without module=)")
    if doc.get("format_version") != _VERSION:
        raise ValueError(f"{where}: unsupported format_version {doc.get('format_version')!r}")
    if not isinstance(doc.get("module_class"), str) or not isinstance(doc.get("metadata"), dict):
        raise ValueError(f"{where}: 'module_class' must be a string and 'metadata' an object")
    return doc


def load_module(path: str | os.PathLike[str], module: nn.Module, *,
                map_location: str | torch.device = "cpu") -> nn.Module:
    """Fill ``module`` (a fresh instance of the saved class) from the directory ``path``.

    Returns ``module`` in eval mode, on ``map_location``, with ``module.metadata`` set.

    Raises
    ------
    ValueError
        For a directory that is not a saved module, another class than the saved one, tensors
        that are missing, unexpected, of another shape or dtype (all listed, before a value is
        copied), a weights file that is a pickle, zip or corrupt, or non-finite values.
    """
    path = Path(path)
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module instance, got {type(module).__name__}")
    doc = read_module_config(path)
    where, file = path / _CONFIG, path / _WEIGHTS
    if doc["module_class"] != _class_name(module):
        raise ValueError(f"{where} was saved from {doc['module_class']}, not "
                         f"{_class_name(module)}; pass an instance of the saved class "
                         "(converted the same way)")
    header = read_header(file)
    target = module.state_dict()
    problems = []
    if missing := sorted(set(target) - set(header)):
        problems.append(f"missing tensors {missing}")
    if unexpected := sorted(set(header) - set(target)):
        problems.append(f"unexpected tensors {unexpected}")
    for key in sorted(set(target) & set(header)):
        dtype, shape = header[key]
        want = target[key]
        if shape != tuple(want.shape):
            problems.append(f"{key!r} has shape {shape}, the module's is {tuple(want.shape)}")
        elif dtype != _DTYPES.get(want.dtype) and not (
                want.is_floating_point() and dtype in ("F32", "F64")):
            problems.append(f"{key!r} has dtype {dtype}, the module's is {want.dtype}")
    if problems:
        raise ValueError(f"{file} does not match {type(module).__name__}: " + "; ".join(problems))
    read_tensors_into(target, file, where)
    module.eval()
    module.metadata = doc["metadata"]
    return module.to(map_location)
