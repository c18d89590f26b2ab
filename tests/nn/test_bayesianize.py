"""bayesianize: which layers, init, priors, one warning, one code path with BayesianMLP."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from varbayes.infer import ELBO, train
from varbayes.models import BayesianMLP
from varbayes.nn import (
    BayesConv,
    FoldedBayesLinear,
    GaussianHead,
    bayesianize,
    convertible_layers,
    draws,
    kl_divergence,
)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.emb = nn.Embedding(3, 2)
        self.fc = nn.Linear(4 * 4 * 4 + 2, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm(self.conv(x)))
        h = torch.cat([nn.functional.max_pool2d(h, 2).flatten(1), self.emb(k)], 1)
        return self.out(torch.relu(self.fc(h)))


def test_all_layers_one_warning_and_the_forward_still_works() -> None:
    net = Net().eval()
    x, k = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1])
    with pytest.warns(UserWarning, match="stay deterministic") as record:
        b = bayesianize(net)
    assert len(record) == 1 and "norm (BatchNorm2d)" in str(record[0].message)
    assert "emb (Embedding)" in str(record[0].message)
    assert isinstance(b.conv, BayesConv) and isinstance(b.fc, FoldedBayesLinear)
    assert isinstance(net.conv, nn.Conv2d)  # a copy unless inplace
    assert b(x, k).shape == net(x, k).shape == (5, 2)
    # pretrained means: at the means, the converted network is the original one
    with torch.no_grad(), draws(b, sample=False):
        torch.testing.assert_close(b(x, k), net(x, k), rtol=1e-5, atol=1e-6)
    # scales relative to the weights
    torch.testing.assert_close(b.fc.weight_scale, (0.1 * net.fc.weight.t().abs()).clamp_min(1e-5),
                               rtol=1e-4, atol=1e-6)


def test_last_and_named_layers() -> None:
    net = Net()
    assert convertible_layers(net) == ["conv", "fc", "out"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning outside layers='all'
        last = bayesianize(net, "last")
    assert isinstance(last.out, FoldedBayesLinear) and isinstance(last.fc, nn.Linear)
    named = bayesianize(net, ["conv"])
    assert isinstance(named.conv, BayesConv) and isinstance(named.out, nn.Linear)
    with pytest.raises(ValueError, match="not convertible"):
        bayesianize(net, ["norm"])
    with pytest.raises(ValueError, match="layers must be"):
        bayesianize(net, "first")
    with pytest.raises(ValueError, match="no nn.Linear"):
        bayesianize(nn.Sequential(nn.ReLU()))
    same = bayesianize(net, "last", inplace=True)
    assert same is net and isinstance(net.out, FoldedBayesLinear)


def test_pretrained_prior_is_centred_on_the_weights() -> None:
    lin = nn.Linear(3, 2)
    b = bayesianize(nn.Sequential(lin), prior="pretrained", prior_scale=0.5)
    layer = b[0]
    torch.testing.assert_close(layer.weight_prior_loc, lin.weight.detach().t())
    # means at the prior centre: only the scale terms are left in the KL
    s = torch.cat([layer.weight_scale.flatten(), layer.bias_scale.flatten()]) / 0.5
    expected = (0.5 * s * s - s.log() - 0.5).sum()
    torch.testing.assert_close(kl_divergence(b), expected)
    fresh = bayesianize(nn.Sequential(lin), init="default", generator=torch.Generator())
    assert not torch.equal(fresh[0].weight_loc, lin.weight.detach().t())


def test_converted_mlp_has_the_elbo_trajectory_of_bayesian_mlp() -> None:
    """One code path: a converted MLP trains exactly like the equivalent BayesianMLP."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    y = torch.sin(x[:, 0])
    for estimator in ("reparam", "local", "flipout"):
        ref = BayesianMLP(3, (16, 16), estimator=estimator,
                          generator=torch.Generator().manual_seed(1))
        det = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                            nn.Linear(16, 1), GaussianHead("fixed", noise_std=0.1))
        conv = bayesianize(det, estimator=estimator)
        with torch.no_grad():
            for i, layer in zip((0, 2, 4), ref.layers, strict=True):
                for name in ("weight_loc", "weight_rho", "bias_loc", "bias_rho"):
                    getattr(conv[i], name).copy_(getattr(layer, name))
        h_ref = train(ref, ELBO(64), x, y, epochs=40, lr=0.01, fast=False,
                      generator=torch.Generator().manual_seed(5))
        h_conv = train(conv, ELBO(64), x, y, epochs=40, lr=0.01,
                       generator=torch.Generator().manual_seed(5))
        np.testing.assert_array_equal(h_conv.loss, h_ref.loss, err_msg=estimator)
        np.testing.assert_array_equal(h_conv.kl, h_ref.kl, err_msg=estimator)


def test_elbo_needs_a_head_and_the_closed_form_kl() -> None:
    net = bayesianize(nn.Sequential(nn.Linear(2, 1)))
    with pytest.raises(TypeError, match="GaussianHead"):
        ELBO(10)(net, torch.randn(4, 2), torch.randn(4))
    with pytest.raises(ValueError, match="closed-form"):
        ELBO(10, kl="mc")(nn.Sequential(net, GaussianHead("fixed")), torch.randn(4, 2),
                          torch.randn(4))


def test_torch_compile_of_a_converted_network() -> None:
    """torch.compile (dynamo + AOT autograd; inductor needs a C compiler) of a converted CNN."""
    net = bayesianize(nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                                    nn.Linear(48, 2)))
    x = torch.randn(4, 1, 4, 4)
    try:
        compiled = torch.compile(copy.deepcopy(net), backend="aot_eager")
        with draws(compiled, sample=False):
            out = compiled(x)
    except Exception as exc:  # pragma: no cover - platform without a working torch.compile
        pytest.skip(f"torch.compile is not available here: {exc}")
    with torch.no_grad(), draws(net, sample=False):
        torch.testing.assert_close(out, net(x))
    loss = compiled(x).sum()  # sampled weights, training mode: gradients flow to mu and rho
    loss.backward()
    assert compiled.get_submodule("3").weight_rho.grad is not None
