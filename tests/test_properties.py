"""Property-based tests (hypothesis): identities that hold for every input, not one example.

These are exact identities up to floating-point rounding, so they have no false-positive rate
beyond the stated tolerances; each runs a bounded, derandomised number of examples.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from varbayes import io
from varbayes.kinds import fit
from varbayes.predictive import Prediction

PROFILE = settings(max_examples=60, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
positive = st.floats(1e-3, 1e2, allow_nan=False, allow_infinity=False)


@st.composite
def mixtures(draw: st.DrawFn) -> Prediction:
    s = draw(st.integers(1, 8))
    n = draw(st.integers(1, 5))
    loc = draw(arrays(np.float64, (s, n), elements=finite))
    scale = draw(arrays(np.float64, (s, n), elements=positive))
    return Prediction(torch.from_numpy(loc), torch.from_numpy(scale))


@PROFILE
@given(mixtures())
def test_variance_decomposes_into_aleatoric_and_epistemic(pred: Prediction) -> None:
    # Var[y] of the mixture, computed directly: E[y^2] - E[y]^2 over the components
    second = (pred.scale**2 + pred.loc**2).mean(0)
    direct = second - pred.mean**2
    torch.testing.assert_close(pred.var, pred.aleatoric_var + pred.epistemic_var)
    torch.testing.assert_close(pred.var, direct, rtol=1e-9, atol=1e-9 * float(second.max()))
    assert (pred.epistemic_var >= 0).all()


@PROFILE
@given(mixtures(), st.lists(st.floats(1e-4, 1 - 1e-4), min_size=2, max_size=6, unique=True))
def test_quantiles_are_monotone_and_invert_the_cdf(pred: Prediction, levels: list[float]) -> None:
    q = torch.tensor(sorted(levels), dtype=torch.float64)
    values = pred.quantile(q)  # (k, n)
    assert (values[1:] >= values[:-1]).all()
    # the quantile brackets the level to the output dtype's resolution, measured (as the
    # bisection measures it) in units of the mixture's spread around its centre:
    # CDF(v - dx) <= level <= CDF(v + dx) with dx a few ulps of spread + |v - centre| + |v|
    spread, centre = pred.std, pred.mean
    dx = 8 * torch.finfo(torch.float64).eps * (spread + (values - centre).abs() + values.abs())
    assert (pred.cdf(values - dx) <= q[:, None] + 1e-12).all()
    assert (pred.cdf(values + dx) >= q[:, None] - 1e-12).all()


@settings(max_examples=12, deadline=None, derandomize=True)
@given(kind=st.sampled_from(["mle", "vi", "vi_analytic", "bbb", "hetero"]),
       hidden=st.lists(st.integers(1, 6), min_size=1, max_size=2),
       d=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_save_load_round_trip_gives_identical_predictions(tmp_path_factory, kind: str,
                                                          hidden: list[int], d: int,
                                                          seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(15, d))
    y = x.sum(1) + rng.normal(size=15)
    fitted, _ = fit(kind, x, y, generator=torch.Generator().manual_seed(seed), epochs=3,
                    hidden=hidden)
    path = io.save(fitted, tmp_path_factory.mktemp("rt") / "m")
    loaded = io.load(path)
    assert loaded.config == fitted.config
    a = fitted.predict(x, 7, generator=torch.Generator().manual_seed(0))
    b = loaded.predict(x, 7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.loc, b.loc) and torch.equal(a.scale, b.scale)
