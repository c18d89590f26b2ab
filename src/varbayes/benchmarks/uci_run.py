"""``varbayes benchmark uci``: the protocol of :mod:`varbayes.benchmarks.uci` over data sets.

By default the splits of a data set are trained together on the vectorised engine
(:func:`varbayes.benchmarks.uci_stack.fit_splits`) where the model allows it (``hetero``,
``bbb``); ``stacked=False`` (``--one-at-a-time``) runs them one by one with
:func:`~varbayes.benchmarks.uci.fit_split`, as before. A split's result is the same either way
up to floating-point rounding (see :mod:`varbayes.benchmarks.uci_stack`).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from varbayes import _atomic
from varbayes._threads import available_threads, ordered_map
from varbayes.benchmarks.uci import (
    METRICS,
    MODEL_OVERRIDES,
    QUICK_SAMPLES,
    QUICK_SPLITS,
    SCHEDULES,
    TEST_SAMPLES,
    VALIDATION_FRACTION,
    VALIDATION_SAMPLES,
    _scaled,
    fit_split,
)
from varbayes.benchmarks.uci_stack import fit_splits, stackable
from varbayes.data import UCISplit, list_uci, load_uci, uci_n_splits, uci_root
from varbayes.kinds import ModelKind

__all__ = ["format_summary", "run_uci_benchmark", "run_uci_command", "write_json"]

#: Splits trained together at most (memory grows with it; 20 = the standard splits).
STACK_SPLITS = 20


def _summary(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for key in METRICS:
        values = np.array([r[key] for r in records], dtype=np.float64)
        se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
        out[key] = {"mean": float(values.mean()), "stderr": se}
    return out


def _protocol(kind: str, quick: bool, seed: int,
              overrides: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "model": kind, "quick": quick, "seed": seed, "overrides": overrides or {},
        "model_settings": MODEL_OVERRIDES[kind],
        "schedule": [vars(s) for s in _scaled(SCHEDULES[kind], quick)],
        "validation_fraction": VALIDATION_FRACTION, "validation_samples": VALIDATION_SAMPLES,
        "test_samples": QUICK_SAMPLES if quick else TEST_SAMPLES, "interval_level": 0.9,
        "selection": "checkpoint of the schedule with the highest validation log-likelihood "
                     "(varbayes.infer.early_stopping.BestCheckpoint)",
        "ll": "mean per-point log predictive density of the mixture, data units",
        "stderr": "std(ddof=1) / sqrt(number of splits)",
    }  # fmt: skip


def _datasets(root: Path, dataset: str) -> list[str]:
    if not root.is_dir():
        raise FileNotFoundError(
            f"UCI data directory {root} does not exist; pass --data-dir DIR with one folder per "
            "data set (DIR/<name>/data.txt or DIR/<name>/data/data.txt)"
        )
    if dataset.lower() != "all":
        return [dataset]
    if not (names := list_uci(root)):
        raise FileNotFoundError(f"no UCI data set (no <name>/data.txt nor <name>/data/data.txt) "
                                f"in {root}")
    return names


def run_uci_benchmark(
    data_dir: str | os.PathLike[str] | None, dataset: str, *, splits: int | None = None,
    model: str = "hetero", quick: bool = False, seed: int = 0, progress: bool = True,
    overrides: dict[str, Any] | None = None, stacked: bool = True, refit: bool = True,
    workers: int | None = None, n_iter_no_change: int | None = None,
) -> dict[str, Any]:
    """Run the UCI benchmark protocol (module docstring) on one data set or on ``"all"``.

    Parameters
    ----------
    data_dir : path-like or None
        Root of the data sets (see :func:`varbayes.data.uci_root`).
    dataset : str
        Folder name or alias (``"boston"``, ``"wine-red"``, ...), or ``"all"`` for every data set
        found under ``data_dir``.
    splits : int or None, default=None
        Run the first ``splits`` splits (default: all; 2 with ``quick``).
    model : {'hetero', 'bbb', 'mle', 'vi', 'vi_analytic'}, default='hetero'
    quick : bool, default=False
        Smoke run: 2 splits, a tenth of the epochs, 50 predictive draws.
    seed : int, default=0
    progress : bool, default=True
        A tqdm bar per data set on stderr, ticking once per split.
    overrides : dict or None
        Model settings over :data:`MODEL_OVERRIDES` (any key of ``DEFAULTS[model]``).
    stacked : bool, default=True
        Train up to :data:`STACK_SPLITS` splits of a data set together where the model runs on
        the vectorised engine (module docstring); ``False``: one split at a time.
    refit : bool, default=True
        ``False``: test the best validation checkpoint, no refit (stacked runs only; see
        :func:`~varbayes.benchmarks.uci_stack.fit_splits`).
    workers : int or None, default=None
        Data sets trained at once, each on a thread of its own running single-threaded
        operations (default: the process's threads, at most one per data set). With one
        worker the operations use the usual intra-op threads.
    n_iter_no_change : int or None, default=None
        Stop a split's validation run after this many checkpoints without a better validation
        LL (the library's early-stopping rule); ``None``: the whole schedule.

    Returns
    -------
    dict
        ``{"benchmark": "uci", "protocol": {...}, "seconds": float, "datasets": {name:
        {"n_splits": int, "splits": [record, ...], "summary": {metric: {"mean", "stderr"}}}}}``.

    Raises
    ------
    FileNotFoundError
        If ``data_dir`` or a data set's files are missing.
    ValueError
        For an unknown model or an invalid ``splits``.
    """
    try:
        kind = ModelKind(model).value
    except ValueError:
        raise ValueError(f"unknown model {model!r}; expected one of "
                         f"{[k.value for k in ModelKind]}") from None
    if splits is not None and (isinstance(splits, bool) or int(splits) != splits or splits < 1):
        raise ValueError(f"splits must be a positive integer, got {splits!r}")
    root = uci_root(data_dir)
    start = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "uci",
        "protocol": {**_protocol(kind, quick, seed, overrides), "stacked": stacked,
                     "refit": refit, "n_iter_no_change": n_iter_no_change},
        "data_dir": str(root), "datasets": {},
    }
    names = _datasets(root, dataset)
    wanted_of = {}
    for name in names:  # every split count checked before any training
        total = uci_n_splits(name, root)
        wanted_of[name] = splits if splits is not None else (QUICK_SPLITS if quick else total)
        if wanted_of[name] > total:
            raise ValueError(f"--splits {wanted_of[name]} asked for, but {name} has {total} "
                             "splits")

    def one(item: tuple[int, str]) -> tuple[str, dict[str, Any]]:
        position, name = item
        wanted = wanted_of[name]
        records: list[dict[str, Any]] = []
        begun = time.perf_counter()
        with tqdm(total=wanted, desc=f"{name} {kind}", unit="split", disable=not progress,
                  file=sys.stderr, dynamic_ncols=True, position=position) as bar:
            groups, together = _groups(name, root, wanted, kind, stacked, overrides)
            for group in groups:
                if together:
                    done = fit_splits(group, kind, seed=seed, quick=quick, overrides=overrides,
                                      refit=refit, n_iter_no_change=n_iter_no_change)
                else:
                    done = [fit_split(group[0], kind, seed=seed, quick=quick, overrides=overrides,
                                      n_iter_no_change=n_iter_no_change)]
                records.extend(r.record for r in done)
                lls = [r["ll"] for r in records]
                bar.set_postfix(ll=f"{np.mean(lls):.3f}", refresh=False)
                bar.update(len(done))
                data = group[0]
        return data.name, {"n_splits": wanted, "seconds": time.perf_counter() - begun,
                           "splits": records, "summary": _summary(records)}

    # The data sets on all cores at once, each on one thread of its own (every operation
    # single-threaded, so a split's numbers do not depend on the core count); in name order.
    workers = min(available_threads() if workers is None else int(workers), len(names))
    for data_name, entry in ordered_map(one, enumerate(names), max(1, workers)):
        result["datasets"][data_name] = entry
    result["seconds"] = time.perf_counter() - start
    return result


def _groups(name: str, root: Path, wanted: int, kind: str, stacked: bool,
            overrides: dict[str, Any] | None) -> tuple[list[list[UCISplit]], bool]:
    """The first ``wanted`` splits of ``name`` in groups to train together, and whether to."""
    splits = [load_uci(name, i, root) for i in range(wanted)]
    first = splits[0]
    if not (stacked and stackable(kind, first.x_train.shape[1], first.n_hidden, overrides)):
        return [[s] for s in splits], False
    by_shape: dict[tuple[int, int], list[UCISplit]] = {}
    for s in splits:  # the standard splits of a data set all have the same shape
        by_shape.setdefault((len(s.y_train), s.x_train.shape[1]), []).append(s)
    return [group[i : i + STACK_SPLITS] for group in by_shape.values()
            for i in range(0, len(group), STACK_SPLITS)], True


def format_summary(result: dict[str, Any]) -> str:
    """One line per data set: mean ± standard error of the main figures."""
    kind = result["protocol"]["model"]

    def cell(stats: dict[str, float | None], digits: int) -> str:
        se = stats["stderr"]
        return f"{stats['mean']:.{digits}f}" + ("" if se is None else f" ± {se:.{digits}f}")

    lines = []
    for name, res in result["datasets"].items():
        s = res["summary"]
        lines.append(
            f"{name:<18} {kind:<7} splits {res['n_splits']:>2}  RMSE {cell(s['rmse'], 3)}  "
            f"LL {cell(s['ll'], 3)}  cov90 {s['coverage_90']['mean']:.3f}  "
            f"CRPS {cell(s['crps'], 3)}  train {s['train_seconds']['mean']:.1f} s/split"
        )
    return "\n".join(lines)


def write_json(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (see :mod:`varbayes._atomic`)."""
    _atomic.write_text(path, json.dumps(payload, indent=1) + "\n", parents=True)


def run_uci_command(args: Any) -> int:
    """``varbayes benchmark uci``: run, print a summary row per data set, write ``args.out``."""
    if args.out is not None:  # before any work
        _atomic.check_file_out(args.out, force=True, parents=True)
    result = run_uci_benchmark(
        args.data_dir, args.dataset, splits=args.splits, model=args.model, quick=args.quick,
        seed=args.seed, progress=True, stacked=not getattr(args, "one_at_a_time", False),
        refit=not getattr(args, "no_refit", False),
        n_iter_no_change=getattr(args, "n_iter_no_change", None),
    )
    print(format_summary(result))
    print(f"total {result['seconds']:.1f} s")
    if args.out is not None:
        write_json(args.out, result)
        print(f"wrote {args.out}")
    return 0

