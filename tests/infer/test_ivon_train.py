"""train() of a model built with ``method='ivon'``: IVON's step, callbacks, NaN steps, DDP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _spawn import on_two_ranks
from varbayes.infer import ELBO, NonFiniteLossError, train
from varbayes.infer.ivon_train import IVONStep
from varbayes.kinds import build_model, fit, make_config
from varbayes.models import BayesianMLP
from varbayes.optim.posterior import check_posterior, posterior_of

X = torch.linspace(-2, 2, 64)[:, None]
Y = torch.sin(2 * X[:, 0])


def _model(**kw: object) -> torch.nn.Module:
    config = make_config("hetero", 1, method="ivon", hidden=[8], **kw)
    return build_model(config, torch.Generator().manual_seed(0))


def test_ivon_needs_the_posterior_and_no_adam_options() -> None:
    with pytest.raises(TypeError, match="method='ivon'"):
        IVONStep(BayesianMLP(1, (4,)), ELBO(64), 0.1, None)
    with pytest.raises(ValueError, match="leave weight_decay=0 and fast=None"):
        train(_model(), ELBO(64), X, Y, epochs=2, lr=0.1, weight_decay=0.1)
    with pytest.raises(ValueError, match="leave weight_decay=0 and fast=None"):
        train(_model(), ELBO(64), X, Y, epochs=2, lr=0.1, fast=True)
    with pytest.raises(ValueError, match="epochs"):
        train(_model(), ELBO(64), X, Y, epochs=0, lr=0.1)


def test_callbacks_see_the_posterior_and_the_loss_falls() -> None:
    model = _model()
    seen: list[list[str]] = []

    def callback(done: int) -> bool:
        seen.append(check_posterior(model))  # the layers' scales follow from the Hessian
        return done >= 300

    history = train(model, ELBO(64), X, Y, epochs=1000, lr=0.2, callback=callback,
                         callback_every=100, generator=torch.Generator().manual_seed(1))
    assert len(history.loss) == 300 and seen == [[]] * 3
    assert history.kl == [0.0] * 300 and history.nll == history.loss
    assert np.mean(history.loss[-20:]) < np.mean(history.loss[:20]) - 0.3
    posterior = posterior_of(model)
    assert posterior is not None and float(posterior.ess) == 64  # ELBO(64).n_data


def test_nonfinite_steps_raise_or_are_skipped_and_forgotten() -> None:
    y = Y.clone()
    y[5] = float("nan")
    with pytest.raises(NonFiniteLossError, match="epoch 1, step"):
        train(_model(), ELBO(64), X, y, epochs=3, lr=0.1, batch_size=16,
                   generator=torch.Generator().manual_seed(0))
    model = _model()
    history = train(model, ELBO(64), X, y, epochs=3, lr=0.1, batch_size=16,
                         nonfinite="skip", generator=torch.Generator().manual_seed(0))
    assert history.skipped_steps == 3  # one batch of four in each epoch holds the NaN
    assert all(bool(torch.isfinite(t).all()) for t in model.state_dict().values())
    assert check_posterior(model) == []


def _worker(rank: int) -> dict[str, torch.Tensor]:
    x = np.linspace(-2, 2, 60)[:, None]
    fitted, _ = fit("hetero", x, np.sin(2 * x[:, 0]), method="ivon", hidden=[6], epochs=20,
                    distributed="on", generator=torch.Generator().manual_seed(0))
    return dict(fitted.state_dict())


@pytest.mark.distributed
def test_ranks_stay_identical_and_ess_is_the_global_row_count() -> None:
    states = on_two_ranks(_worker)
    assert float(states[0]["model.ivon.ess"]) == 60  # global rows, though each rank saw 30
    for key, value in states[0].items():
        torch.testing.assert_close(states[1][key], value, rtol=0, atol=0, msg=key)
    assert not torch.equal(states[0]["model.ivon.hess_layers_0_weight_loc"],
                           torch.ones(1, 6))  # trained
