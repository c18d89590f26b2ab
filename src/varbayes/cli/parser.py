"""The ``varbayes`` argument parser, its value converters, and the CLI's error types.

Imports nothing heavy: ``varbayes --help``, ``--version`` and argument errors never load torch,
scikit-learn or matplotlib.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "TrainingError",
    "UsageError",
    "build_parser",
]

DESCRIPTION = "varbayes: variational inference for neural networks with honest uncertainty"

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """A mistake in the command line or its input files (exit code 2)."""


class TrainingError(RuntimeError):
    """Training failed numerically although its inputs were valid (exit code 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, as argparse does
        self.exit(EXIT_USAGE, f"varbayes: error: {message}\n")


def _number(kind: type, accept: Callable[[Any], bool], expected: str) -> Callable[[str], Any]:
    """An argparse ``type=`` converter: ``kind(text)``, refused unless ``accept(value)``."""

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return convert


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_nonneg_int = _number(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive finite number")
_level = _number(float, lambda v: 0 < v < 1, "a number in (0, 1)")
_fraction = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def _hidden(text: str) -> list[int]:
    try:
        sizes = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer sizes such as 50,50, got {text!r}"
        ) from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"expected positive layer sizes such as 50,50, got {text!r}"
        )
    return sizes


def _names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated column names")
    return names


def _add_device(p: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    p.add_argument("--device", choices=names, default="cpu",
                   help="where to compute: cpu (default), cuda, or auto (cuda where available)")


def _add_labelled_data(p: argparse.ArgumentParser, data_help: str) -> None:
    """MODEL_DIR, DATA (a CSV with the target column) and --target: evaluate and calibrate."""
    p.add_argument("model_dir", type=Path)
    p.add_argument("data", type=Path, help=data_help)
    p.add_argument("--target", help="target column (default: the one used in fit)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``varbayes`` command."""
    from varbayes import __version__
    from varbayes._names import DEVICE_NAMES, LIKELIHOOD_NAMES, METHOD_NAMES, ModelKind, PriorName

    kinds = [k.value for k in ModelKind if k is not ModelKind.FAMILY]  # family: --likelihood
    parser = _Parser(prog="varbayes", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"varbayes {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("demo", help="the blog post end to end on its toy data")
    p.add_argument("--out", type=Path, default=Path("varbayes-demo"),
                   help="output directory for metrics.json and figures (default: varbayes-demo)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1/10 of the epochs")
    p.add_argument("--seed", type=_nonneg_int, default=0)
    p.add_argument("--samples", type=_positive_int, default=1000,
                   help="posterior samples for prediction (default 1000)")

    p = sub.add_parser("fit", help="train a model on a CSV file (default: the toy data)")
    p.add_argument("data", nargs="?", type=Path,
                   help="CSV file with a header row ('-': standard input)")
    p.add_argument("--target", help="target column of DATA")
    p.add_argument("--features", type=_names,
                   help="comma-separated feature columns (default: every other column that "
                        "holds numbers; text columns are left out with a note)")
    p.add_argument("--model", choices=kinds, default="hetero", help="model kind (default hetero)")
    p.add_argument("--likelihood", choices=LIKELIHOOD_NAMES, default="gaussian",
                   help="the target's distribution (default gaussian); the others train Bayes "
                        "by Backprop with that head: counts (poisson), waiting times "
                        "(exponential), heavy tails (student_t), labels (bernoulli, categorical)")
    p.add_argument("--method", choices=METHOD_NAMES, default="bbb",
                   help="training method of bbb, hetero and --likelihood models: Bayes by "
                        "Backprop (default) or the IVON optimiser (ivon)")
    p.add_argument("--hidden", type=_hidden, help="hidden layer sizes, e.g. 50,50")
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--lr", type=_positive_float)
    p.add_argument("--noise", choices=["fixed", "learned"],
                   help="bbb only: the post's fixed noise or a learned homoscedastic noise")
    p.add_argument("--prior", choices=[k.value for k in PriorName],
                   help="bbb and hetero: weight prior (default gaussian; scale_mixture trains "
                        "with the Monte-Carlo KL)")
    p.add_argument("--prior-scale", type=_positive_float,
                   help="std of the Gaussian prior (of the wide mixture component; default 1)")
    p.add_argument("--samples", type=_positive_int, default=1000,
                   help="default posterior samples used by predict/evaluate (default 1000)")
    p.add_argument("--seed", type=_nonneg_int, default=0)
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing model directory")
    p.add_argument("--nonfinite", choices=["raise", "skip"], default="raise",
                   help="when a training step's loss is NaN/inf: stop with an error (raise, "
                        "default) or skip the step (skip)")
    p.add_argument("--early-stopping", action=argparse.BooleanOptionalAction, default=True,
                   help="hold out --validation-fraction of the rows and keep the epoch with the "
                        "best validation log-likelihood (default on; needs 80 rows or more)")
    p.add_argument("--validation-fraction", type=_level, default=0.1,
                   help="share of the rows in the validation part and in the calibration part "
                        "(at least 20 rows; default 0.1)")
    p.add_argument("--n-iter-no-change", type=_positive_int, default=20,
                   help="validation checks without improvement before stopping (default 20)")
    p.add_argument("--n-members", type=_positive_int,
                   help="hetero and --likelihood models: networks in the ensemble, stopped "
                        "on one shared validation part (--likelihood: each on its own; "
                        "default 3 for hetero, 1 with --likelihood)")
    p.add_argument("--warmup-fraction", type=_fraction,
                   help="hetero: share of the epochs each network first trains with one "
                        "learned noise level (default 2/3; 0: no warm-up)")
    p.add_argument("--calibration", choices=["scale", "isotonic", "conformal"],
                   help="fit this calibration map on a held-out part of the rows")
    _add_device(p, DEVICE_NAMES)
    p.add_argument("--distributed", choices=["auto", "on", "off"], default="auto",
                   help="data-parallel training under torchrun: auto (when launched with several "
                        "processes), on, or off (default auto)")

    p = sub.add_parser("predict", help="predictive mean, std and interval for a CSV of inputs")
    p.add_argument("model_dir", type=Path)
    p.add_argument("input", type=Path,
                   help="CSV with the model's feature columns ('-': standard input)")
    p.add_argument("--samples", type=_positive_int, help="posterior samples (default: as fit)")
    p.add_argument("--level", type=_level, default=0.9, help="central interval (default 0.9)")
    p.add_argument("--seed", type=_nonneg_int, default=0)
    p.add_argument("--out", required=True,
                   help="CSV file to write; - for standard output (a FIFO or device is written "
                        "into, never replaced)")
    _add_device(p, DEVICE_NAMES)
    p.add_argument("--force", action="store_true", help="overwrite an existing regular file")

    p = sub.add_parser("evaluate", help="score a model on a labelled CSV (data units)")
    _add_labelled_data(p, "CSV with the feature and target columns ('-': standard input)")
    p.add_argument("--samples", type=_positive_int)
    p.add_argument("--level", type=_level, default=0.9)
    p.add_argument("--seed", type=_nonneg_int, default=0)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (with coverage and width at 50/80/90/95/99%%)")
    p.add_argument("--plot", type=Path,
                   help="PNG file: reliability diagram and PIT histogram")
    _add_device(p, DEVICE_NAMES)
    p.add_argument("--force", action="store_true", help="overwrite an existing --plot file")

    p = sub.add_parser("calibrate", help="fit a calibration map on held-out labelled rows")
    _add_labelled_data(p, "CSV with the feature and target columns, rows the model was not "
                          "trained on ('-': standard input)")
    p.add_argument("--method", choices=["scale", "isotonic", "conformal"], default="conformal")
    p.add_argument("--samples", type=_positive_int)
    p.add_argument("--seed", type=_nonneg_int, default=0)
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing model directory")

    p = sub.add_parser("benchmark", help="quality (UCI) and speed benchmarks")
    bench = p.add_subparsers(dest="benchmark", required=True, parser_class=_Parser)
    b = bench.add_parser("uci", help="the UCI regression benchmark (Hernandez-Lobato & Adams 2015)")
    b.add_argument("--data-dir", type=Path, default=None,
                   help="folder holding <name>/data.txt etc. (default: $VARBAYES_DATA_DIR or "
                        "the user cache)")
    b.add_argument("--dataset", required=True, help="data set folder name, e.g. concrete, or 'all'")
    b.add_argument("--splits", type=_positive_int, help="run the first K splits (default: all)")
    b.add_argument("--model", choices=kinds, default="hetero")
    b.add_argument("--quick", action="store_true", help="smoke run: 2 splits, fewer epochs")
    b.add_argument("--seed", type=_nonneg_int, default=0)
    b.add_argument("--one-at-a-time", action="store_true",
                   help="train the splits one by one instead of together on the vectorised "
                        "engine (same results up to rounding; slower)")
    b.add_argument("--no-refit", action="store_true",
                   help="test each split's best validation checkpoint instead of a refit on "
                        "all training rows (half the training; splits trained together only)")
    b.add_argument("--n-iter-no-change", type=_positive_int, default=None,
                   help="stop a split's validation run after K checkpoints without a better "
                        "validation LL (the library's early-stopping rule; default: the whole "
                        "schedule)")
    b.add_argument("--out", help="JSON file for per-split and summary results")
    b = bench.add_parser("speed", help="training and prediction speed vs the post and Pyro")
    b.add_argument("--sizes", type=lambda t: [int(v) for v in t.split(",")],
                   help="comma-separated data sizes (default 150,10000,100000,1000000)")
    b.add_argument("--quick", action="store_true", help="smoke run: small sizes, few epochs")
    b.add_argument("--predict-rows", type=_positive_int,
                   help="rows of the predict-at-scale row (default 1000000; --quick: 5000)")
    b.add_argument("--uci-rows", type=_positive_int,
                   help="rows of the UCI-protocol row, 20 splits of a friedman1 data set "
                        "(default 10000; --quick: 500 rows, 2 splits, the quick schedule)")
    b.add_argument("--out", help="JSON file for the results")
    return parser
