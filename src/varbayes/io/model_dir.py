"""Save and load fitted models: safetensors weights + a JSON config; nothing is ever unpickled.

A saved model is a directory with exactly two files::

    MODEL_DIR/
      model.safetensors   every tensor of FittedModel.state_dict(), standardisers included
      config.json         {"format": "varbayes-model", "format_version": 1,
                           "varbayes_version": "...", "config": {...recipes.make_config...},
                           "feature_names": [...] | null, "target_name": "..." | null,
                           "metadata": {...}, "spread_factor": s, "calibration": {...},
                           "classes": [...], "temperature": t}

``classes`` (optional) lists a classifier's labels in class-index order; the likelihood is the
config's ``likelihood`` (``family`` kind). ``calibration`` (optional, format 1 without it still
loads) is the calibration map of
:mod:`varbayes.calibration` (``{"method": "scale", "factor": ...}``, the isotonic knots or the
sorted conformal scores): a few numbers to a few thousand, kept in the JSON so the weights file
stays the model's ``state_dict``. ``metadata.fit`` records early stopping (chosen epochs, the
validation curve); ``spread_factor`` and ``temperature`` (optional, default 1) the factor on the
predictive spread and a classifier's temperature that early stopping fitted on its validation part.

Writing is atomic: both files go into a hidden temporary sibling directory
(``.MODEL_DIR.PID.HEX.tmpdir``), are fsynced, and the directory is renamed into place, so
``MODEL_DIR`` never holds a half-written model (see :mod:`varbayes._atomic`: files get the modes
the umask allows, temporary directories are removed on errors and signals, and those of dead
processes at the next save to the same path). Overwriting an
existing model needs ``force=True``; the old model is swapped out (atomically where the OS
supports it, otherwise renamed aside first) and deleted only once the new one is in place.

Loading validates everything before anything is built: the JSON format, version and config
types (the config is rebuilt through :func:`varbayes.kinds.make_config`), then every size of
the config against the tensor shapes and dtypes in the weights file's safetensors header (a
pickle or ``torch.save`` zip is refused without being opened as one), with the model built on
the ``meta`` device, which allocates nothing. Only then is the model built and filled one tensor
at a time, each checked finite (standard deviations: > 0): a load allocates at most twice what
the weights file holds (see :mod:`varbayes.io.checks`).

Examples
--------
>>> import numpy as np, tempfile, torch
>>> from varbayes.kinds import fit
>>> x = np.linspace(-1, 1, 20)[:, None]; y = 2 * x[:, 0]
>>> fitted, _ = fit("mle", x, y, epochs=2, generator=torch.Generator().manual_seed(0))
>>> with tempfile.TemporaryDirectory() as tmp:
...     load(save(fitted, tmp + "/model")).config == fitted.config
True
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from varbayes import _atomic
from varbayes.calibration import map_from_json
from varbayes.data.transforms import Standardizer
from varbayes.io.checks import (
    check_header,
    check_num_samples,
    meta_state_shapes,
    read_header,
    read_tensors_into,
)
from varbayes.io.checks import read_json as _read_json
from varbayes.io.module_dir import MODULE_FORMAT, is_variational, load_module, save_module
from varbayes.kinds import DEFAULTS, FittedModel, ModelKind, build_model, get_kind, make_config
from varbayes.kinds.ivon import is_ivon
from varbayes.optim.posterior import check_posterior

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

FORMAT = "varbayes-model"
"""Value of the ``format`` key of ``config.json``."""
FORMAT_VERSION = 1
"""The saved-model format version this varbayes writes and reads."""
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
_MODEL_FILES = frozenset({CONFIG_FILE, WEIGHTS_FILE})


# --------------------------------------------------------------------------- helpers


_fsync_path = _atomic.fsync_path


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux ``renameat2(RENAME_EXCHANGE)``; False if unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    return bool(renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0)


def is_model_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory holding a varbayes ``config.json``.

    Only the ``format`` key is looked at; use :func:`read_config` to validate the rest.
    """
    config = Path(path) / CONFIG_FILE
    if not config.is_file():
        return False
    try:
        doc = _read_json(config)
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") in (FORMAT, MODULE_FORMAT)


def check_overwrite(path: Path, force: bool) -> bool:
    """Decide what to do with an existing ``path``; True if an old model is to be replaced."""
    if not os.path.lexists(path):
        return False
    if path.is_symlink():
        raise FileExistsError(
            f"{path} is a symbolic link, so it is not a varbayes model directory; refusing to "
            "write a model through it (even with force=True). Choose another path."
        )
    if not path.is_dir():
        raise FileExistsError(
            f"{path} exists and is not a varbayes model directory (not a directory at all); "
            "refusing to overwrite it (even with force=True). Choose another path or remove it."
        )
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return False
    if not is_model_dir(path):
        raise FileExistsError(
            f"{path} is a non-empty directory that is not a varbayes model (no valid "
            f"{CONFIG_FILE}); refusing to overwrite it, even with force=True"
        )
    extra = sorted(set(entries) - _MODEL_FILES)
    if extra:
        raise FileExistsError(
            f"model directory {path} also holds files varbayes did not write ({extra}); "
            "refusing to delete them, even with force=True. Move them away first."
        )
    if not force:
        raise FileExistsError(
            f"{path} already holds a varbayes model; pass force=True (CLI: --force) to replace it"
        )
    return True


def _json_safe(value: Any, name: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be JSON-serialisable with finite numbers: {exc}") from None


# --------------------------------------------------------------------------- save


def save(
    fitted: FittedModel,
    path: str | os.PathLike[str],
    *,
    force: bool = False,
    metadata: dict[str, Any] | None = None,
    feature_names: list[str] | None = None,
    target_name: str | None = None,
) -> Path:
    """Write ``fitted`` to the model directory ``path``, atomically.

    Parameters
    ----------
    fitted : FittedModel or nn.Module
        A trained model from :func:`varbayes.kinds.fit` (or :func:`load`), or any network
        (:func:`varbayes.io.module_dir.save_module`; load it with ``load(path, module=...)``).
    path : str or path-like
        Directory to create. Missing parent directories are created.
    force : bool, default=False
        Replace an existing varbayes model directory at ``path``.
    metadata : dict or None, default=None
        Extra JSON-serialisable information, stored under ``"metadata"`` in ``config.json``.
    feature_names : list of str of length in_features, or None
        Input column names; default ``fitted.feature_names``.
    target_name : str or None
        Target column name; default ``fitted.target_name``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    TypeError
        If ``fitted`` is not a :class:`~varbayes.kinds.FittedModel`, or the metadata / names
        are not JSON-serialisable.
    ValueError
        If the model holds non-finite tensors or ``feature_names`` has the wrong length.
    FileExistsError
        If ``path`` holds a model and ``force`` is False, or holds anything that is not a
        varbayes model (never overwritten, even with ``force``).
    """
    if not isinstance(fitted, FittedModel) and is_variational(fitted):
        return save_module(fitted, path, force=force, metadata=metadata)  # any network
    if not isinstance(fitted, FittedModel):
        raise TypeError(f"save expects a varbayes FittedModel or a network with variational "
                        f"layers (varbayes.nn), got {type(fitted).__name__}")
    path = Path(path)
    if feature_names is None:
        feature_names = getattr(fitted, "feature_names", None)
    if target_name is None:
        target_name = getattr(fitted, "target_name", None)
    if feature_names is not None:
        feature_names = [str(n) for n in feature_names]
        if len(feature_names) != fitted.in_features:
            raise ValueError(
                f"feature_names has {len(feature_names)} names but the model has "
                f"{fitted.in_features} input features"
            )
    metadata = dict(metadata or {})
    if getattr(fitted, "fit_info", None) and "fit" not in metadata:
        metadata["fit"] = fitted.fit_info
    _json_safe(metadata, "metadata")
    _json_safe(fitted.config, "fitted.config")
    import varbayes

    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "varbayes_version": varbayes.__version__,
        "config": fitted.config,
        "feature_names": feature_names,
        "target_name": None if target_name is None else str(target_name),
        "metadata": metadata,
    }
    if getattr(fitted, "classes", None) is not None:  # a classifier's labels, in index order
        doc["classes"] = [c.item() if hasattr(c, "item") else c for c in fitted.classes or []]
        _json_safe(doc["classes"], "fitted.classes")
    for key in ("spread_factor", "temperature"):  # optional, written when not 1
        if getattr(fitted, key, 1.0) != 1.0:
            doc[key] = float(getattr(fitted, key))
    calibration = getattr(fitted, "calibration", None)
    if calibration is not None:
        doc["calibration"] = calibration.to_json()  # small: a factor, knots or scores
        _json_safe(doc["calibration"], "fitted.calibration")
    tensors: dict[str, torch.Tensor] = {}
    for key, value in fitted.state_dict().items():
        t = value.detach().to("cpu").contiguous().clone()  # clone: no shared storage
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"refusing to save: tensor {key!r} holds NaN or inf values")
        tensors[key] = t

    replace = check_overwrite(path, force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. a parent is a regular file, or not writable
        raise type(exc)(exc.errno, f"cannot create model directory {path}: {exc.strerror}",
                        exc.filename) from None
    return _write_dir(path, tensors, doc, replace)


def _write_dir(path: Path, tensors: dict[str, torch.Tensor], doc: dict[str, Any],
               replace: bool) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``path`` by temp dir and rename.

    The one writer of both directory formats (fitted models and :func:`save_module`).
    """
    tmp = _atomic.new_temp_dir(path, _MODEL_FILES)  # stale ones of dead processes go first
    try:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        _fsync_path(tmp / WEIGHTS_FILE)
        with open(tmp / CONFIG_FILE, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        # Both files within the umask (safetensors writes 0600), then renamed into place.
        _atomic.commit_dir(tmp, path, replace=replace, exchange=_exchange)
    finally:  # the old model after a swap, or the unfinished new one
        _atomic.discard(tmp)
    return path


# --------------------------------------------------------------------------- load


def _type_ok(value: Any, default: Any) -> bool:
    """Whether a JSON value has the type of the option whose default is ``default``."""
    is_num = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float) or default is None:
        return value is None or is_num
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        return isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        )
    return True


def _rebuild_config(raw: Any, where: Path) -> dict[str, Any]:
    """Validate the ``config`` object of ``config.json`` and rebuild it via ``make_config``."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: 'config' must be an object, got {type(raw).__name__}")
    rest = dict(raw)
    kind, in_features = rest.pop("kind", None), rest.pop("in_features", None)
    allowed = [k.value for k in ModelKind]
    if not isinstance(kind, str) or kind not in allowed:
        raise ValueError(f"{where}: config key 'kind' must be one of {allowed}, got {kind!r}")
    if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
        raise ValueError(
            f"{where}: config key 'in_features' must be a positive integer, got {in_features!r}"
        )
    rest, defaults = {**get_kind(kind).absent, **rest}, DEFAULTS[kind]  # Kind.absent: see there
    for key, value in rest.items():
        if key in defaults and not _type_ok(value, defaults[key]):
            raise ValueError(
                f"{where}: config key {key!r} has the wrong type: got {value!r}, expected a "
                f"value like the default {defaults[key]!r}"
            )
    try:
        config = make_config(kind, in_features, **rest)
        meta_state_shapes(config)  # catches values make_config lets by; allocates nothing
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{where}: invalid model config: {exc}") from None
    return config


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate the ``config.json`` of the model directory ``path``.

    Returns
    -------
    dict
        The whole document, with ``"config"`` rebuilt through
        :func:`~varbayes.kinds.make_config` and ``"metadata"`` defaulting to ``{}``.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a directory or has no ``config.json``.
    ValueError
        For invalid JSON (including nesting deeper than
        :data:`~varbayes.io.checks.MAX_JSON_DEPTH`), a wrong ``format``, an unsupported
        ``format_version``, invalid config keys, types or values, or a ``metadata.num_samples``
        that is not an integer in ``[1, MAX_NUM_SAMPLES]`` (the message names the file and key).
    """
    path = Path(path)
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise FileNotFoundError(f"model directory {path} {what}")
    where = path / CONFIG_FILE
    if not where.is_file():
        raise FileNotFoundError(f"{path} is not a varbayes model directory: {where} is missing")
    doc = _read_json(where)
    if not isinstance(doc, dict):
        raise ValueError(f"{where} must hold a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise ValueError(
            f"{where}: 'format' is {doc.get('format')!r}, expected {FORMAT!r}; this is not a "
            "varbayes model"
        )
    version = doc.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{where}: 'format_version' must be an integer, got {version!r}")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{where}: unsupported format version {version}; this varbayes reads version "
            f"{FORMAT_VERSION}" + ("; upgrade varbayes" if version > FORMAT_VERSION else "")
        )
    doc["config"] = _rebuild_config(doc.get("config"), where)
    names = doc.get("feature_names")
    if names is not None and not (
        isinstance(names, list)
        and all(isinstance(n, str) for n in names)
        and len(names) == doc["config"]["in_features"]
    ):
        raise ValueError(
            f"{where}: 'feature_names' must be null or a list of "
            f"{doc['config']['in_features']} strings, got {names!r}"
        )
    if doc.get("target_name") is not None and not isinstance(doc["target_name"], str):
        raise ValueError(f"{where}: 'target_name' must be null or a string")
    doc.setdefault("metadata", {})
    if not isinstance(doc["metadata"], dict):
        raise ValueError(f"{where}: 'metadata' must be an object")
    if "num_samples" in doc["metadata"]:
        check_num_samples(doc["metadata"]["num_samples"], str(where))
    classes = doc.get("classes")  # optional; a classifier's labels
    if classes is not None and not (
            isinstance(classes, list) and len(classes) == doc["config"].get("n_classes")
            and all(isinstance(c, str | int | float) for c in classes)):
        raise ValueError(f"{where}: 'classes' must be null or a list of n_classes labels "
                         f"(strings or numbers), got {classes!r}")
    if doc.get("calibration") is not None:  # optional; written since the calibration maps
        map_from_json(doc["calibration"], f"{where}: calibration")
    for key in ("spread_factor", "temperature"):
        factor = doc.get(key, 1.0)
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not (
                0 < factor < float("inf")):
            raise ValueError(f"{where}: {key!r} must be a positive number, got {factor!r}")
    return doc


def load(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu",
         module: torch.nn.Module | None = None) -> Any:
    """Load a model directory written by :func:`save`, validating everything first.

    Parameters
    ----------
    path : str or path-like
        The model directory.
    map_location : str or torch.device, default="cpu"
        Device to move the loaded model to.
    module : nn.Module or None, default=None
        For a network saved with ``save(net, path)``: a fresh instance of its class (converted
        the same way), filled and returned (:func:`varbayes.io.module_dir.load_module`).

    Returns
    -------
    FittedModel
        In eval mode, with attributes ``feature_names`` (list of str or None),
        ``target_name`` (str or None) and ``metadata`` (dict) from ``config.json``.

    Raises
    ------
    FileNotFoundError
        If the directory or one of its files is missing.
    ValueError
        For any invalid content: see :func:`read_config`; a weights file that is a pickle or
        zip, truncated or corrupt; missing or unexpected tensors; shape or dtype (F32 or F64)
        mismatches, found from the file's header before anything is allocated; values that are
        not finite in float32; a standardiser or noise ``std`` that is not > 0. The message names
        the file and the tensor.

    Notes
    -----
    A load allocates at most twice the size of the weights file, whatever ``config.json`` says:
    the config's sizes must match the file's own tensor shapes before the model is built.
    """
    path = Path(path)
    if module is not None:  # any network, saved by save(net, path): filled into this instance
        return load_module(path, module, map_location=map_location)
    doc = read_config(path)
    config = doc["config"]
    file = path / WEIGHTS_FILE
    # Sizes first: the config's tensors (built on the meta device) against the file's header.
    check_header(meta_state_shapes(config), read_header(file), config, file, path / CONFIG_FILE)
    x_scaler, y_scaler = Standardizer(config["in_features"]), Standardizer(1)
    model = build_model(config, torch.Generator().manual_seed(0))  # leave global RNG alone
    fitted = FittedModel(
        config,
        model,
        x_scaler,
        y_scaler,
        feature_names=doc.get("feature_names"),
        target_name=doc.get("target_name"),
    )
    read_tensors_into(fitted.state_dict(), file, path / CONFIG_FILE)
    if is_ivon(config) and (problems := check_posterior(model)):  # method='ivon'
        raise ValueError(f"{file} does not match {path / CONFIG_FILE}: " + "; ".join(problems))
    fitted.eval()
    fitted.metadata = doc["metadata"]
    fit_info = doc["metadata"].get("fit")
    fitted.fit_info = fit_info if isinstance(fit_info, dict) else {}
    fitted.spread_factor = float(doc.get("spread_factor", 1.0))
    fitted.temperature = float(doc.get("temperature", 1.0))
    fitted.classes = doc.get("classes")
    if doc.get("calibration") is not None:
        fitted.calibration = map_from_json(doc["calibration"], f"{path / CONFIG_FILE}: calibration")
    return fitted.to(map_location)
