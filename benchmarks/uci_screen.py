"""Screen cheaper UCI schedules: CPU time and paired test LL against the runner as it is.

Runs ``run_uci_benchmark`` (hetero, all data sets, all splits) with one variant applied, on one
torch thread, and writes the run's JSON (as ``varbayes benchmark uci --out``) plus its CPU time.
``--summarise`` reads such files and writes the per-data-set paired differences (variant minus
``baseline``, split by split; mean ± standard error over the splits) and the CPU times.

    export OMP_NUM_THREADS=1 D=../shared/data/uci
    python benchmarks/uci_screen.py --data-dir $D --variant baseline --out runs/baseline.json
    python benchmarks/uci_screen.py --data-dir $D --variant batch256 --out runs/batch256.json
    python benchmarks/uci_screen.py --summarise runs/*.json --out benchmarks/results/uci_screen.json

Variants: ``baseline`` (the runner unchanged), ``batch256`` / ``batch512`` (above 512 training
rows, the schedule's steps on mini-batches of about 256 / 512 rows, ``uci_stack.step_schedule``),
``reparam`` (one draw of every weight per step instead of the local reparameterisation).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import varbayes.benchmarks.uci_stack as uci_stack  # noqa: E402
from varbayes.benchmarks.uci_run import run_uci_benchmark  # noqa: E402

#: variant -> (FULL_BATCH_ROWS, MINI_BATCH, model overrides)
VARIANTS: dict[str, tuple[int, int, dict[str, Any] | None]] = {
    "baseline": (4096, 1024, None),
    "batch256": (512, 256, None),
    "batch512": (512, 512, None),
    "reparam": (4096, 1024, {"estimator": "reparam"}),
}


def run(variant: str, data_dir: Path, out: Path) -> None:
    full, batch, overrides = VARIANTS[variant]
    uci_stack.FULL_BATCH_ROWS, uci_stack.MINI_BATCH = full, batch
    cpu, wall = time.process_time(), time.perf_counter()
    res = run_uci_benchmark(data_dir, "all", progress=False, overrides=overrides)
    res["screen"] = {"variant": variant, "FULL_BATCH_ROWS": full, "MINI_BATCH": batch,
                     "overrides": overrides, "cpu_seconds": time.process_time() - cpu,
                     "wall_seconds": time.perf_counter() - wall}
    out.write_text(json.dumps(res, indent=1, default=str))


def _paired(a: list[float], b: list[float]) -> dict[str, float]:
    d = [x - y for x, y in zip(a, b, strict=True)]
    m = sum(d) / len(d)
    se = math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1) / len(d))
    return {"mean": m, "stderr": se}


def summarise(paths: list[Path]) -> dict[str, Any]:
    runs = {r["screen"]["variant"]: r for r in (json.loads(p.read_text()) for p in paths)}
    base = runs["baseline"]
    out: dict[str, Any] = {}
    for variant, res in runs.items():
        row: dict[str, Any] = {k: res["screen"][k] for k in
                               ("FULL_BATCH_ROWS", "MINI_BATCH", "overrides", "cpu_seconds",
                                "wall_seconds")}
        row["cpu_ratio_to_baseline"] = (base["screen"]["cpu_seconds"]
                                        / res["screen"]["cpu_seconds"])
        for name, d in res["datasets"].items():
            ref = {s["split"]: s for s in base["datasets"][name]["splits"]}
            splits = [s["split"] for s in d["splits"]]
            row[name] = {
                "ll": d["summary"]["ll"], "rmse": d["summary"]["rmse"],
                "ll_per_split": [s["ll"] for s in d["splits"]],
                **{f"d_{k}": _paired([s[k] for s in d["splits"]],
                                     [ref[i][k] for i in splits]) for k in ("ll", "rmse")},
            }
        out[variant] = row
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", choices=sorted(VARIANTS))
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "uci")
    p.add_argument("--summarise", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    if args.summarise:
        args.out.write_text(json.dumps(summarise(args.summarise), indent=1) + "\n")
    elif args.variant:
        run(args.variant, args.data_dir, args.out)
    else:
        p.error("give --variant or --summarise")
    return 0


if __name__ == "__main__":
    sys.exit(main())
