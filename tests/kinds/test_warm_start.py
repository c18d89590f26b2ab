"""The MAP start of a mean-field network (varbayes.kinds.warm_start) and the family kind's use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from varbayes.infer import ELBO, History, train
from varbayes.kinds import fit, predict_family
from varbayes.kinds.warm_start import POINT_RHO, set_scales, train_from_map
from varbayes.models import FamilyMLP
from varbayes.nn.meanfield import MeanField


def _logistic(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    p = torch.sigmoid(x @ torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64))
    return x, torch.bernoulli(p, generator=g)


def _scales(net: torch.nn.Module) -> list[torch.Tensor]:
    return [F.softplus(rho) + layer.min_scale for layer in net.modules()
            if isinstance(layer, MeanField)
            for rho in (layer.weight_rho, layer.bias_rho) if rho is not None]


def test_set_scales_sets_every_standard_deviation() -> None:
    net = FamilyMLP(3, [4], likelihood="bernoulli").double()
    set_scales(net, 0.03)
    for scale in _scales(net):
        torch.testing.assert_close(scale, torch.full_like(scale, 0.03))
    with pytest.raises(ValueError, match="must be above the layers' scale floor"):
        set_scales(net, 1e-6)  # the weight layers' floor


def test_first_phase_is_map_with_the_prior_as_l2() -> None:
    """No hidden layer: the first phase is a logistic regression with an L2 penalty; its means
    must be the penalised optimum (found by L-BFGS here) to optimisation accuracy."""
    x, y = _logistic()
    net = FamilyMLP(3, [], likelihood="bernoulli").double()
    objective = ELBO(x.shape[0], likelihood="bernoulli")
    seen: list[tuple[int | None, bool]] = []

    def run(epochs: int | None) -> History:
        rho = next(p for n, p in net.named_parameters() if n.endswith("rho"))
        seen.append((epochs, rho.requires_grad))
        if epochs is None:
            return History()
        assert float(rho.max()) == POINT_RHO
        return train(net, objective, x, y, epochs=epochs, lr=0.05,
                     generator=torch.Generator().manual_seed(0))

    train_from_map(net, run, map_epochs=600, scale=0.02)
    assert seen == [(600, False), (None, True)]  # scales held in phase 1, trained in phase 2
    for scale in _scales(net):
        torch.testing.assert_close(scale, torch.full_like(scale, 0.02))
    layer = next(m for m in net.modules() if isinstance(m, MeanField))
    w = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14)

    def penalised() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x @ w[:3] + w[3], y, reduction="sum") \
            + 0.5 * w.pow(2).sum()  # the N(0, 1) prior as L2
        loss.backward()
        return loss

    opt.step(penalised)
    means = torch.cat([layer.weight_loc.detach().reshape(-1), layer.bias_loc.detach()])
    torch.testing.assert_close(means, w.detach(), atol=0.02, rtol=0.0)


def test_family_kind_trains_from_map_and_records_it() -> None:
    x, y = _logistic(120)
    fitted, _ = fit("family", x.numpy(), y.numpy(), likelihood="bernoulli", epochs=20,
                    map_epochs=30, map_scale=0.05, generator=torch.Generator().manual_seed(0))
    assert fitted.config["map_epochs"] == 30 and fitted.config["map_scale"] == 0.05
    plain, _ = fit("family", x.numpy(), y.numpy(), likelihood="bernoulli", epochs=20,
                   generator=torch.Generator().manual_seed(0))
    assert plain.config["map_epochs"] == 0
    probs = predict_family(fitted, x.numpy(), 200).probs.numpy()
    assert np.mean(probs.argmax(1) == y.numpy()) > 0.75
