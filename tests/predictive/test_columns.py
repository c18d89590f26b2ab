"""Per-row columns (``varbayes.predictive.columns``): a row's bits do not depend on its batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from varbayes import BayesianRegressor
from varbayes.predictive import Prediction
from varbayes.predictive.columns import ROW_ALIGN, aligned_columns, prediction_columns

_W = torch.randn(1000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _mixture(x: np.ndarray) -> Prediction:
    """A hetero-like predictive: 1000 draws whose means and scales are smooth in ``x``."""
    t = torch.as_tensor(x[:, 0], dtype=torch.float64)
    loc = torch.sin(t * (1 + 0.1 * _W)) + 0.05 * _W
    scale = torch.nn.functional.softplus(0.3 * t - 1 + 0.01 * _W).expand_as(loc)
    return Prediction(loc, scale)


@pytest.mark.parametrize(("n_small", "n_large"), [(568, 1048), (37, 64), (1, 100), (999, 1003)])
def test_aligned_columns_do_not_depend_on_the_other_rows(n_small: int, n_large: int) -> None:
    x = np.linspace(-4, 4, n_large)[:, None]
    small = aligned_columns(_mixture, x[:n_small], 0.9)
    large = aligned_columns(_mixture, x, 0.9)
    for name, values in small.items():
        assert values.shape == (n_small,)
        np.testing.assert_array_equal(values, large[name][:n_small], err_msg=name)
    # ... and the padding changes nothing but the bits: the plain columns agree to rounding.
    plain = prediction_columns(_mixture(x[:n_small]), 0.9)
    for name, values in plain.items():
        np.testing.assert_allclose(values, small[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_aligned_columns_pad_the_row_names() -> None:
    """A non-finite padded row is reported under the last real row's name."""
    x = np.array([[0.0], [np.inf]])
    names = ["data.csv, row 2", "data.csv, row 3"]
    assert (-len(x)) % ROW_ALIGN  # the case pads
    with pytest.raises(ValueError, match=r"^data\.csv, row 3: the prediction is not finite"):
        aligned_columns(_mixture, x, 0.9, row_names=names)


def test_estimator_rows_do_not_depend_on_their_batch() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, (200, 2))
    y = np.sin(X[:, 0]) + 0.2 * rng.standard_normal(200)
    reg = BayesianRegressor(epochs=60, random_state=0).fit(X, y)
    X_new = rng.uniform(-4, 4, (1048, 2))
    for n in (568, 37):
        small, large = reg.predict_uncertainty(X_new[:n]), reg.predict_uncertainty(X_new)
        lo_s, hi_s = reg.predict_interval(X_new[:n])
        lo_l, hi_l = reg.predict_interval(X_new)
        for name, values in small.items():
            np.testing.assert_array_equal(values, large[name][:n], err_msg=name)
        np.testing.assert_array_equal(lo_s, lo_l[:n])
        np.testing.assert_array_equal(hi_s, hi_l[:n])


def test_classifier_rows_do_not_depend_on_their_batch() -> None:
    """Probabilities and the entropy split: the same bits alone or among 1048 rows."""
    from varbayes import BayesianClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int)
    clf = BayesianClassifier(epochs=40, random_state=0).fit(X, y)
    X_new = rng.normal(size=(1048, 4))
    for n in (568, 37, 1):
        np.testing.assert_array_equal(clf.predict_proba(X_new[:n]), clf.predict_proba(X_new)[:n])
        small, large = clf.predict_uncertainty(X_new[:n]), clf.predict_uncertainty(X_new)
        for name, values in small.items():
            np.testing.assert_array_equal(values, large[name][:n], err_msg=name)


def test_cli_family_predictions_do_not_depend_on_the_file_length(tmp_path) -> None:
    """``varbayes predict`` of a classifier: a file's rows are the same bits in a longer file."""
    from varbayes.cli import main
    from varbayes.data import write_csv

    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    write_csv(tmp_path / "train.csv", {"x": x, "y": np.where(x + 0.5 * rng.normal(size=300) > 0,
                                                             "a", "b")})
    assert main(["fit", str(tmp_path / "train.csv"), "--target", "y", "--likelihood",
                 "categorical", "--epochs", "20", "--out", str(tmp_path / "m")]) == 0
    x_new = rng.normal(size=1100)
    texts = []
    for n in (1000, 1100):  # the last chunk of the shorter file is partial
        write_csv(tmp_path / f"x{n}.csv", {"x": x_new[:n]})
        assert main(["predict", str(tmp_path / "m"), str(tmp_path / f"x{n}.csv"), "--samples",
                     "2000", "--out", str(tmp_path / f"p{n}.csv")]) == 0
        texts.append((tmp_path / f"p{n}.csv").read_text().splitlines())
    assert texts[0] == texts[1][: len(texts[0])]
