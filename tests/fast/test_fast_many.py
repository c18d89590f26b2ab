"""``train_many`` with one generator per model, and frozen parameters (nothing here is timed).

With a generator per model, each model of a stack must train exactly as it does alone (``M = 1``)
and as the autograd loop of ``train`` does with that generator: the UCI runner relies on it to
train the splits of a data set together (``varbayes.benchmarks.uci_stack``). Parameters with
``requires_grad=False`` stay where they are, as with an optimiser of the trainable ones only.
The models are float64, so the three runs agree to rounding (1e-10), far below any real
difference.
"""

import copy

import pytest
import torch

from varbayes._fast import run as train_many
from varbayes._fast import unsupported
from varbayes.infer import ELBO, train
from varbayes.models import BayesianMLP


def _frozen_model(seed, estimator="local"):
    """A hetero-like model whose noise network is frozen except its output bias (UCI warm-up)."""
    model = BayesianMLP(3, (8,), head="heteroscedastic", noise_hidden=(5,), estimator=estimator,
                        init_rho=-3.0, generator=torch.Generator().manual_seed(seed)).double()
    with torch.no_grad():
        model.noise_net[-1].weight.zero_()
    for p in model.noise_net.parameters():
        p.requires_grad_(False)
    model.noise_net[-1].bias.requires_grad_(True)
    return model


def _gens(seeds):
    return [torch.Generator().manual_seed(10 + s) for s in seeds]


@pytest.mark.parametrize("estimator", ["local", "reparam"])
@pytest.mark.parametrize("batch_size", [None, 16])
def test_one_generator_per_model_is_each_model_alone(estimator, batch_size):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 40, 3, generator=g, dtype=torch.float64)
    y = torch.randn(3, 40, generator=g, dtype=torch.float64)
    stacked = [_frozen_model(s, estimator) for s in range(3)]
    alone, autograd = copy.deepcopy(stacked), copy.deepcopy(stacked)
    frozen_before = stacked[0].noise_net[0].weight.clone()
    train_many(stacked, ELBO(40), x, y, epochs=12, lr=0.01, batch_size=batch_size,
               generator=_gens(range(3)))
    for i in range(3):
        train_many([alone[i]], ELBO(40), x[i], y[i], epochs=12, lr=0.01,
                   batch_size=batch_size, generator=_gens([i])[0])
        train(autograd[i], ELBO(40), x[i], y[i], epochs=12, lr=0.01, batch_size=batch_size,
              generator=_gens([i])[0])
        for p, q, r in zip(stacked[i].parameters(), alone[i].parameters(),
                           autograd[i].parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-10)
            torch.testing.assert_close(p, r, rtol=0, atol=1e-10)
    assert torch.equal(stacked[0].noise_net[0].weight, frozen_before)
    assert not stacked[0].noise_net[-1].weight.any()
    assert not torch.equal(stacked[0].noise_net[-1].bias,
                           _frozen_model(0, estimator).noise_net[-1].bias)


def test_frozen_parameters_keep_train_on_autograd():
    """``train`` keeps frozen models on the autograd loop (its behaviour is unchanged)."""
    model = _frozen_model(0)
    assert "requires_grad" in unsupported(model, ELBO(10))
    assert unsupported(model, ELBO(10), frozen=True) is None


def test_bad_generator_lists_are_clear_errors():
    x, y = torch.randn(2, 10, 3, dtype=torch.float64), torch.randn(2, 10, dtype=torch.float64)
    models = [_frozen_model(s) for s in range(2)]
    with pytest.raises(ValueError, match="1 generators for 2 models"):
        train_many(models, ELBO(10), x, y, epochs=1, lr=0.01, generator=_gens([0]))
    flip = [_frozen_model(s, "flipout") for s in range(2)]
    with pytest.raises(ValueError, match="one generator per model needs reparam or local"):
        train_many(flip, ELBO(10), x, y, epochs=1, lr=0.01, generator=_gens([0, 1]))
