"""The predict-at-scale row of ``varbayes benchmark speed`` (issue 12)."""

from __future__ import annotations

from varbayes.benchmarks.predict_scale import format_predict_scale, run_predict_scale


def test_predict_scale_row_times_forward_and_quantiles() -> None:
    row = run_predict_scale(700, 30)
    assert row["rows"] == 700 and row["samples"] == 30
    assert 0 < row["forward_seconds"] and 0 < row["quantile_seconds"]
    assert row["forward_seconds"] + row["quantile_seconds"] <= row["seconds"]
    line = format_predict_scale(row)
    assert line.startswith("predict at scale: 700 rows x 30 draws") and "rows/s" in line
