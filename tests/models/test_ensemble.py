"""The ensemble: its draws are its members' draws, one mixture."""

from __future__ import annotations

import pytest
import torch

from varbayes.models import BayesianMLP, Ensemble
from varbayes.models.ensemble import member_draws
from varbayes.predictive import predictive


def _members(m: int = 3) -> list[BayesianMLP]:
    return [BayesianMLP(2, (6,), head="heteroscedastic", noise_hidden=(4,), init_rho=-2.0,
                        generator=torch.Generator().manual_seed(s)) for s in range(m)]


def test_member_draws_split_the_samples() -> None:
    assert member_draws(10, 3) == [4, 3, 3]
    assert member_draws(9, 3) == [3, 3, 3]
    assert member_draws(2, 3) == [1, 1, 0]  # S < M: the first S members draw one each
    assert member_draws(5, 1) == [5]


def test_components_are_the_members_draws_in_order() -> None:
    members = _members()
    ensemble = Ensemble(members).eval()
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
    pred = predictive(ensemble, x, 10, generator=torch.Generator().manual_seed(7))
    assert pred.loc.shape == pred.scale.shape == (10, 5)
    g = torch.Generator().manual_seed(7)  # the members draw one after the other from g
    parts = [predictive(m, x, k, generator=g) for m, k in zip(members, [4, 3, 3], strict=True)]
    torch.testing.assert_close(pred.loc, torch.cat([p.loc for p in parts]))
    torch.testing.assert_close(pred.scale, torch.cat([p.scale for p in parts]))
    means = predictive(ensemble, x, 10, sample=False)
    assert means.loc.shape == (3, 5)  # one component per member at its posterior means


def test_ensemble_refuses_a_training_objective() -> None:
    with pytest.raises(TypeError, match="each of its members"):
        Ensemble(_members(2))(torch.zeros(2, 2), kl="analytic")
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])


def test_row_chunks_change_nothing() -> None:
    """Members that bound their own prediction pass: the ensemble runs in one pass too."""
    ensemble = Ensemble(_members()).eval()
    assert ensemble.bounded_prediction
    x = torch.randn(9, 2, generator=torch.Generator().manual_seed(1))
    a = predictive(ensemble, x, 6, generator=torch.Generator().manual_seed(3))
    b = predictive(ensemble, x, 6, generator=torch.Generator().manual_seed(3), chunk_size=4)
    torch.testing.assert_close(a.loc, b.loc)
    torch.testing.assert_close(a.scale, b.scale)
