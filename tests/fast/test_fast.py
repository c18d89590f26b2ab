"""Every fast path equals the plain autograd path on fixed noise (nothing here is timed).

``_fast_helpers.library_noise`` replays the noise :class:`~varbayes.models.BayesianMLP`'s
layers draw from a generator (per layer, in their order and shapes) in the layout of the
hand-derived engine
(:mod:`varbayes._fast.stack`); the tests compare losses, gradients and whole training runs with
autograd through the library's layers and :class:`~varbayes.ELBO`, the vectorised training of
many models with separate runs, and the flat Adam with ``torch.optim.Adam``.
"""

import copy
import json

import pytest
import torch

from _fast_helpers import check_loss_and_grad, check_stack_rows, check_training, flat_grad
from _fast_helpers import library_noise as _library_noise
from varbayes import _fast
from varbayes._fast import BayesianMLPStack
from varbayes._fast import run as train_many
from varbayes._fast import unsupported as fast_path_unsupported
from varbayes.cli import main
from varbayes.infer import ELBO, Adam, NonFiniteLossError, train
from varbayes.models import AmortizedVI, BayesianMLP, Head
from varbayes.nn.layers import Estimator
from varbayes.priors import GaussianPrior, ScaleMixturePrior

HEADS = [("fixed", None), ("learned", None), ("heteroscedastic", None), ("heteroscedastic", (5,))]


def _model(estimator, head, noise_hidden, seed=0, hidden=(6, 4), **kwargs):
    g = torch.Generator().manual_seed(seed)
    return BayesianMLP(2, hidden, head=head, noise_hidden=noise_hidden, estimator=estimator,
                       init_rho=-2.0, generator=g, **kwargs).double()


def _data(n=9, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x, torch.sin(2 * x[:, 0]) + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("estimator", ["reparam", "local", "flipout"])
@pytest.mark.parametrize("head, noise_hidden", HEADS)
@pytest.mark.parametrize("particles", [1, 3])
def test_fast_loss_and_gradient_equal_autograd(estimator, head, noise_hidden, particles):
    x, y = _data()
    model = _model(estimator, head, noise_hidden, prior=GaussianPrior(0.2, 0.7))
    check_loss_and_grad(model, ELBO(40, num_particles=particles, kl_weight=0.8), x, y)


@pytest.mark.parametrize("estimator", ["reparam", "local", "flipout"])
@pytest.mark.parametrize("particles", [1, 3])
def test_single_model_noise_is_the_layers_noise(estimator, particles):
    stack = BayesianMLPStack([_model(estimator, "fixed", None)])
    ours = stack.draw_noise(7, particles, torch.Generator().manual_seed(5))
    theirs = _library_noise(stack, 7, particles, torch.Generator().manual_seed(5))
    for a, b in zip(ours if isinstance(ours, (list, tuple)) else [ours],
                    theirs if isinstance(theirs, (list, tuple)) else [theirs], strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("estimator", ["reparam", "local", "flipout"])
def test_shallow_model_and_float32_match_autograd(estimator):
    x, y = _data()
    model = _model(estimator, "fixed", None, hidden=()).float()
    terms = ELBO(9)(model, x.float(), y.float(), generator=torch.Generator().manual_seed(2))
    terms.loss.backward()
    stack = BayesianMLPStack([model])
    noise = _library_noise(stack, len(x), 1, torch.Generator().manual_seed(2))
    fast = stack.loss_and_grad(x.float(), y.float(), noise, n_data=9)
    torch.testing.assert_close(fast[0, 0], terms.loss)
    torch.testing.assert_close(stack.grad, flat_grad(model))


def test_stacked_models_equal_each_model_alone():
    """Per-model data and per-model noise: row m of the stack is model m on its own."""
    models = [_model("reparam", "heteroscedastic", (5,), seed=s) for s in range(3)]
    xs = torch.stack([_data(seed=s)[0] for s in range(3)])
    ys = torch.stack([_data(seed=s)[1] for s in range(3)])
    check_stack_rows(models, xs, ys)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_equals_torch_adam(weight_decay):
    """Several tensors, weight decay, and a tensor without a gradient on some steps."""
    torch.manual_seed(0)
    ref = [torch.nn.Parameter(torch.randn(s, dtype=torch.float64)) for s in ((2, 7), (3,), ())]
    ours = [torch.nn.Parameter(p.detach().clone()) for p in ref]
    reference = torch.optim.Adam(ref, lr=0.03, weight_decay=weight_decay, foreach=False)
    adam = Adam(ours, 0.03, weight_decay=weight_decay)
    for step in range(25):
        for p, q in zip(ref, ours, strict=True):
            grad = None if (step % 3 == 0 and p.dim() == 1) else torch.randn_like(p)
            p.grad, q.grad = grad, None if grad is None else grad.clone()
        reference.step()
        adam.step()
    for p, q in zip(ref, ours, strict=True):
        torch.testing.assert_close(q, p, rtol=1e-12, atol=1e-12)


def test_adam_one_tensor_equals_the_foreach_path():
    """One CPU tensor takes a shortcut (no lists); it must give the foreach path's bits."""
    torch.manual_seed(0)
    alone = torch.randn(4, 9)
    pair = [alone.clone(), torch.randn(3)]
    one, two = Adam([alone], 0.05), Adam(pair, 0.05)
    for _ in range(30):
        grad = torch.randn(4, 9)
        one.step([grad])
        two.step([grad.clone(), torch.randn(3)])
    assert torch.equal(alone, pair[0])
    assert torch.equal(one.exp_avg_sq[0], two.exp_avg_sq[0])


@pytest.mark.parametrize("estimator", ["reparam", "local", "flipout"])
@pytest.mark.parametrize("batch_size", [None, 4])
def test_fast_training_equals_autograd_training(estimator, batch_size):
    """Whole runs from the same generator: the fast path draws the autograd loop's noise."""
    x, y = _data(10)
    check_training(lambda: _model(estimator, "learned", None), ELBO(10, num_particles=2), x, y,
                   epochs=15, batch_size=batch_size)


def test_vectorised_training_equals_independent_training(monkeypatch):
    """train_many over M models == M separate runs, given each model's own noise stream."""
    original = BayesianMLPStack.draw_noise
    streams: list[torch.Generator] = []

    def per_model_noise(self, rows, particles=1, generator=None):
        m, self.num_models = self.num_models, 1
        try:  # (draw_noise reuses its buffers: copy each model's draw)
            parts = [[t.clone() for t in original(self, rows, particles, g)] for g in streams]
        finally:
            self.num_models = m
        return [torch.cat(layer) for layer in zip(*parts, strict=True)]  # local: one per layer

    monkeypatch.setattr(BayesianMLPStack, "draw_noise", per_model_noise)
    x, y = _data(12)
    seeds = [0, 1, 2]
    together = [_model("local", "heteroscedastic", (5,), seed=s) for s in seeds]
    streams[:] = [torch.Generator().manual_seed(100 + s) for s in seeds]
    hist = train_many(together, ELBO(12), x, y, epochs=12, lr=0.02, batch_size=5,
                      generator=torch.Generator().manual_seed(7))
    for s, model in zip(seeds, together, strict=True):
        alone = _model("local", "heteroscedastic", (5,), seed=s)
        streams[:] = [torch.Generator().manual_seed(100 + s)]
        h = train(alone, ELBO(12), x, y, epochs=12, lr=0.02, batch_size=5,
                  generator=torch.Generator().manual_seed(7))
        assert h.loss == pytest.approx(hist[s].loss, rel=1e-10)
        for p, q in zip(model.parameters(), alone.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-10)


def test_train_many_takes_one_data_set_per_model():
    xs = torch.stack([_data(seed=s)[0] for s in range(2)]).float()
    ys = torch.stack([_data(seed=s)[1] for s in range(2)]).float()
    models = [BayesianMLP(2, (4,), generator=torch.Generator().manual_seed(s)) for s in range(2)]
    before = [copy.deepcopy(m) for m in models]
    hist = train_many(models, ELBO(9), xs, ys, epochs=30, lr=0.05)
    assert len(hist) == 2 and all(len(h.loss) == 30 for h in hist)
    assert hist[0].loss[-1] < hist[0].loss[0] and hist[1].loss[-1] < hist[1].loss[0]
    for a, b in zip(models, before, strict=True):
        assert not torch.equal(a.layers[0].weight_loc, b.layers[0].weight_loc)


def test_train_many_skips_only_the_bad_model(monkeypatch):
    original = BayesianMLPStack.loss_and_grad
    calls = {"n": 0}

    def nan_for_model_1_at_step_3(self, *args, **kwargs):
        terms = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3 and self.num_models == 2:
            terms[:, 1] = float("nan")
            self.grad[1] = float("nan")
        return terms

    x, y = _data(12)
    runs = []
    for patch in (False, True):
        if patch:
            monkeypatch.setattr(BayesianMLPStack, "loss_and_grad", nan_for_model_1_at_step_3)
        models = [_model("reparam", "fixed", None, seed=s) for s in range(2)]
        hist = train_many(models, ELBO(12), x, y, epochs=5, lr=0.02, batch_size=4,
                          nonfinite="skip", generator=torch.Generator().manual_seed(0))
        runs.append((models, hist))
    (clean, _), (skipped, hist) = runs
    assert [h.skipped_steps for h in hist] == [0, 1]
    for p, q in zip(clean[0].parameters(), skipped[0].parameters(), strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(clean[1].layers[0].weight_loc, skipped[1].layers[0].weight_loc)
    assert all(torch.isfinite(p).all() for p in skipped[1].parameters())
    calls["n"] = 0
    with pytest.raises(NonFiniteLossError, match="of model 1 became nan"):
        train_many([_model("reparam", "fixed", None, seed=s) for s in range(2)], ELBO(12), x, y,
                   epochs=5, lr=0.02)


def test_unsupported_models_fall_back_or_are_refused():
    x, y = _data()
    mixture = BayesianMLP(2, (3,), prior=ScaleMixturePrior()).double()
    assert "GaussianPrior" in fast_path_unsupported(mixture, ELBO(9))
    assert "analytic" in fast_path_unsupported(_model("reparam", "fixed", None), ELBO(9, kl="mc"))
    assert "BayesianMLP" in fast_path_unsupported(AmortizedVI(2), ELBO(9))
    hooked = _model("reparam", "fixed", None)
    hooked.layers[0].register_forward_hook(lambda *a: None)
    assert "hooks" in fast_path_unsupported(hooked, ELBO(9))
    train(hooked, ELBO(9), x, y, epochs=2, lr=0.01)  # the autograd loop still trains it
    with pytest.raises(ValueError, match="fast=True"):
        train(hooked, ELBO(9), x, y, epochs=2, lr=0.01, fast=True)
    with pytest.raises(ValueError, match="architecture"):
        train_many([_model("reparam", "fixed", None), _model("local", "fixed", None)], ELBO(9),
                   x, y, epochs=1, lr=0.01)
    with pytest.raises(ValueError, match="M=2"):
        train_many([_model("reparam", "fixed", None)] * 2, ELBO(9), x[None], y[None], epochs=1,
                   lr=0.01)


def test_the_equivalence_tests_cover_the_whole_whitelist():
    """A head or estimator added to the engine's whitelist must be added to the tests above."""
    assert {Head(h) for h, _ in HEADS} == set(_fast.HEADS)
    assert {Estimator(e) for e in ("reparam", "local", "flipout")} == set(_fast.ESTIMATORS)


def test_a_member_outside_the_whitelist_takes_the_autograd_path(monkeypatch):
    """The engine refuses what it has no gradients for; train() then uses autograd."""
    x, y = _data()
    model = _model("reparam", "learned", None)
    monkeypatch.setattr("varbayes._fast.arch.HEADS", frozenset({Head.FIXED}))
    assert "no gradients for the head 'learned'" in fast_path_unsupported(model, ELBO(9))
    reference = copy.deepcopy(model)
    train(model, ELBO(9), x, y, epochs=3, lr=0.01, generator=torch.Generator().manual_seed(0))
    train(reference, ELBO(9), x, y, epochs=3, lr=0.01, fast=False,
          generator=torch.Generator().manual_seed(0))
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)


def test_threads_are_restored_after_training():
    before = torch.get_num_threads()
    x, y = _data()
    train(_model("reparam", "fixed", None), ELBO(9), x, y, epochs=2, lr=0.01)
    assert torch.get_num_threads() == before


def test_speed_benchmark_quick_smoke(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert main(["benchmark", "speed", "--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "varbayes" in printed and "post" in printed
    assert "predict at scale: 5,000 rows" in printed
    assert "UCI protocol at scale: friedman1 500 rows, 2 splits" in printed
    assert report["uci_at_scale"]["splits"] == 2 and report["predict_at_scale"]["rows"] == 5000
    rows = report["results"]
    assert {r["implementation"] for r in rows} >= {"varbayes", "post"}
    for row in rows:
        if row.get("skipped"):
            continue
        assert row["train_ms_per_epoch"] > 0 and row["us_per_row_epoch"] > 0
    assert report["ratios"]
