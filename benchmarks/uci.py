"""Regenerate the UCI results table of docs/benchmarks.md.

Runs ``varbayes.benchmarks.uci_run.run_uci_benchmark`` on every data set under the data directory
for each model (``hetero``, ``bbb`` with learned noise, ``mle`` with its residual variance),
writes one JSON file per model, and rewrites the block between the markers
``<!-- uci-results:begin -->`` and ``<!-- uci-results:end -->`` of docs/benchmarks.md.

    python benchmarks/uci.py                       # the full run (all splits), ~20-30 min
    python benchmarks/uci.py --quick               # 2 splits, a tenth of the epochs (smoke)
    python benchmarks/uci.py --table-only          # re-render the table from the JSON files

It is equivalent to ``varbayes benchmark uci --dataset all --model M --out R.json`` for each M.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from varbayes import __version__  # noqa: E402
from varbayes.benchmarks.uci_run import format_summary, run_uci_benchmark, write_json  # noqa: E402

MODELS = ("hetero", "bbb", "mle")
BEGIN, END = "<!-- uci-results:begin -->", "<!-- uci-results:end -->"
#: folder name -> (name in the papers, published figures)
PUBLISHED: dict[str, tuple[str, dict[str, str]]] = {
    "bostonHousing": ("boston", {
        "VI": "-2.90 ± 0.07", "PBP": "-2.57 ± 0.09", "Dropout": "-2.46 ± 0.06",
        "Ens": "-2.41 ± 0.25", "DVI": "-2.41 ± 0.02", "PBP RMSE": "3.01 ± 0.18"}),
    "concrete": ("concrete", {
        "VI": "-3.39 ± 0.02", "PBP": "-3.16 ± 0.02", "Dropout": "-3.04 ± 0.02",
        "Ens": "-3.06 ± 0.18", "DVI": "-3.06 ± 0.01", "PBP RMSE": "5.67 ± 0.09"}),
    "energy": ("energy", {
        "VI": "-2.39 ± 0.03", "PBP": "-2.04 ± 0.02", "Dropout": "-1.99 ± 0.02",
        "Ens": "-1.38 ± 0.22", "DVI": "-1.01 ± 0.06", "PBP RMSE": "1.80 ± 0.05"}),
    "wine-quality-red": ("wine-red", {
        "VI": "-0.98 ± 0.01", "PBP": "-0.97 ± 0.01", "Dropout": "-0.93 ± 0.01",
        "Ens": "-0.94 ± 0.12", "DVI": "-0.90 ± 0.01", "PBP RMSE": "0.64 ± 0.01"}),
    "yacht": ("yacht", {
        "VI": "-3.43 ± 0.16", "PBP": "-1.63 ± 0.02", "Dropout": "-1.55 ± 0.03",
        "Ens": "-1.18 ± 0.21", "DVI": "-0.47 ± 0.03", "PBP RMSE": "1.02 ± 0.05"}),
}  # fmt: skip


def _mean(text: str) -> float:
    return float(text.split("±")[0])


def _cell(summary: dict[str, Any], key: str, digits: int = 2) -> str:
    s = summary[key]
    se = "" if s["stderr"] is None else f" ± {s['stderr']:.{digits}f}"
    return f"{s['mean']:.{digits}f}{se}"


def render(results: dict[str, dict[str, Any]], command: str) -> str:
    """Markdown tables of ``results`` (model -> run_uci_benchmark output)."""
    names = sorted({n for r in results.values() for n in r["datasets"]},
                   key=lambda n: (n not in PUBLISHED, PUBLISHED.get(n, (n,))[0]))
    models = [m for m in MODELS if m in results] + [m for m in results if m not in MODELS]
    label = {n: PUBLISHED.get(n, (n, {}))[0] for n in names}
    lines = ["**Test log-likelihood** (mean per-point log predictive density, data units; "
             "higher is better; mean ± standard error over splits)", ""]
    pub_cols = ["VI", "PBP", "Dropout", "Ens", "DVI"]
    lines.append("| data set | splits | " + " | ".join(f"varbayes `{m}`" for m in models)
                 + " | VI (Graves) | PBP | MC dropout | Ensembles (5) | DVI |")
    lines.append("|---" * (2 + len(models) + len(pub_cols)) + "|")
    for n in names:
        pub = PUBLISHED.get(n, (n, {}))[1]
        ours = [_cell(results[m]["datasets"][n]["summary"], "ll") if n in results[m]["datasets"]
                else "–" for m in models]
        splits = max(results[m]["datasets"][n]["n_splits"] for m in models
                     if n in results[m]["datasets"])
        lines.append(f"| {label[n]} | {splits} | " + " | ".join(ours) + " | "
                     + " | ".join(pub.get(c, "–") for c in pub_cols) + " |")
    lines += ["", "**Test RMSE** (data units; lower is better)", "",
              "| data set | " + " | ".join(f"varbayes `{m}`" for m in models) + " | PBP |",
              "|---" * (2 + len(models)) + "|"]
    for n in names:
        ours = [_cell(results[m]["datasets"][n]["summary"], "rmse") if n in results[m]["datasets"]
                else "–" for m in models]
        pub = PUBLISHED.get(n, (n, {}))[1].get("PBP RMSE", "–")
        lines.append(f"| {label[n]} | " + " | ".join(ours) + f" | {pub} |")
    lines += ["", "**Calibration and cost**: 90 % interval coverage, CRPS (data units), "
              "seconds per split (selection + refit)", "",
              "| data set | " + " | ".join(f"`{m}` cov90 / CRPS / s" for m in models) + " |",
              "|---" * (1 + len(models)) + "|"]
    for n in names:
        cells = []
        for m in models:
            if n not in results[m]["datasets"]:
                cells.append("–")
                continue
            s = results[m]["datasets"][n]["summary"]
            cells.append(f"{s['coverage_90']['mean']:.2f} / {s['crps']['mean']:.2f} / "
                         f"{s['train_seconds']['mean']:.1f}")
        lines.append(f"| {label[n]} | " + " | ".join(cells) + " |")
    if "hetero" in results:
        lines += ["", "**Goals of the default `hetero` model** (means compared; ours to 3 digits)",
                  "", "| data set | `hetero` LL | LL > VI | LL > PBP | LL > MC dropout | LL > DVI "
                  "| `hetero` RMSE | RMSE ≤ PBP |", "|---|---|---|---|---|---|---|---|"]
        for n in names:
            pub = PUBLISHED.get(n, (n, {}))[1]
            if not pub or n not in results["hetero"]["datasets"]:
                continue
            s = results["hetero"]["datasets"][n]["summary"]
            ll, rmse = s["ll"]["mean"], s["rmse"]["mean"]
            marks = ["yes" if ll > _mean(pub[c]) else "**no**"
                     for c in ("VI", "PBP", "Dropout", "DVI")]
            rmse_ok = "yes" if rmse <= _mean(pub["PBP RMSE"]) else "**no**"
            lines.append(f"| {label[n]} | {ll:.3f} | " + " | ".join(marks)
                         + f" | {rmse:.3f} | {rmse_ok} |")
    meta = next(iter(results.values()))["run"]
    total = sum(r["run"]["wall_seconds"] for r in results.values())
    per_model = ", ".join(f"`{m}` {results[m]['run']['wall_seconds'] / 60:.1f} min"
                          for m in models)
    lines += ["", f"Run: `{command}` — {total / 60:.1f} min wall clock in total ({per_model}); "
              f"varbayes {meta['varbayes']}, torch {meta['torch']}, {meta['threads']} torch "
              f"thread(s), {meta['cpus']} CPU(s) ({meta['machine']}) shared with other jobs: "
              f"load average (1, 5, 15 min) {meta['load_start']} when the first model started, "
              f"{meta['load_end']} when it ended."]
    return "\n".join(lines)


def update_doc(doc: Path, table: str) -> None:
    """Replace the block between the markers of ``doc`` by ``table``."""
    text = doc.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{doc} lacks the markers {BEGIN} and {END}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "uci")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--splits", type=int, default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: the networks are too small to gain from more)")
    p.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    p.add_argument("--table-only", action="store_true", help="re-render from the JSON files")
    p.add_argument("--no-doc", action="store_true", help="do not touch the markdown file")
    args = p.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    torch.set_num_threads(args.threads)
    suffix = "_quick" if args.quick else ""
    results: dict[str, dict[str, Any]] = {}
    for m in models:
        path = args.results_dir / f"uci_{m}{suffix}.json"
        if args.table_only:
            results[m] = json.loads(path.read_text())
            continue
        load_start = " ".join(f"{v:.1f}" for v in os.getloadavg())
        start = time.perf_counter()
        res = run_uci_benchmark(args.data_dir, "all", splits=args.splits, model=m,
                                quick=args.quick, seed=args.seed, progress=True)
        res["run"] = {
            "wall_seconds": time.perf_counter() - start, "varbayes": __version__,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
            "python": platform.python_version(), "load_start": load_start,
            "load_end": " ".join(f"{v:.1f}" for v in os.getloadavg()),
        }  # fmt: skip
        print(format_summary(res), flush=True)
        write_json(path, res)
        results[m] = res
    command = "python benchmarks/uci.py" + (" --quick" if args.quick else "")
    table = render(results, command)
    print(table)
    if not args.no_doc:
        update_doc(args.doc, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
