"""coverage_sd: how far one fit's coverage lands from its level, against a Monte-Carlo run of the
spread factor's rule, and where fit records it and the CLI says it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import norm

from varbayes.calibration import coverage_sd
from varbayes.cli import main
from varbayes.kinds import calibrate, fit


def test_coverage_sd_is_the_beta_standard_deviation() -> None:
    assert coverage_sd(20) == pytest.approx(math.sqrt(0.09 / 22))  # 0.064
    assert coverage_sd(200) == pytest.approx(0.0211, abs=1e-4)
    # Beta(k, m + 1 - k) with k = 27 of m = 29 rows: sqrt(k (m + 1 - k) / ((m + 1)^2 (m + 2)))
    assert coverage_sd(29) == pytest.approx(math.sqrt(27 * 3 / (30 ** 2 * 31)))
    assert coverage_sd(98, level=0.5) == pytest.approx(0.05)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="rows must be a positive integer"):
            coverage_sd(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="level must lie in"):
        coverage_sd(20, level=1.0)


@pytest.mark.parametrize("rows", [29, 20])
def test_coverage_sd_matches_the_spread_factors_rule(rows: int) -> None:
    """The factor is the rank-0.9 (m + 1) score of m held-out rows (numpy's "weibull"
    quantile, as ``kinds.members.spread_factor`` takes it); the share of new rows it covers,
    over 4,000 independent sets of m rows, has mean 0.90 and the sd ``coverage_sd(m)``.

    Scores |N(0, 1)|, so the share a factor f covers is 2 Phi(f) - 1 exactly. Tolerances: the
    mean within 0.005 (the Monte-Carlo s.e. is 0.054 / sqrt(4000) = 0.00085: 5.9 s.e.), the sd
    within 6 % (s.e. of a sample sd about 1.3 % here: 4.6 s.e.); with the seed fixed the test
    is deterministic, and its false-positive rate over seeds is below 1e-5. At m = 20 the rank
    18.9 is interpolated, so the rule is near, not exactly, Beta: still within 6 %.
    """
    rng = np.random.default_rng(0)
    scores = np.abs(rng.normal(size=(4000, rows)))
    factors = np.quantile(scores, 0.9, axis=1, method="weibull")
    covered = 2 * norm.cdf(factors) - 1
    assert abs(covered.mean() - 0.9) < 0.005
    assert covered.std(ddof=1) == pytest.approx(coverage_sd(rows), rel=0.06)


def _data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 2))
    return x, x[:, 0] + 0.5 * rng.normal(size=n)


def test_fit_records_the_rows_its_coverage_rests_on() -> None:
    x, y = _data(200)
    fitted, _ = fit("bbb", x, y, epochs=16, early_stopping=True,
                    generator=torch.Generator().manual_seed(0))
    rows = int(fitted.validation_rows.numel())
    assert fitted.fit_info["factor_rows"] == rows == 20
    assert fitted.fit_info["coverage_sd"] == pytest.approx(coverage_sd(20))
    calibrated, _ = fit("bbb", x, y, epochs=16, early_stopping=True, calibration="conformal",
                        generator=torch.Generator().manual_seed(0))
    n_cal = calibrated.fit_info["calibration"]["n"]  # the map's rows set the coverage now
    assert calibrated.fit_info["coverage_sd"] == pytest.approx(coverage_sd(n_cal))
    plain, _ = fit("bbb", x, y, epochs=4)  # no validation part: no factor, nothing to say
    assert "coverage_sd" not in plain.fit_info


def test_removing_a_map_gives_the_coverage_back_to_the_factors_rows() -> None:
    x, y = _data(200)
    fitted, _ = fit("bbb", x, y, epochs=16, early_stopping=True,
                    generator=torch.Generator().manual_seed(0))
    plain, _ = fit("bbb", x, y, epochs=4)
    for model, factor_sd in ((fitted, coverage_sd(20)), (plain, None)):
        calibrate(model, x[:50], y[:50], "conformal")
        assert model.fit_info["calibration"]["n"] == 50
        assert model.fit_info["coverage_sd"] == pytest.approx(coverage_sd(50))
        calibrate(model, None, None, None)
        assert "calibration" not in model.fit_info
        assert model.fit_info.get("coverage_sd") == (
            None if factor_sd is None else pytest.approx(factor_sd))


def test_cli_fit_says_how_far_one_fit_may_land(tmp_path: Path, capsys) -> None:
    x, y = _data(300)
    data = tmp_path / "d.csv"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": y}).to_csv(data, index=False)
    args = ["fit", str(data), "--target", "y", "--model", "bbb", "--epochs", "16"]
    assert main([*args, "--out", str(tmp_path / "m")]) == 0
    err = capsys.readouterr().err
    assert "calibrated on 30 held-out rows" in err and "give or take 0.05" in err
    assert main([*args, "--validation-fraction", "0.8", "--out", str(tmp_path / "m2")]) == 0
    assert "held-out rows" not in capsys.readouterr().err  # 240 rows: sd 0.019, no note
