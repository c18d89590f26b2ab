"""The UCI-protocol row of ``varbayes benchmark speed`` (issue 12)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from varbayes.benchmarks.uci_scale import format_uci_scale, run_uci_scale, write_friedman_uci
from varbayes.data import load_uci


def test_friedman_data_set_is_in_the_uci_layout(tmp_path: Path) -> None:
    name = write_friedman_uci(tmp_path, 200, 3)
    split = load_uci(name, 2, tmp_path)
    assert split.x_train.shape == (180, 10) and split.x_test.shape == (20, 10)
    assert split.n_hidden == 50
    train = {tuple(r) for r in np.round(split.x_train, 6)}
    assert not train & {tuple(r) for r in np.round(split.x_test, 6)}  # disjoint rows


def test_uci_scale_row_reports_splits_and_test_ll() -> None:
    row = run_uci_scale(300, 2, quick=True)
    assert row["rows"] == 300 and row["splits"] == 2 and row["quick"]
    assert len(row["ll"]) == 2 and np.isfinite(row["ll"]).all()
    assert row["test_ll"] == np.mean(row["ll"])
    assert 0 < row["seconds_per_split"] <= row["seconds"]
    line = format_uci_scale(row)
    assert line.startswith("UCI protocol at scale: friedman1 300 rows, 2 splits") and "LL" in line
