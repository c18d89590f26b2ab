"""The UCI protocol at 10k-45k rows: one split at a time (before) against splits trained together.

No UCI data set of that size is in ``../shared``; this writes one in the UCI layout from
scikit-learn's ``make_friedman1`` (10 features, 5 of them used) with heteroscedastic noise
``(0.5 + |x_1|) * N(0, 1)``, 90/10 splits like the standard ones, and runs
``varbayes.benchmarks.uci_run.run_uci_benchmark`` on it both ways, back to back::

    OMP_NUM_THREADS=1 python benchmarks/uci_scale.py --rows 10000 --splits 20 --old-splits 1
    OMP_NUM_THREADS=1 python benchmarks/uci_scale.py --rows 45000 --splits 20 --old-splits 1 \\
        --old-quick

``--step-factor F`` sets ``uci_stack.STEP_FACTOR`` for the splits trained together (the
mini-batch schedule's steps and learning rates as multiples of the full-batch ones; 1 was the
schedule before 2026-12-02). The comparison with full batch in ``docs/performance.md``::

    OMP_NUM_THREADS=1 python benchmarks/uci_scale.py --rows 10000 --splits 12 --old-splits 12
    OMP_NUM_THREADS=1 python benchmarks/uci_scale.py --rows 10000 --splits 12 --old-splits 1 \
        --step-factor 1

``--old-quick`` runs the one-at-a-time path with a tenth of the epochs (its seconds are then
multiplied by 10 in the printout, and marked so): a full one at 45k rows takes 6 min or more.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from varbayes.benchmarks import uci_stack  # noqa: E402
from varbayes.benchmarks.uci_run import run_uci_benchmark  # noqa: E402
from varbayes.benchmarks.uci_scale import write_friedman_uci as write_dataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--splits", type=int, default=20, help="splits trained together")
    parser.add_argument("--old-splits", type=int, default=1, help="splits one at a time")
    parser.add_argument("--old-quick", action="store_true")
    parser.add_argument("--step-factor", type=int, default=uci_stack.STEP_FACTOR,
                        help="uci_stack.STEP_FACTOR for the splits trained together")
    parser.add_argument("--out", type=Path, default=None, help="JSON with both results")
    args = parser.parse_args()
    uci_stack.STEP_FACTOR = args.step_factor
    with tempfile.TemporaryDirectory() as tmp:
        name = write_dataset(Path(tmp), args.rows, max(args.splits, args.old_splits))
        runs = {}
        for label, kw in (("before", dict(splits=args.old_splits, stacked=False,
                                          quick=args.old_quick)),
                          ("after", dict(splits=args.splits))):
            start, cpu = time.perf_counter(), time.process_time()
            result = run_uci_benchmark(tmp, name, progress=False, **kw)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            recs = result["datasets"][name]["splits"]
            scale = 10 if kw.get("quick") else 1
            runs[label] = {"wall": wall, "cpu": cpu, "splits": len(recs),
                           "per_split": wall / len(recs) * scale,
                           "ll": [r["ll"] for r in recs], "rmse": [r["rmse"] for r in recs],
                           "validation_ll": [r["selected"]["validation_ll"] for r in recs],
                           "quick": bool(kw.get("quick"))}
            print(f"{label:<7} {args.rows} rows  {len(recs)} split(s)  {wall:.1f} s  "
                  f"{runs[label]['per_split']:.1f} s/split{' (x10, quick)' if scale > 1 else ''}"
                  f"  CPU {cpu:.1f} s"
                  f"  test LL split 0 {recs[0]['ll']:.4f}  mean {np.mean(runs[label]['ll']):.4f}",
                  flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps({"rows": args.rows, "step_factor": args.step_factor,
                                        **runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
