"""The CLI for non-Gaussian likelihoods (``--likelihood``): fit data, predict and evaluate.

``fit --likelihood student_t|poisson|exponential`` trains the ``family`` kind on a numeric
target; ``bernoulli``/``categorical`` on a label column of any text (labels are sorted, and
two labels train a Bernoulli head whatever was asked; more need ``categorical``). Targets
are checked before training (a negative or fractional count, a non-positive waiting time, a
single class: exit 2 naming the row). ``predict`` of a classifier writes ``p_<label>`` per
class, ``label``, ``entropy``, ``aleatoric_entropy`` and ``mutual_information``; count
predictions have integer ``lower``, ``median`` and ``upper``. ``evaluate`` of a classifier
prints accuracy, NLL, Brier, ECE and the mean entropy split; of a regression family, the
scores of :mod:`varbayes.metrics_family`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from varbayes.cli.parser import EXIT_OK, UsageError

__all__ = ["evaluate_family_command", "family_fit_data", "predict_family_command"]

_CLASSES = ("bernoulli", "categorical")


def family_fit_data(
    raw: Any, likelihood: str, target: str, features: list[str] | None
) -> tuple[np.ndarray, np.ndarray, list[str], str, dict[str, Any], list[str] | None]:
    """``x``, ``y``, feature names, target name, kind overrides and class labels of ``raw``.

    Raises
    ------
    UsageError
        For a target outside the likelihood's support or a single class (naming the row).
    """
    from varbayes.data.csv import resolve_names, select
    from varbayes.likelihoods import get_likelihood

    name, feats = resolve_names(raw.name, raw.header, target, features)
    assert name is not None  # a target was given
    overrides: dict[str, Any] = {"likelihood": likelihood}
    if likelihood in _CLASSES:
        x = select(raw, None, feats).x
        j = raw.header.index(name)
        labels = np.array([r[j].strip() for _, r in raw.rows], dtype=object)
        classes, index = np.unique(labels.astype(str), return_inverse=True)
        if len(classes) < 2:
            raise UsageError(f"{raw.name}, column {name!r} holds one class "
                             f"({str(classes[0])!r}); a classifier needs at least 2 classes")
        if len(classes) > 2 and likelihood == "bernoulli":
            raise UsageError(f"{raw.name}, column {name!r} holds {len(classes)} classes; "
                             "--likelihood bernoulli needs 2 (use categorical)")
        overrides["likelihood"] = "bernoulli" if len(classes) == 2 else "categorical"
        overrides["n_classes"] = len(classes)
        return x, index.astype(np.float64), feats, name, overrides, [str(c) for c in classes]
    table = select(raw, name, feats)
    y = np.asarray(table.y, dtype=np.float64)
    try:
        get_likelihood(likelihood).check_target(y, "y")
    except ValueError as exc:  # "y[i] = v is ...": name the CSV row instead
        i, rest = str(exc)[2:].split("] = ", 1)
        raise UsageError(f"{raw.name}, row {raw.rows[int(i)][0]}, column {name!r}: "
                         f"{rest}") from None
    return table.x, y, feats, name, overrides, None


def _class_columns(pred: Any, classes: list[str]) -> dict[str, np.ndarray]:
    probs = pred.probs.numpy()
    cols: dict[str, np.ndarray] = {f"p_{c}": probs[:, k] for k, c in enumerate(classes)}
    cols["label"] = np.asarray(classes, dtype=object)[probs.argmax(1)]
    cols["entropy"] = pred.entropy.numpy()
    cols["aleatoric_entropy"] = pred.aleatoric_entropy.numpy()
    cols["mutual_information"] = pred.mutual_information.numpy()
    return cols


def predict_family_command(args: argparse.Namespace, fitted: Any, samples: int,
                           source: Any) -> int:
    """``varbayes predict`` for a ``family`` model (classes or a regression family)."""
    import torch

    from varbayes import _atomic
    from varbayes.data.csvstream import CSVChunkReader, CSVChunkWriter, predict_chunk_rows
    from varbayes.kinds import predict_family
    from varbayes.predictive.columns import COLUMNS, ROW_ALIGN, aligned_columns, aligned_rows
    from varbayes.predictive.families import is_count_likelihood

    width = max([1, *fitted.config["hidden"]])
    chunk_rows, forward_rows = predict_chunk_rows(samples, width, ROW_ALIGN)
    classes = fitted.classes
    out_names = ([f"p_{c}" for c in classes] + ["label", "entropy", "aleatoric_entropy",
                                                "mutual_information"]
                 if classes is not None else list(COLUMNS))
    with CSVChunkReader(source, fitted.feature_names, chunk_rows=chunk_rows) as reader:
        clash = sorted(set(reader.header) & set(out_names))
        if clash:
            raise UsageError(f"{reader.name} already has column(s) {clash}; rename them first")
        with CSVChunkWriter(args.out, [*reader.header, *out_names], force=args.force) as writer:
            def predict(xs: Any) -> Any:
                return predict_family(fitted, xs, samples, chunk_size=forward_rows,
                                      generator=torch.Generator().manual_seed(args.seed))

            # Padded to whole row groups: a row's numbers do not depend on its chunk.
            for x, rows in reader.chunks():
                if classes is not None:
                    writer.write(rows, aligned_rows(
                        lambda xs: _class_columns(predict(xs), classes), x))
                    continue
                where = [f"{reader.name}, row {n}" for n in reader.chunk_lines]
                cols = aligned_columns(predict, x, args.level, row_names=where)
                if is_count_likelihood(fitted.config["likelihood"]):
                    for key in ("lower", "median", "upper"):
                        cols[key] = cols[key].astype(np.int64)
                writer.write(rows, cols)
    dest = "standard output" if args.out == _atomic.STDOUT else args.out
    print(f"wrote {writer.rows_written} predictions to {dest}", file=sys.stderr)
    return EXIT_OK


def evaluate_family_command(args: argparse.Namespace, fitted: Any, source: Any,
                            target: str, samples: int) -> int:
    """``varbayes evaluate`` for a ``family`` model."""
    import torch

    from varbayes.data.csv import read_rows, select
    from varbayes.kinds import predict_family
    from varbayes.metrics_classification import evaluate_classification
    from varbayes.metrics_family import evaluate_family
    from varbayes.predictive import ClassPrediction

    raw = read_rows(source)
    generator = torch.Generator().manual_seed(args.seed)
    scores: dict[str, Any]
    if fitted.classes is not None:
        x = select(raw, None, fitted.feature_names).x
        name, _ = _names(raw, target, fitted.feature_names)
        j = raw.header.index(name)
        labels = [r[j].strip() for _, r in raw.rows]
        lookup = {str(c): k for k, c in enumerate(fitted.classes)}
        for (lineno, _r), label in zip(raw.rows, labels, strict=True):
            if label not in lookup:
                raise UsageError(f"{raw.name}, row {lineno}, column {name!r}: class {label!r} "
                                 f"was never seen in fit (classes {list(lookup)})")
        pred = predict_family(fitted, x, samples, chunk_size=4096, generator=generator)
        assert isinstance(pred, ClassPrediction)
        scores = evaluate_classification(np.array([lookup[v] for v in labels]), pred)
    else:
        table = select(raw, target, fitted.feature_names)
        pred = predict_family(fitted, table.x, samples, chunk_size=4096, generator=generator)
        assert not isinstance(pred, ClassPrediction)
        scores = {**evaluate_family(table.y, pred, level=args.level), "n": int(table.x.shape[0])}
    if args.json:
        print(json.dumps(scores))
    else:
        for key, value in scores.items():
            print(f"{key:<20} {value:.6g}" if isinstance(value, float) else f"{key:<20} {value}")
    return EXIT_OK


def _names(raw: Any, target: str, features: list[str]) -> tuple[str, list[str]]:
    from varbayes.data.csv import resolve_names

    name, feats = resolve_names(raw.name, raw.header, target, features)
    assert name is not None
    return name, feats
