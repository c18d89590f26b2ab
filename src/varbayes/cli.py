"""The ``varbayes`` command line: demo, fit, predict, evaluate, benchmark.

Thin over the library. Errors caused by the user (bad files, columns, values, flags) print one
line on stderr and exit with code 2; a failure while running (e.g. a diverging fit) exits 1;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """A mistake in the command line or its input files (exit code 2)."""


class TrainingError(RuntimeError):
    """Training failed numerically although its inputs were valid (exit code 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as argparse does
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``varbayes`` command."""
    from varbayes import __version__
    from varbayes.kinds import ModelKind

    kinds = [k.value for k in ModelKind]
    parser = _Parser(prog="varbayes", description=__doc__.splitlines()[0])
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
    p.add_argument("--hidden", type=_hidden, help="hidden layer sizes, e.g. 50,50")
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--lr", type=_positive_float)
    p.add_argument("--noise", choices=["fixed", "learned"],
                   help="bbb only: the post's fixed noise or a learned homoscedastic noise")
    p.add_argument("--samples", type=_positive_int, default=1000,
                   help="default posterior samples used by predict/evaluate (default 1000)")
    p.add_argument("--seed", type=_nonneg_int, default=0)
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing model directory")
    p.add_argument("--nonfinite", choices=["raise", "skip"], default="raise",
                   help="when a training step's loss is NaN/inf: stop with an error (raise, "
                        "default) or skip the step (skip)")
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
    p.add_argument("--force", action="store_true", help="overwrite an existing regular file")

    p = sub.add_parser("evaluate", help="score a model on a labelled CSV (data units)")
    p.add_argument("model_dir", type=Path)
    p.add_argument("data", type=Path, help="CSV with the feature and target columns "
                                            "('-': standard input)")
    p.add_argument("--target", help="target column (default: the one used in fit)")
    p.add_argument("--samples", type=_positive_int)
    p.add_argument("--level", type=_level, default=0.9)
    p.add_argument("--seed", type=_nonneg_int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")

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
    b.add_argument("--out", help="JSON file for per-split and summary results")
    b = bench.add_parser("speed", help="training and prediction speed vs the post and Pyro")
    b.add_argument("--sizes", type=lambda t: [int(v) for v in t.split(",")],
                   help="comma-separated data sizes (default 150,10000,100000,1000000)")
    b.add_argument("--quick", action="store_true", help="smoke run: small sizes, few epochs")
    b.add_argument("--out", help="JSON file for the results")
    return parser


def _require_model_out(path: Path, force: bool) -> None:
    """Check the model directory ``--out`` of ``fit`` before any work, by io.save's own rules."""
    from varbayes import _atomic, io

    try:  # a link, a file, a special file, a foreign directory or file: refused, even with force
        replace = io.check_overwrite(path, force=True)
    except FileExistsError as exc:
        raise UsageError(str(exc).replace("force=True", "--force")) from None
    if replace and not force:
        raise FileExistsError(f"{path} already exists; pass --force to overwrite it")
    _atomic.check_creatable(path, parents=True)


def _source(path: Path) -> Any:
    """A CSV argument as a source for the readers: ``-`` is standard input (UTF-8)."""
    from varbayes.data.csv import stdin_text

    return stdin_text() if str(path) == "-" else path


def _numeric_columns(
    raw: Any, target: str, sniff_rows: int = 1000
) -> tuple[list[str], list[str]] | None:
    """Split the columns other than ``target`` into (numeric, text); None: leave it to select.

    ``raw`` is the :class:`varbayes.data.csv.RawTable` read once from the file. A column is numeric
    if one of its first ``sniff_rows`` cells is spelled as a number (the readers' own test).
    Text columns (ids, labels) are left out of the default features; a column with numbers and
    some bad cells stays in, so that reading it reports the bad cell's row and column.
    """
    from varbayes.data.csv import is_number, normalize_name

    target = normalize_name(target)
    if target not in raw.header:
        return None
    sniff = raw.rows[:sniff_rows]
    numeric = [c for j, c in enumerate(raw.header)
               if c != target and any(is_number(r[j].strip()) for _, r in sniff)]
    text = [c for c in raw.header if c != target and c not in numeric]
    return (numeric, text) if numeric else None


def _cmd_demo(args: argparse.Namespace) -> int:
    from varbayes.demo import format_table, run_demo

    report = run_demo(args.out, quick=args.quick, seed=args.seed, num_samples=args.samples,
                      progress=True)
    print(format_table(report))
    print(f"\nwrote {args.out / 'metrics.json'} and figures to {args.out}/")
    return EXIT_OK


def _cmd_fit(args: argparse.Namespace) -> int:
    import torch

    from varbayes import io
    from varbayes._validation import check_X_y
    from varbayes.data import load_toy
    from varbayes.data.csv import read_rows, select
    from varbayes.infer import NonFiniteLossError
    from varbayes.infer.distributed import get_world_size, is_main_process, process_group
    from varbayes.kinds import fit, make_config

    _require_model_out(args.out, args.force)
    if args.data is None:
        if args.target or args.features:
            raise UsageError("--target/--features need a DATA.csv argument")
        toy = load_toy()
        x, y, features, target = toy.x_train, toy.y_train[:, 0], ["x"], "y"
    else:
        if not args.target:
            raise UsageError(f"--target is required with a data file ({args.data})")
        raw = read_rows(_source(args.data))  # read once: a FIFO or a pipe works
        features = args.features
        if features is None and (split := _numeric_columns(raw, args.target)):
            features, text = split
            if text:
                print(f"varbayes: note: ignoring non-numeric column(s) {text} of {raw.name}; "
                      "choose the columns with --features", file=sys.stderr)
        table = select(raw, args.target, features)
        x, y, features, target = table.x, table.y, table.feature_names, table.target_name
        check_X_y(x, y, names=(f"{raw.name} features", f"{raw.name} column {target!r}"))
    if x.shape[0] < 2:
        raise UsageError(f"need at least 2 data rows to fit, got {x.shape[0]}")
    if args.noise is not None and args.model != "bbb":
        raise UsageError("--noise applies to --model bbb only")
    overrides: dict[str, Any] = {"hidden": args.hidden, "epochs": args.epochs,
                                 "batch_size": args.batch_size, "lr": args.lr}
    if args.noise is not None:
        overrides["noise"] = args.noise
    make_config(args.model, x.shape[1], **overrides)  # bad options: exit 2, before training
    generator = torch.Generator().manual_seed(args.seed)
    with process_group(args.distributed) as parallel:  # under torchrun: DDP over the ranks
        try:  # the inputs are valid by now: what fails here is the run (exit 1)
            fitted, history = fit(args.model, x, y, generator=generator, progress=True,
                                  nonfinite=args.nonfinite, feature_names=features,
                                  target_name=target, distributed=args.distributed,
                                  **overrides)
        except NonFiniteLossError as exc:
            raise TrainingError(str(exc).replace("nonfinite='skip'", "--nonfinite skip")
                                .replace("(lr=", "(--lr ")) from exc
        except (ValueError, TypeError) as exc:
            raise TrainingError(f"training failed ({str(exc).strip().splitlines()[0]}); lower "
                                "the learning rate (--lr)") from exc
        processes = get_world_size() if parallel else 1
    if not is_main_process():
        return EXIT_OK  # only rank 0 writes the model and reports
    if not all(bool(torch.isfinite(t).all()) for t in fitted.state_dict().values()):
        raise TrainingError("training produced NaN/inf weights (steps skipped under "
                            "--nonfinite skip did not prevent it); lower the learning rate (--lr)")
    # No timings in the files: two runs with the same --seed write identical bytes.
    io.save(fitted, args.out, force=args.force,
            metadata={"num_samples": args.samples, "seed": args.seed,
                      "final_loss": history.loss[-1],
                      "n_train": int(x.shape[0]), "processes": processes})
    on = f" on {processes} processes" if processes > 1 else ""
    print(f"trained {args.model} on {x.shape[0]} rows x {x.shape[1]} features in "
          f"{history.seconds:.1f}s{on} (final loss {history.loss[-1]:.4f}); saved to {args.out}")
    return EXIT_OK


def _model_samples(model_dir: Path, requested: int | None) -> int:
    """``--samples``, else the model's ``metadata.num_samples`` (validated), else 1000."""
    if requested is not None:
        return requested
    from varbayes import io

    return int(io.read_config(model_dir)["metadata"].get("num_samples", 1000))


def _load_inputs(fitted: Any, path: Any, target: str | None = None) -> Any:
    from varbayes.data import read_csv

    features = fitted.feature_names
    if features is None:
        raise UsageError("this model was saved without feature names; it cannot read a CSV")
    return read_csv(path, target=target, features=features)


def _cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from varbayes import _atomic, io
    from varbayes.data.csvstream import CSVChunkReader, CSVChunkWriter, predict_chunk_rows
    from varbayes.predictive import prediction_columns

    _atomic.check_file_out(args.out, force=args.force)  # before any work
    fitted = io.load(args.model_dir)
    if fitted.feature_names is None:
        raise UsageError("this model was saved without feature names; it cannot read a CSV")
    samples = _model_samples(args.model_dir, args.samples)
    # Stream the rows: memory is bounded by one chunk's samples, not by rows x samples.
    width = max([1, *fitted.config["hidden"], *(fitted.config.get("noise_hidden") or [])])
    chunk_rows, forward_rows = predict_chunk_rows(samples, width)
    out_names = ["mean", "std", "lower", "median", "upper", "aleatoric_std"]
    if fitted.has_epistemic:
        out_names.append("epistemic_std")
    with CSVChunkReader(_source(args.input), fitted.feature_names, chunk_rows=chunk_rows) as reader:
        clash = sorted(set(reader.header) & set(out_names))  # names as normalised by the reader
        if clash:
            raise UsageError(f"{reader.name} already has column(s) {clash}; rename them first")
        with CSVChunkWriter(args.out, [*reader.header, *out_names], force=args.force) as writer:
            for x, rows in reader.chunks():
                # A fresh generator per chunk: every row sees the same weight draws.
                pred = fitted.predict(x, samples, chunk_size=forward_rows,
                                      generator=torch.Generator().manual_seed(args.seed))
                # Non-finite predictions raise ValueError naming the row: exit 2, and the
                # writer removes its temporary file, so nothing is left at --out.
                where = [f"{args.input}, row {n}" for n in reader.chunk_lines]
                writer.write(rows, prediction_columns(pred, args.level,
                                                      epistemic=fitted.has_epistemic,
                                                      row_names=where))
    dest = "standard output" if args.out == _atomic.STDOUT else args.out
    print(f"wrote {writer.rows_written} predictions to {dest}", file=sys.stderr)
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from varbayes import io
    from varbayes.metrics import evaluate

    fitted = io.load(args.model_dir)
    target = args.target or fitted.target_name
    if target is None:
        raise UsageError("this model was saved without a target name; pass --target")
    table = _load_inputs(fitted, _source(args.data), target=target)
    samples = _model_samples(args.model_dir, args.samples)
    pred = fitted.predict(table.x, samples, generator=torch.Generator().manual_seed(args.seed),
                          chunk_size=4096)
    scores = evaluate(table.y, pred, level=args.level)
    pct = f"{100 * args.level:g}".replace(".", "_")
    scores = {"rmse": scores["rmse"], "nll": scores["nll"], "crps": scores["crps"],
              f"coverage_{pct}": scores[f"coverage_{pct}"],
              f"interval_width_{pct}": scores[f"interval_width_{pct}"],
              "calibration_error": scores["calibration_error"], "n": int(table.x.shape[0])}
    if args.json:
        print(json.dumps(scores))
    else:
        for key, value in scores.items():
            print(f"{key:<20} {value:.6g}" if isinstance(value, float) else f"{key:<20} {value}")
    return EXIT_OK


def _cmd_benchmark(args: argparse.Namespace) -> int:
    if args.benchmark == "uci":
        from varbayes.benchmarks.uci import run_uci_command

        return run_uci_command(args)
    from varbayes.benchmarks.speed import run_speed_command

    return run_speed_command(args)


_COMMANDS = {"demo": _cmd_demo, "fit": _cmd_fit, "predict": _cmd_predict,
             "evaluate": _cmd_evaluate, "benchmark": _cmd_benchmark}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``varbayes`` command; returns the exit code."""
    from varbayes import _atomic

    parser = build_parser()
    args = parser.parse_args(argv)
    try:  # SIGTERM/SIGHUP raise Terminated, so partial outputs are removed as for Ctrl-C
        with _atomic.terminate_on_signals():
            return _COMMANDS[args.command](args)
    except (KeyboardInterrupt, _atomic.Terminated) as exc:
        _atomic.cleanup()
        signum = getattr(exc, "signum", 2)
        what = str(exc) or "interrupted by SIGINT"
        print(f"varbayes: error: {what}; temporary files removed", file=sys.stderr)
        return 128 + signum
    except Exception as exc:  # noqa: BLE001 - mapped to exit codes below
        if args.debug:
            raise
        from varbayes.infer import NonFiniteLossError

        if isinstance(exc, NonFiniteLossError):
            code = EXIT_FAILURE
        elif isinstance(exc, (ValueError, TypeError, OSError, UsageError)):
            code = EXIT_USAGE
        else:
            code = EXIT_FAILURE
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
            message = f"{message}: {exc.filename}"
        print(f"varbayes: error: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
