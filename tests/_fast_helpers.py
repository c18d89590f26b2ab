"""Checks of the fast engine against autograd, shared by the tests of ``tests/fast``.

:func:`library_noise` is the noise the library's layers draw, packed in the engine's layout;
the ``check_*`` functions compare the engine with autograd (or a stack with its models alone).
"""

import copy

import torch

from varbayes._fast import BayesianMLPStack
from varbayes.infer import train
from varbayes.nn.layers import Estimator

__all__ = ["check_loss_and_grad", "check_stack_rows", "check_training", "flat_grad",
           "library_noise"]


def library_noise(stack, rows, particles, generator):
    """The noise BayesianMLP.forward draws from ``generator``, packed in the engine's layout."""
    assert stack.num_models == 1
    opts = dict(dtype=stack.arch.dtype, generator=generator)
    s, est = particles, stack.arch.estimator
    if est is Estimator.LOCAL:
        return [torch.randn(s, rows, fo, **opts).reshape(1, s * rows, fo)
                for _, _, _, fo in stack.layers]
    eps = torch.empty(1, s, stack.num_bayes, dtype=stack.arch.dtype)
    fans = sum(stack.arch.sizes[:-1]) + sum(stack.arch.sizes[1:])
    signs = torch.empty(s, rows, fans, dtype=stack.arch.dtype)
    i_off, o_off = 0, sum(stack.arch.sizes[:-1])
    for ow, ob, fi, fo in stack.layers:
        eps[0, :, ow:ob] = torch.randn(s, fi, fo, **opts).reshape(s, -1)
        eps[0, :, ob : ob + fo] = torch.randn(s, 1, fo, **opts).reshape(s, -1)
        if est is Estimator.FLIPOUT:
            for off, width in ((i_off, fi), (o_off, fo)):
                bits = torch.randint(0, 2, (s, rows, width), generator=generator)
                signs[..., off : off + width] = bits.to(signs.dtype) * 2 - 1
            i_off, o_off = i_off + fi, o_off + fo
    return eps if est is Estimator.REPARAM else (eps, signs)


def flat_grad(model):
    """The gradients of ``model`` in the engine's flat layout, shape (1, P)."""
    holder = copy.deepcopy(model)
    with torch.no_grad():
        for p, q in zip(holder.parameters(), model.parameters(), strict=True):
            p.copy_(q.grad)
    return BayesianMLPStack([holder]).params


def check_loss_and_grad(model, elbo, x, y, seed=11):
    """The engine's loss terms and gradient equal autograd's on the same noise."""
    terms = elbo(model, x, y, generator=torch.Generator().manual_seed(seed))
    terms.loss.backward()
    stack = BayesianMLPStack([model])
    noise = library_noise(stack, len(x), elbo.num_particles, torch.Generator().manual_seed(seed))
    fast = stack.loss_and_grad(x, y, noise, n_data=elbo.n_data, kl_weight=elbo.kl_weight,
                               particles=elbo.num_particles)
    torch.testing.assert_close(fast[:, 0], torch.stack([terms.loss, terms.nll, terms.kl]))
    torch.testing.assert_close(stack.grad, flat_grad(model))


def check_stack_rows(models, xs, ys):
    """Per-model data and per-model noise: row m of the stack is model m on its own."""
    stack = BayesianMLPStack(models)
    noise = stack.draw_noise(xs.shape[1], 2, torch.Generator().manual_seed(0))
    terms = stack.loss_and_grad(xs, ys, noise, n_data=9, particles=2)
    for m, model in enumerate(models):
        alone = BayesianMLPStack([model])
        single = alone.loss_and_grad(xs[m], ys[m], noise[m : m + 1], n_data=9, particles=2)
        torch.testing.assert_close(terms[:, m], single[:, 0])
        torch.testing.assert_close(stack.grad[m], alone.grad[0])


def check_training(make_model, objective, x, y, *, epochs, batch_size):
    """Whole runs from the same generator: the fast path draws the autograd loop's noise."""
    runs = []
    for fast in (True, False):
        model = make_model()
        h = train(model, objective, x, y, epochs=epochs, lr=0.02, batch_size=batch_size,
                  generator=torch.Generator().manual_seed(4), fast=fast)
        runs.append((h, torch.cat([p.detach().reshape(-1) for p in model.parameters()])))
    (fast_h, fast_p), (slow_h, slow_p) = runs
    torch.testing.assert_close(fast_p, slow_p, rtol=1e-9, atol=1e-9)
    for key in ("loss", "nll", "kl"):
        torch.testing.assert_close(getattr(fast_h, key), getattr(slow_h, key), rtol=1e-9,
                                   atol=1e-9)
