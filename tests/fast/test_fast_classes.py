"""The fast engine's classification heads equal autograd on replayed noise (nothing timed).

A :class:`~varbayes.models.FamilyMLP` with a Bernoulli or categorical head: the hand-derived
loss and gradient equal those of :class:`~varbayes.ELBO` through the library's layers on the
same noise, whole training runs equal ``train(..., fast=False)``, and every other likelihood
head is refused (and trains on autograd). Deterministic: no statistical tolerance.
"""

import copy

import pytest
import torch

from _fast_helpers import check_loss_and_grad, check_stack_rows, check_training
from varbayes import _fast
from varbayes._fast import unsupported as fast_path_unsupported
from varbayes.infer import ELBO, train
from varbayes.models import FamilyMLP
from varbayes.priors import GaussianPrior

#: (likelihood, classes): every member of the whitelist, the categorical one with K = 2 and 4.
CASES = [("bernoulli", 2), ("categorical", 2), ("categorical", 4)]


def _model(likelihood, classes, estimator, seed=0, hidden=(6, 4), **kwargs):
    g = torch.Generator().manual_seed(seed)
    return FamilyMLP(2, hidden, likelihood=likelihood, n_classes=classes, estimator=estimator,
                     init_rho=-2.0, generator=g, **kwargs).double()


def _data(classes, n=9, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g).double()
    y[:classes] = torch.arange(classes, dtype=torch.float64)  # every class present
    return x, y


@pytest.mark.parametrize("estimator", ["reparam", "local", "flipout"])
@pytest.mark.parametrize("likelihood, classes", CASES)
@pytest.mark.parametrize("particles", [1, 3])
def test_class_heads_loss_and_gradient_equal_autograd(estimator, likelihood, classes, particles):
    x, y = _data(classes)
    model = _model(likelihood, classes, estimator, prior=GaussianPrior(0.1, 0.8))
    with torch.no_grad():  # logits far from 0, so a wrong sign or class would show
        model.set_output_bias([1.5] * (classes if likelihood == "categorical" else 1))
    elbo = ELBO(40, num_particles=particles, kl_weight=0.7, likelihood=likelihood)
    assert fast_path_unsupported(model, elbo) is None
    check_loss_and_grad(model, elbo, x, y)


@pytest.mark.parametrize("likelihood, classes", CASES)
@pytest.mark.parametrize("batch_size", [None, 4])
def test_class_heads_training_equals_autograd_training(likelihood, classes, batch_size):
    """Whole runs from the same generator: the fast path draws the autograd loop's noise."""
    x, y = _data(classes, 10)
    check_training(lambda: _model(likelihood, classes, "local"), ELBO(10, likelihood=likelihood),
                   x, y, epochs=12, batch_size=batch_size)


def test_stacked_class_models_equal_each_model_alone():
    models = [_model("categorical", 3, "reparam", seed=s) for s in range(3)]
    xs = torch.stack([_data(3, seed=s)[0] for s in range(3)])
    ys = torch.stack([_data(3, seed=s)[1] for s in range(3)])
    check_stack_rows(models, xs, ys)


@pytest.mark.parametrize("likelihood", ["student_t", "poisson", "exponential"])
def test_other_likelihood_heads_are_refused_and_train_on_autograd(likelihood):
    x, y = _data(2)
    model = _model(likelihood, 2, "local")
    why = fast_path_unsupported(model, ELBO(9, likelihood=likelihood))
    assert why is not None and f"no gradients for the {likelihood!r} likelihood head" in why
    with pytest.raises(ValueError, match="fast=True"):
        train(model, ELBO(9, likelihood=likelihood), x, y, epochs=1, lr=0.01, fast=True)
    train(model, ELBO(9, likelihood=likelihood), x, y, epochs=2, lr=0.01)  # autograd trains it


def test_a_class_head_with_another_objective_likelihood_is_refused():
    """Never a silent mis-dispatch: the ELBO's likelihood must be the head's own."""
    model = _model("bernoulli", 2, "local")
    assert "bernoulli likelihood of this model only" in fast_path_unsupported(model, ELBO(9))
    assert "bernoulli" in fast_path_unsupported(model, ELBO(9, likelihood="categorical"))
    gaussian = _model("categorical", 3, "local")
    assert fast_path_unsupported(gaussian, ELBO(9, likelihood="poisson")) is not None


def test_the_class_equivalence_tests_cover_the_whole_whitelist():
    """A likelihood head added to the engine's whitelist must be added to the tests above."""
    assert {name for name, _ in CASES} == set(_fast.CLASS_HEADS)


def test_a_class_head_outside_the_whitelist_takes_the_autograd_path(monkeypatch):
    x, y = _data(3)
    model = _model("categorical", 3, "local")
    monkeypatch.setattr("varbayes._fast.arch.CLASS_HEADS", frozenset({"bernoulli"}))
    why = fast_path_unsupported(model, ELBO(9, likelihood="categorical"))
    assert "no gradients for the 'categorical' likelihood head" in why
    reference = copy.deepcopy(model)
    for m, fast in ((model, None), (reference, False)):
        train(m, ELBO(9, likelihood="categorical"), x, y, epochs=3, lr=0.01, fast=fast,
              generator=torch.Generator().manual_seed(0))
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)
