"""The ``varbayes`` subcommands, thin over the library; each imports what it uses."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from varbayes.cli.parser import EXIT_OK, TrainingError, UsageError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["COMMANDS"]


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


def _device(args: argparse.Namespace) -> Any:
    """The torch device of ``--device`` (a ``ValueError`` where CUDA is asked for and absent)."""
    from varbayes._device import resolve_device

    return resolve_device(getattr(args, "device", "cpu"))


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
    device = _device(args)  # before reading anything
    family: dict[str, Any] | None = None
    classes: list[str] | None = None
    if args.likelihood != "gaussian" and (args.data is None or args.model != "hetero"
                                          or args.calibration or args.noise):
        raise UsageError(f"--likelihood {args.likelihood} needs a DATA.csv argument and takes "
                         "no --model, --noise or --calibration")
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
        if args.likelihood != "gaussian":
            from varbayes.cli.family import family_fit_data

            x, y, features, target, family, classes = family_fit_data(
                raw, args.likelihood, args.target, features)
        else:
            table = select(raw, args.target, features)
            # a target column was given, so the table has one
            x, y = table.x, cast("np.ndarray", table.y)
            features, target = table.feature_names, cast(str, table.target_name)
        check_X_y(x, y, names=(f"{raw.name} features", f"{raw.name} column {target!r}"))
    if x.shape[0] < 2:
        raise UsageError(f"need at least 2 data rows to fit, got {x.shape[0]}")
    if args.noise is not None and args.model != "bbb":
        raise UsageError("--noise applies to --model bbb only")
    overrides: dict[str, Any] = {"hidden": args.hidden, "epochs": args.epochs,
                                 "batch_size": args.batch_size, "lr": args.lr,
                                 "method": args.method}
    if args.noise is not None:
        overrides["noise"] = args.noise
    for option in ("prior", "prior_scale"):
        if getattr(args, option) is not None:
            if args.model not in ("bbb", "hetero"):
                raise UsageError(f"--{option.replace('_', '-')} applies to --model bbb and "
                                 "hetero only")
            overrides[option] = getattr(args, option)
    if args.n_members is not None:  # hetero, and the family kind of --likelihood
        if args.model != "hetero":
            raise UsageError("--n-members applies to --model hetero and --likelihood models only")
        overrides["n_members"] = args.n_members
    if args.warmup_fraction is not None:
        if args.model != "hetero" or family is not None:
            raise UsageError("--warmup-fraction applies to --model hetero with the gaussian "
                             "likelihood only")
        overrides["warmup_fraction"] = args.warmup_fraction
    if family is not None:  # --likelihood: the family kind, its labels kept with the model
        args.model, overrides = "family", {**overrides, **family, "classes": classes}
    make_config(args.model, x.shape[1], **{k: v for k, v in overrides.items() if k != "classes"})
    generator = torch.Generator().manual_seed(args.seed)
    with process_group(args.distributed) as parallel:  # under torchrun: DDP over the ranks
        try:  # the inputs are valid by now: what fails here is the run (exit 1)
            fitted, history = fit(args.model, x, y, generator=generator, progress=True,
                                  nonfinite=args.nonfinite, feature_names=features,
                                  target_name=target, distributed=args.distributed,
                                  early_stopping=args.early_stopping,
                                  validation_fraction=args.validation_fraction,
                                  n_iter_no_change=args.n_iter_no_change,
                                  calibration=args.calibration, calibration_samples=args.samples,
                                  device=device, **overrides)
        except NonFiniteLossError as exc:
            raise TrainingError(str(exc).replace("nonfinite='skip'", "--nonfinite skip")
                                .replace("(lr=", "(--lr ")) from exc
        except (ValueError, TypeError) as exc:
            if "calibration needs" in str(exc):
                raise UsageError(str(exc).replace("calibrate()", "varbayes calibrate")) from exc
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
    _coverage_note(fitted.fit_info)
    return EXIT_OK


#: One fit's 90 % coverage standard deviation above which ``fit`` says so (fewer than 223 rows).
COVERAGE_NOTE_SD = 0.02


def _coverage_note(info: dict[str, Any]) -> None:
    """Say how far this fit's 90 % coverage may land from 0.90, when its rows are few."""
    sd = info.get("coverage_sd")
    if sd is None or sd <= COVERAGE_NOTE_SD:
        return
    rows = info["calibration"]["n"] if "calibration" in info else info.get("factor_rows")
    print(f"varbayes: note: the intervals are calibrated on {rows} held-out rows: a fit's 90% "
          f"intervals cover 90% of new rows on average, give or take {sd:.2f} for one fit (one "
          "standard deviation); a larger --validation-fraction narrows that "
          "(docs/calibration.md)", file=sys.stderr)


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
    from collections import deque
    from collections.abc import Iterator

    import torch

    from varbayes import _atomic, io
    from varbayes._forked import can_fork, forked_ordered_map
    from varbayes._heap import keep_freed_memory
    from varbayes._threads import available_threads, ordered_map
    from varbayes.data.csvstream import CSVChunkReader, CSVChunkWriter, predict_chunk_rows
    from varbayes.predictive.columns import COLUMNS, ROW_ALIGN, aligned_columns

    _atomic.check_file_out(args.out, force=args.force)  # before any work
    keep_freed_memory()  # every chunk reuses the last one's pages
    fitted = io.load(args.model_dir, map_location=_device(args))
    if fitted.feature_names is None:
        raise UsageError("this model was saved without feature names; it cannot read a CSV")
    samples = _model_samples(args.model_dir, args.samples)
    if fitted.config["kind"] == "family":
        from varbayes.cli.family import predict_family_command

        return predict_family_command(args, fitted, samples, _source(args.input))
    # Stream the rows: memory is bounded by one chunk's samples, not by rows x samples.
    width = max([1, *fitted.config["hidden"], *(fitted.config.get("noise_hidden") or [])])
    chunk_rows, forward_rows = predict_chunk_rows(samples, width, ROW_ALIGN)
    workers = available_threads()
    out_names = [c for c in COLUMNS if fitted.has_epistemic or c != "epistemic_std"]
    with CSVChunkReader(_source(args.input), fitted.feature_names, chunk_rows=chunk_rows) as reader:
        clash = sorted(set(reader.header) & set(out_names))  # names as normalised by the reader
        if clash:
            raise UsageError(f"{reader.name} already has column(s) {clash}; rename them first")
        with CSVChunkWriter(args.out, [*reader.header, *out_names], force=args.force) as writer:
            def columns(chunk: tuple[Any, list[str]]) -> dict[str, Any]:
                x, where = chunk
                # A fresh generator per chunk: every row sees the same weight draws.
                def predict(xs: Any) -> Any:
                    return fitted.predict_calibrated(
                        xs, samples, chunk_size=forward_rows,
                        generator=torch.Generator(fitted.device).manual_seed(args.seed))
                # Non-finite predictions raise ValueError naming the row: exit 2, and the
                # writer removes its temporary file, so nothing is left at --out.
                return aligned_columns(predict, x, args.level, epistemic=fitted.has_epistemic,
                                       row_names=where)

            # Chunks on all cores at once (each row's numbers do not depend on its chunk or
            # the worker count): forked processes where there is fork, else threads; read and
            # written in order here.
            rows_of: deque[list[list[str]]] = deque()

            def chunks() -> Iterator[tuple[Any, list[str]]]:
                for x, rows in reader.chunks():
                    _atomic.check_terminated()
                    rows_of.append(rows)
                    yield x, [f"{args.input}, row {n}" for n in reader.chunk_lines]

            fitted.model.eval()  # once, before the threads: predictive restores this mode
            cpu = fitted.device.type == "cpu"
            forked = cpu and workers > 1 and can_fork()
            mapper = forked_ordered_map if forked else ordered_map
            for cols in mapper(columns, chunks(), workers if cpu else 1):
                writer.write(rows_of.popleft(), cols)
    dest = "standard output" if args.out == _atomic.STDOUT else args.out
    print(f"wrote {writer.rows_written} predictions to {dest}", file=sys.stderr)
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from varbayes import _atomic, io
    from varbayes.calibration import calibration_report
    from varbayes.metrics import evaluate

    if args.plot is not None:
        _atomic.check_file_out(args.plot, force=args.force)  # before any work
    fitted = io.load(args.model_dir, map_location=_device(args))
    target = args.target or fitted.target_name
    if target is None:
        raise UsageError("this model was saved without a target name; pass --target")
    if fitted.config["kind"] == "family":
        if args.plot is not None:
            raise UsageError("--plot applies to Gaussian models only")
        from varbayes.cli.family import evaluate_family_command

        return evaluate_family_command(args, fitted, _source(args.data), target,
                                       _model_samples(args.model_dir, args.samples))
    table = _load_inputs(fitted, _source(args.data), target=target)
    samples = _model_samples(args.model_dir, args.samples)
    pred = fitted.predict_calibrated(table.x, samples, chunk_size=4096,
                                     generator=torch.Generator(fitted.device).manual_seed(args.seed))
    scores = evaluate(table.y, pred, level=args.level)
    pct = f"{100 * args.level:g}".replace(".", "_")
    scores = {"rmse": scores["rmse"], "nll": scores["nll"], "crps": scores["crps"],
              f"coverage_{pct}": scores[f"coverage_{pct}"],
              f"interval_width_{pct}": scores[f"interval_width_{pct}"],
              "calibration_error": scores["calibration_error"], "n": int(table.x.shape[0]),
              "calibration": None if fitted.calibration is None else fitted.calibration.method}
    if args.plot is not None:
        from varbayes.plots import plot_calibration_report

        fig = plot_calibration_report(table.y, pred, title=f"{args.model_dir} on {args.data}")
        with _atomic.OutputFile(args.plot, force=args.force, binary=True) as out:
            fig.savefig(out.fh, format="png", dpi=90)
    if args.json:
        print(json.dumps({**scores, **calibration_report(table.y, pred)}))
    else:
        for key, value in scores.items():
            print(f"{key:<20} {value:.6g}" if isinstance(value, float) else f"{key:<20} {value}")
    return EXIT_OK


def _cmd_calibrate(args: argparse.Namespace) -> int:
    import torch

    from varbayes import io
    from varbayes.calibration.maps import ScaleMap
    from varbayes.kinds import calibrate

    _require_model_out(args.out, args.force)
    fitted = io.load(args.model_dir)
    target = args.target or fitted.target_name
    if target is None:
        raise UsageError("this model was saved without a target name; pass --target")
    table = _load_inputs(fitted, _source(args.data), target=target)
    samples = _model_samples(args.model_dir, args.samples)
    mapping = calibrate(fitted, table.x, table.y, args.method, num_samples=samples,
                        generator=torch.Generator().manual_seed(args.seed))
    io.save(fitted, args.out, force=args.force,
            metadata={**fitted.metadata, "fit": fitted.fit_info})
    print(f"fitted a {args.method} map on {table.x.shape[0]} rows; saved to {args.out}"
          + (f" (factor {mapping.factor:.4g})" if isinstance(mapping, ScaleMap) else ""))
    return EXIT_OK


def _cmd_benchmark(args: argparse.Namespace) -> int:
    if args.benchmark == "uci":
        from varbayes.benchmarks.uci_run import run_uci_command

        return run_uci_command(args)
    from varbayes.benchmarks.speed import run_speed_command

    return run_speed_command(args)


COMMANDS = {"demo": _cmd_demo, "fit": _cmd_fit, "predict": _cmd_predict,
             "evaluate": _cmd_evaluate, "calibrate": _cmd_calibrate,
             "benchmark": _cmd_benchmark}
