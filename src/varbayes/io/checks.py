"""Validation of a saved model directory before anything is allocated (used by :mod:`varbayes.io`).

Loading follows one rule: every size is checked against what is on disk before any tensor is
built. :func:`meta_state_shapes` builds the model a config describes on PyTorch's ``meta``
device (shapes only, no memory); :func:`read_header` reads the names, dtypes and shapes of the
weights file from its safetensors header without reading a tensor; :func:`check_header`
compares the two. The header itself is checked by safetensors to describe exactly the bytes of
the file, so once the shapes match, the model's parameters hold as many elements as the weights
file, and the file stores 4 or 8 bytes per element: the float32 model is no larger than the
file. :func:`read_tensors_into` then reads one tensor at a time into the built model, so a load
allocates at most the model plus its largest tensor: never more than twice the weights file.

Allowed values are checked on the way in: every tensor finite in float32 (the dtype it is used
in), the standardisers' ``std`` and the noise ``noise_std`` positive, ``metadata.num_samples``
an integer (not a bool) within :data:`MAX_NUM_SAMPLES`, and JSON nested at most
:data:`MAX_JSON_DEPTH` levels deep.

A prediction is bounded too, by :func:`varbayes.predictive.check_draw_budget`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from varbayes.data.transforms import Standardizer
from varbayes.kinds import FittedModel, build_model

__all__ = [
    "ALLOWED_DTYPES",
    "MAX_HIDDEN_LAYERS",
    "MAX_JSON_DEPTH",
    "MAX_NUM_SAMPLES",
    "check_header",
    "check_num_samples",
    "meta_state_shapes",
    "read_header",
    "read_json",
    "read_tensors_into",
]

#: Deepest nesting of arrays and objects accepted in a JSON file of a model directory.
MAX_JSON_DEPTH = 64
#: Most hidden layers ``hidden`` (and ``noise_hidden``) may list.
MAX_HIDDEN_LAYERS = 1024
#: Largest layer size or ``in_features`` (the largest int32; a weights file of one such layer
#: would already take 8 GiB).
MAX_SIZE = 2**31 - 1
#: Largest ``metadata.num_samples`` a model directory may ask predictions to draw.
MAX_NUM_SAMPLES = 1_000_000
#: safetensors dtypes a weights file may use; varbayes writes F32, the model computes in float32.
ALLOWED_DTYPES = {"F32": torch.float32, "F64": torch.float64}
#: Tensors that are standard deviations: finite and > 0.
POSITIVE_TENSORS = ("x_scaler.std", "y_scaler.std", "model.noise_std")
_PICKLE_HINT = (
    "varbayes never unpickles files (unpickling can run arbitrary code); save models with "
    "varbayes.io.save, which writes safetensors"
)


# --------------------------------------------------------------------------- JSON


def _depth(doc: Any) -> int:
    """Nesting depth of a parsed JSON document, without recursion."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_JSON_DEPTH:  # deeper: already too deep, no need to look further
                items = value.values() if isinstance(value, dict) else value
                stack.extend((v, level + 1) for v in items)
    return deepest


def read_json(path: Path) -> Any:
    """Parse the JSON file ``path``; any problem is a ValueError naming the file.

    Raises
    ------
    ValueError
        For text that is not UTF-8 or not JSON, a non-finite number (``NaN``, ``Infinity``,
        ``1e400``), an integer of more digits than Python converts, or nesting deeper than
        :data:`MAX_JSON_DEPTH` (which would otherwise raise ``RecursionError``).
    """

    def reject(constant: str) -> None:
        raise ValueError(f"{path}: invalid JSON constant {constant}; numbers must be finite")

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{path}: JSON number {text} is out of range for a float")
        return value

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text: {exc}") from None
    too_deep = f"{path}: JSON nested more than {MAX_JSON_DEPTH} levels deep; refusing to read it"
    try:
        doc = json.loads(text, parse_constant=reject, parse_float=finite)
    except RecursionError:
        raise ValueError(too_deep) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    except ValueError as exc:  # our own messages, or an integer with too many digits
        message = str(exc)
        raise ValueError(message if str(path) in message else f"{path}: {message}") from None
    if _depth(doc) > MAX_JSON_DEPTH:
        raise ValueError(too_deep)
    return doc


def check_num_samples(value: Any, where: str) -> int:
    """``metadata.num_samples``: an int (not a bool) in ``[1, MAX_NUM_SAMPLES]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"{where}: 'metadata.num_samples' must be an integer, got {value!r} "
            f"({type(value).__name__})"
        )
    if not 1 <= value <= MAX_NUM_SAMPLES:
        raise ValueError(
            f"{where}: 'metadata.num_samples' must be between 1 and {MAX_NUM_SAMPLES}, got {value}"
        )
    return value


# --------------------------------------------------------------------------- shapes


def meta_state_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of every tensor of the model ``config`` describes, allocating nothing.

    The model is built on the ``meta`` device, so a config with ``hidden=[10**9]`` costs no
    memory. Builder errors (a size out of range, a value a model refuses) are ValueErrors.
    """
    for key in ("hidden", "noise_hidden"):
        sizes = config.get(key)
        if sizes is not None and len(sizes) > MAX_HIDDEN_LAYERS:
            raise ValueError(
                f"{key!r} lists {len(sizes)} layers; at most {MAX_HIDDEN_LAYERS} are supported"
            )
        for size in sizes or ():
            if size > MAX_SIZE:
                raise ValueError(f"{key!r} holds the size {size}; at most {MAX_SIZE} is supported")
    if config["in_features"] > MAX_SIZE:
        raise ValueError(
            f"'in_features' is {config['in_features']}; at most {MAX_SIZE} is supported"
        )
    try:
        with torch.device("meta"):
            model = build_model(config, None)
            fitted = FittedModel(config, model, Standardizer(config["in_features"]),
                                 Standardizer(1))
    except (RuntimeError, OverflowError, TypeError) as exc:  # e.g. a tensor beyond int64
        raise ValueError(f"cannot build the model: {str(exc).strip().splitlines()[0]}") from None
    return {k: tuple(v.shape) for k, v in fitted.state_dict().items()}


def read_header(file: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (dtype, shape)}`` of the safetensors file ``file``, reading no tensor data.

    Raises
    ------
    FileNotFoundError
        If ``file`` is missing.
    ValueError
        For a pickle or ``torch.save`` zip (never opened as one) or a file that is not valid
        safetensors (truncated, corrupt, a header that does not cover the file's bytes).
    """
    if not file.is_file():
        raise FileNotFoundError(f"weights file {file} is missing")
    with open(file, "rb") as fh:
        head = fh.read(9)
    # A safetensors file starts with an 8-byte little-endian header length, then "{".
    size = os.path.getsize(file)
    plausible = len(head) == 9 and head[8:9] == b"{"
    plausible = plausible and int.from_bytes(head[:8], "little") <= size - 8
    if not plausible and head.startswith(b"PK\x03\x04"):
        raise ValueError(
            f"{file} is a zip archive (torch.save format), not safetensors; " + _PICKLE_HINT
        )
    if not plausible and head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise ValueError(f"{file} is a Python pickle, not safetensors; " + _PICKLE_HINT)
    try:
        with safe_open(str(file), framework="pt", device="cpu") as st:
            header = {}
            for key in st.keys():  # noqa: SIM118 - safe_open is not a mapping
                piece = st.get_slice(key)
                header[key] = (str(piece.get_dtype()), tuple(int(n) for n in piece.get_shape()))
    except (SafetensorError, OSError, RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(
            f"{file} is not a valid safetensors file (truncated or corrupt?): {exc}"
        ) from None
    return header


def check_header(
    expected: dict[str, tuple[int, ...]],
    header: dict[str, tuple[str, tuple[int, ...]]],
    config: dict[str, Any],
    file: Path,
    config_file: Path,
) -> None:
    """Raise a ValueError listing every difference between the config's tensors and the file's.

    Names, shapes and dtypes must all match; nothing has been allocated yet.
    """
    problems = []
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    if missing:
        problems.append(f"missing tensors {missing}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected}")
    sizes = f"in_features={config['in_features']}, hidden={config['hidden']}"
    if config.get("noise_hidden") is not None:
        sizes += f", noise_hidden={config['noise_hidden']}"
    for key in sorted(set(expected) & set(header)):
        dtype, shape = header[key]
        if shape != expected[key]:
            problems.append(
                f"{key!r} has shape {shape}, the config ({config['kind']}, {sizes}) needs "
                f"{expected[key]}"
            )
        elif dtype not in ALLOWED_DTYPES:
            allowed = " or ".join(ALLOWED_DTYPES)
            problems.append(f"{key!r} has dtype {dtype}, expected a floating dtype ({allowed})")
    if problems:
        raise ValueError(f"{file} does not match {config_file}: " + "; ".join(problems))


# --------------------------------------------------------------------------- values


def read_tensors_into(target: dict[str, torch.Tensor], file: Path, config_file: Path) -> None:
    """Copy every tensor of ``file`` into ``target`` (a state dict), one tensor at a time.

    Each tensor is checked in float32, the dtype the model computes in: finite everywhere
    (an F64 ``1e300`` is refused, as it becomes inf), and > 0 for the standard deviations of
    :data:`POSITIVE_TENSORS` (a negative ``y_scaler.std`` would swap an interval's bounds, a zero
    one make every prediction constant, a negative ``x_scaler.std`` flip an input's sign).
    """
    problems = []
    try:
        with safe_open(str(file), framework="pt", device="cpu") as st, torch.no_grad():
            for key in sorted(target):
                dest = target[key]
                source = st.get_tensor(key)
                dest.copy_(source)  # converts to the model's dtype in place
                finite = torch.isfinite(dest)
                if not bool(finite.all()):
                    where = torch.nonzero(~finite.reshape(-1))[0].item()
                    what = ("NaN or inf values" if not math.isfinite(source.reshape(-1)[where])
                            else f"values beyond the range of {dest.dtype}")
                    problems.append(f"{key!r} holds {what} (first at flat index {where})")
                elif key in POSITIVE_TENSORS and not bool((dest > 0).all()):
                    flat = dest.reshape(-1)
                    where = int(torch.nonzero(flat <= 0)[0].item())
                    problems.append(
                        f"tensor {key!r} is a standard deviation and must be > 0, got "
                        f"{flat[where].item()!r} at index {where}"
                    )
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise ValueError(
            f"{file} is not a valid safetensors file (truncated or corrupt?): {exc}"
        ) from None
    if problems:
        raise ValueError(f"{file} does not match {config_file}: " + "; ".join(problems))

