"""The best-checkpoint rule shared by the library's early stopping and the UCI runner."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from varbayes.infer.early_stopping import BestCheckpoint

scores = st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(math.nan), st.just(math.inf),
                            st.just(-math.inf)), max_size=30)


@given(scores, st.one_of(st.none(), st.integers(1, 5)))
def test_best_is_the_first_finite_maximum_and_patience_counts_from_it(values, patience):
    best = BestCheckpoint(patience)
    exhausted_at = None
    for i, v in enumerate(values):
        best.offer(v, i)
        if best.exhausted and exhausted_at is None:
            exhausted_at = i
    finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
    if not finite:
        assert best.best is None and best.best_score == -math.inf
        first_best = -1
    else:
        top = max(v for v, _ in finite)
        first_best = min(i for v, i in finite if v == top)
        assert best.best == first_best and best.best_score == top
    # exhausted exactly once `patience` checks pass with no new best (before the overall best,
    # a run of non-improving checks may also exhaust it: checked against a direct count)
    expected = None
    if patience is not None:
        run, high = 0, -math.inf
        for i, v in enumerate(values):
            if math.isfinite(v) and v > high:
                high, run = v, 0
            else:
                run += 1
            if run >= patience:
                expected = i
                break
    assert exhausted_at == expected
    assert best.since_best == len(values) - 1 - first_best


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_patience_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="n_iter_no_change"):
        BestCheckpoint(bad)
