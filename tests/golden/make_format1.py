"""Regenerate the committed format-1 model directories (run once, with varbayes 0.1.x).

The directories under ``tests/golden/format1/`` were written by varbayes 0.1.0 and must keep
loading, with the same predictions, in every later version: do not regenerate them to make a
test pass. ``expected.json`` holds each model's predictions at fixed inputs and a fixed seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

import varbayes
from varbayes import io
from varbayes.kinds import fit

HERE = Path(__file__).resolve().parent / "format1"
X_QUERY = [[-1.5, 0.3], [0.0, 0.0], [0.7, -2.0], [3.0, 1.0]]


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] + (0.1 + 0.2 * np.abs(x[:, 0])) * rng.normal(size=40)
    expected: dict[str, object] = {"varbayes": varbayes.__version__}
    for kind in ("mle", "vi", "vi_analytic", "bbb", "hetero"):
        fitted, _ = fit(kind, x, y, generator=torch.Generator().manual_seed(0), epochs=30,
                        hidden=[4], feature_names=["a", "b"], target_name="t")
        io.save(fitted, HERE / kind, force=True)
        pred = io.load(HERE / kind).predict(np.array(X_QUERY), 50,
                                            generator=torch.Generator().manual_seed(1))
        lower, upper = pred.interval(0.9)
        expected[kind] = {k: v.tolist() for k, v in
                          {"mean": pred.mean, "std": pred.std, "lower": lower, "upper": upper,
                           "log_prob": pred.log_prob(torch.tensor([0.1, 0.2, -0.3, 1.0]))}.items()}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
