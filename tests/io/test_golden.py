"""Committed format-1 model directories (written by varbayes 0.1.0) keep loading, unchanged.

``tests/golden/format1/<kind>/`` are real saved models and ``expected.json`` their predictions
at fixed inputs under a fixed seed, both made once by ``tests/golden/make_format1.py`` with
0.1.0. A later version must load them and predict the same numbers. The tolerance (1e-5
relative) allows a different order of float32 operations, not a different model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from varbayes import io

HERE = Path(__file__).resolve().parents[1] / "golden" / "format1"
EXPECTED = json.loads((HERE / "expected.json").read_text())
X_QUERY = np.array([[-1.5, 0.3], [0.0, 0.0], [0.7, -2.0], [3.0, 1.0]])
KINDS = ["mle", "vi", "vi_analytic", "bbb", "hetero"]


@pytest.mark.parametrize("kind", KINDS)
def test_format1_model_loads_with_the_same_predictions(kind: str) -> None:
    fitted = io.load(HERE / kind)
    assert fitted.config["kind"] == kind
    assert fitted.feature_names == ["a", "b"] and fitted.target_name == "t"
    pred = fitted.predict(X_QUERY, 50, generator=torch.Generator().manual_seed(1))
    lower, upper = pred.interval(0.9)
    got = {"mean": pred.mean, "std": pred.std, "lower": lower, "upper": upper,
           "log_prob": pred.log_prob(torch.tensor([0.1, 0.2, -0.3, 1.0]))}
    for key, value in got.items():
        np.testing.assert_allclose(value.double().numpy(), EXPECTED[kind][key], rtol=1e-5,
                                   atol=1e-6, err_msg=f"{kind}: {key}")


def test_golden_directories_are_format_1() -> None:
    for kind in KINDS:
        raw = json.loads((HERE / kind / "config.json").read_text())
        assert raw["format_version"] == 1 and raw["varbayes_version"] == "0.1.0"
